"""A DFT calculation that kills the Dask worker running it (as an OOM kill or a segfault would) is a failed
attempt of that configuration: counted, retried within the attempt budget, then quarantined with how the
worker died, while the other configurations are labelled and the iteration goes on to its fit."""

from __future__ import annotations

import os
import signal
import sqlite3

import dask

from alloop.cluster import open_client
from alloop.controller import tasks
from alloop.controller.loop import Controller
from alloop.structures import atoms_from_json, config_hash
from tests.campaigns import REPLAYED_PAPER_MEMBERS, generated_and_scored

VICTIM = "ALLOOP_TEST_WORKER_DIES_FOR"

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


def dft_or_die(dft_settings, atoms_json, workdir):
    """The DFT stand-in: the real replay labelling, except for one configuration, on which the worker
    process kills itself (imported by the worker from this module)."""
    if config_hash(atoms_from_json(atoms_json)) == os.environ.get(VICTIM):
        os.kill(os.getpid(), signal.SIGKILL)
    return tasks.dft_task(dft_settings, atoms_json, workdir)


def test_a_calculation_that_kills_its_worker_is_quarantined_and_the_others_are_labelled(shared_data, tmp_path, monkeypatch):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz))
    campaign, store, cid = generated_and_scored(tmp_path / "campaign.yaml")
    to_dft = [j.hash for j in store.dft_jobs(cid, 0)]
    assert len(to_dft) >= 3, "the test needs several DFT calculations"
    victim = to_dft[0]

    # Worker processes inherit the variable and import `dft_or_die` from this module; Dask retries a task
    # on a fresh worker once (allowed-failures 1) before it reports KilledWorker, one failed attempt.
    monkeypatch.setenv(VICTIM, victim)
    monkeypatch.setattr(tasks, "dft_task", dft_or_die)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), open_client(campaign.cluster) as client:
        ctl = Controller(campaign, store, client)
        with ctl._deaths.watching():
            assert ctl.label(0) is True  # one quarantined of several is within max_failed_fraction
    assert store.current_iteration(ctl.cid) == (0, "train")
    store.close()

    con = sqlite3.connect(campaign.database_path)
    jobs = dict(((h, (s, a, r)) for h, s, a, r in con.execute(
        "SELECT c.hash, j.status, j.attempts, j.reason FROM dft_job j JOIN configuration c ON c.id = j.configuration_id")))
    status = dict(con.execute("SELECT hash, status FROM configuration"))
    con.close()
    st, attempts, reason = jobs[victim]
    assert (st, attempts, status[victim]) == ("quarantined", 2, "quarantined")
    assert "the worker running this calculation died" in reason
    assert "was killed by signal 9 (SIGKILL)" in reason, reason
    assert all(jobs[h][0] == "done" and status[h] == "labelled" for h in to_dft[1:])
