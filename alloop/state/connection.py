"""An open campaign database as every store class holds it: its path, engine and schema version, and `_tx`,
the one transaction helper every read and write goes through (so a failed transition is one error message,
whichever class ran it). The read-only queries, the loop's writes and the sweep's table build on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from alloop.errors import StateError
from alloop.state.db import latest_version


class Database:
    """A campaign database opened by `Store.open` (writable, migrated) or `ReadOnlyStore.open_readonly`."""

    readonly: ClassVar[bool]  # a failed statement on a read-only connection was a read: it says so

    def __init__(self, path: Path, engine: Engine, schema_version: int) -> None:
        self.path = path
        self.engine = engine
        self.schema_version = schema_version

    def close(self) -> None:
        self.engine.dispose()

    def _unreadable(self, exc: DBAPIError) -> str:
        latest = latest_version()
        old = (f"; its schema version {self.schema_version} is older than this alloop's ({latest}) and a read-only "
               "command does not migrate it: `alloop run` does") if self.schema_version < latest else ""
        return f"the campaign database {self.path} could not be read ({exc.orig}){old}"

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction: all of it lands or none of it (SQLite rolls back on any error)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if self.readonly and "readonly" not in str(exc.orig):
                raise StateError(self._unreadable(exc)) from exc  # a read that failed (an older schema, a damaged file)
            # the typical causes on a cluster: a full disk or quota, a read-only or vanished file system
            raise StateError(
                f"the campaign database {self.path} could not be written ({exc.orig}); nothing of this step was "
                "saved. Free disk space (or fix the file system) and run `alloop run` again to continue"
            ) from exc
