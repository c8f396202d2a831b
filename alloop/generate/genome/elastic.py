"""Cubic elastic constants for the displacement fields of dislocations and crack tips.

The fields only shape the starting geometry of a candidate (the uMLIPs and DFT label it as it is, and
exploration relaxes it), so a composition mean of the elements' constants is accurate enough; set
`generate.genome.elastic_constants` for anything better (e.g. the ensemble's best member's values).
"""

from __future__ import annotations

from collections.abc import Sequence

from alloop.errors import ConfigError
from alloop.generate.genome.settings import ElasticConstants

# Experimental room-temperature single-crystal values in GPa (C11, C12, C44), rounded; compiled in G. Simmons
# and H. Wang, "Single Crystal Elastic Constants and Calculated Aggregate Properties" (MIT Press, 1971).
SOURCE = "experimental room-temperature values (Simmons & Wang 1971), mean over the campaign's elements"
TABLE: dict[str, tuple[float, float, float]] = {
    "W": (523.0, 203.0, 160.0),
    "Mo": (465.0, 163.0, 109.0),
    "Nb": (247.0, 135.0, 28.7),
    "Ta": (266.0, 158.0, 87.4),
    "V": (229.0, 119.0, 43.0),
    "Cr": (340.0, 58.6, 99.0),
    "Fe": (230.0, 135.0, 117.0),
    "Cu": (168.0, 121.0, 75.4),
    "Al": (107.0, 60.8, 28.3),
    "Ni": (247.0, 153.0, 122.0),
    "Ag": (124.0, 93.4, 46.1),
    "Au": (192.0, 163.0, 42.0),
}


def elastic_constants(elements: Sequence[str], given: ElasticConstants | None) -> tuple[ElasticConstants, str]:
    """`given`, else the mean of the table over `elements`; and where the values came from."""
    if given is not None:
        return given, "generate.genome.elastic_constants"
    missing = [el for el in elements if el not in TABLE]
    if missing:
        raise ConfigError(
            [f"no elastic constants tabulated for {missing}: set generate.genome.elastic_constants (C11, C12, C44 in GPa)"],
            "generate",
        )
    n = len(elements)
    c11, c12, c44 = (round(sum(TABLE[el][k] for el in elements) / n, 3) for k in range(3))
    return ElasticConstants(C11=c11, C12=c12, C44=c44), SOURCE
