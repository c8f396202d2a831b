"""Child processes (GPAW, VASP, pacemaker, pip, scheduler commands) that must not outlive the process that
started them, nor run past their time limit.

    with open(log, "a") as out:                              # a long run, output to a file
        rc, timed_out = run_child(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, timeout_s=3600)
    done = run_captured(["squeue", "-h"], timeout_s=120)     # a short command, output captured
    if done.returncode != 0: raise ...(done.stderr)

Both start the child in its own process group (session) and, on a timeout or when the caller is
interrupted (KeyboardInterrupt, SystemExit, any exception while waiting), stop the whole group: SIGTERM,
then SIGKILL after `grace_s`. So MPI ranks and pip's build subprocesses go too. On Linux the child also
dies with its parent (`die_with_parent`): a Dask worker whose controller was killed with `kill -9` leaves
no orphaned calculation writing into a work directory a restarted controller is using.

A return code below zero is the signal that killed the child (`signal_name(-rc)` says which).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: seconds a stopped child gets between SIGTERM and SIGKILL
GRACE_S = 10.0


def die_with_parent() -> None:
    """Use as `preexec_fn`: on Linux the kernel kills the child when its parent dies. Elsewhere it does nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def stop_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> int:  # type: ignore[type-arg]
    """SIGTERM to the child's process group, SIGKILL after `grace_s`; the child's return code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=grace_s if sig == signal.SIGTERM else None)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()  # pragma: no cover - wait(None) above returns


def run_child(
    cmd: str | Sequence[str],
    *,
    cwd: str | Path | None = None,
    stdout: IO[str] | int | None = None,
    stderr: IO[str] | int | None = None,
    stdin: IO[str] | int | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    shell: bool = False,
    grace_s: float = GRACE_S,
) -> tuple[int, bool]:
    """Run `cmd` to completion in its own process group; (return code, timed out). After `timeout_s` the
    group is stopped (see the module doc) and the return code is that of the stopped child. An exception
    while waiting stops the group too, then propagates."""
    proc = subprocess.Popen(cmd if isinstance(cmd, str) else list(cmd), shell=shell, cwd=cwd, env=env, stdin=stdin,  # type: ignore[arg-type]
                            stdout=stdout, stderr=stderr, start_new_session=True, preexec_fn=die_with_parent)
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        return stop_group(proc, grace_s), True
    except BaseException:
        stop_group(proc, grace_s)
        raise


@dataclass(frozen=True)
class Finished:
    """A short command's outcome: return code, captured output (stderr is "" when merged into stdout)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def tail(self, n: int = 25) -> str:
        """The last `n` lines of what it printed (stderr, else stdout), for an error message."""
        return tail_lines(self.stderr.strip() or self.stdout, n)


def run_captured(
    cmd: Sequence[str],
    *,
    timeout_s: float | None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdin_path: str | Path | None = None,
    merge_stderr: bool = False,
) -> Finished:
    """Run a short command with its output captured as text (stderr into stdout with merge_stderr);
    supervised like `run_child`. `stdin_path`: a file fed to its standard input."""
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(stdin_path)) if stdin_path is not None else subprocess.DEVNULL
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=die_with_parent)
        try:
            out, err = proc.communicate(timeout=timeout_s)
            return Finished(proc.returncode, out or "", err or "")
        except subprocess.TimeoutExpired:
            stop_group(proc)
            out, err = proc.communicate()
            return Finished(proc.returncode, out or "", err or "", timed_out=True)
        except BaseException:
            stop_group(proc)
            raise


def signal_name(signum: int) -> str:
    """'signal 9 (SIGKILL)' for a return code of -9."""
    try:
        return f"signal {signum} ({signal.Signals(signum).name})"
    except ValueError:
        return f"signal {signum}"


def tail_lines(text: str, n: int = 15, indent: str = "") -> str:
    """The last `n` lines of `text`, each prefixed with `indent`."""
    return "\n".join(indent + line for line in text.splitlines()[-n:])
