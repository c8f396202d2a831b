"""The rows the campaign database hands to and takes from the loop, how arrays and id lists are written
into SQL, and the event row every transition appends. Shared by the read-only queries, the loop's writes and
the sweep's table, so none of them imports another for these."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, text


def to_blob(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def from_blob(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


@dataclass(frozen=True)
class NewConfiguration:
    hash: str
    kind: str
    n_atoms: int
    formula: str
    atoms_json: str
    status: str = "selected"
    reason: str | None = None
    source_json: str | None = None  # provenance: a data set's {"file", "index", "group"}; a relaxed motif's {"relaxed": {...}}


@dataclass(frozen=True)
class StoredConfiguration:
    id: int
    hash: str
    kind: str
    n_atoms: int
    atoms_json: str
    status: str
    route: str | None


@dataclass(frozen=True)
class Prediction:
    configuration_id: int
    member: str
    energy: float | None
    forces: np.ndarray | None
    error: str | None = None


@dataclass(frozen=True)
class Routing:
    """Outcome of scoring one configuration: U values and where its label comes from."""

    configuration_id: int
    u0: float
    u1: float
    u2: float
    route: str  # umlip | dft | none (DFT-bound but not labelled: status not_selected, with the reason)
    umlip_energy: float | None = None
    umlip_forces: np.ndarray | None = None
    umlip_backend: str | None = None
    dft_workdir: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class DFTJob:
    id: int
    configuration_id: int
    hash: str
    atoms_json: str
    status: str
    attempts: int
    workdir: str
    job_ref: str | None = None  # the batch system's job id, when the calculation runs as its own batch job
    corrections_json: str = "[]"  # the corrections applied so far (alloop.label.handlers), oldest first

    @property
    def corrections(self) -> list[dict[str, Any]]:
        return list(json.loads(self.corrections_json))


@dataclass(frozen=True)
class TrainingRow:
    configuration_id: int
    atoms_json: str
    source: str
    backend: str
    energy: float
    forces: np.ndarray
    reference_energy: float | None  # the energy member's prediction: aligns DFT energies onto its scale
    kind: str = ""
    u: float | None = None  # the campaign's U variant at routing; None where U was not computable


def id_list(ids: Sequence[int]) -> str:
    """Ids as the inside of an SQL `IN (...)`: integers only, so nothing but digits reaches the query."""
    return ",".join(str(int(i)) for i in ids)


def insert_event(c: Connection, cid: int | None, idx: int | None, level: str, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
    """Append an event inside the caller's transaction, so the event lands with the transition it reports."""
    c.execute(
        text("INSERT INTO event (campaign_id, iteration_idx, ts, level, kind, message, data_json) VALUES (:c, :i, :t, :l, :k, :m, :d)"),
        {"c": cid, "i": idx, "t": time.time(), "l": level, "k": kind, "m": message, "d": None if data is None else json.dumps(data, default=str)},
    )
