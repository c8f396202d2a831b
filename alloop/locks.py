"""Exclusive use of a work directory across processes.

A controller killed with `kill -9` can leave a Dask worker (and the DFT code or fit it started) running
for a while. The next controller sends the same task again; without a lock both would write into one
directory. `flock` is released by the kernel when its holder dies, so a stale lock cannot block anyone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

@contextmanager
def exclusive_dir(path: str | Path) -> Iterator[Path]:
    """Hold the directory's lock (waiting for any other holder to finish), creating the directory.

    The lock file sits beside the directory, not in it: error handlers and fits move or clean the
    directory's contents, and a moved lock file would no longer exclude anyone."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing drops the flock
