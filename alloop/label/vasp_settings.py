"""The VASP settings of a campaign (`labels.dft.vasp`): the INCAR (template plus overrides), POTCARs, the
command and its time limit. alloop.label.vasp runs VASP with them; alloop.label.vasp_corrections' error
handlers return corrected copies (`with_incar`, a longer walltime_s)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alloop.errors import MissingFileError
from alloop.label.vasp_diagnosis import require_vasp_libraries
from alloop.resources import template_path
from alloop.schema import unit

if TYPE_CHECKING:
    from pymatgen.io.vasp.inputs import Incar

#: an INCAR override; None removes the tag (custodian's corrections sometimes unset one)
IncarValue = str | int | float | bool | None


class VaspSettings(BaseModel):
    """VASP single points with the paper's INCAR (templates/vasp/INCAR) unless overridden."""

    model_config = ConfigDict(extra="forbid")

    incar_template: Path | None = Field(None, description="INCAR to start from (default: templates/vasp/INCAR)")
    incar: dict[str, IncarValue] = Field(
        default_factory=dict, description="per-campaign INCAR overrides (null removes a tag of the template)")
    potcar_dir: Path | None = Field(
        None, description="folder holding <label>/POTCAR (default: $VASP_PP_PATH/potpaw_PBE)")
    potcars: dict[str, str] = Field(
        default_factory=dict, description="element → POTCAR label, e.g. {W: W_sv}; default: the element symbol")
    command: str | None = Field(None, description="command that runs VASP in the work directory "
                                                  "(default: $ASE_VASP_COMMAND, then $VASP_COMMAND)")
    walltime_s: float | None = Field(
        None, gt=0, json_schema_extra=unit("s"),
        description="time limit of one run: `execute` kills VASP after it (default: none), a batch job asks for it "
                    "plus a grace period; the walltime correction doubles it")

    @field_validator("incar")
    @classmethod
    def _upper_keys(cls, v: dict[str, IncarValue]) -> dict[str, IncarValue]:
        return {k.strip().upper(): val for k, val in v.items()}

    def incar_file(self) -> Incar:
        """The INCAR that `prepare` writes: the template's tags, then the overrides."""
        require_vasp_libraries()
        from pymatgen.io.vasp.inputs import Incar

        path = self.incar_template or template_path("vasp/INCAR")
        if not path.is_file():
            raise MissingFileError(path, "INCAR template", "give incar_template, or restore templates/vasp/INCAR")
        incar = Incar.from_file(path)
        for key, value in self.incar.items():
            if value is None:
                incar.pop(key, None)
            else:
                incar[key] = value
        return incar

    def with_incar(self, changes: dict[str, IncarValue]) -> VaspSettings:
        return self.model_copy(update={"incar": {**self.incar, **{k.upper(): v for k, v in changes.items()}}})


def command_for(settings: VaspSettings) -> str:
    command = settings.command or os.environ.get("ASE_VASP_COMMAND") or os.environ.get("VASP_COMMAND")
    if not command:
        raise MissingFileError("$ASE_VASP_COMMAND", "command to run VASP",
                               "set ASE_VASP_COMMAND (e.g. 'mpirun -n 16 vasp_std') or the VASP settings' command")
    return command
