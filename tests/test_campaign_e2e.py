"""A tiny campaign on real parts (SevenNet + CHGNet, GPAW, pacemaker), run through the CLI, and the same
campaign interrupted and resumed: killed with `kill -9` at several moments, stopped with SIGTERM in every
stage, and a chaos run of SIGKILLs and SIGTERMs at random instants after the aimed kills (6 at CI size; ALLOOP_CHAOS_KILLS=30 is the
full soak, tests/chaos.py). The database must end up with the
same configurations and labels as the undisturbed run, no DFT job twice and no finished calculation or fit
repeated; every SIGTERM must end the controller with exit 0 within 10 s. The undisturbed runs are the
session's `tiny_reference` and `exploring_reference` (tests/conftest.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.campaigns import EXPLORE, ITERATIONS, alloop, finished_files, run_to_end, snapshot, stage
from tests.campaigns import tiny_campaign as _campaign
from tests.chaos import (ChaosRun, InterruptionLog, Kill, campaign_evidence, chaos_kills, chaos_seeds, draw_plan,
                         evidence_on_failure, last_log_line)

pytestmark = pytest.mark.slow

def _assert_same_campaign(db: Path, reference_db: Path) -> None:
    got, want = snapshot(db), snapshot(reference_db)
    assert got["status"] == want["status"] == "max_iterations"
    assert got["configs"] == want["configs"]
    assert got["jobs"] == want["jobs"]  # same DFT jobs, each once (dft_job is unique per configuration)
    assert [(h, src, st) for h, src, st, _ in got["labels"]] == [(h, src, st) for h, src, st, _ in want["labels"]]
    assert [e for *_, e in got["labels"]] == pytest.approx([e for *_, e in want["labels"]], abs=1e-4)
    assert [i for i, _ in got["potentials"]] == [i for i, _ in want["potentials"]]


def test_tiny_campaign_runs_end_to_end_and_reports_its_status(tiny_reference):
    campaign, out = tiny_reference
    assert "max_iterations" in out and "trained potential:" in out
    status = subprocess.run([sys.executable, "-m", "alloop", "status", str(campaign), "--json"],
                            capture_output=True, text=True, check=True)
    s = json.loads(status.stdout)
    assert s["iteration"] == ITERATIONS - 1 and s["stage"] == "done" and s["converged"] is False
    assert Path(s["potential"]["path"]).is_file()
    assert s["labels"]["dft"] >= 1 and s["labels"]["umlip"] >= 1, s["labels"]
    assert len(s["gamma"]) == ITERATIONS  # one γ evaluation per iteration
    snap = snapshot(campaign.parent / "run" / "alloop.db")
    assert all(status == "done" for _, status in snap["jobs"])
    assert [n for _, n in snap["potentials"]] == sorted(n for _, n in snap["potentials"])
    # every routed configuration has exactly one label, DFT ones exactly one job
    assert len({h for h, *_ in snap["labels"]}) == len(snap["labels"])
    assert {h for h, src, *_ in snap["labels"] if src == "dft"} == {h for h, _ in snap["jobs"]}


# Moments to kill at: while scoring, while DFT runs (before and after a first result), during the fit,
# during the γ evaluation, and in the next iteration. The last iteration is the chaos run's: a point not met
# before it (a stage shorter than a look) is given up there.
KILL_POINTS = [
    lambda s: s[2] > 0 and s[1] == "score",
    lambda s: s[1] == "label",
    lambda s: s[1] == "label" and s[3] >= 1,
    lambda s: s[1] == "train",
    lambda s: s[1] == "evaluate",
    lambda s: s[0] == 1 and s[1] in ("label", "train"),
]


def _chaos_iteration(s: tuple[int, str, int, int] | None) -> bool:
    return s is not None and s[0] >= ITERATIONS - 1


def test_kill_minus_nine_at_every_stage_then_random_sigkills_and_sigterms_lose_nothing_and_repeat_nothing(
        tiny_reference, tmp_path):
    """One interrupted campaign, two plans: `kill -9` aimed at each moment of KILL_POINTS (iterations 0 and 1),
    then the chaos run of SIGKILLs and SIGTERMs at random instants (6 at CI size; ALLOOP_CHAOS_KILLS=30 is the
    full soak) until the last iteration's fit, which is held until the plan is spent."""
    ref_campaign, _ = tiny_reference
    campaign = _campaign(tmp_path / "killed")
    run = campaign.parent / "run"
    db = run / "alloop.db"
    aimed = InterruptionLog()
    output = tmp_path / "controllers.out"
    (seed,) = chaos_seeds(2027)[:1]
    n = chaos_kills(6)  # CI size: 4 SIGTERM, 2 SIGKILL in seed 2027's draw
    # random instants, not aimed at stages, long enough on average (a controller needs ~5 s to start) for the
    # campaign to move on between them; the last iteration's fit is held once that iteration starts, so the
    # campaign cannot end before the plan is spent
    chaos = ChaosRun(campaign, run, draw_plan(seed, n, delay_s=(2.0, 25.0), sigterm_share=0.5), seed=seed,
                     gate=FitLock(run, ITERATIONS - 1), hold_when=_chaos_iteration, output=output)

    def evidence() -> str:
        return (campaign_evidence(db, ref_campaign.parent / "run" / "alloop.db", aimed) + "\n\nthen the chaos run:\n"
                + campaign_evidence(db, None, chaos.log, [run / "alloop.log", output]))

    t0 = time.monotonic()
    with evidence_on_failure(evidence):
        with output.open("w") as log:
            finished_before: dict[str, float] = {}
            for k, point in enumerate(KILL_POINTS):
                if _chaos_iteration(stage(db)):
                    aimed.note(f"kill points {k}-{len(KILL_POINTS) - 1} not met before the last iteration")
                    break
                proc = alloop("run", str(campaign), stdout=log)
                started = time.monotonic()
                while proc.poll() is None and time.monotonic() - started < 600:
                    s = stage(db)
                    if s is not None and (point(s) or _chaos_iteration(s)):
                        time.sleep(0.5)  # land inside the stage, not on its first commit
                        at, s, doing = aimed.now(), stage(db), last_log_line(run / "alloop.log")
                        proc.send_signal(signal.SIGKILL)
                        aimed.kills.append(Kill(at, "SIGKILL", time.monotonic() - started, s, doing, proc.wait(timeout=60)))
                        break
                    time.sleep(0.2)
                else:
                    raise AssertionError(f"the controller exited with {proc.poll()} before kill point {k}")
                proc.wait(timeout=60)
                # a finished calculation or fit is never redone: its output files are never rewritten
                now = finished_files(run)
                assert {p: t for p, t in now.items() if p in finished_before} == finished_before, "a finished result was rewritten"
                finished_before = now
        assert len(aimed.kills) >= 4
        chaos.run()  # checks after each interruption that nothing finished was rewritten and no iteration failed
        assert len(chaos.log.kills) == n
        chaos.log.assert_clean_stops()
        finished = finished_files(run)
        assert {p: t for p, t in finished.items() if p in finished_before} == finished_before
        run_to_end(campaign)
        assert {p: t for p, t in finished_files(run).items() if p in finished} == finished, "finished work was redone"
        _assert_same_campaign(db, ref_campaign.parent / "run" / "alloop.db")
    print(f"{len(aimed.kills)} aimed kills, then chaos (seed {seed}): {n} interruptions "
          f"({sum(k.signal == 'SIGTERM' for k in chaos.log.kills)} SIGTERM) in {time.monotonic() - t0:.0f} s "
          f"including the run to the end\n{chaos.log.report()}")


def test_the_report_of_the_tiny_campaign(tiny_reference, tmp_path):
    """`alloop report` on a real campaign's database: real GPAW labels, a real fit, real γ (written beside the
    test, not into the shared reference's work directory)."""
    import re

    campaign, _ = tiny_reference
    # the controller keeps its own report in the workdir (rebuilt every iteration): this one must not touch it
    own = campaign.parent / "run" / "report"
    before = {p.name: p.stat().st_mtime_ns for p in own.iterdir()}
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "alloop", "report", str(campaign), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    index = out / "index.html"
    page = index.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"u_histograms.png", "parity_energy.png", "parity_force.png", "gamma.png"} <= set(images)
    assert all((index.parent / name).stat().st_size > 10_000 for name in images)
    assert "not drawn" not in page
    assert {p.name: p.stat().st_mtime_ns for p in own.iterdir()} == before


# A stop in every stage, in the order the campaign reaches them; "wait" lets the stage get under way (DFT
# running, MD exploring). The fit of iteration 0 is left alone: iteration 0's evaluate explores with it (the
# MD that grades convergence is iteration 1's exploration, stored for its generate), and a refit need not
# reproduce it to the last bit, so the candidates would differ from the undisturbed run's.
STAGE_ORDER = ("generate", "score", "label", "train", "evaluate", "done")
STOP_POINTS = [  # (iteration, stage, wait s)
    (0, "generate", 0.0),
    (0, "score", 0.0),
    (0, "label", 1.0),
    (0, "evaluate", 0.5),  # γ-driven MD with iteration 0's potential, a few seconds
    (1, "generate", 0.0),
    (1, "score", 0.0),
    (1, "label", 1.0),
    (1, "train", 2.0),
    (1, "evaluate", 0.0),
]


MIN_LIFE_S = 1.0


def _reached(s: tuple[int, str, int, int] | None, idx: int, stage_name: str) -> bool:
    return s is not None and (s[0], STAGE_ORDER.index(s[1])) >= (idx, STAGE_ORDER.index(stage_name))


def test_sigterm_in_every_stage_exits_0_within_10_s_and_the_resumed_campaign_is_the_undisturbed_one(
        exploring_reference, tmp_path):
    campaign = _campaign(tmp_path / "stopped", max_iterations=2, extra=EXPLORE)
    run = campaign.parent / "run"
    db = run / "alloop.db"
    done = InterruptionLog()
    output = tmp_path / "runs.log"

    def evidence() -> str:
        return campaign_evidence(db, exploring_reference.parent / "run" / "alloop.db", done, [run / "alloop.log", output])

    with evidence_on_failure(evidence), output.open("w") as log:
        for idx, stage_name, wait in STOP_POINTS:
            proc = alloop("run", str(campaign), stdout=log)
            started = time.monotonic()
            # the first look at or past the point: a stage shorter than a look is stopped in the next one
            while not _reached(stage(db), idx, stage_name):
                assert proc.poll() is None, f"the controller exited with {proc.returncode} before ({idx}, {stage_name})"
                assert time.monotonic() - started < 900, f"({idx}, {stage_name}) not reached in 900 s"
                time.sleep(0.1)
            # a controller lives at least a moment: a signal before the interpreter runs any code is beyond any
            # program (a walltime signal never comes within a second of the start)
            time.sleep(max(wait, MIN_LIFE_S - (time.monotonic() - started)))
            at, s, doing = done.now(), stage(db), last_log_line(run / "alloop.log")
            proc.send_signal(signal.SIGTERM)
            t = time.monotonic()
            code = proc.wait(timeout=120)
            done.kills.append(Kill(at, "SIGTERM", t - started, s, doing, code, time.monotonic() - t))
        done.assert_clean_stops()
        stops = [(k.stage[:2] if k.stage else None, k.exit_code, k.exit_s) for k in done.kills]
        # every stage, the exploring evaluate and DFT on Dask among them, took a stop
        stopped_in = {st for st, _, _ in stops if st is not None}
        assert {st for _, st in stopped_in} == set(STAGE_ORDER) - {"done"}, stopped_in
        assert (0, "evaluate") in stopped_in and (0, "label") in stopped_in, stopped_in
        assert "stopped on request" in output.read_text()
        run_to_end(campaign)
        _assert_same_campaign(db, exploring_reference.parent / "run" / "alloop.db")


class FitLock:
    """Holds an iteration's fit (the lock `alloop.locks.exclusive_dir` takes on its work directory): the
    fit waits, so the campaign cannot end while the chaos run still has interruptions to spend."""

    def __init__(self, run: Path, idx: int) -> None:
        self.path = run / f"iter_{idx:03d}" / ".fit.lock"
        self.fd: int | None = None
        self.closed = False

    def close(self) -> str:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.closed = True
        return f"holding {self.path}"

    def open(self) -> str:
        import os

        assert self.fd is not None
        os.close(self.fd)
        self.fd, self.closed = None, False
        return f"released {self.path}"
