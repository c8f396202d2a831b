"""Exclusive use of a work directory across processes.

A controller killed with `kill -9` can leave a Dask worker (and the DFT code or fit it started) running
for a while. The next controller sends the same task again; without a lock both would write into one
directory. `flock` is released by the kernel when its holder dies, so a stale lock cannot block anyone.

    with exclusive_dir(workdir):                 # wait for any other holder
        ...
    with exclusive_dir(workdir, wait=False):     # or raise DirectoryBusyError at once
        ...

The lock is re-entrant within one thread: a function that locks its work directory (a fit) may be
called by one that already holds it (the Dask task around it) without deadlocking on itself. Another
thread or process waits (or, with wait=False, gets DirectoryBusyError naming the holder's pid).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alloop.errors import DirectoryBusyError

# flock excludes per open file, not per process: a second open of the lock file by the thread that holds
# it would wait for itself. The locks this process holds, per thread, let that thread enter again.
_HELD: dict[tuple[Path, int], int] = {}
_HELD_LOCK = threading.Lock()


def lock_file(path: str | Path) -> Path:
    """The lock file of a work directory: beside it, not in it, since error handlers and fits move or
    clean the directory's contents, and a moved lock file would no longer exclude anyone."""
    path = Path(path).absolute()
    return path.parent / f".{path.name}.lock"


@contextmanager
def exclusive_dir(path: str | Path, *, wait: bool = True) -> Iterator[Path]:
    """Hold the directory's lock, creating the directory. wait=True waits for any other holder to finish;
    wait=False raises DirectoryBusyError if another thread or process holds it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    key = (lock_file(path), threading.get_ident())
    with _HELD_LOCK:
        if key in _HELD:
            _HELD[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _HELD_LOCK:
                _HELD[key] -= 1
        return
    fd = os.open(key[0], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DirectoryBusyError(path, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        with _HELD_LOCK:
            _HELD[key] = 1
        try:
            yield path
        finally:
            with _HELD_LOCK:
                del _HELD[key]
    finally:
        os.close(fd)  # closing drops the flock
