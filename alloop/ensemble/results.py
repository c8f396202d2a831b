"""Prediction containers: plain numpy, picklable, so they cross process and Dask boundaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from alloop.ensemble.spec import EnsembleSpec


@dataclass
class MemberPredictions:
    """One member on n structures. A structure the member could not predict (exception, NaN/inf
    output, unknown element) has NaN energy and forces and its reason in `errors`."""

    member: str
    energies: np.ndarray  # (n,) float64, total energy in eV
    forces: list[np.ndarray]  # n arrays (n_i, 3) float64, eV/Å
    errors: dict[int, str] = field(default_factory=dict)
    # Extra per-structure outputs, e.g. "orb_confidence" (the Orb confidence head's expected error).
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.forces)


def stacked_predictions(member: str, n_atoms: list[int], stored: list[tuple[float | None, Any, str | None] | None]) -> MemberPredictions:
    """A member's stored predictions of n structures, as (energy, forces, error) or None where nothing is stored,
    stacked into MemberPredictions: NaN where there is no prediction, with its reason."""
    pred = MemberPredictions(member, np.full(len(n_atoms), np.nan), [np.full((n, 3), np.nan) for n in n_atoms])
    for k, row in enumerate(stored):
        energy, forces, error = row if row is not None else (None, None, None)
        if forces is None or energy is None:
            pred.errors[k] = error or "no prediction stored"
        else:
            pred.energies[k], pred.forces[k] = energy, forces
    return pred


@dataclass
class EnsemblePredictions:
    """K members on n structures with N atoms in all: the input of U (alloop.uq)."""

    members: tuple[str, ...]
    in_u: np.ndarray  # (K,) bool: member enters U
    rmse: np.ndarray | None  # (K_u,) RMSEs of the U members, None = equal weights
    energies: np.ndarray  # (K, n) eV
    forces: np.ndarray  # (K, N, 3) eV/Å
    offsets: np.ndarray  # (n + 1,) structure i is atoms offsets[i]:offsets[i+1]
    errors: dict[str, dict[int, str]]  # member -> structure index -> reason
    extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # member -> name -> (n,)

    @classmethod
    def stack(cls, spec: EnsembleSpec, per_member: Mapping[str, MemberPredictions], n_atoms: np.ndarray) -> EnsemblePredictions:
        """Every member's predictions on the same n structures (`n_atoms` each), in ensemble order: what
        `predict_ensemble` returns, and what the campaign builds from the predictions in its database."""
        from alloop.structures import flatten_forces

        k, n = len(spec.members), len(n_atoms)
        _, offsets = flatten_forces([np.zeros((int(m), 3)) for m in n_atoms])
        energies = np.full((k, n), np.nan)
        forces = np.full((k, int(offsets[-1]), 3), np.nan)
        errors: dict[str, dict[int, str]] = {}
        extras: dict[str, dict[str, np.ndarray]] = {}
        for j, member in enumerate(spec.members):
            pred = per_member[member.name]
            energies[j] = pred.energies
            if n:
                forces[j] = np.concatenate(pred.forces)
            errors[member.name] = dict(pred.errors)
            if pred.extras:
                extras[member.name] = dict(pred.extras)
        return cls(
            members=tuple(m.name for m in spec.members),
            in_u=np.array([m.in_u for m in spec.members], dtype=bool),
            rmse=spec.rmse(),
            energies=energies,
            forces=forces,
            offsets=offsets,
            errors=errors,
            extras=extras,
        )

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    def index(self, member: str) -> int:
        return self.members.index(member)

    def failed(self) -> np.ndarray:
        """(n,) bool: some U member could not predict the structure, so U is undefined there."""
        bad = np.zeros(self.n_structures, dtype=bool)
        for name, errs in self.errors.items():
            if self.in_u[self.index(name)] and errs:
                bad[list(errs)] = True
        return bad

    def u_forces(self) -> np.ndarray:
        """(K_u, N, 3) forces of the members that enter U."""
        return self.forces[self.in_u]

    def uncertainty(self, variant: int = 1) -> np.ndarray:
        """(n,) U^(variant) in eV/Å (Eqs. 1-4); NaN for structures some U member failed on."""
        from alloop.uq import uncertainty

        return uncertainty(self.u_forces(), self.offsets, self.rmse, variant=variant, nan_policy="propagate")  # type: ignore[arg-type]

    def mean_forces(self) -> np.ndarray:
        """(N, 3) plain mean of the U members' forces, the <F> of Eqs. (1) and (5)."""
        return self.u_forces().mean(axis=0)

    def structure_errors(self, i: int) -> list[str]:
        """'member: reason' for every member that failed on structure i."""
        return [f"{m}: {errs[i]}" for m, errs in self.errors.items() if i in errs]
