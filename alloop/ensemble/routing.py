"""Where each scored configuration's label comes from: the paper's strict U < U_c goes to the uMLIP
(energies of the energy member, forces of the force member), everything else to DFT.

U is `EnsemblePredictions.uncertainty`, the same computation `alloop score` writes: only the members
with `in_u`, Eq. (2) weights from their RMSEs (equal weights only when the ensemble gives none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alloop.ensemble.results import EnsemblePredictions
from alloop.uq import partition


@dataclass(frozen=True)
class Routing:
    u: dict[int, np.ndarray]  # variant 0/1/2 -> (n,) eV/Å, NaN where not computable
    to_umlip: np.ndarray  # (n,) bool
    energies: np.ndarray  # (n,) the energy member's total energies, eV
    forces: list[np.ndarray]  # the force member's forces, eV/Å
    reasons: list[str | None]  # why a configuration goes to DFT other than its U


def route(
    preds: EnsemblePredictions,
    u_c: float,
    variant: int,
    energy_member: str,
    force_member: str,
    force_dft: np.ndarray | None = None,
) -> Routing:
    """Route every configuration of `preds`; `force_dft` marks configurations that need DFT whatever their
    U (energy-reference calibration cells)."""
    n = preds.n_structures
    u = {v: preds.uncertainty(v) for v in (0, 1, 2)}
    e_k, f_k = preds.index(energy_member), preds.index(force_member)
    off = preds.offsets
    energies = preds.energies[e_k]
    forces = [preds.forces[f_k, off[i] : off[i + 1]] for i in range(n)]
    labels_ok = np.isfinite(energies) & np.array([np.isfinite(f).all() for f in forces], dtype=bool)
    forced = np.zeros(n, dtype=bool) if force_dft is None else np.asarray(force_dft, dtype=bool)
    to_umlip = partition(u[variant], u_c) & labels_ok & ~forced
    reasons: list[str | None] = []
    for i in range(n):
        errors = preds.structure_errors(i)
        if forced[i]:
            reasons.append("energy-reference calibration: labelled by DFT whatever its U")
        elif not np.isfinite(u[variant][i]):
            reasons.append("U not computable (" + "; ".join(errors or ["missing predictions"]) + "): sent to DFT")
        elif not labels_ok[i] and u[variant][i] < u_c:
            reasons.append("label members failed (" + "; ".join(errors or ["no prediction"]) + "): sent to DFT")
        else:
            reasons.append(None)
    return Routing(u, to_umlip, energies, forces, reasons)
