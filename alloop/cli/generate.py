"""`alloop generate CAMPAIGN.yaml -o candidates.extxyz`: preview the candidates the next iteration generates."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloop.errors import AlloopError

if TYPE_CHECKING:
    from ase import Atoms



def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="preview the candidates the next iteration would generate (kinds, compositions, sizes)",
        description="Build the candidate configurations of a campaign's next iteration exactly as `alloop run` "
        "draws them (data-set sources, the random motifs and, with generate.genome, the decorated defect genome; the MaxVol "
        "decoration scores against the campaign's latest potential when its database has one, else against "
        "its untrained ACE basis) and write them to OUT (extxyz, with kind and generator parameters in "
        "atoms.info). Nothing is scored, labelled or written to the database. γ-driven MD exploration "
        "candidates are not included. Prints a table by kind: count, atoms per cell, how many species the "
        "cells hold, and the mean composition.",
    )
    p.add_argument("campaign", help="campaign YAML file")
    p.add_argument("-o", "--output", required=True, help="output extxyz file")
    p.add_argument("--iteration", type=int, help="iteration index to draw for (default: the next one)")
    p.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from alloop.config import load_campaign
    from alloop.controller.loop import STREAM_CALIBRATION, STREAM_POOL
    from alloop.explore.pool import candidate_pool
    from alloop.generate.calibration import iteration_calibration
    from alloop.io import write_extxyz
    from alloop.structures import fresh_candidates

    try:
        c = load_campaign(args.campaign, check_ensemble=False)
        idx, pot, known = _next_iteration(c.database_path, c.name)
        if args.iteration is not None:
            idx = args.iteration
        basis = f"potential {pot['path']}" if pot else "the campaign's untrained ACE basis"
        _say(f"generating the candidates of iteration {idx} for {', '.join(c.elements)}"
             + (f" (MaxVol decoration against {basis})" if c.generate.genome is not None else ""))
        # the controller's own pool function and random stream, without the MD exploration
        pool = candidate_pool(c.elements, c.generate, c.explore, None if pot is None else (pot["path"], pot["active_set"]),
                              c.seed, idx, STREAM_POOL, sources=True, fit=c.train, explore=False).candidates
        # what the loop's generate stage keeps of them: its calibration cells, nothing the campaign holds, nothing unphysical
        calibration = iteration_calibration(c.elements, c.generate, c.labels.energy_reference, idx, c.seed, STREAM_CALIBRATION)
        new = fresh_candidates(calibration + pool, known, c.selection.min_distance)
        frames = [a for _, a in new.physical]
    except AlloopError as exc:
        _say(f"error: {exc}")
        return 2
    if new.rejected:
        _say(f"{len(new.rejected)} unphysical candidates left out, as the loop would: " + "; ".join(sorted({w for _, _, w in new.rejected}))[:300])
    if len(calibration) + len(pool) - len(new.hashes):
        _say(f"{len(calibration) + len(pool) - len(new.hashes)} candidates the campaign already holds left out")
    print(summary_table(frames, c.elements))
    out = write_extxyz(args.output, [_for_extxyz(a) for a in frames])
    _say(f"wrote {len(frames)} configurations ({sum(map(len, frames))} atoms) to {out}")
    return 0


def _next_iteration(db: Path, name: str) -> tuple[int, dict[str, Any] | None, set[str]]:
    """(index of the iteration that generates next, latest potential, the configurations' hashes) from the
    database, if there is one."""
    if not Path(db).is_file():
        return 0, None, set()
    from sqlalchemy.exc import DBAPIError

    from alloop.errors import StateError
    from alloop.state import Store

    store = Store.open_readonly(db)  # a preview: never migrates, never takes or waits on the write lock
    try:
        cid = store.campaign(name)["id"]
        cur = store.current_iteration(cid)
        pot = store.latest_potential(cid)
        known = store.known_hashes(cid)
    except DBAPIError as exc:
        raise StateError(store._unreadable(exc)) from exc
    finally:
        store.close()
    if cur is None:
        return 0, pot, known
    return (cur[0] if cur[1] == "generate" else cur[0] + 1), pot, known


def _for_extxyz(atoms: Atoms) -> Atoms:
    out = atoms.copy()
    out.info["generator"] = json.dumps(atoms.info["generator"])  # extxyz holds flat values only
    return out


def summary_table(frames: list[Atoms], elements: list[str]) -> str:
    """One row per kind: count, atoms per cell, cells by number of species present, mean composition."""
    import numpy as np

    rows: dict[str, list[Atoms]] = defaultdict(list)
    for a in frames:
        rows[a.info["kind"]].append(a)
    n_el = len(elements)
    head = f"{'kind':<22}{'n':>5}{'atoms':>10}  " + " ".join(f"{k}-ary".rjust(7) for k in range(1, n_el + 1))
    head += "  " + " ".join(el.rjust(6) for el in elements)
    lines = [head, "-" * len(head)]
    for kind, group in rows.items():
        sizes = [len(a) for a in group]
        present = np.bincount([len(set(a.get_chemical_symbols())) for a in group], minlength=n_el + 1)[1:]
        frac = np.mean([[a.get_chemical_symbols().count(el) / len(a) for el in elements] for a in group], axis=0)
        lines.append(
            f"{kind:<22}{len(group):>5}{f'{min(sizes)}-{max(sizes)}':>10}  " + " ".join(f"{n:>7d}" for n in present)
            + "  " + " ".join(f"{x:>6.2f}" for x in frac)
        )
    total = sum(len(g) for g in rows.values())
    lines.append("-" * len(head))
    lines.append(f"{'total':<22}{total:>5}{sum(map(len, frames)):>10} atoms")
    return "\n".join(lines)
