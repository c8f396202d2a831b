"""Generalized stacking fault energies: the γ-lines the defect genome samples (bcc: ⟨111⟩ on {110} and {112};
fcc: ⟨112⟩ on {111}, with the intrinsic stacking fault), one fault per fully periodic cell whose vector across the plane is tilted by the shift
(the construction of alloop.generate.genome.stacking_faults), atoms relaxed along the plane normal only."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.lattice.cubic import BodyCenteredCubic, FaceCenteredCubic

from alloop.generate.genome.stacking_faults import PLANES
from alloop.properties.bulk import Lattice
from alloop.properties.model import PropertyModel
from alloop.properties.relax import energy_of, relax
from alloop.properties.results import Curve, NotComputable, Value
from alloop.properties.surfaces import EV_PER_A2_IN_J_PER_M2

# Shifts as fractions of the slip direction's period: bcc ⟨111⟩ in tenths of b; fcc ⟨112⟩ (period a√6/2, three
# partials) in twelfths, so that the unstable fault (1/6) and the intrinsic stacking fault (1/3) are sampled.
SHIFTS = {"bcc": np.round(np.linspace(0.0, 1.0, 11), 6), "fcc": np.round(np.arange(13) / 12, 6)}
MIN_SPACING = 14.0  # Å between a fault and its periodic image
# {110}⟨111⟩ is mirror-symmetric about half the period: compute 0..½ and mirror
SYMMETRIC = {"110"}
NEGATIVE_TOLERANCE = 0.05  # J/m²: a fault this far below the perfect crystal means the crystal is not the minimum (a
# slightly negative fcc intrinsic fault is a prediction: hcp stacking a little lower, as EMT gives for Cu)
_BUILDERS = {"bcc": BodyCenteredCubic, "fcc": FaceCenteredCubic}


def fault_cell(element: str, lattice: Lattice, plane: str) -> Atoms:
    dirs = PLANES[lattice.structure][plane]
    unit = _BUILDERS[lattice.structure](directions=dirs, size=(1, 1, 1), symbol=element, latticeconstant=lattice.a0, pbc=True)
    nz = int(np.ceil(MIN_SPACING / unit.cell.lengths()[2]))
    return Atoms(_BUILDERS[lattice.structure](directions=dirs, size=(1, 1, nz), symbol=element, latticeconstant=lattice.a0, pbc=True))


def shifted(cell0: Atoms, fraction: float) -> Atoms:
    out = cell0.copy()
    cell = np.array(out.cell)
    cell[2, 0] += fraction * cell0.cell.lengths()[0]
    out.set_cell(cell, scale_atoms=False)
    out.wrap()
    return out


def gamma_lines(model: PropertyModel, element: str, lattice: Lattice, fmax: float, max_steps: int) -> tuple[dict[str, Value], dict[str, Curve]]:
    values: dict[str, Value] = {}
    curves: dict[str, Curve] = {}
    for plane in PLANES[lattice.structure]:
        cell0 = fault_cell(element, lattice, plane)
        cell = np.asarray(cell0.cell)
        area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
        e0 = energy_of(cell0, model)
        grid = SHIFTS[lattice.structure]
        shifts = grid[grid <= 0.5] if plane in SYMMETRIC else grid
        gammas, reason = [0.0], None
        for f in shifts[1:]:
            if f == 1.0:  # the perfect crystal again
                gammas.append(0.0)
                continue
            try:
                r = relax(shifted(cell0, float(f)), model, fmax, max_steps, only_z=True)
            except NotComputable as exc:
                reason = f"shift {f:g}: {exc}"
                break
            gammas.append((r.energy - e0) / area * EV_PER_A2_IN_J_PER_M2)
        key = f"usf_{plane}"
        if reason is not None:
            values[key] = Value.missing(reason, atoms=len(cell0))
            continue
        if min(gammas) < -NEGATIVE_TOLERANCE:
            k = int(np.argmin(gammas))
            values[key] = Value.missing(f"the fault at shift {shifts[k]:g} relaxes {-gammas[k]:.3g} J/m² below the perfect crystal, "
                                        "which is then not this potential's ground state", atoms=len(cell0))
            continue
        x, y = shifts.tolist(), gammas
        if plane in SYMMETRIC:
            x = x + [1.0 - s for s in reversed(x[:-1])]
            y = y + list(reversed(y[:-1]))
        curves[plane] = Curve(x=[round(v, 6) for v in x], y=[round(v, 6) for v in y])
        # the unstable fault is the barrier before the first stable stacking: fcc's first partial ends at 1/3
        first = [i for i, v in enumerate(x) if v <= 1 / 3 + 1e-6] if lattice.structure == "fcc" else list(range(len(x)))
        top = max(first, key=lambda i: y[i])
        values[key] = Value.of(float(y[top]), atoms=len(cell0), at_shift=float(x[top]))
        if lattice.structure == "fcc":
            values["isf_111"] = Value.of(float(y[first[-1]]), atoms=len(cell0), at_shift=float(x[first[-1]]))
    return values, curves
