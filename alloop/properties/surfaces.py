"""Surface energies of the (100), (110) and (111) facets: relaxed symmetric slabs (ase.build.surface) at the
potential's own a0, γ = (E_slab − N e_bulk) / 2A."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import surface

from alloop.properties.bulk import Lattice
from alloop.properties.model import PropertyModel
from alloop.properties.relax import energy_of, relax
from alloop.properties.results import NotComputable, Value

FACETS = ("100", "110", "111")
EV_PER_A2_IN_J_PER_M2 = 16.021766
MIN_THICKNESS = 12.0  # Å of slab: both surfaces and the bulk between them beyond any potential's cutoff
VACUUM = 15.0  # Å between a slab and its periodic image (pyace needs fully periodic cells)


def slab(element: str, lattice: Lattice, facet: str) -> Atoms:
    miller = tuple(int(c) for c in facet)
    unit = lattice.cell(element)
    layers = 1
    while True:
        out = surface(unit, miller, layers, vacuum=VACUUM / 2, periodic=False)
        if np.ptp(out.positions[:, 2]) >= MIN_THICKNESS:
            break
        layers += 1
    out.pbc = True
    return out


def surface_energies(model: PropertyModel, element: str, lattice: Lattice, fmax: float, max_steps: int) -> dict[str, Value]:
    unit = lattice.cell(element)
    e_atom = energy_of(unit, model) / len(unit)
    out = {}
    for facet in FACETS:
        s = slab(element, lattice, facet)
        cell = np.asarray(s.cell)
        area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
        try:
            r = relax(s, model, fmax, max_steps)
        except NotComputable as exc:
            out[f"surface_{facet}"] = Value.missing(str(exc), atoms=len(s))
            continue
        gamma = (r.energy - len(s) * e_atom) / (2 * area) * EV_PER_A2_IN_J_PER_M2
        out[f"surface_{facet}"] = Value.of(gamma, atoms=len(s), steps=r.steps, fmax=round(r.fmax, 4))
    return out
