"""VASP single points: INCAR from templates/vasp/INCAR (the paper's Methods) plus per-campaign overrides,
written with pymatgen's `Incar` (the class custodian's error handlers read and rewrite, so alloop and
custodian agree on every tag's type); POSCAR through ASE; POTCAR concatenated from a PBE PAW library.
After a run, `alloop.label.vasp_diagnosis` says what happened (pymatgen's Vasprun/Outcar, custodian's
VaspErrorHandler), energies and forces are read through ASE, and failures are corrected by custodian's
handlers (`alloop.label.vasp_corrections`).

The three steps are separable: a job scheduler may call `prepare`, run `command_for(settings)` in the
work directory as a batch job, and call `finalize` once the job ended; `execute` is only the local way
of running the command.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alloop.atomic import write_json_atomic
from alloop.errors import ConfigError, MissingFileError
from alloop.label.base import DFTBackend, LabelFailure, LabelResult
from alloop.label.vasp_diagnosis import (
    EXECUTE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    VaspStatus,
    diagnose,
    tail,
)
from alloop.label.vasp_settings import VaspSettings, command_for
from alloop.process import run_child

__all__ = ["VaspBackend", "VaspSettings", "command_for", "potcar_paths", "species_order"]

SORT_FILE = "vasp_sort.json"


def species_order(symbols: list[str]) -> tuple[list[str], np.ndarray]:
    """Species in order of first appearance, and the stable permutation that groups atoms by species
    (VASP wants one block per species, matching the POTCAR order)."""
    species = list(dict.fromkeys(symbols))
    rank = np.array([species.index(s) for s in symbols])
    return species, np.argsort(rank, kind="stable")


def potcar_paths(species: list[str], settings: VaspSettings) -> list[Path]:
    if settings.potcar_dir is not None:
        roots = [Path(settings.potcar_dir)]
    else:
        roots = [Path(p) / "potpaw_PBE" for p in os.environ.get("VASP_PP_PATH", "").split(os.pathsep) if p]
    paths = []
    for el in species:
        label = settings.potcars.get(el, el)
        found = next((r / label / "POTCAR" for r in roots if (r / label / "POTCAR").is_file()), None)
        if found is None:
            where = roots[0] / label / "POTCAR" if roots else Path("$VASP_PP_PATH/potpaw_PBE") / label / "POTCAR"
            raise MissingFileError(
                where, f"VASP POTCAR for {el} (label {label})",
                "set VASP_PP_PATH to the folder that holds potpaw_PBE/<label>/POTCAR, or give the VASP "
                "settings' potcar_dir; choose another dataset per element with potcars: {El: label}")
        paths.append(found)
    return paths


# ---------------------------------------------------------------------------------------------- backend
class VaspBackend(DFTBackend):
    name = "vasp"
    settings: VaspSettings

    def __init__(self, settings: VaspSettings | None = None) -> None:
        super().__init__(settings or VaspSettings())

    def default_handlers(self) -> list[Any]:
        from alloop.label.vasp_corrections import default_vasp_handlers

        return default_vasp_handlers()

    def write_inputs(self, atoms: Atoms, workdir: Path) -> None:
        from ase.io import write

        incar = self.settings.incar_file()
        if int(incar.get("NSW", 0)) != 0:
            raise ConfigError([f"INCAR NSW = {incar['NSW']}: labels are single points (NSW = 0); a relaxation "
                               "would label another geometry than the one selected"], "VASP settings")
        species, order = species_order(atoms.get_chemical_symbols())
        potcars = potcar_paths(species, self.settings)
        for stale in ("vasprun.xml", "OUTCAR", "OSZICAR", "CONTCAR", EXECUTE_FILE, STDOUT_FILE, STDERR_FILE):
            (workdir / stale).unlink(missing_ok=True)
        write(workdir / "POSCAR", atoms[order], format="vasp", direct=True)
        incar.write_file(workdir / "INCAR")
        (workdir / "POTCAR").write_text("".join(p.read_text() for p in potcars))
        write_json_atomic(workdir / SORT_FILE, {"order": order.tolist(), "species": species})

    def execute(self, workdir: Path) -> None:
        workdir = Path(workdir)
        command = command_for(self.settings)
        t0 = time.perf_counter()
        with open(workdir / STDOUT_FILE, "w") as out, open(workdir / STDERR_FILE, "w") as err:
            rc, timed_out = run_child(command, shell=True, cwd=workdir, stdout=out, stderr=err,
                                      timeout_s=self.settings.walltime_s)
        write_json_atomic(workdir / EXECUTE_FILE, {"returncode": rc, "timed_out": timed_out,
                                                   "wall_s": time.perf_counter() - t0})

    def parse(self, workdir: Path, atoms: Atoms) -> LabelResult:
        status = diagnose(workdir)
        if not status.finished:
            if status.walltime:
                raise LabelFailure(f"VASP was stopped by its time limit (walltime_s = {self.settings.walltime_s})",
                                   True, "walltime", status.errors)
            if status.errors:  # custodian's VaspErrorHandler knows them: its corrections get a try
                raise LabelFailure(f"VASP stopped with error(s) {', '.join(status.errors)} (custodian's names); "
                                   f"see {workdir / STDOUT_FILE}", True, "crash", status.errors)
            if status.fatal:
                raise LabelFailure(f"VASP refused to continue, with a message no correction is known for; see "
                                   f"{workdir}:\n    {status.fatal}", False, "crash")
            run = workdir / EXECUTE_FILE
            rc = f" (exit code {json.loads(run.read_text())['returncode']})" if run.is_file() else ""
            last = tail(workdir / STDOUT_FILE) or tail(workdir / STDERR_FILE)
            raise LabelFailure(f"VASP run in {workdir} did not finish{rc}: no final timing in OUTCAR, no complete "
                               "vasprun.xml, and no known error message" + (f"; last lines of its output:\n    {last}" if last else ""),
                               True, "unfinished")
        if status.n_scf is None:
            raise LabelFailure(f"cannot find the electronic steps in {status.output}", False, "parse")
        if not status.scf_converged:
            raise LabelFailure(f"VASP SCF not converged: {status.n_scf} electronic steps reached NELM = "
                               f"{status.nelm}", True, "scf", status.errors)
        return self._values(workdir, atoms, status)

    def _values(self, workdir: Path, atoms: Atoms, status: VaspStatus) -> LabelResult:
        from ase.io import read
        from pymatgen.io.vasp.inputs import Incar

        assert status.output is not None
        fmt = "vasp-xml" if status.output.name.endswith(".xml") else "vasp-out"
        try:
            image = read(status.output, format=fmt, index=0)
            res = image.calc.results
            free_energy, forces_sorted = res["free_energy"], np.asarray(res["forces"])
        except Exception as exc:
            raise LabelFailure(f"cannot parse {status.output}: {type(exc).__name__}: {exc}", False, "parse") from exc
        order = np.asarray(json.loads((workdir / SORT_FILE).read_text())["order"]) if (workdir / SORT_FILE).is_file() \
            else np.arange(len(atoms))
        _check_same_structure(image, atoms[order], status.output)
        forces = np.empty_like(forces_sorted)
        forces[order] = forces_sorted
        potcar = workdir / "POTCAR"
        meta: dict[str, Any] = {
            "energy_sigma0": float(res.get("energy", free_energy)),
            "n_scf": status.n_scf, "nelm": status.nelm, "output": status.output.name,
            "incar": dict(Incar.from_file(workdir / "INCAR")),
            "potcars": re.findall(r"TITEL\s*=\s*(.+)", potcar.read_text()) if potcar.is_file() else [],
        }
        if status.elapsed_s is not None:
            meta["wall_s"] = status.elapsed_s
        if status.errors:
            meta["vasp_warnings"] = list(status.errors)
        return LabelResult(free_energy, forces, res.get("stress"), "vasp", True, meta)


def _check_same_structure(image: Atoms, expected: Atoms, path: Path) -> None:
    if len(image) != len(expected) or not np.array_equal(image.numbers, expected.numbers):
        raise LabelFailure(f"{path} holds {image.get_chemical_formula()}, the work directory's input is "
                           f"{expected.get_chemical_formula()}", False, "mismatch")
    d = image.get_scaled_positions(wrap=False) - expected.get_scaled_positions(wrap=False)
    d -= np.round(d)
    shift = np.abs(d @ np.asarray(expected.cell)).max()
    if shift > 1e-3 or not np.allclose(image.cell, expected.cell, atol=1e-4):
        raise LabelFailure(f"{path}: the first ionic step's geometry differs from the input (by {shift:.2g} Å)",
                           False, "mismatch")
