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

        t0 = time.perf_counter()
        from alloop.report import build_report

        index = build_report(db, Path(tmp) / "report")
        t_first = time.perf_counter() - t0

        from alloop.report import build, data
        from alloop.state import Store
        import alloop.train

        t0 = time.perf_counter()
        store = Store.open_readonly(db)
        camp = store.campaign()
        tables = data.load_tables(store, camp["id"], json.loads(camp["config_json"]))
        store.close()
        t_read = time.perf_counter() - t0

        calls: list[float] = []

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                calls.append(time.perf_counter() - t)

        original, alloop.train.potential_errors = alloop.train.potential_errors, timed  # build imports it at call time
        try:
            t0 = time.perf_counter()
            build_report(db, Path(tmp) / "report")
            t_second = time.perf_counter() - t0
        finally:
            alloop.train.potential_errors = original
        size = db.stat().st_size / 1e6
        n_dft = len(tables.dft)
        n_figs = len(list(index.parent.glob("*.png")))

    print(f"\nalloop report on {args.n} configurations, {args.iterations} iterations, {n_dft} DFT labels ({size:.0f} MB database, "
          f"written in {t_db:.1f} s)")
    print(f"{'step':52s} {'s':>8s}")
    rows = [
        ("first build (imports matplotlib, pandas, pyace)", t_first),
        ("second build", t_second),
        ("  of which: reading the database (one query per table)", t_read),
        (f"  of which: ACE predictions for parity (≤ {build.PARITY_MAX_STRUCTURES} structures)", sum(calls)),
        (f"  of which: {n_figs} figures and the page", t_second - t_read - sum(calls)),
    ]
    for name, v in rows:
        print(f"{name:52s} {v:8.2f}")


if __name__ == "__main__":
    main()
