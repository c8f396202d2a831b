"""The tables of `alloop sweep` (alloop.cli.sweep, alloop.train.sweep): its inputs, read from the loop's tables,
and its own `sweep_fit` rows. Kept apart from the loop's transitions because the sweep is a separate command
that never moves the campaign: its reads ride on the read-only connection, its one write on a writer that
does not migrate."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import text

from alloop.state.connection import Database
from alloop.state.records import from_blob, insert_event


class SweepQueries(Database):
    """What a sweep reads: its input configurations and the fits it already recorded (ReadOnlyStore has them)."""

    def sweep_inputs(self, cid: int, energy_member: str, force_member: str) -> list[dict[str, Any]]:
        """Every scored configuration with its U (campaign variant), its DFT label where one exists and
        the label members' predictions: the input of `alloop sweep`."""
        with self._tx() as c:
            rows = c.execute(
                text(
                    "SELECT c.id, c.atoms_json, CASE u.variant WHEN 0 THEN u.u0 WHEN 1 THEN u.u1 ELSE u.u2 END, "
                    "l.energy, l.forces, pe.energy, pf.forces FROM configuration c "
                    "JOIN uncertainty u ON u.configuration_id=c.id "
                    "LEFT JOIN label l ON l.configuration_id=c.id AND l.source='dft' "
                    "LEFT JOIN prediction pe ON pe.configuration_id=c.id AND pe.member=:em "
                    "LEFT JOIN prediction pf ON pf.configuration_id=c.id AND pf.member=:fm "
                    "WHERE c.campaign_id=:c ORDER BY c.id"
                ),
                {"c": cid, "em": energy_member, "fm": force_member},
            ).all()
        return [
            {"id": int(r[0]), "atoms_json": r[1], "u": r[2], "e_dft": r[3], "f_dft": None if r[4] is None else from_blob(r[4]),
             "e_umlip": r[5], "f_umlip": None if r[6] is None else from_blob(r[6])}
            for r in rows
        ]


    def sweep_fit(self, cid: int, u_c: float, seed: int, fingerprint: str) -> dict[str, Any] | None:
        with self._tx() as c:
            row = c.execute(
                text("SELECT fit_dir, potential, metrics_json FROM sweep_fit WHERE campaign_id=:c AND u_c=:u AND seed=:s AND fingerprint=:f"),
                {"c": cid, "u": _uc_db(u_c), "s": seed, "f": fingerprint},
            ).first()
        return None if row is None else {"fit_dir": row[0], "potential": row[1], "metrics": json.loads(row[2])}


    def sweep_results(self, cid: int) -> list[dict[str, Any]]:
        """Every recorded sweep fit's row (see alloop.train.sweep.ROW_KEYS), oldest first."""
        if self.schema_version < 3:  # read without migrating: no sweep table yet
            return []
        with self._tx() as c:
            rows = c.execute(text("SELECT metrics_json FROM sweep_fit WHERE campaign_id=:c ORDER BY id"), {"c": cid}).scalars().all()
        return [json.loads(r) for r in rows]


class SweepRecords(Database):
    """The sweep's one write: a finished fit's row (Store has it)."""

    def save_sweep_fit(self, cid: int, u_c: float, seed: int, fingerprint: str, fit_dir: str, potential: str, metrics: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                text(
                    "INSERT OR REPLACE INTO sweep_fit (campaign_id, u_c, seed, fingerprint, fit_dir, potential, metrics_json, created_at) "
                    "VALUES (:c, :u, :s, :f, :d, :p, :m, :t)"
                ),
                {"c": cid, "u": _uc_db(u_c), "s": seed, "f": fingerprint, "d": fit_dir, "p": potential,
                 "m": json.dumps(metrics, default=float), "t": time.time()},
            )
            insert_event(c, cid, None, "info", "sweep", f"sweep fit at U_c={u_c:g}, seed {seed}: {potential}")



def _uc_db(u_c: float) -> float:
    # SQLite keeps no infinity reliably across drivers: U_c = inf is stored as the largest double
    return 1e308 if u_c == float("inf") else float(u_c)
