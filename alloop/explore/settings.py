"""User-facing settings for γ-driven MD exploration."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.schema import unit


class ExploreStage(BaseModel):
    """What one exploring iteration changes (DP-GEN's per-iteration exploration jobs); unset keys keep the
    `explore:` values."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, gt=0, description="MD temperature of this stage", json_schema_extra=unit("K"))
    pressure: float | None = Field(None, description="target pressure of this stage (NPT)", json_schema_extra=unit("GPa"))
    ensemble: Literal["nvt", "npt"] | None = Field(None, description="nvt or npt for this stage")
    steps: int | None = Field(None, ge=1, description="MD steps per trajectory in this stage")
    strain_rate: float | None = Field(None, description="strain rate of this stage (NVT)", json_schema_extra=unit("1/ps"))
    strain_axis: Literal["x", "y", "z", "xyz"] | None = Field(None, description="axis strained in this stage")
    start_kinds: list[Literal["bulk", "vacancy", "interstitial", "surface"]] | None = Field(
        None, description="start structures of this stage (default: all of bulk, vacancy, interstitial, surface)")


# the default ladder: from near room temperature up to the campaign's `temperature`, in this many stages
LADDER_STAGES = 3
ROOM_TEMPERATURE = 300.0  # K


class ExploreSettings(BaseModel):
    """Short MD runs with the current ACE that harvest extrapolative frames.

    Units: K, fs, GPa, 1/ps. The γ thresholds are pacemaker's usual ones: frames above `gamma_lo`
    are worth labelling, above `gamma_hi` the potential is no longer trusted (pacemaker dumps them),
    above `gamma_halt` the trajectory is stopped (LAMMPS `fix halt`).
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["ase", "lammps"] = Field(
        "ase", description="MD engine: ase (runs here, γ tested every step) or lammps (lammps_command, ML-PACE)")
    lammps_command: str | None = Field(
        None, description="command that runs LAMMPS, e.g. 'lmp' or 'mpirun -np 4 lmp_mpi' (a build with the ML-PACE "
        "package; required with engine lammps)")
    ensemble: Literal["nvt", "npt"] = Field(
        "nvt", description="nvt: Langevin thermostat; npt: Berendsen thermostat and barostat")
    temperature: float = Field(300.0, gt=0, description="MD temperature (also of the initial Maxwell-Boltzmann momenta)",
                               json_schema_extra=unit("K"))
    timestep: float = Field(1.0, gt=0, le=10, description="MD time step", json_schema_extra=unit("fs"))
    steps: int = Field(1000, ge=1, description="MD steps per trajectory (one trajectory per start structure), unless "
                       "γ passes gamma_halt first")
    strain_rate: float = Field(
        0.0, description="homogeneous engineering strain rate along strain_axis in NVT, L(t) = L0 (1 + rate t); "
        "negative values compress", json_schema_extra=unit("1/ps"))
    strain_axis: Literal["x", "y", "z", "xyz"] = Field("x", description="cell axis strained by strain_rate (xyz: all three)")
    pressure: float = Field(0.0, description="target pressure, NPT only", json_schema_extra=unit("GPa"))
    thermostat_time: float = Field(100.0, gt=0, description="thermostat time: Langevin 1/friction, Berendsen tau_T",
                                   json_schema_extra=unit("fs"))
    barostat_time: float = Field(1000.0, gt=0, description="Berendsen barostat time tau_P (NPT)",
                                 json_schema_extra=unit("fs"))
    compressibility: float = Field(
        0.005, gt=0, description="compressibility the Berendsen barostat assumes; only sets how fast it responds "
        "(~1/B of a hard metal)", json_schema_extra=unit("1/GPa"))
    sample_interval: int = Field(10, ge=1, description="γ-evaluated frames: every this many steps (the halt test runs "
                                 "every step with the ase engine)")
    gamma_lo: float = Field(1.1, gt=0, description="frames with max γ above this are candidates (extrapolation)")
    gamma_hi: float = Field(5.0, gt=0, description="above this the potential is no longer trusted (band 'high'); the "
                            "run goes on")
    gamma_halt: float = Field(25.0, gt=0, description="above this the trajectory stops (LAMMPS fix halt); frames above "
                              "gamma_hi, this one included, are counted and never labelled")
    max_candidates: int = Field(100, ge=0, description="most MD candidates per exploration; beyond it trajectories "
                                "share the cap in turns, each with frames spread over its run (MaxVol then chooses)")
    start_kinds: list[Literal["bulk", "vacancy", "interstitial", "surface"]] | None = Field(
        None, description="start structures of the MD (default: all of bulk, vacancy, interstitial, surface)")
    stages: list[ExploreStage] | None = Field(
        None, description="the exploration schedule: the k-th iteration that explores (iteration k+1; iteration 0 has "
        "no potential to explore with) runs stages[k], the last stage repeating once the list is spent; "
        f"default: a ladder of {LADDER_STAGES} temperatures, geometric from {ROOM_TEMPERATURE:g} K to `temperature`; "
        "[] keeps `temperature` in every iteration")
    # frames with closer atoms are not returned as candidates (they would fail validation downstream)
    min_distance: float = Field(0.8, gt=0, exclude=True, description="Å; in a campaign, set from min_distance")
    seed: int = Field(0, exclude=True, description="seed of `explore`'s default generator, for library callers; "
                      "a campaign's candidate pool passes its own (the campaign key is deprecated)")

    def stage_of(self, iteration: int) -> ExploreSettings:
        """The settings iteration `iteration` explores with: its stage's values over these (see `stages`)."""
        stages = self.stages
        if stages is None:
            if self.temperature <= ROOM_TEMPERATURE:
                stages = []
            else:
                ladder = np.geomspace(ROOM_TEMPERATURE, self.temperature, LADDER_STAGES)
                stages = [ExploreStage(temperature=round(float(t), 1)) for t in ladder]
        if not stages:
            return self
        stage = stages[min(max(iteration - 1, 0), len(stages) - 1)]
        return self.model_copy(update=stage.model_dump(exclude_none=True))

    @model_validator(mode="after")
    def _consistent(self) -> ExploreSettings:
        if not self.gamma_lo < self.gamma_hi < self.gamma_halt:
            raise ValueError(
                f"need gamma_lo < gamma_hi < gamma_halt, got {self.gamma_lo}, {self.gamma_hi}, {self.gamma_halt}"
            )
        if self.engine == "lammps" and not (self.lammps_command or "").strip():
            raise ValueError("engine 'lammps' needs lammps_command (a LAMMPS built with ML-PACE, e.g. 'lmp')")
        if self.strain_rate != 0 and self.ensemble != "nvt":
            raise ValueError("strain_rate deforms the cell in NVT; with ensemble 'npt' the barostat owns the cell")
        return self
