"""How big an ACE basis is: functions per element, in all, and fitted parameters, as pyace builds it."""

from __future__ import annotations

from dataclasses import dataclass

from alloop.train.select import untrained_model
from alloop.train.settings import FitSettings


@dataclass(frozen=True)
class BasisSize:
    """`functions` per element (pacemaker's number_of_functions_per_element caps each; a small radial and
    angular shape can hold fewer), their `total`, and the fitted `parameters`: ndensity coefficients per
    function plus the radial coefficients (pacemaker's "Total number of functions / number of parameters")."""

    functions: dict[str, int]
    total: int
    parameters: int


def basis_size(settings: FitSettings, elements: list[str]) -> BasisSize:
    model = untrained_model(settings, tuple(sorted(set(elements))))
    functions = {model.elements[st]: n for st, n in model.n_functions.items()}
    return BasisSize(functions, sum(functions.values()), len(model.basis.all_coeffs))
