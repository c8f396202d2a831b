"""A changed campaign file against its database, as a user meets it between runs: settings that only steer
the future apply (a finished campaign continues when its iteration limit is raised), settings the stored
labels and U were made with are refused unless accepted, and a failed iteration resumes with --retry once
its cause is fixed. Small campaigns on the paper's W data, replayed (no DFT, a 4-function ACE)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.campaigns import REPLAYED_PAPER_MEMBERS, alloop

pytestmark = pytest.mark.slow

CAMPAIGN = """\
name: w-changes
elements: [W]
workdir: run
max_iterations: {max_iterations}
""" + REPLAYED_PAPER_MEMBERS + """uncertainty: {{u_c: {u_c}}}
labels:
  energy_reference: {{method: none}}
  dft: {{backend: replay, replay: {{sources: [{dft}]}}, max_attempts: 1, max_failed_fraction: 0.0}}
generate:
  counts: {{strained_bulk: 0, rattled_bulk: 0, vacancy: 0, interstitial: 0, surface: 0, dimer: 0, compressed: 0}}
  sources:
    - {{path: {npz}, indices: "{indices}", per_iteration: 5}}
    - {{path: {npz}, indices: "1026-1028"}}
min_distance: 1.0
selection: {{budget: 100}}
train: {{n_functions: 4, maxiter: 2, test_fraction: 0.0, final_maxiter: 0}}
convergence: {{target_share: {target_share}, min_sample: 1}}
cluster: {{n_workers: 1}}
"""


def write(root: Path, npz: Path, dft: Path | None = None, max_iterations: int = 1, u_c: float = 1.0, target_share: float = 0.05,
          indices: str = "0-9") -> Path:
    """The campaign file; its source gives 5 of the W set's `indices` per iteration (10: two iterations' worth)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "campaign.yaml"
    path.write_text(CAMPAIGN.format(npz=npz, dft=dft or npz, max_iterations=max_iterations, u_c=u_c, target_share=target_share,
                                    indices=indices))
    return path


def run(path: Path, *flags: str) -> tuple[int, str]:
    proc = alloop("run", str(path), *flags)
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.parent / "run" / "alloop.db")


@pytest.fixture(scope="module")
def npz(shared_data) -> Path:
    return shared_data / "uq_umlip_W" / "W_uq_umlip.npz"


def test_a_raised_iteration_limit_continues_steering_changes_apply_and_a_changed_u_c_waits_for_acceptance(tmp_path, npz):
    """One campaign, changed twice between runs as a user would: first only what steers the future, then U_c."""
    path = write(tmp_path, npz, max_iterations=1, indices="0-14")
    code, out = run(path)
    assert code == 0 and "max_iterations" in out, out

    # a finished campaign continues when its iteration limit is raised; a steering change applies at once
    write(tmp_path, npz, max_iterations=2, target_share=0.01, indices="0-14")
    code, out = run(path)
    assert code == 0, out
    assert "max_iterations: 1 -> 2" in out and "convergence.target_share: 0.05 -> 0.01" in out
    con = db(path)
    assert con.execute("SELECT max(idx) FROM iteration").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM configuration").fetchone()[0] == 13  # 5 + 3 dimers, then 5 more
    events = [json.loads(e) for (e,) in con.execute("SELECT data_json FROM event WHERE kind='config' ORDER BY id")]
    assert [{c["field"] for c in e["changes"]} for e in events] == [{"max_iterations", "convergence.target_share"}]
    assert con.execute("SELECT status FROM campaign").fetchone()[0] == "max_iterations"

    # U_c is what the stored routes were made with: refused, nothing runs, until accepted
    write(tmp_path, npz, max_iterations=3, u_c=0.5, target_share=0.01, indices="0-14")
    code, out = run(path)
    assert code == 2, out
    assert "uncertainty.u_c" in out and "--accept-changes" in out
    assert out.count("since the last run, but the configurations") == 1, out  # the refusal is said once
    con = db(path)
    assert con.execute("SELECT max(idx) FROM iteration").fetchone()[0] == 1  # nothing ran
    assert json.loads(con.execute("SELECT config_json FROM campaign").fetchone()[0])["uncertainty"]["u_c"] == 1.0
    code, out = run(path, "--accept-changes")
    assert code == 0, out
    con = db(path)
    event = json.loads(con.execute("SELECT data_json FROM event WHERE kind='config' ORDER BY id DESC").fetchone()[0])
    assert event["accepted"] and {c["field"] for c in event["changes"]} >= {"uncertainty.u_c", "max_iterations"}
    assert con.execute("SELECT DISTINCT u_c FROM uncertainty ORDER BY u_c").fetchall() == [(0.5,), (1.0,)]


def test_a_failed_iteration_resumes_with_retry_after_its_cause_is_fixed(tmp_path, npz):
    from alloop.io import read_labelled, write_extxyz

    partial = write_extxyz(tmp_path / "dft-part.extxyz", read_labelled(npz)[:5])  # lacks the dimers
    path = write(tmp_path / "c", npz, dft=partial)
    code, out = run(path)
    assert code == 1 and "DFT calculations failed" in out, out
    code, out = run(path)  # without --retry the failure stands
    assert code == 1 and "--retry" in out, out
    write(tmp_path / "c", npz)  # the full replay set: a label source change, hence --accept-changes too
    code, out = run(path, "--retry", "--accept-changes")
    assert code == 0, out
    con = db(path)
    assert con.execute("SELECT status, count(*) FROM dft_job GROUP BY status").fetchall() == [("done", 3)]
    assert con.execute("SELECT stage FROM iteration WHERE idx=0").fetchone()[0] == "done"
