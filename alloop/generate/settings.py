"""User-facing settings for candidate generation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.generate.sources import SourceSettings

Range = tuple[float, float]


def _check_range(name: str, r: Range) -> None:
    if not 0 <= r[0] <= r[1]:
        raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {r}")


class KindCounts(BaseModel):
    """How many structures of each kind one call to `generate_candidates` produces."""

    model_config = ConfigDict(extra="forbid")

    strained_bulk: int = Field(4, ge=0)
    rattled_bulk: int = Field(4, ge=0)
    vacancy: int = Field(2, ge=0)
    interstitial: int = Field(2, ge=0)
    surface: int = Field(2, ge=0)
    dimer: int = Field(4, ge=0)
    compressed: int = Field(2, ge=0)


class GeneratorSettings(BaseModel):
    """Random motifs for the first training set and for topping up the candidate pool.

    Lengths in Å. Every structure is fully periodic (pyace cannot handle mixed periodicity), so
    slabs and dimers get a vacuum gap wider than the ACE cutoff instead of open boundaries.
    """

    model_config = ConfigDict(extra="forbid")

    lattice: Literal["bcc", "fcc"] = "bcc"
    # None: the ASE reference value of each element (mean over elements for alloys)
    lattice_constant: float | None = Field(None, gt=0)
    # An interstitial needs a bulk cell plus one atom, and fcc has 4 atoms per cubic cell.
    max_atoms: int = Field(16, ge=8)
    counts: KindCounts = KindCounts()
    strain_max: float = Field(0.05, ge=0, lt=0.5)
    # each rattled structure draws its standard deviation uniformly from this range
    rattle_stdev: Range = (0.05, 0.15)
    # small Gaussian noise on every non-rattled motif, so that repeated motifs differ
    jitter_stdev: float = Field(0.02, ge=0, le=0.2)
    vacuum: float = Field(8.0, gt=0)
    cutoff: float = Field(5.0, gt=0)
    min_layers: int = Field(4, ge=2)
    dimer_distances: Range = (1.5, 4.5)
    compressed_distances: Range = (1.2, 2.0)
    min_distance: float = Field(0.8, gt=0)
    # How species are put on the sites of a multi-element motif. Only "random" exists; a
    # D-optimal ("maxvol") decoration that picks the species maximising the active-set volume is
    # the intended next value and plugs into `decorate`.
    decoration: Literal["random"] = "random"
    # Structure files whose entries become candidates beside (or, with every count 0, instead of) the motifs.
    sources: list[SourceSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorSettings:
        for name in ("rattle_stdev", "dimer_distances", "compressed_distances"):
            _check_range(name, getattr(self, name))
        if self.vacuum <= self.cutoff:
            raise ValueError(
                f"vacuum ({self.vacuum} Å) must exceed the potential cutoff ({self.cutoff} Å), or slab and "
                "dimer images interact through the periodic boundary"
            )
        for name in ("dimer_distances", "compressed_distances"):
            if getattr(self, name)[0] < self.min_distance:
                raise ValueError(f"{name} starts below min_distance ({self.min_distance} Å)")
        return self
