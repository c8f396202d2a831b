"""Figures of what potentials predict (alloop.properties): E–V curves and γ-lines beside the teacher's, and the
movement of each property over a campaign's potentials with the teacher and DFT as lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alloop.properties.reference import reference_table
from alloop.properties.results import PROPERTIES, PropertyResult
from alloop.report.plots import _figure, _save

_STYLES = {"potential": ("#1f77b4", "-"), "teacher": ("#d62728", "--")}


def property_figures(results: Mapping[str, PropertyResult], outdir: Path) -> list[Path]:
    """One E–V figure and one γ-line figure per element (where computed), each model a line."""
    made = []
    first = next(iter(results.values()))
    for props in first.per_element:
        el = props.element
        curves = {label: r.element(el) for label, r in results.items()}
        if any(p is not None and p.eos is not None for p in curves.values()):
            made.append(_eos(el, curves, outdir / f"eos_{el}.png"))
        if any(p is not None and p.gsfe for p in curves.values()):
            made.append(_gsfe(el, curves, outdir / f"gsfe_{el}.png"))
    return made


def _eos(el: str, curves: Mapping[str, Any], path: Path) -> Path:
    fig, (ax,) = _figure()
    for i, (label, p) in enumerate(curves.items()):
        if p is None or p.eos is None:
            continue
        color, ls = _STYLES.get(label, (f"C{i + 2}", "-"))
        a0 = p.values["lattice_constant"].value
        ax.plot(p.eos.x, np.asarray(p.eos.y) * 1000, ls, marker="o", ms=3, color=color, label=f"{label} (a0 = {a0:.3f} Å)")
    dft = reference_table().value(el, "lattice_constant")
    if dft is not None:
        n = 2 if (reference_table().structure(el) or "bcc") == "bcc" else 4
        ax.axvline(dft.value**3 / n, color="k", ls=":", lw=1, label=f"DFT a0 = {dft.value:.3f} Å ({dft.source})")
    ax.set_xlabel("volume per atom (Å³)")
    ax.set_ylabel("E − E0 (meV/atom)")
    ax.set_ylim(bottom=-20)
    ax.set_title(f"{el}: E–V curve")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _gsfe(el: str, curves: Mapping[str, Any], path: Path) -> Path:
    planes = sorted({plane for p in curves.values() if p is not None for plane in p.gsfe})
    fig, axes = _figure(ncols=len(planes))
    for ax, plane in zip(axes, planes):
        for i, (label, p) in enumerate(curves.items()):
            if p is None or plane not in p.gsfe:
                continue
            color, ls = _STYLES.get(label, (f"C{i + 2}", "-"))
            ax.plot(p.gsfe[plane].x, p.gsfe[plane].y, ls, marker="o", ms=3, color=color, label=label)
        ax.set_xlabel("shift (fraction of the period)")
        ax.set_ylabel("γ (J/m²)")
        ax.set_title(f"{el}: {{{plane}}} γ-line")
        ax.legend(fontsize=8)
    return _save(fig, path)


def property_trends(rows: Sequence[Mapping[str, Any]], path: Path, title: str | None = None) -> Path:
    """Small multiples, one per property: its value against the iteration of the potential, one colour per element,
    the teacher's value dashed and the published DFT value dotted in the same colour; × marks not computable."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(r["property"] for r in rows))
    elements = list(dict.fromkeys(r["element"] for r in rows))
    colour = {el: f"C{i}" for i, el in enumerate(elements)}
    cols = min(4, len(names))
    nrows = int(np.ceil(len(names) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.5 * nrows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        for r in (r for r in rows if r["property"] == name):
            c = colour[r["element"]]
            its = sorted(r["iterations"])
            y = np.array([np.nan if r["iterations"][i] is None else r["iterations"][i] for i in its], dtype=float)
            ax.plot(its, y, "o-", color=c, ms=4)
            missing = [i for i, v in zip(its, y) if np.isnan(v)]
            if missing:
                ax.plot(missing, [0.02] * len(missing), "x", color=c, transform=ax.get_xaxis_transform(), clip_on=False)
            if r["teacher"] is not None:
                ax.axhline(r["teacher"], color=c, ls="--", lw=1.1)
            if r["dft"] is not None:
                ax.axhline(r["dft"], color=c, ls=":", lw=1.3)
            ax.set_ylabel(r["unit"], fontsize=8)
        ax.set_title(PROPERTIES[name][0], fontsize=9)
        ax.set_xticks(sorted({i for r in rows for i in r["iterations"]}))
        ax.tick_params(labelsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color="0.3", marker="o", ms=4, label="potential (× not computable)"),
               Line2D([], [], color="0.3", ls="--", label="teacher"), Line2D([], [], color="0.3", ls=":", label="DFT")]
    if len(elements) > 1:
        handles += [Line2D([], [], color=colour[el], lw=3, label=el) for el in elements]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle(title or "properties of each iteration's potential (x: iteration)", fontsize=10)
    return _save(fig, path)
