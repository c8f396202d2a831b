"""User-facing settings for candidate generation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.generate.relaxation import RelaxSettings
from alloop.generate.sources import SourceSettings
from alloop.generate.genome.settings import GenomeSettings
from alloop.schema import unit

Range = tuple[float, float]


def _check_range(name: str, r: Range) -> None:
    if not 0 <= r[0] <= r[1]:
        raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {r}")


class KindCounts(BaseModel):
    """How many structures of each kind one call to `generate_candidates` produces."""

    model_config = ConfigDict(extra="forbid")

    strained_bulk: int = Field(4, ge=0, description="bulk supercells under a random strain up to strain_max")
    rattled_bulk: int = Field(4, ge=0, description="bulk supercells with Gaussian displacements (rattle_stdev)")
    vacancy: int = Field(2, ge=0, description="bulk supercells with one atom removed")
    interstitial: int = Field(2, ge=0, description="bulk supercells with one extra atom (the lattice's ground-state "
                                                   "self-interstitial)")
    surface: int = Field(2, ge=0, description="slabs of min_layers or more, facing a vacuum gap")
    dimer: int = Field(4, ge=0, description="two atoms in a vacuum box, at dimer_distances")
    compressed: int = Field(2, ge=0, description="bulk cells compressed to nearest-neighbour distances in "
                                                 "compressed_distances")


class GeneratorSettings(BaseModel):
    """Random motifs for the first training set and for topping up the candidate pool.

    Lengths in Å. Every structure is fully periodic (pyace cannot handle mixed periodicity), so
    slabs and dimers get a vacuum gap wider than the ACE cutoff instead of open boundaries.
    `cutoff` and `min_distance` are not keys of `generate:` in a campaign: alloop.config sets them from
    `train.cutoff` and the campaign's `min_distance`.
    """

    model_config = ConfigDict(extra="forbid")

    lattice: Literal["bcc", "fcc"] = Field("bcc", description="crystal structure of the motifs' bulk cells")
    lattice_constant: float | None = Field(
        None, gt=0, json_schema_extra=unit("Å"),
        description="cubic lattice constant (default: ASE's reference value of each element, the mean for alloys)")
    # An interstitial needs a bulk cell plus one atom, and fcc has 4 atoms per cubic cell.
    max_atoms: int = Field(16, ge=8, description="largest motif (bulk supercells are the largest cubic repeat "
                                                 "below it)")
    counts: KindCounts = Field(default_factory=KindCounts, description="motifs of each kind per call")
    strain_max: float = Field(0.05, ge=0, lt=0.5, description="largest strain component of strained_bulk")
    rattle_stdev: Range = Field((0.05, 0.15), json_schema_extra=unit("Å"),
                                description="each rattled structure draws its displacement σ uniformly from this range")
    jitter_stdev: float = Field(0.02, ge=0, le=0.2, json_schema_extra=unit("Å"),
                                description="small Gaussian noise on every non-rattled motif, so repeated motifs differ")
    vacuum: float = Field(8.0, gt=0, json_schema_extra=unit("Å"),
                          description="vacuum gap of slabs, dimers and genome surfaces; must exceed train.cutoff")
    cutoff: float = Field(5.0, gt=0, exclude=True, description="Å; in a campaign, set from train.cutoff")
    min_layers: int = Field(4, ge=2, description="atomic layers of a surface slab at least")
    dimer_distances: Range = Field((1.5, 4.5), json_schema_extra=unit("Å"), description="range of dimer bond lengths")
    compressed_distances: Range = Field((1.2, 2.0), json_schema_extra=unit("Å"),
                                        description="range of nearest-neighbour distances of compressed cells")
    compressed_max_atoms: int = Field(
        16, ge=2, description="largest compressed cell (at most max_atoms): its short pair has a high U, so it goes to DFT "
                              "and stays small however large the other motifs are")
    min_distance: float = Field(0.8, gt=0, exclude=True, description="Å; in a campaign, set from min_distance")

    genome: GenomeSettings | None = Field(
        None, description="the defect genome (alloop.generate.genome), with its own decoration settings; off when "
                          "absent. The small motifs above always put species on sites uniformly at random")
    relax: RelaxSettings = Field(
        default_factory=RelaxSettings, description="the selected defect motifs relaxed with the label uMLIP (a capped "
        "FIRE at fixed cell), then perturbed, before they are scored and labelled; the relaxation is recorded in each "
        "configuration's generator parameters, and a cell that will not relax is rejected with its reason")
    sources: list[SourceSettings] = Field(
        default_factory=list, description="structure files whose entries become candidates beside (or, with every "
                                          "count 0, instead of) the motifs")

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorSettings:
        for name in ("rattle_stdev", "dimer_distances", "compressed_distances"):
            _check_range(name, getattr(self, name))
        if self.vacuum <= self.cutoff:
            raise ValueError(
                f"vacuum ({self.vacuum} Å) must exceed the potential cutoff ({self.cutoff} Å, train.cutoff), or "
                "slab and dimer images interact through the periodic boundary"
            )
        for name in ("dimer_distances", "compressed_distances"):
            if getattr(self, name)[0] < self.min_distance:
                raise ValueError(f"{name} starts below min_distance ({self.min_distance} Å)")
        return self
