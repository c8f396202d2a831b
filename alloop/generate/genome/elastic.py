"""Cubic elastic constants for the displacement fields of dislocations and crack tips.

The fields only shape the starting geometry of a candidate (the uMLIPs and DFT label it as it is, and
exploration relaxes it), so a composition mean of the elements' constants is accurate enough; set
`generate.genome.elastic_constants` for anything better (e.g. the ensemble's best member's values).
"""

from __future__ import annotations

from collections.abc import Sequence

from alloop.errors import ConfigError
from alloop.generate.genome.settings import ElasticConstants

# Experimental room-temperature single-crystal values (C11, C12, C44) from alloop's reference table
# (alloop/properties/data/reference.yaml, the source `simmons-wang1971`), the one table that also holds the
# DFT values `alloop properties` compares potentials with.
SOURCE = "experimental room-temperature values (Simmons & Wang 1971), mean over the campaign's elements"


def _table() -> dict[str, tuple[float, float, float]]:
    from alloop.properties.reference import reference_table

    out = {}
    for el, entry in reference_table().elements.items():
        exp = entry.experiment
        if all(k in exp for k in ("C11", "C12", "C44")):
            out[el] = (exp["C11"].value, exp["C12"].value, exp["C44"].value)
    return out


def elastic_constants(elements: Sequence[str], given: ElasticConstants | None) -> tuple[ElasticConstants, str]:
    """`given`, else the mean of the table over `elements`; and where the values came from."""
    if given is not None:
        return given, "generate.genome.elastic_constants"
    table = _table()
    missing = [el for el in elements if el not in table]
    if missing:
        raise ConfigError(
            [f"no elastic constants tabulated for {missing}: set generate.genome.elastic_constants (C11, C12, C44 in GPa)"],
            "generate",
        )
    n = len(elements)
    c11, c12, c44 = (round(sum(table[el][k] for el in elements) / n, 3) for k in range(3))
    return ElasticConstants(C11=c11, C12=c12, C44=c44), SOURCE
