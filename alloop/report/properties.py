"""The report's section on what the campaign's potentials predict: each property over the iterations' potentials,
with the teacher's value and the published DFT value beside it. It only reads the property table the loop (or
`alloop properties CAMPAIGN.yaml`) filled; nothing is computed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alloop.report.html import Page, table

PLOTTED_GROUPS = ("lattice", "elastic", "vacancy", "interstitials", "surfaces", "gsfe")


def latest_results(rows: list[dict[str, Any]]) -> tuple[dict[int, Any], Any, Any]:
    """The newest stored result per iteration's potential, the teacher's and the final potential's (None when
    absent)."""
    from alloop.properties import PropertyResult

    by_iteration: dict[int, Any] = {}
    teacher = final = None
    for r in rows:  # oldest first: later rows replace earlier ones
        result = PropertyResult.model_validate(r["result"])
        if r["subject"] == "teacher":
            teacher = result
        elif r["subject"] == "final":
            final = result
        elif r["iteration_idx"] is not None:
            by_iteration[int(r["iteration_idx"])] = result
    return dict(sorted(by_iteration.items())), teacher, final


def properties_section(page: Page, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    from alloop.properties.reference import reference_table
    from alloop.properties.results import PROPERTIES
    from alloop.properties.table import comparison_rows, trend_rows
    from alloop.report.property_plots import property_trends

    by_iteration, teacher, final = latest_results(rows)
    if not by_iteration:
        page.text("No properties stored yet: the loop computes them after each fit (campaign setting `properties:`), "
                  "`alloop properties CAMPAIGN.yaml` fills in any that are missing.")
        return []
    trend = trend_rows(by_iteration, teacher)
    its = sorted(by_iteration)
    # the deviations are the campaign's result's: its final potential where there is one
    latest, latest_name = (final, "final") if final is not None else (by_iteration[its[-1]], f"iteration {its[-1]}")
    dev = {(r["element"], r["property"]): r for r in comparison_rows(latest, teacher)}
    final_values = {(r["element"], r["property"]): r["value"] for r in comparison_rows(final)} if final is not None else {}
    refs = reference_table()
    shown = pd.DataFrame([
        {"property": f"{r['element']} {r['label']}", "unit": r["unit"],
         **{f"iter {i}": r["iterations"][i] for i in its},
         **({"final": final_values.get((r["element"], r["property"]))} if final is not None else {}),
         "teacher": r["teacher"], "DFT": r["dft"],
         "Δ teacher (%)": dev.get((r["element"], r["property"]), {}).get("vs_teacher_pct"),
         "Δ DFT (%)": dev.get((r["element"], r["property"]), {}).get("vs_dft_pct"),
         "DFT source": dev.get((r["element"], r["property"]), {}).get("dft_source") or ""}
        for r in trend])
    who = f"the teacher {teacher.model}" if teacher is not None else "no teacher stored"
    page.text(f"Each property of each iteration's potential (— where not computable), {who}, and the published DFT value; "
              f"the deviations are the {latest_name} potential's. Formation energies at zero pressure in "
              f"{latest.settings.get('defect_cells', 4)}³ cubic cells; see `alloop properties --help` for the methods.")
    page.html(table(shown))
    used = sorted({r["DFT source"] for _, r in shown.iterrows() if r["DFT source"]})
    if used:
        page.kv([(k, refs.sources[k].describe(), None) for k in used])
    reasons = {(latest_name, r["label"]): r["reason"] for r in comparison_rows(latest) if r["reason"]}
    if teacher is not None:
        reasons.update({("teacher", r["label"]): r["reason"] for r in comparison_rows(teacher) if r["reason"]})
    if reasons:
        page.subsection("Not computable")
        page.html(table(pd.DataFrame([{"model": m, "property": p, "message": why} for (m, p), why in reasons.items()]),
                        headers=["model", "property", "reason"]))
    mixing = _mixing_frame(by_iteration, teacher, final)
    if not mixing.empty:
        page.subsection("Energy of mixing (meV/atom, random solid solutions)")
        page.html(table(mixing))
    plotted = [r for r in trend if PROPERTIES[r["property"]][2] in PLOTTED_GROUPS and r["property"] != "cohesive_energy"]
    if not plotted:
        return []
    fig = property_trends(plotted, out / "properties.png", title="properties of each iteration's potential")
    page.figure(fig, "Each property against the iteration of the potential (× where not computable), the teacher dashed, "
                     "the published DFT value dotted.")
    return [fig]


def _mixing_frame(by_iteration: dict[int, Any], teacher: Any, final: Any = None) -> pd.DataFrame:
    rows: dict[str, dict[str, Any]] = {}
    for label, result in [*((f"iter {i}", r) for i, r in by_iteration.items()), ("final", final), ("teacher", teacher)]:
        for m in [] if result is None else result.mixing:
            key = "".join(f"{el}{x:.2g}" for el, x in m.composition.items())
            rows.setdefault(key, {"composition": key})[label] = m.value.value
    return pd.DataFrame(list(rows.values()))
