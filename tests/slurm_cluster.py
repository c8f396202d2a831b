"""A private single-node SLURM on localhost for tests: its own munged (own key and socket), slurmctld and
slurmd with a slurm.conf in a temporary directory, on free ports, so it never meets a system SLURM or
another test session's instance.

    from tests.slurm_cluster import local_slurm

    @pytest.fixture(scope="session")
    def slurm():
        with local_slurm() as cluster:      # sets SLURM_CONF for this process while it runs
            yield cluster

    def test_hostname(slurm):
        slurm.run("sbatch", "--wrap", "hostname")

Needs root (slurmd launches jobs as their owner) and the Debian packages slurmctld slurmd slurm-client
munge; otherwise it fails the test with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "scancel")
_SBIN = "/usr/sbin:/sbin"


@dataclass(frozen=True)
class SlurmJob:
    id: str
    name: str
    partition: str
    state: str  # squeue's long form: PENDING, RUNNING, ...


@dataclass(frozen=True)
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    partitions: tuple[str, ...]

    @property
    def partition(self) -> str:
        """The default partition (the first one)."""
        return self.partitions[0]

    @property
    def env(self) -> dict[str, str]:
        """The environment under which the SLURM client commands talk to this instance."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)

    def jobs(self, partition: str | None = None, state: str | None = None) -> list[SlurmJob]:
        """Jobs in the queue (pending, running, completing), optionally of one partition and state."""
        cmd = ["squeue", "-h", "-o", "%i|%j|%P|%T"]
        if partition:
            cmd += ["-p", partition]
        if state:
            cmd += ["-t", state]
        lines = self.run(*cmd).stdout.splitlines()
        return [SlurmJob(*line.split("|", 3)) for line in lines if line.count("|") == 3]

    def cancel(self, *job_ids: str) -> None:
        if job_ids:
            self.run("scancel", *job_ids)

    def set_partition_state(self, partition: str, state: str) -> None:
        """UP, or DOWN: jobs are still accepted but none starts; running ones go on."""
        proc = self.run("scontrol", "update", f"PartitionName={partition}", f"State={state}")
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol could not set partition {partition} {state}: {proc.stderr.strip()}")


class PartitionGate:
    """Withholds a partition from a campaign: closed, its running jobs are cancelled and new ones stay
    pending; opened, the jobs left in it (pending or orphaned workers of killed controllers) are cancelled
    and it takes jobs again. With the campaign's Dask workers in the partition, nothing that needs a worker
    (scoring, fits, γ) can finish while it is closed, so the campaign waits wherever it needs one."""

    def __init__(self, cluster: SlurmCluster, partition: str) -> None:
        self.cluster = cluster
        self.partition = partition
        self.closed = False

    def close(self) -> str:
        self.cluster.set_partition_state(self.partition, "DOWN")
        self.closed = True
        running = self.cluster.jobs(self.partition, "running")
        self.cluster.cancel(*(j.id for j in running))
        return f"partition {self.partition} down; cancelled its running jobs {[j.id for j in running]}"

    def open(self) -> str:
        left = self.cluster.jobs(self.partition)
        self.cluster.cancel(*(j.id for j in left))
        self.cluster.set_partition_state(self.partition, "UP")
        self.closed = False
        return f"partition {self.partition} up; cancelled the jobs left in it {[j.id for j in left]}"


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def unavailable_reason() -> str | None:
    """Why a private SLURM cannot start here, or None if it can."""
    if os.geteuid() != 0:
        return "a private SLURM needs root (slurmd starts jobs as their owner)"
    missing = [b for b in _BINARIES if _which(b) is None]
    if missing:
        return (f"SLURM/munge binaries missing: {', '.join(missing)} "
                "(apt-get install slurmctld slurmd slurm-client munge)")
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)


def _slurm_conf(root: Path, node: str, partitions: tuple[str, ...], ctld_port: int, slurmd_port: int, cpus: int) -> str:
    # RealMemory above what the node has would mark it invalid; half of it leaves room for the tests.
    return f"""\
ClusterName=alloop{ctld_port}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
SlurmdParameters=config_overrides
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb() // 2} State=UNKNOWN
""" + "".join(f"PartitionName={p} Nodes={node} Default={'YES' if k == 0 else 'NO'} MaxTime=INFINITE State=UP\n"
              for k, p in enumerate(partitions))


def _start_munged(root: Path) -> None:
    # munged checks permissions: key 0600, socket directory traversable by all, nothing group/world-writable.
    mdir = root / "munge"
    mdir.mkdir(mode=0o755)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    subprocess.run([_which("munged"), f"--key-file={key}", f"--socket={mdir}/munge.sock",
                    f"--pid-file={mdir}/munged.pid", f"--seed-file={mdir}/munged.seed",
                    f"--log-file={mdir}/munged.log"], check=True, capture_output=True, timeout=30)


def _wait_idle(cluster: SlurmCluster, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        # one line per partition the node is in
        state = " ".join(sorted(set(cluster.run("sinfo", "-h", "-N", "-o", "%T").stdout.split())))
        if state == "idle":
            return
        time.sleep(0.3)
    logs = "\n".join((cluster.root / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log")
                     if (cluster.root / f).is_file())
    raise RuntimeError(f"private SLURM node not idle after {timeout_s:g} s (state '{state}'):\n{logs}")


def _kill_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@contextmanager
def local_slurm(root: Path | None = None, cpus: int | None = None,
                partitions: tuple[str, ...] = ("alloop",)) -> Iterator[SlurmCluster]:
    """Start a private SLURM, wait until its node is idle, set SLURM_CONF for this process, yield it;
    on exit cancel its jobs, shut it down and restore the environment. Fails the test (pytest) when impossible.
    `cpus` above the real count oversubscribes the node (config_overrides), so that a Dask worker job
    and DFT jobs fit side by side on a 2-core test machine. All `partitions` share the one node; the
    first is the default."""
    reason = unavailable_reason()
    if reason:  # a missing real part fails: a broken install must not pass green
        pytest.fail(f"no local SLURM: {reason}; `bash .ci/install` installs slurmctld, slurmd and munge")
    # A short path under /tmp: munge's socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="alloop-slurm-", dir=root))
    root.chmod(0o755)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = _free_ports(2)
    cluster = SlurmCluster(root, root / "slurm.conf", node, tuple(partitions))
    cluster.conf.write_text(_slurm_conf(root, node, cluster.partitions, ctld_port, slurmd_port, cpus or os.cpu_count() or 1))
    old_conf = os.environ.get("SLURM_CONF")
    try:
        _start_munged(root)
        subprocess.run([_which("slurmctld"), "-f", str(cluster.conf)], check=True, capture_output=True,
                       env=cluster.env, timeout=30)
        subprocess.run([_which("slurmd"), "-f", str(cluster.conf)], check=True, capture_output=True,
                       env=cluster.env, timeout=30)
        _wait_idle(cluster)
        os.environ["SLURM_CONF"] = str(cluster.conf)
        yield cluster
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        cluster.run("scancel", "--partition", ",".join(cluster.partitions), "--user", "root")
        cluster.run("scontrol", "shutdown")
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _kill_pidfile(root / pidfile)
        shutil.rmtree(root, ignore_errors=True)
