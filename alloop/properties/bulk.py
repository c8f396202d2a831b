"""The crystal of each element and its equation of state: the E–V curve, the equilibrium lattice constant and
the bulk modulus (ASE's EquationOfState, Birch–Murnaghan), from rigid energies only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.data import atomic_numbers, reference_states
from ase.eos import EquationOfState

from alloop.errors import ConfigError
from alloop.properties.model import PropertyModel
from alloop.properties.reference import reference_table
from alloop.properties.relax import relax
from alloop.properties.results import Curve, NotComputable, Structure

ATOMS_PER_CELL = {"bcc": 2, "fcc": 4}
# Lattice-constant scans: a coarse one wide enough for a poor potential, a medium one around its lowest point,
# and the fine one the Birch–Murnaghan fit is made on: ±1% in a (±3% in volume), where B is the curvature at the
# minimum (as in stress–strain elastic constants); wider, the fit's B of the paper's W ACE drops from 341 to 327 GPa.
COARSE = np.linspace(0.85, 1.15, 13)
MEDIUM = np.linspace(0.975, 1.025, 11)
FINE = np.linspace(0.99, 1.01, 9)
STABILITY_RATTLE = 0.05  # Å
STABILITY_TOLERANCE = 0.002  # eV/atom below the crystal: it was not a minimum


@dataclass(frozen=True)
class Lattice:
    structure: Structure
    a0: float  # Å, cubic cell
    e0: float  # eV/atom, at a0 (the fit's minimum)
    bulk_modulus: float  # GPa
    curve: Curve
    hole: dict[str, float] | None = None  # where the curve falls below this minimum again (a, depth in eV/atom)

    def cell(self, element: str, a: float | None = None) -> Atoms:
        return cubic_cell(element, self.structure, self.a0 if a is None else a)

    @property
    def volume(self) -> float:
        """Å³ per atom at a0."""
        return self.a0**3 / ATOMS_PER_CELL[self.structure]


def crystal_of(element: str) -> tuple[Structure, float]:
    """(bcc | fcc, a starting lattice constant): from alloop's reference table, else ASE's reference states."""
    table = reference_table()
    ref = reference_states[atomic_numbers[element]] if element in atomic_numbers else None
    structure = table.structure(element) or (ref or {}).get("symmetry")
    if structure not in ("bcc", "fcc"):
        raise ConfigError([f"{element}: alloop computes properties of bcc and fcc elements; its crystal is "
                           f"{structure or 'unknown'}"], "properties")
    dft_a = table.value(element, "lattice_constant")
    if dft_a is not None:
        return structure, dft_a.value  # type: ignore[return-value]
    if ref is None or ref.get("symmetry") != structure or "a" not in ref:
        raise ConfigError([f"{element}: no starting lattice constant known for {structure}"], "properties")
    return structure, float(ref["a"])  # type: ignore[return-value]


def cubic_cell(element: str, structure: str, a: float) -> Atoms:
    atoms = bulk(element, structure, a=a, cubic=True)
    atoms.pbc = True
    return atoms


def equation_of_state(model: PropertyModel, element: str, structure: Structure, a_start: float) -> Lattice:
    """E–V curve of the cubic cell and its Birch–Murnaghan fit at the local minimum nearest `a_start`
    (`hole` says where the curve falls lower still); NotComputable when the curve has no minimum inside the
    scan (0.85–1.15 × the starting lattice constant) or cannot be fitted."""
    n = ATOMS_PER_CELL[structure]
    a_coarse = a_start * COARSE
    e_coarse = _scan(model, element, structure, a_coarse) / n
    finite = np.isfinite(e_coarse)
    if not finite.all():
        bad = ", ".join(f"{a:.3f}" for a in a_coarse[~finite])
        raise NotComputable(f"no finite energy on the E–V curve at a = {bad} Å")
    # the crystal sits in the local minimum nearest the expected lattice constant; a potential that dives again
    # at strong compression (a hole beyond its data, which the loop's strained cells end near) still has that one
    interior = [i for i in range(1, len(a_coarse) - 1) if e_coarse[i] < e_coarse[i - 1] and e_coarse[i] < e_coarse[i + 1]]
    if not interior:
        low = int(np.argmin(e_coarse))
        raise NotComputable(f"the E–V curve has no minimum between a = {a_coarse[0]:.3f} and {a_coarse[-1]:.3f} Å "
                            f"(lowest energy at a = {a_coarse[low]:.3f} Å, the edge of the scan)")
    low = min(interior, key=lambda i: abs(a_coarse[i] - a_start))
    deep = int(np.argmin(e_coarse))
    hole = None if deep == low else {"hole_at_a": round(float(a_coarse[deep]), 4),
                                     "hole_depth_eV_per_atom": round(float(e_coarse[low] - e_coarse[deep]), 4)}
    a_mid = a_coarse[low] * MEDIUM
    e_mid = _scan(model, element, structure, a_mid) / n
    if not np.isfinite(e_mid).all():
        raise NotComputable("no finite energy on the E–V curve near its minimum")
    mid_low = int(np.argmin(e_mid))
    if mid_low in (0, len(a_mid) - 1):
        raise NotComputable(f"the E–V curve is not convex near a = {a_coarse[low]:.3f} Å (no minimum on a finer scan)")
    a_fine = a_mid[mid_low] * FINE
    e_fine = _scan(model, element, structure, a_fine) / n
    if not np.isfinite(e_fine).all():
        raise NotComputable("no finite energy on the E–V curve near its minimum")
    volumes = a_fine**3 / n
    try:
        v0, e0, b = EquationOfState(volumes, e_fine, eos="birchmurnaghan").fit()
    except Exception as exc:  # scipy's fit fails on a curve that is no EOS at all
        raise NotComputable(f"the E–V curve cannot be fitted by an equation of state ({exc})") from exc
    if not (np.isfinite(v0) and volumes[0] < v0 < volumes[-1] and b > 0):
        raise NotComputable(f"the equation-of-state fit has no minimum inside the scan (V0 = {v0:.3g} Å³, B = {b / units.GPa:.3g} GPa)")
    vol = np.concatenate([a_coarse**3 / n, a_mid**3 / n, volumes])
    en = np.concatenate([e_coarse, e_mid, e_fine])
    order = np.argsort(vol)
    curve = Curve(x=vol[order].round(5).tolist(), y=(en[order] - e0).round(6).tolist())
    return Lattice(structure, float((v0 * n) ** (1 / 3)), float(e0), float(b / units.GPa), curve, hole)


def check_stable(model: PropertyModel, element: str, lattice: Lattice, fmax: float, max_steps: int) -> None:
    """The crystal at a0 must be a minimum in every direction, not only along the volume: a rattled 2×2×2
    supercell relaxed must come back to it. NotComputable (with what happened) otherwise."""
    cell = lattice.cell(element).repeat(2)
    cell.rattle(STABILITY_RATTLE, seed=0)
    try:
        r = relax(cell, model, max(fmax, 0.02), max_steps)
    except NotComputable as exc:
        raise NotComputable(f"the {lattice.structure} crystal is not stable under this potential: a rattled "
                            f"{len(cell)}-atom cell does not relax back to it ({exc})") from exc
    drop = lattice.e0 - r.energy / len(cell)
    if drop > STABILITY_TOLERANCE:
        raise NotComputable(f"the {lattice.structure} crystal is not stable under this potential: a rattled {len(cell)}-atom "
                            f"cell relaxes {1000 * drop:.3g} meV/atom below it")


def _scan(model: PropertyModel, element: str, structure: str, lattice_constants: np.ndarray) -> np.ndarray:
    return model.energies([cubic_cell(element, structure, float(a)) for a in lattice_constants])


def cohesive_energy(lattice: Lattice, atom_energy: float | None, element: str) -> float:
    if atom_energy is None:
        raise NotComputable(f"no isolated-atom reference: the energy of a free {element} atom on this potential's energy "
                            f"scale is not known (give it with --atom-energy {element}=EV or properties.atom_energies)")
    return float(atom_energy - lattice.e0)
