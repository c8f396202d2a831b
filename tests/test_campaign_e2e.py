"""A tiny campaign on real parts (SevenNet + CHGNet, GPAW, pacemaker, γ-driven MD), run through the CLI, and the
same campaign interrupted and resumed: stopped with SIGTERM and killed with `kill -9` in every stage of its first
iteration, then a chaos run of SIGKILLs and SIGTERMs at random instants in its last (6 at CI size;
ALLOOP_CHAOS_KILLS=30 is the full soak, tests/chaos.py). The database must end up with the same configurations
and labels as the undisturbed run (the session's `tiny_reference`, tests/conftest.py), no DFT job twice and no
finished calculation or fit repeated; every SIGTERM must end the controller with exit 0 within 10 s."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.campaigns import ITERATIONS, alloop, assert_same_campaign, finished_files, run_to_end, snapshot, stage
from tests.campaigns import tiny_campaign as _campaign
from tests.chaos import (ChaosRun, InterruptionLog, Kill, campaign_evidence, chaos_kills, chaos_seeds, draw_plan,
                         evidence_on_failure, last_log_line)

pytestmark = pytest.mark.slow

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


# The aimed interruptions, in the order the campaign reaches them: (iteration, stage, DFT jobs done, wait s,
# signal). Each lands at the first look at or past its point (a stage shorter than a look is hit in the next),
# `wait` after it, so that the stage is under way (DFT running, the fit tracing, MD exploring). Every stage takes
# a SIGTERM (a clean stop) and a kill -9 (a crash); iteration 0's evaluate runs the MD that makes iteration 1's
# candidates, so a fit rerun after its kill must give the same potential for the campaign to match the reference.
STAGE_ORDER = ("generate", "score", "label", "train", "evaluate", "done")
AIMED = [
    (0, "generate", 0, 0.0, signal.SIGTERM),
    (0, "score", 0, 0.0, signal.SIGTERM),
    (0, "score", 0, 0.5, signal.SIGKILL),
    (0, "label", 0, 1.0, signal.SIGTERM),
    (0, "label", 0, 0.5, signal.SIGKILL),
    (0, "label", 1, 0.5, signal.SIGKILL),  # after a first DFT result
    (0, "train", 0, 2.0, signal.SIGTERM),
    (0, "train", 0, 2.0, signal.SIGKILL),
    (0, "evaluate", 0, 0.5, signal.SIGTERM),
    (0, "evaluate", 0, 0.5, signal.SIGKILL),
    (1, "generate", 0, 0.0, signal.SIGTERM),  # reads the stored MD pool
]


def _resumed(log: Path, since: int) -> bool:
    """Whether the controller has logged where it resumes (`campaign '…': iteration i, stage s`) past byte
    `since` of its log: from then on it works on its stage, and a signal lands in that stage's work, not in
    the start-up that every interruption already exercises."""
    if not log.is_file():
        return False
    with log.open("rb") as fh:
        fh.seek(since)
        return b"campaign 'tiny-w': iteration" in fh.read()


def _reached(s: tuple[int, str, int, int] | None, idx: int, stage_name: str, done: int = 0) -> bool:
    if s is None:
        return False
    here, there = (s[0], STAGE_ORDER.index(s[1])), (idx, STAGE_ORDER.index(stage_name))
    return here > there or (here == there and s[3] >= done)


def _chaos_iteration(s: tuple[int, str, int, int] | None) -> bool:
    return s is not None and s[0] >= ITERATIONS - 1


def test_sigterm_and_kill_minus_nine_in_every_stage_then_random_interruptions_lose_nothing_and_repeat_nothing(
        tiny_reference, tmp_path):
    """One interrupted campaign, two plans: AIMED (a SIGTERM and a kill -9 in every stage), then the chaos run of
    SIGKILLs and SIGTERMs at random instants in the last iteration, whose fit is held until the plan is spent."""
    ref_campaign, _ = tiny_reference
    ref_db = ref_campaign.parent / "run" / "alloop.db"
    campaign = _campaign(tmp_path / "interrupted")
    run = campaign.parent / "run"
    db = run / "alloop.db"
    aimed = InterruptionLog()
    output = tmp_path / "controllers.out"
    (seed,) = chaos_seeds(2027)[:1]
    n = chaos_kills(6)  # CI size: 4 SIGTERM, 2 SIGKILL in seed 2027's draw
    # random instants, not aimed at stages, long enough on average (a controller needs ~5 s to start) for the
    # campaign to move on between them
    chaos = ChaosRun(campaign, run, draw_plan(seed, n, delay_s=(2.0, 25.0), sigterm_share=0.5), seed=seed,
                     gate=FitLock(run, ITERATIONS - 1), hold_when=_chaos_iteration, output=output)

    def evidence() -> str:
        return (campaign_evidence(db, ref_db, aimed) + "\n\nthen the chaos run:\n"
                + campaign_evidence(db, None, chaos.log, [run / "alloop.log", output]))

    t0 = time.monotonic()
    with evidence_on_failure(evidence):
        with output.open("w") as log:
            finished_before: dict[str, float] = {}
            for idx, stage_name, done, wait, sig in AIMED:
                since = (run / "alloop.log").stat().st_size if (run / "alloop.log").is_file() else 0
                proc = alloop("run", str(campaign), stdout=log)
                started = time.monotonic()
                while not (_resumed(run / "alloop.log", since) and _reached(stage(db), idx, stage_name, done)):
                    assert proc.poll() is None, f"the controller exited with {proc.returncode} before ({idx}, {stage_name})"
                    assert time.monotonic() - started < 600, f"({idx}, {stage_name}) not reached in 600 s"
                    time.sleep(0.1)
                time.sleep(wait)
                at, s, doing = aimed.now(), stage(db), last_log_line(run / "alloop.log")
                proc.send_signal(sig)
                t = time.monotonic()
                code = proc.wait(timeout=120)
                aimed.kills.append(Kill(at, sig.name, t - started, s, doing, code, time.monotonic() - t))
                # a finished calculation or fit is never redone: its output files are never rewritten
                now = finished_files(run)
                assert {p: t for p, t in now.items() if p in finished_before} == finished_before, "a finished result was rewritten"
                finished_before = now
        aimed.assert_clean_stops()
        # every stage took a stop and a kill (generate no kill: it lasts a moment), the exploring evaluate among them
        hit = {(k.signal, k.stage[1]) for k in aimed.kills if k.stage is not None}
        assert {st for g, st in hit if g == "SIGTERM"} == set(STAGE_ORDER) - {"done"}, hit
        assert {st for g, st in hit if g == "SIGKILL"} == set(STAGE_ORDER) - {"generate", "done"}, hit
        assert "stopped on request" in output.read_text()

        chaos.run()  # checks after each interruption that nothing finished was rewritten and no iteration failed
        assert len(chaos.log.kills) == n
        chaos.log.assert_clean_stops()
        finished = finished_files(run)
        assert {p: t for p, t in finished.items() if p in finished_before} == finished_before
        run_to_end(campaign)
        assert {p: t for p, t in finished_files(run).items() if p in finished} == finished, "finished work was redone"
        assert_same_campaign(db, ref_db)
    print(f"{len(aimed.kills)} aimed interruptions, then chaos (seed {seed}): {n} interruptions "
          f"({sum(k.signal == 'SIGTERM' for k in chaos.log.kills)} SIGTERM) in {time.monotonic() - t0:.0f} s "
          f"including the run to the end\n{aimed.report()}\n{chaos.log.report()}")


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
