"""Child processes (GPAW, pacemaker) that must not outlive the process that started them."""

from __future__ import annotations

import signal
import sys


def die_with_parent() -> None:
    """Use as `preexec_fn`: on Linux the kernel kills the child when its parent dies (a Dask worker whose
    controller was killed with `kill -9`), so no orphaned calculation or fit keeps running and writing
    into a work directory that a restarted controller is using. Elsewhere it does nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
