"""A DFT calculation that kills the Dask worker running it (as an OOM kill or a segfault would) is a failed
attempt of that configuration: counted, retried within the attempt budget, then quarantined with how the
worker died, while the other configurations are labelled and the iteration goes on to its fit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import dask

from alloop.cluster import open_client
from alloop.controller import tasks
from alloop.config import load_campaign
from alloop.controller.loop import Controller
from alloop.state import Store
from alloop.structures import atoms_from_json, config_hash
from tests.campaigns import REPLAYED_PAPER_MEMBERS, generated_and_scored

VICTIM = "ALLOOP_TEST_WORKER_DIES_FOR"
REPO = Path(__file__).resolve().parents[1]

CAMPAIGN = """\
name: w-dying-worker
elements: [W]
workdir: run
""" + REPLAYED_PAPER_MEMBERS + """uncertainty: {{u_c: 0.15}}
labels:
  energy_reference: {{method: none}}
  dft: {{backend: replay, replay: {{sources: [{npz}]}}, max_attempts: 2, max_failed_fraction: 0.5}}
generate:
  counts: {{strained_bulk: 0, rattled_bulk: 0, vacancy: 0, interstitial: 0, surface: 0, dimer: 0, compressed: 0}}
  sources:
    - {{path: {npz}, indices: "0-11", name: general}}
selection: {{budget: 100, min_distance: 1.0}}
cluster: {{n_workers: 1}}
"""


_REAL_DFT_TASK = tasks.dft_task


def dft_or_die(dft_settings, atoms_json, workdir):
    """The DFT stand-in: the real replay labelling, except for one configuration, on which the worker
    process kills itself (imported by the worker from this module)."""
    if config_hash(atoms_from_json(atoms_json)) == os.environ.get(VICTIM):
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_DFT_TASK(dft_settings, atoms_json, workdir)


def label_with_a_dying_worker(campaign_file: str) -> int:
    """The campaign's label stage on alloop's own LocalCluster with the stand-in as its DFT task; run in a
    fresh interpreter (the test process holds other tests' threads and clusters). Dask retries a task on a
    fresh worker once (allowed-failures 1) before it reports KilledWorker: one failed attempt."""
    campaign = load_campaign(campaign_file)
    store = Store.open(campaign.database_path)
    tasks.dft_task = dft_or_die  # this throwaway process's controller submits the stand-in
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}), open_client(campaign.cluster) as client:
            ctl = Controller(campaign, store, client)
            with ctl._deaths.watching():
                return 0 if ctl.label(0) else 1
    finally:
        store.close()


def test_a_calculation_that_kills_its_worker_is_quarantined_and_the_others_are_labelled(shared_data, tmp_path):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz))
    campaign, store, cid = generated_and_scored(tmp_path / "campaign.yaml")
    to_dft = [j.hash for j in store.dft_jobs(cid, 0)]
    store.close()
    assert len(to_dft) >= 3, "the test needs several DFT calculations"
    victim = to_dft[0]

    code = "import sys; from tests.test_worker_death import label_with_a_dying_worker as f; sys.exit(f(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "campaign.yaml")], cwd=REPO, timeout=900,
                          env=dict(os.environ, **{VICTIM: victim}), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]  # 0: one quarantined of several is within max_failed_fraction

    con = sqlite3.connect(campaign.database_path)
    stage = con.execute("SELECT stage FROM iteration WHERE idx = 0").fetchone()[0]
    jobs = dict(((h, (s, a, r)) for h, s, a, r in con.execute(
        "SELECT c.hash, j.status, j.attempts, j.reason FROM dft_job j JOIN configuration c ON c.id = j.configuration_id")))
    status = dict(con.execute("SELECT hash, status FROM configuration"))
    con.close()
    assert stage == "train"  # the campaign goes on
    st, attempts, reason = jobs[victim]
    assert (st, attempts, status[victim]) == ("quarantined", 2, "quarantined")
    assert "the worker running this calculation died" in reason
    assert "was killed by signal 9 (SIGKILL)" in reason, reason
    assert all(jobs[h][0] == "done" and status[h] == "labelled" for h in to_dft[1:])
