"""Time to build `alloop report` for a large campaign database.

    .venv/bin/python tests/benchmarks/bench_report.py                  # 10,000 configurations, 4 iterations
    .venv/bin/python tests/benchmarks/bench_report.py -n 2000 --iterations 3

The database is written through the Store the way the controller writes it (tests/report_campaign.py):
configurations drawn from the paper's W set with four members' real predictions each, U from them, the
paper's DFT labels for those routed to DFT (with failed and quarantined jobs), a potential, a γ evaluation
and events per iteration. What is timed is `alloop.report.build_report` on it, split into reading the
database, the ACE predictions of the parity plots (capped at PARITY_MAX_STRUCTURES structures) and the
rest (figures, page); a second build shows the time with the Python modules already imported, as for the
controller rebuilding the report after each iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHARED_DATA = Path(os.environ.get("ALLOOP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="configurations (default 10,000)")
    ap.add_argument("--iterations", type=int, default=4)
    args = ap.parse_args()

    from tests.report_campaign import build_campaign_db

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "alloop.db"
        t0 = time.perf_counter()
        build_campaign_db(db, SHARED_DATA, n_configs=args.n, iterations=args.iterations)
        t_db = time.perf_counter() - t0

        t0, c0 = time.perf_counter(), time.process_time()
        from alloop.report import build_report

        index = build_report(db, Path(tmp) / "report")
        t_first, c_first = time.perf_counter() - t0, time.process_time() - c0

        from alloop.report import build, data
        from alloop.state import Store
        import alloop.train

        t0, c0 = time.perf_counter(), time.process_time()
        store = Store.open_readonly(db)
        camp = store.campaign()
        tables = data.load_tables(store, camp["id"], json.loads(camp["config_json"]))
        store.close()
        t_read, c_read = time.perf_counter() - t0, time.process_time() - c0

        calls: list[tuple[float, float]] = []

        def timed(*a, **kw):
            t, c = time.perf_counter(), time.process_time()
            try:
                return original(*a, **kw)
            finally:
                calls.append((time.perf_counter() - t, time.process_time() - c))

        original, alloop.train.compute_errors = alloop.train.compute_errors, timed  # build imports it at call time
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            build_report(db, Path(tmp) / "report")
            t_second, c_second = time.perf_counter() - t0, time.process_time() - c0
        finally:
            alloop.train.compute_errors = original
        size = db.stat().st_size / 1e6
        n_dft = len(tables.dft)
        n_figs = len(list(index.parent.glob("*.png")))

    print(f"\nalloop report on {args.n} configurations, {args.iterations} iterations, {n_dft} DFT labels ({size:.0f} MB database, "
          f"written in {t_db:.1f} s)")
    # wall seconds, and CPU seconds of this process (the fairer figure on a machine shared with other work)
    print(f"{'step':60s} {'wall s':>8s} {'CPU s':>8s}")
    t_parity, c_parity = (sum(c[k] for c in calls) for k in (0, 1))
    rows = [
        ("first build (imports matplotlib, pandas, pyace)", t_first, c_first),
        ("second build", t_second, c_second),
        ("  of which: reading the database (one query per table)", t_read, c_read),
        (f"  of which: ACE predictions for parity (≤ {build.PARITY_MAX_STRUCTURES} structures)", t_parity, c_parity),
        (f"  of which: {n_figs} figures and the page", t_second - t_read - t_parity, c_second - c_read - c_parity),
    ]
    for name, wall, cpu in rows:
        print(f"{name:60s} {wall:8.2f} {cpu:8.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
