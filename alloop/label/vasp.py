"""VASP single points: INCAR from templates/vasp/INCAR (the paper's Methods) plus per-campaign overrides,
POSCAR through ASE, POTCAR concatenated from a PBE PAW library; outputs parsed from vasprun.xml (or
OUTCAR) through ASE after a diagnosis of the run (finished? SCF converged? known VASP error?).

The three steps are separable: a job scheduler may call `prepare`, run `command_for(settings)` in the
work directory as a batch job, and call `finalize` once the job ended; `execute` is only the local way
of running the command.
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alloop.errors import ConfigError, MissingFileError
from alloop.label.base import DFTBackend, LabelFailure, LabelResult, write_json_atomic
from alloop.label.handlers import KindHandler
from alloop.process import run_child

SORT_FILE = "vasp_sort.json"
EXECUTE_FILE = "execute.json"
STDOUT_FILE = "vasp.out"
STDERR_FILE = "vasp.err"
IncarValue = str | int | float | bool


def template_path(relative: str) -> Path:
    """A file under the repository's templates/ folder (shipped as the alloop.templates package)."""
    try:
        from importlib.resources import files

        path = Path(str(files("alloop.templates") / relative))
        if path.is_file():
            return path
    except ModuleNotFoundError:  # an editable install maps only `alloop` itself
        pass
    return Path(__file__).resolve().parents[2] / "templates" / relative


class VaspSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incar_template: Path | None = Field(None, description="INCAR to start from (default: templates/vasp/INCAR)")
    incar: dict[str, IncarValue] = Field(default_factory=dict, description="per-campaign INCAR overrides")
    potcar_dir: Path | None = Field(
        None, description="folder holding <label>/POTCAR (default: $VASP_PP_PATH/potpaw_PBE)")
    potcars: dict[str, str] = Field(
        default_factory=dict, description="element → POTCAR label, e.g. {W: W_sv}; default: the element symbol")
    command: str | None = Field(None, description="command that runs VASP in the work directory "
                                                  "(default: $ASE_VASP_COMMAND, then $VASP_COMMAND)")
    walltime_s: float | None = Field(
        None, gt=0, description="time limit of one run: `execute` kills VASP after it, a job scheduler "
                                "should request it; the walltime correction doubles it")

    @field_validator("incar")
    @classmethod
    def _upper_keys(cls, v: dict[str, IncarValue]) -> dict[str, IncarValue]:
        return {k.strip().upper(): val for k, val in v.items()}

    def incar_tags(self) -> dict[str, str]:
        """The INCAR that `prepare` writes: template tags, then the overrides, values as VASP text."""
        path = self.incar_template or template_path("vasp/INCAR")
        if not path.is_file():
            raise MissingFileError(path, "INCAR template", "give incar_template, or restore templates/vasp/INCAR")
        tags = parse_incar(path.read_text())
        tags.update({k: format_incar_value(v) for k, v in self.incar.items()})
        return tags

    def with_incar(self, changes: dict[str, IncarValue]) -> VaspSettings:
        return self.model_copy(update={"incar": {**self.incar, **{k.upper(): v for k, v in changes.items()}}})


def parse_incar(text: str) -> dict[str, str]:
    """KEY = value lines; `!` and `#` start comments, `;` separates several tags on one line."""
    tags: dict[str, str] = {}
    for line in text.splitlines():
        line = re.split(r"[!#]", line, maxsplit=1)[0]
        for part in line.split(";"):
            if "=" in part:
                key, value = part.split("=", 1)
                tags[key.strip().upper()] = value.strip()
    return tags


def format_incar_value(v: IncarValue) -> str:
    if isinstance(v, bool):
        return ".TRUE." if v else ".FALSE."
    if isinstance(v, float):
        return format(v, ".10g")
    return str(v)


def _tag_float(tags: dict[str, str], key: str, default: float) -> float:
    value = tags.get(key)
    return default if value is None else float(value.lower().replace("d", "e"))


def command_for(settings: VaspSettings) -> str:
    command = settings.command or os.environ.get("ASE_VASP_COMMAND") or os.environ.get("VASP_COMMAND")
    if not command:
        raise MissingFileError("$ASE_VASP_COMMAND", "command to run VASP",
                               "set ASE_VASP_COMMAND (e.g. 'mpirun -n 16 vasp_std') or the VASP settings' command")
    return command


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


# ---------------------------------------------------------------------------------------------- diagnosis
#: Known VASP error messages (after custodian's VaspErrorHandler), by code.
ERROR_PATTERNS: dict[str, tuple[str, ...]] = {
    "tet": ("Tetrahedron method fails", "tetrahedron method fails", "Routine TETIRR needs special values",
            "Fatal error detecting k-mesh", "DENTET"),
    "inv_rot_mat": ("rotation matrix was not found (increase SYMPREC)",),
    "brmix": ("BRMIX: very serious problems",),
    "subspacematrix": ("Sub-Space-Matrix is not hermitian",),
    "edddav": ("Error EDDDAV: Call to ZHEGV failed",),
    "eddrmm": ("WARNING in EDDRMM: call to ZHEGV failed",),
    "zpotrf": ("LAPACK: Routine ZPOTRF failed", "Routine ZPOTRF ZTRTRI"),
    "zbrent": ("ZBRENT: fatal error",),
    "pricel": ("internal error in subroutine PRICEL",),
    "bravais": ("Inconsistent Bravais lattice types",),
    "real_optlay": ("REAL_OPTLAY: internal error", "REAL_OPT: internal ERROR", "ERROR RSPHER"),
    "very_bad_news": ("VERY BAD NEWS! internal error",),
    "vasp_error": ("I REFUSE TO CONTINUE WITH THIS SICK JOB", "EEEEEEE  RRRRRR   RRRRRR   OOOOOOO  RRRRRR"),
    "vasp_bug": ("Please submit a bug report",),
    "environment": ("failed to locate mpirun", "mpirun: command not found", "error while loading shared libraries"),
}
WALLTIME_PATTERNS = ("DUE TO TIME LIMIT", "job killed: walltime", "TERM_RUNLIMIT")
_SCANNED_SUFFIXES = (".out", ".err", ".log")


@dataclass(frozen=True)
class VaspStatus:
    """What the files of a VASP run say about it."""

    output: Path | None  # the complete file to read values from (vasprun.xml preferred, else OUTCAR)
    finished: bool
    nelm: int
    n_scf: int | None  # electronic steps of the first ionic step (the input geometry)
    errors: tuple[str, ...]
    walltime: bool
    elapsed_s: float | None

    @property
    def scf_converged(self) -> bool:
        return self.n_scf is not None and self.n_scf < self.nelm


def _read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def scan_errors(workdir: Path) -> tuple[tuple[str, ...], bool]:
    """Known error codes, and whether a time limit killed the run, from stdout/stderr files and OUTCAR."""
    texts = [_read_text(workdir / "OUTCAR"), _read_text(workdir / "stdout")]
    texts += [_read_text(p) for p in sorted(workdir.iterdir()) if p.suffix in _SCANNED_SUFFIXES]
    blob = "\n".join(texts)
    codes = tuple(code for code, pats in ERROR_PATTERNS.items() if any(p in blob for p in pats))
    return codes, any(p in blob for p in WALLTIME_PATTERNS)


def _vasprun_status(path: Path) -> tuple[bool, int | None, int | None]:
    """(complete, NELM, electronic steps of the first ionic step) from vasprun.xml."""
    text = _read_text(path)
    if "</modeling>" not in text[-200:]:
        return False, None, None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return False, None, None
    nelm_el = root.find("./parameters/separator[@name='electronic']/separator[@name='electronic convergence']"
                        "/i[@name='NELM']")
    first = root.find("calculation")
    n_scf = None if first is None else len(first.findall("scstep"))
    return True, None if nelm_el is None else int(nelm_el.text), n_scf


_ITER = re.compile(r"Iteration\s+(\d+)\(\s*(\d+)\)")


def _outcar_status(path: Path) -> tuple[bool, int | None, int | None, float | None]:
    """(finished, NELM, electronic steps of the first ionic step, elapsed seconds) from OUTCAR."""
    text = _read_text(path)
    finished = "General timing and accounting informations for this job" in text
    m = re.search(r"NELM\s*=\s*(\d+)", text)
    steps = [int(e) for i, e in _ITER.findall(text) if i == "1"]
    t = re.search(r"Elapsed time \(sec\):\s*([\d.]+)", text)
    return finished, int(m.group(1)) if m else None, max(steps) if steps else None, float(t.group(1)) if t else None


def diagnose(workdir: Path) -> VaspStatus:
    workdir = Path(workdir)
    codes, walltime = scan_errors(workdir)
    run = workdir / EXECUTE_FILE
    if run.is_file() and json.loads(run.read_text())["timed_out"]:
        walltime = True
    xml_ok, xml_nelm, n_scf = _vasprun_status(workdir / "vasprun.xml")
    out_finished, out_nelm, out_scf, elapsed = _outcar_status(workdir / "OUTCAR")
    # NELM as the output reports it, else as the INCAR asked, else VASP's default of 60.
    nelm = xml_nelm or out_nelm or int(parse_incar(_read_text(workdir / "INCAR")).get("NELM", "60"))
    if xml_ok:
        return VaspStatus(workdir / "vasprun.xml", True, nelm, n_scf, codes, walltime, elapsed)
    return VaspStatus(workdir / "OUTCAR" if out_finished else None, out_finished, nelm, out_scf, codes,
                      walltime, elapsed)


# ---------------------------------------------------------------------------------------------- backend
class VaspBackend(DFTBackend):
    name = "vasp"
    settings: VaspSettings

    def __init__(self, settings: VaspSettings | None = None) -> None:
        super().__init__(settings or VaspSettings())

    def default_handlers(self) -> list[Any]:
        return [*CODE_HANDLERS, KindHandler("vasp-nelm", "scf", nelm_correction),
                KindHandler("vasp-walltime", "walltime", more_walltime)]

    def write_inputs(self, atoms: Atoms, workdir: Path) -> None:
        from ase.io import write

        tags = self.settings.incar_tags()
        problems = []
        if int(tags.get("NSW", "0")) != 0:
            problems.append(f"INCAR NSW = {tags['NSW']}: labels are single points (NSW = 0); a relaxation "
                            "would label another geometry than the one selected")
        if problems:
            raise ConfigError(problems, "VASP settings")
        species, order = species_order(atoms.get_chemical_symbols())
        potcars = potcar_paths(species, self.settings)
        for stale in ("vasprun.xml", "OUTCAR", EXECUTE_FILE, STDOUT_FILE, STDERR_FILE):
            (workdir / stale).unlink(missing_ok=True)
        write(workdir / "POSCAR", atoms[order], format="vasp", direct=True)
        (workdir / "INCAR").write_text("".join(f"{k} = {v}\n" for k, v in tags.items()))
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
        fixable = any(h.fixes(code) for code in status.errors for h in CODE_HANDLERS)
        if not status.finished:
            if status.walltime:
                raise LabelFailure(f"VASP was stopped by its time limit (walltime_s = {self.settings.walltime_s})",
                                   True, "walltime", status.errors)
            if status.errors:
                raise LabelFailure(f"VASP stopped with error(s) {', '.join(status.errors)}; see {workdir}",
                                   fixable, "crash", status.errors)
            run = workdir / EXECUTE_FILE
            rc = f" (exit code {json.loads(run.read_text())['returncode']})" if run.is_file() else ""
            raise LabelFailure(f"VASP run in {workdir} did not finish{rc}: no final timing in OUTCAR, no "
                               "complete vasprun.xml, and no known error message", True, "unfinished")
        if status.n_scf is None:
            raise LabelFailure(f"cannot find the electronic steps in {status.output}", False, "parse")
        if not status.scf_converged:
            raise LabelFailure(f"VASP SCF not converged: {status.n_scf} electronic steps reached NELM = "
                               f"{status.nelm}", True, "scf", status.errors)
        return self._values(workdir, atoms, status)

    def _values(self, workdir: Path, atoms: Atoms, status: VaspStatus) -> LabelResult:
        from ase.io import read

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
        meta: dict[str, Any] = {
            "energy_sigma0": float(res.get("energy", free_energy)),
            "n_scf": status.n_scf, "nelm": status.nelm, "output": status.output.name,
            "incar": parse_incar(_read_text(workdir / "INCAR")),
            "potcars": re.findall(r"TITEL\s*=\s*(.+)", _read_text(workdir / "POTCAR")),
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


# ---------------------------------------------------------------------------------------------- corrections
@dataclass(frozen=True)
class CodeHandler:
    """Corrects a VASP error message: `fix` maps the current INCAR tags to the tags to change
    (an empty dict: nothing left to try)."""

    name: str
    codes: tuple[str, ...]
    fix: Callable[[dict[str, str]], dict[str, IncarValue]]

    def fixes(self, code: str) -> bool:
        return code in self.codes

    def check(self, workdir: Path, error: Any) -> bool:
        return any(c in self.codes for c in getattr(error, "codes", ()))

    def correct(self, settings: VaspSettings) -> VaspSettings:
        changes = self.fix(settings.incar_tags())
        return settings.with_incar(changes) if changes else settings


def _algo_all(tags: dict[str, str]) -> dict[str, IncarValue]:
    return {} if tags.get("ALGO", "Normal").lower() == "all" else {"ALGO": "All"}


def _symmetry_off(tags: dict[str, str]) -> dict[str, IncarValue]:
    return {} if tags.get("ISYM", "").strip() == "0" else {"ISYM": 0}


def _lreal_on(tags: dict[str, str]) -> bool:
    return tags.get("LREAL", ".FALSE.").strip(". ").upper() not in ("F", "FALSE")


def _lreal_off(tags: dict[str, str]) -> dict[str, IncarValue]:
    return {"LREAL": False} if _lreal_on(tags) else {}


def _subspace(tags: dict[str, str]) -> dict[str, IncarValue]:
    if _lreal_on(tags):
        return {"LREAL": False}
    if tags.get("PREC", "Normal").lower() != "accurate":
        return {"PREC": "Accurate"}
    return _algo_all(tags)


def _brmix(tags: dict[str, str]) -> dict[str, IncarValue]:
    return _symmetry_off(tags) or ({} if tags.get("IMIX", "4").strip() == "1" else {"IMIX": 1})


def _smaller_ediff(tags: dict[str, str]) -> dict[str, IncarValue]:
    ediff = _tag_float(tags, "EDIFF", 1e-4)
    return {"EDIFF": ediff / 10} if ediff > 1e-8 else {}


def _no_tetrahedron(tags: dict[str, str]) -> dict[str, IncarValue]:
    return {} if tags.get("ISMEAR", "1").strip() in ("0", "1") else {"ISMEAR": 1, "SIGMA": 0.1}


def _symprec(tags: dict[str, str]) -> dict[str, IncarValue]:
    return {} if _tag_float(tags, "SYMPREC", 1e-5) <= 1e-8 else {"SYMPREC": 1e-8}


#: Errors with a known correction. The rest (very_bad_news, vasp_error, vasp_bug, environment) need a person.
CODE_HANDLERS: tuple[CodeHandler, ...] = (
    CodeHandler("vasp-tetrahedron", ("tet",), _no_tetrahedron),
    CodeHandler("vasp-symprec", ("inv_rot_mat",), _symprec),
    CodeHandler("vasp-symmetry", ("pricel", "bravais", "zpotrf"), _symmetry_off),
    CodeHandler("vasp-brmix", ("brmix",), _brmix),
    CodeHandler("vasp-subspace", ("subspacematrix",), _subspace),
    CodeHandler("vasp-davidson", ("edddav", "eddrmm"), _algo_all),
    CodeHandler("vasp-zbrent", ("zbrent",), _smaller_ediff),
    CodeHandler("vasp-lreal", ("real_optlay",), _lreal_off),
)


def nelm_correction(settings: VaspSettings) -> VaspSettings:
    """SCF hit NELM: first ALGO = All (conjugate gradient), then damped mixing (AMIX 0.1, BMIX 0.01)
    with twice the steps, then more steps, up to NELM = 500."""
    tags = settings.incar_tags()
    nelm = int(tags.get("NELM", "60"))
    if tags.get("ALGO", "Normal").lower() != "all":
        return settings.with_incar({"ALGO": "All"})
    if _tag_float(tags, "AMIX", 0.4) > 0.1:
        return settings.with_incar({"AMIX": 0.1, "BMIX": 0.01, "NELM": min(max(2 * nelm, 200), 500)})
    return settings.with_incar({"NELM": min(2 * nelm, 500)}) if nelm < 500 else settings


def more_walltime(settings: VaspSettings) -> VaspSettings:
    """Twice the time; without a walltime_s there is nothing to raise (the scheduler's default applied)."""
    if settings.walltime_s is None:
        return settings
    return settings.model_copy(update={"walltime_s": 2 * settings.walltime_s})
