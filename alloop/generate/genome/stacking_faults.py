"""Generalized stacking faults: the crystal above a slip plane shifted along the slip direction, one fault per
fully periodic cell (the cell vector across the plane is tilted by the shift, so no free surface appears).

bcc: {110} and {112} planes along <111> (the γ-lines behind the Peierls stress and, for alloys, the
unstable-fault statistics of solid-solution strengthening); fcc: {111} along <112>. Shifts are fractions of
the shortest lattice translation along the slip direction, evenly inside (0, 1).
"""

from __future__ import annotations

import numpy as np

from alloop.generate.genome.cell import Crystal, Topology

# x: slip direction, z: plane normal (y = z × x); ASE's oriented cell is one shortest translation long
# along x (b = a√3/2 along bcc <111>, a√6/2 along fcc <112>)
PLANES = {
    "bcc": {"110": [[1, -1, 1], [1, -1, -2], [1, 1, 0]], "112": [[1, 1, 1], [1, -1, 0], [1, 1, -2]]},
    "fcc": {"111": [[1, 1, -2], [-1, 1, 0], [1, 1, 1]]},
}


def build(crystal: Crystal) -> list[Topology]:
    n = crystal.genome.stacking_fault_points
    fractions = np.linspace(0, 1, n + 2)[1:-1]
    return [_fault(crystal, plane, dirs, float(f)) for plane, dirs in PLANES[crystal.lattice].items() for f in fractions]


def _fault(crystal: Crystal, plane: str, dirs: list[list[int]], fraction: float) -> Topology:
    unit = crystal.oriented(dirs, (1, 1, 1))
    lengths = unit.cell.lengths()
    # in-plane periods and the spacing of consecutive faults all beyond the cutoff
    size = tuple(int(np.floor(crystal.cutoff / length)) + 1 for length in lengths)
    atoms = crystal.oriented(dirs, size)
    period = lengths[0]
    cell = np.array(atoms.cell)
    cell[2, 0] += fraction * period
    atoms.set_cell(cell, scale_atoms=False)
    atoms.wrap()
    params = crystal.base_params() | {
        "plane": plane, "slip_direction": dirs[0], "plane_normal": dirs[2], "shift_fraction": round(fraction, 6),
        "shift": round(fraction * period, 6), "size": list(size), "fault_spacing": round(float(cell[2, 2]), 4),
    }
    return "stacking_fault", atoms, params
