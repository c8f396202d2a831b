"""The stopping rule: the share of an unbiased sample above γ_lo stays below the target for `patience` iterations,
on a sample of at least `min_sample` frames; frames a halted trajectory never reached count as above."""

from __future__ import annotations

import numpy as np

from alloop.config import ConvergenceSettings
from alloop.explore.convergence import judge
from alloop.explore.gamma import TrajectoryRecorder, collect
from alloop.explore.settings import ExploreSettings


def test_a_campaign_converges_once_the_share_stays_below_the_target_for_its_patience():
    s = ConvergenceSettings(target_share=0.25, patience=2, min_sample=5)
    calm = np.array([0.5, 0.9, 1.0, 1.2, 0.7])  # one of five above γ_lo: 20 %
    first = judge(calm, [], s, threshold=1.1)
    assert first.share_above == 0.2 and not first.converged  # below the target once, patience is 2
    assert judge(calm, [0.5], s, 1.1).converged is False      # the iteration before was above the target
    assert judge(calm, [0.1], s, 1.1).converged is True
    assert first.stats == {"mean": 0.86, "median": 0.9, "p90": float(np.quantile(calm, 0.9)),
                           "max": 1.2, "n_unreached": 0}


def test_a_sample_below_min_sample_or_empty_never_converges():
    s = ConvergenceSettings(patience=1, min_sample=100)
    assert not judge(np.full(99, 0.5), [], s, 1.1).converged  # 0 % above, but 99 frames cannot tell a share
    assert judge(np.full(100, 0.5), [], s, 1.1).converged
    v = judge(np.zeros(0), [0.0, 0.0], s, 1.1)
    assert not v.judged and not v.converged and v.share_above == 0.0


def test_the_sample_is_every_sampled_frame_and_a_halt_counts_the_frames_never_reached_as_above():
    from ase.build import bulk

    s = ExploreSettings(steps=100, sample_interval=10, gamma_lo=1.1, gamma_hi=5, gamma_halt=25)
    calm, halting = TrajectoryRecorder(0, bulk("W"), s), TrajectoryRecorder(1, bulk("W"), s)
    for step in range(0, 101, 10):
        calm.record(step, 0.5 + step / 1000)  # never above γ_lo: no candidates, still all in the sample
    for step, g in ((0, 0.5), (10, 2.0), (20, 30.0)):
        if halting.record(step, g):
            break
    res = collect([calm, halting], max_candidates=10)
    assert len(res.candidates) == 0  # no frames kept (none given), yet the sample holds every sampled frame
    assert len(res.gamma_sample) == 11 + 11  # 11 sampled frames each: the halted one's 8 unreached ones as +inf
    assert np.isinf(res.gamma_sample[11 + 3:]).all() and res.gamma_sample[11 + 2] == 30.0
    share = judge(res.gamma_sample, [], ConvergenceSettings(min_sample=1), s.gamma_lo).share_above
    assert share == 10 / 22  # the 2.0 frame, the halting frame and the 8 never reached
