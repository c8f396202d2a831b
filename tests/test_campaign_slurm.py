"""The tiny campaign (tests/campaigns.py) on a real SLURM (started on localhost): Dask workers are SLURM jobs
(dask-jobqueue) in one partition, every DFT calculation is its own sbatch job in another, and the controller
is interrupted at 6 random instants (CI size; the full soak is ALLOOP_CHAOS_KILLS=20), with `kill -9` or (three
in ten) SIGTERM, which must end in exit 0 within 10 s (tests/chaos.py; ALLOOP_CHAOS_SEED and ALLOOP_CHAOS_KILLS
pick another draw or number), while SLURM jobs are cancelled with `scancel`. Where the work runs changes no
science: the final database must hold the same configurations, labels and DFT jobs as the undisturbed local
run of the same campaign (the session's `tiny_reference`), with no DFT job twice and no finished calculation
repeated."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.campaigns import ITERATIONS, assert_same_campaign, finished_files, run_to_end, snapshot, tiny_campaign
from tests.chaos import ChaosRun, InterruptionLog, campaign_evidence, chaos_kills, chaos_seeds, draw_plan, evidence_on_failure
from tests.slurm_cluster import PartitionGate, SlurmCluster

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

N_KILLS = chaos_kills(6)  # CI size; the full soak: ALLOOP_CHAOS_KILLS=20 (README, Tests)
LAST_ITERATION = ITERATIONS - 1  # the iteration that builds on a fit
WORKER_PARTITION, DFT_PARTITION = "workers", "dft"  # two of the session SLURM's partitions (tests/conftest.py)

# What the tiny campaign changes to run on SLURM: where its workers and DFT run, and the retries that the
# cancellations below cost; nothing it computes.
ON_SLURM = {
    "cluster": {"engine": "slurm", "queue": WORKER_PARTITION, "cores": 1, "memory": "3GB", "walltime": "00:30:00",
                "interface": "lo", "minimum_workers": 1, "maximum_workers": 1},
    "dft": {"max_attempts": 6,  # cancelled jobs are retried; the chaos cancels some on purpose
            "batch": {"scheduler": "slurm", "partition": DFT_PARTITION, "walltime": "00:20:00", "poll_interval_s": 1}},
    "gpaw": {"walltime_s": 600},
}


def _campaign(root: Path) -> Path:
    import yaml

    path = tiny_campaign(root)
    doc = yaml.safe_load(path.read_text())
    doc["name"] = "slurm-w"
    doc["cluster"] = ON_SLURM["cluster"]
    doc["labels"]["dft"].update(ON_SLURM["dft"])
    doc["labels"]["dft"]["gpaw"].update(ON_SLURM["gpaw"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module", params=chaos_seeds(2026))
def interrupted(request, slurm_cluster: SlurmCluster, tiny_reference, tmp_path_factory) -> tuple[Path, InterruptionLog]:
    """(campaign file, InterruptionLog) of the tiny campaign on SLURM, interrupted by the chaos run (seed: the
    param) and then run to its end."""
    seed = request.param
    reference_db = tiny_reference[0].parent / "run" / "alloop.db"
    # the chaos run holds the campaign in the last iteration's labelling: it must take DFT jobs
    configs = snapshot(reference_db)["configs"]
    assert any(it == LAST_ITERATION and route == "dft" for _, it, _, route in configs), configs
    root = tmp_path_factory.mktemp(f"slurm-chaos-{seed}")
    campaign = _campaign(root)
    run = campaign.parent / "run"
    # Once the last iteration is labelling, the Dask workers' partition is held down: its fit and γ cannot
    # run, so the campaign cannot end before the last kill (the reference shows that this labelling takes
    # DFT jobs, i.e. lasts far longer than the 0.2 s between looks); the remaining kills land in that DFT
    # and in the wait for a worker.
    chaos = ChaosRun(campaign, run, draw_plan(seed, N_KILLS, sigterm_share=0.3, cancel_share=0.4), seed=seed,
                     gate=PartitionGate(slurm_cluster, WORKER_PARTITION),
                     hold_when=lambda s: s[0] == LAST_ITERATION and s[1] in ("label", "train", "evaluate", "done"),
                     cancel_one=_cancel_one(slurm_cluster), env=dict(os.environ), output=root / "controllers.out")

    def evidence() -> str:
        return campaign_evidence(run / "alloop.db", reference_db, chaos.log,
                                 [run / "alloop.log", root / "controllers.out", *_slurm_logs(slurm_cluster)])

    try:
        with evidence_on_failure(evidence):
            chaos.run()
            finished = finished_files(run)
            out = run_to_end(campaign, timeout=1500, env=dict(os.environ))
            assert "max_iterations" in out
            assert {p: t for p, t in finished_files(run).items() if p in finished} == finished, "finished work was redone"
    finally:
        slurm_cluster.run("scancel", "--user", "root")
    print(f"chaos (seed {seed}): {len(chaos.log.kills)} kills, {chaos.log.cancels} scancels\n{chaos.log.report()}")
    return campaign, chaos.log


def _slurm_logs(slurm: SlurmCluster) -> list[Path]:
    # why SLURM ended a job (cancelled, node trouble) is only in its own logs, removed with the cluster
    return [slurm.root / "slurmctld.log", slurm.root / "slurmd.log"]


def test_dft_runs_as_sbatch_jobs_and_workers_are_slurm_jobs(interrupted) -> None:
    campaign, _ = interrupted
    snap = snapshot(campaign.parent / "run" / "alloop.db")
    assert snap["status"] == "max_iterations"
    assert snap["jobs"] and all(status == "done" for _, status in snap["jobs"])
    # every DFT work directory holds the job script SLURM ran and the job's output
    for wd in (campaign.parent / "run" / "dft").iterdir():
        assert (wd / "job.sh").is_file() and "#SBATCH" in (wd / "job.sh").read_text()
        assert (wd / "result.json").is_file()
    log = (campaign.parent / "run" / "alloop.log").read_text()
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


def test_chaos_kills_and_cancellations_change_nothing(interrupted, tiny_reference) -> None:
    campaign, kills = interrupted
    assert len(kills.kills) == N_KILLS
    # a stop lands anywhere (batch DFT in flight, a worker job pending) and is a clean, quick exit
    kills.assert_clean_stops()
    run = campaign.parent / "run"
    want_db = tiny_reference[0].parent / "run" / "alloop.db"
    with evidence_on_failure(lambda: campaign_evidence(run / "alloop.db", want_db, kills)):
        assert_same_campaign(run / "alloop.db", want_db)
        # no configuration ran twice at the same time: each work directory holds one result
        assert all((wd / "result.json").is_file() for wd in (run / "dft").iterdir())
