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
    """Small multiples: each property against the iteration of the potential, the teacher dashed, DFT dotted."""
    n = len(rows)
    cols = min(4, n)
    nrows = int(np.ceil(n / cols))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.3 * cols, 2.5 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, r in zip(axes, rows):
        its = sorted(r["iterations"])
        y = np.array([np.nan if r["iterations"][i] is None else r["iterations"][i] for i in its], dtype=float)
        ax.plot(its, y, "o-", color=_STYLES["potential"][0], ms=4, label="potential")
        if np.isnan(y).any():
            ax.plot([i for i, v in zip(its, y) if np.isnan(v)], [0] * int(np.isnan(y).sum()), "x", color="0.5",
                    transform=ax.get_xaxis_transform(), clip_on=False, label="not computable")
        if r["teacher"] is not None:
            ax.axhline(r["teacher"], color=_STYLES["teacher"][0], ls="--", lw=1.2, label="teacher")
        if r["dft"] is not None:
            ax.axhline(r["dft"], color="k", ls=":", lw=1.2, label="DFT")
        ax.set_title(f"{r['element']} {PROPERTIES[r['property']][0]}", fontsize=9)
        ax.set_ylabel(r["unit"], fontsize=8)
        ax.set_xticks(its)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
