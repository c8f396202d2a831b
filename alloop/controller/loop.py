"""The active-learning loop: generate → select → score (U) → route → label → fit → grade → converge?

Every stage reads what it needs from the database and commits its result before the next begins, so
`run` after a crash, kill or walltime picks up at the last committed transition. Work runs as Dask
tasks; each result is committed the moment it arrives, so a killed run loses at most the tasks in flight,
and those are idempotent (DFT and fits reuse finished work directories).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from alloop.config import Campaign
from alloop.controller import tasks
from alloop.ensemble.placement import size_batches
from alloop.errors import AlloopError, FitError, UnphysicalStructureError
from alloop.state import DFTJob, NewConfiguration, Prediction, Routing, Store
from alloop.state.lock import ControllerLock
from alloop.structures import atoms_from_json, atoms_to_json, config_hash, flatten_forces, validate_atoms

log = logging.getLogger("alloop")

# Random streams: each (seed, iteration, purpose) has its own generator, so a resumed run regenerates
# exactly the candidates the interrupted one had.
_STREAM_POOL, _STREAM_EVAL, _STREAM_SELECT, _STREAM_EXPLORE = 1, 2, 3, 4
# One predict task: at most this many configurations and atoms (about a minute for the slowest
# offline member on one CPU core; the member batches inside the task for its device).
_TASK_STRUCTURES, _TASK_ATOMS = 64, 2048


class IterationFailed(Exception):
    """The iteration is marked failed in the database with its reason; the campaign stops."""


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived: leave at the next committed transition."""


@dataclass
class Outcome:
    status: str  # converged | max_iterations | stopped | failed
    message: str
    potential: str | None


class Controller:
    def __init__(self, campaign: Campaign, store: Store, client: Any, ensemble_client: Any = None) -> None:
        """`client` runs DFT, fits and γ; `ensemble_client` (default: the same) runs uMLIP inference."""
        from alloop.ensemble import resolve_ensemble

        self.c = campaign
        self.store = store
        self.client = client
        self.ensemble_client = client if ensemble_client is None else ensemble_client
        self.ensemble = resolve_ensemble(campaign.ensemble)
        self.members = [m.name for m in self.ensemble.members]
        self.energy_member = campaign.labels.energy_member or self.ensemble.energy_member or self.members[0]
        self.force_member = campaign.labels.force_member or self.ensemble.force_member or self.members[0]
        self.workdir = Path(campaign.workdir)
        self.cid = store.open_campaign(campaign.name, campaign.model_dump_json())
        self._stop = threading.Event()

    # ------------------------------------------------------------------ driver
    def request_stop(self, *_: object) -> None:
        if not self._stop.is_set():
            log.warning("stop requested: finishing the current transaction, then exiting (running DFT is left to finish)")
        self._stop.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StopRequested

    def run(self) -> Outcome:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.request_stop)
        try:
            with ControllerLock(self.store, self.cid):
                return self._run()
        except IterationFailed as exc:
            return Outcome("failed", str(exc), self._potential_path())
        except StopRequested:
            self.store.log_event(self.cid, None, "warning", "campaign", "stopped on request; `alloop run` resumes")
            return Outcome("stopped", "stopped on request; run `alloop run` again to resume", self._potential_path())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> Outcome:
        row = self.store.campaign(self.c.name)
        if row["status"] in ("converged", "max_iterations"):
            return Outcome(row["status"], row["message"] or row["status"], self._potential_path())
        current = self.store.current_iteration(self.cid)
        if current is None:
            self.store.start_iteration(self.cid, 0)
            current = (0, "generate")
        idx, stage = current
        if stage == "done":
            idx, stage = self._next_iteration(idx)
        log.info("campaign '%s': iteration %d, stage %s", self.c.name, idx, stage)
        while True:
            self._check_stop()
            stage = self.store.current_iteration(self.cid)[1]  # type: ignore[index]
            if stage == "generate":
                self.generate(idx)
            elif stage == "score":
                self.score(idx)
            elif stage == "label":
                if not self.label(idx):
                    msg = self._failure_report(idx)
                    self.store.set_stage(self.cid, idx, "failed", msg)
                    self.store.finish_campaign(self.cid, "failed", msg)
                    return Outcome("failed", msg, self._potential_path())
            elif stage == "train":
                self.train(idx)
            elif stage == "evaluate":
                finished = self.evaluate(idx)
                if finished is not None:
                    return finished
                idx, _ = self._next_iteration(idx)
            elif stage == "failed":
                row = self.store.campaign(self.c.name)
                return Outcome("failed", row["message"] or "iteration failed", self._potential_path())
            else:
                raise AlloopError(f"unknown stage {stage!r} in the database")

    def _next_iteration(self, idx: int) -> tuple[int, str]:
        self.store.start_iteration(self.cid, idx + 1)
        return idx + 1, "generate"

    def _potential_path(self) -> str | None:
        pot = self.store.latest_potential(self.cid)
        return None if pot is None else pot["path"]

    def _rng(self, idx: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.c.seed, idx, stream])

    # ------------------------------------------------------------------ generate + select
    def _candidate_pool(self, idx: int, stream: int, n_max: int | None = None) -> list[Atoms]:
        from alloop.generate import generate_candidates

        pool = generate_candidates(self.c.elements, self.c.generate, self._rng(idx, stream))
        pot = self.store.latest_potential(self.cid, before_idx=idx + 1)
        if self.c.explore is not None and pot is not None:
            from alloop.explore import explore
            from alloop.generate import starting_structures

            starts = starting_structures(self.c.elements, self.c.generate, self._rng(idx, stream + 10))
            res = explore(pot["path"], pot["active_set"], starts, self.c.explore, self._rng(idx, stream + 20))
            log.info("exploration from %d starts gave %d candidates", len(starts), len(res.candidates))
            pool = list(res.candidates) + pool
        if n_max is not None and len(pool) > n_max:
            keep = self._rng(idx, stream + 30).choice(len(pool), size=n_max, replace=False)
            pool = [pool[i] for i in sorted(keep)]
        return pool

    def generate(self, idx: int) -> None:
        t0 = time.time()
        pool = self._candidate_pool(idx, _STREAM_POOL)
        known = self.store.known_hashes(self.cid)
        fresh: list[tuple[str, Atoms]] = []
        rejected: list[NewConfiguration] = []
        seen: set[str] = set()
        for atoms in pool:
            h = config_hash(atoms)
            if h in known or h in seen:
                continue
            seen.add(h)
            try:
                validate_atoms(atoms, self.c.selection.min_distance)
            except UnphysicalStructureError as exc:
                rejected.append(_new_config(atoms, h, "failed", str(exc)))
                continue
            fresh.append((h, atoms))
        chosen = self._select(idx, [a for _, a in fresh])
        selected = [_new_config(fresh[i][1], fresh[i][0]) for i in chosen]
        n = self.store.commit_selection(self.cid, idx, selected + rejected)
        log.info(
            "iteration %d: %d candidates, %d selected, %d rejected as unphysical (%.1f s)",
            idx, len(pool), n - len(rejected), len(rejected), time.time() - t0,
        )

    def _select(self, idx: int, structures: list[Atoms]) -> list[int]:
        budget = self.c.selection.budget
        if len(structures) <= budget:
            return list(range(len(structures)))
        pot = self.store.latest_potential(self.cid, before_idx=idx)
        if pot is None:
            # Nothing to measure novelty against yet: an even random draw over all generated kinds.
            return sorted(self._rng(idx, _STREAM_SELECT).choice(len(structures), size=budget, replace=False).tolist())
        from alloop.train import select_maxvol

        return sorted(select_maxvol(structures, budget, potential=pot["path"], active_set=pot["active_set"], elements=self.c.elements, settings=self.c.train))

    # ------------------------------------------------------------------ score and route
    def score(self, idx: int) -> None:
        configs = self.store.configurations(self.cid, idx, status="selected")
        ids = [c.id for c in configs]
        atoms_json = {c.id: c.atoms_json for c in configs}
        missing = self.store.missing_predictions(ids, self.members)
        specs = {m.name: m for m in self.ensemble.members}
        n_atoms = {c.id: c.n_atoms for c in configs}
        futures = []
        for member, todo in missing.items():
            # Tasks of similar-sized configurations and similar total atoms, so workers finish together.
            for k, group in enumerate(size_batches([n_atoms[i] for i in todo], _TASK_STRUCTURES, _TASK_ATOMS)):
                items = [(todo[j], atoms_json[todo[j]]) for j in group]
                futures.append(self.ensemble_client.submit(tasks.predict_task, specs[member], items, pure=False, key=f"predict-{member}-{idx}-{k}-{time.time_ns()}"))
        total = sum(len(v) for v in missing.values())
        if total:
            log.info("iteration %d: scoring %d configurations with %d members (%d predictions to make)", idx, len(ids), len(self.members), total)
        done = 0
        for fut, rows in _as_completed(futures, self._stop):
            member = _member_of(fut.key, self.members)
            self.store.save_predictions([Prediction(cid, member, e, f, err) for cid, e, f, err in rows])
            done += len(rows)
            log.info("  predictions %d/%d", done, total)
        self._check_stop()
        self._route(idx, configs)

    def _route(self, idx: int, configs: Sequence[Any]) -> None:
        from alloop.uq import uncertainty

        preds = self.store.predictions([c.id for c in configs], self.members)
        rmse = np.array([m.rmse if m.rmse is not None else np.nan for m in self.ensemble.members])
        rmse_arg = None if np.isnan(rmse).any() else rmse
        routings: list[Routing] = []
        good = [c for c in configs if all(preds.get((c.id, m)) is not None and preds[(c.id, m)].forces is not None for m in self.members)]
        if good:
            flat = [flatten_forces([preds[(c.id, m)].forces for c in good]) for m in self.members]
            forces, offsets = np.stack([f for f, _ in flat]), flat[0][1]
            u = {v: uncertainty(forces, offsets, rmse_arg, variant=v) for v in (0, 1, 2)}
        u_c = self.c.uncertainty.u_c
        for k, c in enumerate(good):
            u_sel = u[self.c.uncertainty.variant][k]
            if np.isfinite(u_sel) and u_sel < u_c:  # the paper's strict rule
                e = preds[(c.id, self.energy_member)]
                f = preds[(c.id, self.force_member)]
                routings.append(Routing(c.id, u[0][k], u[1][k], u[2][k], "umlip", e.energy, f.forces, f"{self.energy_member}|{self.force_member}"))
            else:
                routings.append(Routing(c.id, u[0][k], u[1][k], u[2][k], "dft", dft_workdir=self._dft_dir(c.hash)))
        good_ids = {c.id for c in good}
        for c in configs:
            if c.id in good_ids:
                continue
            errors = [f"{m}: {preds[(c.id, m)].error}" for m in self.members if (c.id, m) in preds and preds[(c.id, m)].error]
            reason = "U not computable (" + "; ".join(errors or ["missing predictions"]) + "): sent to DFT"
            routings.append(Routing(c.id, np.nan, np.nan, np.nan, "dft", dft_workdir=self._dft_dir(c.hash), reason=reason))
        self.store.commit_routing(self.cid, idx, routings, self.c.uncertainty.variant, u_c, self.members, self.c.labels.dft.backend)
        n_dft = sum(r.route == "dft" for r in routings)
        log.info("iteration %d: %d configurations → uMLIP labels, %d → DFT (U_c = %g eV/Å)", idx, len(routings) - n_dft, n_dft, u_c)

    def _dft_dir(self, h: str) -> str:
        return str(self.workdir / "dft" / h)

    # ------------------------------------------------------------------ label
    def label(self, idx: int) -> bool:
        """Run the iteration's DFT jobs until each is done or quarantined. False: too many failed."""
        dft = self.c.labels.dft
        if dft.batch is not None:
            self._label_batch(idx)
        else:
            self._label_dask(idx)
        all_jobs = self.store.dft_jobs(self.cid, idx, statuses=("done", "quarantined"))
        bad = sum(j.status == "quarantined" for j in all_jobs)
        if all_jobs and bad / len(all_jobs) > dft.max_failed_fraction:
            return False
        self.store.set_stage(self.cid, idx, "train")
        return True

    def _record_failure(self, job: DFTJob, reason: str, retryable: bool) -> None:
        dft = self.c.labels.dft
        status = self.store.fail_dft_job(job.id, reason, dft.max_attempts if retryable else 0)
        log.warning("  DFT %s failed (%s): %s", job.hash[:10], status, reason.splitlines()[0])

    def _label_dask(self, idx: int) -> None:
        dft = self.c.labels.dft
        while True:
            jobs = self.store.dft_jobs(self.cid, idx)
            if not jobs:
                return
            log.info("iteration %d: %d DFT calculations (%s) to run", idx, len(jobs), dft.backend)
            futures = []
            for job in jobs:
                self.store.mark_job_running(job.id)
                fut = self.client.submit(tasks.dft_task, dft, job.atoms_json, job.workdir, pure=False, key=f"dft-{job.id}-{job.attempts}-{time.time_ns()}")
                futures.append((fut, job))
            by_key = {f.key: j for f, j in futures}
            for fut, res in _as_completed([f for f, _ in futures], self._stop):
                job = by_key[fut.key]
                if res["ok"]:
                    self.store.complete_dft_job(job.id, res["backend"], res["energy"], res["forces"], res["stress"], res["meta"])
                    log.info("  DFT %s done (E = %.4f eV)", job.hash[:10], res["energy"])
                else:
                    self._record_failure(job, res["reason"], res.get("retryable", True))
            self._check_stop()

    def _label_batch(self, idx: int) -> None:
        """Each calculation is its own batch job; the database keeps its id, so a restarted controller
        re-attaches to queued and running jobs instead of submitting them again."""
        from alloop.cluster.batch import make_scheduler
        from alloop.label.batch import collect_job, job_name, job_started, prepare_job
        from alloop.label.handlers import load_corrections

        dft = self.c.labels.dft
        batch = dft.batch
        assert batch is not None
        scheduler = make_scheduler(batch)
        announced = False
        while True:
            jobs = self.store.dft_jobs(self.cid, idx)
            if not jobs:
                return
            if not announced:
                log.info("iteration %d: %d DFT calculations (%s) as %s batch jobs", idx, len(jobs), dft.backend, batch.scheduler)
                announced = True
            refs = [j.job_ref for j in jobs if j.job_ref]
            states = scheduler.states(refs) if refs else {}
            for job in jobs:
                self._check_stop()
                wd = Path(job.workdir)
                # one name per (failed attempts, corrections): the same after a restart, new for each retry
                attempt = 100 * job.attempts + len(load_corrections(wd))
                name = job_name(wd, attempt)
                if job.job_ref is not None and states.get(job.job_ref) is not None and states[job.job_ref].active:
                    continue
                if job.job_ref is None:
                    found = scheduler.find(name)  # submitted just before a crash, never recorded
                    if found is not None:
                        self.store.mark_job_running(job.id, found)
                        continue
                    if not (wd / "result.json").is_file() and not job_started(wd):
                        script = prepare_job(dft, atoms_from_json(job.atoms_json), wd, batch, attempt)
                        ref = scheduler.submit(script, wd, name)
                        self.store.mark_job_running(job.id, ref)
                        log.info("  DFT %s submitted as job %s", job.hash[:10], ref)
                        continue
                self._collect_batch(job, wd, attempt, collect_job, prepare_job)
            self._sleep(batch.poll_interval_s)

    def _collect_batch(self, job: DFTJob, wd: Path, attempt: int, collect_job: Any, prepare_job: Any) -> None:
        from alloop.errors import LabelError

        dft = self.c.labels.dft
        try:
            result = collect_job(dft, wd)
        except LabelError as err:
            if err.retryable and job.attempts + 1 < dft.max_attempts:
                # resubmit as it is (cancelled, or died before the code ran): fresh inputs first, so a crash
                # right after leaves a work directory that reads as "never started"
                prepare_job(dft, atoms_from_json(job.atoms_json), wd, dft.batch, attempt + 100)
            self._record_failure(job, err.reason, err.retryable)
            return
        if result is None:
            log.info("  DFT %s corrected (%s); resubmitting", job.hash[:10], wd / "corrections.json")
            self.store.release_job(job.id)
            return
        self.store.complete_dft_job(job.id, result.source, result.energy, result.forces, result.stress, result.meta)
        log.info("  DFT %s done (E = %.4f eV)", job.hash[:10], result.energy)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise StopRequested

    def _failure_report(self, idx: int) -> str:
        jobs = self.store.dft_jobs(self.cid, idx, statuses=("done", "quarantined"))
        bad = [j for j in jobs if j.status == "quarantined"]
        return (
            f"iteration {idx}: {len(bad)} of {len(jobs)} DFT calculations failed, more than the allowed "
            f"{self.c.labels.dft.max_failed_fraction:.0%}; see the event log (`alloop status`) and the work "
            f"directories under {self.workdir / 'dft'}"
        )

    # ------------------------------------------------------------------ train
    def train(self, idx: int) -> None:
        from alloop.label.reference import apply_offsets, fit_element_offsets

        rows = self.store.training_rows(self.cid, self.energy_member)
        structures = [atoms_from_json(r.atoms_json) for r in rows]
        comps = [_composition(a) for a in structures]
        # DFT energies sit on another reference than the uMLIP labels: map them onto the uMLIP scale with
        # per-element offsets fitted on the configurations that have both.
        pairs = [(k, r) for k, r in enumerate(rows) if r.source == "dft" and r.reference_energy is not None]
        offsets: dict[str, float] = {}
        if pairs and any(r.source == "umlip" for r in rows):
            offsets = fit_element_offsets([comps[k] for k, _ in pairs], np.array([r.energy for _, r in pairs]), np.array([r.reference_energy for _, r in pairs]))
        energies = np.array([r.energy for r in rows])
        corrected = np.array(
            [apply_offsets(comps[k], energies[k], offsets) if r.source == "dft" and offsets else energies[k] for k, r in enumerate(rows)]
        )
        frame = pd.DataFrame(
            {
                "ase_atoms": structures,
                "energy": energies,
                "forces": [r.forces for r in rows],
                "energy_corrected": corrected,
                "source": [r.source for r in rows],
            }
        )
        fitdir = self.workdir / f"iter_{idx:03d}" / "fit"
        log.info("iteration %d: fitting ACE on %d configurations (%d DFT, %d uMLIP)", idx, len(rows), sum(r.source == "dft" for r in rows), sum(r.source == "umlip" for r in rows))
        fut = self.client.submit(tasks.fit_task, frame, self.c.train, str(fitdir), list(self.c.elements), pure=False, key=f"fit-{idx}-{time.time_ns()}")
        try:
            ((_, res),) = list(_as_completed([fut], self._stop))
        except FitError as exc:
            # a fit that cannot succeed (unusable data, diverged, a missing pacemaker) would fail the same way
            # on every retry: stop with the reason, recorded on the iteration, rather than loop
            msg = f"iteration {idx}: fit failed: {exc}"
            self.store.set_stage(self.cid, idx, "failed", msg)
            self.store.finish_campaign(self.cid, "failed", msg)
            raise IterationFailed(msg) from exc
        self._check_stop()
        self.store.save_potential(self.cid, idx, res["potential"], res["active_set"], len(rows), res["metrics"], {"dft_to_umlip_eV_per_atom": offsets})
        log.info("iteration %d: potential %s (%s)", idx, res["potential"], _fmt_metrics(res["metrics"]))

    # ------------------------------------------------------------------ evaluate and converge
    def evaluate(self, idx: int) -> Outcome | None:
        pot = self.store.latest_potential(self.cid)
        assert pot is not None
        conv = self.c.convergence
        pool = self._candidate_pool(idx, _STREAM_EVAL, n_max=conv.n_candidates)
        ok = []
        for a in pool:
            try:
                validate_atoms(a, self.c.selection.min_distance)
                ok.append(a)
            except UnphysicalStructureError:
                continue
        fut = self.client.submit(tasks.gamma_task, pot["path"], pot["active_set"], [atoms_to_json(a) for a in ok], pure=False, key=f"gamma-{idx}-{time.time_ns()}")
        ((_, gmax),) = list(_as_completed([fut], self._stop))
        stats = {
            "mean": float(np.mean(gmax)) if len(gmax) else 0.0,
            "median": float(np.median(gmax)) if len(gmax) else 0.0,
            "p90": float(np.quantile(gmax, 0.9)) if len(gmax) else 0.0,
            "max": float(np.max(gmax)) if len(gmax) else 0.0,
        }
        share = float(np.mean(gmax > conv.gamma_threshold)) if len(gmax) else 0.0
        history = [h["share_above"] for h in self.store.gamma_history(self.cid) if h["iteration_idx"] < idx] + [share]
        converged = len(history) >= conv.patience and all(s < conv.target_share for s in history[-conv.patience :])
        last = idx + 1 >= self.c.max_iterations
        self.store.save_gamma_eval(self.cid, idx, gmax, conv.gamma_threshold, stats, next_stage="done")
        log.info("iteration %d: %.1f%% of %d fresh candidates above γ = %g (target < %.1f%%); median γ %.2f, max %.2f",
                 idx, 100 * share, len(gmax), conv.gamma_threshold, 100 * conv.target_share, stats["median"], stats["max"])
        if converged:
            msg = f"converged after iteration {idx}: {share:.1%} of fresh candidates above γ={conv.gamma_threshold:g} (< {conv.target_share:.1%} for {conv.patience} iteration(s)); potential: {pot['path']}"
            self.store.finish_campaign(self.cid, "converged", msg)
            return Outcome("converged", msg, pot["path"])
        if last:
            msg = f"stopped at max_iterations={self.c.max_iterations} without convergence ({share:.1%} above γ={conv.gamma_threshold:g}); potential: {pot['path']}"
            self.store.finish_campaign(self.cid, "max_iterations", msg)
            return Outcome("max_iterations", msg, pot["path"])
        return None


# ---------------------------------------------------------------------- helpers
def _new_config(atoms: Atoms, h: str, status: str = "selected", reason: str | None = None) -> NewConfiguration:
    kind = str(atoms.info.get("kind", "unknown"))
    return NewConfiguration(h, kind, len(atoms), atoms.get_chemical_formula(), atoms_to_json(atoms), status, reason)


def _composition(atoms: Atoms) -> dict[str, int]:
    syms, counts = np.unique(atoms.get_chemical_symbols(), return_counts=True)
    return {str(s): int(n) for s, n in zip(syms, counts)}


def _member_of(key: str, members: Sequence[str]) -> str:
    # keys are "predict-<member>-<iteration>-<start>-<ns>"; member names may themselves contain '-'
    body = key[len("predict-") :]
    for m in sorted(members, key=len, reverse=True):
        if body.startswith(m + "-"):
            return m
    raise AlloopError(f"task key {key!r} names no ensemble member")


def _fmt_metrics(m: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)]
    return ", ".join(parts[:6])


def _as_completed(futures: list[Any], stop: threading.Event):  # type: ignore[no-untyped-def]
    """Yield (future, result) as tasks finish; on a stop request, yield nothing more (the caller has
    committed everything yielded so far)."""
    from distributed import as_completed

    if not futures:
        return
    ac = as_completed(futures, with_results=False)
    for fut in ac:
        if stop.is_set():
            return
        yield fut, fut.result()
