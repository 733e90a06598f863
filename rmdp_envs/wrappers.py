"""Views of an r-MDP as an ordinary single-objective Gymnasium environment."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import gymnasium as gym


class GroupReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Scalar reward = (weighted) sum of the rewards of a group of users.

    This is exactly what one representative policy optimizes for the users assigned to it, so
    any single-agent library can train that policy on this view. The full vector stays in
    ``info["reward_vector"]``. ``agents=`` is the first name of ``users`` (issue 2's ``GroupReward(env, agents,
    weights=None)``), still taken as a keyword.
    """

    def __init__(self, env: gym.Env, users: Sequence[int] | None = None, weights: Sequence[float] | None = None, *,
                 agents: Sequence[int] | None = None):
        if (users is None) == (agents is None):
            raise TypeError("GroupReward takes the group's user indices once: GroupReward(env, users, weights=None) "
                            f"({'both users and agents given' if users is not None else 'none given'})")
        users = users if users is not None else agents
        reward_space = getattr(env.unwrapped, "reward_space", None)
        outer = env
        while isinstance(outer, gym.Wrapper):  # a scalar view below this one: its steps no longer give the vector
            if isinstance(outer, GroupReward):
                raise ValueError("this env is already a GroupReward view (a scalar reward); view the r-MDP itself, "
                                 "with all the users and weights in one GroupReward")
            outer = outer.env
        if reward_space is None or len(reward_space.shape) != 1:
            raise ValueError("GroupReward views an r-MDP, an env with one reward per user (its unwrapped env has a "
                             f"reward_space of shape (n,), as gymnasium.make('rmdp/...') does); got {env.unwrapped!r}")
        n = reward_space.shape[0]
        users = np.asarray(users)
        if users.ndim != 1 or users.size == 0 or not np.issubdtype(users.dtype, np.integer):
            raise ValueError(f"users must be a non-empty 1-D sequence of integer indices, got {users!r}")
        if users.min() < 0 or users.max() >= n:
            raise ValueError(f"user indices must lie in [0, {n}), got min {users.min()} max {users.max()}")
        values, counts = np.unique(users, return_counts=True)
        repeated = values[counts > 1]
        if repeated.size:
            raise ValueError(f"users must not repeat (user {int(repeated[0])} appears more than once); to count a user "
                             "more than others, give it a larger weight")
        recorded_weights = None if weights is None else np.asarray(weights, dtype=np.float64).tolist()
        if weights is None:
            weights = np.ones(users.size)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != users.shape:
            raise ValueError(f"weights must have the shape of users {users.shape}, got {weights.shape}")
        if not np.all(np.isfinite(weights)):
            raise ValueError("weights contain NaN or infinite values")
        # plain ints and floats, so the env's spec still serializes to JSON
        gym.utils.RecordConstructorArgs.__init__(self, users=users.tolist(), weights=recorded_weights)
        super().__init__(env)
        self.agents = users
        self.weights = weights

    def step(self, action):
        obs, reward_vector, terminated, truncated, info = self.env.step(action)
        info = dict(info, reward_vector=reward_vector)
        return obs, float(np.dot(reward_vector[self.agents], self.weights)), terminated, truncated, info
