"""The campaign's final potential: when the loop ends (here at max_iterations), the last iteration's potential
is fitted on for train.final_maxiter more iterations on the same data, scored on the test sets, stored as its
own potential, and named by `alloop run` and `alloop status`. Runs on the paper's W data, replayed (real
pacemaker fits; no uMLIP or DFT to wait for)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.campaigns import REPLAYED_PAPER_MEMBERS, REPLAYED_W_ROUTING, run_to_end

pytestmark = pytest.mark.slow

CAMPAIGN = """\
name: w-final
elements: [W]
workdir: run
max_iterations: 1
""" + REPLAYED_PAPER_MEMBERS + REPLAYED_W_ROUTING + """\
  sources:
    - {{path: {npz}, indices: "0-19", name: general}}
min_distance: 1.0
selection: {{budget: 100}}
train:
  n_functions: 8
  maxiter: 10
  final_maxiter: 20
  test_fraction: 0.0
  test_sets: [{{path: {npz}, indices: "100-1025", every: 100, name: held-out}}]
convergence: {{target_share: 0.0, min_sample: 4}}
properties: {{enabled: false}}
cluster: {{n_workers: 1}}
"""


def _status(campaign) -> dict:
    out = subprocess.run([sys.executable, "-m", "alloop", "status", str(campaign), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def ended(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("final")
    campaign = root / "campaign.yaml"
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    campaign.write_text(CAMPAIGN.format(npz=npz, dft=npz))
    out = run_to_end(campaign)
    return campaign, out


def test_the_campaign_ends_with_a_longer_warm_started_fit_stored_as_its_own_potential(ended):
    campaign, out = ended
    status = _status(campaign)
    final, last = status["final_potential"], status["potential"]
    assert status["status"] == "max_iterations" and status["stage"] == "done"
    assert not final["pending"] and final["path"] != last["path"] and final["iteration"] == last["iteration"] == 0
    assert final["n_train"] == last["n_train"] == 20
    assert final["metrics"]["warm_start"] is True  # fitted on from iteration 0's coefficients
    assert "final potential (20 more optimizer iterations)" in status["message"] and final["path"] in status["message"]
    assert final["path"] in out  # what `alloop run` prints as the result
    # the learning curve ends with the final potential, scored on the same held-out DFT as the iterations
    curve = status["learning_curve"]
    assert [row["final"] for row in curve] == [False, True]
    assert all(row["test_sets"]["held-out"]["n_structures"] == 10 for row in curve)


def test_a_finished_campaign_run_again_refits_nothing_and_names_the_same_potential(ended):
    campaign, _ = ended
    done = campaign.parent / "run" / "final" / "fit" / "fit_done.json"
    before = done.stat().st_mtime_ns
    out = run_to_end(campaign)
    assert _status(campaign)["final_potential"]["path"] in out
    assert done.stat().st_mtime_ns == before
    text = subprocess.run([sys.executable, "-m", "alloop", "status", str(campaign)], capture_output=True, text=True, timeout=120).stdout
    assert "final potential (20 configurations, fitted on from iteration 0's)" in text and "final (iteration 0's data)" in text
