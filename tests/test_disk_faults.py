"""A full or read-only disk is the machine's fault, not the calculation's: it stops the campaign with a message
that says what to free, and counts against nothing (a DFT attempt, an iteration). The whole run on a real 50 MB
file system, filled mid-iteration and resumed, is tests/benchmarks/bench_disk_full.py (it needs to mount one)."""

from __future__ import annotations

import errno

import pytest
from ase.build import bulk

from alloop.controller import tasks
from alloop.errors import LabelError, disk_problem
from alloop.label import GPAWSettings
from alloop.structures import atoms_to_json


@pytest.mark.parametrize("raised, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/scratch/dft/ab/result.json"), "No space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
    (LabelError("GPAW crashed:\n  OSError: [Errno 28] No space left on device: 'gpaw.txt'", True), "No space left on device"),
])
def test_a_dft_task_on_a_full_disk_says_so_and_is_not_a_failed_calculation(monkeypatch, tmp_path, raised, words):
    def full(*_args, **_kwargs):
        raise raised

    monkeypatch.setattr("alloop.label.compute_label", full)
    res = tasks.dft_task(GPAWSettings(), atoms_to_json(bulk("W", "bcc", a=3.17)), str(tmp_path / "wd"))
    assert not res["ok"] and words in res["disk_full"]


def test_other_failures_are_not_taken_for_a_full_disk(monkeypatch, tmp_path):
    def scf(*_args, **_kwargs):
        raise LabelError("SCF did not converge in 100 iterations", True)

    monkeypatch.setattr("alloop.label.compute_label", scf)
    res = tasks.dft_task(GPAWSettings(), atoms_to_json(bulk("W", "bcc", a=3.17)), str(tmp_path / "wd"))
    assert not res["ok"] and "disk_full" not in res and res["retryable"]
    assert disk_problem(ValueError("no")) is None


def test_the_cause_of_an_error_is_looked_at():
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/data/alloop.db")
        except OSError as exc:
            raise RuntimeError("could not save") from exc
    except RuntimeError as outer:
        assert disk_problem(outer) == "Read-only file system: /data/alloop.db"
