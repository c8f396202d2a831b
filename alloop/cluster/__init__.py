"""Dask clusters from the campaign's `cluster:` section (alloop.cluster.settings): LocalCluster by default,
dask-jobqueue SLURM/PBS/LSF on clusters, or an existing scheduler by address."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from alloop.cluster.batch import walltime_for
from alloop.errors import AlloopError

log = logging.getLogger("alloop.cluster")

# Worker processes must not oversubscribe the cores they are given: numpy/torch/GPAW threads.
_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def _jobqueue_cluster(engine: str, s: Any, log_dir: str | None) -> Any:
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise AlloopError(f"cluster engine '{engine}' needs dask-jobqueue: pip install dask-jobqueue") from exc
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster, "lsf": dask_jobqueue.LSFCluster}[engine]
    kwargs: dict[str, Any] = {
        "cores": s.cores,
        "processes": 1,
        "memory": s.memory,
        "walltime": walltime_for(engine, s.walltime),
        "job_extra_directives": list(s.extra_directives),
        "job_script_prologue": [f"export {k}={v}" for k, v in _SINGLE_THREAD_ENV.items()] + list(s.prologue),
        # no dashboard: on a shared login node port 8787 is usually taken by someone else's scheduler
        "scheduler_options": {"dashboard_address": None},
    }
    if log_dir:
        kwargs["log_directory"] = log_dir
    if s.queue:
        kwargs["queue"] = s.queue
    if s.account:
        kwargs["account"] = s.account
    if s.interface:
        kwargs["interface"] = s.interface
    cluster = cls(**kwargs)
    cluster.adapt(minimum=s.minimum_workers, maximum=s.maximum_workers)
    return cluster


@contextmanager
def open_client(settings: Any, log_dir: str | os.PathLike[str] | None = None) -> Iterator[Any]:
    """A connected dask.distributed Client for the campaign; closes what it started. Batch-system
    workers write their job output into `log_dir` (default: the current directory)."""
    import dask
    from distributed import Client, LocalCluster

    engine = settings.engine
    if engine == "address":
        client = Client(settings.address)
        try:
            yield client
        finally:
            client.close()
        return
    # A worker holds only the tasks it runs, none queued behind them: when one calculation kills its worker
    # (out of memory, a segfault), Dask counts that death against every task the worker held, and queued
    # innocent configurations would spend their attempts (and end quarantined) for it.
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        if engine == "local":
            os.environ.update({k: os.environ.get(k, v) for k, v in _SINGLE_THREAD_ENV.items()})
            cluster = LocalCluster(
                n_workers=settings.n_workers,
                threads_per_worker=settings.threads_per_worker,
                processes=True,
                memory_limit=settings.memory_limit,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
        else:
            cluster = _jobqueue_cluster(engine, settings, None if log_dir is None else str(log_dir))
    client = Client(cluster)
    log.info("dask cluster (%s) ready: %s", engine, cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def revive_workers(client: Any, settle_s: float = 10.0) -> bool:
    """Give a LocalCluster its workers back when a nanny gave up on its worker (it does when a worker dies
    again while it is being restarted, as behind a calculation that kills every worker it lands on): the
    cluster then stays without that worker and tasks wait forever. True when workers were restarted; other
    clusters (batch-system jobs under `adapt`) replace lost workers themselves."""
    from distributed import LocalCluster
    from distributed.core import Status

    cluster = getattr(client, "cluster", None)
    if not isinstance(cluster, LocalCluster):
        return False
    n = len(cluster.worker_spec)
    dead = [name for name, w in cluster.workers.items() if w.status in (Status.closing, Status.closed, Status.failed)]
    if not dead and len(cluster.workers) >= n:
        return False
    log.warning("Dask lost %d of its %d local worker(s) for good (%s); starting fresh ones", max(len(dead), n - len(cluster.workers)), n,
                ", ".join(map(str, dead)) or "their nannies closed")
    cluster.scale(0)
    deadline = time.monotonic() + settle_s
    while cluster.workers and time.monotonic() < deadline:
        time.sleep(0.2)
    cluster.scale(n)
    return True


@contextmanager
def open_pools(settings: Any, log_dir: str | os.PathLike[str] | None = None) -> Iterator[tuple[Any, Any]]:
    """(main client, ensemble client): the ensemble client is a separate pool when the settings name an
    `ensemble_pool` (GPU nodes for uMLIP inference), otherwise the main client itself."""
    with ExitStack() as stack:
        main = stack.enter_context(open_client(settings, log_dir))
        pool = getattr(settings, "ensemble_pool", None)
        ensemble = main if pool is None else stack.enter_context(open_client(pool, log_dir))
        yield main, ensemble
