"""Report figures: each call writes a readable PNG and returns its path, and the figure it draws holds the
data, axes, scales and limits its docstring promises (the matplotlib Figure is captured at `_save`, the one
place every plot function writes its PNG)."""

from __future__ import annotations

import numpy as np
import pytest

from alloop import uq
from alloop.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, expected):
    assert path == expected
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions save, in order (the PNG is still written as usual)."""
    figures = []
    save = plots._save

    def capture(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return figures


@pytest.fixture(scope="module")
def synthetic():
    """U spread over decades, errors that track U, and per-configuration squared force errors."""
    rng = np.random.default_rng(1)
    u = 10 ** rng.uniform(-3, 1.5, 400)
    err = u * 10 ** rng.normal(0, 0.3, 400)
    n_atoms = rng.integers(2, 60, 400)
    sq = (0.6 * err) ** 2 * 3 * n_atoms
    return u, err, sq, 3 * n_atoms


def _hexbin(ax):
    (hb,) = [c for c in ax.collections if c.get_array() is not None and len(c.get_offsets()) > 1]
    return hb


def _assert_log_hexbin(ax, x, y):
    """Both axes log, every positive pair counted once, every drawn hexagon and guide inside the positive
    limits: nothing ≤ 0 sits on the log axes."""
    assert ax.get_xscale() == ax.get_yscale() == "log"
    hb = _hexbin(ax)
    assert hb.get_array().sum() == np.count_nonzero((x > 0) & (y > 0))
    centres = 10 ** np.asarray(hb.get_offsets())  # hexbin keeps its centres in log10 units on log axes
    (xlo, xhi), (ylo, yhi) = ax.get_xlim(), ax.get_ylim()
    assert 0 < xlo and 0 < ylo
    assert (centres[:, 0] >= xlo).all() and (centres[:, 0] <= xhi * 1.0001).all()
    assert (centres[:, 1] >= ylo).all() and (centres[:, 1] <= yhi * 1.0001).all()
    # the guides y = x and y = 0.1x span the limits, whole decades around the data
    pos = (x > 0) & (y > 0)
    lo = 10 ** np.floor(np.log10(min(x[pos].min(), y[pos].min())))
    hi = 10 ** np.ceil(np.log10(max(x[pos].max(), y[pos].max())))
    assert (xlo, xhi) == pytest.approx((lo, hi)) and (ylo, yhi) == pytest.approx((lo, hi))
    guides = {line.get_label(): line.get_xydata() for line in ax.lines}
    np.testing.assert_allclose(guides["y = x"], [[lo, lo], [hi, hi]])
    np.testing.assert_allclose(guides["y = 0.1x"], [[lo, 0.1 * lo], [hi, 0.1 * hi]])
    assert all((xy > 0).all() for xy in guides.values())
    return hb


def test_parity_hexbin(tmp_path, synthetic, drawn):
    u, err, _, _ = synthetic
    out = tmp_path / "figs" / "u_vs_error.png"  # parent folders are created
    assert_png(plots.parity_hexbin(u, err, out, title="synthetic"), out)
    (ax, _colorbar) = drawn[0].axes
    _assert_log_hexbin(ax, u, err)
    assert ax.get_xlabel() == "uncertainty U (eV/Å)" and ax.get_ylabel() == "force error ΔF (eV/Å)"
    assert ax.get_title() == "synthetic"
    assert ax.get_legend().get_title().get_text() == f"Spearman ρ = {uq.spearman(u, err):.3f}\nn = 400"


def test_parity_hexbin_on_the_w_set(tmp_path, w_npz, drawn):
    from alloop import paper

    names = w_npz["model_names"]
    forces = np.stack([w_npz[paper.w_npz_force_key(names, i)] for i in paper.PAPER11_W_INDICES])
    u = uq.uncertainty(forces, w_npz["offsets"], paper.PAPER11_RMSE)
    err = uq.force_error(w_npz["forces_dft"], forces, w_npz["offsets"])
    out = tmp_path / "w.png"
    assert_png(plots.parity_hexbin(u, err, out, title="W set, 11-member U"), out)
    ax = drawn[0].axes[0]
    _assert_log_hexbin(ax, u, err)
    legend = ax.get_legend().get_title().get_text()
    assert legend.startswith(f"Spearman ρ = {uq.spearman(u, err):.3f}\nn = {np.count_nonzero((u > 0) & (err > 0))}")


def test_parity_hexbin_keeps_zero_out_of_log_axes(tmp_path, synthetic, drawn):
    u, err, _, _ = synthetic
    u = u.copy()
    u[:3] = 0.0  # e.g. perfect bulk cells where every member predicts zero force
    out = tmp_path / "zeros.png"
    assert_png(plots.parity_hexbin(u, err, out), out)
    ax = drawn[0].axes[0]
    hb = _assert_log_hexbin(ax, u, err)
    assert hb.get_array().sum() == 397  # the three zeros are not drawn ...
    # ... but still count in ρ, and the legend says they are left out
    assert ax.get_legend().get_title().get_text() == (
        f"Spearman ρ = {uq.spearman(u, err):.3f}\nn = 397, 3 not shown (≤ 0 or NaN)")


def test_coverage_plot(tmp_path, synthetic, drawn):
    u, _, sq, counts = synthetic
    out = tmp_path / "coverage.png"
    assert_png(plots.coverage_plot(u, sq, counts, out, target=0.1, label="synthetic"), out)
    left, right = drawn[0].axes
    coverage, rmse = uq.coverage_curve(u, sq, counts)
    (curve, *_) = [line for line in left.lines if line.get_label() == "synthetic"]
    np.testing.assert_allclose(curve.get_xdata(), 100 * coverage)
    np.testing.assert_allclose(curve.get_ydata(), rmse)
    assert left.get_xlim() == (0, 100) and left.get_xscale() == "linear" and left.get_yscale() == "log"
    assert right.get_xscale() == right.get_yscale() == "log"
    assert left.get_xlabel() == "coverage (% of configurations retained)" and right.get_xlabel() == "$U_c$ (eV/Å)"
    # the target line on both panels, and the largest U_c meeting it, with its coverage on the left
    uc_star = uq.uc_for_target_rmse(u, sq, counts, 0.1)
    assert np.isfinite(uc_star)
    cov_star = uq.rmse_vs_uc(u, sq, counts, [uc_star])[0][0]
    for ax in (left, right):
        assert ax.get_ylabel() == "force RMSE (eV/Å)"
        (target,) = [line for line in ax.lines if line.get_label() == "target 0.1 eV/Å"]
        assert list(target.get_ydata()) == [0.1, 0.1]
        assert ax.get_ylim()[0] <= 0.05  # the green band below the target is in view
    (star,) = [line for line in right.lines if line.get_label().startswith("largest $U_c$")]
    assert list(star.get_xdata()) == pytest.approx([uc_star, uc_star])
    assert f"({100 * cov_star:.0f}% retained)" in star.get_label()
    assert any(list(line.get_xdata()) == pytest.approx([100 * cov_star] * 2) for line in left.lines)


def test_parity_plot_forces_and_energies(tmp_path, drawn):
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(30_000, 3))  # above the scatter limit: drawn as a hexbin
    pred = ref + rng.normal(0, 0.05, ref.shape)
    out = tmp_path / "forces.png"
    assert_png(plots.parity_plot(ref, pred, out), out)
    ax = drawn[0].axes[0]
    assert _hexbin(ax).get_array().sum() == ref.size  # every force component, binned
    assert ax.get_xlabel() == "reference force component (eV/Å)" and ax.get_ylabel() == "predicted force component (eV/Å)"
    rmse = np.sqrt(np.mean((pred - ref) ** 2))
    assert ax.get_legend().get_title().get_text().startswith(f"RMSE = {rmse:.4g} eV/Å\n")
    lo, hi = ax.get_xlim()
    assert ax.get_ylim() == (lo, hi) and lo < min(ref.min(), pred.min()) and hi > max(ref.max(), pred.max())

    e_ref = rng.uniform(-13, -11, 200)
    out = tmp_path / "energies.png"
    assert_png(plots.parity_plot(e_ref, e_ref + 0.01, out, quantity="energy", title="ACE vs DFT"), out)
    ax = drawn[1].axes[0]
    (points,) = ax.collections  # below the limit: one point per energy
    np.testing.assert_allclose(points.get_offsets(), np.column_stack([e_ref, e_ref + 0.01]))
    (diagonal,) = ax.lines
    assert diagonal.get_label() == "y = x" and list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == list(ax.get_xlim())
    assert ax.get_xlabel() == "reference energy (eV/atom)" and ax.get_title() == "ACE vs DFT"
    assert ax.get_legend().get_title().get_text() == "RMSE = 0.01 eV/atom\nMAE = 0.01 eV/atom\nn = 200"
    with pytest.raises(uq.UQInputError, match="quantity"):
        plots.parity_plot(e_ref, e_ref, out, quantity="stress")


def test_trend_plot(tmp_path, drawn):
    out = tmp_path / "trend.png"
    series = {"γ > 5": [0.4, 0.2, 0.1, 0.05], "DFT share": [0.1, 0.08, np.nan, 0.04]}
    assert_png(plots.trend_plot([0, 1, 2, 3], series, out, title="campaign"), out)
    ax = drawn[0].axes[0]
    assert [line.get_label() for line in ax.lines] == list(series)
    for line, values in zip(ax.lines, series.values()):
        assert list(line.get_xdata()) == [0, 1, 2, 3]
        np.testing.assert_array_equal(line.get_ydata(), values)  # NaN kept: a gap, not a zero
    assert list(ax.get_xticks()) == [0, 1, 2, 3] and ax.get_xlim() == (-0.5, 3.5)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("iteration", "share of configurations", "campaign")
    with pytest.raises(uq.UQInputError, match="3 values for 4 iterations"):
        plots.trend_plot([0, 1, 2, 3], {"short": [1, 2, 3]}, out)


def test_mirrored_histograms_of_u_and_force_error(tmp_path, synthetic, drawn):
    u, err, _, _ = synthetic
    out = tmp_path / "mirror.png"
    top = {"iteration 0": u[:200], "iteration 1": np.append(u[200:], [0.0, np.nan])}  # ≤ 0 and NaN stay off the log axis
    bottom = {"iteration 0": err[:50], "iteration 1": err[200:260]}
    assert_png(plots.mirrored_histograms(top, bottom, out, lines={"U_c = 1 eV/Å": 1.0}), out)
    up, down = drawn[0].axes
    assert up.get_xscale() == down.get_xscale() == "log"
    assert down.yaxis_inverted() and not up.yaxis_inverted()  # the mirror: errors grow downwards
    # every positive value is in one bin of the shared log bins (the 0 and the NaN in none), and no bin edge is ≤ 0
    want = {("up", "iteration 0"): 200, ("up", "iteration 1"): 200, ("down", "iteration 0"): 50, ("down", "iteration 1"): 60}
    got = {}
    for name, ax in (("up", up), ("down", down)):
        for stairs in ax.patches:
            data = stairs.get_data()
            assert (data.edges > 0).all()
            got[name, stairs.get_label().split(":")[0]] = int(data.values.sum())
    assert got == want
    assert [p.get_label() for p in up.patches] == ["iteration 0: uncertainty U (n=200)", "iteration 1: uncertainty U (n=200)"]
    for ax in (up, down):
        (u_c,) = ax.lines
        assert list(u_c.get_xdata()) == [1.0, 1.0]
    with pytest.raises(uq.UQInputError, match="nothing to draw"):
        plots.mirrored_histograms({}, {}, out)


def test_distributions_with_a_threshold(tmp_path, drawn):
    rng = np.random.default_rng(3)
    out = tmp_path / "gamma.png"
    groups = {f"iteration {i}": np.exp(rng.normal(0.4 - 0.3 * i, 0.5, 300)) for i in range(3)}
    assert_png(plots.distributions(groups, out, threshold=1.1), out)
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "max γ per candidate"
    bins = plots._log_bins(list(groups.values()))
    assert [p.get_label() for p in ax.patches] == [f"{g} (n=300, {np.mean(v > 1.1):.1%} > 1.1)" for g, v in groups.items()]
    for step, values in zip(ax.patches, groups.values()):
        heights = step.get_xy()[1:2 * (len(bins) - 1):2, 1]  # the step outline: (edge, 0), (edge, count), ...
        np.testing.assert_array_equal(heights, np.histogram(values, bins)[0])
    (threshold,) = ax.lines
    assert list(threshold.get_xdata()) == [1.1, 1.1] and threshold.get_label() == "threshold 1.1"


def test_stacked_bars_with_a_cumulative_line(tmp_path, drawn):
    out = tmp_path / "bars.png"
    stacks = {"uMLIP atoms": [900, 1000, 1100], "DFT atoms": [300, 120, 40]}
    assert_png(plots.stacked_bars([0, 1, 2], stacks, out, line=("cumulative DFT atoms", [300, 420, 460])), out)
    fig = drawn[0]
    ax, twin = fig.axes
    # the DFT bars sit on the uMLIP bars
    assert [(p.get_y(), p.get_height()) for p in ax.patches] == [(0, 900), (0, 1000), (0, 1100), (900, 300), (1000, 120), (1100, 40)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"] and ax.get_ylabel() == "atoms"
    (line,) = twin.lines
    assert list(line.get_ydata()) == [300, 420, 460] and twin.get_ylim()[0] == 0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["uMLIP atoms", "DFT atoms", "cumulative DFT atoms"]
    with pytest.raises(uq.UQInputError, match="2 values for 3 categories"):
        plots.stacked_bars([0, 1, 2], {"short": [1, 2]}, out)


def test_sweep_plot_places_zero_and_infinity_at_the_ends(tmp_path, drawn):
    rows = [{"u_c": u_c, "seed": s, "dft_share_atoms": share, "label_rmse_e": 1 + 50 * (1 - share) ** 4, "label_rmse_f": 0.01 + (1 - share),
             "train_rmse_e": 5.0 + s, "train_rmse_f": 0.15, "all_rmse_e": 6.0, "all_rmse_f": 0.17, "test_rmse_e": 6.5, "test_rmse_f": None}
            for u_c, share in ((0.0, 1.0), (0.5, 0.39), (1.0, 0.043), (float("inf"), 0.0)) for s in (0, 1)]
    out = tmp_path / "sweep.png"
    assert_png(plots.sweep_plot(rows, out), out)
    x, ticks, labels = plots._uc_positions(np.array([0.0, 0.5, 1.0, np.inf]))
    assert labels == ["0", "0.5", "1", "∞"] and list(x) == sorted(x) and ticks == sorted(set(x))
    energy, force = drawn[0].axes[:2]
    # 0 one decade left of 0.5, ∞ one decade right of 1
    assert list(x) == pytest.approx([np.log10(0.5) - 1, np.log10(0.5), 0.0, 1.0])
    for ax in (energy, force):
        assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == labels
        (top,) = ax.child_axes  # the DFT share by atoms over each U_c
        assert [t.get_text() for t in top.get_xticklabels()] == ["100%", "39%", "4%", "0%"]
    curves = {c.get_label(): c for c in energy.containers}
    assert list(curves) == ["labels vs DFT (data error)", "ACE training error", "ACE on all DFT data", "ACE on the test set"]
    # the mean over the seeds, their spread as the error bar
    label_line = curves["labels vs DFT (data error)"].lines[0]
    np.testing.assert_allclose(label_line.get_xydata(), np.column_stack([x, [1 + 50 * (1 - s) ** 4 for s in (1.0, 0.39, 0.043, 0.0)]]))
    train = curves["ACE training error"]
    np.testing.assert_allclose(train.lines[0].get_ydata(), [5.5] * 4)
    (bars,) = train.lines[2]
    segments = bars.get_segments()
    assert [seg[:, 1].tolist() for seg in segments] == [[5.0, 6.0]] * 4  # ± the std over seeds 0 and 1
    # no test force error in any row: that curve is left out of the force panel
    assert [c.get_label() for c in force.containers] == ["labels vs DFT (data error)", "ACE training error", "ACE on all DFT data"]
