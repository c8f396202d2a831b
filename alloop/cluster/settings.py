"""The campaign's `cluster:` section: where the Dask workers run, one model per `engine`, each with only
the keys that engine reads.

    cluster: {engine: local, n_workers: 2}                                   # LocalCluster (the default)
    cluster: {engine: slurm, queue: cpu, cores: 16, walltime: "12:00:00"}    # dask-jobqueue (pbs, lsf alike)
    cluster: {engine: address, address: "tcp://10.0.0.5:8786"}               # a running scheduler

Each may name an `ensemble_pool`, a second pool (any engine) that runs the uMLIP inference alone, e.g. on
GPU nodes. `cluster_settings(**keys)` builds the right model from keys as a campaign file gives them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from alloop.cluster.batch import Walltime

ENGINES = ("local", "slurm", "pbs", "lsf", "address")
_JOBQUEUE = ("slurm", "pbs", "lsf")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalPool(_Strict):
    """Worker processes on this machine (dask.distributed's LocalCluster)."""

    engine: Literal["local"] = Field("local", description="local: worker processes on this machine")
    n_workers: int = Field(2, ge=1, description="worker processes; each runs one task at a time per thread")
    threads_per_worker: int = Field(1, ge=1, description="threads per worker process")
    memory_limit: str = Field("auto", description="per worker, e.g. '4GB'; 'auto' splits the machine's memory "
                                                  "evenly; a worker above it is restarted")


class JobqueuePool(_Strict):
    """Workers as batch jobs of SLURM, PBS or LSF (dask-jobqueue), started and stopped with the load."""

    engine: Literal["slurm", "pbs", "lsf"] = Field(description="the batch system: slurm, pbs or lsf")
    queue: str | None = Field(None, description="SLURM partition, PBS or LSF queue (default: the system's)")
    account: str | None = Field(None, description="account / project charged for the worker jobs")
    walltime: Walltime = Field("01:00:00", description="time limit of one worker job, [D-]HH:MM:SS")
    cores: int = Field(1, ge=1, description="cores per worker job (one worker process uses them all)")
    memory: str = Field("4GB", description="memory per worker job, in dask's syntax (e.g. 64GB)")
    extra_directives: list[str] = Field(
        default_factory=list, description="more scheduler options, e.g. '--gres=gpu:1' (the #SBATCH/#PBS/#BSUB "
                                          "prefix is added)")
    prologue: list[str] = Field(default_factory=list, description="shell lines each worker job runs first "
                                                                  "(module loads, activating the environment)")
    interface: str | None = Field(None, description="network interface the workers listen on, e.g. ib0 "
                                                    "(default: the one of the host name)")
    minimum_workers: int = Field(0, ge=0, description="worker jobs kept even when idle")
    maximum_workers: int = Field(4, ge=1, description="worker jobs at most, however long the queue of tasks")


class AddressPool(_Strict):
    """An already running Dask scheduler, started and sized by someone else."""

    engine: Literal["address"] = Field(description="address: connect to a running Dask scheduler")
    address: str = Field(description="the scheduler's address, e.g. tcp://10.0.0.5:8786")


def _engine_tag(value: Any) -> str:
    engine = value.get("engine", "local") if isinstance(value, dict) else getattr(value, "engine", "local")
    return "jobqueue" if engine in _JOBQUEUE else str(engine)


PoolSettings = Annotated[
    Annotated[LocalPool, Tag("local")] | Annotated[JobqueuePool, Tag("jobqueue")] | Annotated[AddressPool, Tag("address")],
    Discriminator(_engine_tag, custom_error_type="engine",
                  custom_error_message=f"engine must be one of {', '.join(ENGINES)}"),
]

_POOL = Field(None, description="a separate worker pool for uMLIP inference (e.g. GPU nodes: queue and "
              "extra_directives such as '--gres=gpu:1'), any engine; fits, γ and DFT stay on the main pool")


class LocalCluster(LocalPool):
    __doc__ = LocalPool.__doc__
    ensemble_pool: PoolSettings | None = _POOL


class JobqueueCluster(JobqueuePool):
    __doc__ = JobqueuePool.__doc__
    ensemble_pool: PoolSettings | None = _POOL


class AddressCluster(AddressPool):
    __doc__ = AddressPool.__doc__
    ensemble_pool: PoolSettings | None = _POOL


ClusterSettings = Annotated[
    Annotated[LocalCluster, Tag("local")] | Annotated[JobqueueCluster, Tag("jobqueue")]
    | Annotated[AddressCluster, Tag("address")],
    Discriminator(_engine_tag, custom_error_type="engine",
                  custom_error_message=f"engine must be one of {', '.join(ENGINES)}"),
]
#: keys each engine reads (what `drop_other_engines_keys` keeps)
ENGINE_KEYS: dict[str, frozenset[str]] = {
    "local": frozenset(LocalCluster.model_fields), "address": frozenset(AddressCluster.model_fields),
    **dict.fromkeys(_JOBQUEUE, frozenset(JobqueueCluster.model_fields)),
}


def cluster_settings(**keys: Any) -> LocalCluster | JobqueueCluster | AddressCluster:
    """The settings model of `keys["engine"]` (default local), validated."""
    return TypeAdapter(ClusterSettings).validate_python(keys)  # type: ignore[no-any-return]


def drop_other_engines_keys(section: dict[str, Any], path: str = "cluster") -> tuple[dict[str, Any], list[str]]:
    """A cluster section written for the flat model of older alloops, with the keys its engine never read
    taken out (and a message each). Keys no engine knows are left for validation to report."""
    engine = section.get("engine", "local")
    if engine not in ENGINE_KEYS:
        return section, []
    known = set().union(*ENGINE_KEYS.values())
    foreign = [k for k in section if k in known and k not in ENGINE_KEYS[engine]]
    kept = {k: v for k, v in section.items() if k not in foreign}
    notes = [f"{path}.{k} is ignored by engine '{engine}' (it is a key of engine "
             f"{' / '.join(e for e in ENGINES if k in ENGINE_KEYS[e])}): remove it" for k in foreign]
    return kept, notes
