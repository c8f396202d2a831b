"""Running campaigns from tests the way users do (`python -m alloop ...` in a subprocess) and reading their
databases from outside, as `alloop status` would."""

from __future__ import annotations

import difflib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


# Three of the paper's members replayed from the W set (`{npz}`: its path) plus the label-only eqV2-31M-OAM,
# as a campaign-file fragment for str.format (literal braces doubled).
REPLAYED_PAPER_MEMBERS = """\
ensemble:
  name: paper-three-replayed
  energy_member: eqV2-31M-OAM
  force_member: eqV2-31M-OMat
  members:
    - {{name: eSEN-30M-OMat, kind: replay, checkpoint: {npz}, model: 13-esen-omat, rmse: 0.23719}}
    - {{name: eqV2-31M-OMat, kind: replay, checkpoint: {npz}, model: 10-eqV2-31-omat, rmse: 0.243286}}
    - {{name: SevenNet, kind: replay, checkpoint: {npz}, model: 7-7net, rmse: 0.27751}}
    - {{name: eqV2-31M-OAM, kind: replay, checkpoint: {npz}, model: 2-eqV2-31, in_u: false}}
"""

# The paper's routing on the W set with replayed DFT (`{dft}`: the replay data file): U_c = 0.3 eV/Å, labels on
# their own scale (no energy reference) and no generated motifs, so every candidate comes from the `sources:`
# the campaign goes on to list under `generate:`. A campaign-file fragment for str.format.
REPLAYED_W_ROUTING = """\
uncertainty: {{u_c: 0.3}}
labels:
  energy_reference: {{method: none}}
  dft: {{backend: replay, replay: {{sources: [{dft}]}}}}
generate:
  counts: {{strained_bulk: 0, rattled_bulk: 0, vacancy: 0, interstitial: 0, surface: 0, dimer: 0, compressed: 0}}
"""


def generated_and_scored(campaign_file: Path) -> tuple[object, object, int]:
    """(campaign, open Store, campaign id) after the first iteration's generate and score stages, run by the
    controller itself on an in-process Dask cluster: for tests of what comes after."""
    from distributed import Client

    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    campaign = load_campaign(campaign_file)
    store = Store.open(campaign.database_path)
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        ctl = Controller(campaign, store, client)
        store.start_iteration(ctl.cid, 0)
        ctl.generate(0)
        ctl.score(0)
    return campaign, store, ctl.cid


def alloop(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "alloop", *args], env=env, stderr=subprocess.STDOUT, text=True, **kw)


def run_to_end(campaign: Path, timeout: float = 1200, env: dict[str, str] | None = None) -> str:
    proc = alloop("run", str(campaign), env=env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def snapshot(db: Path) -> dict:
    """What the campaign learned, independent of ids and timestamps."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        configs = con.execute(
            "SELECT hash, iteration_idx, status, route FROM configuration ORDER BY hash"
        ).fetchall()
        labels = con.execute(
            "SELECT c.hash, l.source, l.backend, l.energy FROM label l JOIN configuration c ON c.id = l.configuration_id ORDER BY c.hash"
        ).fetchall()
        jobs = con.execute(
            "SELECT c.hash, j.status FROM dft_job j JOIN configuration c ON c.id = j.configuration_id ORDER BY c.hash"
        ).fetchall()
        potentials = con.execute("SELECT iteration_idx, n_train FROM potential ORDER BY iteration_idx").fetchall()
        status = con.execute("SELECT status FROM campaign").fetchone()[0]
    finally:
        con.close()
    return {"configs": configs, "labels": labels, "jobs": jobs, "potentials": potentials, "status": status}


def assert_same_campaign(db: Path, reference_db: Path) -> None:
    """The campaign in `db` learned what the one in `reference_db` did (`snapshot`s equal, label energies
    within 1e-4 eV), both ended at max_iterations: what an interrupted or relocated run must show."""
    got, want = snapshot(db), snapshot(reference_db)
    assert got["status"] == want["status"] == "max_iterations"
    assert got["configs"] == want["configs"]
    assert got["jobs"] == want["jobs"]  # same DFT jobs, each once (dft_job is unique per configuration)
    assert [(h, src, st) for h, src, st, _ in got["labels"]] == [(h, src, st) for h, src, st, _ in want["labels"]]
    assert [e for *_, e in got["labels"]] == pytest.approx([e for *_, e in want["labels"]], abs=1e-4)
    assert [i for i, _ in got["potentials"]] == [i for i, _ in want["potentials"]]


def snapshot_diff(got: dict, want: dict) -> str:
    """A unified diff, table by table, of two `snapshot`s: `-` the expected run, `+` this one."""

    def rows(snap: dict, key: str) -> list[str]:
        value = snap[key]
        if key == "labels":  # energies to the tolerance the tests compare them with
            return [f"{h} {src} {backend} {energy:.4f}" for h, src, backend, energy in value]
        return [" ".join(map(str, row)) for row in value] if isinstance(value, list) else [str(value)]

    parts = []
    for key in ("status", "configs", "labels", "jobs", "potentials"):
        a, b = rows(want, key), rows(got, key)
        if a == b:
            parts.append(f"{key}: identical ({len(a)} rows)")
        else:
            diff = difflib.unified_diff(a, b, "expected", "this run", n=1, lineterm="")
            parts.append(f"{key}: {len(a)} rows expected, {len(b)} here\n" + "\n".join(diff))
    return "\n".join(parts)


def finished_files(workdir: Path) -> dict[str, float]:
    """Outputs whose existence means 'finished', with their mtimes: DFT results, and completed fits
    (fit_done.json and the potential it vouches for; an unfinished fit's files may be redone)."""
    files = list(workdir.glob("dft/*/result.json"))
    for done in workdir.glob("iter_*/fit/fit_done.json"):
        files += [done, *done.parent.glob("member_*/output_potential.yaml")]
    return {str(p): p.stat().st_mtime_ns for p in files}


def stage(db: Path) -> tuple[int, str, int, int] | None:
    """(iteration, stage, predictions, finished DFT jobs) as another process sees it."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT idx, stage FROM iteration ORDER BY idx DESC LIMIT 1").fetchone()
            n_pred = con.execute("SELECT count(*) FROM prediction").fetchone()[0]
            n_done = con.execute("SELECT count(*) FROM dft_job WHERE status = 'done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return None if row is None else (row[0], row[1], n_pred, n_done)


# ------------------------------------------------------------------- the tiny W campaign on real parts
# Small enough for CI (2 cores): cells of at most 8 atoms, coarse GPAW, an 8-function ACE. U_c = 0.3 eV/Å sends
# one or two 8-atom cells to DFT per iteration besides the calibration cells and the dimer (each ~10 s of GPAW).
# budget ≥ pool size, so MaxVol selection does not depend on the fit (the MD frames do); target_share 0 never
# converges, so every run goes through exactly max_iterations.
TINY = """\
name: tiny-w
elements: [W]
seed: 3
workdir: run
max_iterations: {max_iterations}
ensemble: offline-fast
uncertainty: {{u_c: {u_c}}}
labels:
  energy_member: 7net-0
  force_member: 7net-0
  dft:
    backend: gpaw
    gpaw: {{ecut: 200, kpts: [2, 1, 1], maxiter: 120, energy_tol: 1.0e-4}}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {{strained_bulk: 2, rattled_bulk: 2, vacancy: 0, interstitial: 0, surface: 0, dimer: 1, compressed: 0}}
  dimer_distances: [1.5, 3.0]   # with vacuum 5.5 Å an 8.5 Å box: its GPAW takes half the time of the default 12.5 Å
  vacuum: 5.5
selection: {{budget: 10}}
train: {{n_functions: 8, maxiter: 15, test_fraction: 0.0, final_maxiter: 0}}
convergence: {{target_share: 0.0, min_sample: 4}}
cluster: {{n_workers: 1}}
properties: {{teacher: false}}  # the potential's only: the teacher (SevenNet) would take minutes per campaign
"""
# γ-driven MD with iteration i's potential in its evaluate, stored as iteration i+1's candidates: an evaluate
# stage that takes a while, and candidates that depend on the fit
EXPLORE = "explore: {temperature: 1500, steps: 300, sample_interval: 50, max_candidates: 3, stages: []}\n"
ITERATIONS = 2


def tiny_campaign(root: Path, u_c: float = 0.3, max_iterations: int = ITERATIONS, extra: str = EXPLORE) -> Path:
    """The tiny W campaign's file in `root` (its workdir: root/run); `extra` is appended (default: EXPLORE)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "campaign.yaml"
    path.write_text(TINY.format(u_c=u_c, max_iterations=max_iterations) + extra)
    return path
