"""Choosing k of C candidate policies to serve n users best: facility location on a utility matrix.

``utility[c, i]`` is user i's value under candidate c; choosing a set S of k candidates gives the
welfare ``mean_i max_{c in S} utility[c, i]`` (each user takes its best chosen candidate). Three
methods, picked by :func:`select_k` (the name of the one used is returned and recorded):

* ``"dp"``: exact when candidates and users carry one-dimensional parameters and every optimal
  solution serves contiguous runs of users sorted by parameter (true for the speed tasks, where
  utilities fall off with the distance between a user's target and the candidate's): a DP over
  contiguous groups, each group served by its best single candidate.
* ``"milp"``: exact for any matrix, by :func:`scipy.optimize.milp` (binary choice of candidates,
  each user's service split over chosen ones), used while ``C * n`` is small enough.
* ``"greedy+swaps"``: otherwise: greedy (a (1 - 1/e) approximation: the objective is monotone
  submodular) then single swaps until none improves.
"""

from __future__ import annotations

import itertools

import numpy as np

#: Largest C * n solved by the MILP (variables); beyond it greedy plus swaps.
MAX_MILP_VARIABLES = 200_000


def welfare_of(utility: np.ndarray, chosen) -> float:
    return float(np.asarray(utility)[list(chosen)].max(axis=0).mean())


def brute_force(utility: np.ndarray, k: int) -> tuple[list[int], float]:
    """The exact optimum by enumeration (tests and tiny problems)."""
    best = max(itertools.combinations(range(utility.shape[0]), k), key=lambda s: welfare_of(utility, s))
    return list(best), welfare_of(utility, best)


def dp_contiguous(utility: np.ndarray, k: int, user_params: np.ndarray) -> list[int]:
    """Best k candidates when optimal groups are contiguous in the users' sorted (1-D) parameters."""
    order = np.argsort(np.asarray(user_params).reshape(-1), kind="stable")
    u = np.asarray(utility, dtype=np.float64)[:, order]  # (C, n) with users sorted
    C, n = u.shape
    prefix = np.concatenate([np.zeros((C, 1)), np.cumsum(u, axis=1)], axis=1)
    # group_value[s, i]: best single candidate for users s..i-1, and which
    sums = prefix[:, None, :] - prefix[:, :, None]  # (C, s, i)
    group_value, group_pick = sums.max(axis=0), sums.argmax(axis=0)
    best = np.full((k + 1, n + 1), -np.inf)
    best[0, 0] = 0.0
    split = np.zeros((k + 1, n + 1), dtype=np.int64)
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            candidates = best[j - 1, :i] + group_value[:i, i]
            s = int(np.argmax(candidates))
            best[j, i], split[j, i] = candidates[s], s
    j = int(np.argmax(best[1:, n])) + 1  # at most k groups (fewer can be optimal)
    chosen, i = [], n
    while i > 0:
        s = split[j, i]
        chosen.append(int(group_pick[s, i]))
        i, j = s, j - 1
    return _fill(sorted(set(chosen)), utility, k)


def milp(utility: np.ndarray, k: int) -> list[int]:
    """Exact: maximize sum_i sum_c U[c, i] x[c, i] s.t. sum_c x[c, i] = 1, x[c, i] <= y[c], sum_c y[c] = k."""
    try:  # scipy comes with the train extra; the environments alone do not need it
        from scipy.optimize import Bounds, LinearConstraint, milp as scipy_milp  # noqa: PLC0415
        from scipy.sparse import coo_matrix, hstack  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(f"choosing k of C candidates exactly (method 'milp') needs scipy: pip install scipy, or "
                          f"rmdp's train extra ({e})") from e

    u = np.asarray(utility, dtype=np.float64)
    C, n = u.shape
    nx = C * n  # x[c, i] at c * n + i, then y[c]
    cost = np.concatenate([-u.reshape(-1), np.zeros(C)])
    rows = np.repeat(np.arange(n), C)
    cols = (np.arange(C)[None, :] * n + np.arange(n)[:, None]).reshape(-1)
    serve = hstack([coo_matrix((np.ones(nx), (rows, cols)), shape=(n, nx)), coo_matrix((n, C))])
    link = hstack([coo_matrix((np.ones(nx), (np.arange(nx), np.arange(nx))), shape=(nx, nx)),
                   coo_matrix((-np.ones(nx), (np.arange(nx), np.repeat(np.arange(C), n))), shape=(nx, C))])
    budget = hstack([coo_matrix((1, nx)), coo_matrix(np.ones((1, C)))])
    constraints = [LinearConstraint(serve.tocsr(), 1, 1), LinearConstraint(link.tocsr(), -np.inf, 0),
                   LinearConstraint(budget.tocsr(), k, k)]
    integrality = np.concatenate([np.zeros(nx), np.ones(C)])
    res = scipy_milp(cost, constraints=constraints, integrality=integrality, bounds=Bounds(0, 1))
    if not res.success:
        raise RuntimeError(f"MILP failed: {res.message}")
    return sorted(int(c) for c in np.flatnonzero(res.x[nx:] > 0.5))


def greedy_swaps(utility: np.ndarray, k: int) -> list[int]:
    u = np.asarray(utility, dtype=np.float64)
    C = u.shape[0]
    chosen: list[int] = []
    for _ in range(k):
        served = u[chosen].max(axis=0) if chosen else np.full(u.shape[1], -np.inf)
        gains = [np.maximum(served, u[c]).mean() if c not in chosen else -np.inf for c in range(C)]
        chosen.append(int(np.argmax(gains)))
    current = welfare_of(u, chosen)
    improved = True
    while improved:
        improved = False
        for a, b in itertools.product(range(k), range(C)):
            if b in chosen:
                continue
            trial = chosen[:a] + [b] + chosen[a + 1:]
            value = welfare_of(u, trial)
            if value > current + 1e-12:
                chosen, current, improved = trial, value, True
    return sorted(chosen)


def _fill(chosen: list[int], utility: np.ndarray, k: int) -> list[int]:
    """Top up to k distinct candidates (extra members never lower the welfare)."""
    for c in np.argsort(-np.asarray(utility).mean(axis=1)):
        if len(chosen) >= k:
            break
        if int(c) not in chosen:
            chosen.append(int(c))
    return sorted(chosen)


def select_k(utility: np.ndarray, k: int, user_params: np.ndarray | None = None,
             candidate_params: np.ndarray | None = None) -> tuple[list[int], str]:
    """``(chosen candidate indices, method)`` maximizing the welfare of the users' best chosen candidate."""
    u = np.asarray(utility, dtype=np.float64)
    C, n = u.shape
    if not 1 <= k <= C:
        raise ValueError(f"k must lie in [1, C] = [1, {C}] candidates, got {k}")
    if k == C:
        return list(range(C)), "all"
    one_dim = user_params is not None and np.asarray(user_params).reshape(n, -1).shape[1] == 1
    if one_dim:
        return dp_contiguous(u, k, np.asarray(user_params).reshape(-1)), "dp"
    if C * n <= MAX_MILP_VARIABLES:
        return milp(u, k), "milp"
    return greedy_swaps(u, k), "greedy+swaps"
