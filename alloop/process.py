"""Child processes (GPAW, pacemaker) that must not outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


def die_with_parent() -> None:
    """Use as `preexec_fn`: on Linux the kernel kills the child when its parent dies (a Dask worker whose
    controller was killed with `kill -9`), so no orphaned calculation or fit keeps running and writing
    into a work directory that a restarted controller is using. Elsewhere it does nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_child(
    cmd: str | list[str],
    *,
    cwd: Path,
    stdout: IO[str],
    stderr: IO[str] | int,
    timeout_s: float | None,
    env: dict[str, str] | None = None,
    shell: bool = False,
) -> tuple[int, bool]:
    """Run a code to completion in its own process group, killing the whole group (MPI ranks included)
    after `timeout_s`. Returns (return code, timed out). The child dies with this process."""
    proc = subprocess.Popen(cmd, shell=shell, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(), True
