"""Energy of mixing of random solid solutions: E_mix = E(alloy)/N − Σ_i x_i e_i, with every energy from the
same potential (its own pure-element ground states). Each alloy is put at the Vegard volume of the potential's
own lattice constants, its volume found on a short rigid E–V scan, then its positions relaxed there."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms

from alloop.properties.bulk import Lattice, cubic_cell
from alloop.properties.model import PropertyModel
from alloop.properties.relax import relax
from alloop.properties.results import MixingEnergy, NotComputable, Value

VOLUME_SCAN = np.linspace(0.97, 1.03, 7)  # factors on the lattice constant


def compositions(elements: Sequence[str]) -> list[dict[str, float]]:
    """Every equiatomic binary, and the equiatomic alloy of all elements when there are more than two."""
    out = [{a: 0.5, b: 0.5} for a, b in itertools.combinations(elements, 2)]
    if len(elements) > 2:
        out.append({el: round(1.0 / len(elements), 6) for el in elements})
    return out


def random_solution(composition: Mapping[str, float], structure: str, a: float, cells: int, rng: np.random.Generator) -> Atoms:
    host = cubic_cell(next(iter(composition)), structure, a).repeat(cells)
    n = len(host)
    counts = {el: int(round(x * n)) for el, x in composition.items()}
    first = next(iter(counts))
    counts[first] += n - sum(counts.values())
    species = np.repeat(list(counts), list(counts.values()))
    host.symbols = list(rng.permutation(species))
    return host


def mixing_energy(model: PropertyModel, composition: Mapping[str, float], lattices: Mapping[str, Lattice], cells: int,
                  samples: int, rng: np.random.Generator, fmax: float, max_steps: int) -> MixingEnergy:
    structures = {lattices[el].structure for el in composition}
    if len(structures) != 1:
        raise NotComputable(f"the elements crystallise differently ({', '.join(sorted(structures))}): no common lattice")
    structure = structures.pop()
    a_vegard = sum(x * lattices[el].a0 for el, x in composition.items())
    energies = []
    for _ in range(samples):
        alloy = random_solution(composition, structure, a_vegard, cells, rng)
        scan = []
        for f in VOLUME_SCAN:
            s = alloy.copy()
            s.set_cell(np.asarray(alloy.cell) * f, scale_atoms=True)
            scan.append(s)
        e = model.energies(scan)
        if not np.isfinite(e).all():
            raise NotComputable("no finite energy for the random solid solution")
        low = int(np.argmin(e))
        if low in (0, len(e) - 1):
            raise NotComputable(f"the random solid solution has no volume minimum within ±3% of the Vegard lattice constant "
                                f"{a_vegard:.3f} Å")
        r = relax(scan[low], model, fmax, max_steps)
        n = len(alloy)
        symbols = np.array(alloy.get_chemical_symbols())
        reference = sum(np.count_nonzero(symbols == el) * lattices[el].e0 for el in composition)
        energies.append(1000.0 * (r.energy - reference) / n)
    mean = float(np.mean(energies))
    return MixingEnergy(composition=dict(composition), value=Value.of(mean, atoms=len(alloy), samples=samples),
                        std=float(np.std(energies)) if samples > 1 else None, samples=[round(v, 3) for v in energies])
