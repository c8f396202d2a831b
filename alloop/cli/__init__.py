"""`alloop` command line: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from contextlib import ExitStack

from alloop import __version__

COMMANDS = ("run", "validate", "status", "score", "weights", "evaluate", "sweep", "report", "generate", "env", "properties")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alloop",
        description=(
            "Active-learning loop for machine-learned interatomic potentials: a heterogeneous uMLIP ensemble "
            "scores configurations by the uncertainty U (Liu et al. 2026); those with U < U_c are labelled by "
            "the best uMLIP, the rest by DFT; an ACE potential is fitted with pacemaker and the loop iterates "
            "until its extrapolation grade converges. State lives in SQLite: `alloop run` resumes after any stop."
        ),
    )
    parser.add_argument("--version", action="version", version=f"alloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"alloop.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with ExitStack() as stack:
        # `alloop run` takes SIGTERM/SIGINT as a stop (exit 0) from its first instant: building the parser
        # imports every sub-command, which on a loaded node takes long enough for a walltime signal to land.
        stop = None
        if argv[:1] == ["run"]:
            from alloop.cli.run import stop_on_signals

            stop = stack.enter_context(stop_on_signals())
        parser = build_parser()
        args = parser.parse_args(argv)
        if stop is not None:
            args.stop_event = stop
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
