"""`build_report(db, outdir)`: a campaign's progress as one static HTML page with PNG figures beside it.

The database is opened read-only, so a report can be built at any time beside a running controller
(and by the controller itself after each iteration). Nothing is fetched: the page opens from a file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import DBAPIError

from alloop.atomic import write_text_atomic
from alloop.errors import AlloopError, StateError
from alloop.report import data, plots
from alloop.report.html import Page, fmt, table
from alloop.report.properties import properties_section
from alloop.report.summary import summarize
from alloop.state import ReadOnlyStore
from alloop.state.db import latest_version


# ACE predictions for the parity plots are the one part that grows with the data: beyond this many
# DFT-labelled structures an even random subset is drawn (and the page says so).
PARITY_MAX_STRUCTURES = 500


def build_report(db_path: str | Path, outdir: str | Path) -> Path:
    """Write `outdir/index.html` and its figures for the campaign in `db_path`; returns the page's path.
    Raises StateError when the file is not a readable campaign database."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    store = ReadOnlyStore.open_readonly(db_path)
    latest = latest_version()
    try:
        summary = summarize(store, n_events=8)
        camp = store.campaign()
        config = json.loads(camp["config_json"])
        tables = data.load_tables(store, camp["id"], config)
        events = store.events_at(camp["id"], ("warning", "error"))
        parity = _parity_subset(tables.dft)
        parity["atoms_json"] = parity["id"].map(store.geometries(parity["id"].tolist()))
        sweep = store.sweep_results(camp["id"])
        properties = store.property_results(camp["id"])
        schema = store.schema_version
    except DBAPIError as exc:
        raise StateError(store._unreadable(exc)) from exc
    finally:
        store.close()
    page = Page(f"alloop report: {summary['campaign']}")
    made: list[Path] = []
    if schema < latest:  # read as it is (the report never writes): what older schemas lack is left out
        page.note(f"database schema version {schema} (this alloop knows {latest}); `alloop run` migrates it (the read-only commands read it as it is)")
    elif schema > latest:
        page.note(f"database schema version {schema} is newer than this alloop knows ({latest}): upgrade alloop if anything is missing")
    for n in tables.notes:
        page.note(n)
    _summary_section(page, summary, config)
    sections: list[tuple[str, Callable[[], list[Path]]]] = [
        ("Iterations and the DFT ledger", lambda: _iterations_section(page, tables, out)),
        ("Uncertainty U and the true force error", lambda: _uncertainty_section(page, tables, out)),
        ("ACE training and test errors", lambda: _potential_section(page, tables, out)),
        ("What the potentials predict", lambda: properties_section(page, properties, out)),
        ("Extrapolation grade γ of fresh candidates", lambda: _gamma_section(page, tables, config, out)),
        ("Current potential against the DFT labels", lambda: _parity_section(page, tables, parity, out)),
    ]
    if sweep:
        sections.append(("U_c sweep", lambda: _sweep_section(page, sweep, out)))
    for title, draw in sections:
        page.section(title)
        try:
            made += draw()
        except AlloopError as exc:  # e.g. a potential file moved away: this section says why, the rest stands
            page.note(f"not drawn: {exc}")
    _events_section(page, events)
    for stale in out.glob("*.png"):
        if stale not in made:
            stale.unlink()
    index = out / "index.html"
    write_text_atomic(index, page.render())  # a browser reloading during a rebuild sees the old page or the new
    return index


# ------------------------------------------------------------------------------------------ sections
def _summary_section(page: Page, s: dict[str, Any], config: dict[str, Any]) -> None:
    page.section("State")
    page.text(f"Built {time.strftime('%Y-%m-%d %H:%M:%S')} from {s['database']}.")
    rows: list[tuple[str, Any, str | None]] = [
        ("status", s["status"], "status"),
        ("message", s["message"] or "", None),
        ("iteration", s["iteration"], "iteration"),
        ("stage", s["stage"], "stage"),
        ("max iterations", s["max_iterations"], None),
    ]
    rows.append(("configurations", s["n_configurations"], "n_configurations"))
    rows += [(f"configurations {k}", v, f"configurations.{k}") for k, v in sorted(s["configurations"].items())]
    if s["kinds"]:
        rows.append(("configurations by kind", ", ".join(f"{k} {v}" for k, v in sorted(s["kinds"].items())), None))
    for src in s["sources"]:
        rows.append((f"from {src['file']}" + (f" [{src['group']}]" if src["group"] else ""),
                     f"{src['configurations']} ({src['dft']} DFT, {src['umlip']} uMLIP labels)", None))
    rows += [(f"labels by {k}", v, f"labels.{k}") for k, v in sorted(s["labels"].items())]
    rows.append(("DFT share by atoms", fmt(s["dft_fraction_by_atoms"], "pct"), "dft_fraction_by_atoms"))
    rows += [(f"DFT jobs {k}", v, f"dft_jobs.{k}") for k, v in sorted(s["dft_jobs"].items())]
    if s["potential"]:
        p = s["potential"]
        rows += [("potential", f"{p['path']} (iteration {p['iteration']}, {p['n_train']} configurations)", "potential.path")]
        if (p.get("energy_reference") or {}).get("energy_scale"):
            rows.append(("energy scale", p["energy_reference"]["energy_scale"], None))
    if s["gamma"]:
        g = s["gamma"][-1]
        rows.append(("γ share above threshold (last)", f"{fmt(g['share_above'], 'pct')} of {g['n_candidates']} (γ > {g['threshold']:g})", None))
    page.kv(rows)
    unc, conv, dft, sel = (config.get(k) or {} for k in ("uncertainty", "convergence", "labels", "selection"))
    settings = [
        ("elements", ", ".join(config.get("elements", [])), None),
        ("ensemble", config.get("ensemble") if isinstance(config.get("ensemble"), str) else "inline", None),
        ("U variant, U_c", f"U^({unc.get('variant')}), U_c = {unc.get('u_c')} eV/Å", "u_c"),
        ("DFT backend", (dft.get("dft") or {}).get("backend"), None),
        ("selection budget per iteration", sel.get("budget"), None),
        ("γ_lo, target share, patience, least sample", f"{(config.get('explore') or {}).get('gamma_lo', 1.1)}, "
         f"{fmt(conv.get('target_share'), 'pct')}, {conv.get('patience')}, {conv.get('min_sample')}", None),
    ]
    page.subsection("Settings")
    page.kv(settings)


def _iterations_section(page: Page, t: data.CampaignTables, out: Path) -> list[Path]:
    it = data.iteration_table(t)
    if it.empty:
        page.text("No iteration yet.")
        return []
    routing = {
        "iteration": "iteration", "stage": "stage", "stored": "stored", "rejected": "rejected (unphysical)", "selected": "selected",
        "umlip_configs": "→ uMLIP configurations", "umlip_atoms": "→ uMLIP atoms", "dft_configs": "→ DFT configurations", "dft_atoms": "→ DFT atoms",
    }
    ledger = {
        "iteration": "iteration", "dft_done": "DFT done", "dft_pending": "pending", "dft_quarantined": "quarantined",
        "dft_failed_attempts": "failed attempts", "cum_dft_atoms": "Σ DFT atoms", "cum_dft_share_atoms": "Σ DFT share (atoms)",
        "cum_dft_wall_h": "Σ DFT wall hours", "cum_dft_core_h": "Σ DFT core-hours",
    }
    shown = it.copy()
    shown["cum_dft_share_atoms"] = [fmt(v, "pct") for v in shown["cum_dft_share_atoms"]]
    for k in ("cum_dft_wall_h", "cum_dft_core_h"):
        shown[k] = [fmt(v, ".3g") for v in shown[k]]
    page.subsection("Candidates and routing")
    page.html(table(shown[list(routing)], headers=list(routing.values())))
    page.subsection("DFT ledger")
    page.html(table(shown[list(ledger)], headers=list(ledger.values())))
    page.text("Σ columns are cumulative. Core-hours appear where the DFT backend records them (`core_hours`, or `wall_s` and "
              "`cores` in the label's meta); wall hours sum the calculations' own run times.")
    kinds = data.kinds_table(t)
    if not kinds.empty:
        page.subsection("Configurations by kind")
        page.html(table(kinds.reset_index()))
    fig = plots.stacked_bars(
        it["iteration"].tolist(),
        {"labelled by uMLIP (atoms)": it["umlip_label_atoms"].tolist(), "labelled by DFT (atoms)": it["dft_label_atoms"].tolist()},
        out / "labels_per_iteration.png",
        line=("cumulative DFT atoms", it["cum_dft_atoms"].tolist()),
        line_label="cumulative DFT atoms",
        title="atoms labelled per iteration",
    )
    page.figure(fig, "Atoms labelled per iteration by source, and the cumulative DFT ledger (line, right axis).")
    return [fig]


def _uncertainty_section(page: Page, t: data.CampaignTables, out: Path) -> list[Path]:
    c = t.configurations
    scored = c[c["u"].notna()]
    if scored.empty:
        page.text("No configuration scored yet.")
        return []
    dft = t.dft[np.isfinite(t.dft["delta_f"].to_numpy(dtype=float))] if len(t.dft) else t.dft
    shown_its = _recent(sorted(set(scored["iteration_idx"])), page, "U histograms")
    u_by = {f"iteration {i}": g["u"].to_numpy(float) for i, g in scored.groupby("iteration_idx") if i in shown_its}
    df_by = {f"iteration {i}": g["delta_f"].to_numpy(float) for i, g in dft.groupby("iteration_idx") if i in shown_its}
    u_cs = sorted(set(pd.to_numeric(scored["u_c"]).tolist()))
    made = [plots.mirrored_histograms(u_by, df_by, out / "u_histograms.png", lines={f"U_c = {u:g} eV/Å": u for u in u_cs},
                                      title="U of scored configurations (top), ΔF where DFT labels exist (bottom)")]
    page.figure(made[0], f"U (Eq. 1) of every scored configuration per iteration, above the axis; below it the true force error "
                         f"ΔF = max over atoms |F({t.force_member}) − F(DFT)| of the DFT-labelled ones (paper Fig. 3b). "
                         "Configurations with U below the dotted U_c line are labelled by the uMLIP.")
    if len(dft):
        u_of = c.set_index("id")["u"]
        u = u_of.reindex(dft["id"]).to_numpy(float)
        keep = np.isfinite(u) & (u > 0) & (dft["delta_f"].to_numpy(float) > 0)
        if keep.any():
            made.append(plots.parity_hexbin(u, dft["delta_f"].to_numpy(float), out / "u_vs_force_error.png", title=f"U vs ΔF of {t.force_member}"))
            page.figure(made[-1], "U against the true force error of the force member on the DFT-labelled configurations (paper Fig. 4a).")
    return made


# Distributions of more iterations than this, overlaid in one figure, stop being readable.
MAX_OVERLAID_ITERATIONS = 6


def _recent(iterations: list[int], page: Page, what: str) -> list[int]:
    if len(iterations) > MAX_OVERLAID_ITERATIONS:
        page.note(f"{what}: the last {MAX_OVERLAID_ITERATIONS} of {len(iterations)} iterations")
        return iterations[-MAX_OVERLAID_ITERATIONS:]
    return iterations


def _potential_section(page: Page, t: data.CampaignTables, out: Path) -> list[Path]:
    p = data.potential_table(t)
    if p.empty:
        page.text("No potential fitted yet.")
        return []
    heads = {"iteration": "iteration", "n_train": "training configurations", "energy_rmse_train": "energy RMSE train",
             "energy_rmse_test": "energy RMSE test", "force_rmse_train": "force RMSE train", "force_rmse_test": "force RMSE test",
             "n_functions": "basis functions", "n_iterations": "fit iterations",
             "n_excluded": "left out (above the fit's bounds)"}
    sets = data.test_set_names(p)
    for name in sets:
        heads |= {f"energy_rmse_{name}": f"energy RMSE {name} (no offset)", f"force_rmse_{name}": f"force RMSE {name}"}
    page.html(table(p, headers=[heads.get(str(c), str(c)) for c in p.columns]))
    page.text("Energies in meV/atom, forces in eV/Å per component, from pacemaker's own train/test split of each iteration's fit"
              + (f", and on the external test sets ({', '.join(sets)}; train.test_sets), which no fit saw: the learning curve." if sets else "."))
    its = p["iteration"].tolist()
    made = []
    for q, unit, name in (("energy", "meV/atom", "ace_energy_errors.png"), ("force", "eV/Å", "ace_force_errors.png")):
        series = {f"{split}": p[f"{q}_rmse_{split}"].tolist() for split in ("train", "test", *sets) if f"{q}_rmse_{split}" in p}
        if series and np.isfinite(np.asarray(list(series.values()), dtype=float)).any():
            made.append(plots.trend_plot(its, series, out / name, title=f"ACE {q} RMSE", ylabel=f"{q} RMSE ({unit})"))
            page.figure(made[-1], f"ACE {q} RMSE per iteration on the training and test split" + (" and the external test sets." if sets else "."))
    return made


def _gamma_section(page: Page, t: data.CampaignTables, config: dict[str, Any], out: Path) -> list[Path]:
    g, values = data.gamma_table(t)
    if g.empty:
        page.text("No γ evaluation yet.")
        return []
    conv = config.get("convergence") or {}
    target = conv.get("target_share")
    shown = g.copy()
    shown["share_above"] = [fmt(v, "pct") for v in shown["share_above"]]
    heads = {"iteration": "iteration", "n_candidates": "candidates", "threshold": "γ threshold", "share_above": "share above"}
    page.html(table(shown, headers=[heads.get(str(c), f"γ {c}") for c in shown.columns]))
    threshold = float(g["threshold"].iloc[-1])
    made = []
    shown_its = _recent(sorted(i for i, v in values.items() if v.size), page, "γ distributions")
    if shown_its:
        made.append(plots.distributions({f"iteration {i}": values[i] for i in shown_its}, out / "gamma.png", threshold=threshold,
                                          title=f"max γ of fresh candidates (converged: < {fmt(target, 'pct')} above {threshold:g})"))
        page.figure(made[-1], f"The largest extrapolation grade γ of each fresh candidate per iteration; the campaign converges when the share "
                              f"above the threshold {threshold:g} stays below the target {fmt(target, 'pct')} for {conv.get('patience')} iteration(s).")
    else:
        page.text("No fresh candidate was graded (the candidate pool was empty).")
    share = plots.trend_plot(g["iteration"].tolist(), {"share above γ threshold": g["share_above"].tolist(),
                             "target": [target if target is not None else np.nan] * len(g)}, out / "gamma_share.png",
                             title="share of fresh candidates above the γ threshold")
    page.figure(share, "The convergence criterion over iterations.")
    return [*made, share]


def _parity_subset(dft: pd.DataFrame) -> pd.DataFrame:
    """The DFT labels the parity plots predict: all, or an even random PARITY_MAX_STRUCTURES of them."""
    if len(dft) <= PARITY_MAX_STRUCTURES:
        return dft.copy()
    return dft.iloc[np.sort(np.random.default_rng(0).choice(len(dft), PARITY_MAX_STRUCTURES, replace=False))].copy()


def _energy_reference(references_json: str | None) -> Any:
    """The energy reference recorded with a potential; databases from before schema 3 recorded the
    offsets alone (`dft_to_umlip_eV_per_atom`)."""
    from alloop.label.reference import EnergyReference

    d = json.loads(references_json or "{}")
    if "method" in d:
        return EnergyReference.from_json(d)
    offsets = d.get("dft_to_umlip_eV_per_atom") or {}
    return EnergyReference("fit" if offsets else "none", offsets, "the energy member's (DFT energies shifted by per-element offsets)")


def _parity_section(page: Page, t: data.CampaignTables, dft: pd.DataFrame, out: Path) -> list[Path]:
    from ase.calculators.singlepoint import SinglePointCalculator

    from alloop.label.mixing import corrected_energies
    from alloop.structures import atoms_from_json
    from alloop.train import compute_errors

    if t.potentials.empty or dft.empty:
        page.text("Needs a fitted potential and DFT labels.")
        return []
    pot = t.potentials.iloc[-1]
    if len(dft) < len(t.dft):
        page.note(f"an even random {len(dft)} of the {len(t.dft)} DFT-labelled configurations are shown")
    frames = [atoms_from_json(a) for a in dft["atoms_json"]]
    reference = _energy_reference(pot["references_json"])
    # the potential was fitted to DFT energies moved onto the energy member's scale: compare on that scale
    energies = corrected_energies(frames, dft["energy"].to_numpy(float), np.ones(len(frames), dtype=bool), reference)
    for a, e, f in zip(frames, energies, dft["forces"]):
        a.calc = SinglePointCalculator(a, energy=float(e), forces=f)
    metrics, pairs = compute_errors(pot["path"], frames)
    made = plots.parity_pair(pairs, out, title=f"iteration {int(pot['iteration_idx'])} potential vs DFT")
    page.kv([
        ("potential", pot["path"], None),
        ("DFT structures, atoms", f"{metrics['n_structures']}, {metrics['n_atoms']}", None),
        ("energy RMSE (meV/atom)", fmt(metrics["energy_rmse"], "4g"), "parity.energy_rmse"),
        ("energy RMSE without mean offset", fmt(metrics["energy_rmse_centered"], "4g"), None),
        ("force RMSE (eV/Å)", fmt(metrics["force_rmse"], "4g"), "parity.force_rmse"),
    ])
    note = (" DFT energies are moved onto the training scale with the per-element offsets recorded with the fit ("
            + ", ".join(f"{el} {v:+.4f} eV/atom" for el, v in reference.offsets.items()) + f"; scale: {reference.energy_scale})."
            if reference.offsets else "")
    page.figure(made[0], "Per-atom energies of the current potential against the DFT labels (the `alloop evaluate` computation)." + note)
    page.figure(made[1], "Force components of the current potential against the DFT labels.")
    return made


def _sweep_section(page: Page, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    from alloop.train.sweep import format_uc, mean_rows

    means = mean_rows(rows)  # the table and figure of `alloop sweep`
    shown = pd.DataFrame(means)
    shown["u_c"] = [format_uc(u) for u in shown["u_c"]]
    for k in ("dft_share_configs", "dft_share_atoms"):
        shown[k] = [fmt(v, "pct") for v in shown[k]]
    page.html(table(shown))
    page.text(f"{len(rows)} fits, averaged over seeds per U_c; energies meV/atom, forces eV/Å. label: the mixed labels against DFT; "
              "train: ACE against its training labels; all: ACE on every DFT-labelled configuration; test: held out.")
    fig = plots.sweep_plot(rows, out / "sweep.png", title="U_c sweep")
    page.figure(fig, "Errors against U_c (paper Fig. 4b): the mixed labels against DFT (blue), ACE's training error (green), ACE on all "
                     "DFT-labelled data (red) and on the held-out test set (purple); mean and spread over seeds; the DFT share by atoms "
                     "on the top axis. U_c = 0 (all DFT) and ∞ (all uMLIP) sit at the ends of the log axis.")
    return [fig]


def _events_section(page: Page, events: list[dict[str, Any]]) -> None:
    page.section("Warnings and errors")
    if not events:
        page.text("None logged.")
        return
    rows = pd.DataFrame([{"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["ts"])), "iteration": e["iteration_idx"],
                          "level": e["level"], "kind": e["kind"], "message": e["message"]} for e in events])
    page.html(table(rows, row_class="level"))
