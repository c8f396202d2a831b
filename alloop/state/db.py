"""SQLite engine set-up (WAL, BEGIN IMMEDIATE, busy timeout; the read-only commands' `mode=ro` engine) and schema
migrations from db/*.sql."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from alloop.errors import StateError
from alloop.resources import shipped_dir

BUSY_TIMEOUT_MS = 60_000
# read-only connections (WAL readers do not wait on writers; this covers a WAL recovery by another connection)
READ_BUSY_TIMEOUT_MS = 5_000


def migrations_dir() -> Path:
    return shipped_dir("db")


def _migrations() -> list[tuple[int, Path]]:
    out = []
    for p in sorted(migrations_dir().glob("[0-9][0-9][0-9][0-9]_*.sql")):
        out.append((int(p.name[:4]), p))
    return out


def latest_version() -> int:
    """The schema version this alloop migrates databases to."""
    migrations = _migrations()
    return migrations[-1][0] if migrations else 0


def make_engine(path: Path) -> Engine:
    """Engine whose transactions start with BEGIN IMMEDIATE: a read-modify-write never loses an update
    to a second writer process, and waits (busy_timeout) instead of failing with 'database is locked'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True, poolclass=None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_readonly_engine(path: Path) -> Engine:
    """Engine that can never write (SQLite `mode=ro`, `PRAGMA query_only`) and never takes or waits on a write
    lock: its transactions are plain deferred ones, which in the WAL journal go on beside a writer's."""
    # on a read-only file system no writer can exist, and a WAL database cannot make its shared-memory file
    # there: SQLite reads it as immutable
    flags = "mode=ro" if os.access(path.resolve().parent, os.W_OK) else "mode=ro&immutable=1"
    engine = create_engine(f"sqlite:///file:{path.resolve()}?{flags}&uri=true", future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: object) -> None:
        cur = dbapi_conn.cursor()
        # a WAL reader waits only in rare moments (another connection recovering the WAL): a short wait
        cur.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA query_only = ON")
        cur.close()

    return engine

def schema_version(engine: Engine) -> int:
    """The database's own schema version (PRAGMA user_version), read outside any transaction: no write lock
    is taken, so it never waits on another process's write transaction."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        version = int(cur.execute("PRAGMA user_version").fetchone()[0])
        cur.close()
    finally:
        raw.close()
    return version


def migrate(engine: Engine) -> int:
    """Apply every migration newer than the database's user_version, each in its own transaction. A database
    that is already current is only read (no write lock); the version is checked again inside each migration's
    transaction, so two processes opening an old database at once apply each migration once."""
    migrations = _migrations()
    latest = migrations[-1][0] if migrations else 0
    current = schema_version(engine)
    if current > latest:
        raise StateError(
            f"database schema version {current} is newer than this alloop knows ({latest}): upgrade alloop"
        )
    for version, path in migrations:
        if version <= current:
            continue
        script = path.read_text()
        with engine.begin() as conn:
            if conn.exec_driver_sql("PRAGMA user_version").scalar_one() >= version:
                continue  # another process applied it while this one waited for the lock
            for statement in _split_sql(script):
                conn.exec_driver_sql(statement)  # as written: no bind-parameter parsing of ':' in literals
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return latest


def _split_sql(script: str) -> list[str]:
    """The statements of a migration script, cut where SQLite itself sees a complete statement
    (`sqlite3.complete_statement`): a ';' or '--' inside a string literal, a quoted name or a trigger body
    stays part of its statement. Comments stay with the statement that follows them; pieces that hold
    nothing but comments and blank lines are dropped."""
    statements: list[str] = []
    start = 0
    for at, ch in enumerate(script):
        if ch == ";" and sqlite3.complete_statement(script[start : at + 1]):
            statements.append(script[start : at + 1].strip())
            start = at + 1
    tail = script[start:].strip()
    if tail:
        statements.append(tail)  # a last statement without its ';' (or a trailing comment, dropped below)
    return [s for s in statements if not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("--") for ln in statement.splitlines())
