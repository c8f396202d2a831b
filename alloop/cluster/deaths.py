"""Why a Dask worker died. Dask's `KilledWorker` names the task and the workers but not how they died;
the nanny that watched the worker logs it ("Worker process 4711 was killed by signal 9", "... exited with
status 137"). For a LocalCluster those nannies log in the controller's own process, so a handler on their
logger can put the exit code or signal next to the failed attempt; batch-system nannies log into the job's
output file (the cluster's worker-logs folder), which the reason then points to.

    deaths = WorkerDeaths()
    with deaths.watching():
        ...                      # run tasks
        deaths.since(t0)         # ["Worker process 4711 was killed by signal 9 (SIGKILL)"]
"""

from __future__ import annotations

import logging
import re
import signal
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

_NANNY_LOGGER = "distributed.nanny"
_DEATH = re.compile(r"Worker process (\d+) (was killed by signal (\d+)|was killed by unknown signal|exited with status (-?\d+))")


def _describe(text: str) -> str | None:
    m = _DEATH.search(text)
    if m is None:
        return None
    if m.group(3) is not None:
        try:
            name = signal.Signals(int(m.group(3))).name
        except ValueError:
            name = "unknown signal"
        return f"{m.group(0)} ({name})"
    return m.group(0)


class WorkerDeaths(logging.Filter):
    """The recent worker deaths that this process's nannies reported, newest last.

    The nanny reports a death at INFO, which alloop's clusters silence (LocalCluster(silence_logs=WARNING)):
    while watching, the nanny's logger lets INFO through to this filter, which notes deaths and passes on
    only what the logger let through before, so the logs read as they did."""

    def __init__(self, keep: int = 50) -> None:
        super().__init__()
        self._seen: deque[tuple[float, str]] = deque(maxlen=keep)
        self._passes = logging.NOTSET

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            what = _describe(record.getMessage())
        except Exception:  # a log record must never break the controller
            what = None
        if what is not None:
            self._seen.append((record.created, what))
        return record.levelno >= self._passes

    def since(self, t: float) -> list[str]:
        return [what for at, what in self._seen if at >= t]

    @contextmanager
    def watching(self) -> Iterator[WorkerDeaths]:
        logger = logging.getLogger(_NANNY_LOGGER)
        previous = logger.level
        self._passes = logger.getEffectiveLevel()
        logger.addFilter(self)
        logger.setLevel(min(logging.INFO, self._passes))
        try:
            yield self
        finally:
            logger.removeFilter(self)
            logger.setLevel(previous)


def death_reason(what: str, error: BaseException, deaths: WorkerDeaths | None, since: float) -> str:
    """The failed attempt's reason: which work died, Dask's account, and how the worker ended if the nanny
    said so after `since` (when the work was sent)."""
    seen = deaths.since(since) if deaths is not None else []
    how = f"; {'; '.join(dict.fromkeys(seen))}" if seen else \
        "; the worker's own log (the cluster's worker-logs folder) says how it ended"
    return f"the worker running {what} died: {error}{how}"
