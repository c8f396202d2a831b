"""Periodic bicrystals with coincidence-site grain boundaries, from pymatgen's GrainBoundaryGenerator.

A periodic bicrystal holds two boundaries, one at the cell origin and one half-way along c: the grains
are thickened (pymatgen's `expand_times`) until the two are more than the cutoff apart, then repeated in
the boundary plane until each in-plane period exceeds the cutoff as well.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import numpy as np

from alloop.errors import ConfigError
from alloop.generate.genome.cell import PLACEHOLDER, Crystal, Topology, height
from alloop.generate.genome.settings import GrainBoundarySpec

_MAX_EXPAND = 12


def build(crystal: Crystal) -> list[Topology]:
    return [_bicrystal(crystal, spec) for spec in crystal.genome.grain_boundaries]


def _plane(spec: GrainBoundarySpec, angle: float) -> tuple[int, int, int]:
    """The boundary plane: the axis itself for a twist, else the lowest-index symmetric tilt plane."""
    from pymatgen.core.interface import GrainBoundaryGenerator

    if spec.type == "twist":
        return spec.axis
    # The enumeration's cost grows steeply with the index cutoff (~0.3 s at 3, ~2 s at 6).
    for max_index in (3, 6):
        found = GrainBoundaryGenerator.enum_possible_plane_cubic(max_index, list(spec.axis), angle).get("Symmetric tilt")
        if found:
            return tuple(int(v) for v in found[0][0])  # type: ignore[return-value]
    raise ConfigError([f"Σ{spec.sigma} {list(spec.axis)} has no symmetric tilt plane with indices <= 6"],
                      "generate.genome.grain_boundaries")


def _in_plane_periods(cell: np.ndarray) -> tuple[float, float]:
    """The 2D heights of the boundary-plane lattice (a, b): how far apart the rows of images are."""
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    return float(area / np.linalg.norm(cell[1])), float(area / np.linalg.norm(cell[0]))


def _boundary_separation(atoms, upper: np.ndarray) -> float:
    """Distance along the normal between the two boundaries, each placed half-way between the outermost
    atomic planes of the two grains (the upper grain sits inside the cell, the lower one wraps around)."""
    z = atoms.get_scaled_positions()[:, 2]
    lo, hi = z[upper].min(), z[upper].max()
    lower = z[~upper]
    below = lower[lower < lo].max() if np.any(lower < lo) else lower.max() - 1
    above = lower[lower > hi].min() if np.any(lower > hi) else lower.min() + 1
    inside = (above + hi) / 2 - (below + lo) / 2  # thickness of the upper grain, boundary to boundary
    return float(min(inside, 1 - inside) * height(np.asarray(atoms.cell), 2))


@contextlib.contextmanager
def _quiet_pymatgen() -> Iterator[None]:
    """pymatgen logs "Make sure this is for cubic system" at INFO and warns about large search matrices
    on every call; neither says anything to an alloop user."""
    logger = logging.getLogger("pymatgen.core.interface")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _bicrystal(crystal: Crystal, spec: GrainBoundarySpec) -> Topology:
    with _quiet_pymatgen():
        return _build(crystal, spec)


def _build(crystal: Crystal, spec: GrainBoundarySpec) -> Topology:
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.interface import GrainBoundaryGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

    conv = {"bcc": [[0, 0, 0], [0.5, 0.5, 0.5]], "fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]}
    unit = Structure(Lattice.cubic(crystal.a), [PLACEHOLDER] * len(conv[crystal.lattice]), conv[crystal.lattice])
    gen = GrainBoundaryGenerator(unit)
    where = f"Σ{spec.sigma} {list(spec.axis)} {spec.type}"
    angles = GrainBoundaryGenerator.get_rotation_angle_from_sigma(spec.sigma, list(spec.axis), lat_type="c")
    if not angles:
        raise ConfigError([f"{where}: no coincidence-site rotation with this Σ about this axis"], "generate.genome.grain_boundaries")
    angle = float(angles[0])
    plane = _plane(spec, angle)
    for expand in range(1, _MAX_EXPAND + 1):
        gb = gen.gb_from_parameters(list(spec.axis), angle, expand_times=expand, vacuum_thickness=0.0, plane=plane)
        atoms = AseAtomsAdaptor.get_atoms(gb)
        upper = np.array([str(x).startswith("top") for x in gb.site_properties["grain_label"]])
        separation = _boundary_separation(atoms, upper)
        if separation > crystal.cutoff:
            break
    else:
        raise ConfigError([f"{where}: grains did not grow beyond the cutoff within {_MAX_EXPAND} expansions"], "generate.genome")
    reps = tuple(int(np.ceil(crystal.cutoff / p)) for p in _in_plane_periods(np.asarray(atoms.cell)))
    atoms = atoms.repeat((*reps, 1))
    atoms.arrays["grain"] = np.tile(upper.astype(int), reps[0] * reps[1])
    atoms.pbc = True
    atoms.wrap()
    params = crystal.base_params() | {
        "sigma": spec.sigma, "axis": list(spec.axis), "type": spec.type, "angle_deg": round(angle, 4),
        "plane": list(plane), "expand_times": expand, "in_plane_repeats": list(reps),
        "boundary_separation": round(separation, 4),
    }
    return "grain_boundary", atoms, params
