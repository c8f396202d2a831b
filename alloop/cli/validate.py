"""`alloop validate FILE [--explain]`: check a campaign file without running anything."""

from __future__ import annotations

import argparse
import sys

from alloop.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a campaign file and report every problem with its field and line",
        description="Check a campaign file: YAML syntax, unknown keys, types and ranges, the ensemble and its "
        "elements. Prints every problem with its field path and line; exit code 2 when there is any. Keys "
        "spelled as an older alloop did are read as today's and named in a note.",
    )
    p.add_argument("campaign", help="campaign YAML file")
    p.add_argument("--explain", action="store_true",
                   help="also print every key of the campaign: its value, default, unit and meaning")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alloop.config import load_campaign_with_notes

    try:
        c, notes = load_campaign_with_notes(args.campaign)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.campaign}: OK (campaign '{c.name}', elements {', '.join(c.elements)}, database {c.database_path})")
    if args.explain:
        from alloop.schema import explain

        print(explain(c))
    return 0
