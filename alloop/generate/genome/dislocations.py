"""Dislocations from matscipy's anisotropic-elasticity builders.

bcc: the ½<111> screw as matscipy's periodic quadrupole (`make_screw_quadrupole`, the smallest cell
whose two cores are more than the cutoff apart), the ½<111>{110} edge as a periodic dipole in matscipy's
quadrupole cell (`CubicCrystalDislocationQuadrupole(BCCEdge111Dislocation)`, cores of opposite sign on one
glide plane); <100>{100} and <100>{110} edge dislocations as cylinders periodic along the line with a
vacuum gap around them. fcc: ½<110> screw and edge cylinders.

A displacement field applied to a perfect crystal leaves the atoms of the extra half-plane of an edge
dislocation doubled along the cut (pairs well below the bond length); each such pair is merged at its
midpoint, the usual way to insert the half-plane. The ½<111>{110} edge dipole needs no merging: its cut
lies in the glide plane and shifts by b, a lattice vector. Its anisotropic (Stroh) field is degenerate for
an elastically isotropic crystal (Zener ratio A = 2 C44 / (C11 - C12) = 1, e.g. W's 523/203/160 GPa):
matscipy's solver then puts atoms 0.5 Å apart and atomman's reports "Stroh checks failed", so C44 is
raised by half a percent there (A = 1.005, a field within 0.5 % of the isotropic one), recorded.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from alloop.generate.genome.cell import PLACEHOLDER, Crystal, Topology, pad_with_vacuum

# Pairs closer than this share of the nearest-neighbour distance are one doubled half-plane atom.
_MERGE_FRACTION = 0.65
_CYLINDERS = {
    "bcc": {"edge_100_100": "BCCEdge100Dislocation", "edge_100_110": "BCCEdge100110Dislocation"},
    "fcc": {"screw_110": "FCCScrew110Dislocation", "edge_110": "FCCEdge110Dislocation"},
}


# Zener ratios closer to 1 than this are nudged to 1 + _ISOTROPY_NUDGE (the Stroh field is degenerate at A = 1).
_ISOTROPY_TOL = 1e-3
_ISOTROPY_NUDGE = 5e-3


def build(crystal: Crystal) -> list[Topology]:
    out = [_screw_quadrupole(crystal), _edge_dipole(crystal)] if crystal.lattice == "bcc" else []
    out += [_cylinder(crystal, name, cls) for name, cls in _CYLINDERS[crystal.lattice].items()]
    return out


def _screw_quadrupole(crystal: Crystal) -> Topology:
    from matscipy.dislocation import make_screw_quadrupole

    for n1u in (3, 5, 7, 9):  # matscipy needs an odd n1u (twice the core spacing, in glide steps)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its cell search
            warnings.simplefilter("ignore")
            atoms, _, left, right = make_screw_quadrupole(crystal.a, n1u=n1u, symbol=PLACEHOLDER)
        separation = float(np.linalg.norm(np.subtract(right, left)))
        if separation > crystal.cutoff:
            break
    atoms = Atoms(atoms)
    atoms.pbc = True
    atoms.wrap()
    params = crystal.base_params() | {
        "dislocation": "screw_111", "burgers": "1/2<111>", "cell": "quadrupole", "n1u": n1u,
        # matscipy's screw field u_z = b θ / 2π needs no elastic constants (a <111> screw in a cubic crystal)
        "field": "b*theta/(2*pi)",
        "core_separation": round(separation, 4), "builder": "matscipy.dislocation.make_screw_quadrupole",
    }
    return "dislocation", atoms, params


def _edge_dipole(crystal: Crystal) -> Topology:
    from matscipy.dislocation import BCCEdge111Dislocation, CubicCrystalDislocationQuadrupole

    e = crystal.elastic
    c44, nudged = e.C44, abs(2 * e.C44 / (e.C11 - e.C12) - 1) < _ISOTROPY_TOL
    if nudged:
        c44 = (1 + _ISOTROPY_NUDGE) * (e.C11 - e.C12) / 2
    quad = CubicCrystalDislocationQuadrupole(BCCEdge111Dislocation, crystal.a, e.C11, e.C12, c44, symbol=PLACEHOLDER)
    # the fewest glide steps between the cores that keep them a cutoff apart (3 and more: matscipy warns below)
    steps = max(3, int(np.floor(crystal.cutoff / quad.glide_distance)) + 1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # "atomman not found, falling back to method 'adsl'"
        _, atoms = quad.build_quadrupole(glide_separation=steps, self_consistent=False, verbose=False)
    cores = np.array(atoms.info["core_positions"])
    cell = np.array(atoms.cell)
    if np.linalg.det(cell) < 0:  # matscipy's rhombic cell is left-handed, which pyace refuses ("Extreme shape")
        cell = cell[[1, 0, 2]]
    atoms = Atoms(atoms.numbers, atoms.positions, cell=cell, pbc=True)
    atoms.wrap()
    params = crystal.base_params() | crystal.elastic_params() | {
        "dislocation": "edge_111_110", "burgers": "1/2<111>", "plane": "{110}", "cell": "dipole",
        "glide_steps": steps, "core_separation": round(_core_separation(atoms.cell, cores), 4),
        "core_positions": np.round(cores, 4).tolist(),
        "builder": "matscipy.dislocation.CubicCrystalDislocationQuadrupole(BCCEdge111Dislocation).build_quadrupole",
    }
    if nudged:
        params["field_C44_GPa"] = round(c44, 3)  # the field's C44, off isotropy (see the module docstring)
    return "dislocation", atoms, params


def _core_separation(cell: np.ndarray, cores: np.ndarray) -> float:
    """Shortest distance between the two cores, over the in-plane periodic images (the line is along z)."""
    shifts = np.array([[i, j, 0] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ np.asarray(cell)
    d = (cores[1] - cores[0])[None, :] + shifts
    return float(np.linalg.norm(d[:, :2], axis=1).min())


def _cylinder(crystal: Crystal, name: str, cls_name: str) -> Topology:
    import matscipy.dislocation as md

    e = crystal.elastic
    disloc = getattr(md, cls_name)(crystal.a, e.C11, e.C12, e.C44, symbol=PLACEHOLDER)
    radius = crystal.genome.dislocation_radius
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "atomman not found, falling back to method 'adsl'"
        _, atoms = disloc.build_cylinder(radius=radius, self_consistent=False, verbose=False)
    atoms = Atoms(atoms)
    atoms.pbc = [False, False, True]
    atoms, merged = _merge_doubled(atoms, _MERGE_FRACTION * crystal.nearest_neighbour)
    atoms = pad_with_vacuum(atoms, (0, 1), crystal.vacuum)
    params = crystal.base_params() | crystal.elastic_params() | {
        "dislocation": name, "cell": "cylinder", "radius": radius, "merged_pairs": merged,
        "vacuum": crystal.vacuum, "builder": f"matscipy.dislocation.{cls_name}",
    }
    return "dislocation", atoms, params


def _merge_doubled(atoms: Atoms, r_merge: float) -> tuple[Atoms, int]:
    """Merge the closest pair below `r_merge` until none is left; the number of merges."""
    out, merged = atoms.copy(), 0
    while True:
        i, j, d = neighbor_list("ijd", out, r_merge)
        if not len(d):
            return out, merged
        k = int(np.argmin(d))
        out.positions[i[k]] += out.get_distance(i[k], j[k], mic=True, vector=True) / 2
        del out[int(j[k])]
        merged += 1
