"""Per-element energy references between label sources.

Total energies from different codes or models differ by a constant per atom of each element (other PAW
setups, other training references): GPAW vs VASP-PBE, OMat- vs MP-compatible uMLIPs. Mixing them in one
training set without alignment makes the ACE learn the offsets. Forces need no alignment.

Model: E_target ≈ E_source + Σ_el n_el · δ_el, fitted by least squares on configurations labelled by
both sources, on energies per atom (each configuration weighs the same, as in an ACE energy loss,
instead of the largest cells dominating). With fewer independent compositions than elements the δ_el
are not identifiable; the fit then falls back to one shared per-atom offset δ (the mean per-atom
difference) and says so in the log, or raises FitError with `fallback="raise"`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from ase import Atoms

from alloop.errors import FitError

log = logging.getLogger(__name__)

Compositions = Sequence[Mapping[str, int]] | Sequence[Atoms] | np.ndarray


def composition_matrix(compositions: Compositions, elements: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(n_configs, n_elements) atom counts and the element order. A count matrix needs `elements`."""
    if isinstance(compositions, np.ndarray):
        if elements is None or compositions.ndim != 2 or compositions.shape[1] != len(elements):
            raise FitError("a count matrix needs `elements`, one per column")
        return compositions.astype(np.float64), list(elements)
    dicts = [_as_counts(c) for c in compositions]
    if elements is None:
        elements = sorted({el for d in dicts for el in d})
    col = {el: j for j, el in enumerate(elements)}
    counts = np.zeros((len(dicts), len(elements)))
    for i, d in enumerate(dicts):
        for el, n in d.items():
            if el not in col:
                raise FitError(f"element {el} of configuration {i} is not among {list(elements)}")
            counts[i, col[el]] = n
    return counts, list(elements)


def _as_counts(c: Mapping[str, int] | Atoms) -> dict[str, int]:
    if isinstance(c, Atoms):
        symbols, counts = np.unique(c.get_chemical_symbols(), return_counts=True)
        return {str(s): int(n) for s, n in zip(symbols, counts)}
    return {str(k): int(v) for k, v in c.items()}


def fit_element_offsets(
    compositions: Compositions,
    e_source: Sequence[float] | np.ndarray,
    e_target: Sequence[float] | np.ndarray,
    elements: Sequence[str] | None = None,
    fallback: Literal["shared", "raise"] = "shared",
) -> dict[str, float]:
    """Per-element offsets δ_el (eV/atom) such that e_source + Σ n_el δ_el ≈ e_target (total energies)."""
    counts, elements = composition_matrix(compositions, elements)
    src, tgt = np.asarray(e_source, dtype=np.float64), np.asarray(e_target, dtype=np.float64)
    if not (len(src) == len(tgt) == len(counts)):
        raise FitError(f"{len(counts)} compositions, {len(src)} source and {len(tgt)} target energies: lengths differ")
    if len(counts) == 0:
        raise FitError("no configuration labelled by both sources: cannot fit energy offsets")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(tgt))):
        raise FitError("non-finite energies among the configurations used to fit energy offsets")
    n_atoms = counts.sum(axis=1)
    if np.any(n_atoms <= 0):
        raise FitError("a configuration without atoms among those used to fit energy offsets")
    per_atom_residual = (tgt - src) / n_atoms
    fractions = counts / n_atoms[:, None]
    rank = np.linalg.matrix_rank(fractions)
    if rank >= len(elements):
        delta, *_ = np.linalg.lstsq(fractions, per_atom_residual, rcond=None)
        return {el: float(d) for el, d in zip(elements, delta)}
    why = (f"{rank} independent composition(s) for {len(elements)} elements {elements}: per-element offsets "
           "are not identifiable")
    if fallback == "raise":
        raise FitError(why + "; label configurations of more compositions by both sources")
    shared = float(per_atom_residual.mean())
    log.warning("%s; using one shared offset of %.6f eV/atom for all elements", why, shared)
    return {el: shared for el in elements}


def apply_offsets(
    compositions: Mapping[str, int] | Atoms | Compositions,
    energies: float | Sequence[float] | np.ndarray,
    offsets: Mapping[str, float],
    elements: Sequence[str] | None = None,
) -> float | np.ndarray:
    """Energies moved onto the target scale: E + Σ n_el δ_el. One composition and one energy give a
    float; a list (or count matrix) of compositions and an array of energies give an array."""
    if isinstance(compositions, (Mapping, Atoms)):
        counts = _as_counts(compositions)
        return float(energies) + sum(n * _offset(offsets, el) for el, n in counts.items())  # type: ignore[arg-type]
    matrix, elements = composition_matrix(compositions, elements)
    delta = np.array([_offset(offsets, el) if matrix[:, j].any() else 0.0 for j, el in enumerate(elements)])
    return np.asarray(energies, dtype=np.float64) + matrix @ delta


def _offset(offsets: Mapping[str, float], element: str) -> float:
    if element not in offsets:
        raise FitError(f"no energy offset for element {element} (offsets known for {sorted(offsets)}): "
                       "fit them on configurations that contain it")
    return float(offsets[element])
