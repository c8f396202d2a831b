"""The read-only side of the campaign database: `ReadOnlyStore` opens it through a connection that can never
write and holds the queries of the commands that only read (`alloop status`, `alloop report`, the `generate`
preview, `alloop sweep`'s reads). The loop's Store inherits them, so the controller asks the same questions
through its own connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from alloop.errors import StateError
from alloop.state.db import make_readonly_engine
from alloop.state.records import id_list
from alloop.state.sweeps import SweepQueries


class ReadOnlyStore(SweepQueries):
    """A campaign database opened with `ReadOnlyStore.open_readonly(path)` (or `Store.open_readonly`): queries only."""

    readonly = True

    @staticmethod
    def open_readonly(path: str | Path) -> ReadOnlyStore:
        """A connection that can never write (SQLite `mode=ro`, `PRAGMA query_only`), for every command that only
        reads (`status`, `report`, the `generate` preview, `sweep`'s reads): no migration is applied (an older
        schema is read as it is; `schema_version` is the database's own), and no read takes a write lock or
        waits on one: reads are plain deferred transactions, which in the store's WAL journal go on beside a
        controller's open write transaction. Raises StateError, one line, for a file that is not a campaign
        database. A staticmethod, so that Store, which inherits it, still opens a ReadOnlyStore."""
        p = Path(path)
        if not p.is_file():
            raise StateError(f"no campaign database at {p}")
        engine = make_readonly_engine(p)
        try:
            with engine.connect() as c:
                version = int(c.exec_driver_sql("PRAGMA user_version").scalar_one())
                has_campaign = c.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type='table' AND name='campaign'").first()
        except DBAPIError as exc:
            engine.dispose()
            raise StateError(f"{p} is not a readable campaign database ({exc.orig})") from exc
        if has_campaign is None:
            engine.dispose()
            raise StateError(f"{p} is not a readable campaign database (it holds no campaign table)")
        return ReadOnlyStore(p, engine, version)

    # ---------------------------------------------------------------- campaign, iterations, potentials
    def campaign(self, name: str | None = None) -> dict[str, Any]:
        with self._tx() as c:
            q = "SELECT * FROM campaign" + (" WHERE name=:n" if name else " ORDER BY id LIMIT 1")
            row = c.execute(text(q), {"n": name}).mappings().first()
        if row is None:
            raise StateError(f"no campaign {'named ' + repr(name) + ' ' if name else ''}in {self.path}")
        return dict(row)


    def current_iteration(self, cid: int) -> tuple[int, str] | None:
        with self._tx() as c:
            row = c.execute(
                text("SELECT idx, stage FROM iteration WHERE campaign_id=:c ORDER BY idx DESC LIMIT 1"), {"c": cid}
            ).first()
        return None if row is None else (int(row.idx), str(row.stage))


    def known_hashes(self, cid: int) -> set[str]:
        with self._tx() as c:
            return set(c.execute(text("SELECT hash FROM configuration WHERE campaign_id=:c"), {"c": cid}).scalars())


    def latest_potential(self, cid: int, before_idx: int | None = None) -> dict[str, Any] | None:
        q = "SELECT * FROM potential WHERE campaign_id=:c" + (" AND iteration_idx < :i" if before_idx is not None else "")
        with self._tx() as c:
            row = c.execute(text(q + " ORDER BY iteration_idx DESC LIMIT 1"), {"c": cid, "i": before_idx}).mappings().first()
        return None if row is None else dict(row)


    def energy_reference(self, cid: int) -> dict[str, Any] | None:
        """The energy reference frozen with an earlier potential (the first one that had DFT and uMLIP
        labels to align, or any with method none), or None."""
        with self._tx() as c:
            rows = c.execute(
                text("SELECT references_json FROM potential WHERE campaign_id=:c ORDER BY iteration_idx"), {"c": cid}
            ).scalars().all()
        for r in rows:
            ref = json.loads(r)
            if ref.get("frozen"):
                return ref
        return None


    def final_potential(self, cid: int) -> dict[str, Any] | None:
        """The campaign's final fit: iteration_idx, outcome, message and, once fitted, path, active_set, n_train and
        metrics; None when the campaign has not ended (or predates final fits)."""
        if self.schema_version < 8:  # read without migrating: no final fits yet
            return None
        with self.engine.connect() as c:
            row = c.execute(text("SELECT * FROM final_potential WHERE campaign_id=:c"), {"c": cid}).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["metrics"] = json.loads(out.pop("metrics_json") or "null")
        return out


    def gamma_history(self, cid: int) -> list[dict[str, Any]]:
        with self._tx() as c:
            rows = c.execute(
                text("SELECT iteration_idx, n_candidates, threshold, share_above, stats_json FROM gamma_eval WHERE campaign_id=:c ORDER BY iteration_idx"),
                {"c": cid},
            ).mappings().all()
        return [{**dict(r), "stats": json.loads(r["stats_json"])} for r in rows]


    def property_results(self, cid: int) -> list[dict[str, Any]]:
        """Every stored property row, oldest first: subject, iteration_idx, model, fingerprint, result (a dict)."""
        if self.schema_version < 6:  # read without migrating: no property table yet
            return []
        with self.engine.connect() as c:
            rows = c.execute(
                text("SELECT subject, iteration_idx, model, fingerprint, result_json, created_at FROM property_result "
                     "WHERE campaign_id=:c ORDER BY id"), {"c": cid}).mappings().all()
        return [{**{k: r[k] for k in ("subject", "iteration_idx", "model", "fingerprint", "created_at")},
                 "result": json.loads(r["result_json"])} for r in rows]


    # ---------------------------------------------------------------- events and summaries
    def events(self, cid: int, limit: int = 20) -> list[dict[str, Any]]:
        with self._tx() as c:
            rows = c.execute(
                text("SELECT ts, iteration_idx, level, kind, message FROM event WHERE campaign_id=:c ORDER BY id DESC LIMIT :n"),
                {"c": cid, "n": limit},
            ).mappings().all()
        return [dict(r) for r in reversed(rows)]


    def counts(self, cid: int) -> dict[str, Any]:
        with self._tx() as c:
            by_status = dict(c.execute(text("SELECT status, COUNT(*) FROM configuration WHERE campaign_id=:c GROUP BY status"), {"c": cid}).all())
            by_source = dict(
                c.execute(
                    text("SELECT l.source, COUNT(*) FROM label l JOIN configuration c ON c.id=l.configuration_id WHERE c.campaign_id=:c GROUP BY l.source"),
                    {"c": cid},
                ).all()
            )
            atoms_by_source = dict(
                c.execute(
                    text("SELECT l.source, SUM(c.n_atoms) FROM label l JOIN configuration c ON c.id=l.configuration_id WHERE c.campaign_id=:c GROUP BY l.source"),
                    {"c": cid},
                ).all()
            )
            jobs = dict(
                c.execute(
                    text("SELECT j.status, COUNT(*) FROM dft_job j JOIN configuration c ON c.id=j.configuration_id WHERE c.campaign_id=:c GROUP BY j.status"),
                    {"c": cid},
                ).all()
            )
            by_kind = dict(c.execute(text("SELECT kind, COUNT(*) FROM configuration WHERE campaign_id=:c GROUP BY kind"), {"c": cid}).all())
            # a database older than schema 3 (read without migrating it) records no provenance
            provenance = [] if self.schema_version < 3 else c.execute(
                text(
                    "SELECT json_extract(c.source_json, '$.file'), json_extract(c.source_json, '$.group'), COUNT(*), "
                    "SUM(l.source='dft'), SUM(l.source='umlip') FROM configuration c "
                    "LEFT JOIN label l ON l.configuration_id=c.id "
                    "WHERE c.campaign_id=:c AND json_extract(c.source_json, '$.file') IS NOT NULL GROUP BY 1, 2 ORDER BY MIN(c.id)"
                ),
                {"c": cid},
            ).all()
        sources = [{"file": f, "group": g, "configurations": int(n), "dft": int(d or 0), "umlip": int(u or 0)} for f, g, n, d, u in provenance]
        return {"configurations": by_status, "labels": by_source, "label_atoms": atoms_by_source, "dft_jobs": jobs,
                "kinds": by_kind, "sources": sources}


    # ---------------------------------------------------------------- tables for reports
    # One query per table, returned as columns (lists), so a report over 10,000 configurations is a
    # handful of SELECTs; blobs are decoded only for the rows a figure needs.
    def _read(self, query: str, params: dict[str, Any]) -> dict[str, list[Any]]:
        with self.engine.connect() as c:
            res = c.execute(text(query), params)
            keys = list(res.keys())
            rows = res.all()
        return {k: [r[i] for r in rows] for i, k in enumerate(keys)}


    def iterations(self, cid: int) -> dict[str, list[Any]]:
        return self._read("SELECT idx, stage, message, started_at, finished_at FROM iteration WHERE campaign_id=:c ORDER BY idx", {"c": cid})


    def configuration_table(self, cid: int) -> dict[str, list[Any]]:
        """Every configuration without its geometry, with its label source, DFT job and U (the variant that routed it)."""
        return self._read(
            "SELECT c.id, c.iteration_idx, c.kind, c.n_atoms, c.status, c.route, l.source AS label_source, "
            "j.status AS job_status, j.attempts AS job_attempts, "
            "CASE u.variant WHEN 0 THEN u.u0 WHEN 2 THEN u.u2 ELSE u.u1 END AS u, u.u_c "
            "FROM configuration c LEFT JOIN label l ON l.configuration_id=c.id "
            "LEFT JOIN dft_job j ON j.configuration_id=c.id LEFT JOIN uncertainty u ON u.configuration_id=c.id "
            "WHERE c.campaign_id=:c ORDER BY c.id",
            {"c": cid},
        )


    def dft_label_table(self, cid: int, force_member: str | None) -> dict[str, list[Any]]:
        """DFT labels with their meta and the force member's prediction (blobs undecoded)."""
        return self._read(
            "SELECT c.id, c.iteration_idx, c.n_atoms, l.backend, l.energy, l.forces, l.meta_json, "
            "p.forces AS member_forces FROM label l JOIN configuration c ON c.id=l.configuration_id "
            "LEFT JOIN prediction p ON p.configuration_id=c.id AND p.member=:m "
            "WHERE c.campaign_id=:c AND l.source='dft' ORDER BY c.id",
            {"c": cid, "m": force_member},
        )


    def geometries(self, config_ids: Sequence[int]) -> dict[int, str]:
        """atoms_json of the given configurations."""
        if not config_ids:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(text(f"SELECT id, atoms_json FROM configuration WHERE id IN ({id_list(config_ids)})")).all()
        return {int(r[0]): r[1] for r in rows}


    def dft_spent_by_iteration(self, cid: int) -> dict[int, tuple[int, float | None]]:
        """Per iteration of the configurations: the atoms labelled by DFT, and the calculations' own run time in
        seconds (None where no DFT label of that iteration records one, e.g. replayed labels)."""
        rows = self._read("SELECT c.iteration_idx AS it, SUM(c.n_atoms) AS n, SUM(json_extract(l.meta_json, '$.wall_s')) AS wall "
                          "FROM label l JOIN configuration c ON c.id=l.configuration_id "
                          "WHERE c.campaign_id=:c AND l.source='dft' GROUP BY c.iteration_idx", {"c": cid})
        return {int(i): (int(n), None if w is None or w != w else float(w)) for i, n, w in zip(rows["it"], rows["n"], rows["wall"])}


    def potential_table(self, cid: int) -> dict[str, list[Any]]:
        return self._read(
            "SELECT iteration_idx, path, active_set, n_train, metrics_json, references_json FROM potential WHERE campaign_id=:c ORDER BY iteration_idx",
            {"c": cid},
        )


    def gamma_table(self, cid: int) -> dict[str, list[Any]]:
        return self._read(
            "SELECT iteration_idx, n_candidates, threshold, share_above, gamma_max, stats_json FROM gamma_eval WHERE campaign_id=:c ORDER BY iteration_idx",
            {"c": cid},
        )


    def events_at(self, cid: int, levels: Sequence[str], limit: int = 200) -> list[dict[str, Any]]:
        """The newest `limit` events of the given levels, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    f"SELECT ts, iteration_idx, level, kind, message FROM event WHERE campaign_id=:c AND level IN ({','.join(repr(v) for v in levels)}) "
                    "ORDER BY id DESC LIMIT :n"
                ),
                {"c": cid, "n": limit},
            ).mappings().all()
        return [dict(r) for r in reversed(rows)]
