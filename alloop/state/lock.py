"""A database lock with a heartbeat, so two controllers never drive one campaign.

A holder that stops refreshing (killed, node lost) is replaced once its heartbeat is older than the
time-to-live, or at once when it ran on this host and its process is gone."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from alloop.errors import StateError
from alloop.state.store import Store

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ControllerLock:
    def __init__(self, store: Store, campaign_id: int, ttl: float = 120.0) -> None:
        self.store = store
        self.cid = campaign_id
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        now = time.time()
        with self.store.engine.begin() as c:
            row = c.execute(text("SELECT host, pid, token, heartbeat FROM controller_lock WHERE campaign_id=:c"), {"c": self.cid}).first()
            if row is not None and row.token != self.token:
                stale = now - row.heartbeat > self.ttl
                dead_here = row.host == self.host and not _pid_alive(int(row.pid))
                if not (stale or dead_here):
                    raise StateError(
                        f"campaign is already driven by a controller on {row.host} (pid {row.pid}, heartbeat "
                        f"{now - row.heartbeat:.0f} s ago); stop it first, or wait {self.ttl:.0f} s after it died"
                    )
            c.execute(
                text(
                    "INSERT OR REPLACE INTO controller_lock (campaign_id, host, pid, token, acquired_at, heartbeat) "
                    "VALUES (:c, :h, :p, :t, :now, :now)"
                ),
                {"c": self.cid, "h": self.host, "p": self.pid, "t": self.token, "now": now},
            )
        self._thread = threading.Thread(target=self._beat, name="alloop-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                with self.store.engine.begin() as c:
                    c.execute(
                        text("UPDATE controller_lock SET heartbeat=:t WHERE campaign_id=:c AND token=:tok"),
                        {"t": time.time(), "c": self.cid, "tok": self.token},
                    )
            except DBAPIError as exc:  # a full disk, a busy moment: the next beat tries again; the controller says why it stops
                log.warning("controller heartbeat not written (%s); trying again in %.0f s", exc.orig, self.ttl / 4)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.store.engine.begin() as c:
                c.execute(text("DELETE FROM controller_lock WHERE campaign_id=:c AND token=:tok"), {"c": self.cid, "tok": self.token})
        except DBAPIError as exc:
            # on a full disk the controller is stopping for that reason already; its lock is taken over by the next
            # `alloop run` on this host at once (its pid is gone), elsewhere after the ttl
            log.warning("the controller lock could not be released (%s); the next `alloop run` takes it over", exc.orig)

    def __enter__(self) -> ControllerLock:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
