"""What `alloop properties` computes, as pydantic models: per element a value or "not computable" with its
reason for each property, the E–V curve and the γ-lines behind them, and the mixing energies of an alloy."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# name -> (label, unit, group). The order is the order of every table.
PROPERTIES: dict[str, tuple[str, str, str]] = {
    "lattice_constant": ("lattice constant a", "Å", "lattice"),
    "bulk_modulus": ("bulk modulus B", "GPa", "lattice"),
    "cohesive_energy": ("cohesive energy", "eV/atom", "lattice"),
    "C11": ("C11", "GPa", "elastic"),
    "C12": ("C12", "GPa", "elastic"),
    "C44": ("C44", "GPa", "elastic"),
    "vacancy": ("vacancy formation energy", "eV", "vacancy"),
    "sia_111": ("SIA ⟨111⟩ dumbbell", "eV", "interstitials"),
    "sia_110": ("SIA ⟨110⟩ dumbbell", "eV", "interstitials"),
    "crowdion": ("SIA crowdion", "eV", "interstitials"),
    "sia_100": ("SIA ⟨100⟩ dumbbell", "eV", "interstitials"),
    "sia_octahedral": ("SIA octahedral", "eV", "interstitials"),
    "surface_100": ("surface energy (100)", "J/m²", "surfaces"),
    "surface_110": ("surface energy (110)", "J/m²", "surfaces"),
    "surface_111": ("surface energy (111)", "J/m²", "surfaces"),
    "usf_110": ("unstable SFE {110}⟨111⟩", "J/m²", "gsfe"),
    "usf_112": ("unstable SFE {112}⟨111⟩", "J/m²", "gsfe"),
    "usf_111": ("unstable SFE {111}⟨112⟩", "J/m²", "gsfe"),
    "isf_111": ("intrinsic SFE {111}", "J/m²", "gsfe"),
}
Structure = Literal["bcc", "fcc"]


class NotComputable(Exception):
    """A property this potential cannot give (no E–V minimum, a relaxation that does not converge, ...);
    the reason is shown in its place. Raised inside alloop.properties and caught per property."""


class Value(BaseModel):
    """One property: its value, or None and the reason it could not be computed."""

    model_config = ConfigDict(extra="forbid")

    value: float | None = None
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="cell size, steps, residual force, ...")

    @property
    def ok(self) -> bool:
        return self.value is not None

    @classmethod
    def of(cls, value: float, **details: Any) -> Value:
        if not math.isfinite(value):
            return cls(reason=f"the computation gave {value}", details=details)
        return cls(value=float(value), details=details)

    @classmethod
    def missing(cls, reason: str, **details: Any) -> Value:
        return cls(reason=reason, details=details)


class Curve(BaseModel):
    """A sampled curve: E–V (x: volume per atom, Å³; y: energy per atom relative to the minimum, eV) or a
    γ-line (x: shift as a fraction of the period; y: fault energy, J/m²)."""

    x: list[float]
    y: list[float]


class ElementProperties(BaseModel):
    element: str
    structure: Structure
    values: dict[str, Value] = Field(default_factory=dict)
    eos: Curve | None = None
    gsfe: dict[str, Curve] = Field(default_factory=dict)


class MixingEnergy(BaseModel):
    """Energy of mixing of random solid solutions of one composition, meV/atom, over `samples` draws."""

    composition: dict[str, float]
    value: Value
    std: float | None = None
    samples: list[float] = Field(default_factory=list)


class PropertyResult(BaseModel):
    """Everything computed for one model (an ACE potential or an ensemble member)."""

    model: str = Field(description="the potential's path or the member's name")
    kind: Literal["ace", "member", "calculator"]
    elements: list[str]
    property_set: list[str]
    per_element: list[ElementProperties]
    mixing: list[MixingEnergy] = Field(default_factory=list)
    seconds: float = Field(0.0, description="wall-clock time of the computation")
    cpu_seconds: float = Field(0.0, description="CPU time of the process that computed it (on a shared machine, "
                               "what it cost; wall time includes waiting for the CPU)")
    settings: dict[str, Any] = Field(default_factory=dict)

    def element(self, symbol: str) -> ElementProperties | None:
        return next((e for e in self.per_element if e.element == symbol), None)
