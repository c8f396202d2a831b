"""What the files of a finished (or killed) VASP run say about it, read with the libraries made for
them: pymatgen's `Vasprun` and `Outcar` (complete? NELM, electronic steps of the labelled geometry,
run time) and custodian's `VaspErrorHandler` (VASP's error messages in its stdout, under custodian's
names, which its corrections key on).

Two things custodian leaves to its caller are checked here: VASP's generic fatal-error boxes (ERROR,
BUG, "VERY BAD NEWS"), which mean VASP refused to go on for a reason custodian has no correction for,
so that the configuration is quarantined with VASP's message instead of being rerun unchanged; and
the messages a batch scheduler writes when it kills a job at its time limit.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from alloop.cluster.batch import TIME_LIMIT_MESSAGES
from alloop.errors import MissingFileError

EXECUTE_FILE = "execute.json"
STDOUT_FILE = "vasp.out"
STDERR_FILE = "vasp.err"
#: VASP's default NELM, for an INCAR that does not set it
DEFAULT_NELM = 60
#: Lines by which VASP announces that it stops: the ERROR box's banner and last line, the BUG box, and
#: the one-line "VERY BAD NEWS" of VASP 5.
FATAL_MARKERS = ("EEEEEEE  RRRRRR   RRRRRR   OOOOOOO  RRRRRR", "I REFUSE TO CONTINUE WITH THIS SICK JOB",
                 "Please submit a bug report", "VERY BAD NEWS! internal error")
_SCHEDULER_OUTPUT_SUFFIXES = (".out", ".err", ".log")


@dataclass(frozen=True)
class VaspStatus:
    """What the files of a VASP run say about it."""

    output: Path | None  # the complete file to read values from (vasprun.xml preferred, else OUTCAR)
    finished: bool
    nelm: int
    n_scf: int | None  # electronic steps of the first ionic step (the input geometry)
    errors: tuple[str, ...]  # custodian's VaspErrorHandler codes found in the stdout, sorted
    fatal: str | None  # the message of VASP's fatal-error box, if it printed one
    walltime: bool
    elapsed_s: float | None

    @property
    def scf_converged(self) -> bool:
        return self.n_scf is not None and self.n_scf < self.nelm


def require_vasp_libraries() -> None:
    """pymatgen and custodian come with the `vasp` extra; say so instead of a bare ImportError."""
    for module in ("pymatgen.io.vasp", "custodian.vasp"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            raise MissingFileError(f"Python package {exc.name}", "library that reads and corrects VASP runs",
                                   "pip install 'alloop[vasp]' (pymatgen and custodian)") from exc


def read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def tail(path: Path, n: int = 3) -> str:
    """The last `n` non-empty lines of a file, joined for a message ('' when there are none)."""
    return "\n    ".join([line.rstrip() for line in read_text(path).splitlines() if line.strip()][-n:])


def vasp_errors(workdir: Path) -> tuple[str, ...]:
    """custodian's VaspErrorHandler codes for the messages in the work directory's VASP stdout."""
    require_vasp_libraries()
    from custodian.vasp.handlers import VaspErrorHandler

    workdir = Path(workdir)
    if not (workdir / STDOUT_FILE).is_file() or not (workdir / "INCAR").is_file():
        return ()
    handler = VaspErrorHandler(output_filename=STDOUT_FILE)
    with warnings.catch_warnings():  # its advice on NBANDS and the like is not an error of ours
        warnings.simplefilter("ignore")
        handler.check(str(workdir))
    return tuple(sorted(handler.errors))


def fatal_message(text: str) -> str | None:
    """The message of the last fatal-error box VASP printed (its lines of prose, without the banner art),
    or None."""
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if any(m in line for m in FATAL_MARKERS)]
    if not hits:
        return None
    i = hits[-1]
    if not lines[i].lstrip().startswith("|"):  # VASP 5's one-line VERY BAD NEWS and the line explaining it
        return " ".join(line.strip() for line in lines[i:i + 2])
    start, end = i, i
    while start > 0 and lines[start - 1].lstrip().startswith("|"):
        start -= 1
    while end + 1 < len(lines) and lines[end + 1].lstrip().startswith("|"):
        end += 1
    # prose has lower-case letters; the banners (EEEEEEE RRRRRR, the BUG letters) have none
    prose = [line.strip().strip("|").strip() for line in lines[start:end + 1] if any(c.islower() for c in line)]
    return " ".join(prose) or "an ERROR box without an explanation"


def killed_at_time_limit(workdir: Path) -> bool:
    """`execute` timed the run out, or a scheduler's output file in the work directory says it did."""
    workdir = Path(workdir)
    run = workdir / EXECUTE_FILE
    if run.is_file() and json.loads(run.read_text())["timed_out"]:
        return True
    texts = (read_text(p) for p in sorted(workdir.iterdir()) if p.suffix in _SCHEDULER_OUTPUT_SUFFIXES)
    return any(m in text for text in texts for m in TIME_LIMIT_MESSAGES)


@dataclass(frozen=True)
class _OutputFacts:
    complete: bool
    nelm: int | None = None
    n_scf: int | None = None
    elapsed_s: float | None = None


def _vasprun_facts(path: Path) -> _OutputFacts:
    from pymatgen.io.vasp.outputs import Vasprun

    if not path.is_file():
        return _OutputFacts(False)
    try:
        with warnings.catch_warnings():  # Vasprun warns about unconverged runs: that is our own check
            warnings.simplefilter("ignore")
            run = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_projected_eigen=False,
                          parse_potcar_file=False)
    except Exception:  # a truncated or corrupt file: the XML parser's error, whichever it is
        return _OutputFacts(False)
    n_scf = len(run.ionic_steps[0]["electronic_steps"]) if run.ionic_steps else None
    return _OutputFacts(True, int(run.parameters["NELM"]), n_scf)


def _outcar_facts(path: Path) -> _OutputFacts:
    from pymatgen.io.vasp.outputs import Outcar

    if not path.is_file():
        return _OutputFacts(False)
    try:
        outcar = Outcar(str(path))
    except Exception:  # pymatgen's parser stops on an OUTCAR cut short by a crash (IndexError and others)
        return _OutputFacts(False)
    outcar.read_pattern({"nelm": r"NELM\s*=\s*(\d+)", "scf": r"Iteration\s+1\(\s*(\d+)\)"}, postprocess=int,
                        terminate_on_match=False)
    nelm, scf = outcar.data.get("nelm"), outcar.data.get("scf")
    elapsed = outcar.run_stats.get("Elapsed time (sec)")
    return _OutputFacts(elapsed is not None, nelm[0][0] if nelm else None, max(s[0] for s in scf) if scf else None,
                        elapsed)


def diagnose(workdir: Path) -> VaspStatus:
    require_vasp_libraries()
    from pymatgen.io.vasp.inputs import Incar

    workdir = Path(workdir)
    errors = vasp_errors(workdir)
    fatal = fatal_message(read_text(workdir / STDOUT_FILE)) or fatal_message(read_text(workdir / "OUTCAR"))
    walltime = killed_at_time_limit(workdir)
    xml = _vasprun_facts(workdir / "vasprun.xml")
    out = _outcar_facts(workdir / "OUTCAR")
    incar = workdir / "INCAR"
    # NELM as the output reports it, else as the INCAR asked, else VASP's default
    nelm = xml.nelm or out.nelm or int(Incar.from_file(incar).get("NELM", DEFAULT_NELM) if incar.is_file()
                                       else DEFAULT_NELM)
    if xml.complete:
        return VaspStatus(workdir / "vasprun.xml", True, nelm, xml.n_scf, errors, fatal, walltime, out.elapsed_s)
    return VaspStatus(workdir / "OUTCAR" if out.complete else None, out.complete, nelm, out.n_scf, errors, fatal,
                      walltime, out.elapsed_s)
