"""Stored predictions served as an ensemble member (`kind: replay`).

A published data set often carries every uMLIP's energies and forces beside the DFT labels (the paper's W
set holds 20 models). A replay member looks each configuration up by content hash (then by geometry
within `alloop.structures.MATCH_TOLERANCE`) and returns what the model predicted, so the paper's
ensemble runs offline and a campaign on such a set reproduces the paper's U exactly.

The member spec names the file as `checkpoint` and the model as `model`:

- `.npz` (the shared W layout): forces `forces__<model>` (N, 3); energy per atom from row
  `model_names.index(model)` of `energy_per_atom_models` (K, n), or a total `energy__<model>` (n,);
- anything `alloop.io.read_labelled` reads that keeps per-structure arrays and info (extxyz): per-atom
  array `forces__<model>` and `info["energy__<model>"]` (total energy, eV).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from alloop.ensemble.members import BatchOutput, Member
from alloop.ensemble.spec import MemberSpec
from alloop.errors import ConfigError, MemberError
from alloop.io import file_stamp
from alloop.structures import GeometryIndex, config_hash


@dataclass(frozen=True)
class StoredModel:
    """One model's predictions for every configuration of a file, indexed by geometry."""

    file: str
    model: str
    index: GeometryIndex[int]
    energies: np.ndarray  # (n,) total eV, NaN where the file has none
    forces: list[np.ndarray]  # n arrays (n_i, 3) eV/Å


def stored_models(path: str | Path) -> list[str]:
    """The model names whose forces `path` stores."""
    return sorted(_table(str(Path(path).resolve()), file_stamp(path)).forces)


@dataclass(frozen=True)
class _Table:
    atoms: list[Atoms]
    energies: dict[str, np.ndarray]
    forces: dict[str, list[np.ndarray]]


@functools.lru_cache(maxsize=4)
def _table(path: str, _stamp: tuple[int, int]) -> _Table:
    """Every model of the file, read once per process and file version (members of one file share it)."""
    from alloop.io import read_labelled

    atoms = read_labelled(path, require_forces=False)
    sizes = np.array([len(a) for a in atoms])
    bounds = np.cumsum(sizes)[:-1]
    energies: dict[str, np.ndarray] = {}
    forces: dict[str, list[np.ndarray]] = {}
    if path.lower().endswith(".npz"):
        d = np.load(path)
        names = [str(n) for n in d["model_names"]] if "model_names" in d.files else []
        for key in d.files:
            if key.startswith("forces__"):
                forces[key[len("forces__"):]] = np.split(np.asarray(d[key], dtype=np.float64), bounds)
        for k, name in enumerate(names):
            if "energy_per_atom_models" in d.files:
                energies[name] = np.asarray(d["energy_per_atom_models"][k], dtype=np.float64) * sizes
        for key in d.files:
            if key.startswith("energy__"):
                energies[key[len("energy__"):]] = np.asarray(d[key], dtype=np.float64)
    else:
        for name in {k[len("forces__"):] for a in atoms for k in a.arrays if k.startswith("forces__")}:
            key = f"forces__{name}"
            forces[name] = [np.asarray(a.arrays[key], dtype=np.float64) if key in a.arrays
                            else np.full((len(a), 3), np.nan) for a in atoms]
            energies[name] = np.array([float(a.info.get(f"energy__{name}", np.nan)) for a in atoms])
    if not forces:
        raise ConfigError(["holds no stored predictions (no 'forces__<model>' arrays)"], path)
    return _Table(atoms, energies, forces)


@functools.lru_cache(maxsize=4)
def _geometry_index(path: str, _stamp: tuple[int, int]) -> GeometryIndex[int]:
    index: GeometryIndex[int] = GeometryIndex()
    for i, a in enumerate(_table(path, _stamp).atoms):
        index.add(a, i)
    return index


def load_stored_model(path: str | Path, model: str) -> StoredModel:
    """MemberError naming the models the file does hold when `model` is not among them."""
    p = str(Path(path).resolve())
    stamp = file_stamp(p)
    table = _table(p, stamp)
    if model not in table.forces:
        raise MemberError(f"{p} stores no predictions of model '{model}' (it has: {', '.join(sorted(table.forces))})")
    energies = table.energies.get(model, np.full(len(table.atoms), np.nan))
    return StoredModel(p, model, _geometry_index(p, stamp), energies, table.forces[model])


class ReplayMember(Member):
    def __init__(self, spec: MemberSpec, device: str) -> None:
        assert spec.checkpoint is not None and spec.model is not None  # MemberSpec enforces both
        self.stored = load_stored_model(spec.checkpoint, spec.model)
        super().__init__(spec, device, None)

    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        energies, forces = [], []
        for atoms in structures:
            found = self.stored.index.find(atoms)
            if found is None:
                raise MemberError(
                    f"configuration {atoms.get_chemical_formula()} ({config_hash(atoms)}) is not in {self.stored.file}: "
                    f"no stored prediction of model '{self.stored.model}'"
                )
            i = found[0]
            energies.append(self.stored.energies[i])
            forces.append(self.stored.forces[i])
        return BatchOutput(energies, forces)


def load(spec: MemberSpec, device: str) -> Member:
    return ReplayMember(spec, device)
