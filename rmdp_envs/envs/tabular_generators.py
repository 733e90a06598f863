"""Seeded families of tabular r-MDPs, small enough for :mod:`rmdp_envs.exact` to solve exactly.

Every family scales rewards by ``1 / horizon`` so that returns, and hence welfare, lie in
``[0, 1]`` and scores are comparable across families and horizons.
"""

from __future__ import annotations

import functools

import numpy as np

from rmdp_envs.rewards import TargetWindowReward
from rmdp_envs.core import resolve_population
from rmdp_envs.population import Population
from rmdp_envs.results import available_memory
from rmdp_envs.tabular import TabularRMDP

def check_sizes(n_agents, horizon, n_states: int, n_actions: int, **seeds) -> None:
    """Raise one ``ValueError`` naming the argument before any table is built: ``n_agents`` and ``horizon`` integers
    >= 1 (rewards are divided by the horizon), the named ``seeds`` integers >= 0 (or None), and tables that fit in
    the memory available now (``P``: ``S x A x S``, the users' rewards ``n x S x A``, float64, the rewards twice
    while they are drawn)."""
    for name, value in (("n_agents", n_agents), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in seeds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    need = 8 * n_states * n_actions * (n_states + 2 * n_agents)
    available = available_memory()
    if available is not None and need > available:
        raise ValueError(f"the tables of {n_states} states x {n_actions} actions for {n_agents} users need about "
                         f"{need / 2**30:.1f} GiB, but {available / 2**30:.1f} GiB are available")


# Row/column change of each grid action: up, down, left, right, stay.
GRID_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)


class TabularRandomEnv(TabularRMDP):
    """A random sparse tabular r-MDP whose users come in a few latent types.

    ## Description
    ``n_states`` states, ``n_actions`` actions; from each ``(s, a)`` the next state is one of
    ``branching`` random successors with Dirichlet(1) probabilities. The start state is uniform.
    ``instance_seed`` draws the dynamics and one reward table per latent type.

    ## Observation, action, episode end
    As :class:`rmdp_envs.tabular.TabularRMDP`: one-hot state plus ``t / horizon``;
    ``Discrete(n_actions)``; terminates after ``horizon`` steps.

    ## Rewards
    User ``i`` of type ``z_i`` gets ``clip(T[z_i, s, a] + noise * eps_i[s, a], 0, 1) / horizon``
    with type tables ``T ~ U[0, 1]`` and ``eps ~ N(0, 1)``: returns lie in ``[0, 1]``.

    ## Population
    ``n_agents`` users; ``population_seed`` draws their types (uniform over ``n_types``) and noise.
    ``population.params[i]`` is user ``i``'s reward table ``R[i]`` flattened (``S * A`` values);
    ``population.meta["types"]`` lists the latent types, the ground-truth clustering.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, n_agents: int = 8, n_states: int = 10, n_actions: int = 3, horizon: int = 10,
                 n_types: int = 3, branching: int = 3, noise: float = 0.1, instance_seed: int = 0,
                 population_seed: int = 0, render_mode: str | None = None):
        if not 1 <= branching <= n_states:
            raise ValueError(f"branching must lie in [1, n_states] = [1, {n_states}], got {branching}")
        if n_types < 1 or noise < 0:
            raise ValueError(f"need n_types >= 1 and noise >= 0, got n_types={n_types}, noise={noise}")
        check_sizes(n_agents, horizon, n_states, n_actions, instance_seed=instance_seed, population_seed=population_seed)
        P, R, population = _random_tables(n_agents, n_states, n_actions, horizon, n_types, branching, float(noise),
                                          instance_seed, population_seed)
        super().__init__(P, R, np.full(n_states, 1.0 / n_states), horizon, population, render_mode)


def _shared_tables(build):
    """``build`` made once per process for equal arguments, its arrays read-only.

    Every copy of a vector env (and of an evaluation) is made with the same keywords, so all of a
    process's copies share one set of ``(n, S, A)`` reward tables instead of drawing their own:
    at n = 100,000 users that is 24 MB and tens of milliseconds per copy saved. The tables are
    the seeds' deterministic functions, so sharing changes no number.
    """
    @functools.lru_cache(maxsize=2)
    @functools.wraps(build)
    def shared(*args):
        tables = build(*args)
        for value in tables:
            if isinstance(value, np.ndarray):  # a Population's parameters are read-only already
                value.setflags(write=False)
        return tables
    shared.unshared = build  # for arguments that are not the same for every copy (a caller's own population)
    return shared


@_shared_tables
def _random_tables(n_agents, n_states, n_actions, horizon, n_types, branching, noise, instance_seed, population_seed):
    """TabularRandomEnv's ``P``, ``R`` and population (see its docstring)."""
    world = np.random.default_rng(instance_seed)
    successors = world.random((n_states, n_actions, n_states)).argsort(axis=-1)[..., :branching]
    P = np.zeros((n_states, n_actions, n_states))
    np.put_along_axis(P, successors, world.dirichlet(np.ones(branching), size=(n_states, n_actions)), axis=-1)
    type_rewards = world.random((n_types, n_states, n_actions))
    users = np.random.default_rng(population_seed)
    types = users.integers(n_types, size=n_agents)
    noisy = type_rewards[types] + noise * users.standard_normal((n_agents, n_states, n_actions))
    R = np.clip(noisy, 0.0, 1.0) / horizon
    population = Population(params=R.reshape(n_agents, -1), kind="latent_types", seed=population_seed,
                            meta={"types": types.tolist(), "n_types": n_types, "noise": float(noise),
                                  "instance_seed": instance_seed})
    return P, R, population


class GridGoalsEnv(TabularRMDP):
    """A small slippery grid where each user wants the robot on its own goal cell, soon and long.

    ## Description
    A ``size x size`` grid (state ``row * size + col``); the robot starts at ``start``. A tabular
    cousin of ResourceGathering: one policy cannot serve goals in opposite corners.

    ## Action
    ``Discrete(5)``: up, down, left, right, stay. With probability ``slip`` the move is replaced by
    a uniformly random one (the intended move included); moves into walls keep the position.

    ## Observation and episode end
    As :class:`rmdp_envs.tabular.TabularRMDP`; terminates after ``horizon`` steps.

    ## Rewards
    User ``i`` gets ``1 / horizon`` on every step that starts on its goal cell: reaching it fast
    and staying there pays most; returns lie in ``[0, 1]``.

    ## Population
    ``n_agents`` goals drawn uniformly (with ``population_seed``) from the cells other than the
    start; ``population.params[i] = (row, col)`` of user ``i``'s goal.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, n_agents: int = 8, size: int = 4, slip: float = 0.1, horizon: int = 12,
                 start: tuple[int, int] = (0, 0), population_seed: int = 0, render_mode: str | None = None):
        if size < 2 or not 0 <= slip <= 1:
            raise ValueError(f"need size >= 2 and slip in [0, 1], got size={size}, slip={slip}")
        if not (0 <= start[0] < size and 0 <= start[1] < size):
            raise ValueError(f"start {start} is outside the {size}x{size} grid")
        check_sizes(n_agents, horizon, size * size, len(GRID_MOVES), population_seed=population_seed)
        P, R, init, population = _grid_tables(n_agents, size, float(slip), horizon, tuple(start), population_seed)
        super().__init__(P, R, init, horizon, population, render_mode)


@_shared_tables
def _grid_tables(n_agents, size, slip, horizon, start, population_seed):
    """GridGoalsEnv's ``P``, ``R``, ``init`` and population (see its docstring)."""
    cells = np.array([(r, c) for r in range(size) for c in range(size)], dtype=np.int64)
    landing = np.clip(cells[:, None, :] + GRID_MOVES[None], 0, size - 1)  # (S, moves, 2)
    landing = landing[..., 0] * size + landing[..., 1]
    n_states, n_moves = landing.shape
    P = np.zeros((n_states, n_moves, n_states))
    rows = np.arange(n_states)[:, None]
    for action in range(n_moves):
        P[rows, action, landing[:, [action]]] += 1.0 - slip
        np.add.at(P, (rows, action, landing), slip / n_moves)
    start_state = start[0] * size + start[1]
    goals = np.random.default_rng(population_seed).choice(np.delete(np.arange(n_states), start_state), size=n_agents)
    R = np.zeros((n_agents, n_states, n_moves))
    R[np.arange(n_agents), goals, :] = 1.0 / horizon
    init = np.eye(n_states)[start_state]
    population = Population(params=cells[goals], kind="goal_cells", seed=population_seed,
                            meta={"size": size, "start": list(start)})
    return P, R, init, population


class ChainEnv(TabularRMDP):
    """A slippery chain where users differ in how far along it they want to be.

    ## Description
    States ``0..length-1`` in a line; the robot starts at 0. Serving a far user means walking
    past the near ones, so groups of users with nearby targets share a policy well.

    ## Action
    ``Discrete(3)``: left, stay, right. A move fails (the robot stays) with probability ``slip``;
    the ends of the chain are walls.

    ## Observation and episode end
    As :class:`rmdp_envs.tabular.TabularRMDP`; terminates after ``horizon`` steps.

    ## Rewards
    User ``i`` with target ``x_i`` gets ``max(0, 1 - |s - x_i| / half_width) / horizon`` on every
    step that starts in state ``s``; returns lie in ``[0, 1]``.

    ## Population
    ``n_agents`` targets from sampler ``population`` (default ``"uniform"``, or a
    :class:`rmdp_envs.Population` or its dict) over ``[0, length - 1]`` with ``population_seed``.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, n_agents: int = 8, length: int = 10, slip: float = 0.1, horizon: int = 15,
                 half_width: float = 2.0, population: str | Population | dict = "uniform",
                 population_seed: int | None = 0, render_mode: str | None = None):
        if length < 2 or not 0 <= slip <= 1:
            raise ValueError(f"need length >= 2 and slip in [0, 1], got length={length}, slip={slip}")
        check_sizes(n_agents if isinstance(population, str) else 1, horizon, length, 3)  # a given population: its own n
        # a sampler's name makes the same tables for every copy (shared); a given population is the caller's
        tables = _chain_tables if isinstance(population, str) else _chain_tables.unshared
        P, R, population = tables(population, n_agents, population_seed, length, float(slip), horizon, float(half_width))
        super().__init__(P, R, np.eye(length)[0], horizon, population, render_mode)


@_shared_tables
def _chain_tables(population, n_agents, population_seed, length, slip, horizon, half_width):
    """ChainEnv's ``P``, ``R`` and population (see its docstring)."""
    population = resolve_population(population, n_agents, population_seed, (0.0, length - 1.0))
    if population.params.shape[1] != 1:
        raise ValueError(f"chain populations need one target per user, got params of shape {population.params.shape}")
    states = np.arange(length)
    P = np.zeros((length, 3, length))
    for action, step in enumerate((-1, 0, 1)):
        P[states, action, np.clip(states + step, 0, length - 1)] += 1.0 - slip
        P[states, action, states] += slip
    reward_fn = TargetWindowReward(population.params[:, 0], half_width, 1.0 / horizon, "triangle")
    per_state = np.stack([reward_fn(float(s)) for s in states], axis=1).astype(np.float64)  # (n, S)
    R = np.repeat(per_state[:, :, None], 3, axis=2)
    return P, R, population
