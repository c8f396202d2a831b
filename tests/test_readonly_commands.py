"""Read-only commands (`status`, `report`, the `generate` preview) open the database read-only (issue 21 item 3):
no migration, no write lock, no wait beside a controller that holds a write transaction, and one clear line
for a file that is not a campaign database."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from contextlib import contextmanager

import pytest

from alloop.cli import main
from alloop.state import Store
from tests.report_campaign import build_campaign_db


@pytest.fixture(scope="module")
def campaign_db(shared_data, tmp_path_factory):
    db = build_campaign_db(tmp_path_factory.mktemp("campaign") / "alloop.db", shared_data, n_configs=20, iterations=2)
    con = sqlite3.connect(db)
    with con:  # no ACE parity predictions: the timing below is the database's, not pyace's
        con.execute("UPDATE potential SET path = '/gone/output_potential.yaml'")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, so its digest tells any write
    con.close()
    return db


@contextmanager
def writer_holding_the_lock(db):
    """Another connection in the middle of a transition, as a controller between BEGIN IMMEDIATE and COMMIT."""
    w = sqlite3.connect(db, isolation_level=None)
    try:
        w.execute("BEGIN IMMEDIATE")
        w.execute("INSERT INTO event (campaign_id, ts, level, kind, message) VALUES (1, 0, 'error', 'test', 'uncommitted')")
        yield
        w.execute("ROLLBACK")
    finally:
        w.close()


def _seconds(argv, capsys) -> float:
    t = time.perf_counter()
    assert main(argv) == 0
    dt = time.perf_counter() - t
    out = capsys.readouterr().out
    assert "uncommitted" not in out
    return dt


@pytest.mark.parametrize("command", ["status", "report"])
def test_status_and_report_do_not_wait_beside_a_writer(campaign_db, command, capsys, tmp_path):
    """At most ~1 s longer than on the idle database (before: `status` waited the 60 s busy timeout, then a
    traceback). A reader that waited on the lock would wait every time, so noise on a loaded machine is
    absorbed by measuring up to three idle/locked pairs."""
    argv = [command, str(campaign_db)] + (["-o", str(tmp_path / "r")] if command == "report" else [])
    digest = hashlib.sha256(campaign_db.read_bytes()).hexdigest()
    pairs = []
    for _ in range(3):
        idle = _seconds(argv, capsys)
        with writer_holding_the_lock(campaign_db):
            locked = _seconds(argv, capsys)
        pairs.append((idle, locked))
        if locked <= idle + 1.0:
            break
    assert min(locked - idle for idle, locked in pairs) <= 1.0, pairs
    assert hashlib.sha256(campaign_db.read_bytes()).hexdigest() == digest  # nothing written, not even a migration


def test_the_generate_preview_reads_beside_a_writer(campaign_db):
    from alloop.cli.generate import _next_iteration

    with writer_holding_the_lock(campaign_db):
        t = time.perf_counter()
        idx, pot, known = _next_iteration(campaign_db, Store.open_readonly(campaign_db).campaign()["name"])
        assert time.perf_counter() - t < 5.0
    assert idx == 2 and pot is not None and known


def test_an_older_schema_is_read_as_it_is_not_migrated(campaign_db, tmp_path, capsys):
    old = tmp_path / "old.db"
    shutil.copy(campaign_db, old)
    con = sqlite3.connect(old)
    with con:  # as written by an alloop of schema version 1
        for table in ("controller_lock", "sweep_fit", "property_result", "file_fingerprint", "final_potential"):
            con.execute(f"DROP TABLE {table}")
        con.execute("ALTER TABLE configuration DROP COLUMN source_json")
        con.execute("ALTER TABLE iteration DROP COLUMN failed_stage")
        con.execute("PRAGMA user_version = 1")
    con.close()
    assert main(["status", str(old)]) == 0
    assert "iteration 1 of max" in capsys.readouterr().out
    with sqlite3.connect(old) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE name='controller_lock'").fetchone()[0] == 0


def test_a_file_that_is_not_a_campaign_database_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    for path, why in ((junk, "file is not a database"), (other, "it holds no campaign table"), (tmp_path / "absent.db", None)):
        for command in ("status", "report"):
            assert main([command, str(path)]) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert (f"{path} is not a readable campaign database ({why})" if why else "no campaign database at") in err
    from alloop.errors import StateError

    with pytest.raises(StateError, match="is not a readable campaign database"):  # a writer's open (alloop run) too
        Store.open(junk)
