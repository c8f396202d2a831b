"""Extrapolation grade γ of an ACE potential (Lysogorskiy et al. 2023): per atom, the largest |coefficient|
of its B-basis projection expressed in the active set, γ = max_j |b · A⁻¹|_j. γ ≤ 1 interpolates the
training data; γ > 1 extrapolates.

Batched B-projections (pyace.activelearning.compute_B_projections) and one matrix product per species
give ~8,000 atoms/s on one thread (72 functions): ~2x PyACECalculator with an active set on 8-atom cells,
about the same on 54- and 128-atom cells, where its per-structure overhead no longer counts
(tests/benchmarks/bench_gamma.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from alloop.errors import FitError
from alloop.train.model import AceModel, check_structures, load_ace

# Projections of this many atoms are held in memory at once (72 functions: ~12 MB).
CHUNK_ATOMS = 20_000


def extrapolation_grades(
    potential: str | Path, active_set: str | Path, structures: Sequence[Atoms]
) -> list[np.ndarray]:
    """Per-atom γ for each structure (one array of len(atoms) per structure)."""
    structures = list(structures)
    model = load_ace(potential, active_set)
    check_structures(model, structures)
    out: list[np.ndarray] = []
    for start, stop in chunks(structures, CHUNK_ATOMS):
        types, proj = projections(model, structures[start:stop])
        gamma = grades(model, types, proj)
        counts = [len(a) for a in structures[start:stop]]
        out.extend(np.split(gamma, np.cumsum(counts)[:-1]))
    return out


def max_gamma(potential: str | Path, active_set: str | Path, structures: Sequence[Atoms]) -> np.ndarray:
    """Largest per-atom γ of each structure."""
    return np.array([g.max() if g.size else 0.0 for g in extrapolation_grades(potential, active_set, structures)])


def chunks(structures: Sequence[Atoms], max_atoms: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of consecutive structures with about `max_atoms` atoms each."""
    start, n = 0, 0
    for i, atoms in enumerate(structures):
        n += len(atoms)
        if n >= max_atoms:
            yield start, i + 1
            start, n = i + 1, 0
    if start < len(structures):
        yield start, len(structures)


def projections(model: AceModel, structures: Sequence[Atoms]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Species index of every atom (structures concatenated) and, per species, the B-projections of its
    atoms in that same order, shape (n_atoms_of_species, n_functions)."""
    from pyace.activelearning import compute_B_projections

    species = model.species
    types = np.fromiter(
        (species[s] for a in structures for s in a.get_chemical_symbols()), dtype=np.int64,
        count=sum(len(a) for a in structures),
    )
    if not len(structures):
        return types, {}
    return types, compute_B_projections(model.basis, list(structures))


def grades(model: AceModel, types: np.ndarray, proj: dict[int, np.ndarray]) -> np.ndarray:
    if model.inverse is None:
        raise FitError(f"extrapolation grades of {model.potential.name} need its active set (.asi)")
    gamma = np.zeros(len(types))
    for st, b in proj.items():
        if len(b):
            gamma[types == st] = np.abs(b @ model.inverse[st]).max(axis=1)
    return gamma
