"""DFT labelling as batch jobs: the step-wise form of `run_with_handlers`, for a caller that submits a
job, polls the scheduler and may restart in between (the controller keeps the job id in its database).

    n = attempt_number(failed_attempts, len(corrections))
    script = prepare_job(dft, atoms, workdir, batch, attempt=n, corrections=corrections)  # inputs + job.sh
    job_id = scheduler.submit(script, workdir, job_name(workdir, n))
    ... scheduler.states([job_id]) until the job is no longer active ...
    result = collect_job(dft, workdir, corrections)  # LabelResult, or None: corrected (appended to
                                                     # `corrections`), prepare and submit again

The job runs `python -m alloop.label.execute <workdir>` (alloop.label.execute), i.e. only the code;
`collect_job` reads and checks the outputs where the job was submitted from, with the same diagnosis
and the same error handlers (alloop.label.handlers) as the in-process path.

Time limits: the job asks for `batch.walltime`, or for the backend's own limit (GPAW's and VASP's
`walltime_s`) plus `GRACE_S` when that is longer, so the backend's own clean timeout fires first and a
walltime correction (which doubles that limit) also gets a longer job. A job the scheduler killed at its
time limit anyway is recognised from its output file (job.out) and handled as a walltime failure.

After a crash between submit and recording the job id, the caller can tell what happened from the
work directory: `find(job_name(...))` names a job still queued or running; otherwise `job_started`
says whether the job of the current attempt ran (then collect it) or never started (submit it).

`corrections` is the caller's record of the corrections so far (the controller keeps it in its database, so the
attempt number and the next attempt's settings never depend on a file); without one, the work directory's
corrections.json stands in, for use outside a campaign.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

from ase import Atoms
from pydantic import BaseModel

from alloop.cluster.batch import (
    TIME_LIMIT_MESSAGES,
    BatchSettings,
    format_walltime,
    render_job_script,
    walltime_seconds,
)
from alloop.errors import LabelError, StateError
from alloop.label import make_backend
from alloop.label.base import DFTBackend, LabelFailure, LabelResult, load_result
from alloop.label.handlers import ATTEMPTS_DIR, correct_failure, load_corrections, resume

JOB_SCRIPT = "job.sh"
JOB_OUTPUT = "job.out"
#: seconds a job gets beyond the backend's own time limit (start-up, writing the outputs)
GRACE_S = 300
#: what SLURM writes into the job's output when someone ran scancel
_CANCELLED_PATTERNS = ("CANCELLED AT",)


def backend_for(dft: Any) -> DFTBackend:
    """`dft` is a backend's settings, or the campaign's labels.dft section (`backend` + per-backend settings)."""
    settings = getattr(dft, dft.backend) if hasattr(dft, "backend") else dft
    return make_backend(settings)


def job_name(workdir: Path, attempt: int) -> str:
    """A job name unique to this work directory and attempt, the same on every call (so `find` can look
    for it after a restart); short enough for PBS's 15-character limit on older servers."""
    digest = hashlib.sha256(str(Path(workdir).resolve()).encode()).hexdigest()[:8]
    return f"al{digest}-{attempt}"


def attempt_number(failed_attempts: int, n_corrections: int) -> int:
    """One number per (failed attempts, corrections applied): the same after a restart, new for each retry and
    each custodian-style correction; job_name's `attempt`."""
    return 100 * failed_attempts + n_corrections


def job_started(workdir: Path) -> bool:
    """True once the scheduler started the current attempt's job (it creates the output file at start;
    `prepare_job` removes an old one)."""
    return (Path(workdir) / JOB_OUTPUT).exists()


def _time_limit_s(settings: BaseModel) -> float | None:
    """The backend's own time limit, `walltime_s` (GPAW, VASP; replay has none)."""
    value = getattr(settings, "walltime_s", None)
    return None if value is None else float(value)


def job_walltime(settings: BaseModel, batch: BatchSettings) -> str:
    limit = _time_limit_s(settings)
    if limit is None or limit + GRACE_S <= walltime_seconds(batch.walltime):
        return batch.walltime
    return format_walltime(limit + GRACE_S)


def prepare_job(dft: Any, atoms: Atoms, workdir: Path, batch: BatchSettings, attempt: int = 0,
                corrections: list[dict[str, Any]] | None = None) -> Path:
    """Write the inputs (with the settings of the last correction, if any) and the job script
    workdir/job.sh; returns the script's path. `attempt` only names the job in the script: pass the
    same `job_name(workdir, attempt)` to `submit`."""
    workdir = Path(workdir).resolve()
    if load_result(workdir) is not None:
        raise StateError(f"{workdir} already holds a finished result: collect_job returns it, no job needed")
    backend = resume(backend_for(dft), load_corrections(workdir) if corrections is None else corrections)
    backend.prepare(atoms, workdir)
    (workdir / JOB_OUTPUT).unlink(missing_ok=True)
    launcher = batch.launcher()
    command = " ".join([shlex.quote(batch.interpreter()), "-m", "alloop.label.execute",
                        *(["--launcher", shlex.quote(launcher)] if launcher else []), shlex.quote(str(workdir))])
    name = job_name(workdir, attempt)
    script = workdir / JOB_SCRIPT
    script.write_text(render_job_script(batch, name, workdir, workdir / JOB_OUTPUT, command,
                                        job_walltime(backend.settings, batch)))
    script.chmod(0o755)
    return script


def collect_job(dft: Any, workdir: Path, corrections: list[dict[str, Any]] | None = None,
                max_corrections: int = 3) -> LabelResult | None:
    """Read a job's outputs once it left the queue (never while it is pending or running).

    Returns the result (also when result.json was already written), or None after a correction was
    recorded (appended to `corrections` and written to corrections.json; the failed attempt is archived under
    attempts/; prepare and submit again). Raises a
    LabelError as `run_with_handlers` would: non-retryable (budget spent, nothing left to correct, or a
    failure no code can fix) → quarantine; retryable but unknown to every handler (the job was
    cancelled, or died before running the code) → the caller may resubmit it as it is, within its own
    attempt limit.
    """
    workdir = Path(workdir).resolve()
    done = load_result(workdir)
    if done is not None:
        return done
    if corrections is None:
        corrections = load_corrections(workdir)
    elif _unrecorded_correction(workdir, corrections):
        return None
    backend = resume(backend_for(dft), corrections)
    try:
        return backend.finalize(workdir)
    except LabelError as err:
        correct_failure(backend, workdir, _with_scheduler_verdict(workdir, err), corrections, max_corrections)
        return None


def _unrecorded_correction(workdir: Path, corrections: list[dict[str, Any]]) -> bool:
    """A correction made before a crash that the caller never recorded: its attempt is archived under the next
    number and corrections.json extends the caller's list by it. Then it is appended to `corrections` (for the
    caller to record) instead of reading a work directory whose inputs were archived."""
    on_disk = load_corrections(workdir)
    n = len(corrections)
    if len(on_disk) != n + 1 or on_disk[:n] != corrections or not (workdir / ATTEMPTS_DIR / str(n)).is_dir():
        return False
    corrections.append(on_disk[-1])
    return True


def _with_scheduler_verdict(workdir: Path, err: LabelError) -> LabelError:
    """Add what the job's output file says to an unfinished run: killed at the time limit (then it is a
    walltime failure, whatever the backend saw), cancelled, or the last lines it printed."""
    if getattr(err, "kind", None) not in ("unfinished", "crash"):
        return err
    path = workdir / JOB_OUTPUT
    text = path.read_text(errors="replace") if path.is_file() else ""
    if any(p in text for p in TIME_LIMIT_MESSAGES):
        return LabelFailure(f"the batch job was killed at its time limit; see {path}", True, "walltime",
                            getattr(err, "codes", ()))
    if getattr(err, "kind", None) == "crash":
        return err
    if any(p in text for p in _CANCELLED_PATTERNS):
        why = "the batch job was cancelled (scancel, preemption or an administrator)"
    elif not path.is_file():
        why = f"the batch job left no output file {path}: it never started"
    else:
        tail = "\n    ".join(text.strip().splitlines()[-3:])
        why = f"last lines of {path}:\n    {tail}"
    return LabelFailure(f"{err.reason}\n  {why}", err.retryable, "unfinished", getattr(err, "codes", ()))
