"""`alloop run campaign.yaml`: the long-running controller."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alloop.errors import AlloopError, CampaignChangedError, ConfigError, DiskFullError, disk_problem

EXIT = {"converged": 0, "max_iterations": 0, "stopped": 0, "failed": 1}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run (or resume) a campaign until it converges or reaches max_iterations",
        description="Run a campaign. On an existing database it continues where the last run stopped: nothing "
        "committed is lost and no finished DFT calculation or fit is repeated. SIGTERM/SIGINT stop it cleanly "
        "at the next committed transition (exit 0). Logs go to <workdir>/alloop.log and to stderr. A changed "
        "campaign file is compared with the last run's: settings that only steer what is to come (max_iterations, "
        "convergence, cluster, budgets, exploration, generation, fitting) apply at once, and a finished campaign "
        "whose max_iterations was raised continues; settings the stored results depend on (elements, ensemble, "
        "uncertainty, label sources) are refused unless --accept-changes (exit 2).",
    )
    p.add_argument("campaign", help="campaign YAML file")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr (the log file keeps everything)")
    p.add_argument("--accept-changes", action="store_true",
                   help="keep a database whose results were made with other values of elements, ensemble, U_c or label "
                        "sources than the campaign file now has, and use the new values from now on (recorded as an event)")
    p.add_argument("--retry", action="store_true", help="resume a failed iteration at the stage it failed in, after fixing its cause "
                   "(its quarantined DFT calculations get a fresh attempt budget)")
    p.set_defaults(func=run)


def setup_logging(workdir: Path, quiet: bool) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("alloop")
    root.setLevel(logging.INFO)
    root.handlers.clear()
    root.propagate = False  # pacemaker and TensorFlow configure the root logger; do not print twice
    fh = logging.handlers.RotatingFileHandler(workdir / "alloop.log", maxBytes=10_000_000, backupCount=5)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    sh.setLevel(logging.WARNING if quiet else logging.INFO)
    sh.addFilter(lambda record: not getattr(record, "file_only", False))
    root.addHandler(fh)
    root.addHandler(sh)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT only note a stop request (the event) while inside; the previous handlers come back after."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    # A stop (SIGTERM from the batch system at walltime, Ctrl-C) must end in exit 0 whenever it lands, also
    # while the cluster starts: until the controller takes over the signals, they only note the request.
    # `alloop.cli.main` notes them from before it builds the command line.
    stop = getattr(args, "stop_event", None)
    if stop is not None:
        return _run(args, stop)
    with stop_on_signals() as stop:
        return _run(args, stop)


def _stopped_before_start(campaign: Any) -> int:
    logging.getLogger("alloop").warning("stopped on request before the controller started; `alloop run` resumes")
    print(f"campaign '{campaign.name}': stopped\n  stopped on request before the controller started; run again to resume")
    return EXIT["stopped"]


def _failed(message: object, code: int) -> int:
    """The error in the log file and, once, on stderr as the command's last word."""
    logging.getLogger("alloop").error("%s", message, extra={"file_only": True})
    print(f"error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    from alloop.cluster import open_pools
    from alloop.config import load_campaign
    from alloop.controller import Controller
    from alloop.state import Store

    try:
        campaign = load_campaign(args.campaign)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        setup_logging(Path(campaign.workdir), args.quiet)
    except OSError as exc:
        print(f"error: cannot write the campaign's log in {campaign.workdir} ({disk_problem(exc) or exc}): `alloop run` "
              "needs a writable work directory with free space", file=sys.stderr)
        return 1
    log = logging.getLogger("alloop")
    if stop.is_set():
        return _stopped_before_start(campaign)
    try:
        store = Store.open(campaign.database_path)
    except AlloopError as exc:  # not a campaign database, a newer schema: one line, no traceback
        return _failed(exc, 2)
    try:
        with open_pools(campaign.cluster, Path(campaign.workdir) / "worker-logs") as (client, ensemble_client):
            outcome = Controller(campaign, store, client, ensemble_client, accept_changes=args.accept_changes,
                                 retry=args.retry, stop=stop).run()
    except CampaignChangedError as exc:
        return _failed(exc, 2)
    except AlloopError as exc:
        return _failed(exc, 1)
    except OSError as exc:  # the controller's own writes (its log, a report, a work directory) on a full disk
        problem = disk_problem(exc)
        if problem is None:
            raise
        full = DiskFullError("the controller", problem, campaign.workdir)
        return _failed(full, 1)
    finally:
        store.close()
    log.info("%s: %s", outcome.status, outcome.message)
    print(f"campaign '{campaign.name}': {outcome.status}")
    print(f"  {outcome.message}")
    if outcome.potential:
        print(f"  trained potential: {outcome.potential}")
    print(f"  database: {campaign.database_path}  (alloop status {campaign.database_path})")
    return EXIT.get(outcome.status, 1)
