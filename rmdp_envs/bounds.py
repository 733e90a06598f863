"""Upper bounds on what k policies can reach, for the environments whose structure gives one exactly.

An environment states its k-policy reference through a ``welfare_upper_bound(k)`` method that
returns ``{"welfare", "kind", "derivation"}``; ``kind`` is ``"exact optimum"`` when the value is
attained by some k policies and ``"upper bound"`` when it is only certified not to be exceeded.
:func:`k_policy_bound` asks the env and falls back to full personalization (a valid but loose
bound for every k). The two computations here serve the speed tasks and ResourceGathering.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmdp_envs.core import upper_welfare
from rmdp_envs.registration import make

#: Most users :func:`tent_welfare_bound` accepts (the interval table is O(n^2) memory, O(n^3) time).
MAX_TENT_USERS = 3000


def k_policy_bound(env, k: int, **env_kwargs) -> dict[str, Any]:
    """The best welfare k policies can reach on ``env`` (best response), as the env states it.

    ``env``: an r-MDP, or its id (made with ``env_kwargs``, as ``rmdp_envs.evaluate`` and ``make_vector_env`` take it)."""
    if isinstance(env, str):
        made = make(env, **env_kwargs)
        try:
            return k_policy_bound(made, k)
        finally:
            made.close()
    if env_kwargs:
        raise TypeError(f"env_kwargs {sorted(env_kwargs)} go with an env id, not with an env already made")
    own = getattr(env.unwrapped, "welfare_upper_bound", None)
    if own is not None:
        return own(k)
    full = upper_welfare(env)
    return {"welfare": full["welfare"], "kind": "upper bound",
            "derivation": f"full personalization ({full['source']}); no tighter k-policy bound is known for this env"}


def tent_welfare_bound(targets: np.ndarray, half_width: float, k: int, weights: np.ndarray | None = None) -> float:
    """``max`` over k values ``v_p`` of ``sum_i max_p tent(v_p - t_i)``, exactly, with ``tent(x) = max(0, 1 - |x| / l)``.

    Why it bounds the speed tasks: a group G of users served by one policy collects per step
    ``sum_{i in G} tent(v_t - t_i) <= max_v sum_{i in G} tent(v - t_i)``, whatever the speed ``v_t``; so
    over a horizon H the best-response welfare of any k policies is at most ``H / n`` times this value
    (with the groups formed by best response). Computing it: with equal widths each user is best
    served by the nearest ``v_p``, so optimal groups are contiguous in sorted targets; a group's best
    ``v`` sits on one of its own targets (the sum of tents is piecewise linear with its maxima at the
    peaks); a DP over contiguous groups then gives the exact maximum. ``weights``: how many users
    share each target (default one each).
    """
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    order = np.argsort(t, kind="stable")
    t = t[order]
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)[order]
    n = t.size
    if n > MAX_TENT_USERS:
        raise ValueError(f"tent_welfare_bound: n={n} users exceeds {MAX_TENT_USERS} (O(n^3) interval table)")
    k = min(int(k), n)
    tent = w[None, :] * np.clip(1.0 - np.abs(t[:, None] - t[None, :]) / half_width, 0.0, None)  # tent[u, w]: peak at t_u
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(tent, axis=1)], axis=1)  # prefix[u, i] = sum_{w < i}
    group = np.full((n + 1, n + 1), -np.inf)  # group[s, i]: best value of users s..i-1 as one group
    cols = np.arange(n + 1)
    for s in range(n):
        inside = prefix[s:, :] - prefix[s:, s:s + 1]  # (n - s, n + 1): peak u = s + row
        peaks = np.arange(s, n)[:, None] < cols[None, :]
        group[s] = np.where(peaks, inside, -np.inf).max(axis=0)
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    for _ in range(k):  # best[i]: users 0..i-1 in at most (iterations) contiguous groups
        best = np.maximum(best, (best[:, None] + group).max(axis=0))
    return float(best[n])


#: Bins of :func:`binned_tent_welfare_bound`: tens of seconds, and a slack of 2/3 percent of the best reward (uniform targets over 4 m/s)
TENT_BINS = 1500


def binned_tent_welfare_bound(targets: np.ndarray, half_width: float, k: int,
                              bins: int = TENT_BINS) -> tuple[float, float]:
    """An upper bound on :func:`tent_welfare_bound` for populations too large for it: ``(bound, slack)``.

    The targets are rounded to the centers of ``bins`` equal bins (at most ``delta / 2`` away,
    ``delta`` the bin width) and the weighted DP runs on the bins. A tent is ``1 / half_width``-
    Lipschitz, so each user's reward at any speed exceeds its bin center's by at most
    ``delta / (2 half_width)``: the bins' optimum plus ``n`` times that slack bounds the users'.
    """
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    low, high = float(t.min()), float(t.max())
    delta = max(high - low, 1e-12) / bins
    index = np.minimum(((t - low) / delta).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    used = np.flatnonzero(counts)
    centers = low + (used + 0.5) * delta
    slack = t.size * delta / (2 * half_width)
    return tent_welfare_bound(centers, half_width, k, weights=counts[used]) + slack, slack


def walk_cover_bound(round_trips: np.ndarray, home_user: int, k: int, max_steps: int) -> float:
    """A certified upper bound on the total reward of k closed walks from home (ResourceGathering).

    A walk of T steps pays ``1 - T/100`` to every user whose cell it visits; a user takes its best
    walk. Necessary conditions relax the walks to capacities: a walk of T steps visits at most T
    cells (home included, always visited), a cell with round trip ``d_i`` needs ``T >= d_i``, and T
    is 1 (a wall bump at home) or even (the grid is bipartite), at most ``max_steps``. Sorting walks
    by length and cells by round trip, an exchange argument lets the shortest walks take the nearest
    cells, so a small DP over (walks, cells covered) solves the relaxation exactly. Stochastic
    policies cannot do better than their best realizations, so the value bounds every k policies.
    """
    others = np.sort(np.delete(np.asarray(round_trips, dtype=np.int64), home_user))
    m = others.size
    lengths = [1] + list(range(2, max_steps + 1, 2))
    value = np.full((k + 1, m + 1), -np.inf)  # value[j, c]: j walks, the c nearest cells covered
    value[0, 0] = 0.0
    for T in lengths:
        pay = 1.0 - T / 100.0
        reach = int(np.searchsorted(others, T, side="right"))  # cells with d_i <= T
        for j in range(1, k + 1):  # unbounded: several walks may share a length (j ascending)
            home = pay if j == 1 else 0.0  # the first (shortest) walk serves home
            for c in range(m + 1):
                if not np.isfinite(value[j - 1, c]):
                    continue
                top = min(m, reach, c + T - 1) if T > 1 else c
                for c2 in range(c, max(top, c) + 1):
                    v = value[j - 1, c] + home + (c2 - c) * pay
                    if v > value[j, c2]:
                        value[j, c2] = v
    return float(np.max(value[1:]))
