"""Typed exceptions with messages written for the person running the campaign."""

from __future__ import annotations

import errno


class AlloopError(Exception):
    """Base class: anything alloop raises on purpose."""


class ConfigError(AlloopError):
    """The campaign file (or an ensemble file) is malformed; carries every problem found."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + f"{len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


class MissingFileError(AlloopError):
    """A file alloop needs (model checkpoint, PAW setup, POTCAR, potential) is not where it should be."""

    def __init__(self, path: object, what: str, fix: str) -> None:
        self.path = path
        super().__init__(f"{what} not found: {path}\n  fix: {fix}")


class UnphysicalStructureError(AlloopError):
    """A configuration cannot be computed: overlapping atoms, NaN coordinates, a degenerate cell."""


class MemberError(AlloopError):
    """A uMLIP ensemble member cannot be loaded or cannot handle a structure."""


class LabelError(AlloopError):
    """A labelling calculation (DFT or uMLIP) failed; `reason` is stored with the configuration."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


class FitError(AlloopError):
    """An ACE fit or active-set construction failed."""


class StateError(AlloopError):
    """The campaign database is inconsistent with the request (wrong campaign, newer schema, locked)."""


class CampaignChangedError(AlloopError):
    """The campaign file changes settings that what the database already holds was made with."""


class MemberEnvironmentError(AlloopError):
    """A member environment (`alloop env create`) could not be built or cannot load its family."""


class DirectoryBusyError(AlloopError):
    """Another thread or process holds the lock of a work directory (`alloop.locks.exclusive_dir`)."""

    def __init__(self, path: object, holder_pid: str) -> None:
        self.path = path
        self.holder_pid = holder_pid
        super().__init__(f"{path} is in use by another process (pid {holder_pid}, or a thread of it)")


class DiskFullError(AlloopError):
    """A file system alloop writes to is full, over quota or read-only: the campaign stops with nothing of the step
    committed, and `alloop run` resumes once there is space. `what` could not write, `problem` is `disk_problem`'s
    answer, `where` the folder whose file system to free."""

    def __init__(self, what: str, problem: str, where: object) -> None:
        super().__init__(f"{what} could not write its results ({problem}); nothing of it was committed. Free space on "
                         f"the file system of {where} (`df -h {where}`), or make it writable, then run `alloop run` "
                         "again: the campaign resumes where it stopped")


#: what a full, over-quota or read-only file system looks like: as an OSError, or in the words a subprocess printed
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_DISK_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "database or disk is full")


def disk_problem(exc: BaseException) -> str | None:
    """The file-system failure behind `exc` (itself, its cause, or the message of a subprocess it carries), or None."""
    seen: BaseException | None = exc
    for _ in range(16):  # a chain of causes, never a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in _DISK_ERRNOS:
            return f"{seen.strerror}: {seen.filename}" if seen.filename else str(seen.strerror)
        text = str(getattr(seen, "reason", "") or seen)
        word = next((w for w in _DISK_WORDS if w in text), None)
        if word is not None:
            return word
        seen = seen.__cause__ or seen.__context__
    return None
