"""User-facing settings for γ-driven MD exploration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExploreSettings(BaseModel):
    """Short MD runs with the current ACE that harvest extrapolative frames.

    Units: K, fs, GPa, 1/ps. The γ thresholds are pacemaker's usual ones: frames above `gamma_lo`
    are worth labelling, above `gamma_hi` the potential is no longer trusted (pacemaker dumps them),
    above `gamma_halt` the trajectory is stopped (LAMMPS `fix halt`).
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["ase", "lammps"] = "ase"
    # e.g. "lmp" or "mpirun -np 4 lmp_mpi"; the LAMMPS build needs the ML-PACE package
    lammps_command: str | None = None
    ensemble: Literal["nvt", "npt"] = "nvt"
    temperature: float = Field(300.0, gt=0)
    timestep: float = Field(1.0, gt=0, le=10)
    steps: int = Field(1000, ge=1)
    # Homogeneous engineering strain rate (1/ps) along `strain_axis` in NVT: L(t) = L0 (1 + rate t).
    # Negative values compress.
    strain_rate: float = 0.0
    strain_axis: Literal["x", "y", "z", "xyz"] = "x"
    pressure: float = 0.0  # GPa, NPT only
    thermostat_time: float = Field(100.0, gt=0)  # fs: Langevin 1/friction, Berendsen tau_T
    barostat_time: float = Field(1000.0, gt=0)  # fs: Berendsen tau_P
    # Only sets how fast the Berendsen barostat responds; ~1/B of a hard metal.
    compressibility: float = Field(0.005, gt=0)  # 1/GPa
    sample_interval: int = Field(10, ge=1)
    gamma_lo: float = Field(1.1, gt=0)
    gamma_hi: float = Field(5.0, gt=0)
    gamma_halt: float = Field(25.0, gt=0)
    max_candidates: int = Field(100, ge=0)
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
