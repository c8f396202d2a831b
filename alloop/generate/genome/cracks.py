"""Crack-tip cells: a cylinder of crystal around a straight mode-I crack front, displaced by the anisotropic
near-tip field (matscipy.fracture_mechanics.crack.CubicCrystalCrack), periodic along the front and
surrounded by a vacuum gap.

K is drawn per cell from `generate.genome.stress_intensity` (MPa·m^1/2; 1 MPa·m^1/2 = 100 GPa·Å^1/2, the
unit the field takes with elastic constants in GPa); W's Griffith K on {100} is about 2 MPa·m^1/2.
"""

from __future__ import annotations

import numpy as np

from alloop.generate.genome.cell import Crystal, Topology, pad_with_vacuum

# crack plane (y) and crack front (z); the crack runs along x = y × z
SYSTEMS = {
    "bcc": {"(100)[010]": ((1, 0, 0), (0, 1, 0)), "(110)[001]": ((1, 1, 0), (0, 0, 1)), "(110)[1-10]": ((1, 1, 0), (1, -1, 0))},
    "fcc": {"(111)[1-10]": ((1, 1, 1), (1, -1, 0)), "(100)[010]": ((1, 0, 0), (0, 1, 0))},
}
_GPA_SQRT_ANGSTROM_PER_MPA_SQRT_M = 100.0


def build(crystal: Crystal, rng: np.random.Generator) -> list[Topology]:
    return [
        _crack_tip(crystal, name, surface, front, float(rng.uniform(*crystal.genome.stress_intensity)))
        for name, (surface, front) in SYSTEMS[crystal.lattice].items()
        for _ in range(crystal.genome.cracks_per_system)
    ]


def _directions(surface: tuple[int, ...], front: tuple[int, ...]) -> list[list[int]]:
    x = np.cross(surface, front)
    x = x // np.gcd.reduce(np.abs(x))
    return [x.tolist(), list(surface), list(front)]


def _crack_tip(crystal: Crystal, name: str, surface: tuple[int, ...], front: tuple[int, ...], k_mpa: float) -> Topology:
    from matscipy.fracture_mechanics.crack import CubicCrystalCrack

    e = crystal.elastic
    dirs = _directions(surface, front)
    unit = crystal.oriented(dirs, (1, 1, 1))
    lengths = unit.cell.lengths()
    radius = crystal.genome.crack_radius
    reps = (int(np.ceil(2 * radius / lengths[0])) + 1, int(np.ceil(2 * radius / lengths[1])) + 1, 1)
    atoms = crystal.oriented(dirs, reps)
    pos = atoms.positions
    centre = np.array(atoms.cell.lengths()) / 2
    layers = np.unique(np.round(pos[:, 1], 3))
    below = layers[layers <= centre[1]].max()
    tip = np.array([centre[0], (below + layers[layers > below].min()) / 2])  # between two atomic planes
    keep = np.linalg.norm(pos[:, :2] - tip, axis=1) <= radius
    atoms = atoms[keep]
    crack = CubicCrystalCrack(list(surface), list(front), e.C11, e.C12, e.C44)
    ux, uy = crack.displacements(atoms.positions[:, 0], atoms.positions[:, 1], tip[0], tip[1],
                                 k_mpa * _GPA_SQRT_ANGSTROM_PER_MPA_SQRT_M)
    atoms.positions[:, 0] += ux
    atoms.positions[:, 1] += uy
    atoms = pad_with_vacuum(atoms, (0, 1), crystal.vacuum)
    params = crystal.base_params() | crystal.elastic_params() | {
        "system": name, "directions": dirs, "radius": radius, "K_I_MPa_sqrt_m": round(k_mpa, 4),
        "vacuum": crystal.vacuum, "builder": "matscipy.fracture_mechanics.crack.CubicCrystalCrack",
    }
    return "crack", atoms, params
