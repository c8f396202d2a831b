"""The loop's stopping rule: the share of fresh candidates whose max extrapolation grade γ exceeds the
threshold, below the target for `patience` consecutive iterations."""

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
    if not len(gamma_max):
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    return {"mean": float(np.mean(gamma_max)), "median": float(np.median(gamma_max)),
            "p90": float(np.quantile(gamma_max, 0.9)), "max": float(np.max(gamma_max))}


def judge(gamma_max: np.ndarray, earlier_shares: Sequence[float], settings: Any) -> Verdict:
    """This iteration's verdict from its candidates' max γ and the earlier iterations' shares (oldest first);
    `settings` is the campaign's ConvergenceSettings (gamma_threshold, target_share, patience)."""
    gamma_max = np.asarray(gamma_max, dtype=float)
    share = float(np.mean(gamma_max > settings.gamma_threshold)) if len(gamma_max) else 0.0
    history = [*earlier_shares, share]
    converged = (len(gamma_max) > 0 and len(history) >= settings.patience
                 and all(s < settings.target_share for s in history[-settings.patience:]))
    return Verdict(share, grade_stats(gamma_max), converged, len(gamma_max) > 0)
