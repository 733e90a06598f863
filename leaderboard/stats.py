"""Statistics of the board, as the field now reports them (Agarwal et al., NeurIPS 2021).

Per cell (benchmark x solver x k): the mean and the interquartile mean (IQM) over training seeds,
each with a 95% bootstrap interval over seeds, clipped to what welfare can be (``[low, high]``:
0 and the k-policy bound; the point itself is never moved). Between two solvers: the probability of
improvement ``P(X > Y) + P(X = Y) / 2`` over all pairs of their runs (rliable's definition: the Mann-Whitney
statistic over ``len(x) * len(y)``), with an interval from resampling each solver's runs on its own (rliable's
``StratifiedIndependentBootstrap``: a statistic over all pairs of runs does not depend on which seed number a run
carries, so neither may its interval). Whether two solvers can be told apart is a test, not the interval: the
exact Mann-Whitney test of ``P = 1/2`` (:func:`improvement_p_value`), Holm-corrected over the comparisons a
verdict makes (:func:`holm`). Intervals come from :func:`scipy.stats.bootstrap` (percentile method, fixed random
state: the same board renders the same bytes). The ``rliable`` library was the first choice; its import fails
beside pandas 3 (``arch``'s ``deprecate_kwarg``), so scipy provides the bootstrap and the test.

What these intervals are worth at the board's seed counts is measured, not assumed
(``python benchmarks/verdict_errors.py``): a percentile interval over 5 seeds covers the true mean less often
than its nominal 95%, and picking the leader by its mean before testing it adds to the verdicts' error rate.
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

    One seed, or seeds that all agree, give no interval spread (``None`` bounds for one seed). The point is not
    clipped: a percentile interval never leaves the data's range, so clipping matters only where a seed lies
    outside ``[low, high]``, and moving the point there would hide it.
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
    return point, clip(lo), clip(hi)  # the point as measured: a seed outside [low, high] must stay visible


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
    """``P(X > Y) + P(X = Y) / 2`` over all pairs of runs, with an interval that resamples x and y each on its own.

    The statistic compares every run of x with every run of y, so its interval must not depend on how the runs are
    ordered (a bootstrap that resampled ``(x[s], y[s])`` together gave [0.60, 0.84] or [0.04, 1.00] for the same
    runs, by the seed numbers alone). Sizes may differ; fewer than 2 runs on a side give no interval.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    point = float(_poi(x, y))
    if x.size < 2 or y.size < 2:
        return point, None, None
    if np.all(np.concatenate([x, y]) == x[0]):
        return point, point, point
    lo, hi = _bootstrap((x, y), _poi, paired=False)
    return point, lo, hi


#: Tied runs: where the permutation distribution has more arrangements than this (10 runs a side: 184,756), it is
#: sampled this many times (seeded) instead; enumerating it took a second a comparison.
EXACT_PERMUTATIONS = 20_000


def improvement_p_value(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of "x and y come from one distribution" against ``P(X > Y) + P(X = Y) / 2 != 1/2``.

    The Mann-Whitney test (its U over ``len(x) * len(y)`` is the probability of improvement): scipy's exact
    distribution where no runs tie, else the permutation distribution (tabular tasks often score the same on many
    seeds, where the exact null no longer holds and the normal approximation is poor at 5-10 seeds): enumerated up
    to :data:`EXACT_PERMUTATIONS` arrangements, sampled beyond. Identical samples give 1.
    """
    from scipy.stats import PermutationMethod, mannwhitneyu  # noqa: PLC0415

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0 or np.all(np.concatenate([x, y]) == x[0]):
        return 1.0
    ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
    method = "exact"
    if ties:
        arrangements = math.comb(x.size + y.size, x.size)
        method = PermutationMethod(n_resamples=min(arrangements, EXACT_PERMUTATIONS), rng=RANDOM_STATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)


def holm(p_values: Sequence[float], alpha: float = 1.0 - CONFIDENCE) -> list[bool]:
    """Holm's step-down rule: which of several tests reject at family-wise error ``alpha``.

    Written here because scipy has no family-wise correction (its ``false_discovery_control`` bounds the false
    discovery rate, a weaker promise) and statsmodels would be a dependency for ten lines.
    """
    p_values = [1.0 if math.isnan(p) else p for p in p_values]  # no evidence (a NaN compares False: it "rejected")
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def normalized(welfare: float, w_random: float | None, w_upper: float | None) -> float | None:
    """``(W - W_random) / (W_k - W_random)``: 0 is a random policy, 1 the most k policies can reach."""
    if w_random is None or w_upper is None or w_upper <= w_random or not math.isfinite(welfare):
        return None
    return (welfare - w_random) / (w_upper - w_random)
