"""Batch-job entry point: `python -m alloop.label.execute [--launcher CMD] <workdir>`.

Runs the `execute` step of a work directory that `prepare` filled, with the settings recorded there
(settings.json: the corrected ones, if a correction was made). Reading the outputs is left to
`alloop.label.batch.collect_job`, on the machine that submitted the job, so a job killed half-way is
diagnosed from its files like any other failed run.

`--launcher` (BatchSettings.mpi_launcher, e.g. "srun" or "mpirun -n 16") goes in front of the VASP
command: VASP is an MPI program started by its command line. GPAW runs serially in its own child
process and ignores it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from alloop.label import make_backend
from alloop.label.base import SETTINGS_FILE, DFTBackend
from alloop.label.gpaw import GPAWSettings
from alloop.label.replay import ReplaySettings
from alloop.label.vasp_settings import VaspSettings, command_for

_SETTINGS: dict[str, type[BaseModel]] = {"gpaw": GPAWSettings, "vasp": VaspSettings, "replay": ReplaySettings}


def backend_from_workdir(workdir: Path, launcher: str = "") -> DFTBackend:
    """The backend that `prepare` recorded in workdir/settings.json, with `launcher` in front of VASP's command."""
    record = json.loads((Path(workdir) / SETTINGS_FILE).read_text())
    settings = _SETTINGS[record["backend"]].model_validate(record["settings"])
    if launcher and isinstance(settings, VaspSettings):
        # command_for falls back to $ASE_VASP_COMMAND as the job's environment (e.g. a module) sets it
        settings = settings.model_copy(update={"command": f"{launcher} {command_for(settings)}"})
    return make_backend(settings)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alloop.label.execute",
                                     description="run the DFT code in a prepared work directory")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--launcher", default="", help="MPI launcher put in front of the VASP command")
    args = parser.parse_args(argv)
    backend_from_workdir(args.workdir, args.launcher).execute(args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
