"""`alloop evaluate POTENTIAL DATA`: energy and force errors of an ACE potential on labelled data.

The potential is the paper's fitted W ACE (shared data), evaluated on a few of the W DFT
configurations it was trained on; the slow test evaluates the session's tiny real pacemaker fit (tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from alloop.cli import main
from alloop.train import compute_errors
from alloop.io import read_labelled, write_extxyz

PAPER_POTENTIAL = "uq_umlip_W/ace_potentials/0_ensemble_potential_0.yaml"
_W_PICK = (1, 3, 6, 10, 12, 24)  # 2-atom bulk cells, 54-atom cells, a 12-atom slab


@pytest.fixture(scope="module")
def w_data(shared_data, tmp_path_factory):
    frames = read_labelled(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    return write_extxyz(tmp_path_factory.mktemp("w") / "w_few.extxyz", [frames[i] for i in _W_PICK])


@pytest.fixture(scope="module")
def paper_potential(shared_data):
    return shared_data / PAPER_POTENTIAL


def test_evaluate_prints_rmse_and_writes_parity_plots(paper_potential, w_data, tmp_path, capsys):
    plots = tmp_path / "plots"
    assert main(["evaluate", str(paper_potential), str(w_data), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert f"{len(_W_PICK)} structures" in out
    assert "energy RMSE" in out and "meV/atom" in out and "force  RMSE" in out and "eV/Å" in out
    for name in ("parity_energy.png", "parity_force.png"):
        png = plots / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"plot: {png}" in out


def test_json_output_matches_the_errors_of_the_published_potential(paper_potential, w_data, capsys):
    assert main(["evaluate", str(paper_potential), str(w_data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_structures"] == len(_W_PICK) and metrics["data"] == str(w_data)
    # trained on these DFT total energies (paper: ~7 meV/atom, 0.17 eV/Å on held-out data): ~2 meV/atom, 0.09 eV/Å
    assert metrics["energy_rmse"] < 20 and abs(metrics["energy_offset"]) < 10 and metrics["force_rmse"] < 0.3
    assert metrics["energy_rmse"] >= metrics["energy_rmse_centered"]
    direct, pairs = compute_errors(paper_potential, read_labelled(w_data))
    assert direct["force_rmse"] == pytest.approx(metrics["force_rmse"])
    assert pairs["f_ref"].shape == pairs["f_pred"].shape == (3 * metrics["n_atoms"],)
    np.testing.assert_allclose(np.sqrt(np.mean((pairs["f_pred"] - pairs["f_ref"]) ** 2)), metrics["force_rmse"])


def test_missing_or_corrupt_potential_fails_with_a_clear_message(w_data, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "absent.yaml"), str(w_data)]) != 0
    err = capsys.readouterr().err
    assert "alloop evaluate:" in err and "ACE potential not found" in err and "absent.yaml" in err

    corrupt = tmp_path / "corrupt.yaml"
    corrupt.write_text("elements: [W]\nembeddings: {W: [not, an, ace, potential\n")
    assert main(["evaluate", str(corrupt), str(w_data)]) != 0
    err = capsys.readouterr().err
    assert "corrupt.yaml is not a readable ACE B-basis potential" in err

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["evaluate", str(empty), str(w_data)]) != 0
    assert "not a readable ACE B-basis potential" in capsys.readouterr().err


def test_data_the_potential_cannot_describe_or_read_is_refused(paper_potential, shared_data, tmp_path, capsys):
    mo = shared_data / "mlearn_Mo" / "test.json"
    assert main(["evaluate", str(paper_potential), str(mo)]) != 0
    assert "contains ['Mo']" in capsys.readouterr().err

    assert main(["evaluate", str(paper_potential), str(tmp_path / "absent.extxyz")]) != 0
    assert "structure file not found" in capsys.readouterr().err


def test_command_line_exit_code(w_data, tmp_path):
    """The same through the installed entry point `python -m alloop`."""
    proc = subprocess.run(
        [sys.executable, "-m", "alloop", "evaluate", str(tmp_path / "absent.yaml"), str(w_data)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_evaluate_a_freshly_fitted_potential(tiny_ace_fit, w_data, capsys):
    """A tiny ACE (8 functions, 15 BFGS steps) fitted with the real pacemaker on 2-12-atom W cells (the
    session's `tiny_ace_fit`, tests/conftest.py), evaluated on the W configurations above."""
    fit, _, _ = tiny_ace_fit
    assert main(["evaluate", str(fit.potential_yaml), str(w_data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert np.isfinite(metrics["energy_rmse"]) and 0 < metrics["force_rmse"] < 5
