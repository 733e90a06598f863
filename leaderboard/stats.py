"""Statistics of the board, as the field now reports them (Agarwal et al., NeurIPS 2021).

Per cell (benchmark x solver x k): the mean and the interquartile mean (IQM) over training seeds,
each with a 95% bootstrap interval over seeds, clipped to what welfare can be (``[low, high]``:
0 and the k-policy bound). Between two solvers: the probability of improvement
``P(X > Y) + P(X = Y) / 2`` over pairs of runs, with a paired bootstrap interval (seeds resampled
jointly: run s of both solvers used training seed s). Intervals come from
:func:`scipy.stats.bootstrap` (percentile method, fixed random state: the same board renders the
same bytes). The ``rliable`` library was the first choice; its import fails beside pandas 3
(``arch``'s ``deprecate_kwarg``), so scipy provides the bootstrap.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
RANDOM_STATE = 0


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    from scipy.stats import trim_mean  # noqa: PLC0415

    return trim_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable, paired: bool) -> tuple[float, float]:
    from scipy.stats import bootstrap  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (all seeds equal) are handled below
        res = bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=RESAMPLES,
                        confidence_level=CONFIDENCE, method="percentile", random_state=RANDOM_STATE)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def interval(values: Sequence[float], statistic: Callable = mean, low: float | None = None,
             high: float | None = None) -> tuple[float, float | None, float | None]:
    """``(point, lower, upper)``: the statistic over seeds and its bootstrap interval, clipped to ``[low, high]``.

    One seed, or seeds that all agree, give no interval spread (``None`` bounds for one seed).
    """
    x = np.asarray(values, dtype=np.float64)
    point = float(statistic(x))
    if x.size < 2:
        return point, None, None
    if np.all(x == x[0]):
        lo = hi = point
    else:
        lo, hi = _bootstrap((x,), statistic, paired=False)
    clip = lambda v: float(np.clip(v, -np.inf if low is None else low, np.inf if high is None else high))  # noqa: E731
    return clip(point), clip(lo), clip(hi)


def _relative(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) / np.mean(y, axis=axis) - 1.0


def relative_difference(x: Sequence[float], y: Sequence[float]) -> tuple[float, float | None, float | None]:
    """``mean(x) / mean(y) - 1`` with an unpaired bootstrap interval (x and y resampled each on its own).

    For two sets of runs that share no seed-by-seed pairing, such as one solver on two populations:
    "within 10%" is then a question about this interval, not about two means read side by side.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    point = float(_relative(x, y))
    if x.size < 2 or y.size < 2:
        return point, None, None
    lo, hi = _bootstrap((x, y), _relative, paired=False)
    return point, lo, hi


def _poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    equal = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * equal


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> tuple[float, float | None, float | None]:
    """``P(X > Y) + P(X = Y) / 2`` over run pairs, with a paired bootstrap interval (``x[s]``, ``y[s]``: seed s)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    point = float(_poi(x, y))
    if x.size < 2 or x.size != y.size:
        return point, None, None
    if np.all(np.concatenate([x, y]) == x[0]):
        return point, point, point
    lo, hi = _bootstrap((x, y), _poi, paired=True)
    return point, lo, hi


def distinguishable(poi: tuple[float, float | None, float | None]) -> bool:
    """A probability of improvement whose interval excludes 1/2: the two solvers can be told apart."""
    _, lo, hi = poi
    return lo is not None and (lo > 0.5 or hi < 0.5)


def normalized(welfare: float, w_random: float | None, w_upper: float | None) -> float | None:
    """``(W - W_random) / (W_k - W_random)``: 0 is a random policy, 1 the most k policies can reach."""
    if w_random is None or w_upper is None or w_upper <= w_random or not math.isfinite(welfare):
        return None
    return (welfare - w_random) / (w_upper - w_random)
