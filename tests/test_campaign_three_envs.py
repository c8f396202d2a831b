"""A campaign whose ensemble mixes members from three environments, run end to end through the CLI,
and `alloop score` with the same ensemble on the paper's W set.

SevenNet (7net-0, weights shipped) runs in alloop's environment; a MACE and an Orb model with random
weights, built by their libraries' own constructors in their own environments
(tests/fixtures/random_checkpoints.py), run there, each member in a worker of its environment's
interpreter (`python:`). The U of random-weight models means nothing (tens of eV/Å on a dimer), so
u_c is set above any of it: every configuration is labelled by 7net-0 and the campaign needs no DFT.
"""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from alloop.io import read_labelled, write_extxyz
from tests.campaigns import alloop, run_to_end
from tests.fixtures.random_checkpoints import build_in
from tests.test_ensemble_families_live import family_python

pytestmark = pytest.mark.slow

MEMBERS = ("7net-0", "mace-random", "orb-random")

CAMPAIGN = """\
name: three-envs
elements: [W]
seed: 5
workdir: run
max_iterations: 1
ensemble: mixed.yaml
uncertainty: {u_c: 1.0e+6, dft_kinds: []}  # every label from the uMLIP: no DFT in this test
labels:
  energy_member: 7net-0
  force_member: 7net-0
  energy_reference: {method: none}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {strained_bulk: 2, rattled_bulk: 2, vacancy: 1, interstitial: 0, surface: 0, dimer: 1, compressed: 0}
selection: {budget: 10}
train: {n_functions: 8, maxiter: 15, test_fraction: 0.0, final_maxiter: 0}
convergence: {target_share: 0.0, min_sample: 4}
cluster: {n_workers: 1}
properties: {teacher: false}
"""


@pytest.fixture(scope="module")
def mixed_ensemble(tmp_path_factory) -> Path:
    """An ensemble YAML: 7net-0 here, MACE and Orb random-weight checkpoints in their environments."""
    folder = tmp_path_factory.mktemp("three-envs")
    members = [{"name": "7net-0", "kind": "sevenn", "model": "7net-0", "device": "cpu"}]
    families = ("mace", "orb")
    pythons = [family_python(f) for f in families]
    with ThreadPoolExecutor(len(families)) as pool:  # each builds in its own interpreter
        builds = list(pool.map(lambda f, py: build_in(py, f, folder / f), families, pythons))
    for family, python, built in zip(families, pythons, builds):
        member = {"name": f"{family}-random", "kind": family, "checkpoint": built["checkpoint"],
                  "python": str(python), "device": "cpu"}
        if built["model"] is not None:
            member["model"] = built["model"]
        members.append(member)
    path = folder / "mixed.yaml"
    path.write_text(yaml.safe_dump({"name": "mixed", "energy_member": "7net-0", "force_member": "7net-0",
                                    "members": members}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def campaign(mixed_ensemble) -> tuple[Path, str]:
    path = mixed_ensemble.parent / "campaign.yaml"
    path.write_text(CAMPAIGN)
    return path, run_to_end(path, timeout=900)


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_campaign_with_members_from_three_environments_runs_to_the_end(campaign):
    path, out = campaign
    assert "trained potential:" in out, out
    db = path.parent / "run" / "alloop.db"
    configs = {cid for (cid,) in _rows(db, "SELECT id FROM configuration")}
    assert len(configs) >= 4
    predictions = _rows(db, "SELECT configuration_id, member, energy, error FROM prediction")
    for member in MEMBERS:
        got = {cid for cid, m, energy, error in predictions if m == member and error is None and np.isfinite(energy)}
        assert got == configs, f"{member} has no prediction for {sorted(configs - got)}"
    uncertainty = _rows(db, "SELECT configuration_id, u1, members FROM uncertainty")
    assert {cid for cid, *_ in uncertainty} == configs
    assert all(sorted(json.loads(m)) == sorted(MEMBERS) and np.isfinite(u) for _, u, m in uncertainty)
    labels = _rows(db, "SELECT source, backend FROM label")
    assert len(labels) == len(configs) and set(labels) == {("umlip", "7net-0|7net-0")}  # energy|force member
    (potential,) = _rows(db, "SELECT path FROM potential")
    assert Path(potential[0]).is_file()


def _w_subset(n_atoms: np.ndarray) -> list[int]:
    """20 small configurations of the paper's W set (~200 atoms): one general defect cell of each size
    from 6 to 26 atoms, 8 bulk 2-atom cells, 3 dimers (1026-1038) and the smallest short-range cell (1039-)."""
    general = np.arange(1026)
    defects = [int(general[n_atoms[:1026] == k][0]) for k in (6, 8, 10, 12, 18, 20, 22, 26)]
    bulk = general[n_atoms[:1026] == 2][::15][:8].tolist()
    return defects + bulk + [1026, 1032, 1038, 1039 + int(np.argmin(n_atoms[1039:]))]


def test_score_with_the_same_ensemble_on_the_paper_w_set(mixed_ensemble, shared_data, w_npz, tmp_path):
    frames = read_labelled(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    picked = [frames[i] for i in _w_subset(w_npz["n_atoms"])]
    src = write_extxyz(tmp_path / "w20.extxyz", picked)
    out = tmp_path / "scored.extxyz"
    proc = alloop("score", str(src), "-e", str(mixed_ensemble), "-o", str(out))
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log
    print(log)  # per-member times, shown with pytest -rP
    assert "with ensemble 'mixed' (3 members)" in log
    for member in MEMBERS:
        assert f"{member}: 20 structures in" in log, log
    scored = read(out, ":")
    assert len(scored) == 20
    assert all(np.isfinite(a.info["U"]) and np.isfinite(a.info["dF"]) for a in scored)
