"""Controller overhead per configuration (database + Dask scheduling, calculations excluded), resume time of
a large campaign database, and the time from a configuration being flagged for DFT to its batch job being
submitted.

    .venv/bin/python tests/benchmarks/bench_controller.py                 # 10,000 configurations
    .venv/bin/python tests/benchmarks/bench_controller.py -n 2000 --slurm-jobs 20

The real Controller runs its real stages (selection commit, scoring with Dask tasks, U and routing, DFT
bookkeeping) on a real SQLite database and a real LocalCluster; only the calculations inside the tasks are
replaced by instant stand-ins (a member "predicts" fixed forces, a DFT task returns a fixed result), so
what is timed is everything around them. The submit latency uses a private SLURM on localhost
(tests/slurm_cluster.py; needs root and the SLURM packages) and real sbatch jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from alloop.config import Campaign  # noqa: E402
from alloop.controller import loop, tasks  # noqa: E402
from alloop.state import NewConfiguration, Store  # noqa: E402
from alloop.structures import atoms_to_json, config_hash  # noqa: E402


def fake_predict(member, items):
    """Instant stand-in for a member: forces that differ between members and configurations, so U spreads
    over both sides of U_c."""
    k = sum(map(ord, member.name)) % 7
    out = []
    for cid, atoms_json in items:
        n_atoms = len(json.loads(atoms_json)["numbers"])
        out.append((cid, -8.0 * n_atoms, np.full((n_atoms, 3), 0.05 * k * (cid % 40)), None))
    return out


def fake_dft(dft_settings, atoms_json, workdir):
    n_atoms = len(json.loads(atoms_json)["numbers"])
    return {"ok": True, "energy": -10.0 * n_atoms, "forces": np.zeros((n_atoms, 3)), "stress": None, "meta": {}, "backend": "gpaw"}


def _configs(n: int, rng: np.random.Generator) -> list[NewConfiguration]:
    base = bulk("W", "bcc", a=3.17, cubic=True).repeat((2, 2, 2))  # 16 atoms
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        out.append(NewConfiguration(config_hash(a), "rattled_bulk", len(a), a.get_chemical_formula(), atoms_to_json(a)))
    return out


def _campaign(root: Path, u_c: float, batch: dict | None = None) -> Campaign:
    dft: dict = {"backend": "gpaw"}
    if batch:
        dft["batch"] = batch
    return Campaign.model_validate({
        "name": "bench", "elements": ["W"], "workdir": str(root), "ensemble": "offline-fast",
        "uncertainty": {"u_c": u_c}, "labels": {"energy_member": "7net-0", "force_member": "7net-0", "dft": dft},
        "selection": {"budget": 10**6}, "cluster": {"n_workers": 2},
    })


def overhead(n: int) -> None:
    from distributed import Client, LocalCluster

    tasks.predict_task = fake_predict
    tasks.dft_task = fake_dft
    root = Path(tempfile.mkdtemp(prefix="alloop-bench-"))
    campaign = _campaign(root, u_c=0.7)
    store = Store.open(root / "alloop.db")
    configs = _configs(n, np.random.default_rng(0))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        ctl = loop.Controller(campaign, store, client)
        store.start_iteration(ctl.cid, 0)
        t = {}
        t0 = time.perf_counter()
        store.commit_selection(ctl.cid, 0, configs)
        t["select (commit)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctl.score(0)
        t["score (tasks + predictions + U + routing)"] = time.perf_counter() - t0
        n_dft = len(store.dft_jobs(ctl.cid, 0))
        t0 = time.perf_counter()
        ctl.label(0)
        t["label (DFT tasks + labels)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = store.training_rows(ctl.cid, ctl.energy_member)
        t["training set read"] = time.perf_counter() - t0
    total = sum(t.values())
    print(f"\ncontroller overhead, {n} configurations of 16 atoms, 3 members, {n_dft} routed to DFT, {len(rows)} labels")
    print(f"{'stage':45s} {'total s':>9s} {'ms/config':>10s}")
    for k, v in t.items():
        print(f"{k:45s} {v:9.2f} {1000 * v / n:10.3f}")
    print(f"{'all':45s} {total:9.2f} {1000 * total / n:10.3f}")
    size = (root / "alloop.db").stat().st_size / 1e6
    store.close()

    # resume: what `alloop run` does before it can continue (open, migrate check, find the stage)
    t0 = time.perf_counter()
    s2 = Store.open(root / "alloop.db")
    cid = s2.open_campaign("bench", campaign.model_dump_json())
    stage = s2.current_iteration(cid)
    s2.known_hashes(cid)
    s2.dft_jobs(cid)
    t_resume = time.perf_counter() - t0
    t0 = time.perf_counter()
    s2.counts(cid)
    t_status = time.perf_counter() - t0
    s2.close()
    print(f"\nresume of the {size:.0f} MB database: {t_resume:.3f} s to the current stage {stage}; status counts {t_status:.3f} s")


def submit_latency(n_jobs: int) -> None:
    from tests.slurm_cluster import local_slurm

    from alloop.state import Routing

    root = Path(tempfile.mkdtemp(prefix="alloop-bench-slurm-"))
    with local_slurm():
        campaign = _campaign(root, u_c=0.7, batch={"scheduler": "slurm", "walltime": "00:05:00", "poll_interval_s": 1})
        store = Store.open(root / "alloop.db")
        ctl = loop.Controller(campaign, store, client=None)
        store.start_iteration(ctl.cid, 0)
        store.commit_selection(ctl.cid, 0, _configs(n_jobs, np.random.default_rng(1)))
        cfgs = store.configurations(ctl.cid, 0)
        routings = [Routing(c.id, 5, 5, 5, "dft", dft_workdir=str(root / "dft" / c.hash)) for c in cfgs]
        flagged = time.time()
        store.commit_routing(ctl.cid, 0, routings, 1, 1.0, ctl.members, "gpaw")

        def watch() -> None:
            while not all(j.job_ref for j in store.dft_jobs(ctl.cid, 0)):
                time.sleep(0.05)
            ctl.request_stop()

        threading.Thread(target=watch, daemon=True).start()
        try:
            ctl._label_batch(0)
        except loop.StopRequested:
            pass
        import sqlite3

        con = sqlite3.connect(root / "alloop.db")
        submitted = sorted(t for (t,) in con.execute("SELECT updated_at FROM dft_job WHERE job_id IS NOT NULL"))
        con.close()
        lat = np.array(submitted) - flagged
        print(f"\nflagged for DFT → sbatch job recorded, {n_jobs} jobs flagged at once (real sbatch, local SLURM):")
        print(f"  first {lat[0]:.3f} s, median {np.median(lat):.3f} s, last {lat[-1]:.3f} s ({1000 * (lat[-1] - lat[0]) / max(1, n_jobs - 1):.1f} ms per further job)")
        store.close()
        import subprocess

        subprocess.run(["scancel", "--user", "root"], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="configurations (default 10,000)")
    ap.add_argument("--slurm-jobs", type=int, default=20, help="DFT jobs for the submit latency (0: skip)")
    args = ap.parse_args()
    overhead(args.n)
    if args.slurm_jobs:
        submit_latency(args.slurm_jobs)


if __name__ == "__main__":
    main()
