"""A tiny campaign on real parts (SevenNet + CHGNet, GPAW, pacemaker), run through the CLI, and the same
campaign killed with `kill -9` at several moments and resumed: the database must end up with the same
configurations and labels, no DFT job twice and no finished calculation or fit repeated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.campaigns import alloop, finished_files, run_to_end, snapshot, stage
from tests.chaos import InterruptionLog, Kill, campaign_evidence, evidence_on_failure, last_log_line

pytestmark = pytest.mark.slow

# Small enough for CI (2 cores): cells of at most 8 atoms, coarse GPAW, an 8-function ACE.
# budget ≥ pool size, so selection does not depend on the fit; target_share 0 never converges, so both
# runs go through exactly max_iterations.
TINY = """\
name: tiny-w
elements: [W]
seed: 3
workdir: run
max_iterations: 2
ensemble: offline-fast
uncertainty: {{u_c: {u_c}}}
labels:
  energy_member: 7net-0
  force_member: 7net-0
  dft:
    backend: gpaw
    gpaw: {{ecut: 200, kpts: [2, 1, 1], maxiter: 120, energy_tol: 1.0e-4}}
generate:
  lattice: bcc
  max_atoms: 8
  counts: {{strained_bulk: 2, rattled_bulk: 2, vacancy: 0, interstitial: 0, surface: 0, dimer: 1, compressed: 0}}
selection: {{budget: 10}}
train: {{n_functions: 8, maxiter: 15, test_fraction: 0.0}}
convergence: {{target_share: 0.0, n_candidates: 4}}
cluster: {{n_workers: 1}}
"""


def _campaign(root: Path, u_c: float = 0.15) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "campaign.yaml"
    path.write_text(TINY.format(u_c=u_c))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, str]:
    campaign = _campaign(tmp_path_factory.mktemp("reference"))
    out = run_to_end(campaign)
    return campaign, out


def test_tiny_campaign_runs_end_to_end_and_reports_its_status(reference):
    campaign, out = reference
    assert "max_iterations" in out and "trained potential:" in out
    status = subprocess.run([sys.executable, "-m", "alloop", "status", str(campaign), "--json"],
                            capture_output=True, text=True, check=True)
    s = json.loads(status.stdout)
    assert s["iteration"] == 1 and s["stage"] == "done" and s["converged"] is False
    assert Path(s["potential"]["path"]).is_file()
    assert s["labels"]["dft"] >= 1 and s["labels"]["umlip"] >= 1, s["labels"]
    assert len(s["gamma"]) == 2  # one γ evaluation per iteration
    snap = snapshot(campaign.parent / "run" / "alloop.db")
    assert all(status == "done" for _, status in snap["jobs"])
    assert [n for _, n in snap["potentials"]] == sorted(n for _, n in snap["potentials"])
    # every routed configuration has exactly one label, DFT ones exactly one job
    assert len({h for h, *_ in snap["labels"]}) == len(snap["labels"])
    assert {h for h, src, *_ in snap["labels"] if src == "dft"} == {h for h, _ in snap["jobs"]}


# Moments to kill at: while scoring, while DFT runs (before and after a first result), during the fit,
# during the γ evaluation, and in the next iteration.
KILL_POINTS = [
    lambda s: s[2] > 0 and s[1] == "score",
    lambda s: s[1] == "label",
    lambda s: s[1] == "label" and s[3] >= 1,
    lambda s: s[1] == "train",
    lambda s: s[1] == "evaluate",
    lambda s: s[0] == 1 and s[1] in ("label", "train"),
]


def test_kill_minus_nine_at_many_moments_loses_nothing_and_repeats_nothing(reference, tmp_path):
    ref_campaign, _ = reference
    campaign = _campaign(tmp_path / "killed")
    run = campaign.parent / "run"
    db = run / "alloop.db"
    done = InterruptionLog()
    output = tmp_path / "runs.log"

    def evidence() -> str:
        return campaign_evidence(db, ref_campaign.parent / "run" / "alloop.db", done, [run / "alloop.log", output])

    with evidence_on_failure(evidence), output.open("w") as log:
        finished_before: dict[str, float] = {}
        for k, point in enumerate(KILL_POINTS):
            proc = alloop("run", str(campaign), stdout=log)
            started = time.monotonic()
            while proc.poll() is None and time.monotonic() - started < 600:
                s = stage(db)
                if s is not None and point(s):
                    time.sleep(0.5)  # land inside the stage, not on its first commit
                    at, s, doing = done.now(), stage(db), last_log_line(run / "alloop.log")
                    proc.send_signal(signal.SIGKILL)
                    done.kills.append(Kill(at, "SIGKILL", time.monotonic() - started, s, doing, proc.wait(timeout=60)))
                    break
                time.sleep(0.2)
            else:
                done.note(f"kill point {k} never reached; the controller exited with {proc.poll()}")
            proc.wait(timeout=60)
            # a finished calculation or fit is never redone: its output files are never rewritten
            now = finished_files(run)
            assert {p: t for p, t in now.items() if p in finished_before} == finished_before, "a finished result was rewritten"
            finished_before = now
        assert len(done.kills) >= 4
        run_to_end(campaign)
        now = finished_files(run)
        assert {p: t for p, t in now.items() if p in finished_before} == finished_before

        got, want = snapshot(db), snapshot(ref_campaign.parent / "run" / "alloop.db")
        assert got["status"] == want["status"] == "max_iterations"
        assert got["configs"] == want["configs"]
        assert got["jobs"] == want["jobs"]  # same DFT jobs, each once (dft_job is unique per configuration)
        assert [(h, src, st) for h, src, st, _ in got["labels"]] == [(h, src, st) for h, src, st, _ in want["labels"]]
        assert [e for *_, e in got["labels"]] == pytest.approx([e for *_, e in want["labels"]], abs=1e-4)
        assert [i for i, _ in got["potentials"]] == [0, 1]


def test_the_report_of_the_tiny_campaign(reference):
    """`alloop report` on a real campaign's database: real GPAW labels, a real fit, real γ."""
    import re

    campaign, _ = reference
    proc = subprocess.run([sys.executable, "-m", "alloop", "report", str(campaign)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    index = campaign.parent / "run" / "report" / "index.html"
    page = index.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"u_histograms.png", "parity_energy.png", "parity_force.png", "gamma.png"} <= set(images)
    assert all((index.parent / name).stat().st_size > 10_000 for name in images)
    assert "not drawn" not in page
