"""`alloop score INPUT -e ENSEMBLE -o OUT.extxyz`: the ensemble uncertainty U of every configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alloop.errors import AlloopError

if TYPE_CHECKING:
    from ase import Atoms

    from alloop.ensemble import EnsemblePredictions


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score configurations with the ensemble uncertainty U (and its error if DFT forces are given)",
        description="Run every ensemble member on the configurations of INPUT and write them to OUT (extxyz) with "
        "U (the chosen variant), U0, U1, U2 and the energy member's energy (umlip_energy) in atoms.info and, per "
        "atom, the ensemble-mean force (umlip_forces) and the largest member deviation from it "
        "(umlip_max_deviation) in atoms.arrays. When INPUT carries reference forces, also writes the force "
        "error dF (Eq. 5), prints its statistics with Spearman's rho against U and, with --plots, saves the "
        "U-vs-error hexbin and the accuracy-coverage curves. Progress goes to stderr.",
    )
    p.add_argument("input", help="structures: extxyz or any ASE format, pacemaker .pckl.gzip, mlearn JSON, npz")
    p.add_argument("-e", "--ensemble", default="offline", help="built-in name or ensemble YAML (default: offline)")
    p.add_argument("-o", "--output", required=True, help="output extxyz file")
    p.add_argument("--variant", type=int, choices=(0, 1, 2), default=1,
                   help="U written as 'U': 0 equal weights, 1 Eq. (1) (default), 2 Eqs. (3-4)")
    p.add_argument("--plots", metavar="DIR", help="folder for the U-vs-error and coverage PNGs (needs reference forces)")
    p.add_argument("--checkpoint-dir", help="folder holding the members' checkpoint files")
    p.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from alloop.ensemble import predict_ensemble, resolve_ensemble
    from alloop.io import read_labelled, write_extxyz

    try:
        frames = read_labelled(args.input, require_forces=False)
        spec = resolve_ensemble(args.ensemble, checkpoint_dir=args.checkpoint_dir)
        _say(f"scoring {len(frames)} configurations ({sum(map(len, frames))} atoms) with ensemble '{spec.name}' "
             f"({len(spec.members)} members)")
        preds = predict_ensemble(spec, frames, progress=lambda m: _say(f"  {m}"))
    except AlloopError as exc:
        _say(f"error: {exc}")
        return 2

    u = {v: preds.uncertainty(v) for v in (0, 1, 2)}
    _annotate(frames, preds, u, args.variant, preds.index(str(spec.energy_member)))
    errors = _force_errors(frames, preds)
    out = write_extxyz(args.output, frames)
    failed = preds.failed()
    _say(f"wrote {out}" + (f" ({int(failed.sum())} configurations without U: see ensemble_errors)" if failed.any() else ""))
    _warn_failing_members(spec, preds)
    if errors is None:
        if args.plots:
            _say("--plots: fewer than 2 configurations with reference forces and a U, nothing to plot")
        return 0
    _report(errors, u, args.variant, spec.name, args.plots)
    return 0


def _warn_failing_members(spec: Any, preds: EnsemblePredictions) -> None:
    """The members a campaign would stop its iteration for (alloop.ensemble.routing.failing_members at the default
    guard.max_member_failure_share): a warning line each, as the loop's failure reason reads."""
    from alloop.config import GuardSettings
    from alloop.ensemble.routing import failing_members

    share = GuardSettings().max_member_failure_share
    watched = [m.name for m in spec.u_members]
    for f in failing_members(preds.errors, preds.n_structures, watched, share):
        _say(f"warning: {f.describe()}; a campaign would stop this iteration (guard.max_member_failure_share = {share:.0%})")


def _annotate(frames: list[Atoms], preds: EnsemblePredictions, u: dict[int, np.ndarray], variant: int, energy_k: int) -> None:
    from alloop.uq import atom_deviation

    dev = atom_deviation(preds.u_forces(), preds.offsets, preds.rmse, variant=variant, nan_policy="propagate")  # type: ignore[arg-type]
    max_dev = dev.max(axis=0)
    mean_f = preds.mean_forces()
    off = preds.offsets
    for i, atoms in enumerate(frames):
        s = slice(off[i], off[i + 1])
        atoms.info["U"] = u[variant][i]
        for v in (0, 1, 2):
            atoms.info[f"U{v}"] = u[v][i]
        atoms.info["umlip_energy"] = preds.energies[energy_k, i]
        atoms.arrays["umlip_forces"] = mean_f[s]
        atoms.arrays["umlip_max_deviation"] = max_dev[s]
        reasons = preds.structure_errors(i)
        if reasons:
            atoms.info["ensemble_errors"] = " | ".join(reasons)


def _force_errors(frames: list[Atoms], preds: EnsemblePredictions) -> dict[str, np.ndarray] | None:
    """ΔF (Eq. 5) and squared-error sums of the configurations with reference forces and a U; the
    ΔF also goes into atoms.info['dF']. None when fewer than two such configurations exist."""
    from alloop.io import has_reference_forces
    from alloop.uq import force_error, force_sq_errors

    keep = np.array([has_reference_forces(a) for a in frames]) & ~preds.failed()
    idx = np.flatnonzero(keep)
    if idx.size < 2:
        return None
    off = preds.offsets
    rows = np.concatenate([np.arange(off[i], off[i + 1]) for i in idx])
    sub_off = np.concatenate([[0], np.cumsum(np.diff(off)[idx])])
    ref = np.concatenate([frames[i].calc.results["forces"] for i in idx])  # type: ignore[union-attr]
    mean_f = preds.mean_forces()[rows]
    d_f = force_error(ref, mean_f, sub_off)
    sq, counts = force_sq_errors(ref, mean_f, sub_off)
    for k, i in enumerate(idx):
        frames[i].info["dF"] = d_f[k]
    return {"idx": idx, "dF": d_f, "sq": sq, "counts": counts}


def _report(errors: dict[str, np.ndarray], u: dict[int, np.ndarray], variant: int, name: str, plots: str | None) -> None:
    from alloop.uq import spearman

    idx, d_f = errors["idx"], errors["dF"]
    u_sel = u[variant][idx]
    rmse = float(np.sqrt(errors["sq"].sum() / errors["counts"].sum()))
    print(f"configurations with reference forces and U: {idx.size}")
    print(f"force error dF (Eq. 5, eV/Å): median {np.median(d_f):.4g}, max {d_f.max():.4g}; "
          f"force RMSE of the ensemble mean: {rmse:.4g} eV/Å")
    print(f"U{variant} (eV/Å): median {np.median(u_sel):.4g}, max {u_sel.max():.4g}")
    print("Spearman rho(U, dF): " + ", ".join(f"U{v} {spearman(u[v][idx], d_f):.3f}" for v in (0, 1, 2)))
    if not plots:
        return
    from alloop.report.plots import coverage_plot, parity_hexbin

    folder = Path(plots)
    try:
        a = parity_hexbin(u_sel, d_f, folder / "u_vs_force_error.png", title=f"ensemble '{name}', U{variant}")
        b = coverage_plot(u_sel, errors["sq"], errors["counts"], folder / "coverage.png", title=f"ensemble '{name}'")
    except AlloopError as exc:
        _say(f"plots skipped: {exc}")
    else:
        _say(f"plots: {a}, {b}")
