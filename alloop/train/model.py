"""Loading a fitted ACE potential (with its active set) once per process, and predicting with it."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alloop.errors import FitError, MissingFileError, UnphysicalStructureError
from alloop.io import file_stamp


@dataclass(frozen=True)
class AceModel:
    """A B-basis potential and, when given, the inverse of its active set per species index."""

    potential: Path
    active_set: Path | None
    basis: Any  # pyace.basis.ACEBBasisSet
    inverse: dict[int, np.ndarray] | None
    elements: tuple[str, ...]
    n_functions: dict[int, int]
    # per-element energies (eV/atom; pacemaker adds 'shift' per atom back) the potential was fitted without, from
    # the metadata pacemaker writes; {} for a potential of absolute energies
    reference_energy: dict[str, float] = field(default_factory=dict)

    @property
    def species(self) -> dict[str, int]:
        return dict(self.basis.elements_to_index_map)


def load_ace(potential: str | Path, active_set: str | Path | None = None) -> AceModel:
    """Load `potential` (pacemaker .yaml) and its active set (.asi); cached per process and reloaded
    when either file changes on disk."""
    pot = _existing(potential, "ACE potential")
    asi = None if active_set is None else _existing(active_set, "ACE active set (.asi)")
    return _load_cached(str(pot), file_stamp(pot), None if asi is None else str(asi), None if asi is None else file_stamp(asi))


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path).resolve()
    if not p.is_file():
        raise MissingFileError(p, what, "check the path, or fit a potential first (alloop.train.fit_ace)")
    return p


@functools.lru_cache(maxsize=8)
def _load_cached(pot: str, _pot_stamp: tuple[int, int], asi: str | None, _asi_stamp: tuple[int, int] | None) -> AceModel:
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import compute_number_of_functions

    try:
        conf = BBasisConfiguration(pot)
        basis = ACEBBasisSet(conf)
    except Exception as exc:  # pyace's YAML reader raises RuntimeError with a C++ message
        raise FitError(f"{pot} is not a readable ACE B-basis potential: {exc}") from exc
    n_funcs = dict(enumerate(compute_number_of_functions(basis)))
    inverse = None if asi is None else _read_inverse(Path(asi), basis, n_funcs)
    raw = dict(conf.metadata).get("reference_energy")
    reference = {str(k): float(v) for k, v in json.loads(raw).items()} if raw else {}
    return AceModel(Path(pot), None if asi is None else Path(asi), basis, inverse, tuple(basis.elements_name), n_funcs, reference)


def _read_inverse(asi: Path, basis: Any, n_funcs: dict[int, int]) -> dict[int, np.ndarray]:
    try:
        with np.load(asi) as data:
            by_element = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except Exception as exc:
        raise FitError(f"{asi} is not a readable active set: {exc}") from exc
    inverse = {}
    for el, st in basis.elements_to_index_map.items():
        m = by_element.get(el)
        if m is None or m.shape != (n_funcs[st], n_funcs[st]):
            got = "missing" if m is None else f"shape {m.shape}"
            raise FitError(
                f"active set {asi} does not belong to this potential: {el} needs a "
                f"{n_funcs[st]}x{n_funcs[st]} matrix, found {got}; rebuild it with pace_activeset"
            )
        inverse[st] = m
    return inverse


def check_structures(model: AceModel, structures: Sequence[Atoms]) -> None:
    """pyace handles only elements of the potential and fully (non-)periodic cells."""
    known = set(model.elements)
    for i, atoms in enumerate(structures):
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise UnphysicalStructureError(
                f"structure {i} has mixed periodicity pbc={pbc.tolist()}: ACE needs fully periodic or fully "
                "non-periodic cells (make it periodic with vacuum larger than the cutoff)"
            )
        stray = set(atoms.get_chemical_symbols()) - known
        if stray:
            raise FitError(f"structure {i} contains {sorted(stray)}, which potential {model.potential.name} "
                           f"(elements {list(model.elements)}) does not describe")


@functools.lru_cache(maxsize=8)
def _calculator(pot: str, _stamp: tuple[int, int]) -> Any:
    from pyace import PyACECalculator

    return PyACECalculator(pot)


def reference_energies(potential: str | Path) -> dict[str, float]:
    """The per-element energies the potential was fitted without (AceModel.reference_energy)."""
    return load_ace(potential).reference_energy


def predict(potential: str | Path, structures: Sequence[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Total energies (eV) and forces (eV/Å) of `structures` with an ACE potential; a potential fitted
    without per-element reference energies gets them back, so energies compare with their labels."""
    model = load_ace(potential)
    check_structures(model, structures)
    calc = _calculator(str(model.potential), file_stamp(model.potential))
    ref = model.reference_energy
    shift = ref.get("shift", 0.0)
    energies = np.empty(len(structures))
    forces = []
    for i, atoms in enumerate(structures):
        a = atoms.copy()  # never replace the caller's calculator (it may hold reference labels)
        a.calc = calc
        energies[i] = a.get_potential_energy() + sum(ref.get(z, 0.0) - shift for z in a.get_chemical_symbols())
        forces.append(np.array(a.get_forces(), dtype=np.float64))
    return energies, forces


@dataclass(frozen=True)
class CommitteeSpread:
    """Spread of a committee's predictions: energy std per structure (eV/atom) and per-atom force std
    (eV/Å, root mean square over the three components of the std across members)."""

    energy_std: np.ndarray
    force_std: list[np.ndarray]


def committee_spread(potentials: Sequence[str | Path], structures: Sequence[Atoms]) -> CommitteeSpread:
    if len(potentials) < 2:
        raise FitError(f"a committee spread needs at least 2 potentials, got {len(potentials)}")
    preds = [predict(p, structures) for p in potentials]
    n_atoms = np.array([len(a) for a in structures], dtype=float)
    e = np.stack([en / n_atoms for en, _ in preds])
    force_std = [
        np.sqrt(np.mean(np.std(np.stack([f[i] for _, f in preds]), axis=0) ** 2, axis=1))
        for i in range(len(structures))
    ]
    return CommitteeSpread(energy_std=e.std(axis=0), force_std=force_std)
