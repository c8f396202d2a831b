"""Report figures: each call writes a readable PNG and returns its path."""

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


@pytest.fixture(scope="module")
def synthetic():
    """U spread over decades, errors that track U, and per-configuration squared force errors."""
    rng = np.random.default_rng(1)
    u = 10 ** rng.uniform(-3, 1.5, 400)
    err = u * 10 ** rng.normal(0, 0.3, 400)
    n_atoms = rng.integers(2, 60, 400)
    sq = (0.6 * err) ** 2 * 3 * n_atoms
    return u, err, sq, 3 * n_atoms


def test_parity_hexbin(tmp_path, synthetic):
    u, err, _, _ = synthetic
    out = tmp_path / "figs" / "u_vs_error.png"  # parent folders are created
    assert_png(plots.parity_hexbin(u, err, out, title="synthetic"), out)


def test_parity_hexbin_on_the_w_set(tmp_path, w_npz):
    from alloop import paper

    names = w_npz["model_names"]
    forces = np.stack([w_npz[paper.w_npz_force_key(names, i)] for i in paper.PAPER11_W_INDICES])
    u = uq.uncertainty(forces, w_npz["offsets"], paper.PAPER11_RMSE)
    err = uq.force_error(w_npz["forces_dft"], forces, w_npz["offsets"])
    out = tmp_path / "w.png"
    assert_png(plots.parity_hexbin(u, err, out, title="W set, 11-member U"), out)


def test_parity_hexbin_keeps_zero_out_of_log_axes(tmp_path, synthetic):
    u, err, _, _ = synthetic
    u = u.copy()
    u[:3] = 0.0  # e.g. perfect bulk cells where every member predicts zero force
    out = tmp_path / "zeros.png"
    assert_png(plots.parity_hexbin(u, err, out), out)


def test_coverage_plot(tmp_path, synthetic):
    u, _, sq, counts = synthetic
    out = tmp_path / "coverage.png"
    assert_png(plots.coverage_plot(u, sq, counts, out, target=0.1, label="synthetic"), out)


def test_parity_plot_forces_and_energies(tmp_path):
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(30_000, 3))  # above the scatter limit: drawn as a hexbin
    out = tmp_path / "forces.png"
    assert_png(plots.parity_plot(ref, ref + rng.normal(0, 0.05, ref.shape), out), out)
    e_ref = rng.uniform(-13, -11, 200)
    out = tmp_path / "energies.png"
    assert_png(plots.parity_plot(e_ref, e_ref + 0.01, out, quantity="energy", title="ACE vs DFT"), out)
    with pytest.raises(uq.UQInputError, match="quantity"):
        plots.parity_plot(e_ref, e_ref, out, quantity="stress")


def test_trend_plot(tmp_path):
    out = tmp_path / "trend.png"
    series = {"γ > 5": [0.4, 0.2, 0.1, 0.05], "DFT share": [0.1, 0.08, np.nan, 0.04]}
    assert_png(plots.trend_plot([0, 1, 2, 3], series, out, title="campaign"), out)
    with pytest.raises(uq.UQInputError, match="3 values for 4 iterations"):
        plots.trend_plot([0, 1, 2, 3], {"short": [1, 2, 3]}, out)


def test_mirrored_histograms_of_u_and_force_error(tmp_path, synthetic):
    u, err, _, _ = synthetic
    out = tmp_path / "mirror.png"
    top = {"iteration 0": u[:200], "iteration 1": np.append(u[200:], [0.0, np.nan])}  # ≤ 0 and NaN stay off the log axis
    bottom = {"iteration 0": err[:50], "iteration 1": err[200:260]}
    assert_png(plots.mirrored_histograms(top, bottom, out, lines={"U_c = 1 eV/Å": 1.0}), out)
    with pytest.raises(uq.UQInputError, match="nothing to draw"):
        plots.mirrored_histograms({}, {}, out)


def test_distributions_with_a_threshold(tmp_path):
    rng = np.random.default_rng(3)
    out = tmp_path / "gamma.png"
    groups = {f"iteration {i}": np.exp(rng.normal(0.4 - 0.3 * i, 0.5, 300)) for i in range(3)}
    assert_png(plots.distributions(groups, out, threshold=1.1), out)


def test_stacked_bars_with_a_cumulative_line(tmp_path):
    out = tmp_path / "bars.png"
    stacks = {"uMLIP atoms": [900, 1000, 1100], "DFT atoms": [300, 120, 40]}
    assert_png(plots.stacked_bars([0, 1, 2], stacks, out, line=("cumulative DFT atoms", [300, 420, 460])), out)
    with pytest.raises(uq.UQInputError, match="2 values for 3 categories"):
        plots.stacked_bars([0, 1, 2], {"short": [1, 2]}, out)


def test_sweep_plot_places_zero_and_infinity_at_the_ends(tmp_path):
    rows = [{"u_c": u_c, "seed": s, "dft_share_atoms": share, "label_rmse_e": 1 + 50 * (1 - share) ** 4, "label_rmse_f": 0.01 + (1 - share),
             "train_rmse_e": 5.0 + s, "train_rmse_f": 0.15, "all_rmse_e": 6.0, "all_rmse_f": 0.17, "test_rmse_e": 6.5, "test_rmse_f": None}
            for u_c, share in ((0.0, 1.0), (0.5, 0.39), (1.0, 0.043), (float("inf"), 0.0)) for s in (0, 1)]
    out = tmp_path / "sweep.png"
    assert_png(plots.sweep_plot(rows, out), out)
    x, ticks, labels = plots._uc_positions(np.array([0.0, 0.5, 1.0, np.inf]))
    assert labels == ["0", "0.5", "1", "∞"] and list(x) == sorted(x) and ticks == sorted(set(x))
