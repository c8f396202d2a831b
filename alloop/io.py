"""Reading labelled structure sets in the formats alloop meets, and writing extxyz.

`read_labelled(path)` returns ASE Atoms with the reference (usually DFT) total energy and forces on
a SinglePointCalculator (`atoms.get_potential_energy()`, `atoms.get_forces()`). Formats, by name:

- `*.pckl.gzip`, `*.pkl.gz`: pacemaker frames (gzip pandas pickle, columns ase_atoms, energy, forces);
- `*.json`: a list of {"structure": pymatgen Structure.as_dict(), "outputs": {"energy", "forces"}}
  (materialsvirtuallab mlearn/snap data), read without pymatgen;
- `*.npz`: alloop's packed layout (n_atoms/offsets, numbers, positions, cells, pbc, and reference
  `energy_dft_total` / `forces_dft`), as in the shared W data;
- anything else: whatever `ase.io.read(path, ":")` reads (extxyz, VASP OUTCAR/vasprun.xml, ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from alloop.errors import ConfigError, MissingFileError

PACEMAKER_SUFFIXES = (".pckl.gzip", ".pkl.gz")


def file_stamp(path: str | Path) -> tuple[int, int]:
    """(mtime in ns, size): the version of a file that a per-process cache of what was read from it keys on,
    so a rewritten file is read again (OSError when it is not there)."""
    st = Path(path).stat()
    return st.st_mtime_ns, st.st_size


def read_labelled(path: str | Path, *, require_forces: bool = True) -> list[Atoms]:
    """Structures of `path` with reference energy/forces attached (see module doc for formats).

    require_forces=False also accepts unlabelled structures (e.g. candidates to score).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "structure file", "give the path of an extxyz, pacemaker .pckl.gzip, JSON or npz file")
    name = p.name.lower()
    try:
        if name.endswith(PACEMAKER_SUFFIXES):
            frames = _read_pacemaker(p)
        elif name.endswith(".json"):
            frames = _read_pymatgen_json(p)
        elif name.endswith(".npz"):
            frames = _read_npz(p)
        else:
            frames = _read_ase(p)
    except ValueError as exc:  # inconsistent labels found while reading
        raise ConfigError([str(exc)], str(p)) from exc
    if not frames:
        raise ConfigError(["contains no structures"], str(p))
    if require_forces:
        missing = [i for i, a in enumerate(frames) if not has_reference_forces(a)]
        if missing:
            head = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise ConfigError([f"{len(missing)} structure(s) have no reference forces: {head}"], str(p))
    return frames


def has_reference_forces(atoms: Atoms) -> bool:
    calc = atoms.calc
    return calc is not None and calc.results.get("forces") is not None


def _labelled(i: int, atoms: Atoms, energy: float | None, forces: Any) -> Atoms:
    """`atoms` (structure i of its file) with its reference labels on a SinglePointCalculator."""
    results: dict[str, Any] = {}
    if energy is not None and np.isfinite(energy):
        results["energy"] = float(energy)
    if forces is not None:
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (len(atoms), 3):
            raise ValueError(f"structure {i}: forces shaped {f.shape} for {len(atoms)} atoms")
        results["forces"] = f
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _read_ase(p: Path) -> list[Atoms]:
    import ase.io

    try:
        frames = ase.io.read(p, index=":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ConfigError([f"ASE cannot read it: {type(exc).__name__}: {exc}"], str(p)) from exc
    return list(frames) if isinstance(frames, list) else [frames]


def _read_pacemaker(p: Path) -> list[Atoms]:
    import pandas as pd

    df = pd.read_pickle(p, compression="gzip")
    if "ase_atoms" not in df.columns:
        raise ConfigError([f"a pacemaker frame needs an 'ase_atoms' column, found {', '.join(map(str, df.columns))}"], str(p))
    energies = df["energy"] if "energy" in df.columns else [None] * len(df)
    forces = df["forces"] if "forces" in df.columns else [None] * len(df)
    out = []
    for i, (atoms, e, f) in enumerate(zip(df["ase_atoms"], energies, forces)):
        a = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        out.append(_labelled(i, a, e, f))
    return out


def _read_pymatgen_json(p: Path) -> list[Atoms]:
    try:
        entries = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError([f"not valid JSON: {exc}"], str(p)) from exc
    if isinstance(entries, dict):
        entries = [entries]
    out = []
    for i, entry in enumerate(entries):
        try:
            atoms = structure_from_pymatgen_dict(entry["structure"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError([f"entry {i}: not a pymatgen Structure dict ({type(exc).__name__}: {exc})"], str(p)) from exc
        outputs = entry.get("outputs") or {}
        atoms.info.update({k: entry[k] for k in ("group", "tag") if isinstance(entry.get(k), str)})
        out.append(_labelled(i, atoms, outputs.get("energy"), outputs.get("forces")))
    return out


def structure_from_pymatgen_dict(d: dict[str, Any]) -> Atoms:
    """ASE Atoms from `pymatgen.core.Structure.as_dict()` output, without importing pymatgen."""
    lattice = d["lattice"]
    cell = np.asarray(lattice["matrix"], dtype=np.float64)
    symbols, positions = [], []
    for site in d["sites"]:
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-8:
            raise ValueError(f"partially occupied site {species} cannot be computed")
        symbols.append(species[0]["element"])
        positions.append(site["xyz"] if "xyz" in site else np.asarray(site["abc"], dtype=np.float64) @ cell)
    pbc = lattice.get("pbc", (True, True, True))
    return Atoms(symbols=symbols, positions=positions, cell=cell, pbc=pbc)


def _read_npz(p: Path) -> list[Atoms]:
    d = np.load(p)
    need = {"numbers", "positions", "cells", "pbc"}
    if not need <= set(d.files) or not ({"offsets", "n_atoms"} & set(d.files)):
        raise ConfigError([f"a packed npz needs {', '.join(sorted(need))} and offsets or n_atoms; has {', '.join(d.files)}"], str(p))
    if "offsets" in d.files:
        offsets = d["offsets"]
    else:
        offsets = np.concatenate([[0], np.cumsum(d["n_atoms"])])
    energies = d["energy_dft_total"] if "energy_dft_total" in d.files else None
    forces = d["forces_dft"] if "forces_dft" in d.files else None
    numbers, positions, cells, pbc = d["numbers"], d["positions"], d["cells"], d["pbc"]
    out = []
    for i in range(len(offsets) - 1):
        s = slice(int(offsets[i]), int(offsets[i + 1]))
        a = Atoms(numbers=numbers[s], positions=positions[s], cell=cells[i], pbc=pbc[i])
        out.append(_labelled(i, a, None if energies is None else energies[i], None if forces is None else forces[s]))
    return out


def write_extxyz(path: str | Path, frames: Sequence[Atoms]) -> Path:
    """Write `frames` (calculator results, info and arrays included) as extended XYZ."""
    import ase.io

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(p, list(frames), format="extxyz")
    return p
