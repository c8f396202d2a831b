"""Run members and whole ensembles on structures (what the campaign controller and `alloop score` call)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from alloop.ensemble.loading import load_member
from alloop.ensemble.results import EnsemblePredictions, MemberPredictions
from alloop.ensemble.spec import EnsembleSpec, MemberSpec, resolve_ensemble
from alloop.errors import MemberError


def predict_member(member: MemberSpec | Mapping[str, Any], structures: Sequence[Atoms]) -> MemberPredictions:
    """One member on a batch of structures. Plain picklable arguments and result, so it can be a
    Dask task; the model is loaded on the first call in a process and reused after."""
    pred = load_member(member).predict(structures)
    _check_shapes(pred, structures)
    return pred


def _check_shapes(pred: MemberPredictions, structures: Sequence[Atoms]) -> None:
    if len(pred) != len(structures) or np.shape(pred.energies) != (len(structures),):
        raise MemberError(f"member '{pred.member}' returned {len(pred)} predictions for {len(structures)} structures")
    for i, (f, atoms) in enumerate(zip(pred.forces, structures)):
        if np.shape(f) != (len(atoms), 3):
            raise MemberError(
                f"member '{pred.member}' returned forces shaped {np.shape(f)} for structure {i} with {len(atoms)} atoms"
            )


def predict_ensemble(
    spec: EnsembleSpec | str | Mapping[str, Any],
    structures: Sequence[Atoms],
    *,
    progress: Callable[[str], None] | None = None,
) -> EnsemblePredictions:
    """Every member on every structure, stacked for alloop.uq: energies (K, n), forces (K, N, 3).

    A structure a member failed on has NaN there and its reason in `errors[member]`; U is then NaN
    for it (see EnsemblePredictions.uncertainty). A member that cannot load raises MemberError.
    """
    ens = spec if isinstance(spec, EnsembleSpec) else resolve_ensemble(spec)
    per_member: dict[str, MemberPredictions] = {}
    for member in ens.members:
        start = time.perf_counter()
        pred = per_member[member.name] = predict_member(member, structures)
        if progress is not None:
            failed = f", {len(pred.errors)} failed" if pred.errors else ""
            progress(f"{member.name}: {len(structures)} structures in {time.perf_counter() - start:.1f} s{failed}")
    return EnsemblePredictions.stack(ens, per_member, np.array([len(a) for a in structures], dtype=np.int64))
