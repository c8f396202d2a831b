"""Cubic elastic constants from energies of strained cells (M. J. Mehl, Phys. Rev. B 47, 2493 (1993)).

Two volume-conserving strains of the cubic cell at the potential's own a0: orthorhombic (δ, −δ, δ²/(1−δ²))
gives ΔE/V = (C11 − C12) δ², monoclinic (engineering shear δ in xy, δ²/(4−δ²) along z) gives ΔE/V = C44 δ²/2;
with B = (C11 + 2 C12)/3 from the equation of state, C11 and C12 follow. Energies only (no stress), so every
model goes through it; bcc and fcc have one atom per primitive cell, so no internal relaxation is missed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units

from alloop.properties.bulk import Lattice
from alloop.properties.model import PropertyModel
from alloop.properties.results import NotComputable

STRAINS = np.array([-0.02, -0.015, -0.01, -0.005, 0.0, 0.005, 0.01, 0.015, 0.02])
# The quadratic term must explain the energies: below this R², the energy–strain curve is noise or not a
# minimum (a potential whose cubic cell is unstable under shear has a maximum there).
MIN_R2 = 0.98


@dataclass(frozen=True)
class Elastic:
    C11: float
    C12: float
    C44: float  # GPa


def strain_tensor(mode: str, d: float) -> np.ndarray:
    if mode == "orthorhombic":
        return np.diag([d, -d, d * d / (1 - d * d)])
    return np.array([[0.0, d / 2, 0.0], [d / 2, 0.0, 0.0], [0.0, 0.0, d * d / (4 - d * d)]])


def strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def elastic_constants(model: PropertyModel, element: str, lattice: Lattice) -> Elastic:
    cell = lattice.cell(element)
    volume = cell.get_volume()
    k = {}
    for mode in ("orthorhombic", "monoclinic"):
        energies = model.energies([strained(cell, strain_tensor(mode, float(d))) for d in STRAINS])
        if not np.isfinite(energies).all():
            raise NotComputable(f"no finite energy for the {mode}ally strained cells")
        k[mode] = _curvature(STRAINS, energies - energies[len(STRAINS) // 2], mode) / volume
    c_prime = k["orthorhombic"]  # C11 - C12, eV/Å³
    c44 = 2.0 * k["monoclinic"]
    b = lattice.bulk_modulus * units.GPa
    return Elastic(C11=float((b + 2 * c_prime / 3) / units.GPa), C12=float((b - c_prime / 3) / units.GPa),
                   C44=float(c44 / units.GPa))


def _curvature(strains: np.ndarray, de: np.ndarray, mode: str) -> float:
    """k2 of ΔE = k2 δ² + k4 δ⁴ (least squares), after checking the fit explains the curve."""
    design = np.stack([strains**2, strains**4], axis=1)
    coef, *_ = np.linalg.lstsq(design, de, rcond=None)
    resid = de - design @ coef
    spread = float(np.sum((de - de.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / spread if spread > 0 else 0.0
    if r2 < MIN_R2:
        raise NotComputable(f"the energy of {mode}ally strained cells is not a smooth quadratic in the strain "
                            f"(R² = {r2:.3f} over |δ| ≤ {strains.max():g})")
    return float(coef[0])
