"""ACE potentials with pacemaker: fitting (fit_ace), the extrapolation grade γ (extrapolation_grades,
max_gamma) and D-optimal structure selection (select_maxvol).

Importing this package is cheap: pyace and pandas load inside the functions that need them.
"""

from alloop.train.evaluate import compute_errors, error_metrics
from alloop.train.fit import FitResult, fit_ace, load_fit
from alloop.train.frame import training_frame
from alloop.train.gamma import extrapolation_grades, max_gamma
from alloop.train.model import AceModel, CommitteeSpread, committee_spread, load_ace, predict
from alloop.train.select import select_maxvol, untrained_model
from alloop.train.settings import FitSettings, render_input

__all__ = [
    "AceModel",
    "CommitteeSpread",
    "FitResult",
    "FitSettings",
    "committee_spread",
    "compute_errors",
    "error_metrics",
    "extrapolation_grades",
    "fit_ace",
    "load_ace",
    "load_fit",
    "max_gamma",
    "predict",
    "render_input",
    "select_maxvol",
    "training_frame",
    "untrained_model",
]
