"""D-optimal (MaxVol) choice of the candidate structures that most enlarge an ACE active set.

The candidates' per-atom B-projections are merged into the active set chunk by chunk: each chunk's
atoms outside the current set (γ > tolerance) join it, and MaxVol keeps the square submatrix of largest
volume (pyace.maxvol). Structures are ranked by how many of their atoms end up in the final set, ties by
their largest γ. This is pace_select's criterion, run in bounded memory.

Before the first fit there is no active set: the projections then come from an untrained basis of the
same shape (pace_select with an initial potential does the same); its radial functions are the
untrained ones, so it ranks geometric diversity rather than novelty to a model.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from alloop.errors import FitError
from alloop.train.gamma import CHUNK_ATOMS, chunks, grades, projections
from alloop.train.model import AceModel, check_structures, load_ace
from alloop.train.settings import FitSettings, potential_section

_EPS = 1e-16  # pyace's fill for constant projection columns, which would make the LU singular


def select_maxvol(
    structures: Sequence[Atoms],
    budget: int,
    potential: str | Path | None = None,
    active_set: str | Path | None = None,
    elements: list[str] | None = None,
    settings: FitSettings | None = None,
    gamma_tolerance: float = 1.01,
    max_iters: int = 300,
) -> list[int]:
    """Indices of at most `budget` structures, best first. Fewer come back when fewer structures extend
    the active set (none when every candidate atom interpolates: γ ≤ gamma_tolerance)."""
    structures = list(structures)
    if budget < 1 or not structures:
        return []
    model = _model(structures, potential, active_set, elements, settings)

    active: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if model.inverse is not None:
        active = {st: (np.linalg.pinv(inv), np.full(len(inv), -1)) for st, inv in model.inverse.items()}
    pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    best_gamma = np.zeros(len(structures))
    for start, stop in chunks(structures, CHUNK_ATOMS):
        part = structures[start:stop]
        types, proj = projections(model, part)
        owner = np.repeat(np.arange(start, stop), [len(a) for a in part])
        if model.inverse is not None:
            np.maximum.at(best_gamma, owner, grades(model, types, proj))
        for st, b in proj.items():
            ids = owner[types == st]
            if st in active:
                rows, row_ids = active[st]
                outside = np.abs(b @ np.linalg.pinv(rows)).max(axis=1) > gamma_tolerance
                if outside.any():
                    active[st] = _maxvol(np.vstack([rows, b[outside]]), np.concatenate([row_ids, ids[outside]]),
                                         gamma_tolerance, max_iters)
            else:
                pending.setdefault(st, []).append((b, ids))
                if sum(len(x) for x, _ in pending[st]) > model.n_functions[st]:
                    rows_list, ids_list = zip(*pending.pop(st))
                    active[st] = _maxvol(np.vstack(rows_list), np.concatenate(ids_list), gamma_tolerance, max_iters)
    for st, parts in pending.items():  # fewer atoms than functions: every atom is in the set
        active[st] = (np.vstack([x for x, _ in parts]), np.concatenate([i for _, i in parts]))

    counts = Counter(int(i) for _, ids in active.values() for i in ids if i >= 0)
    ranked = sorted(counts, key=lambda i: (-counts[i], -best_gamma[i], i))
    return ranked[:budget]


def select_for_labelling(structures: Sequence[Atoms], budget: int, potential: str | Path | None, active_set: str | Path | None,
                         elements: list[str], settings: FitSettings, seed: Sequence[int]) -> list[int]:
    """An iteration's choice of at most `budget` candidates, sorted: MaxVol against the potential's active set, or
    before the first fit against the untrained basis. The untrained basis spans its few functions with a handful
    of structures and says nothing of what a potential will lack, so before the first fit the rest of the budget
    is filled by a draw seeded with `seed`; with a potential, candidates that add no volume are left out."""
    chosen = select_maxvol(structures, budget, potential=potential, active_set=active_set, elements=elements, settings=settings)
    if potential is None and len(chosen) < min(budget, len(structures)):
        rest = np.setdiff1d(np.arange(len(structures)), chosen)
        fill = np.random.default_rng(list(seed)).choice(rest, size=min(budget, len(structures)) - len(chosen), replace=False)
        chosen = [*chosen, *fill.tolist()]
    return sorted(int(i) for i in chosen)


def _model(structures: list[Atoms], potential: str | Path | None, active_set: str | Path | None,
           elements: list[str] | None, settings: FitSettings | None) -> AceModel:
    """The potential (with its active set), or before any fit an untrained basis of shape `settings`."""
    if potential is None:
        if not elements:
            raise FitError("without a potential, `elements` are needed to build an untrained basis")
        model = untrained_model(settings or FitSettings(), tuple(sorted(set(elements))))
    else:
        model = load_ace(potential, active_set)
    check_structures(model, structures)
    return model


def active_set_rows(
    structures: Sequence[Atoms],
    potential: str | Path | None = None,
    active_set: str | Path | None = None,
    elements: list[str] | None = None,
    settings: FitSettings | None = None,
    gamma_tolerance: float = 1.01,
    max_iters: int = 300,
) -> tuple[AceModel, dict[int, np.ndarray]]:
    """The active set that `structures` give, alone or (with `active_set`) merged into the potential's:
    per species index, the MaxVol rows of B-projections (square once there are enough atoms)."""
    structures = list(structures)
    model = _model(structures, potential, active_set, elements, settings)
    _, proj = projections(model, structures)
    rows = {st: np.linalg.pinv(inv) for st, inv in (model.inverse or {}).items()}
    for st, b in proj.items():
        rows[st] = np.vstack([rows[st], b]) if st in rows else b
    out = {}
    for st, r in rows.items():
        out[st] = r if len(r) <= model.n_functions[st] else _maxvol(r, np.zeros(len(r)), gamma_tolerance, max_iters)[0]
    return model, out


def active_set_log_volume(
    structures: Sequence[Atoms],
    potential: str | Path | None = None,
    active_set: str | Path | None = None,
    elements: list[str] | None = None,
    settings: FitSettings | None = None,
) -> dict[str, float]:
    """Per element: log|det| of the active set of `active_set_rows`. Larger is more diverse data; -inf (zero
    volume) when an element has fewer atoms than basis functions or only linearly dependent environments
    (e.g. symmetry-equivalent sites)."""
    model, rows = active_set_rows(structures, potential, active_set, elements, settings)
    out = dict.fromkeys(model.elements, -np.inf)
    for st, r in rows.items():
        if r.shape == (model.n_functions[st],) * 2:  # else too few atoms, or maxvol fell back to independent rows
            sign, logdet = np.linalg.slogdet(r)
            out[model.elements[st]] = float(logdet) if sign != 0 else -np.inf
    return out


def _maxvol(rows: np.ndarray, ids: np.ndarray, tol: float, max_iters: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows (and their structure ids) spanning the largest volume."""
    from pyace.maxvol import maxvol
    from scipy.linalg import qr

    a = np.array(rows, dtype=np.float64, order="C")
    const = np.flatnonzero(np.std(a, axis=0) == 0)
    if len(const):
        a[np.arange(min(len(const), len(a))), const[: len(a)]] += _EPS
    try:
        sel, _ = maxvol(a, tol=tol, max_iters=max_iters)
    except ValueError:
        # Rank-deficient (e.g. only symmetry-equivalent atoms): keep the rows that column-pivoted QR finds
        # independent, the same greedy volume criterion maxvol starts from.
        r, piv = qr(a.T, mode="r", pivoting=True)
        d = np.abs(np.diag(r))
        sel = piv[: max(1, int(np.sum(d > 1e-10 * d[0])))] if d.size and d[0] > 0 else piv[:1]
    sel = np.asarray(sel)
    return rows[sel], ids[sel]


@functools.lru_cache(maxsize=4)
def _untrained(settings_json: str, elements: tuple[str, ...]) -> AceModel:
    from pyace import ACEBBasisSet
    from pyace.activelearning import compute_number_of_functions
    from pyace.multispecies_basisextension import construct_bbasisconfiguration

    settings = FitSettings.model_validate_json(settings_json)
    try:
        basis = ACEBBasisSet(construct_bbasisconfiguration(potential_section(settings, list(elements))))
    except Exception as exc:  # pyace raises bare RuntimeError/ValueError for inconsistent shapes
        raise FitError(f"the ACE basis from these settings is invalid: {exc}") from exc
    n_funcs = dict(enumerate(compute_number_of_functions(basis)))
    return AceModel(Path("untrained-basis"), None, basis, None, tuple(basis.elements_name), n_funcs)


def untrained_model(settings: FitSettings, elements: tuple[str, ...]) -> AceModel:
    """An ACE basis of the shape `settings` describe, before any fit (cached per process)."""
    return _untrained(settings.model_dump_json(), elements)
