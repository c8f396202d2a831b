"""`alloop report CAMPAIGN_OR_DB [-o DIR]`: a campaign's progress as a static HTML page with figures."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alloop.errors import AlloopError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a campaign's progress as an HTML page with figures (U vs U_c, DFT ledger, errors, γ, parity)",
        description=(
            "Build a self-contained static page (index.html and PNG figures beside it; no server, nothing fetched) "
            "from the campaign database: state and settings, per iteration the candidates, routing to uMLIP and DFT "
            "and the DFT ledger, U histograms against U_c and U vs the true force error, ACE errors, γ of fresh "
            "candidates, parity plots of the current potential against the DFT labels, a U_c sweep when one was run, "
            "and the logged warnings and errors. The database is opened read-only: safe beside a running `alloop run`, "
            "which also rebuilds <workdir>/report/ after every iteration."
        ),
    )
    p.add_argument("target", help="campaign YAML file or its SQLite database")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: <workdir>/report, or report/ beside a database given directly)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alloop.report import build_report

    t0 = time.perf_counter()
    try:
        target = Path(args.target)
        if target.suffix in (".yaml", ".yml"):
            from alloop.config import load_campaign

            campaign = load_campaign(target, check_ensemble=False)
            db, workdir = campaign.database_path, Path(campaign.workdir)
        else:
            db, workdir = target, target.parent
        index = build_report(db, Path(args.output) if args.output else workdir / "report")
    except AlloopError as exc:
        print(f"alloop report: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {index} ({time.perf_counter() - t0:.1f} s); open it in a browser")
    return 0
