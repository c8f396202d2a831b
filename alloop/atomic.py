"""Files that mean "done": written so that a reader, a restarted controller or a power cut never sees a
half-written one.

    write_json_atomic(workdir / "result.json", result)      # the old file or the complete new one, on disk
    fsync_paths([potential, active_set])                    # outputs reach the disk ...
    write_json_atomic(workdir / "fit_done.json", record)    # ... before the marker that claims them

`write_json_atomic` writes a temporary file beside the target, flushes and fsyncs it, renames it over the
target (atomic on POSIX) and fsyncs the folder, so the rename itself survives a crash. A temporary file
left by a killed writer is named `.<name>.<pid>.tmp`; cleaners may remove those.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = None) -> None:
    """Write `data` as JSON to `path`: readers see the old file or the complete new one, never a part,
    and once this returns the new file survives a crash of the machine."""
    write_text_atomic(path, json.dumps(data, indent=indent))


def write_text_atomic(path: str | Path, text: str) -> None:
    """`write_json_atomic` for text (an HTML page a browser may reload while it is rebuilt)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_paths([path.parent])


def fsync_paths(paths: Iterable[str | Path]) -> None:
    """Flush files (or folders: their entries) to the disk, e.g. a fit's outputs before the file that says
    they exist is written."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
