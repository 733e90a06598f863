"""Mean and 95% confidence interval over seeds (Student t), as on the board."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t  # noqa: PLC0415 (scipy comes with scikit-learn)

    return float(t.ppf(0.5 + confidence / 2, df))


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """``(mean, half_width)`` of the t-interval; half-width ``None`` for a single seed."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    half = t_quantile(x.size - 1, confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, half


def normalized(welfare: float, w_random: float | None, w_upper: float | None) -> float | None:
    """``(W - W_random) / (W_upper - W_random)``: 0 is a random policy, 1 full personalization."""
    if w_random is None or w_upper is None or w_upper <= w_random:
        return None
    return (welfare - w_random) / (w_upper - w_random)
