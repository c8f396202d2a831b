"""The loop's stopping rule: the share of an unbiased sample (the next exploration's evenly spaced MD frames and
fresh motifs, never filtered by γ) whose max extrapolation grade γ exceeds the trust window's lower edge, below
the target for `patience` consecutive iterations, on a sample of at least `min_sample`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Verdict:
    share_above: float          # of this iteration's fresh candidates, max γ above the threshold
    stats: dict[str, float]     # mean, median, p90 and max of their max γ
    converged: bool
    judged: bool                # False when there was nothing to grade


def grade_stats(gamma_max: np.ndarray) -> dict[str, float]:
    """Mean, median, p90 and max of the frames graded (+inf ones, never reached, left out and counted)."""
    gamma_max = np.asarray(gamma_max, dtype=float)
    finite = gamma_max[np.isfinite(gamma_max)]
    n_unreached = int(len(gamma_max) - len(finite))
    if not len(finite):
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0, "n_unreached": n_unreached}
    return {"mean": float(np.mean(finite)), "median": float(np.median(finite)),
            "p90": float(np.quantile(finite, 0.9)), "max": float(np.max(finite)), "n_unreached": n_unreached}


def judge(gamma_max: np.ndarray, earlier_shares: Sequence[float], settings: Any, threshold: float) -> Verdict:
    """This iteration's verdict from its sample's max γ (+inf: a frame its trajectory never reached) and the
    earlier iterations' shares (oldest first); `settings` is the campaign's ConvergenceSettings (target_share,
    patience, min_sample), `threshold` the γ above which a frame counts (explore.gamma_lo)."""
    gamma_max = np.asarray(gamma_max, dtype=float)
    share = float(np.mean(gamma_max > threshold)) if len(gamma_max) else 0.0
    history = [*earlier_shares, share]
    converged = (len(gamma_max) >= settings.min_sample and len(history) >= settings.patience
                 and all(s < settings.target_share for s in history[-settings.patience:]))
    return Verdict(share, grade_stats(gamma_max), converged, len(gamma_max) > 0)
