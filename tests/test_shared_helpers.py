"""The three helpers every capability shares: atomic files (alloop.atomic), work-directory locks
(alloop.locks) and supervised child processes (alloop.process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alloop.atomic import fsync_paths, write_json_atomic, write_text_atomic
from alloop.errors import DirectoryBusyError
from alloop.locks import exclusive_dir, lock_file
from alloop.process import run_captured, run_child, signal_name


def test_an_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "fit_done.json"
    write_json_atomic(target, {"version": 1}, indent=1)
    write_json_atomic(target, {"version": 2})
    write_text_atomic(tmp_path / "index.html", "<html></html>")
    fsync_paths([target, tmp_path])
    assert json.loads(target.read_text()) == {"version": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit_done.json", "index.html"]


def test_a_held_directory_makes_another_process_wait_or_refuse(tmp_path: Path) -> None:
    workdir = tmp_path / "fit"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom alloop.locks import exclusive_dir\n"
        f"with exclusive_dir({str(workdir)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusyError, match=rf"pid {holder.pid}\b"):
            with exclusive_dir(workdir, wait=False):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_dir(workdir, wait=False):  # the kernel dropped the dead holder's lock
        assert lock_file(workdir) == tmp_path / ".fit.lock" and lock_file(workdir).is_file()


def test_the_holder_may_lock_again_but_another_thread_may_not(tmp_path: Path) -> None:
    refused: list[BaseException] = []

    def other_thread() -> None:
        try:
            with exclusive_dir(tmp_path / "fit", wait=False):
                pass
        except DirectoryBusyError as exc:
            refused.append(exc)

    with exclusive_dir(tmp_path / "fit"):  # a Dask task around a fit ...
        with exclusive_dir(tmp_path / "fit", wait=False):  # ... that locks its own work directory
            t = threading.Thread(target=other_thread)
            t.start()
            t.join()
        t = threading.Thread(target=other_thread)  # still held by the outer block
        t.start()
        t.join()
    assert len(refused) == 2
    other_thread()  # released
    assert len(refused) == 2


def test_a_child_past_its_time_limit_is_stopped_with_its_whole_process_group(tmp_path: Path) -> None:
    # the shell starts a grandchild (as mpirun starts ranks); both must go
    script = f"sleep 60 & echo $! > {tmp_path / 'grandchild'}; wait"
    t0 = time.monotonic()
    with open(tmp_path / "out", "w") as out:
        rc, timed_out = run_child(script, shell=True, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  timeout_s=1, grace_s=2)
    assert timed_out and rc < 0 and time.monotonic() - t0 < 10
    grandchild = Path(f"/proc/{int((tmp_path / 'grandchild').read_text())}/status")
    time.sleep(0.2)
    # gone, or a zombie waiting for whoever adopted it to reap it
    assert not grandchild.exists() or "State:\tZ" in grandchild.read_text()


def test_a_short_command_gives_its_output_and_exit_code() -> None:
    done = run_captured([sys.executable, "-c", "import sys; print('out'); sys.exit('bad input')"], timeout_s=30)
    assert (done.returncode, done.stdout.strip(), done.tail()) == (1, "out", "bad input") and not done.timed_out
    slow = run_captured([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=0.5)
    assert slow.timed_out and slow.returncode < 0
    assert signal_name(9) == "signal 9 (SIGKILL)" and signal_name(99) == "signal 99"


def test_an_interrupted_caller_takes_its_child_down_with_it(tmp_path: Path) -> None:
    class Interrupted(Exception):
        pass

    def interrupt(*_: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(Interrupted):
            run_child(f"echo $$ > {tmp_path / 'pid'}; exec sleep 60", shell=True, timeout_s=None, grace_s=2)
    finally:
        signal.signal(signal.SIGALRM, previous)
    status = Path(f"/proc/{int((tmp_path / 'pid').read_text())}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_the_fit_uses_the_shared_helpers_and_the_shared_error_metrics() -> None:
    import inspect

    from alloop.train import fit, frame

    source = inspect.getsource(fit) + inspect.getsource(frame)
    for own in ("def _write_json_atomic", "def _fsync", "def _locked", "def _signal_name", "subprocess.Popen",
                "fcntl", "os.killpg", "python-ace=="):
        assert own not in source, own
    # the fit's own errors are alloop.train.evaluate's, not a second formula (pacemaker runs with --no-predict)
    assert "errors_against" in inspect.getsource(fit._rmse) and "error_metrics(" not in source


def test_a_fit_locks_its_directory_as_its_task_does(tmp_path: Path) -> None:
    # fit_ace takes exclusive_dir(workdir, wait=False): within the task that holds it, it enters again; from
    # another thread it is refused at once
    workdir = tmp_path / "iter_000" / "fit"
    with exclusive_dir(workdir):
        with exclusive_dir(workdir, wait=False):
            pass
        refused: list[BaseException] = []

        def fit_elsewhere() -> None:
            try:
                with exclusive_dir(workdir, wait=False):
                    pass
            except DirectoryBusyError as exc:
                refused.append(exc)

        t = threading.Thread(target=fit_elsewhere)
        t.start()
        t.join()
        assert len(refused) == 1


def test_the_sweep_routes_by_the_loops_rule() -> None:
    import numpy as np

    from alloop.train.sweep import SweepData, uses_dft
    from alloop.uq import partition

    u = np.array([0.0, 0.5, 1.0, 2.0, np.nan, np.inf])
    data = SweepData([], u, np.zeros(6), [], np.zeros(6), [], None)
    for u_c in (0.0, 1.0, np.inf):
        assert (uses_dft(data, u_c) == ~partition(u, u_c)).all()
    assert uses_dft(data, np.inf).tolist() == [False] * 4 + [True, True]


def test_alloop_properties_takes_its_teacher_by_the_label_member_rule() -> None:
    import argparse

    from alloop.cli.properties import _teacher_spec
    from alloop.ensemble import label_members, resolve_ensemble

    spec = _teacher_spec(argparse.Namespace(ensemble="offline-fast", reference=None))
    assert spec.name == label_members(resolve_ensemble("offline-fast"))[0]


def test_every_per_file_cache_keys_on_one_file_stamp_and_reads_a_rewritten_file_again(tmp_path: Path) -> None:
    import inspect

    import numpy as np
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from alloop.ensemble.adapters import replay as replay_adapter
    from alloop.generate import sources
    from alloop.io import file_stamp
    from alloop.label import replay
    from alloop.train import model

    for module in (replay_adapter, sources, replay, model):
        text = inspect.getsource(module)
        assert "file_stamp(" in text and "st_mtime" not in text and "_CACHE:" not in text, module.__name__

    def labelled(path: Path, energy: float) -> None:
        a = Atoms("W2", positions=[[0, 0, 0], [1.6, 1.6, 1.6]], cell=[3.2] * 3, pbc=True)
        a.calc = SinglePointCalculator(a, energy=energy, forces=np.zeros((2, 3)))
        write(path, [a], format="extxyz")

    path = tmp_path / "dft.extxyz"
    labelled(path, -20.0)
    first = file_stamp(path)
    a = replay.labelled_configurations(path).__next__()[1]
    assert replay.replayed_energies(replay.ReplaySettings(sources=[path]), [a]).tolist() == [-20.0]
    time.sleep(0.01)
    labelled(path, -21.5)
    assert file_stamp(path) != first
    assert replay.replayed_energies(replay.ReplaySettings(sources=[path]), [a]).tolist() == [-21.5]


def test_lammps_runs_supervised_and_a_failed_run_says_its_exit_code(tmp_path: Path) -> None:
    import inspect

    from ase.build import bulk

    from alloop.explore import lammps_engine
    from alloop.explore.settings import ExploreSettings

    assert "subprocess" not in inspect.getsource(lammps_engine) and "run_captured(" in inspect.getsource(lammps_engine)
    fake = tmp_path / "lmp"
    fake.write_text("#!/bin/sh\necho 'ERROR: pair style pace/extrapolation is not known' > log.lammps\nexit 3\n")
    fake.chmod(0o755)
    (tmp_path / "p.yaml").write_text("")
    (tmp_path / "p.asi").write_text("")
    s = ExploreSettings(engine="lammps", lammps_command=str(fake))
    with pytest.raises(lammps_engine.LammpsError, match=r"(?s)exit 3\).*pair style pace.*ML-PACE"):
        lammps_engine.run_trajectory(tmp_path / "p.yaml", tmp_path / "p.asi", bulk("W", cubic=True), s, 1,
                                     tmp_path / "run", None)  # type: ignore[arg-type]
