"""PNG figures in the style of Liu et al. 2026: U vs force error, accuracy-coverage, parity, trends.

Figures are drawn on a bare `matplotlib.figure.Figure` (Agg canvas, no pyplot), so nothing here
touches matplotlib's global backend or figure registry, and it works on headless machines.
Every function writes a PNG (creating parent folders) and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from alloop import uq

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_DPI = 150
_TARGET_GREEN = "#2ca02c"
# Hexbins switch on above this many points; below it a scatter shows each point.
_SCATTER_MAX = 20_000


def _figure(ncols: int = 1, width: float = 5.0, height: float = 4.3) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI, format="png")
    return out


def parity_hexbin(
    u: ArrayLike,
    err: ArrayLike,
    path: str | Path,
    title: str | None = None,
    unit: str = "eV/Å",
) -> Path:
    """Log-log hexbin of uncertainty U against force error ΔF (paper Figs. 2c, 4a) with y = x and
    y = 0.1x guides; Spearman's ρ (over all pairs without NaN) heads the legend."""
    x = np.asarray(u, dtype=np.float64).ravel()
    y = np.asarray(err, dtype=np.float64).ravel()
    rho = uq.spearman(x, y)
    # Log axes cannot show zero or negative values; they still count in ρ.
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if not keep.any():
        raise uq.UQInputError("parity_hexbin: no pair with positive, finite U and error to plot")
    x, y = x[keep], y[keep]
    lo = 10 ** np.floor(np.log10(min(x.min(), y.min())))
    hi = 10 ** np.ceil(np.log10(max(x.max(), y.max())))

    fig, (ax,) = _figure(width=5.4)
    hb = ax.hexbin(
        x,
        y,
        xscale="log",
        yscale="log",
        bins="log",
        mincnt=1,
        gridsize=45,
        cmap="viridis",
        extent=(np.log10(lo), np.log10(hi), np.log10(lo), np.log10(hi)),
    )
    fig.colorbar(hb, ax=ax, label="configurations")
    guide = np.array([lo, hi])
    ax.plot(guide, guide, "--", color="tab:orange", lw=1.5, label="y = x")
    ax.plot(guide, 0.1 * guide, ":", color="0.35", lw=1.5, label="y = 0.1x")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    ax.set_xlabel(f"uncertainty U ({unit})")
    ax.set_ylabel(f"force error ΔF ({unit})")
    dropped = int((~keep).sum())
    note = f", {dropped} not shown (≤ 0 or NaN)" if dropped else ""
    ax.legend(title=f"Spearman ρ = {rho:.3f}\nn = {x.size}{note}", loc="upper left", fontsize=9, title_fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def coverage_plot(
    u: ArrayLike,
    sq_err_sum: ArrayLike,
    counts: ArrayLike,
    path: str | Path,
    target: float = 0.1,
    uc_grid: ArrayLike | None = None,
    title: str | None = None,
    unit: str = "eV/Å",
    label: str = "retained set",
    quantity: str = "force",
) -> Path:
    """Two panels (paper Fig. 3c-h): RMSE of the retained configurations against coverage, and
    against U_c (strict U < U_c), with the target RMSE line and the largest U_c meeting it.

    sq_err_sum/counts as in `alloop.uq.coverage_curve` (forces: `alloop.uq.force_sq_errors`); for
    energies pass quantity="energy" and unit="eV/atom".
    """
    coverage, rmse = uq.coverage_curve(u, sq_err_sum, counts)
    uu = np.asarray(u, dtype=np.float64)
    if uc_grid is None:
        pos = uu[np.isfinite(uu) & (uu > 0)]
        if pos.size == 0:
            raise uq.UQInputError("coverage_plot: no positive, finite U to build a U_c grid; pass uc_grid")
        uc_grid = np.geomspace(pos.min(), pos.max() * 1.0001, 300)
    grid = np.asarray(uc_grid, dtype=np.float64)
    _, grid_rmse = uq.rmse_vs_uc(uu, sq_err_sum, counts, grid)
    uc_star = uq.uc_for_target_rmse(uu, sq_err_sum, counts, target)

    fig, (left, right) = _figure(ncols=2, width=4.6)
    left.plot(100 * coverage, rmse, color="tab:blue", lw=1.8, label=label)
    left.set_xlabel("coverage (% of configurations retained)")
    left.set_xlim(0, 100)
    right.plot(grid, grid_rmse, color="tab:blue", lw=1.8, label=label)
    right.set_xscale("log")
    right.set_xlabel(f"$U_c$ ({unit})")
    cov_star = uq.rmse_vs_uc(uu, sq_err_sum, counts, [uc_star])[0][0]
    if np.isfinite(uc_star):
        right.axvline(
            uc_star,
            color="tab:red",
            ls="--",
            lw=1.2,
            label=f"largest $U_c$ = {uc_star:.3g} {unit} ({100 * cov_star:.0f}% retained)",
        )
        left.axvline(100 * cov_star, color="tab:red", ls="--", lw=1.2)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_ylabel(f"{quantity} RMSE ({unit})")
        ax.axhline(target, color=_TARGET_GREEN, lw=1.2, label=f"target {target:g} {unit}")
        bottom = min(ax.get_ylim()[0], 0.5 * target)
        ax.axhspan(bottom, target, color=_TARGET_GREEN, alpha=0.12, lw=0)
        ax.set_ylim(bottom=bottom)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


_DEFAULT_UNITS = {"force": "eV/Å", "energy": "eV/atom"}


def parity_plot(
    ref: ArrayLike,
    pred: ArrayLike,
    path: str | Path,
    quantity: Literal["force", "energy"] = "force",
    unit: str | None = None,
    title: str | None = None,
) -> Path:
    """Predicted against reference values (force components or per-atom energies) with y = x; RMSE
    and MAE in the legend. Large sets are drawn as a hexbin."""
    if quantity not in _DEFAULT_UNITS:
        raise uq.UQInputError(f"quantity must be 'force' or 'energy', got {quantity!r}")
    unit = unit or _DEFAULT_UNITS[quantity]
    r = np.asarray(ref, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if r.size != p.size or r.size == 0:
        raise uq.UQInputError(f"parity_plot: {r.size} reference values for {p.size} predictions")
    keep = np.isfinite(r) & np.isfinite(p)
    if not keep.any():
        raise uq.UQInputError("parity_plot: no finite (reference, prediction) pair")
    r, p = r[keep], p[keep]
    diff = p - r
    rmse, mae = float(np.sqrt(np.mean(diff**2))), float(np.mean(np.abs(diff)))
    lo, hi = min(r.min(), p.min()), max(r.max(), p.max())
    pad = 0.03 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    fig, (ax,) = _figure(width=5.2)
    stats = f"RMSE = {rmse:.4g} {unit}\nMAE = {mae:.4g} {unit}\nn = {r.size}"
    if r.size > _SCATTER_MAX:
        hb = ax.hexbin(r, p, bins="log", mincnt=1, gridsize=80, cmap="viridis", extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="count")
    else:
        ax.scatter(r, p, s=6, alpha=0.5, color="tab:blue", lw=0, rasterized=True)
    ax.plot([lo, hi], [lo, hi], "--", color="tab:orange", lw=1.2, label="y = x")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):  # wide ranges (|F| up to 10³ eV/Å) otherwise crowd the labels
        axis.set_major_locator(MaxNLocator(nbins=5))
    what = "force component" if quantity == "force" else "energy"
    ax.set_xlabel(f"reference {what} ({unit})")
    ax.set_ylabel(f"predicted {what} ({unit})")
    ax.legend(title=stats, loc="upper left", fontsize=9, title_fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def trend_plot(
    iterations: Sequence[int] | ArrayLike,
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str | None = None,
    ylabel: str = "share of configurations",
) -> Path:
    """One line per named series against the campaign iteration (e.g. the share of candidates with
    extrapolation grade γ above threshold, or the DFT share); NaN leaves a gap."""
    it = np.asarray(iterations)
    if it.ndim != 1 or it.size == 0:
        raise uq.UQInputError(f"trend_plot: iterations must be a non-empty 1-D sequence, got shape {it.shape}")
    if not series:
        raise uq.UQInputError("trend_plot: no series to draw")
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = _figure(width=5.6, height=3.8)
    for name, values in series.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != it.shape:
            raise uq.UQInputError(f"trend_plot: series {name!r} has {v.size} values for {it.size} iterations")
        ax.plot(it, v, marker="o", ms=4, lw=1.5, label=name)
    if np.unique(it).size <= 12:
        ax.set_xticks(np.unique(it))  # whole iterations only, also when there is just one
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(float(it.min()) - 0.5, float(it.max()) + 0.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def parity_pair(pairs: Mapping[str, np.ndarray], outdir: str | Path, title: str | None = None) -> list[Path]:
    """parity_energy.png (per-atom energies) and parity_force.png (force components) in `outdir` from the
    paired values of `alloop.train.compute_errors`."""
    out = Path(outdir)
    return [
        parity_plot(pairs["e_ref"], pairs["e_pred"], out / "parity_energy.png", quantity="energy", unit="eV/atom", title=title),
        parity_plot(pairs["f_ref"], pairs["f_pred"], out / "parity_force.png", quantity="force", unit="eV/Å", title=title),
    ]


def _log_bins(values: Sequence[np.ndarray], per_decade: int = 5, floor: float = 1e-5) -> np.ndarray:
    """Log-spaced bin edges on whole decades covering the positive, finite values, starting no lower than
    `floor` (a perfect bulk cell's ΔF of 1e-30 eV/Å would otherwise stretch the axis over 25 empty decades;
    smaller values are counted in the first bin)."""
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values] or [np.zeros(0)])
    if pos.size == 0:
        return np.logspace(-3, 1, 4 * per_decade + 1)
    lo = max(np.floor(np.log10(pos.min())), np.log10(floor))
    hi = max(np.ceil(np.log10(pos.max())), lo + 1)
    return np.logspace(lo, hi, int(hi - lo) * per_decade + 1)


def mirrored_histograms(
    top: Mapping[str, ArrayLike],
    bottom: Mapping[str, ArrayLike],
    path: str | Path,
    lines: Mapping[str, float] | None = None,
    top_label: str = "uncertainty U",
    bottom_label: str = "force error ΔF",
    unit: str = "eV/Å",
    title: str | None = None,
) -> Path:
    """Log-x histograms of one quantity per group above the axis and another below it, mirrored (paper
    Fig. 3b: U on top, the true force error below), on shared bins; vertical lines (e.g. U_c) from `lines`.
    Values ≤ 0 or NaN cannot sit on a log axis and are counted in the legend instead."""
    groups = list(dict.fromkeys([*top, *bottom]))
    if not groups:
        raise uq.UQInputError("mirrored_histograms: nothing to draw")
    t = {g: np.asarray(top.get(g, []), dtype=np.float64).ravel() for g in groups}
    b = {g: np.asarray(bottom.get(g, []), dtype=np.float64).ravel() for g in groups}
    bins = _log_bins([*t.values(), *b.values()])
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # two halves of equal height, each scaled to its own counts (far fewer DFT labels than scored
    # configurations), the lower one growing downwards: the mirror
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    up, down = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0})
    for g, k in zip(groups, range(len(groups))):
        for ax, values, ls, what in ((up, t[g], "-", top_label), (down, b[g], "--", bottom_label)):
            ok = values[np.isfinite(values) & (values > 0)]
            if ok.size:
                counts, _ = np.histogram(np.maximum(ok, bins[0]), bins=bins)
                ax.stairs(counts, bins, color=f"C{k % 10}", lw=1.6, ls=ls, label=f"{g}: {what} (n={ok.size})")
    for ax in (up, down):
        for name, x in (lines or {}).items():
            ax.axvline(x, color="tab:red", lw=1.3, ls=":", label=name if ax is up else None)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5, prune="lower"))
        ax.grid(True, which="major", alpha=0.3)
    down.invert_yaxis()
    up.set_ylabel(f"{top_label}\nconfigurations")
    down.set_ylabel(f"{bottom_label}\nconfigurations")
    down.set_xlabel(f"{top_label} (top) / {bottom_label} (bottom) ({unit})")
    fig.legend(fontsize=7.5, ncols=2, loc="outside lower center")
    if title:
        up.set_title(title)
    return _save(fig, path)


def distributions(
    groups: Mapping[str, ArrayLike],
    path: str | Path,
    threshold: float | None = None,
    xlabel: str = "max γ per candidate",
    title: str | None = None,
) -> Path:
    """Log-x step histograms of one quantity per group (e.g. the max extrapolation grade γ of each
    iteration's fresh candidates) with an optional threshold line; the share above it is in the legend."""
    if not groups:
        raise uq.UQInputError("distributions: nothing to draw")
    values = {g: np.asarray(v, dtype=np.float64).ravel() for g, v in groups.items()}
    bins = _log_bins(list(values.values()))
    fig, (ax,) = _figure(width=6.4, height=4.0)
    for k, (g, v) in enumerate(values.items()):
        ok = v[np.isfinite(v) & (v > 0)]
        if ok.size == 0:
            continue
        above = f", {np.mean(v > threshold):.1%} > {threshold:g}" if threshold is not None and v.size else ""
        ax.hist(np.maximum(ok, bins[0]), bins=bins, histtype="step", lw=1.6, color=f"C{k % 10}", label=f"{g} (n={v.size}{above})")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", lw=1.3, ls=":", label=f"threshold {threshold:g}")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def stacked_bars(
    categories: Sequence[int] | Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    path: str | Path,
    line: tuple[str, Sequence[float]] | None = None,
    ylabel: str = "atoms",
    line_label: str = "cumulative",
    title: str | None = None,
) -> Path:
    """Stacked bars per iteration (e.g. atoms labelled by uMLIP and by DFT) with an optional line on a
    second axis (e.g. the cumulative DFT atoms)."""
    if not stacks:
        raise uq.UQInputError("stacked_bars: no stack to draw")
    x = np.arange(len(categories))
    fig, (ax,) = _figure(width=6.4, height=4.4)
    bottom = np.zeros(len(categories))
    for k, (name, values) in enumerate(stacks.items()):
        v = np.asarray(values, dtype=np.float64)
        if v.shape != bottom.shape:
            raise uq.UQInputError(f"stacked_bars: {name!r} has {v.size} values for {len(categories)} categories")
        ax.bar(x, v, bottom=bottom, color=f"C{k % 10}", label=name, width=0.7)
        bottom += v
    ax.set_xticks(x, [str(c) for c in categories])
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    if line is not None:
        twin = ax.twinx()
        name, values = line
        (h,) = twin.plot(x, np.asarray(values, dtype=np.float64), "o-", color="k", lw=1.5, ms=4)
        twin.set_ylabel(line_label)
        twin.set_ylim(bottom=0)
        handles, labels = [*handles, h], [*labels, name]
    fig.legend(handles, labels, fontsize=8, ncols=3, loc="outside lower center")
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _uc_positions(u_c: np.ndarray) -> tuple[np.ndarray, list[float], list[str]]:
    """x positions for U_c on a log axis with 0 one decade left of the smallest finite U_c and ∞ one
    decade right of the largest (paper Fig. 4b); returns positions in log10 units, ticks and labels."""
    finite = u_c[np.isfinite(u_c) & (u_c > 0)]
    lo = np.log10(finite.min()) if finite.size else 0.0
    hi = np.log10(finite.max()) if finite.size else 0.0
    with np.errstate(divide="ignore"):
        x = np.where(u_c <= 0, lo - 1, np.where(np.isinf(u_c), hi + 1, np.log10(np.where(u_c > 0, u_c, 1.0))))
    ticks = sorted(set(x.tolist()))
    labels = ["0" if t == lo - 1 and (u_c <= 0).any() else "∞" if t == hi + 1 and np.isinf(u_c).any() else f"{10 ** t:g}" for t in ticks]
    return x, ticks, labels


def sweep_plot(rows: Sequence[Mapping[str, float]], path: str | Path, title: str | None = None) -> Path:
    """ACE errors against U_c (paper Fig. 4b): the labels' own error against DFT, the training error, the
    error on all DFT-labelled data and on the test set, energy and force side by side; mean over seeds with
    their spread as error bars; the DFT share by atoms on the top axis."""
    if not rows:
        raise uq.UQInputError("sweep_plot: no sweep rows")
    u_c = np.array([float(r["u_c"]) for r in rows])
    x, ticks, tick_labels = _uc_positions(u_c)
    keys = sorted(set(x.tolist()))
    share = {k: np.nanmean([float(r["dft_share_atoms"]) for r, xi in zip(rows, x) if xi == k]) for k in keys}
    curves = (
        ("label", "labels vs DFT (data error)", "-", "tab:blue"),
        ("train", "ACE training error", "--", "tab:green"),
        ("all", "ACE on all DFT data", "-.", "tab:red"),
        ("test", "ACE on the test set", ":", "tab:purple"),
    )
    fig, axes = _figure(ncols=2, width=4.8, height=4.0)
    for ax, (q, unit) in zip(axes, (("e", "meV/atom"), ("f", "eV/Å"))):
        for key, label, ls, color in curves:
            vals = np.array([np.nan if r.get(f"{key}_rmse_{q}") is None else float(r[f"{key}_rmse_{q}"]) for r in rows])
            mean = np.array([np.nanmean(vals[x == k]) if np.isfinite(vals[x == k]).any() else np.nan for k in keys])
            std = np.array([np.nanstd(vals[x == k]) if np.isfinite(vals[x == k]).sum() > 1 else 0.0 for k in keys])
            if np.isfinite(mean).any():
                ax.errorbar(keys, mean, yerr=std, ls=ls, color=color, marker="o", ms=4, lw=1.5, capsize=3, label=label)
        ax.set_yscale("log")
        ax.set_xticks(ticks, tick_labels)
        ax.set_xlabel("$U_c$ (eV/Å)")
        ax.set_ylabel(f"{'energy' if q == 'e' else 'force'} RMSE ({unit})")
        ax.grid(True, which="major", alpha=0.3)
        top = ax.secondary_xaxis("top")
        top.set_xticks(keys, [f"{100 * share[k]:.0f}%" if np.isfinite(share[k]) else "" for k in keys])
        top.set_xlabel("DFT share (by atoms)")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
