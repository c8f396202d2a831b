"""Free surfaces on low-index facets (ase.build.surface): slabs thicker than the cutoff, repeated in plane
until each period exceeds it, with a vacuum gap wider than the cutoff and pbc=True (pyace needs it)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk, surface

from alloop.generate.genome.cell import PLACEHOLDER, Crystal, Topology, height

FACETS = {"bcc": ["100", "110", "111", "112"], "fcc": ["100", "110", "111"]}


def build(crystal: Crystal) -> list[Topology]:
    facets = crystal.genome.surface_facets or FACETS[crystal.lattice]
    return [_slab(crystal, facet) for facet in facets]


def _slab(crystal: Crystal, facet: str) -> Topology:
    miller = tuple(int(c) for c in facet)
    unit = bulk(PLACEHOLDER, crystal.lattice, a=crystal.a, cubic=True)
    layers = 1
    while True:
        slab = surface(unit, miller, layers, vacuum=crystal.vacuum / 2)
        z = slab.positions[:, 2]
        if z.max() - z.min() > crystal.cutoff:
            break
        layers += 1
    cell = np.asarray(slab.cell)
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    reps = tuple(int(np.ceil(crystal.cutoff / (area / np.linalg.norm(cell[1 - ax])))) for ax in (0, 1))
    slab = slab.repeat((*reps, 1))
    slab.pbc = True
    thickness = float(np.ptp(slab.positions[:, 2]))
    params = crystal.base_params() | {
        "facet": facet, "layers": layers, "in_plane_repeats": list(reps), "thickness": round(thickness, 4),
        "vacuum": round(height(np.asarray(slab.cell), 2) - thickness, 4), "builder": "ase.build.surface",
    }
    return "surface", slab, params
