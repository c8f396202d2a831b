"""Labelling backends: GPAW (embedded default, real DFT), VASP (input writing, output diagnosis and
parsing; run locally or by a job scheduler), replay of an existing DFT data set, and the per-element
energy references that put labels from different sources on one scale (`alloop.label.reference`).

    backend = make_backend(GPAWSettings(kpts=(4, 4, 4)))
    result = run_with_handlers(backend, atoms, workdir)   # LabelResult, or LabelError
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase import Atoms

from alloop.label.base import DFTBackend, LabelFailure, LabelResult, load_result
from alloop.label.gpaw import GPAWBackend, GPAWSettings
from alloop.label.handlers import ErrorHandler, run_with_handlers
from alloop.label.replay import ReplayBackend, ReplaySettings
from alloop.label.vasp import VaspBackend
from alloop.label.vasp_settings import VaspSettings

__all__ = [
    "DFTBackend", "ErrorHandler", "GPAWBackend", "GPAWSettings", "LabelFailure", "LabelResult", "ReplayBackend",
    "ReplaySettings", "VaspBackend", "VaspSettings", "compute_label", "load_result", "make_backend",
    "run_with_handlers",
]

_BACKENDS: dict[type, type[DFTBackend]] = {GPAWSettings: GPAWBackend, VaspSettings: VaspBackend,
                                           ReplaySettings: ReplayBackend}


def make_backend(settings: GPAWSettings | VaspSettings | ReplaySettings) -> DFTBackend:
    """The backend that these settings configure."""
    return _BACKENDS[type(settings)](settings)


def compute_label(dft: Any, atoms: Atoms, workdir: Path, max_corrections: int = 3) -> LabelResult:
    """Label one configuration with error correction. `dft` is a backend's settings, or an object with
    `backend` ("gpaw" | "vasp" | "replay") and that backend's settings as the attribute of that name
    (the campaign's labels.dft section)."""
    settings = getattr(dft, dft.backend) if hasattr(dft, "backend") else dft
    return run_with_handlers(make_backend(settings), atoms, Path(workdir), max_corrections)
