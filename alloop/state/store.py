"""The loop's writes to campaign state (campaign, iterations, configurations, predictions, DFT jobs, potentials,
properties, events) and the reads only the controller needs. Each public method is one transaction, so a
process killed at any moment leaves the database at the last completed transition, never half-written. The
queries of the read-only commands come from ReadOnlyStore (alloop.state.queries), the sweep's table from
alloop.state.sweeps; Store inherits both, so the controller has one object for all of it."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from alloop.errors import StateError
from alloop.state.db import make_engine, migrate
from alloop.state.queries import ReadOnlyStore
from alloop.state.records import (
    DFTJob,
    NewConfiguration,
    Prediction,
    Routing,
    StoredConfiguration,
    TrainingRow,
    from_blob,
    id_list,
    insert_event,
    to_blob,
)
from alloop.state.sweeps import SweepRecords

STAGES = ("generate", "score", "label", "train", "evaluate", "final", "done")


class Store(SweepRecords, ReadOnlyStore):
    """The campaign database. Open with `Store.open(path)`; schema migrations run on open."""

    readonly = False

    @classmethod
    def open(cls, path: str | Path) -> Store:
        p = Path(path)
        folder = p.resolve().parent
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise StateError(
                f"the campaign database {p} cannot be written: its folder {folder} is read-only (a read-only "
                "file system or mount, or its permissions). `alloop run` writes every step there: make it writable or "
                "point `workdir` elsewhere; `alloop status` and `alloop report` read it as it is")
        engine = make_engine(p)
        try:
            version = migrate(engine)
        except (DBAPIError, sqlite3.DatabaseError) as exc:  # the connect-time pragmas raise the driver's own error
            engine.dispose()
            raise StateError(f"{p} is not a readable campaign database ({getattr(exc, 'orig', exc)})") from exc
        return cls(p, engine, version)

    @classmethod
    def open_existing(cls, path: str | Path) -> Store:
        """An existing database, migrated and writable (for commands that write: `alloop run`, `properties`).
        Commands that only read open it with `open_readonly`."""
        p = Path(path)
        if not p.is_file():
            raise StateError(f"no campaign database at {p}")
        return cls.open(p)

    # ---------------------------------------------------------------- campaign and iterations
    def open_campaign(self, name: str, config_json: str) -> int:
        now = time.time()
        with self._tx() as c:
            row = c.execute(text("SELECT id, config_json FROM campaign WHERE name=:n"), {"n": name}).first()
            if row is None:
                others = c.execute(text("SELECT name FROM campaign")).scalars().all()
                if others:
                    raise StateError(
                        f"database {self.path} belongs to campaign '{others[0]}', not '{name}': "
                        "use another database path or the same campaign name"
                    )
                cid = c.execute(
                    text(
                        "INSERT INTO campaign (name, config_json, created_at, updated_at) "
                        "VALUES (:n, :cfg, :t, :t) RETURNING id"
                    ),
                    {"n": name, "cfg": config_json, "t": now},
                ).scalar_one()
                insert_event(c, cid, None, "info", "campaign", f"campaign '{name}' created")
                return int(cid)
            cid = int(row.id)
            c.execute(text("UPDATE campaign SET status='running', updated_at=:t WHERE id=:id AND status IN ('stopped')"), {"t": now, "id": cid})
            return cid


    def apply_config(self, cid: int, config_json: str, changes: list[dict[str, Any]], accepted: bool) -> None:
        """Record the campaign file as it is now, with the differences from the last run as an event."""
        with self._tx() as c:
            c.execute(text("UPDATE campaign SET config_json=:cfg, updated_at=:t WHERE id=:id"),
                      {"cfg": config_json, "t": time.time(), "id": cid})
            what = "accepted with --accept-changes" if accepted else "applied"
            insert_event(c, cid, None, "warning", "config",
                        f"campaign file changed since the last run ({len(changes)} setting(s), {what}): "
                        + "; ".join(f"{ch['field']}: {ch['old']!r} -> {ch['new']!r}"
                                    + (" (a changed default)" if ch.get("default_changed") else "") for ch in changes),
                        {"changes": changes, "accepted": accepted})


    def file_fingerprints(self, cid: int) -> dict[tuple[str, str], Any]:
        """(role, path) -> alloop.fingerprints.Fingerprint of the files the campaign referred to at its last run."""
        from alloop.fingerprints import Fingerprint

        with self._tx() as c:
            rows = c.execute(text("SELECT role, path, size, mtime_ns, sha256 FROM file_fingerprint WHERE campaign_id=:c"), {"c": cid}).all()
        return {(r.role, r.path): Fingerprint(r.role, r.path, int(r.size), int(r.mtime_ns), r.sha256) for r in rows}


    def save_file_fingerprints(self, cid: int, current: Sequence[Any], changed: Sequence[tuple[Any, Any]], accepted: bool) -> None:
        """The files' fingerprints as they are now; the changed ones (accepted with --accept-changes) as an event."""
        from alloop.fingerprints import describe

        now = time.time()
        with self._tx() as c:
            for f in current:
                c.execute(text("INSERT INTO file_fingerprint (campaign_id, role, path, size, mtime_ns, sha256, updated_at) "
                               "VALUES (:c, :r, :p, :s, :m, :h, :t) ON CONFLICT (campaign_id, role, path) DO UPDATE SET "
                               "size=excluded.size, mtime_ns=excluded.mtime_ns, sha256=excluded.sha256, updated_at=excluded.updated_at"),
                          {"c": cid, "r": f.role, "p": f.path, "s": f.size, "m": f.mtime_ns, "h": f.sha256, "t": now})
            if changed:
                what = "accepted with --accept-changes" if accepted else "recorded"
                insert_event(c, cid, None, "warning", "config",
                            f"files changed since the last run ({len(changed)}, {what}): " + "; ".join(describe(o, n) for o, n in changed),
                            {"files": [{"role": n.role, "path": n.path, "old_sha256": o.sha256, "new_sha256": n.sha256} for o, n in changed],
                             "accepted": accepted})


    def reopen_campaign(self, cid: int, message: str) -> None:
        """A finished campaign runs on (its iteration limit was raised)."""
        with self._tx() as c:
            c.execute(text("UPDATE campaign SET status='running', message=NULL, updated_at=:t WHERE id=:id"), {"t": time.time(), "id": cid})
            # the final potential belonged to the ending that is now undone; the new ending fits its own
            c.execute(text("DELETE FROM final_potential WHERE campaign_id=:c"), {"c": cid})
            insert_event(c, cid, None, "info", "campaign", message)


    def retry_iteration(self, cid: int, idx: int) -> str:
        """A failed iteration back at the stage it failed in (its quarantined DFT jobs queued again with a fresh
        attempt budget when it failed while labelling; its failed predictions dropped, to be made again, when it
        failed while scoring), the campaign running again; returns that stage."""
        with self._tx() as c:
            stage = c.execute(text("SELECT failed_stage FROM iteration WHERE campaign_id=:c AND idx=:i"), {"c": cid, "i": idx}).scalar_one()
            stage = stage or "label"
            if stage == "label":
                ids = c.execute(
                    text("SELECT j.id FROM dft_job j JOIN configuration c ON c.id=j.configuration_id "
                         "WHERE c.campaign_id=:c AND c.iteration_idx=:i AND j.status='quarantined'"), {"c": cid, "i": idx}).scalars().all()
                if ids:
                    c.execute(text(f"UPDATE dft_job SET status='queued', attempts=0, job_id=NULL, updated_at=:t WHERE id IN ({id_list(ids)})"), {"t": time.time()})
                    c.execute(text(f"UPDATE configuration SET status='scored' WHERE id IN (SELECT configuration_id FROM dft_job WHERE id IN ({id_list(ids)}))"))
            if stage == "score":  # the failed predictions are asked again: the member may have been fixed
                c.execute(text("DELETE FROM prediction WHERE error IS NOT NULL AND configuration_id IN "
                               "(SELECT id FROM configuration WHERE campaign_id=:c AND iteration_idx=:i)"), {"c": cid, "i": idx})
            c.execute(text("UPDATE iteration SET stage=:s, failed_stage=NULL, finished_at=NULL WHERE campaign_id=:c AND idx=:i"), {"s": stage, "c": cid, "i": idx})
            c.execute(text("UPDATE campaign SET status='running', message=NULL, updated_at=:t WHERE id=:id"), {"t": time.time(), "id": cid})
            insert_event(c, cid, idx, "warning", "campaign", f"iteration {idx} retried from stage {stage} (alloop run --retry)")
        return str(stage)


    def finish_campaign(self, cid: int, status: str, message: str) -> None:
        with self._tx() as c:
            self._finish(c, cid, status, message)


    def fail_iteration(self, cid: int, idx: int, stage: str, message: str) -> None:
        """The iteration (failed in `stage`) and the campaign marked failed, in one transaction."""
        with self._tx() as c:
            self._set_stage(c, cid, idx, "failed", message)
            c.execute(text("UPDATE iteration SET failed_stage=:s WHERE campaign_id=:c AND idx=:i"), {"s": stage, "c": cid, "i": idx})
            self._finish(c, cid, "failed", message)


    def _finish(self, c: Connection, cid: int, status: str, message: str) -> None:
        c.execute(
            text("UPDATE campaign SET status=:s, message=:m, updated_at=:t WHERE id=:id"),
            {"s": status, "m": message, "t": time.time(), "id": cid},
        )
        insert_event(c, cid, None, "info" if status in ("converged", "max_iterations") else "error", "campaign", message)


    def start_iteration(self, cid: int, idx: int) -> None:
        with self._tx() as c:
            c.execute(
                text("INSERT OR IGNORE INTO iteration (campaign_id, idx, stage, started_at) VALUES (:c, :i, 'generate', :t)"),
                {"c": cid, "i": idx, "t": time.time()},
            )
            insert_event(c, cid, idx, "info", "iteration", f"iteration {idx} started")


    def set_stage(self, cid: int, idx: int, stage: str, message: str | None = None) -> None:
        with self._tx() as c:
            self._set_stage(c, cid, idx, stage, message)


    def _set_stage(self, c: Connection, cid: int, idx: int, stage: str, message: str | None = None) -> None:
        if stage not in STAGES and stage != "failed":
            raise ValueError(f"unknown stage {stage}")
        finished = time.time() if stage in ("done", "failed") else None
        c.execute(
            text("UPDATE iteration SET stage=:s, message=COALESCE(:m, message), finished_at=:f WHERE campaign_id=:c AND idx=:i"),
            {"s": stage, "m": message, "f": finished, "c": cid, "i": idx},
        )
        insert_event(c, cid, idx, "info", "stage", f"iteration {idx}: stage {stage}" + (f" ({message})" if message else ""))


    # ---------------------------------------------------------------- configurations
    def commit_selection(self, cid: int, idx: int, configs: Sequence[NewConfiguration]) -> int:
        """Insert the iteration's selected (and rejected) configurations and move on to scoring.
        Configurations already in the campaign (same hash) are skipped: nothing is labelled twice."""
        now = time.time()
        with self._tx() as c:
            before = c.execute(text("SELECT COUNT(*) FROM configuration WHERE campaign_id=:c"), {"c": cid}).scalar_one()
            if configs:
                c.execute(
                    text(
                        "INSERT OR IGNORE INTO configuration (campaign_id, hash, iteration_idx, kind, n_atoms, formula, "
                        "atoms_json, status, reason, source_json, created_at) VALUES (:c, :hash, :i, :kind, :n_atoms, "
                        ":formula, :atoms_json, :status, :reason, :source_json, :t)"
                    ),
                    [{"c": cid, "i": idx, "t": now, **cfg.__dict__} for cfg in configs],
                )
            after = c.execute(text("SELECT COUNT(*) FROM configuration WHERE campaign_id=:c"), {"c": cid}).scalar_one()
            n_failed = sum(1 for cfg in configs if cfg.status == "failed")
            insert_event(c, cid, idx, "info", "select", f"{after - before} new configurations ({n_failed} rejected as unphysical)")
            self._set_stage(c, cid, idx, "score")
        return int(after - before)


    def configurations(self, cid: int, idx: int | None = None, status: str | None = None) -> list[StoredConfiguration]:
        q = "SELECT id, hash, kind, n_atoms, atoms_json, status, route FROM configuration WHERE campaign_id=:c"
        if idx is not None:
            q += " AND iteration_idx=:i"
        if status is not None:
            q += " AND status=:s"
        with self._tx() as c:
            rows = c.execute(text(q + " ORDER BY id"), {"c": cid, "i": idx, "s": status}).all()
        return [StoredConfiguration(*r) for r in rows]


    # ---------------------------------------------------------------- predictions and U
    def missing_predictions(self, config_ids: Sequence[int], members: Sequence[str]) -> dict[str, list[int]]:
        """For each member, the configurations it has not predicted yet."""
        with self._tx() as c:
            have = c.execute(
                text(f"SELECT configuration_id, member FROM prediction WHERE configuration_id IN ({id_list(config_ids)})")
            ).all() if config_ids else []
        done = {(int(r[0]), r[1]) for r in have}
        return {m: [i for i in config_ids if (i, m) not in done] for m in members}


    def save_predictions(self, rows: Iterable[Prediction]) -> None:
        params = [
            {
                "cid": p.configuration_id,
                "m": p.member,
                "e": None if p.energy is None else float(p.energy),
                "f": None if p.forces is None else to_blob(p.forces),
                "err": p.error,
            }
            for p in rows
        ]
        if not params:
            return
        with self._tx() as c:
            c.execute(
                text("INSERT OR REPLACE INTO prediction (configuration_id, member, energy, forces, error) VALUES (:cid, :m, :e, :f, :err)"),
                params,
            )


    def predictions(self, config_ids: Sequence[int], members: Sequence[str]) -> dict[tuple[int, str], Prediction]:
        if not config_ids:
            return {}
        with self._tx() as c:
            rows = c.execute(
                text(
                    "SELECT configuration_id, member, energy, forces, error FROM prediction "
                    f"WHERE configuration_id IN ({id_list(config_ids)})"
                )
            ).all()
        wanted = set(members)
        return {
            (int(r[0]), r[1]): Prediction(int(r[0]), r[1], r[2], None if r[3] is None else from_blob(r[3]), r[4])
            for r in rows
            if r[1] in wanted
        }


    def commit_routing(self, cid: int, idx: int, routings: Sequence[Routing], variant: int, u_c: float, members: Sequence[str], backend: str) -> None:
        """Store U, the route of every scored configuration, the uMLIP labels and the queued DFT jobs,
        and move on to labelling, all in one transaction."""
        now = time.time()
        members_json = json.dumps(list(members))
        with self._tx() as c:
            for r in routings:
                c.execute(
                    text(
                        "INSERT OR REPLACE INTO uncertainty (configuration_id, u0, u1, u2, variant, u_c, members) "
                        "VALUES (:id, :u0, :u1, :u2, :v, :uc, :m)"
                    ),
                    {"id": r.configuration_id, "u0": _f(r.u0), "u1": _f(r.u1), "u2": _f(r.u2), "v": variant, "uc": u_c, "m": members_json},
                )
                if r.route == "umlip":
                    c.execute(
                        text(
                            "INSERT OR IGNORE INTO label (configuration_id, source, backend, energy, forces, created_at) "
                            "VALUES (:id, 'umlip', :b, :e, :f, :t)"
                        ),
                        {"id": r.configuration_id, "b": r.umlip_backend, "e": float(r.umlip_energy), "f": to_blob(r.umlip_forces), "t": now},
                    )
                    status = "labelled"
                elif r.route == "none":
                    status = "not_selected"
                else:
                    c.execute(
                        text(
                            "INSERT OR IGNORE INTO dft_job (configuration_id, backend, workdir, created_at, updated_at) "
                            "VALUES (:id, :b, :w, :t, :t)"
                        ),
                        {"id": r.configuration_id, "b": backend, "w": r.dft_workdir, "t": now},
                    )
                    status = "scored"
                c.execute(
                    text("UPDATE configuration SET route=:r, status=:s, reason=COALESCE(:why, reason) WHERE id=:id"),
                    {"r": None if r.route == "none" else r.route, "s": status, "why": r.reason, "id": r.configuration_id},
                )
            n_dft, n_none = sum(r.route == "dft" for r in routings), sum(r.route == "none" for r in routings)
            insert_event(
                c, cid, idx, "info", "route",
                f"scored {len(routings)} configurations: {len(routings) - n_dft - n_none} labelled by uMLIP, {n_dft} sent to DFT "
                f"(U_c={u_c:g} eV/Å)" + (f", {n_none} DFT-bound but not labelled (selection.dft_max_atoms or dft_budget_atoms)" if n_none else ""),
            )
            self._set_stage(c, cid, idx, "label")


    # ---------------------------------------------------------------- DFT jobs
    def dft_jobs(self, cid: int, idx: int | None = None, statuses: Sequence[str] = ("queued", "running")) -> list[DFTJob]:
        q = (
            "SELECT j.id, j.configuration_id, c.hash, c.atoms_json, j.status, j.attempts, j.workdir, j.job_id, j.corrections_json "
            "FROM dft_job j "
            "JOIN configuration c ON c.id=j.configuration_id WHERE c.campaign_id=:c"
            f" AND j.status IN ({','.join(repr(s) for s in statuses)})"
        )
        if idx is not None:
            q += " AND c.iteration_idx=:i"
        with self._tx() as c:
            rows = c.execute(text(q + " ORDER BY j.id"), {"c": cid, "i": idx}).all()
        return [DFTJob(*r) for r in rows]


    def mark_job_running(self, job_id: int, job_ref: str | None = None) -> None:
        with self._tx() as c:
            c.execute(
                text("UPDATE dft_job SET status='running', job_id=COALESCE(:ref, job_id), updated_at=:t WHERE id=:id AND status IN ('queued','running')"),
                {"ref": job_ref, "t": time.time(), "id": job_id},
            )


    def release_job(self, job_id: int, corrections: list[dict[str, Any]] | None = None) -> None:
        """Forget the batch job id so the calculation is submitted again (after a correction, or when the
        scheduler lost the job before it ran); `corrections`, the list after a correction, is kept with it."""
        with self._tx() as c:
            c.execute(
                text("UPDATE dft_job SET status='queued', job_id=NULL, corrections_json=COALESCE(:k, corrections_json), "
                     "updated_at=:t WHERE id=:id AND status IN ('queued','running')"),
                {"t": time.time(), "id": job_id, "k": None if corrections is None else json.dumps(corrections)},
            )


    def complete_dft_job(self, job_id: int, backend: str, energy: float, forces: np.ndarray, stress: np.ndarray | None, meta: dict[str, Any]) -> bool:
        """Store a DFT label; returns False (and stores nothing) when the job was already done."""
        now = time.time()
        with self._tx() as c:
            row = c.execute(text("SELECT configuration_id, status FROM dft_job WHERE id=:id"), {"id": job_id}).one()
            if row.status == "done":
                return False
            c.execute(
                text(
                    "INSERT INTO label (configuration_id, source, backend, energy, forces, stress, meta_json, created_at) "
                    "VALUES (:cid, 'dft', :b, :e, :f, :s, :m, :t)"
                ),
                {
                    "cid": row.configuration_id, "b": backend, "e": float(energy), "f": to_blob(forces),
                    "s": None if stress is None else to_blob(stress), "m": json.dumps(meta, default=str), "t": now,
                },
            )
            c.execute(text("UPDATE dft_job SET status='done', reason=NULL, updated_at=:t WHERE id=:id"), {"t": now, "id": job_id})
            c.execute(text("UPDATE configuration SET status='labelled', reason=NULL WHERE id=:id"), {"id": row.configuration_id})
        return True


    def fail_dft_job(self, job_id: int, reason: str, max_attempts: int) -> str:
        """Count a failed attempt; quarantine the configuration once the budget is spent. Returns the new status."""
        now = time.time()
        with self._tx() as c:
            row = c.execute(text("SELECT configuration_id, attempts FROM dft_job WHERE id=:id"), {"id": job_id}).one()
            attempts = int(row.attempts) + 1
            status = "quarantined" if attempts >= max_attempts else "queued"
            c.execute(
                text("UPDATE dft_job SET status=:s, attempts=:a, reason=:r, job_id=NULL, updated_at=:t WHERE id=:id"),
                {"s": status, "a": attempts, "r": reason, "t": now, "id": job_id},
            )
            if status == "quarantined":
                c.execute(text("UPDATE configuration SET status='quarantined', reason=:r WHERE id=:id"), {"r": reason, "id": row.configuration_id})
            cid = c.execute(text("SELECT campaign_id FROM configuration WHERE id=:id"), {"id": row.configuration_id}).scalar_one()
            insert_event(c, cid, None, "warning", "dft", f"DFT job {job_id} attempt {attempts} failed ({status}): {reason}")
        return status


    # ---------------------------------------------------------------- training data and potentials
    def training_rows(self, cid: int, energy_member: str) -> list[TrainingRow]:
        with self._tx() as c:
            rows = c.execute(
                text(
                    "SELECT c.id, c.atoms_json, l.source, l.backend, l.energy, l.forces, p.energy, c.kind, "
                    "CASE u.variant WHEN 0 THEN u.u0 WHEN 1 THEN u.u1 ELSE u.u2 END FROM label l "
                    "JOIN configuration c ON c.id=l.configuration_id "
                    "LEFT JOIN prediction p ON p.configuration_id=c.id AND p.member=:m "
                    "LEFT JOIN uncertainty u ON u.configuration_id=c.id "
                    "WHERE c.campaign_id=:c AND c.status='labelled' ORDER BY c.id"
                ),
                {"c": cid, "m": energy_member},
            ).all()
        return [TrainingRow(int(r[0]), r[1], r[2], r[3], float(r[4]), from_blob(r[5]), r[6], r[7], r[8]) for r in rows]


    def stored_config(self, cid: int) -> str:
        with self._tx() as c:
            return str(c.execute(text("SELECT config_json FROM campaign WHERE id=:id"), {"id": cid}).scalar_one())


    def save_potential(self, cid: int, idx: int, path: str, active_set: str | None, n_train: int, metrics: dict[str, Any], references: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                text(
                    "INSERT OR REPLACE INTO potential (campaign_id, iteration_idx, path, active_set, n_train, metrics_json, references_json, created_at) "
                    "VALUES (:c, :i, :p, :a, :n, :m, :r, :t)"
                ),
                {"c": cid, "i": idx, "p": path, "a": active_set, "n": n_train, "m": json.dumps(metrics, default=float), "r": json.dumps(references), "t": time.time()},
            )
            insert_event(c, cid, idx, "info", "train", f"potential fitted on {n_train} configurations: {path}")
            self._set_stage(c, cid, idx, "evaluate")


    def save_gamma_eval(
        self, cid: int, idx: int, gamma_max: np.ndarray, threshold: float, stats: dict[str, Any], next_stage: str,
        outcome: tuple[str, str] | None = None, next_pool: str | None = None,
    ) -> None:
        """Store the γ evaluation and move the iteration on; with `outcome` (status, message) the campaign
        ends in the same transaction, so a kill can never leave a finished campaign looking unfinished. With
        next_stage 'final' the outcome is kept with the pending final fit instead, and the campaign ends when
        that fit is stored (finish_final). `next_pool`: the next iteration's candidate pool (JSON), drawn for the
        evaluation, which that iteration labels from (candidate_pool)."""
        share = float(np.mean(gamma_max > threshold)) if len(gamma_max) else 0.0
        with self._tx() as c:
            if next_pool is not None:
                c.execute(text("INSERT OR REPLACE INTO candidate_pool (campaign_id, iteration_idx, pool_json, created_at) "
                               "VALUES (:c, :i, :p, :t)"), {"c": cid, "i": idx + 1, "p": next_pool, "t": time.time()})
            if outcome is not None and next_stage == "final":
                c.execute(text("INSERT OR REPLACE INTO final_potential (campaign_id, iteration_idx, outcome, message, created_at) "
                               "VALUES (:c, :i, :o, :m, :t)"), {"c": cid, "i": idx, "o": outcome[0], "m": outcome[1], "t": time.time()})
            elif outcome is not None:
                self._finish(c, cid, *outcome)
            c.execute(
                text(
                    "INSERT OR REPLACE INTO gamma_eval (campaign_id, iteration_idx, n_candidates, threshold, share_above, gamma_max, stats_json, created_at) "
                    "VALUES (:c, :i, :n, :th, :sh, :g, :s, :t)"
                ),
                {"c": cid, "i": idx, "n": len(gamma_max), "th": threshold, "sh": share, "g": to_blob(gamma_max), "s": json.dumps(stats), "t": time.time()},
            )
            insert_event(c, cid, idx, "info", "gamma", f"{share:.1%} of {len(gamma_max)} sampled frames and motifs have max γ > {threshold:g}")
            self._set_stage(c, cid, idx, next_stage)


    def candidate_pool(self, cid: int, idx: int) -> str | None:
        """Iteration `idx`'s candidate pool as the previous evaluation drew it (JSON), or None (iteration 0, or a
        campaign that began before pools were stored)."""
        if self.schema_version < 10:
            return None
        with self.engine.connect() as c:
            return c.execute(text("SELECT pool_json FROM candidate_pool WHERE campaign_id=:c AND iteration_idx=:i"),
                             {"c": cid, "i": idx}).scalar()


    def finish_final(self, cid: int, idx: int, path: str, active_set: str | None, n_train: int, metrics: dict[str, Any],
                     message: str) -> None:
        """The final potential stored, its iteration done and the campaign ended with the pending outcome, in one
        transaction."""
        with self._tx() as c:
            outcome = c.execute(text("SELECT outcome FROM final_potential WHERE campaign_id=:c"), {"c": cid}).scalar_one()
            c.execute(text("UPDATE final_potential SET path=:p, active_set=:a, n_train=:n, metrics_json=:m, message=:msg, finished_at=:t "
                           "WHERE campaign_id=:c"),
                      {"c": cid, "p": path, "a": active_set, "n": n_train, "m": json.dumps(metrics, default=float), "msg": message,
                       "t": time.time()})
            insert_event(c, cid, idx, "info", "train", f"final potential fitted on {n_train} configurations: {path}")
            self._set_stage(c, cid, idx, "done")
            self._finish(c, cid, outcome, message)


    # ---------------------------------------------------------------- properties (alloop.properties)
    def property_result(self, cid: int, subject: str, model: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored PropertyResult (as a dict) of a potential or the teacher under these settings, if any."""
        with self._tx() as c:
            row = c.execute(
                text("SELECT result_json FROM property_result WHERE campaign_id=:c AND subject=:s AND model=:m AND fingerprint=:f"),
                {"c": cid, "s": subject, "m": model, "f": fingerprint},
            ).first()
        return None if row is None else json.loads(row[0])


    def save_property_result(self, cid: int, subject: str, iteration_idx: int | None, model: str, fingerprint: str,
                             result: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                text(
                    "INSERT OR REPLACE INTO property_result (campaign_id, subject, iteration_idx, model, fingerprint, result_json, "
                    "seconds, created_at) VALUES (:c, :s, :i, :m, :f, :r, :sec, :t)"
                ),
                {"c": cid, "s": subject, "i": iteration_idx, "m": model, "f": fingerprint, "r": json.dumps(result),
                 "sec": float(result.get("seconds", 0.0)), "t": time.time()},
            )
            what = {"potential": f"potential of iteration {iteration_idx}", "final": "final potential"}.get(subject, f"teacher {model}")
            insert_event(c, cid, iteration_idx, "info", "properties", f"properties of the {what} ({result.get('seconds', 0):.0f} s)")


    # ---------------------------------------------------------------- events
    def log_event(self, cid: int | None, idx: int | None, level: str, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._tx() as c:
            insert_event(c, cid, idx, level, kind, message, data)


    def log_event_once(self, cid: int, level: str, kind: str, message: str) -> bool:
        """Record a campaign-wide event unless the same one is recorded already; whether it was recorded now."""
        with self._tx() as c:
            seen = c.execute(text("SELECT 1 FROM event WHERE campaign_id=:c AND kind=:k AND message=:m LIMIT 1"),
                             {"c": cid, "k": kind, "m": message}).first()
            if seen is None:
                insert_event(c, cid, None, level, kind, message)
            return seen is None



def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
