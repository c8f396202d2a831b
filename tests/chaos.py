"""Chaos runs on a campaign, and the evidence a failed campaign check leaves in pytest's output.

A chaos run starts `alloop run` again and again and interrupts each controller (kill -9 or SIGTERM) at a
random instant drawn from a seeded plan, optionally cancelling a batch job beside it:

    @pytest.mark.parametrize("seed", chaos_seeds(2026))
    def test_chaos(seed, ...):
        chaos = ChaosRun(campaign, workdir, draw_plan(seed, n=20, cancel_share=0.4), seed=seed,
                         gate=..., hold_when=lambda s: ..., cancel_one=...)
        with evidence_on_failure(lambda: campaign_evidence(db, reference_db, chaos.log, [workdir / "alloop.log"])):
            chaos.run()                   # every interruption, each checked; then the gate is open again
            run_to_end(campaign)
            assert snapshot(db)["labels"] == ...

Every interruption of the plan lands, by construction: a `gate` withholds something the campaign needs to
finish (its Dask workers' partition, `tests.slurm_cluster.PartitionGate`) and closes the moment the
campaign reaches the stage `hold_when` names, so the campaign cannot end before the plan is spent; the
remaining interruptions then land in the stages it can still reach. A controller that exits by itself
before its interruption is a failure (it crashed, or the campaign ended although it must not have).

`ALLOOP_CHAOS_SEED=7` (or `=1,2,3`) replaces the test's seed and `ALLOOP_CHAOS_KILLS=40` its number of
interruptions; the defaults keep CI reproducible. For a SIGTERM share (`draw_plan(sigterm_share=...)`),
each `Kill` records the exit code and the time from the signal to the exit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from tests.campaigns import alloop, finished_files, snapshot, snapshot_diff, stage

ENV_SEED, ENV_KILLS = "ALLOOP_CHAOS_SEED", "ALLOOP_CHAOS_KILLS"

Stage = tuple[int, str, int, int]  # as `tests.campaigns.stage` reads it


def chaos_seeds(default: int) -> list[int]:
    """The seeds to draw plans from: `ALLOOP_CHAOS_SEED` (one, or several comma-separated for a soak run in
    one pytest session, sharing its fixtures), else `default`."""
    value = os.environ.get(ENV_SEED, "").strip()
    if not value:
        return [default]
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise ValueError(f"{ENV_SEED}={value!r} is not a comma-separated list of integer seeds") from None


def chaos_kills(default: int) -> int:
    """How many interruptions a plan has: `ALLOOP_CHAOS_KILLS`, else `default`."""
    value = os.environ.get(ENV_KILLS, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_KILLS}={value!r} is not a positive number of interruptions")
    return int(value)


@dataclass(frozen=True)
class Interruption:
    delay_s: float  # how long after its start the controller is interrupted
    signal: signal.Signals
    cancel: bool  # also cancel one batch job at that instant


def draw_plan(seed: int, n: int, delay_s: tuple[float, float] = (1.0, 10.0), sigterm_share: float = 0.0,
              cancel_share: float = 0.0) -> list[Interruption]:
    rng = random.Random(seed)
    return [
        Interruption(rng.uniform(*delay_s), signal.SIGTERM if rng.random() < sigterm_share else signal.SIGKILL,
                     rng.random() < cancel_share)
        for _ in range(n)
    ]


@dataclass(frozen=True)
class Kill:
    at_s: float  # since the chaos run began
    signal: str
    lived_s: float  # how long that controller ran
    stage: Stage | None  # at the instant of the signal
    doing: str  # the controller log's last line at that instant
    exit_code: int | None = None
    exit_s: float | None = None  # from the signal to the exit
    cancelled: str = ""  # the batch job cancelled beside it
    gated: bool = False


@dataclass
class InterruptionLog:
    """What was done to a campaign and when, in the order it happened."""

    seed: int | None = None
    kills: list[Kill] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, text: str) -> None:
        self.notes.append((self.now(), text))

    def assert_clean_stops(self, within_s: float = 10.0) -> None:
        """Every SIGTERM ended its controller with exit 0 within `within_s` (there was at least one)."""
        stops = [(k.stage, k.exit_code, round(k.exit_s or 0.0, 1)) for k in self.kills if k.signal == "SIGTERM"]
        assert stops, "the plan held no SIGTERM"
        bad = [s for s in stops if s[1] != 0 or s[2] >= within_s]
        assert not bad, f"SIGTERMs that did not end in exit 0 within {within_s:g} s (stage, exit, seconds): {bad}"

    @property
    def cancels(self) -> int:
        return sum(bool(k.cancelled) for k in self.kills)

    def report(self) -> str:
        head = f"{len(self.kills)} interruptions, {self.cancels} batch jobs cancelled"
        if self.seed is not None:
            head += f" (seed {self.seed}; rerun with {ENV_SEED}={self.seed})"
        lines = [head, "stage: (iteration, stage, predictions, DFT jobs done) at the signal; t, lived: seconds",
                 "   #      t  signal   lived  stage                   exit   cancelled / doing"]
        events = [(k.at_s, f"{n:4d} {k.at_s:6.1f}  {k.signal:7s} {k.lived_s:6.1f}  {_fmt_stage(k.stage):22s} "
                           f"{_fmt_exit(k):6s} {'[gated] ' if k.gated else ''}{k.cancelled + ' / ' if k.cancelled else ''}{k.doing}")
                  for n, k in enumerate(self.kills, 1)]
        events += [(t, f"   - {t:6.1f}  {text}") for t, text in self.notes]
        return "\n".join(lines + [line for _, line in sorted(events, key=lambda e: e[0])])


class Gate(Protocol):
    """Something the campaign needs in order to finish, which the test can withhold and give back."""

    closed: bool

    def close(self) -> str:
        """Withhold it; a sentence on what was done."""

    def open(self) -> str: ...


class ChaosRun:
    """Interrupt a campaign's controllers as `plan` says; each interruption is checked at once: no
    finished DFT result or fit rewritten, no iteration failed. Afterwards the gate is open again and the
    campaign can be run to its end. `cancel_one(rng)` cancels a batch job and names it (or returns "")."""

    def __init__(self, campaign: Path, workdir: Path, plan: Sequence[Interruption], *, seed: int | None = None,
                 gate: Gate | None = None, hold_when: Callable[[Stage], bool] = lambda s: False,
                 cancel_one: Callable[[random.Random], str] | None = None, env: dict[str, str] | None = None,
                 output: Path | None = None, poll_s: float = 0.2, term_grace_s: float = 60.0,
                 backoff: float = 1.5) -> None:
        self.campaign, self.workdir, self.plan = campaign, workdir, list(plan)
        self.db = workdir / "alloop.db"
        self.gate, self.hold_when, self.cancel_one = gate, hold_when, cancel_one
        self.env = env
        self.output = output or campaign.parent / "controllers.out"
        self.poll_s, self.term_grace_s, self.backoff = poll_s, term_grace_s, backoff
        self.rng = random.Random(seed)  # which job to cancel: the queue is only known at run time
        self.log = InterruptionLog(seed)

    def run(self) -> InterruptionLog:
        try:
            self._interrupt_all()
        finally:  # also after a failure: a later test must find the campaign's resources as they were
            if self.gate is not None and self.gate.closed:
                self.log.note(f"gate opened: {self.gate.open()}")
        return self.log

    def _interrupt_all(self) -> None:
        finished: dict[str, float] = {}
        stalls, progress = 0, None
        with self.output.open("a") as out:
            for n, step in enumerate(self.plan, 1):
                self._hold_if_due()
                gated = self.gate is not None and self.gate.closed
                proc = alloop("run", str(self.campaign), stdout=out, env=self.env)
                started = time.monotonic()
                # Kills that keep landing before anything new is committed (a fit longer than the interval
                # would never finish) make the next controller live longer, by half each time, so that a slow
                # machine reaches the next commit in a few kills; while the gate holds the campaign, no
                # progress is expected.
                lives = step.delay_s * self.backoff**stalls
                while time.monotonic() - started < lives and proc.poll() is None:
                    self._hold_if_due()
                    time.sleep(self.poll_s)
                if proc.poll() is not None:
                    raise AssertionError(self._exited_by_itself(n, proc.returncode))
                cancelled = self.cancel_one(self.rng) if step.cancel and self.cancel_one else ""
                at, s, doing = self.log.now(), stage(self.db), self._last_log_line()
                proc.send_signal(step.signal)
                exit_code, exit_s = self._wait(proc, step.signal)
                held = self.gate is not None and self.gate.closed
                self.log.kills.append(Kill(at, step.signal.name, time.monotonic() - started, s, doing, exit_code,
                                           exit_s, cancelled, gated or held))
                now = finished_files(self.workdir)
                rewritten = sorted(p for p, t in finished.items() if now.get(p) != t)
                assert not rewritten, f"interruption {n}: finished results or fits were rewritten: {rewritten}"
                finished = now
                s = stage(self.db)
                assert s is None or s[1] != "failed", f"interruption {n}: the iteration failed: {s}"
                moved = (s, len(now))
                stalls = 0 if moved != progress or held else stalls + 1
                progress = moved

    def _hold_if_due(self) -> None:
        if self.gate is None or self.gate.closed:
            return
        s = stage(self.db)
        if s is not None and self.hold_when(s):
            self.log.note(f"gate closed at {_fmt_stage(s)}: {self.gate.close()}")

    def _wait(self, proc: subprocess.Popen, sig: signal.Signals) -> tuple[int | None, float]:
        t = time.monotonic()
        try:
            code = proc.wait(timeout=self.term_grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)
            self.log.note(f"the controller ignored {sig.name} for {self.term_grace_s:g} s: killed")
            code = None
        return code, time.monotonic() - t

    def _exited_by_itself(self, n: int, code: int | None) -> str:
        s = stage(self.db)
        try:
            status = snapshot(self.db)["status"]
        except Exception as exc:  # no database yet, or no campaign in it
            status = f"unreadable ({exc})"
        why = ("the campaign ended although the gate must have held it: a construction error of the test"
               if status in ("converged", "max_iterations") else "the controller stopped on its own (a crash?)")
        return (f"controller {n} of {len(self.plan)} exited with {code} before its interruption, at "
                f"{_fmt_stage(s)}, campaign status '{status}': {why}; its output is in {self.output}")

    def _last_log_line(self) -> str:
        return last_log_line(self.workdir / "alloop.log")


def last_log_line(path: Path) -> str:
    """The log's last line without its date, shortened: what the controller was doing."""
    lines = tail(path, 1).splitlines() if path.is_file() else []
    return lines[-1].split(" ", 1)[-1][:140] if lines else ""


def tail(path: Path, n: int) -> str:
    if not path.is_file():
        return f"({path} does not exist)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 400 * n))
        lines = fh.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def campaign_evidence(db: Path, reference_db: Path | None = None, interruptions: InterruptionLog | None = None,
                      logs: Sequence[Path] = (), n_lines: int = 60) -> str:
    """What a failed campaign check needs next to its assertion: the database against the undisturbed
    run's, what was done to the campaign and when, and the ends of the controller logs."""
    parts = []
    if reference_db is not None:
        try:
            parts.append("database, this run (+) against the undisturbed run (-):\n"
                         + snapshot_diff(snapshot(db), snapshot(reference_db)))
        except Exception as exc:  # evidence must not hide the failure it explains
            parts.append(f"database diff impossible: {exc!r}")
    if interruptions is not None:
        parts.append("interruptions:\n" + interruptions.report())
    parts += [f"last {n_lines} lines of {p}:\n{tail(p, n_lines)}" for p in logs]
    return "\n\n".join(["=" * 30 + " campaign evidence " + "=" * 30, *parts])


@contextmanager
def evidence_on_failure(describe: Callable[[], str]) -> Iterator[None]:
    """Append `describe()` to any failure raised inside, so pytest prints it under the assertion."""
    try:
        yield
    except (Exception, pytest.fail.Exception) as exc:
        try:
            text = describe()
        except Exception as err:
            text = f"(collecting the evidence failed: {err!r})"
        exc.add_note(text)
        raise


def _fmt_stage(s: Stage | None) -> str:
    return "(no iteration yet)" if s is None else f"({s[0]}, {s[1]}, {s[2]}, {s[3]})"


def _fmt_exit(k: Kill) -> str:
    return "killed" if k.exit_code is None else f"{k.exit_code}" + (f"/{k.exit_s:.0f}s" if k.signal != "SIGKILL" else "")
