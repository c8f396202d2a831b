"""Worker pools: the campaign's main pool runs DFT, fits and γ; an optional `ensemble_pool` (GPU nodes on a
cluster) runs uMLIP inference on workers of its own."""

from __future__ import annotations

import os
import socket

import pytest

from alloop.cluster import open_pools
from alloop.config import cluster_settings
from tests.slurm_cluster import SlurmCluster


def _scheduler_of(client) -> str:
    return client.scheduler_info()["address"]


def test_without_an_ensemble_pool_both_roles_share_one_client() -> None:
    with open_pools(cluster_settings(n_workers=1)) as (main, ensemble):
        assert main is ensemble
        assert main.submit(os.getpid).result() != os.getpid()  # work runs in worker processes


def test_an_ensemble_pool_is_a_separate_set_of_workers() -> None:
    settings = cluster_settings(n_workers=1, ensemble_pool={"engine": "local", "n_workers": 1})
    with open_pools(settings) as (main, ensemble):
        assert _scheduler_of(main) != _scheduler_of(ensemble)
        assert main.submit(os.getpid).result() != ensemble.submit(os.getpid).result()


@pytest.mark.slurm
def test_on_slurm_each_pool_is_its_own_batch_job(slurm: SlurmCluster, tmp_path) -> None:
    pool = {"engine": "slurm", "cores": 1, "memory": "1GB", "walltime": "00:05:00", "interface": "lo",
            "minimum_workers": 1, "maximum_workers": 1, "extra_directives": ["--comment=gpu-pool"]}
    settings = cluster_settings(engine="slurm", cores=1, memory="1GB", walltime="00:05:00", interface="lo",
                               minimum_workers=1, maximum_workers=1, ensemble_pool=pool)
    with open_pools(settings, tmp_path) as (main, ensemble):
        job_id = lambda: os.environ.get("SLURM_JOB_ID")  # noqa: E731 (a lambda travels by value)
        job_main = main.submit(job_id, pure=False).result(timeout=120)
        job_ens = ensemble.submit(job_id, pure=False).result(timeout=120)
        assert job_main and job_ens and job_main != job_ens
        assert main.submit(socket.gethostname).result() == ensemble.submit(socket.gethostname).result()
        comments = slurm.run("squeue", "-h", "-o", "%i %k").stdout
        assert f"{job_ens} gpu-pool" in comments
