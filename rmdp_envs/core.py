"""What every r-MDP environment shares: a population and a vector reward space."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np
from gymnasium import spaces

from rmdp_envs.population import Population


def make_reward_space(n: int, low: float, high: float) -> spaces.Box:
    """The Box that every reward vector of an ``n``-agent r-MDP lies in (MO-Gymnasium style)."""
    return spaces.Box(low=np.float32(low), high=np.float32(high), shape=(n,), dtype=np.float32)


def resolve_population(
    population: str | Population | dict[str, Any],
    n_agents: int,
    population_seed: int | None,
    target_range: tuple[float, float],
) -> Population:
    """Turn an environment's population arguments into a :class:`Population`.

    ``population`` is a sampler name (sampled with ``n_agents``, ``population_seed`` and
    ``target_range``), a ready :class:`Population`, or its ``to_dict()`` form.
    """
    if isinstance(population, Population):
        return population
    if isinstance(population, dict):
        return Population.from_dict(population)
    if not isinstance(population, str):
        raise ValueError(f"population must be a sampler name, a Population or its dict, got {type(population).__name__}")
    try:
        low, high = (float(v) for v in target_range)
    except (TypeError, ValueError):
        raise ValueError(f"target_range must be a pair (low, high), got {target_range!r}") from None
    return Population.sample(population, n_agents, low, high, seed=population_seed)


class TargetWindowReward:
    """Rewards of agents who each want a scalar quantity ``x`` near their own target.

    ``r_i = scale * max(0, 1 - |x - t_i| / half_width)`` (``shape="triangle"``) or
    ``r_i = scale * [|x - t_i| < half_width]`` (``shape="box"``). Only agents whose target lies
    within ``half_width`` of ``x`` can be rewarded, and with the targets sorted once they are a
    contiguous window found by two binary searches: the cost per step grows with the window,
    not with ``n``, which keeps populations of 100,000 agents cheap.
    """

    def __init__(self, targets: np.ndarray, half_width: float, scale: float, shape: str = "triangle"):
        if half_width <= 0:
            raise ValueError(f"half_width must be > 0, got {half_width}")
        if shape not in ("triangle", "box"):
            raise ValueError(f"shape must be 'triangle' or 'box', got {shape!r}")
        targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        self.n = targets.shape[0]
        self.order = np.argsort(targets, kind="stable")
        # Sorted populations (the samplers' default) need no scatter: the window is a slice.
        self._presorted = bool(np.all(self.order == np.arange(self.n)))
        self.sorted_targets = targets[self.order]
        self._sorted_list = self.sorted_targets.tolist()  # bisect on a list beats np.searchsorted per call
        self._scaled_targets = self.sorted_targets / half_width
        self.half_width = float(half_width)
        self.scale = float(scale)
        self.shape = shape

    def __call__(self, x: float) -> np.ndarray:
        reward = np.zeros(self.n, dtype=np.float32)
        x = float(x)
        lo = bisect_right(self._sorted_list, x - self.half_width)
        hi = bisect_left(self._sorted_list, x + self.half_width)
        if hi > lo:
            if self.shape == "triangle":
                values = self._scaled_targets[lo:hi] - x / self.half_width
                np.abs(values, out=values)
                np.subtract(1.0, values, out=values)
                values *= self.scale
            else:
                values = self.scale
            if self._presorted:
                reward[lo:hi] = values
            else:
                reward[self.order[lo:hi]] = values
        return reward

def check_k(k: int, n: int) -> int:
    """Validate a budget of ``k`` policies for ``n`` agents: ``1 <= k <= n``."""
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, n] = [1, {n}], got k={k}")
    return int(k)


def check_assignment(assignment, k: int, n: int) -> np.ndarray:
    """Validate an assignment of ``n`` agents to ``k`` policies; returns it as an int array."""
    a = np.asarray(assignment)
    if a.shape != (n,):
        raise ValueError(f"assignment must have length n={n} (one policy index per agent), got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError("assignment must contain integer policy indices")
        a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= k):
        raise ValueError(f"assignment indices must lie in [0, k) = [0, {k}), got min {a.min()} max {a.max()}")
    return a.astype(np.int64)


def round_robin(n: int, k: int) -> np.ndarray:
    """The default assignment: agent ``i`` to policy ``i mod k``."""
    return np.arange(n) % k
