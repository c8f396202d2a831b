"""The stopping rule: the share of fresh candidates above γ_lo stays below the target for `patience` iterations."""

from __future__ import annotations

import numpy as np

from alloop.config import ConvergenceSettings
from alloop.explore.convergence import judge


def test_a_campaign_converges_once_the_share_stays_below_the_target_for_its_patience():
    s = ConvergenceSettings(gamma_threshold=1.1, target_share=0.25, patience=2)
    calm = np.array([0.5, 0.9, 1.0, 1.2, 0.7])  # one of five above γ_lo: 20 %
    first = judge(calm, [], s)
    assert first.share_above == 0.2 and not first.converged  # below the target once, patience is 2
    assert judge(calm, [0.5], s).converged is False           # the iteration before was above the target
    assert judge(calm, [0.1], s).converged is True
    assert first.stats == {"mean": 0.86, "median": 0.9, "p90": float(np.quantile(calm, 0.9)),
                           "max": 1.2}


def test_nothing_to_grade_never_converges():
    s = ConvergenceSettings(patience=1)
    v = judge(np.zeros(0), [0.0, 0.0], s)
    assert not v.judged and not v.converged and v.share_above == 0.0
