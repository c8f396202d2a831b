"""`alloop evaluate POTENTIAL DATA [--plots DIR] [--json]`: errors of an ACE potential on a labelled set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alloop.errors import AlloopError
from alloop.train.evaluate import compute_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="energy and force RMSE of an ACE potential against a labelled set, with parity plots",
        description=(
            "Predict every structure of DATA (extxyz, pacemaker .pckl.gzip, mlearn/snap JSON or packed npz) with "
            "the ACE potential and compare with the reference labels. Energies are compared per atom as they "
            "are: a potential fitted to shifted (corrected) energies shows the shift as `energy_offset`; "
            "`energy_rmse_centered` removes it."
        ),
    )
    p.add_argument("potential", help="pacemaker B-basis potential (.yaml)")
    p.add_argument("data", help="labelled structures with reference energies and forces")
    p.add_argument("--plots", metavar="DIR", help="write parity_energy.png and parity_force.png into DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alloop.io import read_labelled
    from alloop.train import load_ace

    try:
        load_ace(args.potential)  # a wrong potential path fails before a possibly long read of the data
        frames = read_labelled(args.data)
        metrics, pairs = compute_errors(args.potential, frames)
        metrics["data"] = str(args.data)
        if args.plots:
            from alloop.report.plots import parity_pair

            metrics["plots"] = [str(p) for p in parity_pair(pairs, Path(args.plots))]
    except AlloopError as exc:
        print(f"alloop evaluate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        print(f"{metrics['potential']} on {metrics['data']}: {metrics['n_structures']} structures, {metrics['n_atoms']} atoms")
        print(f"  energy RMSE {metrics['energy_rmse']:9.3f} meV/atom  (MAE {metrics['energy_mae']:.3f}, "
              f"mean offset {metrics['energy_offset']:+.3f}, RMSE without offset {metrics['energy_rmse_centered']:.3f})")
        print(f"  force  RMSE {metrics['force_rmse']:9.4f} eV/Å      (MAE {metrics['force_mae']:.4f}, per component)")
        for p in metrics.get("plots", []):
            print(f"  plot: {p}")
    return 0
