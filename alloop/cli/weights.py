"""`alloop weights -e ENSEMBLE DATA [-o ensemble.yaml]`: calibrate the Eq. (2) weights on labelled data."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from alloop.errors import AlloopError

if TYPE_CHECKING:
    from ase import Atoms

    from alloop.ensemble import EnsemblePredictions, EnsembleSpec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="measure each member's force RMSE on labelled data and write the ensemble with Eq. (2) weights",
        description="Run every member of ENSEMBLE on DATA (structures with reference forces: extxyz or any ASE "
        "format, pacemaker .pckl.gzip, mlearn JSON, npz), measure each member's force RMSE (per component, "
        "over all atoms it could predict) and write the ensemble YAML with these rmse values; U then weights "
        "member k by w_k = (1/RMSE_k) / sum(1/RMSE) (Eq. 2). The paper uses RMSEs on OMat24; RMSEs on your "
        "own system weight the members for that system.",
    )
    p.add_argument("data", help="labelled structures")
    p.add_argument("-e", "--ensemble", default="offline", help="built-in name or ensemble YAML (default: offline)")
    p.add_argument("-o", "--output", help="ensemble YAML to write (default: print it)")
    p.add_argument("--name", help="name of the written ensemble (default: <ensemble>-weighted)")
    p.add_argument("--checkpoint-dir", help="folder holding the members' checkpoint files")
    p.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def member_rmse(frames: list[Atoms], preds: EnsemblePredictions) -> tuple[np.ndarray, np.ndarray]:
    """(K,) force RMSE of each member over the atoms of the structures it predicted, and (K,) the
    number of structures it failed on."""
    ref = np.concatenate([a.calc.results["forces"] for a in frames])  # type: ignore[union-attr]
    counts = np.diff(preds.offsets)
    rmse = np.full(len(preds.members), np.nan)
    failures = np.zeros(len(preds.members), dtype=int)
    for k, name in enumerate(preds.members):
        ok = np.ones(len(frames), dtype=bool)
        ok[list(preds.errors.get(name, {}))] = False
        failures[k] = int((~ok).sum())
        rows = np.repeat(ok, counts)
        if rows.any():
            d = preds.forces[k, rows] - ref[rows]
            rmse[k] = float(np.sqrt(np.mean(d * d)))
    return rmse, failures


def run(args: argparse.Namespace) -> int:
    from alloop.ensemble import predict_ensemble, resolve_ensemble
    from alloop.io import read_labelled

    try:
        frames = read_labelled(args.data)
        spec = resolve_ensemble(args.ensemble, checkpoint_dir=args.checkpoint_dir)
        _say(f"measuring force RMSEs of {len(spec.members)} members on {len(frames)} structures "
             f"({sum(map(len, frames))} atoms)")
        preds = predict_ensemble(spec, frames, progress=lambda m: _say(f"  {m}"))
    except AlloopError as exc:
        _say(f"error: {exc}")
        return 2
    rmse, failures = member_rmse(frames, preds)
    bad = [n for n, r in zip(preds.members, rmse) if not np.isfinite(r)]
    if bad:
        _say(f"error: member(s) {', '.join(bad)} failed on every structure; no RMSE (see their errors above)")
        return 1
    text = ensemble_yaml(spec, rmse, failures, args.data, len(frames), args.name or f"{spec.name}-weighted")
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
        _say(f"wrote {args.output}")
    else:
        print(text, end="")
    best = spec.members[int(np.nanargmin(rmse))].name
    if best != spec.force_member:
        _say(f"note: the lowest force RMSE is {best}'s; force_member stays {spec.force_member} (edit it to change)")
    return 0


def ensemble_yaml(
    spec: EnsembleSpec, rmse: np.ndarray, failures: np.ndarray, data: str, n_structures: int, name: str
) -> str:
    """The ensemble as YAML with measured rmse values; a header comment tabulates RMSEs and weights."""
    import yaml

    from alloop.uq import weights_from_rmse

    in_u = np.array([m.in_u for m in spec.members])
    w = np.zeros(len(spec.members))
    w[in_u] = weights_from_rmse(rmse[in_u])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Written by `alloop weights` on {stamp}: force RMSEs measured on {data} ({n_structures} structures).",
        "# Eq. (2): w_k = (1/RMSE_k) / sum over U members of 1/RMSE.",
        f"# {'member':<28} {'RMSE (eV/Å)':>12} {'weight':>8} {'failed':>7}",
    ]
    for m, r, wk, nf in zip(spec.members, rmse, w, failures):
        weight = f"{wk:8.4f}" if m.in_u else "  (no U)"
        lines.append(f"# {m.name:<28} {r:12.5f} {weight} {nf:7d}")
    members: list[dict[str, Any]] = []
    for m, r in zip(spec.members, rmse):
        d = m.model_dump(mode="json", exclude_defaults=True)
        d["rmse"] = round(float(r), 6)
        members.append(d)
    body = {"name": name, "energy_member": spec.energy_member, "force_member": spec.force_member, "members": members}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
