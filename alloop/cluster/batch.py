"""One batch job per DFT calculation (sbatch / qsub / bsub), so that a long DFT run lives in the scheduler's
queue, not in a Dask worker: the controller submits, stores the job id, polls `states`, and after a
restart re-attaches by id, or by `find(name)` when it crashed between submitting and recording the id.

    batch = BatchSettings(scheduler="slurm", partition="short", walltime="02:00:00")
    scheduler = make_scheduler(batch)
    job_id = scheduler.submit(script, workdir, name)
    scheduler.states([job_id])          # {job_id: JobState.running}

Job scripts are rendered from templates/jobs/<scheduler>.sh (`render_job_script`): `{{name}}` placeholders,
which never clash with the shell's own `$VAR` / `${VAR}`.
"""

from __future__ import annotations

import getpass
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from alloop.errors import AlloopError, ConfigError, MissingFileError
from alloop.process import Finished, run_captured
from alloop.resources import template_path
from alloop.schema import unit

SchedulerName = Literal["slurm", "pbs", "lsf"]
#: what SLURM, PBS and LSF write into a job's output when they kill it at its time limit
TIME_LIMIT_MESSAGES = ("DUE TO TIME LIMIT", "job killed: walltime", "TERM_RUNLIMIT")
_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{2}):(\d{2})$")


class SchedulerError(AlloopError):
    """A scheduler command failed (or is not installed); carries the command and its stderr."""

    def __init__(self, command: Sequence[str], message: str) -> None:
        self.command = list(command)
        super().__init__(f"`{shlex.join(command)}` failed: {message.strip() or '(no output)'}")


def _check_walltime(value: str) -> str:
    if not _WALLTIME.match(value.strip()):
        raise ValueError(f"walltime '{value}' is not [D-]HH:MM:SS (e.g. 01:30:00 or 2-00:00:00)")
    return value.strip()


#: a time limit as batch systems write it: [D-]HH:MM:SS
Walltime = Annotated[str, AfterValidator(_check_walltime)]


class BatchSettings(BaseModel):
    """How each DFT calculation is submitted as its own batch job."""

    model_config = ConfigDict(extra="forbid")

    scheduler: SchedulerName = Field("slurm", description="the batch system: slurm (sbatch), pbs (qsub) or lsf (bsub)")
    template: Path | None = Field(None, description="job-script template (default: templates/jobs/<scheduler>.sh)")
    queue: str | None = Field(None, description="SLURM partition, PBS or LSF queue (default: the system's)")
    account: str | None = Field(None, description="account / project charged for the jobs")
    nodes: int = Field(1, ge=1, description="nodes per job")
    ntasks: int = Field(1, ge=1, description="MPI ranks per job")
    cpus_per_task: int = Field(1, ge=1, description="cores per MPI rank")
    walltime: Walltime = Field("01:00:00", description="time limit of one job, [D-]HH:MM:SS; raised to the "
                               "backend's own walltime_s plus a grace period when that is longer (alloop.label.batch)")
    memory: str | None = Field(None, description="memory per job, in the scheduler's syntax, e.g. 8G / 8gb / 8000 "
                                                 "(default: the system's)")
    modules: list[str] = Field(default_factory=list, description="environment modules, rendered as `module load <name>`")
    prologue: list[str] = Field(default_factory=list, description="shell lines run before the calculation")
    extra_directives: list[str] = Field(
        default_factory=list,
        description="more scheduler options, e.g. '--exclusive' (the #SBATCH/#PBS/#BSUB prefix is added)")
    mpi_launcher: str = Field("", description="put in front of the VASP command, e.g. 'srun' or 'mpirun -n {ntasks}' "
                                              "({ntasks}, {nodes}, {cpus_per_task} are filled in)")
    poll_interval_s: float = Field(10.0, gt=0, description="how often the controller asks the scheduler about its jobs",
                                   json_schema_extra=unit("s"))
    python: str | None = Field(None, description="interpreter that runs the job (default: the one running alloop)")

    def template_file(self) -> Path:
        path = self.template or template_path(f"jobs/{self.scheduler}.sh")
        if not path.is_file():
            raise MissingFileError(path, f"{self.scheduler} job-script template",
                                   "give batch.template, or restore templates/jobs/")
        return path

    def launcher(self) -> str:
        return self.mpi_launcher.format(ntasks=self.ntasks, nodes=self.nodes, cpus_per_task=self.cpus_per_task)

    def interpreter(self) -> str:
        return self.python or sys.executable


def walltime_seconds(walltime: str) -> int:
    m = _WALLTIME.match(walltime.strip())
    if m is None:
        raise ValueError(f"walltime '{walltime}' is not [D-]HH:MM:SS")
    days, h, mi, s = (int(g or 0) for g in m.groups())
    return ((days * 24 + h) * 60 + mi) * 60 + s


def walltime_for(scheduler: str, walltime: str) -> str:
    """`walltime` ([D-]HH:MM:SS) as `scheduler`'s time-limit option reads it: SLURM takes it as it is, PBS
    wants HH:MM:SS (hours may pass 24), LSF's -W [hours:]minutes."""
    if scheduler == "lsf":
        minutes = -(-walltime_seconds(walltime) // 60)
        return f"{minutes // 60}:{minutes % 60:02d}"
    if scheduler == "pbs":
        return format_walltime(walltime_seconds(walltime))
    return walltime


def format_walltime(seconds: float) -> str:
    """HH:MM:SS (hours may exceed 24, which every scheduler accepts), rounded up to whole seconds."""
    s = int(-(-seconds // 1))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class JobState(StrEnum):
    pending = "pending"
    running = "running"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"
    timeout = "timeout"
    unknown = "unknown"

    @property
    def active(self) -> bool:
        return self in (JobState.pending, JobState.running)


class Scheduler(Protocol):
    name: str
    #: the directive prefix in job scripts, e.g. "#SBATCH"
    directive: str

    def submit(self, script: Path, workdir: Path, name: str) -> str:
        """Submit `script` to run in `workdir` under the job name `name`; the job id."""

    def states(self, ids: list[str]) -> dict[str, JobState]:
        """State of each job; jobs the scheduler no longer knows are `unknown` (read the outputs to decide)."""

    def find(self, name: str) -> str | None:
        """Id of a pending or running job of this user with exactly this name, or None."""

    def cancel(self, job_id: str) -> None: ...

    def template_values(self, batch: BatchSettings, walltime: str) -> dict[str, str]:
        """Scheduler-specific placeholder values: walltime in its syntax, `options` (the optional
        directive lines: queue, account, memory, extra_directives), PBS `select`, LSF `slots`."""


#: seconds a scheduler command (sbatch, squeue, qstat, ...) may take before the scheduler counts as down
SCHEDULER_TIMEOUT_S = 120


def _run(cmd: list[str], stdin_path: Path | None = None, ok_codes: tuple[int, ...] = (0,)) -> Finished:
    if shutil.which(cmd[0]) is None:
        raise SchedulerError(cmd, f"'{cmd[0]}' is not on PATH: run alloop on a login node of the cluster, "
                                  "or load the scheduler's module")
    proc = run_captured(cmd, stdin_path=stdin_path, timeout_s=SCHEDULER_TIMEOUT_S)
    if proc.timed_out:
        raise SchedulerError(cmd, f"no answer within {SCHEDULER_TIMEOUT_S} s (scheduler overloaded or down?)")
    if proc.returncode not in ok_codes:
        raise SchedulerError(cmd, f"exit code {proc.returncode}: {proc.stderr or proc.stdout}")
    return proc


def _extra(prefix: str, lines: Sequence[str]) -> list[str]:
    return [line if line.lstrip().startswith("#") else f"{prefix} {line}" for line in lines]


# ------------------------------------------------------------------------------------------------ SLURM
_SLURM_STATES = {
    **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"),
                    JobState.pending),
    **dict.fromkeys(("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"),
                    JobState.running),
    "COMPLETED": JobState.finished,
    **dict.fromkeys(("FAILED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"),
                    JobState.failed),
    "CANCELLED": JobState.cancelled,
    **dict.fromkeys(("TIMEOUT", "DEADLINE"), JobState.timeout),
}


def slurm_state(text: str) -> JobState:
    """A SLURM state word as squeue (%T) or sacct print it ('CANCELLED by 0' included)."""
    words = text.strip().split()
    return _SLURM_STATES.get(words[0].rstrip("+").upper(), JobState.unknown) if words else JobState.unknown


def parse_squeue(text: str) -> dict[str, tuple[JobState, str]]:
    """Lines of `squeue -h -o '%i %T %j'` → {id: (state, name)}."""
    out: dict[str, tuple[JobState, str]] = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2:
            out[parts[0]] = (slurm_state(parts[1]), parts[2] if len(parts) == 3 else "")
    return out


def parse_sacct(text: str) -> dict[str, JobState]:
    """Lines of `sacct -n -X -P -o JobID,State` → {id: state}."""
    out: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = slurm_state(parts[1])
    return out


class SlurmScheduler:
    name = "slurm"
    directive = "#SBATCH"

    def submit(self, script: Path, workdir: Path, name: str) -> str:
        proc = _run(["sbatch", "--parsable", f"--job-name={name}", f"--chdir={workdir}", str(script)])
        # --parsable prints "<id>" or "<id>;<cluster>"
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SchedulerError(["sbatch", str(script)], f"unexpected answer '{proc.stdout.strip()}'")
        return job_id

    def states(self, ids: list[str]) -> dict[str, JobState]:
        if not ids:
            return {}
        # squeue keeps finished jobs for MinJobAge (default 300 s); it rejects a list made only of
        # forgotten ids with "Invalid job id", which here just means "ask sacct".
        proc = _run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T %j"], ok_codes=(0, 1))
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise SchedulerError(["squeue", "-j", ",".join(ids)], proc.stderr)
        known = {i: s for i, (s, _) in parse_squeue(proc.stdout).items()}
        missing = [i for i in ids if i not in known]
        if missing and shutil.which("sacct"):
            acct = run_captured(["sacct", "-n", "-X", "-P", "-j", ",".join(missing), "-o", "JobID,State"],
                                timeout_s=SCHEDULER_TIMEOUT_S)
            if acct.returncode == 0 and not acct.timed_out:  # fails where accounting is off (AccountingStorageType=none)
                known.update({i: s for i, s in parse_sacct(acct.stdout).items() if i in missing})
        return {i: known.get(i, JobState.unknown) for i in ids}

    def find(self, name: str) -> str | None:
        proc = _run(["squeue", "-h", "-u", getpass.getuser(), "-n", name, "-o", "%i %T %j"])
        return next((i for i, (s, n) in parse_squeue(proc.stdout).items() if n == name and s.active), None)

    def cancel(self, job_id: str) -> None:
        _run(["scancel", job_id])

    def template_values(self, batch: BatchSettings, walltime: str) -> dict[str, str]:
        d = self.directive
        lines: list[str] = []
        if batch.queue:
            lines.append(f"{d} --partition={batch.queue}")
        if batch.account:
            lines.append(f"{d} --account={batch.account}")
        if batch.memory:
            lines.append(f"{d} --mem={batch.memory}")
        return {"walltime": walltime, "options": "\n".join(lines + _extra(d, batch.extra_directives))}


# ------------------------------------------------------------------------------------------------ PBS
_PBS_STATES = {**dict.fromkeys("QHWTM", JobState.pending), **dict.fromkeys("RESUB", JobState.running)}
#: exit statuses with which PBS Pro (-29) and Torque (-11) report a job killed at its walltime
_PBS_WALLTIME_EXIT = ("-29", "-11")


def parse_qstat_full(text: str) -> dict[str, tuple[JobState, str]]:
    """`qstat -f -x <ids>` (PBS Pro; Torque without -x) → {id: (state, name)}. Finished jobs (F, or C in
    Torque) are finished/failed/timeout by their Exit_status."""
    out: dict[str, tuple[JobState, str]] = {}
    for block in re.split(r"^Job Id:\s*", text, flags=re.M)[1:]:
        job_id = block.split(None, 1)[0]
        attrs = dict(re.findall(r"^\s+(\w+)\s*=\s*(.*)$", block, flags=re.M))
        code = attrs.get("job_state", "").strip()
        if code in ("F", "C"):
            exit_status = attrs.get("Exit_status", "").strip()
            state = (JobState.finished if exit_status == "0" else JobState.timeout
                     if exit_status in _PBS_WALLTIME_EXIT else JobState.failed)
        else:
            state = _PBS_STATES.get(code, JobState.unknown)
        out[job_id] = (state, attrs.get("Job_Name", "").strip())
    return out


def _pbs_select(batch: BatchSettings) -> str:
    per_node = -(-batch.ntasks // batch.nodes)
    spec = f"select={batch.nodes}:ncpus={per_node * batch.cpus_per_task}:mpiprocs={per_node}"
    return spec + (f":mem={batch.memory}" if batch.memory else "")


class PBSScheduler:
    name = "pbs"
    directive = "#PBS"

    def submit(self, script: Path, workdir: Path, name: str) -> str:
        proc = _run(["qsub", "-N", name, str(script)])
        job_id = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
        if not job_id or not job_id[0].isdigit():
            raise SchedulerError(["qsub", str(script)], f"unexpected answer '{proc.stdout.strip()}'")
        return job_id

    def states(self, ids: list[str]) -> dict[str, JobState]:
        if not ids:
            return {}
        # rc 153/35: some ids unknown ("Unknown Job Id"); the known ones are still printed.
        proc = _run(["qstat", "-f", "-x", *ids], ok_codes=(0, 35, 153, 1))
        known = parse_qstat_full(proc.stdout)
        if proc.returncode != 0 and not known and "Unknown Job Id" not in proc.stderr:
            raise SchedulerError(["qstat", "-f", "-x", *ids], proc.stderr)
        return {i: known[i][0] if i in known else JobState.unknown for i in ids}

    def find(self, name: str) -> str | None:
        # qselect lists jobs, one id a line; -s limits to queued/held/waiting/running/exiting/suspended.
        proc = _run(["qselect", "-u", getpass.getuser(), "-N", name, "-s", "QHWTRESU"])
        ids = proc.stdout.split()
        return ids[0] if ids else None

    def cancel(self, job_id: str) -> None:
        _run(["qdel", job_id])

    def template_values(self, batch: BatchSettings, walltime: str) -> dict[str, str]:
        d = self.directive
        lines: list[str] = []
        if batch.queue:
            lines.append(f"{d} -q {batch.queue}")
        if batch.account:
            lines.append(f"{d} -A {batch.account}")
        return {"walltime": walltime_for("pbs", walltime), "select": _pbs_select(batch),
                "options": "\n".join(lines + _extra(d, batch.extra_directives))}


# ------------------------------------------------------------------------------------------------ LSF
_LSF_STATES = {"PEND": JobState.pending, "PSUSP": JobState.pending, "WAIT": JobState.pending,
               "RUN": JobState.running, "USUSP": JobState.running, "SSUSP": JobState.running,
               "PROV": JobState.running, "DONE": JobState.finished, "EXIT": JobState.failed}
_BSUB_ID = re.compile(r"Job <(\d+)> is submitted")
_LSF_FIELDS = "jobid stat job_name"


def parse_bjobs(text: str) -> dict[str, tuple[JobState, str]]:
    """Lines of `bjobs -a -noheader -o 'jobid stat job_name'` → {id: (state, name)}; 'Job <n> is not
    found' lines are skipped."""
    out: dict[str, tuple[JobState, str]] = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2 and parts[0].isdigit():
            out[parts[0]] = (_LSF_STATES.get(parts[1].upper(), JobState.unknown), parts[2] if len(parts) == 3 else "")
    return out


class LSFScheduler:
    name = "lsf"
    directive = "#BSUB"

    def submit(self, script: Path, workdir: Path, name: str) -> str:
        # bsub reads #BSUB directives only from a script given on stdin.
        proc = _run(["bsub", "-J", name, "-cwd", str(workdir)], stdin_path=script)
        m = _BSUB_ID.search(proc.stdout)
        if m is None:
            raise SchedulerError(["bsub", str(script)], f"unexpected answer '{proc.stdout.strip()}'")
        return m.group(1)

    def states(self, ids: list[str]) -> dict[str, JobState]:
        if not ids:
            return {}
        proc = _run(["bjobs", "-a", "-noheader", "-o", _LSF_FIELDS, *ids], ok_codes=(0, 255))
        known = parse_bjobs(proc.stdout)
        if proc.returncode != 0 and not known and "not found" not in proc.stdout + proc.stderr:
            raise SchedulerError(["bjobs", *ids], proc.stderr)
        return {i: known[i][0] if i in known else JobState.unknown for i in ids}

    def find(self, name: str) -> str | None:
        # without -a, bjobs lists unfinished jobs only; "No unfinished job found" exits 255
        proc = _run(["bjobs", "-noheader", "-J", name, "-o", _LSF_FIELDS], ok_codes=(0, 255))
        return next((i for i, (s, n) in parse_bjobs(proc.stdout).items() if n == name and s.active), None)

    def cancel(self, job_id: str) -> None:
        _run(["bkill", job_id])

    def template_values(self, batch: BatchSettings, walltime: str) -> dict[str, str]:
        d = self.directive
        lines: list[str] = []
        if batch.nodes == 1:
            lines.append(f'{d} -R "span[hosts=1]"')
        if batch.queue:
            lines.append(f"{d} -q {batch.queue}")
        if batch.account:
            lines.append(f"{d} -P {batch.account}")
        if batch.memory:
            lines.append(f"{d} -M {batch.memory}")
        return {"walltime": walltime_for("lsf", walltime), "slots": str(batch.ntasks * batch.cpus_per_task),
                "options": "\n".join(lines + _extra(d, batch.extra_directives))}


_SCHEDULERS: dict[str, type[SlurmScheduler] | type[PBSScheduler] | type[LSFScheduler]] = {
    "slurm": SlurmScheduler, "pbs": PBSScheduler, "lsf": LSFScheduler}


def make_scheduler(settings: BatchSettings) -> Scheduler:
    return _SCHEDULERS[settings.scheduler]()


# ------------------------------------------------------------------------------------------------ scripts
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_template(text: str, values: dict[str, str], source: str = "job-script template") -> str:
    """Replace `{{name}}` placeholders; an unknown name is a ConfigError, never a silently broken script."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(values))
    if unknown:
        raise ConfigError([f"unknown placeholder {{{{{u}}}}} (known: {', '.join(sorted(values))})" for u in unknown],
                          source)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_job_script(batch: BatchSettings, name: str, workdir: Path, output: Path, command: str,
                      walltime: str | None = None) -> str:
    """The job script for one calculation: resource directives, module loads, prologue, command."""
    scheduler = make_scheduler(batch)
    template = batch.template_file()
    values = {
        "job_name": name,
        "workdir": shlex.quote(str(workdir)),
        "output": str(output),
        "nodes": str(batch.nodes),
        "ntasks": str(batch.ntasks),
        "cpus_per_task": str(batch.cpus_per_task),
        **scheduler.template_values(batch, walltime or batch.walltime),
        "modules": "\n".join(f"module load {m}" for m in batch.modules),
        "prologue": "\n".join(batch.prologue),
        "command": command,
    }
    return render_template(template.read_text(), values, str(template))
