"""Energy and force errors of an ACE potential on labelled structures: the one code path behind
`alloop evaluate`, `alloop sweep` and the parity plots of `alloop report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms


def compute_errors(potential: str | Path, frames: Sequence[Atoms]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics (energies meV/atom, forces eV/Å per Cartesian component) and the paired values for plots,
    against the labels the frames' calculators hold."""
    return errors_against(potential, frames, [a.get_potential_energy() for a in frames], [a.get_forces() for a in frames])


def errors_against(potential: str | Path, structures: Sequence[Atoms], energies: Sequence[float],
                   forces: Sequence[np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """compute_errors against given labels: total `energies` (eV, on the scale `predict` returns) and
    `forces` (eV/Å, one (n, 3) array per structure)."""
    from alloop.train.model import predict

    e_pred, f_pred = predict(potential, structures)
    n = np.array([len(a) for a in structures], dtype=float)
    pairs = {"e_ref": np.asarray(energies, dtype=float) / n, "e_pred": e_pred / n,
             "f_ref": np.concatenate([np.asarray(f, dtype=float).ravel() for f in forces]),
             "f_pred": np.concatenate([f.ravel() for f in f_pred])}
    metrics = {"potential": str(potential), "n_structures": len(structures), "n_atoms": int(n.sum()),
               **error_metrics(pairs["e_ref"], pairs["e_pred"], pairs["f_ref"], pairs["f_pred"])}
    return metrics, pairs


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
