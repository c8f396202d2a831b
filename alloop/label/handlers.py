"""Error correction in custodian's manner: when a calculation fails with a retryable error, the first
handler whose `check` recognises it returns corrected settings, the failed attempt is archived and the
calculation is run again, within a correction budget. VASP's handlers are custodian's own, adapted in
alloop.label.vasp_corrections; GPAW's are `KindHandler`s. `run_with_handlers` loops in-process;
alloop.label.batch takes the same steps (load_corrections → resume → correct_failure) one batch job at a time.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ase import Atoms
from pydantic import BaseModel

from alloop.atomic import write_json_atomic
from alloop.errors import LabelError
from alloop.label.base import ATTEMPTS_DIR, CORRECTIONS_FILE, DFTBackend, LabelFailure, LabelResult, load_corrections

log = logging.getLogger(__name__)


class ErrorHandler(Protocol):
    name: str

    def check(self, workdir: Path, error: LabelError) -> bool:
        """True if this handler knows how to correct `error` (it may look at the files in `workdir`)."""

    def correct(self, settings: Any, workdir: Path, history: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        """Corrected copy of the settings, and what to record with the correction beyond the change of
        settings (e.g. the handler's own state, which `history`, the corrections so far, hands back on
        the next call). Settings returned unchanged mean 'nothing left to try'. The failed attempt's
        files are still in `workdir`."""


@dataclass(frozen=True)
class KindHandler:
    """Handles failures of one kind (e.g. "scf", "walltime") with a settings → settings correction."""

    name: str
    kind: str
    fix: Callable[[Any], Any]

    def check(self, workdir: Path, error: LabelError) -> bool:
        return getattr(error, "kind", None) == self.kind

    def correct(self, settings: Any, workdir: Path, history: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        return self.fix(settings), {}


def archive_attempt(workdir: Path, number: int) -> Path:
    """Move the failed attempt's files into workdir/attempts/<number>/ so the retry starts clean and
    the evidence is kept (custodian keeps error.N archives for the same reason)."""
    dest = workdir / ATTEMPTS_DIR / str(number)
    dest.mkdir(parents=True, exist_ok=True)
    for item in workdir.iterdir():
        if item.name not in (ATTEMPTS_DIR, CORRECTIONS_FILE):
            shutil.move(str(item), dest / item.name)
    return dest


def run_with_handlers(
    backend: DFTBackend,
    atoms: Atoms,
    workdir: Path,
    max_corrections: int = 3,
    handlers: Sequence[ErrorHandler] | None = None,
) -> LabelResult:
    """`backend.compute` with up to `max_corrections` corrected retries.

    A non-retryable error, or one no handler recognises, is raised as it is. When the budget is spent
    or a handler has nothing left to change, the last error is raised as non-retryable so that the
    caller quarantines the configuration instead of looping.
    """
    workdir = Path(workdir)
    corrections = load_corrections(workdir)
    backend = resume(backend, corrections)
    while True:
        try:
            return backend.compute(atoms, workdir)
        except LabelError as err:
            backend = correct_failure(backend, workdir, err, corrections, max_corrections, handlers)


def resume(backend: DFTBackend, corrections: list[dict[str, Any]]) -> DFTBackend:
    """The backend with the settings the last correction produced (a restarted run continues with them)."""
    if not corrections:
        return backend
    return backend.with_settings(type(backend.settings).model_validate(corrections[-1]["settings"]))


def correct_failure(
    backend: DFTBackend,
    workdir: Path,
    err: LabelError,
    corrections: list[dict[str, Any]],
    max_corrections: int = 3,
    handlers: Sequence[ErrorHandler] | None = None,
) -> DFTBackend:
    """Deal with one failed attempt: archive it, record the correction (in `corrections` and
    corrections.json) and return the backend with the corrected settings for the next attempt.

    Raises `err` itself when it is not retryable or no handler recognises it, and a non-retryable
    LabelFailure when the budget is spent or the handler has nothing left to change.
    """
    handlers = list(backend.default_handlers() if handlers is None else handlers)
    if not err.retryable:
        raise err
    handler = next((h for h in handlers if h.check(workdir, err)), None)
    if handler is None:
        raise err
    if len(corrections) >= max_corrections:
        raise _final(err, f"still failing after {len(corrections)} correction(s) "
                          f"({', '.join(c['handler'] for c in corrections)})") from err
    new, record = handler.correct(backend.settings, workdir, corrections)
    if _same(new, backend.settings):
        raise _final(err, f"handler '{handler.name}' has no further correction to try") from err
    changes = _diff(backend.settings, new)
    log.warning("%s: %s → correction '%s' %s", workdir, err.reason.splitlines()[0], handler.name, changes)
    archive_attempt(workdir, len(corrections))
    corrections.append({"handler": handler.name, "error": err.reason.splitlines()[0], "changes": changes,
                        **record, "settings": _dump(new)})
    write_json_atomic(workdir / CORRECTIONS_FILE, corrections)
    return backend.with_settings(new)


def _final(err: LabelError, why: str) -> LabelError:
    kind = getattr(err, "kind", "crash")
    return LabelFailure(f"{err.reason}\n  {why}", False, kind, getattr(err, "codes", ()))


def _dump(settings: Any) -> dict[str, Any]:
    return settings.model_dump(mode="json") if isinstance(settings, BaseModel) else dict(settings)


def _same(a: Any, b: Any) -> bool:
    return _dump(a) == _dump(b)


def _diff(old: Any, new: Any) -> dict[str, Any]:
    """Changed settings as {key: [old, new]}, one level into nested dicts (e.g. INCAR overrides)."""
    a, b = _dump(old), _dump(new)
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if (sub in va) != (sub in vb) or va.get(sub) != vb.get(sub):
                    out[f"{key}.{sub}"] = [va.get(sub), vb.get(sub)]
        else:
            out[key] = [va, vb]
    return out
