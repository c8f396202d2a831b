"""The model whose properties are computed, behind the one interface every property needs: batched energies
of rigid structures, and an ASE calculator (energy and forces) for relaxations.

Properties use energies and forces only, never stress: alloop's ensemble members (any uMLIP family, also one
running in another interpreter) return energies and forces, so the teacher and the ACE potential go through
the same code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from alloop.properties.results import NotComputable


class PropertyModel(Protocol):
    name: str
    kind: str  # "ace" | "member" | "calculator"
    elements: tuple[str, ...] | None  # None: not known without trying

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        """Total energies (eV) of rigid structures; NotComputable, with the model's reason, when it fails on any
        (every property needs all the energies of its scan)."""

    def calculator(self) -> Calculator:
        """An ASE calculator giving energy and forces, for relaxations."""


class AcePotential:
    """A pacemaker B-basis potential through pyace's PyACECalculator (as alloop.explore.ase_engine loads it)."""

    kind = "ace"

    def __init__(self, path: str | Path) -> None:
        from alloop.train import load_ace

        model = load_ace(path)  # a missing or unreadable file fails here with the fix in its message
        self.path = model.potential
        self.name = str(path)
        self.elements = tuple(model.elements)
        # fitted without per-element reference energies (pacemaker's reference_energy), the potential's energies are
        # binding energies: on its calculator's scale a free atom has energy 0 (no neighbours, no ACE energy)
        self._atom_energies = {el: 0.0 for el in model.reference_energy}
        self._calc: Calculator | None = None

    def atom_energy(self, element: str) -> float | None:
        """A free atom's energy on this potential's scale, where it is known (a fit with reference energies)."""
        return self._atom_energies.get(element)

    def calculator(self) -> Calculator:
        if self._calc is None:
            from pyace import PyACECalculator

            self._calc = PyACECalculator(str(self.path))
        return self._calc

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        return _one_by_one(self.calculator(), structures)


class MemberPotential:
    """An ensemble member (the campaign's label uMLIP, the teacher), loaded by alloop.ensemble.load_member:
    in this process, or in its own interpreter when the member has `python:`."""

    kind = "member"

    def __init__(self, spec: Any) -> None:
        from alloop.ensemble import load_member

        self.spec = spec
        self.name = spec.name
        self.member = load_member(spec)
        els = spec.elements
        if els is None:
            self.elements = None
        else:
            from ase.data import chemical_symbols

            self.elements = tuple(chemical_symbols[z] for z in sorted(els))

    def predict(self, structures: Sequence[Atoms]) -> tuple[np.ndarray, list[np.ndarray], dict[int, str]]:
        pred = self.member.predict(list(structures))
        return pred.energies, pred.forces, pred.errors

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        energies, _, errors = self.predict(structures)
        if errors:
            i, reason = next(iter(errors.items()))
            raise NotComputable(f"{self.name} gave no energy for {len(errors)} of {len(structures)} cells "
                                f"({len(structures[i])} atoms: {reason})")
        return np.asarray(energies, dtype=np.float64)

    def calculator(self) -> Calculator:
        return _MemberCalculator(self)

    def atom_energy(self, element: str) -> float | None:
        """The member's own free atom (alone in a 20 Å box, as the loop's reference energies are computed)."""
        atom = Atoms(element, positions=[(10.0, 10.0, 10.0)], cell=[20.0, 20.0, 20.0], pbc=True)
        try:
            return float(self.energies([atom])[0])
        except NotComputable:
            return None


class _MemberCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model: MemberPotential) -> None:
        super().__init__()
        self.model = model

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        energies, forces, errors = self.model.predict([self.atoms])
        if errors:
            raise NotComputable(f"{self.model.name} failed on a {len(self.atoms)}-atom cell: {errors[0]}")
        self.results = {"energy": float(energies[0]), "free_energy": float(energies[0]), "forces": np.asarray(forces[0])}


class CalculatorPotential:
    """Any ASE calculator (EMT, a LAMMPS pair style, a uMLIP's own calculator) under a name of your choice."""

    kind = "calculator"

    def __init__(self, calculator: Calculator, name: str, elements: Sequence[str] | None = None) -> None:
        self._calc = calculator
        self.name = name
        self.elements = None if elements is None else tuple(elements)

    def calculator(self) -> Calculator:
        return self._calc

    def energies(self, structures: Sequence[Atoms]) -> np.ndarray:
        return _one_by_one(self._calc, structures)


def _one_by_one(calc: Calculator, structures: Sequence[Atoms]) -> np.ndarray:
    """Energies one structure at a time; NotComputable with the calculator's error when it fails on one."""
    out = np.empty(len(structures))
    for i, atoms in enumerate(structures):
        a = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        a.calc = calc
        try:
            out[i] = a.get_potential_energy()
        except Exception as exc:  # pyace and other calculators raise plain errors on geometry they cannot evaluate
            raise NotComputable(f"no energy for a {len(atoms)}-atom cell: {type(exc).__name__}: {exc}") from exc
    return out


def load_model(potential: str | Path | None = None, member: Any = None) -> PropertyModel:
    """An ACE potential file, or an ensemble member spec (exactly one)."""
    if (potential is None) == (member is None):
        raise ValueError("give exactly one of potential or member")
    return AcePotential(potential) if potential is not None else MemberPotential(member)
