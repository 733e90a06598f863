"""The r-MDP contract, checkable on any environment: what a new r-MDP must keep for the solvers, the
evaluation and the leaderboard to work with it.

Gymnasium ships ``check_env`` and PettingZoo ``parallel_api_test`` with the packages, so that whoever
writes an environment can test it the way the library's own are tested. :func:`check_rmdp_env` is the
same for r-MDPs: ``tests/test_envs.py`` runs it over every registered id, and a researcher who writes
a new population or task runs it on theirs before training on it or submitting to the board.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from rmdp_envs.core import EVALUATION_CLASSES, FAMILIES
from rmdp_envs.population import Population
from rmdp_envs.rewards import user_rewards_of
from rmdp_envs.wrappers import GroupReward


class RMDPContractError(AssertionError):
    """An environment breaks the r-MDP contract; the message names the rule (an ``AssertionError``, as
    Gymnasium's ``check_env`` and PettingZoo's API test raise)."""


def _require(condition: bool, rule: str) -> None:
    if not condition:
        raise RMDPContractError(rule)


def check_rmdp_env(env: gym.Env, steps: int = 200, seed: int = 0) -> None:
    """Raise :class:`RMDPContractError` naming the first rule ``env`` breaks; return ``None`` if it keeps them all.

    The rules, checked on ``env.unwrapped`` over ``steps`` seeded random steps (resetting at episode ends):

    1. ``population`` is a :class:`~rmdp_envs.Population` of ``n`` users, and ``reward_space`` a float32
       ``Box`` of shape ``(n,)`` (MO-Gymnasium's ``reward_space``);
    2. ``metadata`` states ``rmdp_evaluation`` (one of :data:`~rmdp_envs.core.EVALUATION_CLASSES`: the
       leaderboard's re-evaluation tolerance) and ``rmdp_family`` (one of :data:`~rmdp_envs.core.FAMILIES`:
       the solvers' default hyperparameters);
    3. one user's view (:class:`~rmdp_envs.GroupReward`) passes Gymnasium's ``check_env``, so any
       single-agent library can train a representative policy on it;
    4. every step returns a float32 reward vector of shape ``(n,)``, finite and inside ``reward_space``;
    5. the same seed and actions give the same observations, rewards and episode ends (the board
       re-evaluates policies on fixed seeds);
    6. the environment pickles, population included (vector env workers and saved runs rebuild it);
    7. the cheap description of the users' rewards that the solvers read instead of the vectors
       (``user_rewards()``, :mod:`rmdp_envs.rewards`; the vector itself where an env states none)
       rebuilds every step's reward vector;
    8. where the env has ``step_velocity`` (the speed tasks' dynamics-only step, which the solvers' rollouts
       call instead of ``step``), it gives the observations, ``info["x_velocity"]`` and terminations of ``step``
       for the same seed and actions (a task of one's own on another robot failed there and nowhere else).

    ``env`` is left reset with ``seed``, as Gymnasium's checker leaves it.
    """
    if not isinstance(env, gym.Env):
        raise TypeError(f"check_rmdp_env needs a gymnasium.Env, got {type(env).__name__}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer (the rules are checked over that many steps), got {steps!r}")
    base = env.unwrapped
    population = getattr(base, "population", None)
    _require(isinstance(population, Population),
             f"env.unwrapped.population must be a rmdp_envs.Population, got {type(population).__name__}")
    n = population.n
    space = getattr(base, "reward_space", None)
    _require(isinstance(space, gym.spaces.Box) and space.shape == (n,) and space.dtype == np.float32,
             f"env.unwrapped.reward_space must be a float32 Box of shape (n,) = ({n},), got {space!r}")
    for key, allowed in (("rmdp_evaluation", EVALUATION_CLASSES), ("rmdp_family", FAMILIES)):
        stated = base.metadata.get(key)
        _require(stated in allowed, f"metadata[{key!r}] must be one of {allowed}, got {stated!r}")

    with warnings.catch_warnings():  # the view is a wrapper by design: Gymnasium's remark on that is not about env
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version", category=UserWarning)
        try:
            check_env(GroupReward(base, users=[0]), skip_render_check=True)
        except AssertionError as e:
            raise RMDPContractError(f"one user's view (GroupReward) fails Gymnasium's check_env: {e}") from e

    first = _seeded_trace(env, seed, steps)
    again = _seeded_trace(env, seed, steps)
    for t, (a, b) in enumerate(zip(first, again)):
        same = all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
        _require(same, f"step {t} differs between two runs with seed {seed} and the same actions: "
                       "the env must draw its randomness from reset(seed=...) only")

    clone = pickle.loads(pickle.dumps(env))
    _require(clone.unwrapped.population == population, "the env must pickle with its population (EzPickle does it)")

    model = user_rewards_of(env)
    for t, (_, reward, _, info) in enumerate(first):
        rebuilt = model.rewards(np.asarray(model.statistic(reward, info))[None])[0]
        _require(np.allclose(rebuilt, reward, rtol=0, atol=1e-6),
                 f"step {t}: user_rewards() ({type(model).__name__}) does not rebuild the reward vector "
                 f"(largest difference {np.max(np.abs(rebuilt - reward)):.3g}): a subclass whose rewards differ from "
                 "its parent's overrides user_rewards() too, or sets user_rewards = None")
    if callable(getattr(base, "step_velocity", None)):
        _check_step_velocity(env, first, seed)
    env.reset(seed=seed)


def _check_step_velocity(env: gym.Env, trace: list, seed: int) -> None:
    """Rule 8: ``step_velocity`` replays ``trace`` (made by ``step``) with the same seed, actions and resets."""
    base = env.unwrapped
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for t, (obs, _, (terminated, truncated), info) in enumerate(trace):
        action = env.action_space.sample()
        try:
            again, velocity, ended = base.step_velocity(action)
        except Exception as e:  # noqa: BLE001 (any failure here is the finding)
            raise RMDPContractError(f"step {t}: step_velocity (the solvers' rollout step) fails where step does not: "
                                    f"{type(e).__name__}: {e}") from e
        _require(np.array_equal(again, obs) and velocity == info.get("x_velocity") and ended == terminated,
                 f"step {t}: step_velocity (the solvers' rollout step) differs from step for the same seed and "
                 "actions: a subclass that changes the observation, velocity or health overrides step_velocity too")
        if terminated or truncated:
            env.reset()


def _seeded_trace(env: gym.Env, seed: int, steps: int) -> list[tuple[Any, np.ndarray, tuple, dict]]:
    """``(observation, reward, (terminated, truncated), info)`` of each seeded random step, after checking the reward."""
    base = env.unwrapped
    n, space = base.population.n, base.reward_space
    env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = []
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        _require(isinstance(reward, np.ndarray) and reward.dtype == np.float32 and reward.shape == (n,),
                 f"step {t}: the reward must be a float32 array of shape (n,) = ({n},), got "
                 f"{type(reward).__name__} {getattr(reward, 'dtype', '')} {getattr(reward, 'shape', '')}".rstrip())
        _require(bool(np.all(np.isfinite(reward))) and space.contains(reward),
                 f"step {t}: the reward vector leaves reward_space [{space.low.min()}, {space.high.max()}] "
                 f"(min {reward.min()}, max {reward.max()})")
        _require(isinstance(terminated, (bool, np.bool_)) and isinstance(truncated, (bool, np.bool_)),
                 f"step {t}: terminated and truncated must be bools")
        trace.append((obs, reward.copy(), (bool(terminated), bool(truncated)), info))
        if terminated or truncated:
            env.reset()
    return trace
