"""A member that cannot run stops the iteration before any DFT is spent (issue 21 item 1): the loop on the
paper's replayed W data, with one U member's checkpoint a corrupt file. Before, every configuration went to
DFT with a reason and the campaign ran on; now the iteration fails naming the member and its error, no DFT
job exists, and once the file is fixed the retry (`alloop run --retry`: Store.retry_iteration) scores and
routes as an undisturbed run does."""

from __future__ import annotations

import shutil
import sqlite3
from types import SimpleNamespace

from tests.campaigns import REPLAYED_PAPER_MEMBERS, REPLAYED_W_ROUTING

CAMPAIGN = """\
name: w-broken-member
elements: [W]
workdir: run
""" + REPLAYED_PAPER_MEMBERS.replace("checkpoint: {npz}, model: 7-7net", "checkpoint: {bad}, model: 7-7net") + REPLAYED_W_ROUTING + """\
  sources:
    - {{path: {npz}, indices: "0-19", name: general}}
    - {{path: {npz}, indices: "1026-1030", name: dimer}}
min_distance: 1.0
selection: {{budget: 100}}
cluster: {{n_workers: 1}}
"""


def _count(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_a_member_that_cannot_run_fails_the_iteration_before_any_dft(shared_data, tmp_path):
    from distributed import Client

    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    bad = tmp_path / "sevennet.npz"
    bad.write_text("not an npz: a checkpoint copied half-way")
    assert "checkpoint: {bad}" in CAMPAIGN  # the replacement above found SevenNet's line
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz, dft=npz, bad=bad))
    campaign = load_campaign(tmp_path / "campaign.yaml")
    db = campaign.database_path
    store = Store.open(db)
    try:
        with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
            ctl = Controller(campaign, store, client)
            outcome = ctl.run()
            assert outcome.status == "failed", outcome
            assert "member 'SevenNet' failed on a whole prediction batch (25 of 25 configurations" in outcome.message, outcome.message
            assert "sevennet.npz" in outcome.message and "\n" not in outcome.message
            assert "Stopped before any DFT was submitted" in outcome.message
            assert _count(db, "SELECT count(*) FROM dft_job") == 0
            assert _count(db, "SELECT count(*) FROM configuration WHERE route IS NOT NULL") == 0
            assert _count(db, "SELECT count(*) FROM prediction WHERE member = 'SevenNet'") == 0
            row = store.campaign(campaign.name)
            assert row["status"] == "failed" and "SevenNet" in row["message"] and "alloop run --retry" in row["message"]
            print(row["message"])

            shutil.copy(npz, bad)  # the member fixed
            assert store.retry_iteration(ctl.cid, 0) == "score"  # what `alloop run --retry` does first
            ctl.score(0)
    finally:
        store.close()
    assert _count(db, "SELECT count(*) FROM prediction WHERE error IS NOT NULL") == 0
    # the undisturbed routing of these 25: the five dimers (U >= 0.3) to DFT, the rest labelled by the uMLIP
    assert _count(db, "SELECT count(*) FROM configuration WHERE route = 'dft'") == _count(db, "SELECT count(*) FROM dft_job") > 0
    assert _count(db, "SELECT count(*) FROM configuration WHERE route IS NOT NULL") == 25


def test_a_prediction_batch_whose_worker_died_is_tried_again_then_fails_the_iteration(shared_data, tmp_path, monkeypatch):
    """A worker death on a prediction batch (Dask's KilledWorker, after its own retries) counts as one attempt of
    guard.predict_attempts, logged as an event; a batch that dies every time fails the iteration before DFT."""
    import pytest
    from distributed import Client
    from distributed.scheduler import KilledWorker

    from alloop.config import load_campaign
    from alloop.controller import tasks
    from alloop.controller.loop import Controller, IterationFailed
    from alloop.state import Store

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    real = tasks.predict_task
    counter = tmp_path / "deaths"  # a file: Dask pickles the task function, closures included, even in-process

    def dying(member, items):
        n, budget = (int(x) for x in counter.read_text().split())
        if member.name == "SevenNet" and n < budget:
            counter.write_text(f"{n + 1} {budget}")
            raise KilledWorker(f"predict-SevenNet-{n + 1}", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)
        return real(member, items)

    monkeypatch.setattr(tasks, "predict_task", dying)
    for case, budget in (("dies once", 1), ("dies every time", 99)):
        root = tmp_path / case.replace(" ", "-")
        root.mkdir()
        (root / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz, dft=npz, bad=npz))
        campaign = load_campaign(root / "campaign.yaml")
        counter.write_text(f"0 {budget}")
        store = Store.open(campaign.database_path)
        try:
            with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
                ctl = Controller(campaign, store, client)
                store.start_iteration(ctl.cid, 0)
                ctl.generate(0)
                if case == "dies once":
                    ctl.score(0)
                    assert store.current_iteration(ctl.cid) == (0, "label")
                else:
                    with pytest.raises(IterationFailed, match="member 'SevenNet' failed on a whole prediction batch"):
                        ctl.score(0)
                    assert int(counter.read_text().split()[0]) == campaign.guard.predict_attempts == 3
                    assert "(3 attempts)" in store.campaign(campaign.name)["message"]
        finally:
            store.close()
        db = campaign.database_path
        events = _count(db, "SELECT count(*) FROM event WHERE kind = 'predict' AND message LIKE '%SevenNet%attempt % of 3 failed%'")
        assert events == int(counter.read_text().split()[0]) == min(budget, 3)
        if case == "dies once":
            assert _count(db, "SELECT count(*) FROM dft_job") > 0
        else:
            assert _count(db, "SELECT count(*) FROM dft_job") == 0
