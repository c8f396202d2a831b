"""A campaign on a real SLURM (started on localhost): Dask workers are SLURM jobs (dask-jobqueue), every DFT
calculation is its own sbatch job. Then the chaos run: the controller is killed with `kill -9` at random
moments at least 20 times and SLURM jobs are cancelled with `scancel`; the final database must hold the
same labels as the undisturbed run, with no DFT job twice and no finished calculation repeated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.campaigns import alloop, finished_files, run_to_end, snapshot, stage
from tests.slurm_cluster import SlurmCluster, local_slurm

pytestmark = pytest.mark.slow

CAMPAIGN = """\
name: slurm-w
elements: [W]
seed: 5
workdir: run
max_iterations: 3
ensemble: offline-fast
uncertainty: {u_c: 0.15}
labels:
  energy_member: 7net-0
  force_member: 7net-0
  dft:
    backend: gpaw
    gpaw: {ecut: 200, kpts: [2, 1, 1], maxiter: 120, energy_tol: 1.0e-4, timeout_s: 600}
    max_attempts: 6          # cancelled jobs are retried; the chaos below cancels some on purpose
    batch: {scheduler: slurm, walltime: "00:20:00", poll_interval_s: 1}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {strained_bulk: 2, rattled_bulk: 2, vacancy: 0, interstitial: 0, surface: 0, dimer: 1, compressed: 0}
selection: {budget: 10}
train: {n_functions: 8, maxiter: 15, test_fraction: 0.0}
convergence: {target_share: 0.0, n_candidates: 4}
cluster:
  engine: slurm
  cores: 1
  memory: 3GB
  walltime: "00:30:00"
  interface: lo
  minimum_workers: 1
  maximum_workers: 1
"""


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    # 4 slots on the 2-core machine: a Dask worker job, DFT jobs, and orphaned workers of killed controllers
    with local_slurm(cpus=4) as cluster:
        yield cluster


def _campaign(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "campaign.yaml").write_text(CAMPAIGN)
    return root / "campaign.yaml"


@pytest.fixture(scope="module")
def undisturbed(slurm: SlurmCluster, tmp_path_factory) -> Path:
    campaign = _campaign(tmp_path_factory.mktemp("undisturbed"))
    out = run_to_end(campaign, timeout=1500, env=dict(os.environ))
    assert "max_iterations" in out
    return campaign


def test_dft_runs_as_sbatch_jobs_and_workers_are_slurm_jobs(undisturbed: Path) -> None:
    db = undisturbed.parent / "run" / "alloop.db"
    snap = snapshot(db)
    assert snap["status"] == "max_iterations"
    assert snap["jobs"] and all(status == "done" for _, status in snap["jobs"])
    # every DFT work directory holds the job script SLURM ran and the job's output
    for wd in (undisturbed.parent / "run" / "dft").iterdir():
        assert (wd / "job.sh").is_file() and "#SBATCH" in (wd / "job.sh").read_text()
        assert (wd / "result.json").is_file()
    log = (undisturbed.parent / "run" / "alloop.log").read_text()
    assert "SLURMCluster" in log and "submitted as job" in log


def _scancel_one(slurm: SlurmCluster, rng: random.Random) -> str | None:
    out = slurm.run("squeue", "-h", "-o", "%i %j").stdout.split("\n")
    jobs = [line.split() for line in out if line.strip()]
    if not jobs:
        return None
    job_id, name = rng.choice(jobs)
    slurm.run("scancel", job_id)
    return name


def test_chaos_kills_and_cancellations_change_nothing(slurm: SlurmCluster, undisturbed: Path, tmp_path: Path) -> None:
    rng = random.Random(2026)
    campaign = _campaign(tmp_path / "chaos")
    run = campaign.parent / "run"
    db = run / "alloop.db"
    log = (tmp_path / "controller.log").open("w")
    finished: dict[str, float] = {}
    kills = cancels = stalls = 0
    progress = None
    deadline = time.time() + 2400
    while kills < 20 and time.time() < deadline:
        proc = alloop("run", str(campaign), stdout=log, env=dict(os.environ))
        # a random moment; when kills keep landing before anything new is committed (a fit longer than the
        # kill interval would never finish), the next run lives longer
        time.sleep(rng.uniform(1.0, 10.0) * (1 + stalls))
        if rng.random() < 0.4:
            cancels += _scancel_one(slurm, rng) is not None
        if proc.poll() is not None:  # finished before the kill: start the next round
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills += 1
        now_progress = (stage(db), len(finished_files(run)))
        stalls = stalls + 1 if now_progress == progress else 0
        progress = now_progress
        now = finished_files(run)
        assert all(now.get(p) == t for p, t in finished.items()), "a finished DFT result or fit was rewritten"
        finished = now
        assert stage(db) is None or stage(db)[1] != "failed"
    assert kills >= 20, f"the campaign finished after only {kills} kills; make the kill interval shorter"
    out = run_to_end(campaign, timeout=1500, env=dict(os.environ))
    assert "max_iterations" in out
    assert all(finished_files(run).get(p) == t for p, t in finished.items())

    got, want = snapshot(db), snapshot(undisturbed.parent / "run" / "alloop.db")
    assert got["configs"] == want["configs"]
    assert got["jobs"] == want["jobs"]  # one DFT job per configuration, all done
    assert [(h, src, b) for h, src, b, _ in got["labels"]] == [(h, src, b) for h, src, b, _ in want["labels"]]
    for (_, _, _, e1), (_, _, _, e2) in zip(got["labels"], want["labels"]):
        assert e1 == pytest.approx(e2, abs=1e-4)
    # no configuration was ever submitted twice at the same time: one result, one job name per attempt
    for wd in (run / "dft").iterdir():
        assert (wd / "result.json").is_file()
    print(f"chaos: {kills} kills, {cancels} scancels")
    subprocess.run(["scancel", "--user", "root"], check=False)
