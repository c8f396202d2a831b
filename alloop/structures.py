"""Configuration identity, validation and (de)serialisation shared by every stage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from ase import Atoms

from alloop.errors import UnphysicalStructureError

# Positions are rounded before hashing so that a configuration written and read back through text
# formats (extxyz keeps ~8 decimals) keeps its identity.
_HASH_DECIMALS = 6


def config_hash(atoms: Atoms) -> str:
    """Content hash of (numbers, positions, cell, pbc): the identity of a configuration in the database."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    for arr in (atoms.positions, np.asarray(atoms.cell)):
        r = np.round(np.asarray(arr, dtype=np.float64), _HASH_DECIMALS) + 0.0  # +0.0 folds -0.0 into 0.0
        h.update(np.ascontiguousarray(r).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return h.hexdigest()[:32]


#: Å: atoms this close overlap whatever a campaign says; the guard of DFT prepare and the fit (a campaign's
#: `min_distance`, which generation, exploration and selection apply, cannot go below it)
OVERLAP_DISTANCE = 0.5


@dataclass(frozen=True)
class FreshCandidates:
    """An iteration's new candidates: the physical ones (hash, atoms), the rejected ones (hash, atoms, reason),
    and the hashes of both (what nothing else this iteration makes, a relaxed motif say, may take again)."""

    physical: list[tuple[str, Atoms]]
    rejected: list[tuple[str, Atoms, str]]
    hashes: frozenset[str]


def fresh_candidates(structures: Sequence[Atoms], known: set[str] | frozenset[str], min_distance: float) -> FreshCandidates:
    """An iteration's new candidates: each structure once, none the campaign already holds (`known` hashes),
    split into the physical ones and the rejected ones."""
    seen: set[str] = set()
    new = []
    for atoms in structures:
        h = config_hash(atoms)
        if h not in known and h not in seen:
            seen.add(h)
            new.append((h, atoms))
    fresh, rejected = [], []
    for (h, atoms), why in zip(new, physical_or_reason([a for _, a in new], min_distance)):
        if why is None:
            fresh.append((h, atoms))
        else:
            rejected.append((h, atoms, why))
    return FreshCandidates(fresh, rejected, frozenset(seen))


def physical_or_reason(structures: Sequence[Atoms], min_distance: float) -> list[str | None]:
    """Per structure: None where validate_atoms accepts it, else the reason it is unphysical."""
    reasons: list[str | None] = []
    for atoms in structures:
        try:
            validate_atoms(atoms, min_distance)
            reasons.append(None)
        except UnphysicalStructureError as exc:
            reasons.append(str(exc))
    return reasons


def validate_atoms(atoms: Atoms, min_distance: float = OVERLAP_DISTANCE) -> None:
    """Raise UnphysicalStructureError for NaN/inf coordinates, a singular periodic cell, mixed
    periodicity or atoms closer than `min_distance` Å (mic-aware)."""
    pos = np.asarray(atoms.positions, dtype=float)
    if len(atoms) == 0:
        raise UnphysicalStructureError("structure has no atoms")
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(np.asarray(atoms.cell))):
        raise UnphysicalStructureError("structure has NaN or infinite positions or cell")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise UnphysicalStructureError(
            f"mixed periodicity pbc={pbc.tolist()} is not supported (ACE needs fully periodic or fully "
            "non-periodic cells): make it periodic with vacuum larger than the cutoff"
        )
    if pbc.all() and abs(atoms.cell.volume) < 1e-6:
        raise UnphysicalStructureError("periodic structure has a singular cell (zero volume)")
    # a cell-list search within min_distance: linear in the number of atoms, and it also sees an atom
    # too close to its own periodic image
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, min_distance)
    if len(d):
        k = int(np.argmin(d))
        raise UnphysicalStructureError(
            f"atoms {i[k]} and {j[k]} are {d[k]:.3f} Å apart (minimum allowed {min_distance} Å): overlapping atoms"
        )


def atoms_to_json(atoms: Atoms) -> str:
    """Compact, lossless JSON of the geometry (numbers, positions, cell, pbc)."""
    return json.dumps(
        {
            "numbers": atoms.numbers.tolist(),
            "positions": np.asarray(atoms.positions).tolist(),
            "cell": np.asarray(atoms.cell).tolist(),
            "pbc": [bool(p) for p in atoms.pbc],
        },
        separators=(",", ":"),
    )


def atoms_from_json(text: str) -> Atoms:
    d = json.loads(text)
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])


def flatten_forces(forces: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-configuration (n_i, 3) arrays into (N, 3) with offsets (n_configs + 1,)."""
    counts = np.fromiter((len(f) for f in forces), dtype=np.int64, count=len(forces))
    offsets = np.zeros(len(forces) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.concatenate([np.asarray(f, dtype=np.float64).reshape(-1, 3) for f in forces]) if forces else np.zeros((0, 3))
    return flat, offsets


T = TypeVar("T")

#: Positions and cell within this many Å count as the same configuration when the hash misses.
MATCH_TOLERANCE = 1e-4


class GeometryIndex(Generic[T]):
    """Values stored by configuration, looked up by content hash with a tolerant fallback.

    config_hash rounds coordinates to 1e-6 Å, so a configuration that went through a text format (extxyz
    keeps 1e-8) can land on the other side of a rounding boundary and change hash. The fallback compares
    geometries of the same atomic numbers within MATCH_TOLERANCE. The first value added for a
    configuration wins.
    """

    def __init__(self) -> None:
        self.by_hash: dict[str, T] = {}
        self._geometries: dict[bytes, list[tuple[np.ndarray, np.ndarray, np.ndarray, T]]] = {}

    def __len__(self) -> int:
        return len(self.by_hash)

    def add(self, atoms: Atoms, value: T) -> bool:
        """Store `value` for `atoms`; False (and nothing stored) when the configuration is already there."""
        h = config_hash(atoms)
        if h in self.by_hash:
            return False
        self.by_hash[h] = value
        key = np.asarray(atoms.numbers, dtype=np.int64).tobytes()
        self._geometries.setdefault(key, []).append(
            (np.array(atoms.positions), np.array(atoms.cell), np.array(atoms.pbc), value))
        return True

    def find(self, atoms: Atoms) -> tuple[T, str] | None:
        """(value, "hash" | "tolerance"), or None."""
        value = self.by_hash.get(config_hash(atoms))
        if value is not None:
            return value, "hash"
        pos, cell = atoms.positions, np.asarray(atoms.cell)
        for p, c, pbc, value in self._geometries.get(np.asarray(atoms.numbers, dtype=np.int64).tobytes(), []):
            if (np.array_equal(pbc, atoms.pbc) and np.abs(c - cell).max() <= MATCH_TOLERANCE
                    and np.abs(p - pos).max() <= MATCH_TOLERANCE):
                return value, "tolerance"
        return None
