"""Fixed-cell relaxation of atomic positions with ASE's L-BFGS, and the checks that turn a relaxation a
potential cannot do into a reason instead of a number."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixCartesian
from ase.optimize import LBFGS

from alloop.properties.model import PropertyModel
from alloop.properties.results import NotComputable

# Closer than this, two atoms have fused: a potential that pulls them there has no usable minimum.
COLLAPSE_DISTANCE = 1.2  # Å


@dataclass(frozen=True)
class Relaxed:
    atoms: Atoms
    energy: float  # eV, total
    steps: int
    fmax: float  # eV/Å, largest remaining force


def relax(atoms: Atoms, model: PropertyModel, fmax: float, max_steps: int, *, only_z: bool = False) -> Relaxed:
    """Relax positions at fixed cell until every force is below `fmax` (eV/Å); `only_z` lets atoms move only
    along z (the normal of a stacking fault). NotComputable when it does not converge in `max_steps`, the
    energy or forces turn non-finite, or atoms collapse onto each other."""
    work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    if only_z:
        work.set_constraint(FixCartesian(range(len(work)), mask=(True, True, False)))
    work.calc = model.calculator()
    opt = LBFGS(work, maxstep=0.1, logfile=None)
    converged = False
    try:
        for converged in opt.irun(fmax=fmax, steps=max_steps):
            _check(work)
    except NotComputable:
        raise
    except Exception as exc:  # the model itself failed on a geometry the relaxation reached
        raise NotComputable(f"the relaxation failed after {opt.nsteps} steps: {type(exc).__name__}: {exc}") from exc
    forces = work.get_forces()
    residual = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(work) else 0.0
    if not converged:
        raise NotComputable(f"the relaxation did not converge: largest force {residual:.3g} eV/Å after {max_steps} steps "
                            f"(asked for < {fmax:g})")
    return Relaxed(work, float(work.get_potential_energy()), opt.nsteps, residual)


def _check(atoms: Atoms) -> None:
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise NotComputable("the energy or forces became non-finite during the relaxation")
    if len(atoms) > 1:
        d = atoms.get_all_distances(mic=True)
        np.fill_diagonal(d, np.inf)
        if d.min() < COLLAPSE_DISTANCE:
            raise NotComputable(f"atoms collapsed during the relaxation (two atoms {d.min():.2f} Å apart)")


def energy_of(atoms: Atoms, model: PropertyModel) -> float:
    """Energy of a rigid structure; NotComputable when the model gives none."""
    e = float(model.energies([atoms])[0])
    if not np.isfinite(e):
        raise NotComputable(f"no finite energy for the {len(atoms)}-atom cell")
    return e


def zero_pressure(atoms: Atoms, model: PropertyModel, span: float = 0.01) -> tuple[float, float]:
    """(energy, volume factor) at the minimum of the energy against isotropic scaling of a relaxed cell: the
    defect's own volume relaxation, from energies only. The scan (lattice ±`span`) moves once towards a minimum
    beyond it; NotComputable when there is none."""
    centre = 1.0
    for _ in range(2):
        factors = centre + np.linspace(-span, span, 7)
        scans = []
        for f in factors:
            s = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
            s.set_cell(np.asarray(atoms.cell) * f, scale_atoms=True)
            scans.append(s)
        e = model.energies(scans)
        if not np.isfinite(e).all():
            raise NotComputable("no finite energy for the cell scaled to find its zero-pressure volume")
        c2, c1, c0 = np.polyfit(factors - centre, e, 2)
        if c2 <= 0:
            raise NotComputable("the energy of the relaxed cell has no minimum against its volume")
        f_min = centre - c1 / (2 * c2)
        if abs(f_min - centre) <= span:
            return float(c0 - c1 * c1 / (4 * c2)), float(f_min**3)
        centre = float(np.clip(f_min, centre - 2 * span, centre + 2 * span))
    raise NotComputable(f"the relaxed cell's zero-pressure lattice is more than {3 * span:.0%} away from the perfect crystal's")
