"""GPAW plane-wave DFT, the embedded default labeller: real DFT that installs from PyPI and runs here.

The calculation runs in a child process (`python -m alloop.label.gpaw_run <workdir>`) so that a
segfault, an out-of-memory kill or a hang ends that process only, and a timeout bounds it.

GPAW's PAW setups are not VASP's: its energies sit on another per-element reference than the VASP-PBE
data the uMLIPs were trained on (see alloop.label.reference); forces are comparable.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.errors import MissingFileError, UnphysicalStructureError
from alloop.atomic import write_json_atomic
from alloop.label.base import DFTBackend, LabelFailure, LabelResult
from alloop.label.handlers import KindHandler
from alloop.process import run_child
from alloop.renames import upgrade
from alloop.schema import unit

#: The paper's k-point resolution 2π × 0.03 Å⁻¹, in VASP's KSPACING convention (Å⁻¹, 2π included).
PAPER_KSPACING = 2 * math.pi * 0.03

INPUT_FILE = "gpaw_input.json"
OUTPUT_FILE = "gpaw_output.json"
ERROR_FILE = "gpaw_error.json"
EXECUTE_FILE = "execute.json"
LOG_FILE = "gpaw.txt"


class GPAWSettings(BaseModel):
    """GPAW settings mirroring the paper's VASP setup where they can. The paper uses VASP with a 520 eV
    cutoff; the default 350 eV keeps laptop runs short (converged enough for W forces, not for
    publication energies): raise `ecut` for production."""

    model_config = ConfigDict(extra="forbid")

    ecut: float = Field(350.0, gt=0, description="plane-wave cutoff (the paper's VASP: 520)", json_schema_extra=unit("eV"))
    kspacing: float = Field(
        PAPER_KSPACING, gt=0, json_schema_extra=unit("Å⁻¹"),
        description="k-point spacing in VASP's KSPACING convention, 2π included: "
                    "N_i = max(1, ceil(2π|b_i|/kspacing)), b_i·a_j = δ_ij. The paper: 2π·0.03",
    )
    kpts: tuple[int, int, int] | None = Field(None, description="explicit k-mesh; overrides kspacing")
    gamma: bool = Field(True, description="Γ-centred mesh (VASP's KGAMMA = .TRUE.)")
    xc: str = Field("PBE", description="exchange-correlation functional (GPAW's name; PAW setups must exist for it)")
    smearing: Literal["methfessel-paxton", "fermi-dirac"] = Field(
        "methfessel-paxton", description="occupation smearing (Methfessel-Paxton order 1 is VASP's ISMEAR = 1)")
    smearing_width: float = Field(0.1, gt=0, description="smearing width (VASP's SIGMA)", json_schema_extra=unit("eV"))
    maxiter: int = Field(200, ge=1, description="maximum SCF iterations")
    energy_tol: float = Field(1e-6, gt=0, description="SCF energy change, total (the paper's EDIFF = 1e-6 eV)",
                              json_schema_extra=unit("eV"))
    density_tol: float = Field(1e-4, gt=0, description="SCF density change, electrons per valence electron")
    mixer_beta: float = Field(0.05, gt=0, le=1, description="density mixing β (GPAW's default 0.05)")
    mixer_nmaxold: int = Field(10, ge=1, description="densities the Pulay mixer remembers")
    spinpol: bool = Field(False, description="spin-polarised calculation")
    compute_stress: bool = Field(True, description="also compute the stress tensor (costs a little more)")
    setups_path: Path | None = Field(None, description="folder of PAW setups searched first (default: gpaw-data)")
    walltime_s: float = Field(3600.0, gt=0, description="time limit of one run: the GPAW process is killed after it "
                              "(a batch job asks for it plus a grace period); the walltime correction doubles it",
                              json_schema_extra=unit("s"))

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        # settings.json and corrections.json of work directories made by an older alloop
        return upgrade(data, "labels.dft.gpaw")[0] if isinstance(data, dict) else data


def kpts_from_kspacing(cell: np.ndarray, kspacing: float) -> tuple[int, int, int]:
    """VASP's KSPACING rule: N_i = max(1, ceil(2π|b_i| / kspacing)) with b_i the reciprocal vectors
    without 2π. (ASE's `kpts={'density': d}` is the same rule with d = 1/kspacing.)"""
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T
    # A tiny tolerance keeps an exact integer (e.g. a cubic cell at a round spacing) from rounding up.
    n = np.ceil(2 * np.pi * np.linalg.norm(recip, axis=1) / kspacing - 1e-9)
    return tuple(int(max(1, v)) for v in n)  # type: ignore[return-value]


def gpaw_parameters(settings: GPAWSettings, atoms: Atoms) -> dict[str, Any]:
    """Keyword arguments for `gpaw.GPAW` (JSON-serialisable; the child process passes them on)."""
    kpts = settings.kpts if settings.kpts is not None else kpts_from_kspacing(atoms.cell, settings.kspacing)
    occupations: dict[str, Any] = {"name": settings.smearing, "width": settings.smearing_width}
    if settings.smearing == "methfessel-paxton":
        occupations["order"] = 1  # VASP's ISMEAR = 1
    return {
        "mode": {"name": "pw", "ecut": settings.ecut},
        "xc": settings.xc,
        "kpts": {"size": list(kpts), "gamma": settings.gamma},
        "occupations": occupations,
        "maxiter": settings.maxiter,
        "convergence": {"energy": {"name": "energy", "tol": settings.energy_tol, "relative": False},
                        "density": settings.density_tol},
        "mixer": {"beta": settings.mixer_beta, "nmaxold": settings.mixer_nmaxold},
        "spinpol": settings.spinpol,
    }


def setup_search_paths(settings: GPAWSettings) -> list[Path]:
    """Where the child process's GPAW will look for PAW setups, in GPAW's order."""
    paths: list[Path] = []
    if settings.setups_path is not None:
        paths.append(Path(settings.setups_path))
    paths += [Path(p) for p in os.environ.get("GPAW_SETUP_PATH", "").split(os.pathsep) if p]
    try:
        import gpaw_data

        paths.append(Path(gpaw_data.datapath()))
    except ModuleNotFoundError:
        pass
    return paths


def check_setups(symbols: list[str], settings: GPAWSettings) -> None:
    """Raise MissingFileError naming the first element without a PAW setup, before any process starts."""
    setup_xc = {"LDA": "LDA", "RPBE": "RPBE", "revPBE": "revPBE"}.get(settings.xc, "PBE")
    paths = setup_search_paths(settings)
    for sym in dict.fromkeys(symbols):
        names = (f"{sym}.{setup_xc}", f"{sym}.{setup_xc}.gz")
        if not any((p / n).is_file() for p in paths for n in names):
            where = ", ".join(str(p) for p in paths) or "nowhere (no gpaw-data, no GPAW_SETUP_PATH)"
            raise MissingFileError(
                f"{sym}.{setup_xc}[.gz]", f"GPAW PAW setup for element {sym}",
                f"`pip install gpaw-data` (ships setups for most elements), or point GPAW_SETUP_PATH or "
                f"the GPAW settings' setups_path at a folder holding {sym}.{setup_xc}.gz; searched: {where}",
            )


class GPAWBackend(DFTBackend):
    name = "gpaw"
    settings: GPAWSettings

    def __init__(self, settings: GPAWSettings | None = None) -> None:
        super().__init__(settings or GPAWSettings())

    def default_handlers(self) -> list[Any]:
        return [KindHandler("gpaw-scf", "scf", more_scf_effort), KindHandler("gpaw-walltime", "walltime", more_time)]

    def write_inputs(self, atoms: Atoms, workdir: Path) -> None:
        if not atoms.pbc.all():
            raise UnphysicalStructureError(
                "plane-wave DFT needs a periodic cell: give a cluster or dimer pbc=True in a box with "
                "vacuum (≥ 6 Å between periodic images)")
        check_setups(atoms.get_chemical_symbols(), self.settings)
        for stale in (OUTPUT_FILE, ERROR_FILE, EXECUTE_FILE):
            (workdir / stale).unlink(missing_ok=True)
        write_json_atomic(workdir / INPUT_FILE, {"parameters": gpaw_parameters(self.settings, atoms),
                                                 "compute_stress": self.settings.compute_stress})

    def execute(self, workdir: Path) -> None:
        workdir = Path(workdir)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        if self.settings.setups_path is not None:
            env["GPAW_SETUP_PATH"] = os.pathsep.join(
                p for p in (str(self.settings.setups_path), os.environ.get("GPAW_SETUP_PATH", "")) if p)
        t0 = time.perf_counter()
        with open(workdir / "gpaw_run.out", "w") as out:
            rc, timed_out = run_child([sys.executable, "-m", "alloop.label.gpaw_run", str(workdir)], cwd=workdir,
                                      env=env, stdout=out, stderr=subprocess.STDOUT, timeout_s=self.settings.walltime_s)
        write_json_atomic(workdir / EXECUTE_FILE, {"returncode": rc, "timed_out": timed_out,
                                                   "wall_s": time.perf_counter() - t0})

    def parse(self, workdir: Path, atoms: Atoms) -> LabelResult:
        if (workdir / OUTPUT_FILE).is_file():
            out = json.loads((workdir / OUTPUT_FILE).read_text())
            meta = {k: out[k] for k in ("wall_s", "n_scf", "gpaw_version", "kpts", "energy_sigma0") if k in out}
            meta["settings"] = self.settings.model_dump(mode="json")
            return LabelResult(out["free_energy"], np.asarray(out["forces"]),
                               None if out.get("stress") is None else np.asarray(out["stress"]), "gpaw", True, meta)
        run = json.loads((workdir / EXECUTE_FILE).read_text()) if (workdir / EXECUTE_FILE).is_file() else None
        if run is not None and run["timed_out"]:
            raise LabelFailure(f"GPAW did not finish within walltime_s = {self.settings.walltime_s:g} s", True, "walltime")
        if (workdir / ERROR_FILE).is_file():
            err = json.loads((workdir / ERROR_FILE).read_text())
            if err["kind"] == "missing_setup":
                raise MissingFileError(err.get("path", "?"), "GPAW PAW setup",
                                       "`pip install gpaw-data`, or set GPAW_SETUP_PATH / setups_path")
            raise LabelFailure(err["reason"], bool(err["retryable"]), err["kind"])
        if run is None:
            raise LabelFailure(f"no GPAW output in {workdir}: the calculation has not run", True, "unfinished")
        rc = run["returncode"]
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
        hint = " (SIGKILL: often the out-of-memory killer)" if rc == -signal.SIGKILL else ""
        raise LabelFailure(f"GPAW process died with {how}{hint}; see {workdir / 'gpaw_run.out'}", True, "crash")


def more_scf_effort(settings: GPAWSettings) -> GPAWSettings:
    """Non-converged SCF: twice the iterations (up to 1000) and half the mixing β (down to 0.01)."""
    return settings.model_copy(update={"maxiter": min(2 * settings.maxiter, 1000),
                                       "mixer_beta": max(settings.mixer_beta / 2, 0.01)})


def more_time(settings: GPAWSettings) -> GPAWSettings:
    return settings.model_copy(update={"walltime_s": 2 * settings.walltime_s})
