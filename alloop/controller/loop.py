"""The active-learning loop: generate → select → score (U) → route → label → fit → grade → converge?

Every stage reads what it needs from the database and commits its result before the next begins, so
`run` after a crash, kill or walltime picks up at the last committed transition. Work runs as Dask
tasks; each result is committed the moment it arrives, so a killed run loses at most the tasks in flight,
and those are idempotent (DFT and fits reuse finished work directories).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alloop.config import Campaign, keep_stored_values
from alloop.cluster import revive_workers
from alloop.cluster.deaths import WorkerDeaths, death_reason
from alloop.controller import tasks
from alloop.ensemble.placement import size_batches
from alloop.errors import AlloopError, CampaignChangedError, DiskFullError, disk_problem
from alloop.explore.convergence import judge
from alloop.explore.pool import CandidatePool
from alloop.generate.calibration import KIND as KIND_CALIBRATION
from alloop.state import DFTJob, NewConfiguration, Prediction, Routing, Store
from alloop.state.lock import ControllerLock
from alloop.structures import atoms_from_json, atoms_to_json, config_hash, fresh_candidates, physical_or_reason

log = logging.getLogger("alloop")

# Random streams: each (seed, iteration, purpose) has its own generator, so a resumed run regenerates
# exactly the candidates the interrupted one had.
STREAM_POOL, _STREAM_SELECT, STREAM_CALIBRATION = 1, 3, 5
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
    def __init__(
        self, campaign: Campaign, store: Store, client: Any, ensemble_client: Any = None, *,
        accept_changes: bool = False, retry: bool = False, stop: threading.Event | None = None,
    ) -> None:
        """`client` runs DFT, fits and γ; `ensemble_client` (default: the same) runs uMLIP inference.
        `accept_changes`: record campaign-file changes that contradict the database instead of refusing them;
        `retry`: resume a failed iteration at the stage it failed in; `stop`: an event that requests a stop
        (set by a signal that arrived before the controller ran)."""
        from alloop.ensemble import label_members, resolve_ensemble

        self.store = store
        self.cid = store.open_campaign(campaign.name, campaign.model_dump_json())
        # before anything reads the settings: a binding default changed by a newer alloop keeps its stored value
        self.c, self._kept = keep_stored_values(store.stored_config(self.cid), campaign)
        self.client = client
        self.ensemble_client = client if ensemble_client is None else ensemble_client
        self.ensemble = resolve_ensemble(self.c.ensemble)
        self.members = [m.name for m in self.ensemble.members]
        self.energy_member, self.force_member = label_members(self.ensemble, self.c.labels.energy_member,
                                                              self.c.labels.force_member)
        self.workdir = Path(self.c.workdir)
        self._stop = stop if stop is not None else threading.Event()
        self._deaths = WorkerDeaths()
        self._accept_changes = accept_changes
        self._retry = retry
        self._isolated: tuple[dict[str, float] | None] | None = None  # the energy member's isolated atoms, once asked

    # ------------------------------------------------------------------ driver
    def request_stop(self) -> None:
        self._stop.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StopRequested

    def run(self) -> Outcome:
        """Drive the campaign until it ends, fails or is asked to stop (the `stop` event: `alloop run` sets it on
        SIGTERM/SIGINT, alloop.cli.run.stop_on_signals being the one place signals are taken)."""
        try:
            with ControllerLock(self.store, self.cid), self._deaths.watching():
                return self._run()
        except IterationFailed as exc:
            return Outcome("failed", str(exc), self._potential_path())
        except StopRequested:
            log.warning("stop requested: the current transaction is committed, running DFT is left to finish")
            self.store.log_event(self.cid, None, "warning", "campaign", "stopped on request; `alloop run` resumes")
            return Outcome("stopped", "stopped on request; run `alloop run` again to resume", self._potential_path())

    def _reconcile_config(self) -> None:
        """Compare the campaign file with the one the database was run with: apply what only steers the
        future, refuse (unless accepted) what contradicts the stored labels, U and routes."""
        from alloop.config import config_changes

        self._reconcile_files()
        for ch in self._kept:
            message = (f"{ch.field}: this alloop's default is {ch.new!r}, but the campaign was run with {ch.old!r} and its "
                       "file does not set the key, so it keeps that value (what the database holds was made with it; "
                       "write the key in the campaign file to change it)")
            log.info("%s", message)
            self.store.log_event_once(self.cid, "warning", "config", message)
        changes = config_changes(self.store.stored_config(self.cid), self.c)
        if not changes:
            return
        for ch in changes:
            if ch.default_changed and not ch.binding:
                log.warning("default changed: %s: %r -> %r in this alloop; the campaign file does not set it, so the "
                            "new value applies (it only steers what is still to come)", ch.field, ch.old, ch.new)
            else:
                log.warning("campaign file changed: %s: %r -> %r%s", ch.field, ch.old, ch.new,
                            " (contradicts what the database holds)" if ch.binding else "")
        binding = [ch for ch in changes if ch.binding]
        if binding and not self._accept_changes:
            raise CampaignChangedError(
                f"the campaign file changes {', '.join(ch.field for ch in binding)} since the last run, but the "
                f"configurations, labels and U in {self.store.path} were made with the old values. Restore them, "
                "start a new campaign (another workdir or database), or run again with --accept-changes to keep "
                "the stored results and use the new values from now on (recorded as an event)"
            )
        self.store.apply_config(self.cid, self.c.model_dump_json(), [ch.model_dump(mode="json") for ch in changes], bool(binding))

    def _reconcile_files(self) -> None:
        """Compare the contents of the files the campaign refers to (ensemble file, checkpoints, replay and source
        data: alloop.fingerprints) with their fingerprints from the last run: a changed one is refused like a binding
        change of the campaign file, unless --accept-changes (then recorded as an event)."""
        from alloop.fingerprints import campaign_files, changed_files, describe

        current, changed = changed_files(self.store.file_fingerprints(self.cid), campaign_files(self.c, self.ensemble))
        for old, new in changed:
            log.warning("campaign file changed: %s", describe(old, new))
        if changed and not self._accept_changes:
            raise CampaignChangedError(
                "files the campaign refers to changed since the last run: " + "; ".join(describe(o, n) for o, n in changed)
                + f". The configurations, labels and U in {self.store.path} were made with the old contents. Restore them, "
                "start a new campaign (another workdir or database), or run again with --accept-changes to keep the stored "
                "results and use the new contents from now on (recorded as an event)")
        self.store.save_file_fingerprints(self.cid, current, changed, bool(changed))

    def _run(self) -> Outcome:
        self._reconcile_config()
        row = self.store.campaign(self.c.name)
        current = self.store.current_iteration(self.cid)
        if row["status"] == "max_iterations" and current is not None and current[0] + 1 < self.c.max_iterations:
            self.store.reopen_campaign(self.cid, f"max_iterations raised to {self.c.max_iterations}: continuing after iteration {current[0]}")
            log.info("max_iterations raised to %d: continuing after iteration %d", self.c.max_iterations, current[0])
        elif row["status"] in ("converged", "max_iterations"):
            return Outcome(row["status"], row["message"] or row["status"], self._potential_path())
        if current is not None and current[1] == "failed" and self._retry:
            stage = self.store.retry_iteration(self.cid, current[0])
            log.warning("retrying iteration %d from stage %s", current[0], stage)
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
                    self.store.fail_iteration(self.cid, idx, "label", msg)
                    return Outcome("failed", msg, self._potential_path())
            elif stage == "train":
                self.train(idx)
            elif stage == "evaluate":
                finished = self.evaluate(idx)
                self._rebuild_report()
                if finished is not None:
                    return finished
                if self.store.current_iteration(self.cid)[1] != "final":  # type: ignore[index]
                    idx, _ = self._next_iteration(idx)
            elif stage == "final":
                return self.final(idx)
            elif stage == "failed":
                row = self.store.campaign(self.c.name)
                return Outcome("failed", row["message"] or "iteration failed", self._potential_path())
            else:
                raise AlloopError(f"unknown stage {stage!r} in the database")

    def _rebuild_report(self) -> None:
        """The campaign's page in <workdir>/report, after every iteration (it reads the database only)."""
        from alloop.report import build_report

        try:
            path = build_report(self.store.path, self.workdir / "report")
        except Exception as exc:  # drawing must never stop the campaign
            log.warning("report not rebuilt (%s: %s)", type(exc).__name__, exc)
        else:
            log.info("report: %s", path)

    def _next_iteration(self, idx: int) -> tuple[int, str]:
        self.store.start_iteration(self.cid, idx + 1)
        return idx + 1, "generate"

    def _potential_path(self) -> str | None:
        final = self.store.final_potential(self.cid)
        if final is not None and final["path"] is not None:
            return str(final["path"])
        pot = self.store.latest_potential(self.cid)
        return None if pot is None else pot["path"]

    # ------------------------------------------------------------------ generate + select
    def _candidate_pool(self, idx: int, stream: int, n_max: int | None = None, sources: bool = False) -> CandidatePool:
        pot = self.store.latest_potential(self.cid, before_idx=idx + 1)
        potential = None if pot is None else (pot["path"], pot["active_set"])
        starts = None
        if potential is not None and self.c.explore is not None:
            starts = self._relaxed_starts(idx, stream)
        fut = self.client.submit(tasks.pool_task, list(self.c.elements), self.c.generate, self.c.explore, potential, self.c.seed,
                                 idx, stream, n_max, sources, self.c.train, starts, pure=False, key=f"pool-{idx}-{stream}-{time.time_ns()}")
        return self._result(idx, "generate", fut, "candidate generation")

    def _relaxed_starts(self, idx: int, stream: int) -> list[Atoms]:
        """The MD's starting cells (alloop.explore.pool.exploration_starts), the defect ones (generate.relax.kinds)
        relaxed by the label member as the motifs are; one that will not relax starts as built, with a warning."""
        from alloop.explore.pool import exploration_starts

        assert self.c.explore is not None
        starts = exploration_starts(self.c.elements, self.c.generate, self.c.explore, self.c.seed, idx, stream)
        for k, (relaxed, record) in self._relax_by_label_member(starts, "MD starts", "relaxation of the MD starts").items():
            if relaxed is None:
                log.warning("iteration %d: the %s MD start stays as built: %s", idx, starts[k].info.get("kind"), record)
                continue
            starts[k] = relaxed
        return starts

    def _result(self, idx: int, stage: str, fut: Any, what: str) -> Any:
        """The result of one task of `stage`; a stop request ends the wait, a task that cannot succeed fails
        the iteration with its reason."""
        try:
            return _only_result([fut], self._stop, what, self._deaths)
        except Exception as exc:
            disk = disk_problem(exc)
            if disk is not None:  # not the task's fault: the campaign stops and resumes as it is, not failed
                raise DiskFullError(f"the {what}", disk, self.workdir) from exc
            if not isinstance(exc, AlloopError):
                raise
            self._fail(idx, stage, f"iteration {idx}: {what} failed: {exc}", exc)

    def _calibration(self, idx: int) -> list[Atoms]:
        """Energy-reference calibration cells, labelled by DFT in the first iteration (see label.reference)."""
        from alloop.generate.calibration import iteration_calibration

        return iteration_calibration(self.c.elements, self.c.generate, self.c.labels.energy_reference, idx, self.c.seed,
                                     STREAM_CALIBRATION)

    def _iteration_pool(self, idx: int) -> CandidatePool:
        """Iteration `idx`'s candidates: the pool the previous evaluation drew and stored (its MD ran once, with the
        potential this iteration explores with), else drawn now (iteration 0, or a campaign begun before pools
        were stored)."""
        stored = self.store.candidate_pool(self.cid, idx)
        if stored is not None:
            return CandidatePool.from_json(stored)
        return self._candidate_pool(idx, STREAM_POOL, sources=True)

    def generate(self, idx: int) -> None:
        t0 = time.time()
        pool = self._iteration_pool(idx)
        ex = pool.exploration
        if ex is not None:
            msg = (f"exploration at {ex.temperature:g} K: {ex.window} MD frames in the trust window, {ex.above} above it "
                   f"(counted, not labelled), {ex.halted} of {ex.trajectories} trajectories stopped at γ_halt")
            log.info("iteration %d: %s", idx, msg)
            self.store.log_event(self.cid, idx, "info", "explore", msg, data=asdict(ex))
        calibration = self._calibration(idx)
        known = self.store.known_hashes(self.cid)
        new = fresh_candidates(calibration + pool.candidates, known, self.c.selection.min_distance)
        fresh = new.physical
        rejected = [_new_config(atoms, h, "failed", why) for h, atoms, why in new.rejected]
        # calibration cells are always labelled; the budget and max volume apply to the candidates
        n_cal = sum(a.info.get("kind") == KIND_CALIBRATION for _, a in fresh)
        chosen = list(range(n_cal)) + [n_cal + i for i in self._select(idx, [a for _, a in fresh[n_cal:]])]
        picked, failed = self._relaxed([fresh[i] for i in chosen], known | new.hashes)
        selected = [_new_config(a, h) for h, a in picked]
        rejected += failed
        n = self.store.commit_selection(self.cid, idx, selected + rejected)
        log.info(
            "iteration %d: %d candidates, %d selected%s, %d rejected as unphysical (%.1f s)",
            idx, len(pool.candidates), n - len(rejected) - n_cal, f" (+{n_cal} energy-reference calibration cells)" if n_cal else "",
            len(rejected), time.time() - t0,
        )

    def _relaxed(self, chosen: list[tuple[str, Atoms]], taken: set[str]) -> tuple[list[tuple[str, Atoms]], list[NewConfiguration]]:
        """The chosen candidates with their defect motifs (generate.relax.kinds) relaxed by the label member and
        perturbed; those that would not relax come back as rejected configurations with the reason. Where the
        member cannot relax anything (a replayed one), the motifs stay as built, and the log says so."""
        relaxed_by = self._relax_by_label_member([a for _, a in chosen], "selected defect motifs", "motif relaxation")
        if not relaxed_by:
            return chosen, []
        out: list[tuple[str, Atoms] | None] = list(chosen)
        failed, steps = [], []
        for k, (relaxed, record) in relaxed_by.items():
            h, built = chosen[k]
            if relaxed is None:
                failed.append(_new_config(built, h, "failed", str(record)))
                out[k] = None
                continue
            relaxed.info["source"] = {"relaxed": record}  # stored as the configuration's provenance
            steps.append(record["steps"])
            h2 = config_hash(relaxed)
            out[k] = None if h2 in taken else (h2, relaxed)
        log.info("%d defect motifs relaxed by %s (%s FIRE steps), %d rejected", len(steps), self.energy_member,
                 f"{min(steps)}-{max(steps)}" if steps else "no", len(failed))
        return [c for c in out if c is not None], failed

    def _relax_by_label_member(self, structures: Sequence[Atoms], what: str, task: str) -> dict[int, tuple[Atoms | None, Any]]:
        """The structures of generate.relax.kinds relaxed by the label member (tasks.relax_task), by index: (the relaxed
        structure, with the built one's info, and its record) or (None, why it was rejected). Empty where none is of those kinds, or where the
        member cannot relax anything (a replayed one): they stay as built, and the log says so."""
        s = self.c.generate.relax
        which = [k for k, a in enumerate(structures) if s.enabled and a.info.get("kind") in s.kinds]
        if not which:
            return {}
        fut = self.ensemble_client.submit(tasks.relax_task, self.ensemble.member(self.energy_member), [atoms_to_json(structures[k]) for k in which],
                                          s, self.c.selection.min_distance, pure=False, key=f"relax-{time.time_ns()}")
        results, exc = _optional_result(fut, self._stop, task, self._deaths)
        if exc is not None:
            log.warning("the %d %s stay unrelaxed: %s cannot relax them (%s: %s)", len(which), what, self.energy_member,
                        type(exc).__name__, exc)
            return {}
        out: dict[int, tuple[Atoms | None, Any]] = {}
        for k, (geometry, record) in zip(which, results):
            relaxed = None if geometry is None else atoms_from_json(geometry)
            if relaxed is not None:
                relaxed.info.update(structures[k].info)
            out[k] = (relaxed, record)
        return out

    def _select(self, idx: int, structures: list[Atoms]) -> list[int]:
        budget = self.c.selection.budget
        if len(structures) <= budget:
            return list(range(len(structures)))
        # before the first fit, MaxVol measures novelty against the untrained basis of the campaign's shape
        # (and a seeded draw fills the budget: train.select.select_for_labelling)
        pot = self.store.latest_potential(self.cid, before_idx=idx)
        fut = self.client.submit(tasks.select_task, structures, budget, None if pot is None else pot["path"],
                                 None if pot is None else pot["active_set"], list(self.c.elements),
                                 self.c.train, [self.c.seed, idx, _STREAM_SELECT], pure=False, key=f"select-{idx}-{time.time_ns()}")
        return sorted(self._result(idx, "generate", fut, "max-volume selection"))

    # ------------------------------------------------------------------ score and route
    def score(self, idx: int) -> None:
        configs = self.store.configurations(self.cid, idx, status="selected")
        ids = [c.id for c in configs]
        atoms_json = {c.id: c.atoms_json for c in configs}
        missing = self.store.missing_predictions(ids, self.members)
        specs = {m.name: m for m in self.ensemble.members}
        n_atoms = {c.id: c.n_atoms for c in configs}
        batches: list[tuple[str, list[tuple[int, str]]]] = []
        for member, todo in missing.items():
            # Tasks of similar-sized configurations and similar total atoms, so workers finish together.
            for group in size_batches([n_atoms[i] for i in todo], _TASK_STRUCTURES, _TASK_ATOMS):
                batches.append((member, [(todo[j], atoms_json[todo[j]]) for j in group]))
        total = sum(len(v) for v in missing.values())
        if total:
            log.info("iteration %d: scoring %d configurations with %d members (%d predictions to make)", idx, len(ids), len(self.members), total)
        done, t0 = 0, time.time()
        batch_errors: dict[str, tuple[str, int]] = {}  # member -> (why it could not run on a whole batch, configurations lost)
        attempts: dict[tuple[str, int], int] = {}  # (member, first configuration of the batch) -> tries whose worker died
        max_attempts = self.c.guard.predict_attempts
        round_no = 0
        while batches:
            futures = {}
            for k, (member, items) in enumerate(batches):
                fut = self.ensemble_client.submit(tasks.predict_task, specs[member], items, pure=False,
                                                  key=f"predict-{member}-{idx}-{round_no}-{k}-{time.time_ns()}")
                futures[fut.key] = (fut, member, items)
            batches, round_no = [], round_no + 1
            for fut, rows in _as_completed([f for f, _, _ in futures.values()], self._stop):
                _, member, items = futures[fut.key]
                if isinstance(rows, Exception):  # the worker died on this batch as often as Dask retries: one attempt
                    reason = death_reason(f"{member}'s predictions", rows, self._deaths, t0)
                    n = attempts[(member, items[0][0])] = attempts.get((member, items[0][0]), 0) + 1
                    self.store.log_event(self.cid, idx, "warning", "predict",
                                         f"iteration {idx}: {member}'s prediction batch of {len(items)} configurations, "
                                         f"attempt {n} of {max_attempts} failed: {reason}")
                    log.warning("  %s: prediction batch of %d configurations, attempt %d of %d failed: %s", member, len(items), n,
                                max_attempts, reason)
                    if n < max_attempts:
                        batches.append((member, items))
                    else:
                        _lost(batch_errors, member, f"{reason} ({n} attempts)", len(items))
                    continue
                if isinstance(rows, tasks.MemberFailed):  # it could not run at all: nothing stored, the iteration stops below
                    _lost(batch_errors, member, rows.error, len(items))
                    log.error("  %s could not run on a batch of %d configurations: %s", member, len(items), rows.error)
                    continue
                self.store.save_predictions([Prediction(cid, member, e, f, err) for cid, e, f, err in rows])
                done += len(rows)
                log.info("  predictions %d/%d (%s: %d configurations, %.0f s since scoring began)", done, total, member,
                         len(rows), time.time() - t0)
            self._check_stop()
        self._check_stop()
        self._check_members(idx, configs, batch_errors)
        self._route(idx, configs)

    def _check_members(self, idx: int, configs: Sequence[Any], batch_errors: dict[str, tuple[str, int]]) -> None:
        """Fail the iteration, before any DFT is submitted, when a member whose predictions U or the uMLIP labels need
        could not run (alloop.ensemble.routing.failing_members decides); `alloop run --retry` asks it again."""
        from alloop.ensemble.routing import failing_members

        if not configs:
            return
        stored = self.store.predictions([c.id for c in configs], self.members)
        errors = {m: {k: p.error for k, c in enumerate(configs) if (p := stored.get((c.id, m))) is not None and p.error}
                  for m in self.members}
        watched = list(dict.fromkeys([m.name for m in self.ensemble.u_members] + [self.energy_member, self.force_member]))
        share = self.c.guard.max_member_failure_share
        failures = failing_members(errors, len(configs), watched, share, batch_errors)
        if failures:
            msg = (f"iteration {idx}: " + "; ".join(f.describe() for f in failures)
                   + f". Stopped before any DFT was submitted (guard.max_member_failure_share = {share:.0%})")
            self._fail(idx, "score", msg, AlloopError(msg))

    def _route(self, idx: int, configs: Sequence[Any]) -> None:
        from alloop.ensemble.results import stacked_predictions
        from alloop.ensemble.routing import dft_by_kind

        if not configs:  # nothing new this iteration (every candidate known or rejected): straight on to labelling
            self.store.commit_routing(self.cid, idx, [], self.c.uncertainty.variant, self.c.uncertainty.u_c,
                                      [m.name for m in self.ensemble.u_members], self.c.labels.dft.backend)
            log.info("iteration %d: no new configuration to route", idx)
            return
        stored = self.store.predictions([c.id for c in configs], self.members)
        per_member = {m: stacked_predictions(m, [c.n_atoms for c in configs],
                                             [None if (p := stored.get((c.id, m))) is None else (p.energy, p.forces, p.error) for c in configs])
                      for m in self.members}
        fut = self.client.submit(
            tasks.route_task, self.ensemble, per_member, np.array([c.n_atoms for c in configs], dtype=np.int64),
            self.c.uncertainty.u_c, self.c.uncertainty.variant, self.energy_member, self.force_member,
            dft_by_kind([c.kind for c in configs], self.c.uncertainty.dft_kinds, KIND_CALIBRATION), self.c.selection.dft_max_atoms,
            self.c.selection.dft_budget_atoms, pure=False, key=f"route-{idx}-{time.time_ns()}")
        decision = self._result(idx, "score", fut, "U and routing")
        u_c = self.c.uncertainty.u_c
        self._check_spending(idx, decision)
        u = decision.u
        routings: list[Routing] = []
        for k, c in enumerate(configs):
            if decision.to_umlip[k]:
                routings.append(Routing(c.id, u[0][k], u[1][k], u[2][k], "umlip", float(decision.energies[k]), decision.forces[k],
                                        f"{self.energy_member}|{self.force_member}"))
            elif decision.skipped(k):
                routings.append(Routing(c.id, u[0][k], u[1][k], u[2][k], "none", reason=decision.reasons[k]))
            else:
                routings.append(Routing(c.id, u[0][k], u[1][k], u[2][k], "dft", dft_workdir=self._dft_dir(c.hash), reason=decision.reasons[k]))
        self.store.commit_routing(self.cid, idx, routings, self.c.uncertainty.variant, u_c, [m.name for m in self.ensemble.u_members], self.c.labels.dft.backend)
        n_dft, n_none = sum(r.route == "dft" for r in routings), sum(r.route == "none" for r in routings)
        log.info("iteration %d: %d configurations → uMLIP labels, %d → DFT (U_c = %g eV/Å)%s", idx, len(routings) - n_dft - n_none, n_dft,
                 u_c, f", {n_none} left unlabelled (selection.dft_max_atoms or dft_budget_atoms; `alloop status` gives each reason)" if n_none else "")

    def _check_spending(self, idx: int, decision: Any) -> None:
        """Fail the iteration, before any DFT is submitted, when too much of it would go to DFT for want of U
        (alloop.ensemble.routing.spending_stop decides)."""
        from alloop.ensemble.routing import spending_stop

        why = spending_stop(decision, self.c.uncertainty.u_c, self.c.uncertainty.variant, self.c.guard.max_dft_share_without_u)
        if why is not None:
            msg = f"iteration {idx}: {why}. Stopped before any DFT was submitted"
            self._fail(idx, "score", msg, AlloopError(msg))

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
            futures, t0 = [], time.time()
            for job in jobs:
                self.store.mark_job_running(job.id)
                fut = self.client.submit(tasks.dft_task, dft, job.atoms_json, job.workdir, pure=False, key=f"dft-{job.id}-{job.attempts}-{time.time_ns()}")
                futures.append((fut, job))
            by_key = {f.key: j for f, j in futures}
            for fut, res in _as_completed([f for f, _ in futures], self._stop):
                job = by_key[fut.key]
                if isinstance(res, Exception):  # its worker died (OOM, segfault, walltime) on every try
                    self._record_failure(job, death_reason("this calculation", res, self._deaths, t0), True)
                elif res["ok"]:
                    self.store.complete_dft_job(job.id, res["backend"], res["energy"], res["forces"], res["stress"], res["meta"])
                    log.info("  DFT %s done (E = %.4f eV)", job.hash[:10], res["energy"])
                elif res.get("disk_full"):
                    raise DiskFullError(f"DFT calculation {job.hash[:10]}", res["disk_full"], self.workdir)
                else:
                    self._record_failure(job, res["reason"], res.get("retryable", True))
            self._check_stop()

    def _label_batch(self, idx: int) -> None:
        """Each calculation is its own batch job; the database keeps its id, so a restarted controller
        re-attaches to queued and running jobs instead of submitting them again."""
        from alloop.cluster.batch import make_scheduler
        from alloop.label.batch import attempt_number, collect_job, job_name, job_started, prepare_job

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
                attempt = attempt_number(job.attempts, len(job.corrections))
                name = job_name(wd, attempt)
                if job.job_ref is not None and states.get(job.job_ref) is not None and states[job.job_ref].active:
                    continue
                if job.job_ref is None:
                    found = scheduler.find(name)  # submitted just before a crash, never recorded
                    if found is not None:
                        self.store.mark_job_running(job.id, found)
                        continue
                    if not (wd / "result.json").is_file() and not job_started(wd):
                        script = prepare_job(dft, atoms_from_json(job.atoms_json), wd, batch, attempt, job.corrections)
                        ref = scheduler.submit(script, wd, name)
                        self.store.mark_job_running(job.id, ref)
                        log.info("  DFT %s submitted as job %s", job.hash[:10], ref)
                        continue
                self._collect_batch(job, wd, attempt, collect_job, prepare_job)
            self._sleep(batch.poll_interval_s)

    def _collect_batch(self, job: DFTJob, wd: Path, attempt: int, collect_job: Any, prepare_job: Any) -> None:
        from alloop.errors import LabelError

        dft = self.c.labels.dft
        corrections = job.corrections  # the database's list: a lost or damaged corrections.json changes nothing
        try:
            result = collect_job(dft, wd, corrections)
        except LabelError as err:
            if err.retryable and job.attempts + 1 < dft.max_attempts:
                # resubmit as it is (cancelled, or died before the code ran): fresh inputs first, so a crash
                # right after leaves a work directory that reads as "never started"
                prepare_job(dft, atoms_from_json(job.atoms_json), wd, dft.batch, attempt + 100, corrections)
            self._record_failure(job, err.reason, err.retryable)
            return
        if result is None:
            log.info("  DFT %s corrected (%s); resubmitting", job.hash[:10], corrections[-1]["handler"])
            self.store.release_job(job.id, corrections)
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
            f"directories under {self.workdir / 'dft'}; fix the cause, then `alloop run --retry`"
        )

    # ------------------------------------------------------------------ train
    def _training_frame(self, idx: int) -> tuple[Sequence[Any], Any, Any]:
        """The labelled configurations, the fit's frame (labels on one energy scale) and the energy reference."""
        from alloop.label.mixing import label_frame

        rows = self.store.training_rows(self.cid, self.energy_member)
        structures = [atoms_from_json(r.atoms_json) for r in rows]
        reference = self._energy_reference(idx, rows)
        is_dft = np.array([r.source == "dft" for r in rows], dtype=bool)
        frame = label_frame(structures, np.array([r.energy for r in rows]), [r.forces for r in rows], is_dft, reference)
        frame["kind"] = [r.kind for r in rows]
        return rows, frame, reference

    def _fit(self, idx: int, stage: str, frame: Any, settings: Any, fitdir: Path, warm_from: str | None) -> dict[str, Any]:
        """One pacemaker fit on the fit workers, then its scores on the external test sets."""
        isolated = self._isolated_energies(idx)
        fut = self.client.submit(tasks.fit_task, frame, settings, str(fitdir), list(self.c.elements), warm_from, isolated,
                                 pure=False, key=f"fit-{stage}-{idx}-{time.time_ns()}")
        # a fit that cannot succeed (unusable data, diverged, a missing pacemaker) would fail the same way on every
        # retry: the iteration stops with the reason rather than loop
        res: dict[str, Any] = self._result(idx, stage, fut, "fit" if stage == "train" else "final fit")
        self._check_stop()
        if self.c.train.test_sets:
            res["metrics"]["test_sets"] = self._score_test_sets(idx, res["potential"])
        return res

    def train(self, idx: int) -> None:
        rows, frame, reference = self._training_frame(idx)
        # the previous iteration's fit is the starting point (fit_ace decides whether its basis allows it)
        previous = self.store.latest_potential(self.cid, before_idx=idx)
        warm_from = None if previous is None else str(Path(previous["path"]).parents[1])
        log.info("iteration %d: fitting ACE on %d configurations (%d DFT, %d uMLIP)%s", idx, len(rows), sum(r.source == "dft" for r in rows),
                 sum(r.source == "umlip" for r in rows), "" if warm_from is None or not self.c.train.warm_start else f", starting from {previous['path']}")
        res = self._fit(idx, "train", frame, self.c.train, self.workdir / f"iter_{idx:03d}" / "fit", warm_from)
        self.store.save_potential(self.cid, idx, res["potential"], res["active_set"], len(rows), res["metrics"], reference.to_json())
        log.info("iteration %d: potential %s (%s; energies on the scale of %s)", idx, res["potential"], _fmt_metrics(res["metrics"]), reference.energy_scale)
        self._properties(idx, res["potential"])

    def _intact_potential(self, idx: int) -> dict[str, Any]:
        """Iteration `idx`'s potential as stored; refitted first when its files are gone or no longer what the fit
        wrote (a full disk, a copy cut short): the fit is redone from the database's labels, not loaded half."""
        from alloop.train import load_fit

        pot = self.store.latest_potential(self.cid)
        assert pot is not None and pot["iteration_idx"] == idx
        if load_fit(Path(pot["path"]).parents[1]) is None:
            msg = f"iteration {idx}: the potential {pot['path']} or its active set is missing or damaged: refitting"
            log.warning("%s", msg)
            self.store.log_event(self.cid, idx, "warning", "train", msg)
            self.train(idx)
            pot = self.store.latest_potential(self.cid)
            assert pot is not None
        return pot

    def final(self, idx: int) -> Outcome:
        """The campaign's final potential: the last iteration's, fitted on for train.final_maxiter more optimizer
        iterations on the same training data; stored, and the campaign ended with the outcome its last γ
        evaluation reached, in one transaction."""
        pending = self.store.final_potential(self.cid)
        pot = self._intact_potential(idx)
        assert pending is not None
        settings = self.c.train.final_fit()
        if settings is None:  # final_maxiter set to 0 while the final fit was pending: the last potential is the result
            path, active_set, n_train, metrics = pot["path"], pot["active_set"], pot["n_train"], json.loads(pot["metrics_json"])
            message = f"{pending['message']}; potential: {path}"
        else:
            rows, frame, _ = self._training_frame(idx)
            log.info("iteration %d: final fit, %d more optimizer iterations from %s on the same %d configurations", idx,
                     settings.warm_maxiter, pot["path"], len(rows))
            res = self._fit(idx, "final", frame, settings, self.workdir / "final" / "fit", str(Path(pot["path"]).parents[1]))
            path, active_set, n_train, metrics = res["potential"], res["active_set"], len(rows), res["metrics"]
            log.info("final potential %s (%s)", path, _fmt_metrics(metrics))
            self._properties(idx, path, subject="final")
            message = f"{pending['message']}; final potential ({settings.warm_maxiter} more optimizer iterations): {path}"
        self.store.finish_final(self.cid, idx, path, active_set, n_train, metrics, message)
        self._rebuild_report()
        return Outcome(pending["outcome"], message, path)

    def _score_test_sets(self, idx: int, potential: str) -> dict[str, Any]:
        """The new potential on each external test set (train.test_sets); a set that cannot be scored is logged
        and recorded with its reason, never the campaign's failure."""
        fut = self.client.submit(tasks.test_sets_task, potential, list(self.c.train.test_sets), pure=False, key=f"test-sets-{idx}-{time.time_ns()}")
        scores, exc = _optional_result(fut, self._stop, "test-set scoring", self._deaths)
        if exc is not None:
            log.warning("iteration %d: the test sets were not scored (%s: %s)", idx, type(exc).__name__, exc)
            return {"error": str(exc)}
        for name, m in scores.items():
            if "error" in m:
                log.warning("iteration %d: test set %s not scored: %s", idx, name, m["error"])
            else:
                log.info("iteration %d: on test set %s (%d structures) force RMSE %.3f eV/Å, energy RMSE %.1f meV/atom "
                         "(%.1f without the mean offset)", idx, name, m["n_structures"], m["force_rmse"], m["energy_rmse"],
                         m["energy_rmse_centered"])
        return scores

    def _isolated_energies(self, idx: int) -> dict[str, float] | None:
        """The energy member's isolated atoms, the fit's reference energies (train.reference_energy); None where the
        member cannot compute them (a replayed one) or the recipe fits absolute energies. Asked once per run: they
        depend on the member alone."""
        if self.c.train.reference_energy == "none":
            return None
        if self._isolated is None:
            self._isolated = (self._ask_isolated_energies(idx),)
        return self._isolated[0]

    def _ask_isolated_energies(self, idx: int) -> dict[str, float] | None:
        if self.ensemble.member(self.energy_member).replays:  # asked anyway, its worker would log a traceback
            log.info("iteration %d: %s replays stored predictions and knows no isolated atom; the fit uses absolute energies",
                     idx, self.energy_member)
            return None
        fut = self.ensemble_client.submit(tasks.isolated_atoms_task, self.ensemble.member(self.energy_member), list(self.c.elements),
                                          pure=False, key=f"isolated-{idx}-{time.time_ns()}")
        energies, exc = _optional_result(fut, self._stop, "isolated-atom energies", self._deaths)
        if exc is not None:
            log.info("iteration %d: %s gives no isolated-atom energies (%s); the fit uses absolute energies", idx, self.energy_member, exc)
            return None
        log.info("iteration %d: reference energies of the fit, %s's isolated atoms: %s eV", idx, self.energy_member,
                 {k: round(v, 4) for k, v in energies.items()})
        return energies

    def _properties(self, idx: int, potential: str, subject: str = "potential") -> None:
        """What the new potential predicts and, once per campaign, the teacher (the label member, on the ensemble's
        workers), into the property table. A property run that fails is logged; it never stops the campaign."""
        from alloop.properties.settings import fingerprint

        s = self.c.properties
        if not s.enabled:
            return
        fp = fingerprint(s)
        jobs = [(subject, idx, potential, potential, self.client)]
        if s.teacher:
            jobs.append(("teacher", None, self.energy_member, self.ensemble.member(self.energy_member), self.ensemble_client))
        for subject, it, name, target, client in jobs:
            if self.store.property_result(self.cid, subject, name, fp) is not None:
                continue
            fut = client.submit(tasks.properties_task, target, list(self.c.elements), s, pure=False, key=f"properties-{subject}-{idx}-{time.time_ns()}")
            result, exc = _optional_result(fut, self._stop, f"properties of the {subject}", self._deaths)
            if exc is not None:
                log.warning("iteration %d: properties of the %s %s not computed (%s: %s)", idx, subject, name, type(exc).__name__, exc)
                continue
            self.store.save_property_result(self.cid, subject, it, name, fp, result)
            log.info("iteration %d: properties of the %s %s in %.0f s", idx, subject, name, result["seconds"])

    def _energy_reference(self, idx: int, rows: Sequence[Any]) -> Any:
        """The DFT→uMLIP energy reference: fitted once from DFT-labelled configurations that the energy member
        also predicts well (U < U_c), never from the high-U ones, and frozen from then on."""
        from alloop.label.reference import EnergyReference

        stored = self.store.energy_reference(self.cid)
        if stored is not None:
            return EnergyReference.from_json(stored)
        dft = self.c.labels.dft
        fut = self.client.submit(
            tasks.reference_task, self.c.labels.energy_reference, self.energy_member, [r.atoms_json for r in rows],
            [r.source for r in rows], [r.energy for r in rows], [r.reference_energy for r in rows], [r.u for r in rows],
            self.c.uncertainty.u_c, list(self.c.elements), dft.backend, dft.replay if dft.backend == "replay" else None,
            pure=False, key=f"reference-{idx}-{time.time_ns()}")
        ref = self._result(idx, "train", fut, "energy reference")
        if ref.method == "fit" and ref.frozen:
            log.info("energy reference fitted on %d configurations with U < U_c: %s eV/atom, residual RMS %.4f eV/atom "
                     "(%d outliers); frozen from now on", ref.n_pairs, {k: round(v, 4) for k, v in ref.offsets.items()},
                     ref.residual_rms or 0.0, ref.n_outliers)
        return ref

    def _fail(self, idx: int, stage: str, msg: str, exc: Exception) -> None:
        msg += "; fix the cause, then `alloop run --retry`"
        self.store.fail_iteration(self.cid, idx, stage, msg)
        raise IterationFailed(msg) from exc  # the same words in the database and on the terminal

    # ------------------------------------------------------------------ evaluate and converge
    def evaluate(self, idx: int) -> Outcome | None:
        """Grade an unbiased sample with the new potential: the next iteration's exploration (MD at its stage, the
        frames every sample_interval steps whatever their γ) and its fresh motifs. That pool is stored with the
        verdict, and the next iteration labels from it: the MD runs once per iteration."""
        from alloop.explore.settings import ExploreSettings

        pot = self._intact_potential(idx)
        conv = self.c.convergence
        threshold = (self.c.explore or ExploreSettings()).stage_of(idx + 1).gamma_lo
        pool = self._candidate_pool(idx + 1, STREAM_POOL, sources=True)
        motifs = pool.motifs()
        ok = [a for a, why in zip(motifs, physical_or_reason(motifs, self.c.selection.min_distance)) if why is None]
        g_motifs = np.zeros(0)
        if ok:
            fut = self.client.submit(tasks.gamma_task, pot["path"], pot["active_set"], [atoms_to_json(a) for a in ok], pure=False, key=f"gamma-{idx}-{time.time_ns()}")
            g_motifs = np.asarray(self._result(idx, "evaluate", fut, "γ evaluation"), dtype=float)
        gmax = np.concatenate([pool.gamma_sample, g_motifs])
        verdict = judge(gmax, [h["share_above"] for h in self.store.gamma_history(self.cid) if h["iteration_idx"] < idx], conv, threshold)
        share, stats, converged = verdict.share_above, verdict.stats, verdict.converged
        if not verdict.judged:
            log.warning("iteration %d: nothing to grade (every motif count is 0 and exploration is off or found nothing): "
                        "convergence cannot be judged, the campaign runs to max_iterations", idx)
        elif len(gmax) < conv.min_sample:
            log.warning("iteration %d: the convergence sample has %d frames, fewer than convergence.min_sample = %d: it cannot "
                        "count as converged (more explore starts or steps, or motifs, make it larger)", idx, len(gmax), conv.min_sample)
        what = f"{len(pool.gamma_sample)} MD frames and {len(g_motifs)} motifs"
        last = idx + 1 >= self.c.max_iterations
        ending = None
        if converged:
            ending = ("converged", f"converged after iteration {idx}: {share:.1%} of {what} above γ_lo = {threshold:g} "
                                   f"(< {conv.target_share:.1%} for {conv.patience} iteration(s))")
        elif last:
            ending = ("max_iterations", f"stopped at max_iterations={self.c.max_iterations} without convergence "
                                        f"({share:.1%} of {what} above γ_lo = {threshold:g})")
        final = ending is not None and self.c.train.final_fit() is not None
        outcome = None if ending is None or final else Outcome(ending[0], f"{ending[1]}; potential: {pot['path']}", pot["path"])
        self.store.save_gamma_eval(self.cid, idx, gmax, threshold, stats, next_stage="final" if final else "done",
                                   outcome=ending if final else None if outcome is None else (outcome.status, outcome.message),
                                   next_pool=None if ending is not None else pool.to_json())
        log.info("iteration %d: %.1f%% of %s above γ_lo = %g (target < %.1f%% for %d iteration(s), n ≥ %d); median γ %.2f, max %.2f%s",
                 idx, 100 * share, what, threshold, 100 * conv.target_share, conv.patience, conv.min_sample, stats["median"], stats["max"],
                 f", {stats['n_unreached']} frames past γ_halt" if stats.get("n_unreached") else "")
        return outcome


# ---------------------------------------------------------------------- helpers
def _new_config(atoms: Atoms, h: str, status: str = "selected", reason: str | None = None) -> NewConfiguration:
    kind = str(atoms.info.get("kind", "unknown"))
    source = atoms.info.get("source")  # data-set provenance {"file", "index", "group"}; MD frames say "md"
    return NewConfiguration(h, kind, len(atoms), atoms.get_chemical_formula(), atoms_to_json(atoms), status, reason,
                            json.dumps(source) if isinstance(source, dict) else None)


def _lost(batch_errors: dict[str, tuple[str, int]], member: str, reason: str, n: int) -> None:
    """Note a batch `member` could not run on: its first reason, and how many configurations it lost in all."""
    first, lost = batch_errors.get(member, (reason, 0))
    batch_errors[member] = (first, lost + n)


def _fmt_metrics(m: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float) and k != "r_in"][:6]
    if m.get("n_excluded"):
        parts.append(f"{m['n_excluded']} structure(s) above the fit's bounds left out")
    if m.get("warm_start"):
        parts.append("warm start")
    return ", ".join(parts)


# how long a wait without any finished task goes before the local cluster is checked for lost workers
_REVIVE_EVERY_S = 10.0


def _as_completed(futures: list[Any], stop: threading.Event, poll_s: float = 0.5):  # type: ignore[no-untyped-def]
    """Yield (future, result) as tasks finish; on a stop request, yield nothing more (the caller has
    committed everything yielded so far). Waits in short polls, so a stop is seen within `poll_s` even
    while a long task (a fit, a DFT run) is in flight. A task whose worker died as many times as Dask
    allows yields its `KilledWorker` exception as the result, for the caller to count as a failed attempt."""
    from distributed import wait
    from distributed.scheduler import KilledWorker

    pending = list(futures)
    quiet_since = time.monotonic()
    while pending:
        if stop.is_set():
            return
        try:
            wait(pending, timeout=poll_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            if time.monotonic() - quiet_since > _REVIVE_EVERY_S:
                quiet_since = time.monotonic()
                revive_workers(pending[0].client)
            continue
        quiet_since = time.monotonic()
        still = []
        for fut in pending:
            if not fut.done():
                still.append(fut)
                continue
            if stop.is_set():
                return
            try:
                yield fut, fut.result()
            except KilledWorker as exc:
                yield fut, exc
        pending = still


def _only_result(futures: list[Any], stop: threading.Event, what: str, deaths: WorkerDeaths | None = None) -> Any:
    """The result of a single task; StopRequested if a stop came first, IterationFailed-worthy
    AlloopError if its worker kept dying."""
    from distributed.scheduler import KilledWorker

    t0 = time.time()
    for _, res in _as_completed(futures, stop):
        if isinstance(res, KilledWorker):
            raise AlloopError(death_reason(f"the {what}", res, deaths, t0) + " (every time it was tried; look for "
                              "memory limits or crashes)")
        return res
    raise StopRequested


def _optional_result(fut: Any, stop: threading.Event, what: str, deaths: WorkerDeaths | None = None) -> tuple[Any, Exception | None]:
    """(result, None) of a task the campaign can go on without, or (None, the exception) where it failed, for the
    caller to log; a stop request still ends the wait (StopRequested)."""
    try:
        return _only_result([fut], stop, what, deaths), None
    except StopRequested:
        raise
    except Exception as exc:  # whatever the task raised (or its worker dying): the campaign goes on without it
        return None, exc
