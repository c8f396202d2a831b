"""The training frame of an ACE fit: the labels checked and converted to pacemaker's columns, the recipe's
bounds and short-range weights, the ZBL core radius, the train/test split, and the fingerprint that tells
whether a stored fit is a fit of this frame. Pure data work (pandas, numpy, ASE): running pacemaker and
keeping its work directory is alloop.train.fit's job."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alloop.errors import FitError, UnphysicalStructureError
from alloop.structures import config_hash, validate_atoms
from alloop.train.settings import FitSettings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


# Kinds that probe the repulsive wall on purpose (generate's dimers and compressed pairs, the genome's trimers):
# weighted down, never left out by the recipe's bounds.
SHORT_RANGE_KINDS = frozenset({"dimer", "trimer", "compressed"})
# Where the ZBL core may start, as a share of the sum of the pair's covalent radii (W-W: 0.55 x 3.24 = 1.78 Å,
# against 2.74 Å between bcc neighbours): below every distance a bulk, defect or MD configuration reaches, so
# the core never replaces what the data describe (a core at the training set's shortest distance, pacemaker's
# `repulsion: auto`, put ZBL at 2.09 Å and gave 8-11 eV/Å errors on test cells with 2.06 Å pairs).
CORE_RADIUS_SHARE = 0.55


def training_frame(data: pd.DataFrame, elements: list[str]) -> pd.DataFrame:
    """`data` checked and converted to pacemaker's columns; FitError says what is wrong and where."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise FitError(f"training data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in ("ase_atoms", "forces", "energy_corrected") if c not in data.columns]
    if missing:
        raise FitError(f"training data lacks column(s) {missing}; it has {list(data.columns)}")
    if len(data) < 2:
        raise FitError(
            f"training set has {len(data)} structure(s); at least 2 are needed: one structure cannot be split "
            "into train and test, and a fit to a single energy is underdetermined"
        )
    known = set(elements)
    atoms_list, forces_list, energies = [], [], []
    for i, (atoms, forces, e_corr) in enumerate(zip(data["ase_atoms"], data["forces"], data["energy_corrected"])):
        try:
            validate_atoms(atoms)
        except UnphysicalStructureError as exc:
            raise FitError(f"training structure {i}: {exc}") from exc
        stray = set(atoms.get_chemical_symbols()) - known
        if stray:
            raise FitError(f"training structure {i} contains {sorted(stray)}, not among the fit's elements {elements}")
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (len(atoms), 3) or not np.all(np.isfinite(f)):
            raise FitError(f"training structure {i}: forces must be a finite ({len(atoms)}, 3) array, got shape {f.shape}")
        if not math.isfinite(float(e_corr)):
            raise FitError(f"training structure {i}: energy_corrected is {e_corr}")
        atoms_list.append(atoms.copy())  # drops any calculator: pacemaker needs geometry only
        forces_list.append(f)
        energies.append(float(e_corr))
    periodic = {bool(a.pbc.all()) for a in atoms_list}
    if len(periodic) > 1:
        log.info("training set mixes periodic and non-periodic (cluster) structures")
    frame = pd.DataFrame(
        {
            "ase_atoms": atoms_list,
            "energy": data["energy"].astype(float).to_numpy() if "energy" in data.columns else energies,
            "forces": forces_list,
            "energy_corrected": energies,
        }
    )
    if "kind" in data.columns:
        frame["kind"] = data["kind"].astype(str).to_numpy()
    if "weight" in data.columns:
        w = data["weight"].astype(float).to_numpy()
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise FitError("column 'weight' must be finite, non-negative and not all zero")
        frame["w_factor"] = w  # pacemaker multiplies its uniform energy and force weights by this column
    return frame


def composition(frame: pd.DataFrame, elements: list[str]) -> np.ndarray:
    from alloop.label.reference import composition_matrix

    return composition_matrix(list(frame["ase_atoms"]), elements)[0]


def _least_squares_reference(frame: pd.DataFrame, elements: list[str]) -> dict[str, float]:
    """Per-element energies that best explain the totals (pacemaker's reference_energy: auto, without its shift)."""
    counts = composition(frame, elements)
    mu = np.linalg.pinv(counts, rcond=1e-10) @ frame["energy_corrected"].to_numpy(float)
    return {el: float(m) for el, m in zip(elements, mu)}


def apply_bounds(frame: pd.DataFrame, settings: FitSettings, elements: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame without the structures above the recipe's bounds (energy per atom above the lowest one, after
    the least-squares per-element energies are taken off, so composition alone never counts as height; largest
    atomic force), and how many each bound left out. Short-range kinds stay in, with their weight times
    settings.short_range_weight."""
    frame = frame.copy()
    short = frame["kind"].isin(SHORT_RANGE_KINDS).to_numpy() if "kind" in frame.columns else np.zeros(len(frame), bool)
    if short.any():
        w = frame["w_factor"].to_numpy(float) if "w_factor" in frame.columns else np.ones(len(frame))
        frame["w_factor"] = np.where(short, w * settings.short_range_weight, w)
    mu = _least_squares_reference(frame, elements)
    n_atoms = frame["ase_atoms"].map(len).to_numpy(float)
    e_atom = (frame["energy_corrected"].to_numpy(float) - composition(frame, elements) @ np.array([mu[el] for el in elements])) / n_atoms
    above = e_atom - e_atom[~short].min() if (~short).any() else np.zeros(len(frame))
    fmax = frame["forces"].map(lambda f: float(np.max(np.linalg.norm(f, axis=1))) if len(f) else 0.0).to_numpy()
    too_high = (above > settings.max_energy_above_min) if settings.max_energy_above_min is not None else np.zeros(len(frame), bool)
    too_hard = (fmax > settings.max_force) if settings.max_force is not None else np.zeros(len(frame), bool)
    drop = (too_high | too_hard) & ~short
    excluded = {"energy": int(np.sum(too_high & ~short)), "force": int(np.sum(too_hard & ~too_high & ~short))}
    if drop.any():
        log.warning("leaving %d of %d structures out of the fit: %d more than %s eV/atom above the lowest, %d with a "
                    "force above %s eV/Å", int(drop.sum()), len(frame), excluded["energy"], settings.max_energy_above_min,
                    excluded["force"], settings.max_force)
    if drop.all():
        raise FitError(f"every one of the {len(frame)} structures lies above the fit's bounds (max_energy_above_min="
                       f"{settings.max_energy_above_min} eV/atom, max_force={settings.max_force} eV/Å): nothing to fit")
    return frame[~drop].reset_index(drop=True), excluded


def core_radius(frame: pd.DataFrame, elements: list[str]) -> float:
    """Where the ZBL core takes over: the shortest training distance, at most CORE_RADIUS_SHARE of the smallest
    sum of covalent radii among the elements."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.neighborlist import neighbor_list

    radii = [float(covalent_radii[atomic_numbers[el]]) for el in elements]
    cap = CORE_RADIUS_SHARE * 2 * min(radii)
    shortest = cap
    for atoms in frame["ase_atoms"]:
        d = neighbor_list("d", atoms, cap)
        if len(d):
            shortest = min(shortest, float(d.min()))
    return shortest


def split_train_test(frame: pd.DataFrame, settings: FitSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test sets drawn with settings.seed; pacemaker's own split would move with each committee
    member's seed and make their test metrics incomparable."""
    n = len(frame)
    n_test = min(int(round(n * settings.test_fraction)), n - 1)
    order = np.random.default_rng(settings.seed).permutation(n)
    pick = lambda idx: frame.iloc[np.sort(idx)].reset_index(drop=True)  # noqa: E731
    return pick(order[n_test:]), pick(order[:n_test])


def fit_fingerprint(frame: pd.DataFrame, settings: FitSettings, elements: list[str], warm_committee: Sequence[Path] = ()) -> str:
    """What a fit of `frame` under `settings` depends on: a stored fit with the same fingerprint is this fit.
    `warm_committee`: the potentials a warm start fits on from (empty for random coefficients)."""
    h = hashlib.sha256()
    h.update(settings.model_dump_json(exclude={"test_sets"}).encode())  # scoring sets are not part of the fit
    h.update(json.dumps(elements).encode())
    for p in warm_committee:  # the same data fitted on from another potential is another fit
        h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    weights = frame["w_factor"] if "w_factor" in frame.columns else [1.0] * len(frame)
    for atoms, forces, e, w in zip(frame["ase_atoms"], frame["forces"], frame["energy_corrected"], weights):
        h.update(config_hash(atoms).encode())
        h.update(np.round(np.asarray([e, w], dtype=np.float64), 8).tobytes())
        h.update(np.round(forces, 6).tobytes())
    return h.hexdigest()
