"""Settings of the defect genome (`generate.genome`) and of its chemical decoration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Range = tuple[float, float]
Family = Literal[
    "grain_boundary", "dislocation", "crack", "stacking_fault", "surface", "vacancy_cluster",
    "interstitial_cluster", "dimer", "trimer",
]
FAMILIES: tuple[str, ...] = Family.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrainBoundarySpec(_Strict):
    """One coincidence-site boundary: Σ, rotation axis and tilt (plane ∥ axis) or twist (plane ⟂ axis)."""

    sigma: int = Field(ge=3)
    axis: tuple[int, int, int]
    type: Literal["tilt", "twist"]


class ElasticConstants(_Strict):
    """Cubic elastic constants in GPa, for the dislocation and crack displacement fields."""

    C11: float = Field(gt=0)
    C12: float = Field(gt=0)
    C44: float = Field(gt=0)


class DecorationSettings(_Strict):
    """How species are put on the sites of each genome topology.

    `draws` decorations are drawn per topology at compositions spread over the simplex of the campaign's
    elements (or cycled through a given list); `keep` of them stay: with `maxvol` those whose ACE
    B-projections add the most volume to the current active set (the untrained campaign basis before
    the first fit), with `random` the first `keep` draws.
    """

    method: Literal["maxvol", "random"] = "maxvol"
    # "simplex": each draw picks how many species are present (1..n, uniform), which ones, and their
    # fractions uniformly on that sub-simplex (Dirichlet(1)), so pure, binary, ... and n-ary
    # decorations all occur. Or a list of compositions {element: fraction}, cycled through.
    compositions: Literal["simplex"] | list[dict[str, float]] = "simplex"
    # optional per-element bounds on the fraction (simplex draws outside them are redrawn)
    bounds: dict[str, Range] = Field(default_factory=dict)
    draws: int = Field(24, ge=1, description="decorations drawn per topology")
    keep: int = Field(2, ge=1, description="decorations kept per topology")
    # MaxVol alone keeps mostly the most mixed decorations (more unlike-neighbour environments span more
    # volume); stratify draws draws/n and keeps `keep` for each number of species present (1..n), so pure,
    # binary, ... and n-ary versions of every topology stay (n x keep per topology).
    stratify: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> DecorationSettings:
        if self.keep > self.draws:
            raise ValueError(f"keep ({self.keep}) cannot exceed draws ({self.draws})")
        for el, (lo, hi) in self.bounds.items():
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"bounds[{el}] must be (low, high) with 0 <= low <= high <= 1, got {(lo, hi)}")
        if self.bounds and (sum(lo for lo, _ in self.bounds.values()) > 1):
            raise ValueError("the lower bounds add up to more than 1: no composition satisfies them")
        if isinstance(self.compositions, list):
            if self.stratify:
                raise ValueError("stratify applies to compositions: simplex, not to a given list")
            for i, comp in enumerate(self.compositions):
                if not comp or any(v < 0 for v in comp.values()) or sum(comp.values()) <= 0:
                    raise ValueError(f"compositions[{i}] must map elements to non-negative fractions, got {comp}")
        return self


def _default_boundaries() -> list[GrainBoundarySpec]:
    return [GrainBoundarySpec(sigma=s, axis=ax, type=t)
            for s, ax in ((3, (1, 1, 0)), (5, (1, 0, 0)), (9, (1, 1, 0)), (11, (1, 1, 0)))
            for t in ("tilt", "twist")]


class GenomeSettings(_Strict):
    """The defect genome: extended defects, rebuilt with every candidate pool and each decorated across the composition
    space. Cells are fully periodic (free surfaces face a vacuum gap of `generate.vacuum`), and every
    defect is more than `generate.cutoff` away from its periodic images or partner (both boundaries of a
    bicrystal, the cores of a dislocation quadrupole, consecutive stacking faults, the two faces of a slab).
    """

    # 160: the smallest bcc cells that keep each defect a cutoff (5 Å) from its partner or images hold
    # 24-132 atoms (Σ11 twist 132, Σ9 twist 108, screw quadrupole 54, edge and crack cylinders of 10 Å
    # 54-84), and a 4x4x5 bcc supercell holds a point-defect cluster; larger cells only cost more uMLIP
    # and DFT time. Cells above it are skipped with a warning (fcc Σ9/Σ11 twists need 200-232).
    max_atoms: int = Field(160, ge=16)
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    grain_boundaries: list[GrainBoundarySpec] = Field(default_factory=_default_boundaries)
    # bcc: 1/2<111> screw (periodic quadrupole), <100>{100} and <100>{110} edge (cylinders); fcc: 1/2<110>
    dislocation_radius: float = Field(10.0, gt=0, description="Å, radius of the edge-dislocation cylinders")
    crack_radius: float = Field(10.0, gt=0, description="Å, radius of the crack-tip cylinders")
    stress_intensity: Range = Field((0.5, 2.5), description="mode-I K in MPa·m^1/2, drawn per crack cell")
    cracks_per_system: int = Field(2, ge=1)
    stacking_fault_points: int = Field(3, ge=1, description="shifts per plane, evenly inside (0, 1) of the period")
    surface_facets: list[Annotated[str, Field(pattern=r"^[0-9]{3}$")]] | None = Field(
        None, description="Miller indices as three digits; default: 100 110 111 112 (bcc), 100 110 111 (fcc)"
    )
    vacancy_cluster_sizes: list[int] = Field(default_factory=lambda: [2, 3, 4])
    interstitial_cluster_sizes: list[int] = Field(default_factory=lambda: [2, 3])
    dimers_per_pair: int = Field(3, ge=0)
    trimers_per_triple: int = Field(1, ge=0)
    # None: the composition mean of the per-element table in alloop.generate.genome.elastic
    elastic_constants: ElasticConstants | None = None
    decoration: DecorationSettings = Field(default_factory=DecorationSettings)

    @model_validator(mode="after")
    def _consistent(self) -> GenomeSettings:
        lo, hi = self.stress_intensity
        if not 0 < lo <= hi:
            raise ValueError(f"stress_intensity must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if any(n < 1 for n in self.vacancy_cluster_sizes + self.interstitial_cluster_sizes):
            raise ValueError("cluster sizes must be >= 1")
        return self
