"""Exact optimal welfare of tabular r-MDPs, and the exact (idealized) EM algorithm.

The best single policy for a set ``G`` of users is the optimal policy of the MDP with reward
``sum_{i in G} R_i``, so backward induction for all ``2^n`` subsets at once gives every ``V*(G)``;
the optimal welfare with ``k`` policies is then the best partition of the users into ``k``
groups, a dynamic program over subsets (``O(k 3^n)``). Values are per-user means of expected
undiscounted return, like :attr:`rmdp_envs.EvalResult.welfare`. Past ``MAX_EXACT_USERS`` users,
:func:`welfare_bounds` brackets the optimum instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rmdp_envs.core import check_assignment, check_k, e_step, round_robin
from rmdp_envs.tabular import TabularRMDP

#: Most users :func:`optimal_welfare` accepts: the partition DP touches ``(3^n - 1) / 2`` pairs.
MAX_EXACT_USERS = 16
#: Subsets solved by one batched backward induction (bounds memory to a few hundred MB).
SUBSET_CHUNK = 4096


@dataclass(frozen=True)
class WelfareSolution:
    """``k`` deterministic time-dependent policies, the users' groups and their exact welfare.

    Attributes:
        value: per-user mean expected return (the welfare).
        partition: ``k`` lists of user indices; users of list ``j`` use policy ``j``.
        policies: ``(k, horizon, S)`` actions: ``policies[j, t, s]``.
        trace: for :func:`em_exact`, the welfare after each iteration; empty otherwise.
    """

    value: float
    partition: list[list[int]]
    policies: np.ndarray
    trace: tuple[float, ...] = ()

    @property
    def assignment(self) -> np.ndarray:
        """``(n,)``: the policy index of each user."""
        assignment = np.empty(sum(len(group) for group in self.partition), dtype=np.int64)
        for j, group in enumerate(self.partition):
            assignment[group] = j
        return assignment


@dataclass(frozen=True)
class WelfareBounds:
    """Bounds on the optimal welfare with ``k`` policies, for populations too large to solve.

    Attributes:
        upper_bound: full personalization, ``mean_i V*({i})``: no ``k`` policies can do better.
        lower_bound: the best exact-EM solution over ``restarts`` starts: achieved, so the
            optimum is at least this.
        lower_solution: the policies and partition that achieve ``lower_bound``.
        restarts: the number of EM starts behind ``lower_bound``.
    """

    upper_bound: float
    lower_bound: float
    lower_solution: WelfareSolution
    restarts: int

    @property
    def gap(self) -> float:
        """``upper_bound - lower_bound``: the optimum lies in this interval."""
        return self.upper_bound - self.lower_bound


def as_tabular(mdp) -> TabularRMDP:
    """The :class:`TabularRMDP` under ``mdp`` (which may be wrapped, e.g. by ``gymnasium.make``)."""
    base = getattr(mdp, "unwrapped", mdp)
    if not isinstance(base, TabularRMDP):
        raise TypeError(f"need a TabularRMDP (e.g. gymnasium.make('rmdp/Chain-v0')), got {type(mdp).__name__}")
    return base


def backward_induction(mdp, rewards: np.ndarray, with_policies: bool = True):
    """Optimal finite-horizon values for a batch of scalar reward tables ``(B, S, A)`` at once.

    Returns ``values (B,)`` (expected return from ``init``) and, if ``with_policies``, the
    optimal policies ``(B, horizon, S)`` (ties go to the lowest action).
    """
    mdp = as_tabular(mdp)
    batch, S, A = rewards.shape
    transitions = mdp.P.reshape(S * A, S).T  # (S', S*A): future value of each (s, a) in one product
    future = np.zeros((batch, S))
    policies = np.empty((batch, mdp.horizon, S), dtype=np.int64) if with_policies else None
    for t in reversed(range(mdp.horizon)):
        q = rewards + (future @ transitions).reshape(batch, S, A)
        if with_policies:
            policies[:, t] = q.argmax(axis=-1)
        future = q.max(axis=-1)
    return future @ mdp.init, policies


def _group_rewards(mdp: TabularRMDP, membership: np.ndarray) -> np.ndarray:
    """``(G, S, A)`` summed reward of each group, from a ``(G, n)`` 0/1 membership matrix."""
    n, S, A = mdp.R.shape
    return (membership @ mdp.R.reshape(n, S * A)).reshape(-1, S, A)


def _optimal_group_policies(mdp: TabularRMDP, assignment: np.ndarray, k: int):
    """Each group's total optimal value ``(k,)`` and optimal policy ``(k, H, S)`` (the M-step)."""
    membership = (assignment[None, :] == np.arange(k)[:, None]).astype(np.float64)
    return backward_induction(mdp, _group_rewards(mdp, membership))


def subset_values(mdp) -> np.ndarray:
    """``(2^n,)``: ``V*(G)``, the best total expected return of group ``G`` (bit ``i`` = user ``i``)."""
    mdp = as_tabular(mdp)
    n = _check_solvable(mdp.n_agents)
    bits = np.arange(n)
    values = np.empty(2 ** n)
    for start in range(0, 2 ** n, SUBSET_CHUNK):
        masks = np.arange(start, min(start + SUBSET_CHUNK, 2 ** n))
        membership = ((masks[:, None] >> bits) & 1).astype(np.float64)
        values[masks], _ = backward_induction(mdp, _group_rewards(mdp, membership), with_policies=False)
    return values


def _check_solvable(n: int) -> int:
    if n > MAX_EXACT_USERS:
        raise ValueError(
            f"the exact optimum enumerates all 2^n groups of users and their partitions; n={n} users "
            f"exceeds the limit of {MAX_EXACT_USERS}. For larger populations use "
            f"rmdp_envs.exact.welfare_bounds(mdp, k): an upper bound (full personalization) and a lower "
            f"bound (the best of many exact-EM restarts)")
    return n


@lru_cache(maxsize=2)
def _partition_pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (mask, group) with group a subset of mask holding mask's lowest user, sorted by mask.

    Fixing the lowest user's group enumerates each partition once. Returns ``masks``,
    ``groups`` and ``starts`` (where each mask ``1 .. 2^n - 1`` begins, for ``reduceat``).
    """
    masks, groups = [], []
    for low in range(n):
        # Each higher user is outside the mask, in the mask only, or in the group too.
        mask, group = np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int32)
        for user in range(low + 1, n):
            bit = np.int32(1 << user)
            mask, group = np.concatenate([mask, mask | bit, mask | bit]), np.concatenate([group, group, group | bit])
        masks.append(mask | np.int32(1 << low))
        groups.append(group | np.int32(1 << low))
    masks, groups = np.concatenate(masks), np.concatenate(groups)
    order = np.argsort(masks, kind="stable")
    masks, groups = masks[order], groups[order]
    starts = np.flatnonzero(np.r_[True, masks[1:] != masks[:-1]])
    for a in (masks, groups, starts):
        a.setflags(write=False)
    return masks, groups, starts


def _best_partition_values(values: np.ndarray, n: int, k: int) -> list[np.ndarray]:
    """``best[j][mask]``: the best total of ``mask`` split into ``j + 1`` non-empty groups, ``j < k - 1``.

    ``best[j][mask] = max over groups G holding mask's lowest user of values[G] + best[j-1][mask - G]``.
    """
    best = [values.copy()]
    best[0][0] = -np.inf  # the empty set is not a non-empty group
    if k > 2:
        masks, groups, starts = _partition_pairs(n)
        for _ in range(k - 2):
            candidates = values[groups] + best[-1][masks ^ groups]
            layer = np.full(2 ** n, -np.inf)
            layer[1:] = np.maximum.reduceat(candidates, starts)
            best.append(layer)
    return best


def _subsets_with_lowest(mask: int, n: int) -> np.ndarray:
    """All subsets of ``mask`` that contain its lowest user."""
    low = mask & -mask
    subsets = np.array([low], dtype=np.int64)
    for user in range(n):
        bit = 1 << user
        if mask & bit and bit != low:
            subsets = np.concatenate([subsets, subsets | bit])
    return subsets


def _split(values: np.ndarray, best: list[np.ndarray], n: int, k: int) -> np.ndarray:
    """The optimal assignment of all ``n`` users to ``k`` groups, tracing the DP back."""
    mask, assignment = 2 ** n - 1, np.empty(n, dtype=np.int64)
    for j in range(k - 1, 0, -1):
        subsets = _subsets_with_lowest(mask, n)
        group = int(subsets[np.argmax(values[subsets] + best[j - 1][mask ^ subsets])])
        assignment[(group >> np.arange(n)) & 1 == 1] = k - 1 - j
        mask ^= group
    assignment[(mask >> np.arange(n)) & 1 == 1] = k - 1
    return assignment


def _partition(assignment: np.ndarray, k: int) -> list[list[int]]:
    return [np.flatnonzero(assignment == j).tolist() for j in range(k)]


def optimal_welfare(mdp, k: int) -> WelfareSolution:
    """The optimal welfare with ``k`` policies, its partition and its optimal policies (exact).

    Raises ``ValueError`` for more than ``MAX_EXACT_USERS`` users: use :func:`welfare_bounds`.
    """
    mdp = as_tabular(mdp)
    n = _check_solvable(mdp.n_agents)
    k = check_k(k, n)
    values = subset_values(mdp)
    assignment = _split(values, _best_partition_values(values, n, k), n, k)
    totals, policies = _optimal_group_policies(mdp, assignment, k)
    return WelfareSolution(float(totals.sum() / n), _partition(assignment, k), policies)


def _stochastic(mdp: TabularRMDP, policies) -> np.ndarray:
    """``(k, H, S, A)`` action probabilities from deterministic ``(k, H, S)`` or stochastic policies."""
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    p = np.asarray(policies)
    if p.ndim == 3 and p.shape[1:] == (H, S):
        if not np.issubdtype(p.dtype, np.integer) or p.min() < 0 or p.max() >= A:
            raise ValueError(f"deterministic policies must hold integer actions in [0, {A})")
        return np.eye(A)[p]
    if p.ndim == 4 and p.shape[1:] == (H, S, A):
        p = p.astype(np.float64)
        if not np.all(np.isfinite(p)) or p.min() < 0 or np.abs(p.sum(-1) - 1).max() > 1e-6:
            raise ValueError("stochastic policies must hold probability distributions over actions")
        return p
    raise ValueError(f"policies must have shape (k, horizon, S) = (k, {H}, {S}) of actions or "
                     f"(k, {H}, {S}, {A}) of action probabilities, got {p.shape}")


def policy_utilities(mdp, policies) -> np.ndarray:
    """``(k, n)``: exact expected return of every user under every policy.

    One forward pass of the state-action occupancy per policy serves all ``n`` users at once.
    """
    mdp = as_tabular(mdp)
    pi = _stochastic(mdp, policies)
    k, (n, S, A) = pi.shape[0], mdp.R.shape
    transitions = mdp.P.reshape(S * A, S)
    state = np.tile(mdp.init, (k, 1))
    occupancy = np.zeros((k, S, A))
    for t in range(mdp.horizon):
        state_action = state[:, :, None] * pi[:, t]
        occupancy += state_action
        state = state_action.reshape(k, S * A) @ transitions
    return occupancy.reshape(k, S * A) @ mdp.R.reshape(n, S * A).T


def policy_welfare(mdp, policies, assignment) -> float:
    """Exact welfare of ``policies`` when user ``i`` uses policy ``assignment[i]``."""
    utilities = policy_utilities(mdp, policies)
    k, n = utilities.shape
    assignment = check_assignment(assignment, k, n)
    return float(utilities[assignment, np.arange(n)].mean())


def em_exact(mdp, k: int, init_assignment=None, seed: int = 0, max_iterations: int = 10_000) -> WelfareSolution:
    """The paper's EM with exact M-steps (backward induction per group) and exact E-steps.

    Starts from ``init_assignment`` or, by default, a random balanced assignment drawn with
    ``seed`` (every policy gets ``n // k`` or ``n // k + 1`` users). Runs until the assignment
    no longer changes; the welfare never decreases, and ``trace`` records it after each iteration.
    """
    mdp = as_tabular(mdp)
    n = mdp.n_agents
    k = check_k(k, n)
    if init_assignment is None:
        assignment = np.random.default_rng(seed).permutation(round_robin(n, k))
    else:
        assignment = check_assignment(init_assignment, k, n)
    trace = []
    for _ in range(max_iterations):
        _, policies = _optimal_group_policies(mdp, assignment, k)
        utilities = policy_utilities(mdp, policies)
        # exact values differ by float noise only: move on a gain beyond it (e_step's tie rule)
        new = e_step(utilities, assignment, tol=1e-12 * max(1.0, float(np.abs(utilities).max())))
        trace.append(float(utilities[new, np.arange(n)].mean()))
        if np.array_equal(new, assignment):
            return WelfareSolution(trace[-1], _partition(assignment, k), policies, tuple(trace))
        assignment = new
    raise RuntimeError(f"exact EM did not converge in {max_iterations} iterations")


def full_personalization(mdp) -> float:
    """``mean_i V*({i})``: the welfare of one optimal policy per user, an upper bound for every k."""
    mdp = as_tabular(mdp)
    individual, _ = backward_induction(mdp, mdp.R, with_policies=False)
    return float(individual.mean())


def welfare_bounds(mdp, k: int, restarts: int = 20, seed: int = 0) -> WelfareBounds:
    """Bracket the optimal welfare for any ``n``: full personalization above, best EM restart below."""
    mdp = as_tabular(mdp)
    k = check_k(k, mdp.n_agents)
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    best = max((em_exact(mdp, k, seed=seed + r) for r in range(restarts)), key=lambda s: s.value)
    return WelfareBounds(upper_bound=full_personalization(mdp), lower_bound=best.value,
                         lower_solution=best, restarts=restarts)


def tabular_policy_fn(mdp, policies):
    """Deterministic ``(k, H, S)`` policies as a batched ``policy_fn`` for :func:`rmdp_envs.evaluate`."""
    mdp = as_tabular(mdp)
    policies = np.asarray(policies)
    _stochastic(mdp, policies)  # validates the shape and actions
    rows = np.arange(policies.shape[0])[:, None]

    def policy_fn(obs):
        state, t = mdp.decode(obs)
        return policies[rows, np.minimum(t, mdp.horizon - 1), state]

    policy_fn.batched = True
    return policy_fn


def tabulate_policies(mdp, policy_fn, k: int) -> np.ndarray:
    """``(k, H, S)`` actions of a batched ``policy_fn`` (e.g. :func:`rmdp_envs.load_policies`) in every state and step.

    Lets the exact tools score trained policies without sampling noise: a deterministic policy is
    fully described by its action at each ``(t, s)``.
    """
    mdp = as_tabular(mdp)
    H, S = mdp.horizon, mdp.n_states
    t, state = np.meshgrid(np.arange(H), np.arange(S), indexing="ij")
    obs = np.broadcast_to(mdp.encode(state.ravel(), t.ravel()), (k, H * S, S + 1))
    actions = np.asarray(policy_fn(np.ascontiguousarray(obs)))
    if actions.shape != (k, H * S):
        raise ValueError(f"policy_fn must return (k, batch) = ({k}, {H * S}) discrete actions, got {actions.shape}")
    return actions.astype(np.int64).reshape(k, H, S)
