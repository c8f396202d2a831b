"""Isolated dimers over every species pair and trimers over every species triple (short-range repulsion and
low-coordination data), in cubic boxes leaving a vacuum gap wider than the cutoff. Species are enumerated,
not decorated; bond lengths (and the trimer angle) are drawn from the seeded generator."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from alloop.generate.genome.cell import Topology
from alloop.generate.lattice import element_pairs

_ANGLE_DEG = (50.0, 180.0)


def dimers(elements: Sequence[str], per_pair: int, distances: tuple[float, float], vacuum: float,
           rng: np.random.Generator) -> list[Topology]:
    box = distances[1] + vacuum
    out = []
    for pair in element_pairs(elements):
        for d in rng.uniform(*distances, size=per_pair):
            pos = np.array([[-d / 2, 0, 0], [d / 2, 0, 0]]) + box / 2
            atoms = Atoms(list(pair), positions=pos, cell=np.eye(3) * box, pbc=True)
            out.append(("dimer", atoms, {"pair": list(pair), "distance": round(float(d), 6), "box": box}))
    return out


def trimers(elements: Sequence[str], per_triple: int, distances: tuple[float, float], vacuum: float,
            rng: np.random.Generator) -> list[Topology]:
    """A-B-C with bonds r1 (A-B), r2 (B-C) and the angle at B; redrawn until A-C is inside `distances` too."""
    box = 2 * distances[1] + vacuum
    out = []
    for triple in itertools.combinations_with_replacement(elements, 3):
        for _ in range(per_triple):
            while True:
                r1, r2 = rng.uniform(*distances, size=2)
                angle = np.radians(rng.uniform(*_ANGLE_DEG))
                if np.sqrt(r1**2 + r2**2 - 2 * r1 * r2 * np.cos(angle)) >= distances[0]:
                    break
            pos = np.array([[r1, 0, 0], [0, 0, 0], [r2 * np.cos(angle), r2 * np.sin(angle), 0]])
            pos += box / 2 - pos.mean(axis=0)
            atoms = Atoms(list(triple), positions=pos, cell=np.eye(3) * box, pbc=True)
            out.append(("trimer", atoms, {
                "species": list(triple), "bonds": [round(float(r1), 6), round(float(r2), 6)],
                "angle_deg": round(float(np.degrees(angle)), 4), "box": box}))
    return out
