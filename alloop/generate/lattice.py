"""Crystal building blocks: lattice constants, supercell sizes, defect sites, chemical decoration."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

from alloop.errors import ConfigError

ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4}

# Self-interstitial geometries in fractional coordinates of the cubic cell, relative to the lattice
# site at the origin. "add" puts one extra atom at the given offset; "dumbbell" replaces the site
# atom by a pair at ±offset. Offsets keep every distance above ~0.4 a (1.3 Å for W).
INTERSTITIALS: dict[str, dict[str, tuple[str, tuple[float, float, float]]]] = {
    "bcc": {
        "octahedral": ("add", (0.5, 0.5, 0.0)),
        "tetrahedral": ("add", (0.5, 0.25, 0.0)),
        "crowdion_111": ("add", (0.25, 0.25, 0.25)),
        "dumbbell_110": ("dumbbell", (0.212, 0.212, 0.0)),
        "dumbbell_111": ("dumbbell", (0.173, 0.173, 0.173)),
    },
    "fcc": {
        "octahedral": ("add", (0.5, 0.0, 0.0)),
        "tetrahedral": ("add", (0.25, 0.25, 0.25)),
        "dumbbell_100": ("dumbbell", (0.3, 0.0, 0.0)),
    },
}


def lattice_constant(elements: Sequence[str], lattice: str, given: float | None) -> float:
    """`given`, else the mean of the elements' ASE reference constants (Vegard's law for alloys)."""
    if given is not None:
        return float(given)
    values, problems = [], []
    for el in elements:
        if el not in atomic_numbers:
            problems.append(f"unknown element {el!r}")
            continue
        ref = reference_states[atomic_numbers[el]] or {}
        if ref.get("symmetry") != lattice or "a" not in ref:
            problems.append(
                f"{el} has no {lattice} reference structure in ase.data.reference_states "
                f"(its reference is {ref.get('symmetry', 'missing')!r}): set generate.lattice_constant"
            )
            continue
        values.append(float(ref["a"]))
    if problems:
        raise ConfigError(problems, source="generate")
    return round(float(np.mean(values)), 6)


def cubic_supercell_reps(lattice: str, max_atoms: int) -> tuple[int, int, int]:
    """Repetitions of the cubic cell giving the most atoms <= max_atoms with an aspect ratio <= 2
    (elongated cells make needle-like defect images); ties go to the most compact shape."""
    per_cell = ATOMS_PER_CUBIC_CELL[lattice]
    best: tuple[int, int, int] | None = None
    best_key: tuple[int, int] | None = None
    # aspect ratio <= 2 bounds every repetition by twice the cube root of the cell count
    n_max = 2 * round((max_atoms // per_cell) ** (1 / 3)) + 1
    for reps in itertools.product(range(1, n_max + 1), repeat=3):
        n = per_cell * reps[0] * reps[1] * reps[2]
        if n > max_atoms or max(reps) > 2 * min(reps):
            continue
        key = (n, -(max(reps) - min(reps)))
        if best_key is None or key > best_key:
            best, best_key = reps, key
    if best is None:
        raise ConfigError(
            [f"max_atoms={max_atoms} cannot hold one cubic {lattice} cell ({per_cell} atoms)"], "generate"
        )
    return best


def perfect_bulk(lattice: str, a: float, max_atoms: int, symbol: str) -> tuple[Atoms, tuple[int, int, int]]:
    """Cubic supercell of one placeholder species (decoration comes later), and its repetitions."""
    reps = cubic_supercell_reps(lattice, max_atoms)
    atoms = bulk(symbol, lattice, a=a, cubic=True).repeat(reps)
    atoms.pbc = True
    return atoms, reps


def insert_interstitial(atoms: Atoms, lattice: str, a: float, kind: str) -> Atoms:
    """Self-interstitial of `kind` at the lattice site nearest the origin of `atoms`."""
    mode, frac = INTERSTITIALS[lattice][kind]
    offset = np.asarray(frac) * a
    site = int(np.argmin(np.linalg.norm(atoms.positions, axis=1)))
    out = atoms.copy()
    symbol = out[site].symbol
    if mode == "add":
        out.append(symbol)
        out.positions[-1] = out.positions[site] + offset
    else:
        centre = out.positions[site].copy()
        out.positions[site] = centre + offset
        out.append(symbol)
        out.positions[-1] = centre - offset
    out.wrap()
    return out


def decorate(atoms: Atoms, elements: Sequence[str], rng: np.random.Generator) -> Atoms:
    """Species drawn uniformly at random per site of a motif (the genome decorates by composition and
    MaxVol instead: alloop.generate.genome.decorate). Single-element motifs keep all sites on that element."""
    out = atoms.copy()
    out.symbols = list(rng.choice(list(elements), size=len(out))) if len(elements) > 1 else [elements[0]] * len(out)
    return out


def element_pairs(elements: Sequence[str]) -> list[tuple[str, str]]:
    """Unordered species pairs including like pairs, in a fixed order: [(A,A), (A,B), (B,B)] ..."""
    return list(itertools.combinations_with_replacement(elements, 2))
