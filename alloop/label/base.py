"""The labelling contract shared by every backend: a result type, a failure type and a DFT backend whose
work is split into prepare (write inputs) / execute (run the code) / read (parse outputs), as in ASE's
GenericFileIOCalculator, so that a job scheduler can run `execute` elsewhere.

A work directory holds one configuration. `result.json` is written last and atomically: its presence
means the calculation finished and passed every check, so `compute` never repeats it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel

from alloop.atomic import write_json_atomic
from alloop.errors import LabelError
from alloop.structures import atoms_from_json, atoms_to_json, config_hash, validate_atoms

log = logging.getLogger(__name__)

Source = Literal["gpaw", "vasp", "replay", "umlip"]
FailureKind = Literal["scf", "walltime", "crash", "unfinished", "nan", "parse", "mismatch", "missing"]

RESULT_FILE = "result.json"
ATOMS_FILE = "atoms.json"
SETTINGS_FILE = "settings.json"
CORRECTIONS_FILE = "corrections.json"
ATTEMPTS_DIR = "attempts"


class LabelFailure(LabelError):
    """A LabelError that says what kind of failure it was, so error handlers can pick a correction.

    kind: "scf" (SCF not converged), "walltime" (ran out of time), "crash" (the code stopped with an
    error; `codes` names the known error messages found), "unfinished" (outputs end early, no known
    error), "nan" (non-finite energy/forces), "parse" (outputs unreadable), "mismatch" (outputs belong
    to another structure), "missing" (a replay set does not hold the configuration).
    """

    def __init__(self, reason: str, retryable: bool, kind: FailureKind, codes: tuple[str, ...] = ()) -> None:
        super().__init__(reason, retryable)
        self.kind = kind
        self.codes = tuple(codes)


@dataclass
class LabelResult:
    """Energy (total, eV), forces (N, 3) eV/Å and stress (6,) eV/Å³ in ASE's Voigt order
    (xx, yy, zz, yz, xz, xy) of one configuration. Only finished, converged calculations produce one.

    For DFT the energy is the force-consistent free energy (VASP's TOTEN / e_fr_energy, GPAW's
    free energy), the one whose derivatives the forces are; the σ→0 extrapolation is kept in
    meta["energy_sigma0"]."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    source: Source
    converged: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.energy = float(self.energy)
        self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        if self.stress is not None:
            stress = np.asarray(self.stress, dtype=np.float64)
            if stress.shape == (3, 3):  # full tensor → Voigt, as ASE orders it
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            self.stress = stress.reshape(6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy": self.energy,
            "forces": self.forces.tolist(),
            "stress": None if self.stress is None else self.stress.tolist(),
            "source": self.source,
            "converged": self.converged,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelResult:
        return cls(d["energy"], np.asarray(d["forces"]), None if d["stress"] is None else np.asarray(d["stress"]),
                   d["source"], bool(d["converged"]), dict(d.get("meta", {})))


def load_result(workdir: Path) -> LabelResult | None:
    """The finished result in `workdir`, or None: also for a damaged result.json (a full disk, a copy cut
    short), whose calculation is then read from its outputs or run again."""
    path = Path(workdir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return LabelResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s (%s): the calculation is read from its outputs or run again", path, exc)
        return None


def load_corrections(workdir: Path) -> list[dict[str, Any]]:
    """The corrections recorded in this work directory (corrections.json), oldest first; [] for none or for a
    damaged file (the work directory's record only: a campaign keeps its own in the database)."""
    path = Path(workdir) / CORRECTIONS_FILE
    if not path.is_file():
        return []
    try:
        corrections = json.loads(path.read_text())
    except ValueError as exc:
        log.warning("ignoring unreadable %s (%s): the calculation starts from its original settings", path, exc)
        return []
    return corrections if isinstance(corrections, list) else []


def load_atoms(workdir: Path) -> Atoms:
    """The configuration that `prepare` wrote into the work directory."""
    path = Path(workdir) / ATOMS_FILE
    if not path.is_file():
        raise LabelFailure(f"{path} is missing: the work directory was never prepared", False, "parse")
    return atoms_from_json(json.loads(path.read_text())["atoms"])


def settings_hash(backend_name: str, settings: BaseModel) -> str:
    blob = json.dumps({"backend": backend_name, "settings": settings.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_values(energy: float, forces: np.ndarray, stress: np.ndarray | None, n_atoms: int) -> None:
    """Reject what no training set should ever see: non-finite numbers or a force array of the wrong size."""
    if forces.shape != (n_atoms, 3):
        raise LabelFailure(f"forces have shape {forces.shape}, expected ({n_atoms}, 3)", False, "mismatch")
    bad = [name for name, v in (("energy", energy), ("forces", forces), ("stress", stress))
           if v is not None and not np.all(np.isfinite(v))]
    if bad:
        raise LabelFailure(f"non-finite {' and '.join(bad)} in the output (numerical blow-up)", False, "nan")


class DFTBackend(ABC):
    """A labelling code. Subclasses implement `write_inputs`, `execute` and `parse`; this class adds the
    bookkeeping every backend needs (input geometry, settings record, checks, idempotent result)."""

    name: ClassVar[str]
    settings: BaseModel

    def __init__(self, settings: BaseModel) -> None:
        self.settings = settings

    def with_settings(self, settings: BaseModel) -> DFTBackend:
        """The same backend with corrected settings (error handlers return new settings, never mutate)."""
        return type(self)(settings)

    def default_handlers(self) -> list[Any]:
        """Error handlers that `run_with_handlers` uses when the caller gives none."""
        return []

    # ---------------------------------------------------------------- the three steps
    def prepare(self, atoms: Atoms, workdir: Path) -> None:
        """Write everything the calculation needs into `workdir` (created if missing)."""
        validate_atoms(atoms)
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        record = {"atoms": atoms_to_json(atoms), "config_hash": config_hash(atoms)}
        write_json_atomic(workdir / ATOMS_FILE, record)
        write_json_atomic(workdir / SETTINGS_FILE, {"backend": self.name, "settings": self.settings.model_dump(mode="json")})
        self.write_inputs(atoms, workdir)

    @abstractmethod
    def write_inputs(self, atoms: Atoms, workdir: Path) -> None: ...

    @abstractmethod
    def execute(self, workdir: Path) -> None:
        """Run the code in `workdir`. Must not raise for a failed run: `read` diagnoses the outputs, so a
        run executed elsewhere (a batch job) is read the same way."""

    def read(self, workdir: Path) -> LabelResult:
        """Parse and check the outputs; raise LabelFailure for any failed or non-converged run."""
        workdir = Path(workdir)
        atoms = load_atoms(workdir)
        result = self.parse(workdir, atoms)
        if not result.converged:  # backends raise for this already; a second guard costs nothing
            raise LabelFailure("calculation reports itself as not converged", True, "scf")
        check_values(result.energy, result.forces, result.stress, len(atoms))
        result.meta.setdefault("config_hash", config_hash(atoms))
        result.meta.setdefault("n_atoms", len(atoms))
        result.meta.setdefault("settings_hash", settings_hash(self.name, self.settings))
        corrections = load_corrections(workdir)
        if corrections:
            result.meta["corrections"] = [{k: v for k, v in c.items() if k != "settings"} for c in corrections]
        return result

    @abstractmethod
    def parse(self, workdir: Path, atoms: Atoms) -> LabelResult: ...

    # ---------------------------------------------------------------- convenience
    def finalize(self, workdir: Path) -> LabelResult:
        """Read the outputs of an executed run and record the result (the step after a batch job)."""
        result = self.read(workdir)
        write_json_atomic(Path(workdir) / RESULT_FILE, result.to_dict())
        return result

    def compute(self, atoms: Atoms, workdir: Path) -> LabelResult:
        """prepare → execute → read, or the recorded result if this work directory already finished."""
        workdir = Path(workdir)
        done = load_result(workdir)
        if done is not None:
            want = config_hash(atoms)
            if done.meta.get("config_hash", want) != want:
                raise LabelFailure(
                    f"{workdir} holds the finished result of another configuration "
                    f"({done.meta['config_hash']} ≠ {want}): use one work directory per configuration",
                    False, "mismatch")
            return done
        t0 = time.perf_counter()
        self.prepare(atoms, workdir)
        self.execute(workdir)
        result = self.read(workdir)
        result.meta.setdefault("wall_s", time.perf_counter() - t0)
        write_json_atomic(workdir / RESULT_FILE, result.to_dict())
        return result
