"""`alloop sweep` on a small replayed W campaign: per U_c the DFT share and ACE errors, every fit recorded
in the database so a second sweep refits nothing, and the table, JSON, CSV and figure a user asks for."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest

from tests.campaigns import run_to_end
from tests.test_campaign_changes import write

pytestmark = pytest.mark.slow


def sweep(path, *flags):
    return subprocess.run([sys.executable, "-m", "alloop", "sweep", str(path), "--u-c", "0", "1", "inf", "--maxiter", "2",
                           "--test-fraction", "0.25", *flags], capture_output=True, text=True, timeout=1200)


def test_sweep_reports_each_threshold_and_resumes_without_refitting(tmp_path, shared_data):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    path = write(tmp_path, npz)
    run_to_end(path)
    first = sweep(path, "--json", "--csv", str(tmp_path / "sweep.csv"), "--plot", str(tmp_path / "sweep.png"))
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    rows = {r["u_c"]: r for r in result["mean"]}
    assert set(rows) == {0.0, 1.0, math.inf}
    assert rows[0.0]["dft_share_atoms"] == 1.0 and rows[0.0]["label_rmse_e"] == 0.0 and rows[0.0]["label_rmse_f"] == 0.0
    assert rows[math.inf]["dft_share_atoms"] == 0.0 and rows[math.inf]["label_rmse_f"] > 0
    assert 0 < rows[1.0]["dft_share_atoms"] < 1  # the dimers go to DFT, the bulk-like cells to the uMLIP
    assert all(r["n_test"] == 2 and r["n_train"] == 6 and r["test_rmse_e"] is not None for r in result["fits"])
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    with open(tmp_path / "sweep.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 3

    again = sweep(path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("recorded, not refitted") == 3 and "fitting on" not in again.stderr
    assert "U_c" in again.stdout and "inf" in again.stdout


def test_sweep_needs_dft_for_every_configuration(tmp_path, shared_data):
    from alloop.io import read_labelled, write_extxyz

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    frames = read_labelled(npz)
    partial = write_extxyz(tmp_path / "dft.extxyz", frames[:10] + frames[1026:1029][1:])  # one dimer missing
    path = write(tmp_path / "c", npz, dft=partial)
    proc = subprocess.run([sys.executable, "-m", "alloop", "run", str(path)], capture_output=True, text=True, timeout=900)
    # the missing dimer fails its replayed DFT (max_failed_fraction 0), so the run fails with it quarantined
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "iteration 0: 1 of 3 DFT calculations failed" in proc.stdout, proc.stdout
    out = sweep(path)
    assert out.returncode == 2, out.stderr
    # the sweep looks the configuration up in the campaign's replay set (a replay backend) and does not find it
    assert out.stderr.strip().splitlines()[-1] == "alloop sweep: 1 configuration(s) are not in the replay set (e.g. ids [6])", out.stderr
