"""What a potential predicts: lattice constant and E–V curve, elastic constants, point-defect, surface and
stacking-fault energies and, for alloys, mixing energies, for an ACE potential or an ensemble member (the
teacher) by one code path, beside the published DFT values shipped with alloop (`reference_table`).

`compute_properties(load_model(potential=...), elements, PropertySettings())` returns a `PropertyResult`:
per element and property a value, or "not computable" with the reason. Importing this package is cheap:
pyace and the uMLIP libraries load when a model is loaded.
"""

from typing import Any

from alloop.properties.reference import ReferenceTable, reference_table
from alloop.properties.results import PROPERTIES, ElementProperties, MixingEnergy, NotComputable, PropertyResult, Value
from alloop.properties.settings import ALL_GROUPS, CAMPAIGN_GROUPS, PropertySettings

# the computation (ASE's optimizers and builders, the genome's geometry) loads on first use: the campaign schema
# imports this package for its settings alone
_LAZY = {"compute_properties": "alloop.properties.compute", "AcePotential": "alloop.properties.model",
         "MemberPotential": "alloop.properties.model", "PropertyModel": "alloop.properties.model",
         "load_model": "alloop.properties.model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alloop.properties' has no attribute {name!r}")


__all__ = [
    "ALL_GROUPS",
    "CAMPAIGN_GROUPS",
    "PROPERTIES",
    "AcePotential",
    "ElementProperties",
    "MemberPotential",
    "MixingEnergy",
    "NotComputable",
    "PropertyModel",
    "PropertyResult",
    "PropertySettings",
    "ReferenceTable",
    "Value",
    "compute_properties",
    "load_model",
    "reference_table",
]
