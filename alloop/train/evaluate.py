"""Energy and force errors of an ACE potential on labelled structures: the one code path behind
`alloop evaluate`, `alloop sweep` and the parity plots of `alloop report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms


def compute_errors(potential: str | Path, frames: Sequence[Atoms]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics (energies meV/atom, forces eV/Å per Cartesian component) and the paired values for plots."""
    from alloop.train.model import predict

    energies, forces = predict(potential, frames)
    n = np.array([len(a) for a in frames], dtype=float)
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    e_pred = energies / n
    f_ref = np.concatenate([np.asarray(a.get_forces()).ravel() for a in frames])
    f_pred = np.concatenate([f.ravel() for f in forces])
    metrics = {"potential": str(potential), "n_structures": len(frames), "n_atoms": int(n.sum()),
               **error_metrics(e_ref, e_pred, f_ref, f_pred)}
    return metrics, {"e_ref": e_ref, "e_pred": e_pred, "f_ref": f_ref, "f_pred": f_pred}


def error_metrics(e_ref: np.ndarray, e_pred: np.ndarray, f_ref: np.ndarray, f_pred: np.ndarray) -> dict[str, float]:
    """Energy errors (per-atom energies in eV/atom in, meV/atom out) and force errors (components, eV/Å)."""
    de, df = np.asarray(e_pred) - np.asarray(e_ref), np.asarray(f_pred).ravel() - np.asarray(f_ref).ravel()
    return {
        "energy_rmse": float(np.sqrt(np.mean(de**2)) * 1e3),
        "energy_mae": float(np.mean(np.abs(de)) * 1e3),
        "energy_offset": float(np.mean(de) * 1e3),
        "energy_rmse_centered": float(np.std(de) * 1e3),
        "force_rmse": float(np.sqrt(np.mean(df**2))),
        "force_mae": float(np.mean(np.abs(df))),
    }
