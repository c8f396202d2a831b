"""The units of work the controller sends to Dask workers. Each takes and returns plain picklable data
(JSON geometries, numpy arrays, settings models) and calls one capability; none touches the database."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alloop.locks import exclusive_dir
from alloop.structures import atoms_from_json

if TYPE_CHECKING:
    from alloop.explore.pool import CandidatePool


@dataclass(frozen=True)
class MemberFailed:
    """A member that could not run on a batch at all (it failed to load, or raised on the whole batch): not a
    per-structure failure, so the controller stores no prediction and stops the iteration before any DFT."""

    error: str


def predict_task(member: Any, items: list[tuple[int, str]]) -> list[tuple[int, float | None, np.ndarray | None, str | None]] | MemberFailed:
    """One ensemble member on a batch of configurations: (configuration id, energy, forces, error) per structure,
    or MemberFailed with the reason when the member could not run on the batch at all."""
    from alloop.ensemble import predict_member

    structures = [atoms_from_json(a) for _, a in items]
    try:
        pred = predict_member(member, structures)
    except Exception as exc:  # a member that cannot run at all: the member's failure, not the structures'
        return MemberFailed(f"{type(exc).__name__}: {exc}")
    out = []
    for k, (cid, _) in enumerate(items):
        err = pred.errors.get(k)
        if err is not None:
            out.append((cid, None, None, err))
        else:
            out.append((cid, float(pred.energies[k]), np.asarray(pred.forces[k], dtype=np.float64), None))
    return out


def dft_task(dft_settings: Any, atoms_json: str, workdir: str) -> dict[str, Any]:
    """One DFT labelling calculation with error handlers; never raises (failures come back as data)."""
    from alloop.errors import AlloopError, disk_problem
    from alloop.label import compute_label

    try:
        with exclusive_dir(workdir):
            result = compute_label(dft_settings, atoms_from_json(atoms_json), Path(workdir))
    except Exception as exc:
        disk = disk_problem(exc)
        if disk is not None:  # not the calculation's failure: it is not counted against it
            return {"ok": False, "disk_full": disk, "reason": f"{workdir}: {disk}", "retryable": True}
        if isinstance(exc, AlloopError):
            return {"ok": False, "reason": str(getattr(exc, "reason", exc)), "retryable": bool(getattr(exc, "retryable", True))}
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", "retryable": True}
    return {
        "ok": True,
        "energy": float(result.energy),
        "forces": np.asarray(result.forces, dtype=np.float64),
        "stress": None if result.stress is None else np.asarray(result.stress, dtype=np.float64),
        "meta": dict(result.meta),
        "backend": result.source,
    }


def fit_task(frame: Any, settings: Any, workdir: str, elements: list[str], warm_from: str | None = None,
             isolated_energies: dict[str, float] | None = None) -> dict[str, Any]:
    from alloop.train import fit_ace

    with exclusive_dir(workdir):
        res = fit_ace(frame, settings, Path(workdir), elements, None if warm_from is None else Path(warm_from), isolated_energies)
    return {"potential": str(res.potential_yaml), "active_set": str(res.active_set), "metrics": dict(res.metrics)}


def gamma_task(potential: str, active_set: str, atoms_jsons: list[str]) -> np.ndarray:
    from alloop.train import max_gamma

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return np.asarray(max_gamma(potential, active_set, [atoms_from_json(a) for a in atoms_jsons]), dtype=np.float64)


def pool_task(elements: list[str], generate: Any, explore: Any, potential: tuple[str, str] | None, seed: int, iteration: int,
              stream: int, n_max: int | None, sources: bool, fit: Any, starts: list[Any] | None = None) -> CandidatePool:
    """An iteration's candidates (motifs, data-set sources, γ-driven MD from `starts`): alloop.explore.pool."""
    from alloop.explore.pool import candidate_pool

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return candidate_pool(elements, generate, explore, potential, seed, iteration, stream, n_max, sources, fit, starts=starts)


def select_task(structures: list[Any], budget: int, potential: str | None, active_set: str | None, elements: list[str],
                settings: Any, seed: list[int]) -> list[int]:
    """The iteration's choice of `budget` candidates: alloop.train.select.select_for_labelling (MaxVol against the
    active set, or the untrained basis plus a seeded fill before the first fit)."""
    from alloop.train.select import select_for_labelling

    return select_for_labelling(structures, budget, potential, active_set, elements, settings, seed)


def route_task(spec: Any, per_member: dict[str, Any], n_atoms: np.ndarray, u_c: float, variant: int, energy_member: str,
               force_member: str, force_dft: list[str | None], dft_max_atoms: int | None = None,
               dft_budget_atoms: int | None = None) -> Any:
    """U (the computation `alloop score` writes) and where each configuration's label comes from:
    alloop.ensemble.routing.route on the stored predictions stacked as alloop.ensemble.EnsemblePredictions."""
    from alloop.ensemble import EnsemblePredictions
    from alloop.ensemble.routing import route

    preds = EnsemblePredictions.stack(spec, per_member, n_atoms)
    return route(preds, u_c, variant, energy_member, force_member, force_dft=force_dft, dft_max_atoms=dft_max_atoms,
                 dft_budget_atoms=dft_budget_atoms)


def reference_task(settings: Any, energy_member: str, atoms_jsons: list[str], sources: list[str], energies: list[float],
                   e_member: list[float | None], u: list[float | None], u_c: float, elements: list[str], dft_backend: str,
                   replay: Any) -> Any:
    """The DFT→uMLIP energy reference of a training set: alloop.label.reference.training_reference."""
    from alloop.label.reference import training_reference

    return training_reference(settings, energy_member, [atoms_from_json(a) for a in atoms_jsons], sources, energies,
                              e_member, u, u_c, elements, dft_backend, replay)


def test_sets_task(potential: str, test_sets: list[Any]) -> dict[str, Any]:
    """The potential's errors on each external test set: alloop.train.test_sets.evaluate_test_sets."""
    from alloop.train.test_sets import evaluate_test_sets

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return evaluate_test_sets(potential, test_sets)


def isolated_atoms_task(member: Any, elements: list[str]) -> dict[str, float]:
    """Each element's isolated atom (alone in a 20 Å box) as the label member sees it: the reference energies
    of a fit (alloop.train.fit_ace). A member that only replays stored predictions raises."""
    from ase import Atoms

    from alloop.properties import load_model

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model = load_model(member=member)
    atoms = [Atoms(el, positions=[(10.0, 10.0, 10.0)], cell=[20.0, 20.0, 20.0], pbc=True) for el in elements]
    return {el: float(e) for el, e in zip(elements, model.energies(atoms))}


def relax_task(member: Any, atoms_jsons: list[str], settings: Any, min_distance: float) -> list[tuple[str | None, Any]]:
    """Selected motifs relaxed by the label member (alloop.generate.relaxation): per structure, (the relaxed
    atoms as JSON, the relaxation's record) or (None, the reason it was rejected)."""
    from alloop.generate.relaxation import relax_motifs
    from alloop.properties import load_model
    from alloop.structures import atoms_to_json

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model = load_model(member=member)
    res = relax_motifs([atoms_from_json(a) for a in atoms_jsons], model.calculator(), settings, min_distance, member.name)
    return [(None, r) if isinstance(r, str) else (atoms_to_json(r), r.info["generator"]["relaxed"]) for r in res]


def properties_task(target: Any, elements: list[str], settings: Any) -> dict[str, Any]:
    """What an ACE potential (a path) or an ensemble member (a MemberSpec: the teacher) predicts, as a
    PropertyResult dict: alloop.properties.compute_properties."""
    from alloop.properties import compute_properties, load_model

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model = load_model(potential=target) if isinstance(target, str) else load_model(member=target)
    return compute_properties(model, elements, settings).model_dump(mode="json")
