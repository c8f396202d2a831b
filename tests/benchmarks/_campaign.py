"""Benchmark helper: a campaign's first generate and score stages, without labelling or fitting."""

from __future__ import annotations

from pathlib import Path


def generate_and_score(path: Path, threads: int) -> None:
    """Iteration 0's generate and score stages (what `alloop run` does before labelling and fitting), on an
    in-process Dask cluster of one worker with `threads` threads. A rerun resumes an interrupted scoring and
    never rescores."""
    from distributed import Client

    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    campaign = load_campaign(path)
    store = Store.open(campaign.database_path)
    try:
        with Client(processes=False, n_workers=1, threads_per_worker=threads, dashboard_address=":0") as client:
            ctl = Controller(campaign, store, client)
            current = store.current_iteration(ctl.cid)
            if current is None:
                store.start_iteration(ctl.cid, 0)
                ctl.generate(0)
            if current is None or current[1] == "score":
                ctl.score(0)
    finally:
        store.close()
