"""Corrections of failed VASP runs by custodian's handlers, within alloop's correction budget.

custodian's handlers work on a job directory: `check` reads the outputs, `correct` rewrites INCAR (and
sometimes KPOINTS, POSCAR or other files) through custodian's VaspModder, and the handler object
counts how often it corrected each error. alloop instead keeps each attempt's settings in
corrections.json (a batch job may be corrected by another process, after a restart), and never lets a
correction change the geometry being labelled. So each correction here

1. writes the failed attempt's INCAR (from its settings) and POSCAR into a scratch folder, with links
   to its outputs (the handler's backup tarball and its edits stay there);
2. gives the handler the error counts recorded with its previous corrections of this work directory;
3. runs the handler's `correct` and reads the INCAR it wrote back with pymatgen: the tags it set or
   removed become overrides of the VASP settings. Actions on POSCAR, KPOINTS (alloop uses KSPACING) or
   other files are not applied, only recorded; a correction that had no INCAR change counts as
   "nothing left to try" and sends the configuration to quarantine.

Handlers (alloop.label.handlers picks the first whose `check` is true):
- "vasp-errors": VaspErrorHandler, for a run that stopped with messages custodian knows (kind "crash");
- "vasp-unconverged": UnconvergedErrorHandler, the SCF hit NELM and vasprun.xml is complete;
- "vasp-nonconverging": NonConvergingErrorHandler's ALGO and mixing ladder, the SCF hit NELM and there
  is no complete vasprun.xml (its own `check` wants ten ionic steps at NELM; a single point has one);
- "vasp-walltime": twice `walltime_s`. custodian's WalltimeHandler is not used: it writes a STOPCAR that
  ends a run after the current ionic step (LSTOP) or electronic step (LABORT). A single point has one
  ionic step, and a run stopped mid-SCF is no label, so for alloop a time limit means "again, longer".
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alloop.errors import LabelError
from alloop.label.handlers import KindHandler
from alloop.label.vasp_settings import IncarValue, VaspSettings
from alloop.label.vasp_diagnosis import STDERR_FILE, STDOUT_FILE, require_vasp_libraries

#: outputs custodian's handlers read; linked, never copied, into the scratch folder
_OUTPUTS = ("OUTCAR", "vasprun.xml", "OSZICAR", STDOUT_FILE, STDERR_FILE)


@contextmanager
def _custodian_view(settings: VaspSettings, workdir: Path) -> Iterator[Path]:
    """A scratch job directory as custodian expects one, for the attempt that ran in `workdir`."""
    from custodian.utils import tracked_lru_cache

    with tempfile.TemporaryDirectory(prefix="alloop-custodian-") as tmp:
        scratch = Path(tmp)
        settings.incar_file().write_file(scratch / "INCAR")
        shutil.copy(workdir / "POSCAR", scratch / "POSCAR")
        # a single point's final geometry is its input; NonConvergingErrorHandler reads CONTCAR
        contcar = workdir / "CONTCAR"
        shutil.copy(contcar if contcar.is_file() and contcar.stat().st_size else workdir / "POSCAR",
                    scratch / "CONTCAR")
        for name in _OUTPUTS:
            if (workdir / name).is_file():
                (scratch / name).symlink_to((workdir / name).resolve())
        try:
            yield scratch
        finally:
            # custodian caches parsed outputs by path; the work directory's next attempt has the same paths
            tracked_lru_cache.tracked_cache_clear()


def _incar_value(value: Any) -> IncarValue:
    return " ".join(map(str, value)) if isinstance(value, list) else value


def _not_applied(actions: list[dict[str, Any]]) -> list[str]:
    """custodian's actions other than INCAR edits, as "target: action" (a single point's CONTCAR is its
    POSCAR, so custodian's habitual CONTCAR → POSCAR copy is no change and is left out)."""
    out = set()
    for action in actions:
        target = action.get("dict") or action.get("file", "?")
        if target == "INCAR" or (target == "CONTCAR" and "_file_copy" in action["action"]):
            continue
        out.add(f"{target}: {', '.join(action['action'])}")
    return sorted(out)


def _previous_counts(history: list[dict[str, Any]], name: str) -> Counter[str]:
    for record in reversed(history):
        if record.get("handler") == name and "custodian" in record:
            return Counter(record["custodian"].get("error_count", {}))
    return Counter()


@dataclass(frozen=True)
class CustodianCorrection:
    """One of custodian's VASP handlers as an alloop error handler (see the module docstring)."""

    name: str
    handler: str  # class name in custodian.vasp.handlers
    applies: Callable[[Path, LabelError], bool]
    options: tuple[tuple[str, Any], ...] = ()

    def _make(self) -> Any:
        require_vasp_libraries()
        from custodian.vasp import handlers

        return getattr(handlers, self.handler)(**dict(self.options))

    def check(self, workdir: Path, error: LabelError) -> bool:
        return self.applies(Path(workdir), error)

    def correct(self, settings: VaspSettings, workdir: Path,
                history: list[dict[str, Any]]) -> tuple[VaspSettings, dict[str, Any]]:
        from pymatgen.io.vasp.inputs import Incar

        handler = self._make()
        if hasattr(handler, "error_count"):
            handler.error_count = _previous_counts(history, self.name)
        with _custodian_view(settings, Path(workdir)) as scratch, warnings.catch_warnings(record=True) as advice:
            warnings.simplefilter("always")
            if hasattr(handler, "errors"):  # VaspErrorHandler corrects what its last check found
                handler.check(str(scratch))
            before = Incar.from_file(scratch / "INCAR")
            result = handler.correct(str(scratch))
            after = Incar.from_file(scratch / "INCAR")
        changes = {key: _incar_value(after.get(key)) for key in sorted(set(before) | set(after))
                   if before.get(key) != after.get(key)}
        record: dict[str, Any] = {"custodian": {
            "handler": self.handler, "errors": sorted(map(str, result.get("errors") or [])),
            "not_applied": _not_applied(result.get("actions") or []),
            "advice": sorted({str(w.message) for w in advice}),
        }}
        if hasattr(handler, "error_count"):
            record["custodian"]["error_count"] = dict(handler.error_count)
        return (settings.with_incar(changes) if changes else settings), record


def _crash_with_known_errors(workdir: Path, error: LabelError) -> bool:
    return getattr(error, "kind", None) == "crash" and bool(getattr(error, "codes", ()))


def _unconverged_with_vasprun(workdir: Path, error: LabelError) -> bool:
    if getattr(error, "kind", None) != "scf":
        return False
    require_vasp_libraries()
    from custodian.utils import tracked_lru_cache
    from custodian.vasp.handlers import UnconvergedErrorHandler

    try:
        with warnings.catch_warnings():  # pymatgen's remarks on the run it reads (unconverged, POTCAR)
            warnings.simplefilter("ignore")
            return bool(UnconvergedErrorHandler().check(str(workdir)))
    finally:
        tracked_lru_cache.tracked_cache_clear()


def _unconverged(workdir: Path, error: LabelError) -> bool:
    return getattr(error, "kind", None) == "scf"


def more_walltime(settings: VaspSettings) -> VaspSettings:
    """Twice the time; without a walltime_s there is nothing to raise (the scheduler's default applied)."""
    if settings.walltime_s is None:
        return settings
    return settings.model_copy(update={"walltime_s": 2 * settings.walltime_s})


def default_vasp_handlers() -> list[Any]:
    return [
        CustodianCorrection("vasp-errors", "VaspErrorHandler", _crash_with_known_errors,
                            (("output_filename", STDOUT_FILE),)),
        CustodianCorrection("vasp-unconverged", "UnconvergedErrorHandler", _unconverged_with_vasprun),
        CustodianCorrection("vasp-nonconverging", "NonConvergingErrorHandler", _unconverged),
        KindHandler("vasp-walltime", "walltime", more_walltime),
    ]
