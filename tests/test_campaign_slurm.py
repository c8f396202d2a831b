"""A campaign on a real SLURM (started on localhost): Dask workers are SLURM jobs (dask-jobqueue) in one
partition, every DFT calculation is its own sbatch job in another. Then the chaos run: the controller is
interrupted at 6 random instants (CI size; the full soak is ALLOOP_CHAOS_KILLS=20), with `kill -9` or (three in
ten) SIGTERM, which must end in exit 0 within 10 s (tests/chaos.py; ALLOOP_CHAOS_SEED and ALLOOP_CHAOS_KILLS pick
another draw or number) and SLURM jobs are cancelled with `scancel`; the final database must hold the same
configurations, labels and DFT jobs as the undisturbed run, with no DFT job twice and no finished
calculation repeated."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.campaigns import finished_files, run_to_end, snapshot
from tests.chaos import ChaosRun, campaign_evidence, chaos_kills, chaos_seeds, draw_plan, evidence_on_failure
from tests.slurm_cluster import PartitionGate, SlurmCluster

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

N_KILLS = chaos_kills(6)  # CI size; the full soak: ALLOOP_CHAOS_KILLS=20 (README, Tests)
LAST_ITERATION = 1  # max_iterations 2: iteration 0 and one iteration that builds on a fit
WORKER_PARTITION, DFT_PARTITION = "workers", "dft"  # two of the session SLURM's partitions (tests/conftest.py)

CAMPAIGN = """\
name: slurm-w
elements: [W]
seed: 5
workdir: run
max_iterations: 2
ensemble: offline-fast
uncertainty: {u_c: 0.15}
labels:
  energy_member: 7net-0
  force_member: 7net-0
  dft:
    backend: gpaw
    gpaw: {ecut: 200, kpts: [2, 1, 1], maxiter: 120, energy_tol: 1.0e-4, walltime_s: 600}
    max_attempts: 6          # cancelled jobs are retried; the chaos below cancels some on purpose
    batch: {scheduler: slurm, partition: dft, walltime: "00:20:00", poll_interval_s: 1}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {strained_bulk: 2, rattled_bulk: 2, vacancy: 0, interstitial: 0, surface: 0, dimer: 1, compressed: 0}
  dimer_distances: [1.5, 3.0]   # an 8.5 Å box, as the tiny campaign's (tests/campaigns.py)
  vacuum: 5.5
selection: {budget: 10}
train: {n_functions: 8, maxiter: 15, test_fraction: 0.0, final_maxiter: 0}
convergence: {target_share: 0.0, min_sample: 4}
cluster:
  engine: slurm
  queue: workers
  cores: 1
  memory: 3GB
  walltime: "00:30:00"
  interface: lo
  minimum_workers: 1
  maximum_workers: 1
properties: {teacher: false}
"""


def _campaign(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "campaign.yaml").write_text(CAMPAIGN)
    return root / "campaign.yaml"


@pytest.fixture(scope="module")
def undisturbed(slurm_cluster: SlurmCluster, tmp_path_factory) -> Path:
    campaign = _campaign(tmp_path_factory.mktemp("undisturbed"))
    with evidence_on_failure(lambda: campaign_evidence(campaign.parent / "run" / "alloop.db", logs=_slurm_logs(slurm_cluster))):
        out = run_to_end(campaign, timeout=1500, env=dict(os.environ))
        assert "max_iterations" in out
        # the chaos run holds the campaign in this iteration's labelling: it must take DFT jobs
        configs = snapshot(campaign.parent / "run" / "alloop.db")["configs"]
        assert any(it == LAST_ITERATION and route == "dft" for _, it, _, route in configs), configs
    return campaign


def _slurm_logs(slurm: SlurmCluster) -> list[Path]:
    # why SLURM ended a job (cancelled, node trouble) is only in its own logs, removed with the cluster
    return [slurm.root / "slurmctld.log", slurm.root / "slurmd.log"]


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


# DFT jobs of one configuration are named al<workdir digest>-<attempt>; each cancel costs the configuration an
# attempt (max_attempts 6), so the chaos cancels at most this many per configuration and never quarantines one.
MAX_CANCELS_PER_CONFIG = 3


def _cancel_one(slurm: SlurmCluster) -> Callable[[random.Random], str]:
    per_config: Counter[str] = Counter()

    def cancel(rng: random.Random) -> str:
        jobs = [j for j in slurm.jobs() if per_config[_config_of(j.name)] < MAX_CANCELS_PER_CONFIG]
        if not jobs:
            return ""
        job = rng.choice(jobs)
        slurm.cancel(job.id)
        if job.partition == DFT_PARTITION:
            per_config[_config_of(job.name)] += 1
        return f"{job.name} ({job.partition}, {job.state.lower()})"

    return cancel


def _config_of(job_name: str) -> str:
    return job_name.rsplit("-", 1)[0] if job_name.startswith("al") else job_name


@pytest.mark.parametrize("seed", chaos_seeds(2026))
def test_chaos_kills_and_cancellations_change_nothing(slurm: SlurmCluster, undisturbed: Path, tmp_path: Path,
                                                      seed: int) -> None:
    campaign = _campaign(tmp_path / "chaos")
    run = campaign.parent / "run"
    db = run / "alloop.db"
    # Once the last iteration is labelling, the Dask workers' partition is held down: its fit and γ cannot
    # run, so the campaign cannot end before the last kill (the fixture checks that this labelling takes
    # DFT jobs, i.e. lasts far longer than the 0.2 s between looks); the remaining kills land in that DFT
    # and in the wait for a worker.
    chaos = ChaosRun(campaign, run, draw_plan(seed, N_KILLS, sigterm_share=0.3, cancel_share=0.4), seed=seed,
                     gate=PartitionGate(slurm, WORKER_PARTITION),
                     hold_when=lambda s: s[0] == LAST_ITERATION and s[1] in ("label", "train", "evaluate", "done"),
                     cancel_one=_cancel_one(slurm), env=dict(os.environ), output=tmp_path / "controllers.out")
    want_db = undisturbed.parent / "run" / "alloop.db"

    def evidence() -> str:
        return campaign_evidence(db, want_db, chaos.log,
                                 [run / "alloop.log", tmp_path / "controllers.out", *_slurm_logs(slurm)])

    with evidence_on_failure(evidence):
        chaos.run()
        assert len(chaos.log.kills) == N_KILLS
        # a stop lands anywhere (batch DFT in flight, a worker job pending) and is a clean, quick exit
        chaos.log.assert_clean_stops()
        finished = finished_files(run)
        out = run_to_end(campaign, timeout=1500, env=dict(os.environ))
        assert "max_iterations" in out
        assert {p: t for p, t in finished_files(run).items() if p in finished} == finished, "finished work was redone"

        got, want = snapshot(db), snapshot(want_db)
        assert got["configs"] == want["configs"]
        assert got["jobs"] == want["jobs"]  # one DFT job per configuration, all done
        assert [(h, src, b) for h, src, b, _ in got["labels"]] == [(h, src, b) for h, src, b, _ in want["labels"]]
        assert [e for *_, e in got["labels"]] == pytest.approx([e for *_, e in want["labels"]], abs=1e-4)
        # no configuration ran twice at the same time: each work directory holds one result
        assert all((wd / "result.json").is_file() for wd in (run / "dft").iterdir())
    print(f"chaos (seed {seed}): {len(chaos.log.kills)} kills, {chaos.log.cancels} scancels\n{chaos.log.report()}")
