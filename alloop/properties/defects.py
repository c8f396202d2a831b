"""Point defects: vacancy and self-interstitial formation energies at zero pressure,
E_f = E_defect − (N_defect / N) E_perfect, the perfect crystal at the potential's own a0.

The defect is relaxed at the perfect crystal's volume, then its cell scaled to the volume of least energy (its
relaxation volume): at constant volume the SIA energies of the paper's W ACE still change by 0.14 eV from 128 to
250 atoms (the elastic interaction with their images), at zero pressure by 0.05 eV; the vacancy by < 0.01 eV
either way. The constant-volume energy is kept in the details, as the DFT values cited are computed that way."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from alloop.generate.lattice import insert_interstitial
from alloop.properties.bulk import Lattice
from alloop.properties.model import PropertyModel
from alloop.properties.relax import Relaxed, energy_of, relax, zero_pressure
from alloop.properties.results import NotComputable, Value

CROWDION_PUSH = 0.35  # Å
# property name -> the geometry alloop.generate.lattice builds for it
INTERSTITIALS = {
    "bcc": {"sia_111": "dumbbell_111", "sia_110": "dumbbell_110", "crowdion": "crowdion_111"},
    "fcc": {"sia_100": "dumbbell_100", "sia_octahedral": "octahedral"},
}


def perfect(element: str, lattice: Lattice, cells: int) -> Atoms:
    return lattice.cell(element).repeat(cells)


def vacancy(model: PropertyModel, element: str, lattice: Lattice, cells: int, fmax: float, max_steps: int) -> Value:
    bulk = perfect(element, lattice, cells)
    e_bulk = energy_of(bulk, model)
    defect = bulk.copy()
    del defect[0]
    r = relax(defect, model, fmax, max_steps)
    return _formation(r, model, e_bulk, len(bulk))


def interstitials(model: PropertyModel, element: str, lattice: Lattice, cells: int, fmax: float, max_steps: int) -> dict[str, Value]:
    """Each interstitial of the crystal relaxed from its ideal geometry; one that cannot be relaxed gets its
    reason and the others still stand."""
    bulk = perfect(element, lattice, cells)
    e_bulk = energy_of(bulk, model)
    n = len(bulk)
    out = {}
    for name, geometry in INTERSTITIALS[lattice.structure].items():
        start = insert_interstitial(bulk, lattice.structure, lattice.a0, geometry)
        if geometry == "crowdion_111":
            _open_crowdion(start)
        try:
            out[name] = _formation(relax(start, model, fmax, max_steps), model, e_bulk, n)
        except NotComputable as exc:
            out[name] = Value.missing(str(exc), atoms=n + 1)
    return out


def _open_crowdion(atoms: Atoms, push: float = CROWDION_PUSH) -> None:
    """Move the two neighbours of a freshly inserted crowdion atom (the last one) away from it along ⟨111⟩: from
    0.43 a to about 0.54 a, where a potential with a weak short-range repulsion does not fuse them first."""
    d = atoms.get_distances(len(atoms) - 1, range(len(atoms) - 1), mic=True, vector=True)
    for i in np.argsort(np.linalg.norm(d, axis=1))[:2]:
        atoms.positions[i] += push * d[i] / np.linalg.norm(d[i])


def _formation(r: Relaxed, model: PropertyModel, e_bulk: float, n: int) -> Value:
    """Zero-pressure formation energy of a relaxed defect cell of the n-atom perfect crystal."""
    nd = len(r.atoms)
    e_p, volume = zero_pressure(r.atoms, model)
    return Value.of(e_p - nd / n * e_bulk, atoms=nd, steps=r.steps, fmax=round(r.fmax, 4),
                    constant_volume=round(r.energy - nd / n * e_bulk, 4),
                    relaxation_volume=round((volume - 1.0) * n, 3))
