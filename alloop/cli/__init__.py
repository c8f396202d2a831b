"""`alloop` command line: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys

from alloop import __version__

COMMANDS = ("run", "validate", "status", "score", "weights", "evaluate", "sweep", "report", "generate", "env")


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
