"""Which properties are computed, in cells of what size: the `properties:` section of a campaign and the
options of `alloop properties`."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alloop.schema import unit

PropertyGroup = Literal["lattice", "elastic", "vacancy", "interstitials", "surfaces", "gsfe", "mixing"]
ALL_GROUPS: tuple[str, ...] = PropertyGroup.__args__  # type: ignore[attr-defined]
# What a campaign computes after every fit unless told otherwise: everything but the slowest part (the
# interstitials: three relaxed dumbbells per element), so the W quickstart stays within its time.
CAMPAIGN_GROUPS: tuple[str, ...] = ("lattice", "elastic", "vacancy", "surfaces", "gsfe", "mixing")


class PropertySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="campaign: compute the properties of every potential after its fit")
    properties: list[PropertyGroup] = Field(
        default_factory=lambda: list(CAMPAIGN_GROUPS),
        description="groups to compute: lattice (a, B, E–V; always computed, the rest need it), elastic (C11, C12, "
        "C44), vacancy, interstitials (bcc: ⟨111⟩, ⟨110⟩ dumbbells and the crowdion; fcc: ⟨100⟩ dumbbell, "
        "octahedral), surfaces ((100), (110), (111)), gsfe (γ-lines along ⟨111⟩ on {110} and {112}; fcc: {111}⟨112⟩), "
        "mixing (random solid solutions of an alloy)",
    )
    teacher: bool = Field(True, description="campaign: also compute them once for the label member (the teacher)")
    defect_cells: int = Field(4, ge=2, le=8, description="cubic cells per edge of the point-defect supercell "
                              "(bcc 4: 128 atoms, 5: 250)")
    mixing_cells: int = Field(3, ge=2, le=6, description="cubic cells per edge of a random solid solution (bcc 3: 54 atoms)")
    mixing_samples: int = Field(2, ge=1, description="random solid solutions drawn per composition")
    fmax: float = Field(0.01, gt=0, description="relaxations stop when every force is below this",
                        json_schema_extra=unit("eV/Å"))
    max_steps: int = Field(300, ge=1, description="steps before a relaxation counts as not converged")
    seed: int = Field(0, description="seed of the random solid solutions")
    atom_energies: dict[str, float] = Field(
        default_factory=dict, description="isolated-atom energy per element on the potential's energy scale; "
        "the cohesive energy is only computed for elements given here", json_schema_extra=unit("eV"))


def fingerprint(settings: PropertySettings) -> str:
    """What a stored result was computed with (everything but whether and for whom to compute it)."""
    text = json.dumps(settings.model_dump(mode="json", exclude={"enabled", "teacher"}), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
