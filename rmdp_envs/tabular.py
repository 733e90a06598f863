"""Tabular r-MDPs: explicit transition and reward tables, so the optimum can be computed exactly.

:mod:`rmdp_envs.exact` solves these models; this module only holds and validates the tables and
lets deep solvers play them as an ordinary r-MDP environment.
"""

from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces

from rmdp_envs.core import NO_REWARD_VECTOR, check_k, derived, make_reward_space
from rmdp_envs.population import Population
from rmdp_envs.rewards import TableRewards

#: How far a probability row may sum from 1 before it is rejected (then it is renormalized).
PROBABILITY_TOLERANCE = 1e-8


def validate_tables(P, R, init, horizon) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Check and normalize the tables of a finite-horizon r-MDP; raises ``ValueError`` on bad input.

    Returns float64 copies ``P (S, A, S)``, ``R (n, S, A)``, ``init (S,)`` (probability rows
    renormalized to sum to exactly 1) and ``horizon`` as an int, all read-only. A table that is
    already a read-only float64 array is kept, not copied: the generators hand every env copy of a
    process the same tables (:mod:`rmdp_envs.envs.tabular_generators`), O(n x S x A) once.
    """
    P = _float_array(P, "P")
    R = _float_array(R, "R")
    init = _float_array(init, "init")
    if P.ndim != 3 or P.shape[0] != P.shape[2] or min(P.shape) < 1:
        raise ValueError(f"P must have shape (S, A, S) with S, A >= 1 (P[s, a, s'] = Pr(s' | s, a)), got {P.shape}")
    S, A, _ = P.shape
    if R.ndim != 3 or R.shape[1:] != (S, A) or R.shape[0] < 1:
        raise ValueError(f"R must have shape (n, S, A) = (n, {S}, {A}) with n >= 1 (one reward table per user), got {R.shape}")
    if init.shape != (S,):
        raise ValueError(f"init must have shape (S,) = ({S},), got {init.shape}")
    P = _probabilities(P, "P", lambda i: f"row P[{i[0]}, {i[1]}, :]")
    init = _probabilities(init, "init", lambda i: "init")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    for table in (P, R, init):
        table.setflags(write=False)
    return P, R, init, int(horizon)


def _float_array(x, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and not x.flags.writeable:
        a = x  # read-only (a generator's shared table): no copy per env copy
    else:
        try:
            a = np.array(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array") from None
    if not table_range(a)[2]:
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def table_range(a: np.ndarray) -> tuple[float, float, bool]:
    """``(a.min(), a.max(), all finite)``, computed once per read-only array (:func:`rmdp_envs.core.derived`).

    A process's env copies share their read-only tables (the generators' cache), and each copy
    checks them and bounds its ``reward_space``: three passes over ``n x S x A`` numbers per copy
    (a second per hundred copies at n = 100,000) where one per table is enough.
    """
    def facts():
        return (float(a.min()), float(a.max()), bool(np.all(np.isfinite(a)))) if a.size else (0.0, 0.0, True)
    return facts() if a.flags.writeable else derived(a, "range", facts)


def _probabilities(p: np.ndarray, name: str, describe) -> np.ndarray:
    """Check that the last axis of ``p`` holds probability distributions; renormalize rounding errors."""
    if p.min() < 0:
        raise ValueError(f"{name} has negative probabilities (min {p.min():.3g})")
    sums = p.sum(axis=-1)
    error = np.abs(sums - 1.0)
    if error.max() > PROBABILITY_TOLERANCE:
        worst = np.unravel_index(np.argmax(error), sums.shape)
        raise ValueError(f"{describe(worst)} sums to {sums[worst]:.10g}; every distribution in {name} must sum to 1")
    return p / sums[..., None]


class TabularRMDP(gym.Env):
    """A finite-horizon, undiscounted r-MDP given by its tables.

    ## Description
    States ``0..S-1``, actions ``0..A-1``, transitions ``P[s, a, s']``, reward ``R[i, s, a]`` of
    user ``i`` for taking ``a`` in ``s``, start state drawn from ``init``, ``horizon`` steps.
    The tables are public (``P``, ``R``, ``init``, ``horizon``, read-only) so that
    :mod:`rmdp_envs.exact` can compute the optimal welfare of any budget ``k``.

    ## Observation
    ``Box(S + 1,)`` float32: the one-hot state, then the elapsed fraction ``t / horizon``.
    Optimal finite-horizon policies depend on time, so it is part of the observation;
    :meth:`decode` recovers ``(state, t)``.

    ## Action
    ``Discrete(A)``.

    ## Rewards
    A float32 vector of length ``n``: ``R[:, s, a]`` for the state ``s`` the action was taken in.

    ## Info
    ``reset``: ``state`` and ``t = 0``; ``step``: ``state`` (the new one), ``t`` (steps taken),
    ``prev_state`` (where the action was taken) and ``state_action``
    (``prev_state * A + action``: the cell of ``R`` that paid this step's rewards).

    ## Starting state and episode end
    ``s_0 ~ init``. The episode terminates after exactly ``horizon`` steps (``terminated=True``:
    the finite-horizon MDP ends there; nothing is cut short), so the registered ids need no
    ``TimeLimit``.

    ## Population
    ``population`` describes the users (default: their indices, kind ``"indices"``); the
    registered generators store each user's latent type, goal or target.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": [], "rmdp_evaluation": "exact", "rmdp_family": "tabular"}

    def __init__(self, P, R, init, horizon: int, population: Population | None = None,
                 render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(f"tabular r-MDPs do not render, got render_mode={render_mode!r}")
        self.P, self.R, self.init, self.horizon = validate_tables(P, R, init, horizon)
        n, S, A = self.R.shape
        if population is None:
            population = Population(params=np.arange(n), kind="indices")
        if population.n != n:
            raise ValueError(f"population has {population.n} users but R has reward tables for {n}")
        self.population = population
        self.render_mode = None
        low, high, _ = table_range(self.R)
        self.reward_space = make_reward_space(n, low, high)
        self.action_space = spaces.Discrete(A)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(S + 1,), dtype=np.float32)
        self._step_rewards = None  # (S, A, n) float32, made by the first step that returns a reward vector
        self._next_cdf = np.cumsum(self.P, axis=-1)
        self._init_cdf = np.cumsum(self.init)
        self._state, self._t = 0, 0

    #: Whether ``step`` returns the ``(n,)`` reward vector; a vector env reading :meth:`user_rewards` turns it off.
    reward_vector = True

    def user_rewards(self) -> TableRewards:
        """Every user's reward as a function of ``info["state_action"]`` (:mod:`rmdp_envs.rewards`)."""
        return TableRewards(self.R, "state_action")

    @property
    def n_agents(self) -> int:
        return self.population.n

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def full_personalization_welfare(self) -> dict:
        """Exact: one optimal policy per user, by backward induction (:func:`rmdp_envs.exact.full_personalization`)."""
        from rmdp_envs.exact import full_personalization  # noqa: PLC0415 (exact imports this module)

        return {"welfare": full_personalization(self), "source": "exact optimum (rmdp_envs.exact.full_personalization)"}

    def welfare_upper_bound(self, k: int) -> dict:
        """The exact optimum with k policies (:func:`rmdp_envs.exact.optimal_welfare`); past its size, full personalization."""
        from rmdp_envs.exact import MAX_EXACT_USERS, optimal_welfare  # noqa: PLC0415

        k = check_k(k, self.n_agents)
        if self.n_agents > MAX_EXACT_USERS:
            full = self.full_personalization_welfare()
            return {"welfare": full["welfare"], "kind": "upper bound",
                    "derivation": f"full personalization: n = {self.n_agents} exceeds the exact DP's {MAX_EXACT_USERS} users"}
        return {"welfare": optimal_welfare(self, k).value, "kind": "exact optimum",
                "derivation": "rmdp_envs.exact.optimal_welfare: backward induction for every group, DP over partitions"}

    def decode(self, obs) -> tuple[np.ndarray, np.ndarray]:
        """``(state, t)`` integer arrays from observations of any batch shape ``(..., S + 1)``."""
        obs = np.asarray(obs)
        return obs[..., :-1].argmax(axis=-1), np.rint(obs[..., -1] * self.horizon).astype(np.int64)

    def encode(self, state, t) -> np.ndarray:
        """Observations ``(..., S + 1)`` of integer ``state`` and ``t`` arrays: the inverse of :meth:`decode`."""
        state, t = np.broadcast_arrays(np.asarray(state, dtype=np.int64), np.asarray(t))
        obs = np.zeros(state.shape + (self.n_states + 1,), dtype=np.float32)
        np.put_along_axis(obs, state[..., None], 1.0, axis=-1)
        obs[..., -1] = t / self.horizon
        return obs

    def _obs(self) -> np.ndarray:
        """:meth:`encode` of the current state, by scalar indexing: it runs every step, where encode's
        broadcasting costs 6 us against 0.5 us (half of a whole step)."""
        obs = np.zeros(self.n_states + 1, dtype=np.float32)
        obs[self._state] = 1.0
        obs[-1] = self._t / self.horizon
        return obs

    def _reward_vector(self, state: int, action: int) -> np.ndarray:
        if self._step_rewards is None:
            self._step_rewards = np.ascontiguousarray(self.R.transpose(1, 2, 0), dtype=np.float32)
        return self._step_rewards[state, action].copy()

    def _sample(self, cdf: np.ndarray) -> int:
        return min(int(np.searchsorted(cdf, self.np_random.random(), side="right")), self.n_states - 1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state, self._t = self._sample(self._init_cdf), 0
        return self._obs(), {"state": self._state, "t": 0}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {self.n_actions}), got {action!r}")
        if self._t >= self.horizon:
            raise RuntimeError("the episode has ended (horizon reached); call reset()")
        state, action = self._state, int(action)
        reward = self._reward_vector(state, action) if self.reward_vector else NO_REWARD_VECTOR
        self._state = self._sample(self._next_cdf[state, action])
        self._t += 1
        info = {"state": self._state, "t": self._t, "prev_state": state, "state_action": state * self.n_actions + action}
        return self._obs(), reward, self._t == self.horizon, False, info
