"""Settings of the defect genome (`generate.genome`) and of its chemical decoration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.schema import unit

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

    sigma: int = Field(ge=3, description="Σ, the inverse density of coincidence sites (odd, 3 or more)")
    axis: tuple[int, int, int] = Field(description="rotation axis, Miller indices, e.g. [1, 1, 0]")
    type: Literal["tilt", "twist"] = Field(description="tilt: boundary plane contains the axis; twist: normal to it")


class ElasticConstants(_Strict):
    """Cubic elastic constants in GPa, for the dislocation and crack displacement fields."""

    C11: float = Field(gt=0, description="elastic constant C11", json_schema_extra=unit("GPa"))
    C12: float = Field(gt=0, description="elastic constant C12", json_schema_extra=unit("GPa"))
    C44: float = Field(gt=0, description="elastic constant C44", json_schema_extra=unit("GPa"))


class DecorationSettings(_Strict):
    """How species are put on the sites of each genome topology.

    `draws` decorations are drawn per topology at compositions spread over the simplex of the campaign's
    elements (or cycled through a given list); `keep` of them stay: with `maxvol` those whose ACE
    B-projections add the most volume to the current active set (the untrained campaign basis before
    the first fit), with `random` the first `keep` draws.
    """

    method: Literal["maxvol", "random"] = Field(
        "maxvol", description="maxvol: keep the decorations whose ACE B-projections add the most volume to the "
                              "active set; random: keep the first `keep` draws")
    compositions: Literal["simplex"] | list[dict[str, float]] = Field(
        "simplex", description="simplex: each draw picks how many species are present (1..n, uniform), which ones, "
        "and their fractions uniformly on that sub-simplex (Dirichlet(1)), so pure, binary, ... and n-ary "
        "decorations all occur; or a list of compositions {element: fraction}, cycled through")
    bounds: dict[str, Range] = Field(default_factory=dict, description="per-element (low, high) bounds on the "
                                     "fraction; simplex draws outside them are redrawn")
    draws: int = Field(24, ge=1, description="decorations drawn per topology")
    keep: int = Field(2, ge=1, description="decorations kept per topology")
    # MaxVol alone keeps mostly the most mixed decorations (more unlike-neighbour environments span more
    # volume): stratifying keeps pure, binary, ... and n-ary versions of every topology.
    stratify: bool = Field(False, description="draw draws/n and keep `keep` for each number of species present "
                                              "(1..n): n x keep per topology")

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
    defect is more than `train.cutoff` away from its periodic images or partner (both boundaries of a
    bicrystal, the cores of a dislocation quadrupole, consecutive stacking faults, the two faces of a slab).
    """

    # 160: the smallest bcc cells that keep each defect a cutoff (5 Å) from its partner or images hold
    # 24-132 atoms (Σ11 twist 132, Σ9 twist 108, screw quadrupole 54, edge and crack cylinders of 10 Å
    # 54-84), and a 4x4x5 bcc supercell holds a point-defect cluster; larger cells only cost more uMLIP
    # and DFT time. Cells above it are skipped with a warning (fcc Σ9/Σ11 twists need 200-232).
    max_atoms: int = Field(160, ge=16, description="largest genome cell; larger ones are skipped with a warning")
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES), description="defect families built: "
                                   + ", ".join(FAMILIES))
    grain_boundaries: list[GrainBoundarySpec] = Field(
        default_factory=_default_boundaries, description="coincidence-site boundaries (default: Σ3, Σ5, Σ9, Σ11, "
                                                         "tilt and twist each)")
    # bcc: 1/2<111> screw (periodic quadrupole), <100>{100} and <100>{110} edge (cylinders); fcc: 1/2<110>
    dislocation_radius: float = Field(10.0, gt=0, description="radius of the edge-dislocation cylinders",
                                      json_schema_extra=unit("Å"))
    crack_radius: float = Field(10.0, gt=0, description="radius of the crack-tip cylinders", json_schema_extra=unit("Å"))
    stress_intensity: Range = Field((0.5, 2.5), description="mode-I stress intensity K, drawn per crack cell",
                                    json_schema_extra=unit("MPa·m^1/2"))
    cracks_per_system: int = Field(2, ge=1, description="crack cells per crack system (plane and front)")
    stacking_fault_points: int = Field(3, ge=1, description="shifts per plane, evenly inside (0, 1) of the period")
    surface_facets: list[Annotated[str, Field(pattern=r"^[0-9]{3}$")]] | None = Field(
        None, description="Miller indices as three digits; default: 100 110 111 112 (bcc), 100 110 111 (fcc)"
    )
    vacancy_cluster_sizes: list[int] = Field(default_factory=lambda: [2, 3, 4], description="vacancies per cluster")
    interstitial_cluster_sizes: list[int] = Field(default_factory=lambda: [2, 3],
                                                  description="self-interstitials per cluster")
    dimers_per_pair: int = Field(3, ge=0, description="dimers per pair of species (bond lengths spread over the "
                                                      "dimer range)")
    trimers_per_triple: int = Field(1, ge=0, description="trimers per triple of species")
    elastic_constants: ElasticConstants | None = Field(
        None, description="cubic elastic constants of the dislocation and crack fields (default: the composition "
                          "mean of the per-element table in alloop.generate.genome.elastic)")
    decoration: DecorationSettings = Field(default_factory=DecorationSettings,
                                           description="how species are put on each topology's sites")

    @model_validator(mode="after")
    def _consistent(self) -> GenomeSettings:
        lo, hi = self.stress_intensity
        if not 0 < lo <= hi:
            raise ValueError(f"stress_intensity must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if any(n < 1 for n in self.vacancy_cluster_sizes + self.interstitial_cluster_sizes):
            raise ValueError("cluster sizes must be >= 1")
        return self
