"""The campaign database: migrations, single-transaction transitions, no duplicates, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest
from ase.build import bulk

from alloop.errors import StateError
from alloop.state import NewConfiguration, Prediction, Routing, Store
from alloop.structures import atoms_to_json, config_hash


def _config(atoms, kind="bulk", status="selected", reason=None) -> NewConfiguration:
    return NewConfiguration(config_hash(atoms), kind, len(atoms), atoms.get_chemical_formula(), atoms_to_json(atoms), status, reason)


@pytest.fixture()
def store(tmp_path):
    s = Store.open(tmp_path / "c.db")
    yield s
    s.close()


def test_schema_is_migrated_and_reopening_keeps_data(tmp_path):
    s = Store.open(tmp_path / "c.db")
    assert s.schema_version == 11  # db/0011_dft_corrections.sql
    cid = s.open_campaign("w", "{}")
    s.close()
    s2 = Store.open(tmp_path / "c.db")
    assert s2.open_campaign("w", "{}") == cid
    with pytest.raises(StateError, match="belongs to campaign 'w'"):
        s2.open_campaign("other", "{}")


def test_a_configuration_is_stored_once_by_content_hash(store):
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    a = bulk("W", "bcc", a=3.17, cubic=True)
    assert store.commit_selection(cid, 0, [_config(a), _config(a.copy())]) == 1
    store.start_iteration(cid, 1)
    assert store.commit_selection(cid, 1, [_config(a)]) == 0
    assert store.current_iteration(cid) == (1, "score")


def test_routing_writes_umlip_labels_and_dft_jobs_in_one_step(store):
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    a = bulk("W", "bcc", a=3.17, cubic=True)
    b = a.copy()
    b.positions[0, 0] += 0.3
    store.commit_selection(cid, 0, [_config(a), _config(b)])
    ids = [c.id for c in store.configurations(cid, 0)]
    store.save_predictions([Prediction(ids[0], "m1", -25.0, np.zeros((2, 3)))])
    assert store.missing_predictions(ids, ["m1"]) == {"m1": [ids[1]]}
    store.commit_routing(
        cid, 0,
        [
            Routing(ids[0], 0.01, 0.01, 0.01, "umlip", -25.0, np.zeros((2, 3)), "m1"),
            Routing(ids[1], 3.0, 3.0, 3.0, "dft", dft_workdir="dft/x"),
        ],
        variant=1, u_c=1.0, members=["m1", "m2"], backend="gpaw",
    )
    jobs = store.dft_jobs(cid, 0)
    assert [j.configuration_id for j in jobs] == [ids[1]]
    assert store.complete_dft_job(jobs[0].id, "gpaw", -24.0, np.ones((2, 3)), None, {})
    assert not store.complete_dft_job(jobs[0].id, "gpaw", -24.0, np.ones((2, 3)), None, {}), "a done job is never stored twice"
    counts = store.counts(cid)
    assert counts["labels"] == {"umlip": 1, "dft": 1}
    rows = store.training_rows(cid, "m1")
    assert [r.reference_energy for r in rows] == [-25.0, None]


def test_failed_dft_is_quarantined_after_its_budget(store):
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    a = bulk("W", "bcc", a=3.17, cubic=True)
    store.commit_selection(cid, 0, [_config(a)])
    (cfg,) = store.configurations(cid, 0)
    store.commit_routing(cid, 0, [Routing(cfg.id, 5, 5, 5, "dft", dft_workdir="d")], 1, 1.0, ["m"], "gpaw")
    job = store.dft_jobs(cid)[0]
    assert store.fail_dft_job(job.id, "SCF did not converge", max_attempts=2) == "queued"
    assert store.fail_dft_job(job.id, "SCF did not converge", max_attempts=2) == "quarantined"
    assert store.configurations(cid, 0)[0].status == "quarantined"
    assert store.dft_jobs(cid) == []


def test_a_batch_job_id_is_kept_until_the_job_is_released(store):
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    store.commit_selection(cid, 0, [_config(bulk("W", "bcc", a=3.17, cubic=True))])
    (cfg,) = store.configurations(cid, 0)
    store.commit_routing(cid, 0, [Routing(cfg.id, 5, 5, 5, "dft", dft_workdir="d")], 1, 1.0, ["m"], "gpaw")
    job = store.dft_jobs(cid)[0]
    store.mark_job_running(job.id, "4711")
    assert store.dft_jobs(cid)[0].job_ref == "4711"  # a restarted controller re-attaches to job 4711
    store.release_job(job.id)  # e.g. after a correction: submit again
    assert (store.dft_jobs(cid)[0].status, store.dft_jobs(cid)[0].job_ref) == ("queued", None)
    store.mark_job_running(job.id, "4712")
    store.fail_dft_job(job.id, "cancelled", max_attempts=3)
    assert store.dft_jobs(cid)[0].job_ref is None


def test_a_full_disk_is_a_clear_error_and_leaves_the_last_committed_state(tmp_path):
    from sqlalchemy import event

    store = Store.open(tmp_path / "a.db")
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _full(dbapi_conn, _record):  # the database may not grow: what a full disk looks like to SQLite
        n = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {n}")

    geometry = atoms_to_json(bulk("W", "bcc", a=3.17, cubic=True).repeat(4))
    big = [NewConfiguration(f"h{i}", "x", 128, "W128", geometry * 20) for i in range(50)]
    with pytest.raises(StateError, match="could not be written.*run `alloop run` again"):
        store.commit_selection(cid, 0, big)
    assert store.current_iteration(cid) == (0, "generate")  # the stage did not move
    assert store.configurations(cid) == []


def _hammer(path, n):
    s = Store.open(path)
    cid = s.open_campaign("w", "{}")
    for i in range(n):
        s.log_event(cid, None, "info", "test", f"event {i}")
        (idx, _stage) = s.current_iteration(cid)
        s.set_stage(cid, idx, "score")
    s.close()


def test_two_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "c.db"
    s = Store.open(path)
    cid = s.open_campaign("w", "{}")
    s.start_iteration(cid, 0)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(path, 100)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len([e for e in s.events(cid, limit=10_000) if e["kind"] == "test"]) == 200


def test_only_one_controller_drives_a_campaign(tmp_path):
    from alloop.state.lock import ControllerLock

    s = Store.open(tmp_path / "c.db")
    cid = s.open_campaign("w", "{}")
    with ControllerLock(s, cid):
        with pytest.raises(StateError, match="already driven by a controller"):
            ControllerLock(s, cid).acquire()
    with ControllerLock(s, cid):  # released on exit: the next one gets it
        pass


def _lock_holder(s) -> tuple:
    from sqlalchemy import text

    with s.engine.connect() as c:
        return tuple(c.execute(text("SELECT host, pid, token FROM controller_lock")).one())


def test_a_dead_controllers_lock_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    from sqlalchemy import text

    from alloop.state.lock import ControllerLock

    s = Store.open(tmp_path / "c.db")
    cid = s.open_campaign("w", "{}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = ControllerLock(s, cid)
    lock.acquire()
    lock._stop.set()
    lock._thread.join(timeout=5)
    with s.engine.begin() as c:  # as if the holder had been kill -9'ed
        c.execute(text("UPDATE controller_lock SET pid=:p"), {"p": int(dead.stdout)})
    assert _lock_holder(s) == (socket.gethostname(), int(dead.stdout), lock.token)
    heir = ControllerLock(s, cid)
    heir.acquire()
    try:
        # the heir holds the lock: its host, pid and token, not the dead one's
        assert _lock_holder(s) == (heir.host, os.getpid(), heir.token) and heir.token != lock.token
        # the dead holder's late release (same token it had) does not free the heir's lock
        lock.release()
        assert _lock_holder(s) == (heir.host, os.getpid(), heir.token)
        # and the heir, alive, is not taken over in turn
        with pytest.raises(StateError, match=f"already driven by a controller on {heir.host} \\(pid {os.getpid()},"):
            ControllerLock(s, cid).acquire()
    finally:
        heir.release()
    with s.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM controller_lock")).scalar() == 0


def test_a_lock_on_another_host_is_taken_over_only_after_its_heartbeat_is_stale(tmp_path):
    from sqlalchemy import text

    from alloop.state.lock import ControllerLock

    s = Store.open(tmp_path / "c.db")
    cid = s.open_campaign("w", "{}")
    with s.engine.begin() as c:  # a live controller elsewhere: its pid cannot be checked from here
        c.execute(text("INSERT INTO controller_lock (campaign_id, host, pid, token, acquired_at, heartbeat) "
                       "VALUES (:c, 'node-17', 1, 'remote', :t, :t)"), {"c": cid, "t": time.time() - 10})
    with pytest.raises(StateError, match="already driven by a controller on node-17 \\(pid 1,"):
        ControllerLock(s, cid, ttl=120).acquire()
    assert _lock_holder(s) == ("node-17", 1, "remote")
    with s.engine.begin() as c:  # its node was lost: no heartbeat for longer than the time-to-live
        c.execute(text("UPDATE controller_lock SET heartbeat=:t"), {"t": time.time() - 121})
    heir = ControllerLock(s, cid, ttl=120)
    heir.acquire()
    try:
        assert _lock_holder(s) == (heir.host, os.getpid(), heir.token)
    finally:
        heir.release()


def test_the_final_potential_ends_the_campaign_in_the_same_transaction(store):
    cid = store.open_campaign("w", "{}")
    store.start_iteration(cid, 0)
    store.save_potential(cid, 0, "/fits/iter_000/fit/p.yaml", "/fits/iter_000/fit/p.asi", 5, {}, {})
    # the last γ evaluation decides the ending, but the campaign runs on until its final fit is stored
    store.save_gamma_eval(cid, 0, np.array([1.0, 2.0]), 1.1, {}, next_stage="final", outcome=("max_iterations", "stopped"))
    assert store.current_iteration(cid) == (0, "final")
    assert store.campaign("w")["status"] == "running"
    pending = store.final_potential(cid)
    assert pending["path"] is None and pending["outcome"] == "max_iterations"
    store.finish_final(cid, 0, "/final/fit/p.yaml", "/final/fit/p.asi", 5, {"warm_start": True}, "stopped; final potential: /final/fit/p.yaml")
    assert store.current_iteration(cid) == (0, "done")
    camp = store.campaign("w")
    assert camp["status"] == "max_iterations" and camp["message"].endswith("final potential: /final/fit/p.yaml")
    assert store.final_potential(cid)["metrics"] == {"warm_start": True}
    # a raised iteration limit undoes the ending, and with it the final potential of that ending
    store.reopen_campaign(cid, "max_iterations raised")
    assert store.final_potential(cid) is None and store.campaign("w")["status"] == "running"


def test_migration_splitter_keeps_semicolons_and_dashes_inside_literals(tmp_path, monkeypatch):
    """db._split_sql cuts where SQLite sees a complete statement: ';' and '--' in a string literal, a quoted
    name or a trigger body stay in their statement; comments between statements are dropped."""
    import shutil
    import sqlite3

    from alloop.state import db

    script = (
        "-- a leading comment; with a semicolon\n"
        "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT 'a;b -- not a comment', \"odd;name\" TEXT);\n"
        "INSERT INTO note (body) VALUES ('x; y'); -- trailing comment; still a comment\n"
        "INSERT INTO note (body, \"odd;name\") VALUES ('--dashes--', 'it''s; quoted');\n"
        "CREATE TRIGGER note_t AFTER INSERT ON note BEGIN UPDATE note SET body = body || ';t' WHERE id = NEW.id; END;\n"
        "INSERT INTO note (body) VALUES (':colon')\n"
    )
    pieces = db._split_sql(script)
    assert len(pieces) == 5
    assert pieces[0].endswith("\"odd;name\" TEXT);") and "'a;b -- not a comment'" in pieces[0]
    assert pieces[3].startswith("CREATE TRIGGER") and pieces[3].endswith("END;")
    assert db._split_sql("-- only a comment;\n\n") == []

    # applied as a migration after the shipped ones, the literals land whole
    mdir = tmp_path / "db"
    shutil.copytree(db.migrations_dir(), mdir)
    (mdir / "0099_literals.sql").write_text(script)
    monkeypatch.setattr(db, "migrations_dir", lambda: mdir)
    s = Store.open(tmp_path / "c.db")
    assert s.schema_version == 99
    s.close()
    con = sqlite3.connect(tmp_path / "c.db")
    rows = con.execute('SELECT body, "odd;name" FROM note ORDER BY id').fetchall()
    con.close()
    assert rows == [("x; y", None), ("--dashes--", "it's; quoted"), (":colon;t", None)]  # the trigger fires on the last only
