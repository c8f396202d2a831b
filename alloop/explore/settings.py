"""User-facing settings for γ-driven MD exploration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.schema import unit


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
    gamma_halt: float = Field(25.0, gt=0, description="above this the trajectory stops (LAMMPS fix halt); that frame "
                              "is still a candidate")
    max_candidates: int = Field(100, ge=0, description="most MD candidates per exploration; beyond it trajectories "
                                "take turns giving up their highest-γ frame")
    # frames with closer atoms are not returned as candidates (they would fail validation downstream)
    min_distance: float = Field(0.8, gt=0, exclude=True, description="Å; in a campaign, set from min_distance")
    seed: int = Field(0, exclude=True, description="seed of `explore`'s default generator, for library callers; "
                      "a campaign's candidate pool passes its own (the campaign key is deprecated)")

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
