"""Calibration cells for the energy reference between DFT and the uMLIPs.

DFT codes and uMLIPs put total energies on references that differ by a constant per atom of each
element. The offsets must be fitted where both sources are trustworthy: low-U configurations, above all
each element's bulk ground state. These cells are labelled by DFT whatever their U, once, in the first
iteration (`labels.energy_reference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from alloop.generate.lattice import lattice_constant, perfect_bulk
from alloop.generate.settings import GeneratorSettings

KIND = "calibration"


def calibration_structures(
    elements: Sequence[str],
    settings: GeneratorSettings,
    strains: Sequence[float],
    n_alloy: int,
    rng: np.random.Generator,
) -> list[Atoms]:
    """Each element's primitive bulk cell at its reference lattice constant under each isotropic `strains`
    (the elastic range where every uMLIP is accurate), and for alloys `n_alloy` cubic cells with species
    drawn at compositions spread over the simplex (so per-element offsets are identifiable)."""
    out: list[Atoms] = []
    for el in elements:
        a = lattice_constant([el], settings.lattice, settings.lattice_constant if len(elements) == 1 else None)
        for s in strains:
            atoms = bulk(el, settings.lattice, a=a * (1.0 + s))
            atoms.pbc = True
            out.append(_tag(atoms, {"element": el, "lattice": settings.lattice, "a": a, "strain": float(s)}))
    if len(elements) > 1 and n_alloy > 0:
        a = lattice_constant(elements, settings.lattice, settings.lattice_constant)
        cell, reps = perfect_bulk(settings.lattice, a, settings.max_atoms, elements[0])
        for k in range(n_alloy):
            fractions = rng.dirichlet(np.ones(len(elements)))
            atoms = cell.copy()
            atoms.symbols = list(rng.choice(list(elements), size=len(atoms), p=fractions))
            out.append(_tag(atoms, {"lattice": settings.lattice, "a": a, "supercell": list(reps),
                                    "target_fractions": [round(float(f), 4) for f in fractions], "draw": k}))
    return out


def _tag(atoms: Atoms, params: dict) -> Atoms:
    atoms.info["kind"] = KIND
    atoms.info["generator"] = params
    return atoms


def iteration_calibration(elements: Sequence[str], settings: GeneratorSettings, reference: Any, iteration: int,
                          seed: int, stream: int) -> list[Atoms]:
    """The calibration cells iteration `iteration` adds: the first iteration's, when the energy reference is fitted
    with calibration (labels.energy_reference); none otherwise. The loop and the `alloop generate` preview both ask."""
    if iteration > 0 or reference.method != "fit" or not reference.calibration:
        return []
    return calibration_structures(elements, settings, reference.strains, reference.n_alloy,
                                  np.random.default_rng([seed, iteration, stream]))

