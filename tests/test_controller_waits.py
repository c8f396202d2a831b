"""How the controller waits for Dask tasks: a stop request is seen within a poll even while a long task
(a fit, a DFT run) is in flight, and a task whose worker keeps dying comes back as a failed attempt
instead of crashing the controller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from alloop.controller.loop import StopRequested, _as_completed, _only_result, _optional_result


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


def test_results_arrive_as_they_finish(client):
    # library functions as tasks: the worker need not import this test module
    slow, quick = (client.submit(time.sleep, s, pure=False) for s in (0.6, 0.1))
    assert [f for f, _ in _as_completed([slow, quick], threading.Event())] == [quick, slow]


def test_a_stop_is_seen_while_a_long_task_runs(client):
    stop = threading.Event()
    fut = client.submit(time.sleep, 60, pure=False)
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(StopRequested):
        _only_result([fut], stop, "fit")
    assert time.monotonic() - t0 < 3
    fut.cancel()


def test_an_optional_task_gives_its_result_or_its_failure_and_a_stop_still_ends_the_wait(client):
    assert _optional_result(client.submit(len, "four", pure=False), threading.Event(), "test-set scoring") == (4, None)
    result, exc = _optional_result(client.submit(int, "four", pure=False), threading.Event(), "test-set scoring")
    assert result is None and isinstance(exc, ValueError)  # the caller logs it and the campaign goes on
    stop = threading.Event()
    fut = client.submit(time.sleep, 60, pure=False)
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(StopRequested):
        _optional_result(fut, stop, "properties of the potential")
    fut.cancel()


def test_a_task_whose_worker_keeps_dying_is_a_result_not_a_crash():
    from distributed.scheduler import KilledWorker
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as c:
            (_, res), = list(_as_completed([c.submit(os._exit, 9, pure=False)], threading.Event()))
            assert isinstance(res, KilledWorker)


def test_a_local_cluster_whose_nanny_gave_up_gets_fresh_workers_and_the_wait_ends(monkeypatch):
    from alloop.controller import loop

    monkeypatch.setattr(loop, "_REVIVE_EVERY_S", 1.0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as c:
        futures = [c.submit(time.sleep, 1, pure=False) for _ in range(3)]
        deadline = time.monotonic() + 60
        while not any(c.processing().values()):  # the worker has the tasks in hand
            assert time.monotonic() < deadline, "the worker never took a task"
            time.sleep(0.05)
        # what a nanny does when its worker dies again while being restarted: it closes for good
        cluster.sync(cluster.workers[0].close)
        t0 = time.monotonic()
        done = list(_as_completed(futures, threading.Event()))
        assert len(done) == 3 and time.monotonic() - t0 < 60
        assert len(c.scheduler_info()["workers"]) == 1


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _wait_until(proc: subprocess.Popen, reached, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not reached():
        assert proc.poll() is None, f"alloop run exited with {proc.returncode} before {what}: {proc.stdout.read()}"
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout_s:g} s"
        time.sleep(0.005)


@pytest.mark.parametrize("moment", ["handler installed", "campaign file read"])
def test_a_sigterm_in_the_first_instants_of_alloop_run_is_a_stop_not_a_death(tmp_path, moment):
    """SIGTERM at the first instant `alloop run` can take it (its handler is in place, before the command line
    is built) and once the campaign file is read (the log opened in the workdir, the cluster about to start):
    a stop with exit 0, whatever the machine's speed (the test waits for those states, it does not sleep)."""
    (tmp_path / "campaign.yaml").write_text("name: w\nelements: [W]\nensemble: offline-fast\nworkdir: run\n")
    proc = subprocess.Popen([sys.executable, "-m", "alloop", "run", str(tmp_path / "campaign.yaml")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if moment == "handler installed":
        _wait_until(proc, lambda: _catches_sigterm(proc.pid), "the SIGTERM handler")
    else:
        _wait_until(proc, (tmp_path / "run" / "alloop.log").exists, "the campaign's log")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "campaign 'w': stopped" in out, out
    if moment == "handler installed":  # the request was noted before the campaign was even read
        assert "stopped on request before the controller started" in out, out


def test_alloop_run_in_process_gives_the_signal_handlers_back(tmp_path):
    from alloop.cli import main

    (tmp_path / "campaign.yaml").write_text("name: w\nelements: [W]\nensemble: no-such-ensemble\n")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["run", str(tmp_path / "campaign.yaml")]) == 2  # refused: unknown ensemble
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
