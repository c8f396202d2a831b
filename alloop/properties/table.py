"""Side by side: a potential's properties, the teacher's, the shipped DFT values, and the deviations from both;
as rows (for JSON and the report) and as a plain-text table (for the terminal)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

from alloop.properties.reference import ReferenceTable, reference_table
from alloop.properties.results import PROPERTIES, PropertyResult, Value


def _ordered(names: Sequence[str]) -> list[str]:
    return [k for k in PROPERTIES if k in names]


def _deviation(value: float | None, ref: float | None) -> tuple[float | None, float | None]:
    if value is None or ref is None:
        return None, None
    return value - ref, (100.0 * (value - ref) / abs(ref)) if ref else None


def comparison_rows(result: PropertyResult, teacher: PropertyResult | None = None,
                    table: ReferenceTable | None = None) -> list[dict[str, Any]]:
    """One row per element and property: value (or reason), the teacher's, DFT's with its source, deviations."""
    table = table or reference_table()
    rows = []
    for props in result.per_element:
        t_props = teacher.element(props.element) if teacher is not None else None
        for name in _ordered(list(props.values)):
            v = props.values[name]
            tv = t_props.values.get(name) if t_props is not None else None
            dft = table.value(props.element, name)
            label, unit, _ = PROPERTIES[name]
            d_t, p_t = _deviation(v.value, tv.value if tv is not None else None)
            d_d, p_d = _deviation(v.value, dft.value if dft is not None else None)
            rows.append({
                "element": props.element, "property": name, "label": label, "unit": unit,
                "value": v.value, "reason": v.reason,
                "teacher": None if tv is None else tv.value, "teacher_reason": None if tv is None else tv.reason,
                "dft": None if dft is None else dft.value, "dft_source": None if dft is None else dft.source,
                "vs_teacher": d_t, "vs_teacher_pct": p_t, "vs_dft": d_d, "vs_dft_pct": p_d,
            })
    return rows


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f"{x:.{digits}g}"


def _dev(d: float | None, pct: float | None) -> str:
    if d is None:
        return ""
    return f"{d:+.3g}" + (f" ({pct:+.1f}%)" if pct is not None else "")


def format_table(result: PropertyResult, teacher: PropertyResult | None = None, table: ReferenceTable | None = None) -> str:
    """The comparison as text: not computable values show `n/c [k]` with the reason as footnote k."""
    table = table or reference_table()
    rows = comparison_rows(result, teacher, table)
    notes: dict[str, int] = {}

    def cell(value: float | None, reason: str | None) -> str:
        if value is not None:
            return _num(value)
        if reason is None:
            return ""
        k = notes.setdefault(reason, len(notes) + 1)
        return f"n/c [{k}]"

    who = "teacher " + teacher.model if teacher is not None else None
    head = ["property", "unit", "potential"] + (["teacher", "Δ teacher"] if teacher is not None else []) + ["DFT", "Δ DFT", "source"]
    body = []
    for r in rows:
        line = [f"{r['element']} {r['label']}", r["unit"], cell(r["value"], r["reason"])]
        if teacher is not None:
            line += [cell(r["teacher"], r["teacher_reason"]), _dev(r["vs_teacher"], r["vs_teacher_pct"])]
        line += [_num(r["dft"]), _dev(r["vs_dft"], r["vs_dft_pct"]), r["dft_source"] or ""]
        body.append(line)
    mix = _mixing_lines(result, teacher, cell)
    widths = [max(len(x) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    fmt_line = lambda cols: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))  # noqa: E731
    out = [f"potential: {result.model} ({result.kind}, {result.seconds:.0f} s, {result.cpu_seconds:.0f} s CPU)"]
    if who:
        out.append(f"{who} ({teacher.kind}, {teacher.seconds:.0f} s, {teacher.cpu_seconds:.0f} s CPU)")  # type: ignore[union-attr]
    out += [fmt_line(head), fmt_line(["-" * w for w in widths])] + [fmt_line(b) for b in body]
    if mix:
        out += ["", "energy of mixing, random solid solutions (meV/atom, mean ± std over draws):"] + mix
    used = sorted({r["dft_source"] for r in rows if r["dft_source"]})
    if used:
        out += ["", "DFT sources:"]
        for key in used:
            out += textwrap.wrap(f"{key}: {table.sources[key].describe()}", 110, initial_indent="  ", subsequent_indent="    ")
    if notes:
        out += ["", "not computable (n/c):"]
        for reason, k in notes.items():
            out += textwrap.wrap(f"[{k}] {reason}", 110, initial_indent="  ", subsequent_indent="      ")
    holes = [(who_, p.element, p.values["lattice_constant"].details) for who_, r in (("potential", result), ("teacher", teacher))
             if r is not None for p in r.per_element if "lattice_constant" in p.values and "hole_at_a" in p.values["lattice_constant"].details]
    if holes:
        out += ["", "warnings:"]
        for who_, el, d in holes:
            out += textwrap.wrap(f"{who_}, {el}: the E–V curve falls {d['hole_depth_eV_per_atom']:.3g} eV/atom below the crystal's "
                                 f"minimum at a = {d['hole_at_a']:.3f} Å (a hole at strong compression, beyond the potential's "
                                 "data); the properties are those of the crystal's own minimum", 110,
                                 initial_indent="  ", subsequent_indent="    ")
    return "\n".join(out)


def _mixing_lines(result: PropertyResult, teacher: PropertyResult | None, cell: Any) -> list[str]:
    lines = []
    t_by = {_comp(m.composition): m for m in teacher.mixing} if teacher is not None else {}
    for m in result.mixing:
        key = _comp(m.composition)
        t = t_by.get(key)
        text = f"  {key:<24} potential {_pm(m.value, m.std, cell)}"
        if teacher is not None:
            text += f"   teacher {_pm(t.value, t.std, cell) if t is not None else ''}"
        lines.append(text)
    return lines


def _pm(v: Value, std: float | None, cell: Any) -> str:
    if not v.ok:
        return cell(None, v.reason)
    return f"{v.value:+.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _comp(c: dict[str, float]) -> str:
    return "".join(f"{el}{x:.2g}" for el, x in c.items())


def trend_rows(by_iteration: dict[int, PropertyResult], teacher: PropertyResult | None = None,
               table: ReferenceTable | None = None) -> list[dict[str, Any]]:
    """One row per element and property: its value for each iteration's potential (None where not computable),
    the teacher's and DFT's."""
    table = table or reference_table()
    keys: list[tuple[str, str]] = []
    for r in by_iteration.values():
        for props in r.per_element:
            keys += [(props.element, k) for k in _ordered(list(props.values)) if (props.element, k) not in keys]
    rows = []
    for el, name in keys:
        def of(r: PropertyResult | None) -> float | None:
            p = r.element(el) if r is not None else None
            v = p.values.get(name) if p is not None else None
            return None if v is None else v.value
        dft = table.value(el, name)
        label, unit, _ = PROPERTIES[name]
        rows.append({"element": el, "property": name, "label": label, "unit": unit,
                     "iterations": {i: of(r) for i, r in by_iteration.items()}, "teacher": of(teacher),
                     "dft": None if dft is None else dft.value})
    return rows


def trend_table(by_iteration: dict[int, PropertyResult], teacher: PropertyResult | None = None) -> str:
    rows = trend_rows(by_iteration, teacher)
    its = sorted(by_iteration)
    head = ["property", "unit"] + [f"iter {i}" for i in its] + ["teacher", "DFT"]
    body = [[f"{r['element']} {r['label']}", r["unit"]] + [_num(r["iterations"][i]) or "n/c" for i in its]
            + [_num(r["teacher"]) or ("n/c" if teacher is not None else ""), _num(r["dft"])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cols: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
