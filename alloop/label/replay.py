"""Replay labels from an existing DFT data set, looked up by configuration hash: a campaign run on a
published data set (the paper's W set, mlearn Mo, SNAP NbMoTaW) behaves as if DFT had been run, at no
cost, which makes loop experiments reproducible.

Files are read with `alloop.io.read_labelled` (npz as the shared W set, mlearn/SNAP JSON, pacemaker
pickles, extxyz and anything else ASE reads). Stress is replayed where the file carries it on ASE's
scale (extxyz); the JSON sets' kBar values with VASP's sign are not used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from alloop.io import file_stamp, read_labelled
from alloop.label.base import DFTBackend, LabelFailure, LabelResult
from alloop.structures import GeometryIndex, config_hash


class ReplaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[Path] = Field(
        min_length=1, description="labelled data sets (.npz, .json, .pckl.gzip/.pkl.gz, .extxyz, ...); "
                                  "the first one holding a configuration wins")


@dataclass(frozen=True)
class ReplayEntry:
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    file: str
    index: int


def labelled_configurations(path: Path) -> Iterator[tuple[int, Atoms, float, np.ndarray, np.ndarray | None]]:
    """(index in file, geometry, total energy eV, forces eV/Å, stress eV/Å³ or None) of each configuration
    that has both an energy and forces."""
    for i, atoms in enumerate(read_labelled(path)):
        results = atoms.calc.results
        if results.get("energy") is None:
            continue
        stress = results.get("stress")
        yield (i, Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc),
               float(results["energy"]), np.asarray(results["forces"], dtype=np.float64),
               None if stress is None else np.asarray(stress, dtype=np.float64))


class ReplayIndex(GeometryIndex[ReplayEntry]):
    """Labels of all sources by configuration (hash, then geometry within MATCH_TOLERANCE)."""

    def __init__(self, sources: list[Path]) -> None:
        super().__init__()
        for path in sources:
            for i, atoms, energy, forces, stress in labelled_configurations(Path(path)):
                self.add(atoms, ReplayEntry(energy, forces, stress, str(path), i))


def replay_index(sources: list[Path]) -> ReplayIndex:
    """The index over `sources`, built once per process and file version (alloop.io.file_stamp)."""
    return _index(tuple(str(p) for p in sources),
                  tuple((str(Path(p).resolve()), file_stamp(p) if Path(p).exists() else None) for p in sources))


@functools.lru_cache(maxsize=4)
def _index(sources: tuple[str, ...], _stamps: tuple[tuple[str, tuple[int, int] | None], ...]) -> ReplayIndex:
    return ReplayIndex([Path(p) for p in sources])


class ReplayBackend(DFTBackend):
    name = "replay"
    settings: ReplaySettings

    def lookup(self, atoms: Atoms) -> tuple[ReplayEntry, str]:
        """The recorded label, and how it was found ("hash" or "tolerance")."""
        found = replay_index(self.settings.sources).find(atoms)
        if found is None:
            raise LabelFailure(
                f"{atoms.get_chemical_formula()} ({config_hash(atoms)}) is not in the replay set "
                f"({', '.join(str(p) for p in self.settings.sources)})", False, "missing")
        return found

    def write_inputs(self, atoms: Atoms, workdir: Path) -> None:
        """Nothing beyond the geometry that `prepare` records."""

    def execute(self, workdir: Path) -> None:
        """Nothing to run: the label exists already."""

    def parse(self, workdir: Path, atoms: Atoms) -> LabelResult:
        e, how = self.lookup(atoms)
        return LabelResult(e.energy, e.forces.copy(), None if e.stress is None else e.stress.copy(), "replay", True,
                           {"replay_file": e.file, "replay_index": e.index, "replay_match": how})


def replayed_energies(settings: ReplaySettings, structures: list[Atoms]) -> np.ndarray:
    """(n,) the replay set's total energies of `structures`, NaN for those it does not hold: DFT labels
    that cost nothing, e.g. to fit energy references on low-U configurations labelled by the uMLIP."""
    index = replay_index(settings.sources)
    out = np.full(len(structures), np.nan)
    for k, atoms in enumerate(structures):
        found = index.find(atoms)
        if found is not None:
            out[k] = found[0].energy
    return out
