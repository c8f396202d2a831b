"""`alloop env create FAMILY` / `alloop env list`: virtual environments for uMLIP families that cannot
share alloop's own (MACE, Orb, fairchem, ...); their members run there with `python:`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alloop.errors import AlloopError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from alloop.ensemble.environments import ENV_DIR_ENV
    from alloop.ensemble.pins import TORCH
    from alloop.ensemble.provisioning import RECIPES

    families = ", ".join(f"{k} ({' '.join(r.requirements)})" for k, r in RECIPES.items())
    p = sub.add_parser(
        "env",
        help="create and list the virtual environments that run uMLIP families in their own interpreter",
        description="Ensemble members whose library clashes with alloop's environment (mace-torch pins e3nn "
        "0.4.4, fairchem-core brings numpy 2.4) run in an environment of their own: give the member "
        f"`python: <env>/bin/python`. Environments live in ${ENV_DIR_ENV} (default ~/.cache/alloop/envs). "
        f"Families: {families}.",
    )
    actions = p.add_subparsers(dest="env_command", metavar="ACTION")
    c = actions.add_parser(
        "create",
        help="build the environment of a family and print the member's python: line",
        description="Create a venv for FAMILY with a pinned torch, the family's package and alloop's worker "
        "(alloop without its dependencies, plus numpy, ase, pydantic, PyYAML), check that it imports the "
        "family, and print the `python:` line for the member spec. Downloads go through pip's cache, so a "
        "second create is fast; re-running on an existing environment brings it up to date.",
    )
    c.add_argument("family", choices=list(RECIPES), metavar="FAMILY", help=", ".join(RECIPES))
    c.add_argument("--prefix", help=f"where to create it (default: ${ENV_DIR_ENV}/FAMILY or ~/.cache/alloop/envs/FAMILY)")
    c.add_argument("--torch", default=TORCH,
                   help=f"torch requirement, also pinned as a constraint (default: {TORCH}, the CPU build on "
                   "these machines); on a GPU cluster the torch matching your CUDA")
    c.add_argument("--torch-index", metavar="URL",
                   help="extra package index for torch, e.g. https://download.pytorch.org/whl/cu128 for a CUDA build")
    c.add_argument("-c", "--constraint", action="append", default=[], metavar="FILE",
                   help="more pip constraints (repeatable)")
    c.add_argument("--python", dest="base_python", help="base interpreter for the venv (default: the one alloop runs on)")
    c.add_argument("--dry-run", action="store_true",
                   help="resolve only: list the packages the environment would get, install nothing")
    c.set_defaults(func=run_create)
    ls = actions.add_parser(
        "list",
        help="show the environments and whether each can load its family",
        description="For every environment alloop created (under the folder below), import its family's package "
        "in that interpreter and show the installed versions and the member's python: line.",
    )
    ls.add_argument("family", nargs="*", metavar="FAMILY",
                    help="only these families (default: every environment in the folder); the exit status is 1 "
                    "when one of those shown cannot load its family")
    ls.add_argument("--dir", help=f"folder holding the environments (default: ${ENV_DIR_ENV} or ~/.cache/alloop/envs)")
    ls.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _constraint_lines(files: list[str]) -> list[str]:
    from alloop.errors import MissingFileError

    lines = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise MissingFileError(f, "constraints file", "give -c the path of a pip constraints file")
        lines += [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return lines


def run_create(args: argparse.Namespace) -> int:
    import time

    from alloop.ensemble import provisioning

    try:
        p = provisioning.plan(args.family, args.prefix, torch=args.torch, torch_index=args.torch_index,
                      constraints=_constraint_lines(args.constraint), base_python=args.base_python)
        if args.dry_run:
            _say(f"resolving the {p.family} environment (pip --dry-run, nothing installed) ...")
            packages = provisioning.resolve(p)
            for d in packages:
                print(f"{d['name']}=={d['version']}")
            cuda = [d["name"] for d in packages if d["name"].lower().startswith("nvidia-")]
            _say(f"{len(packages)} packages would be installed into {p.prefix}"
                 + (f"; CUDA helper packages among them: {', '.join(cuda)}" if cuda else ""))
            return 0
        start = time.monotonic()
        _say(f"creating the {p.family} environment in {p.prefix} ({p.torch}, {' '.join(p.requirements)})")
        status = provisioning.create(p, log=lambda m: _say(f"  {m}"))
    except AlloopError as exc:
        _say(f"error: {exc}")
        return 2
    versions = ", ".join(f"{k} {v}" for k, v in status.versions.items() if v)
    _say(f"done in {time.monotonic() - start:.0f} s: {versions}")
    print(f"python: {status.python}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from alloop.ensemble import environments as envs

    root = Path(args.dir) if args.dir else envs.env_dir()
    prefixes = envs.environments(root)
    if args.family:
        unknown = sorted(set(args.family) - set(envs.FAMILIES))
        if unknown:
            _say(f"error: unknown famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                 f"known: {', '.join(envs.FAMILIES)}")
            return 2
        prefixes = [p for p in prefixes if p.name in args.family]
        missing = sorted(set(args.family) - {p.name for p in prefixes})
        for family in missing:
            print(f"{family:10s} {'MISSING':7s} no environment in {root / family}; create it with: "
                  f"alloop env create {family}")
        if missing:
            return 1
    if not prefixes:
        _say(f"no environments in {root} (create one with: alloop env create FAMILY)")
        return 0
    failed = 0
    for prefix in prefixes:
        status = envs.probe(prefix)
        versions = ", ".join(f"{k} {v or 'missing'}" for k, v in status.versions.items())
        print(f"{status.family or '?':10s} {'loads' if status.loads else 'BROKEN':7s} {versions}")
        print(f"{'':10s} python: {status.python}")
        if not status.loads:
            failed += 1
            print(f"{'':10s} {status.error}")
            print(f"{'':10s} repair it with: alloop env create {status.family or prefix.name}"
                  + (f" --prefix {prefix}" if prefix.parent != envs.env_dir() else ""))
    return 1 if failed else 0
