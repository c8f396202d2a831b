"""What an iteration labels out of its candidates: MaxVol against the active set; before the first fit, the
untrained basis' MaxVol and a seeded fill of the budget (the untrained basis spans its functions quickly)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from alloop.train import FitSettings
from alloop.train.select import select_for_labelling, select_maxvol


def _candidates(n: int):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat((2, 2, 2))
        a.positions += rng.normal(0, 0.1, a.positions.shape)
        out.append(a)
    return out


def test_before_the_first_fit_the_budget_is_filled_after_maxvol_and_the_draw_is_seeded():
    settings = FitSettings(n_functions=6, nradmax_by_orders=[4, 2], lmax_by_orders=[0, 1])
    cands = _candidates(12)
    maxvol = select_maxvol(cands, 10, elements=["W"], settings=settings)
    chosen = select_for_labelling(cands, 10, None, None, ["W"], settings, [7, 0, 3])
    assert len(maxvol) < 10 and set(maxvol) <= set(chosen) and len(chosen) == 10 == len(set(chosen))
    assert chosen == sorted(chosen) == select_for_labelling(cands, 10, None, None, ["W"], settings, [7, 0, 3])
    assert select_for_labelling(cands[:4], 10, None, None, ["W"], settings, [7, 0, 3]) == [0, 1, 2, 3]
