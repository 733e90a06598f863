"""Step k policies x m copies of an r-MDP as one vector environment.

Gymnasium's ``SyncVectorEnv`` stores rewards as a float per copy, so it cannot carry reward
vectors; this one returns rewards of shape ``(num_envs, n)``. Copies are ordered policy-major:
copy ``c`` of policy ``j`` is sub-env ``j * m + c`` (``policy_index`` gives ``j`` per sub-env).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rmdp_envs.core import check_k
from rmdp_envs.registration import make


class RMDPVectorEnv(VectorEnv):
    """In-process vector env over r-MDP copies with vector rewards.

    ``autoreset_mode``: ``SAME_STEP`` (training: a finished copy is reset inside the step that
    finished it, the last observation goes to ``infos["final_obs"]``) or ``DISABLED``
    (evaluation: a finished copy is frozen, returns zero reward and is not stepped until reset).
    ``infos["episode"]`` holds the undiscounted return vector ``r`` (num_envs, n) and length
    ``l`` of episodes that ended this step, with mask ``infos["_episode"]``.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], k: int = 1,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        if self.num_envs == 0 or self.num_envs % k:
            raise ValueError(f"need a positive multiple of k={k} copies, got {self.num_envs}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise ValueError(f"autoreset_mode must be SAME_STEP or DISABLED, got {mode}")
        self.autoreset_mode = mode
        self.metadata = {"autoreset_mode": mode}
        first = self.envs[0]
        self.k = k
        self.copies_per_policy = self.num_envs // k
        self.policy_index = np.repeat(np.arange(k), self.copies_per_policy)
        self.population = first.unwrapped.population
        if any(env.unwrapped.population != self.population for env in self.envs[1:]):
            raise ValueError("the copies were built with different populations (population_seed=None?); "
                             "all copies of an r-MDP must share one population: fix population_seed")
        self.n_agents = self.population.n
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.single_reward_space = first.unwrapped.reward_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs = np.zeros((self.num_envs,) + self.single_observation_space.shape, dtype=self.single_observation_space.dtype)
        self._returns = np.zeros((self.num_envs, self.n_agents), dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"need one seed per sub-env ({self.num_envs}), got {len(seeds)}")
        infos: dict[str, Any] = {}
        for i, (env, s) in enumerate(zip(self.envs, seeds)):
            self._obs[i], _ = env.reset(seed=s, options=options)
            if s is not None:
                env.action_space.seed(s)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._done[:] = False
        return self._obs.copy(), infos

    def step(self, actions):
        actions = np.asarray(actions)
        expected = (self.num_envs,) + tuple(self.single_action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected} (one action per sub-env), got {actions.shape}")
        rewards = np.zeros((self.num_envs, self.n_agents), dtype=np.float32)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        final_obs = None
        finished = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue
            obs, rewards[i], terminations[i], truncations[i], _ = env.step(actions[i])
            if terminations[i] or truncations[i]:
                finished[i] = True
                if self.autoreset_mode is AutoresetMode.SAME_STEP:
                    if final_obs is None:
                        final_obs = self._obs.copy()
                    final_obs[i] = obs
                    obs, _ = env.reset()
                else:
                    self._done[i] = True
            self._obs[i] = obs
        self._returns += rewards
        self._lengths += ~self._done | finished
        infos: dict[str, Any] = {}
        if finished.any():
            infos["episode"] = {"r": np.where(finished[:, None], self._returns, 0.0),
                                "l": np.where(finished, self._lengths, 0)}
            infos["_episode"] = finished
            if final_obs is not None:
                infos["final_obs"], infos["_final_obs"] = final_obs, finished
            self._returns[finished] = 0.0
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                self._lengths[finished] = 0
        return self._obs.copy(), rewards, terminations, truncations, infos

    @property
    def all_done(self) -> bool:
        """With ``DISABLED`` autoreset: whether every copy has finished its episode."""
        return bool(self._done.all())

    def close_extras(self, **kwargs):
        for env in self.envs:
            env.close()


def make_vector_env(env_id: str, k: int = 1, m: int = 1, env_kwargs: dict | None = None,
                    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP) -> RMDPVectorEnv:
    """Build ``k * m`` copies of ``env_id`` (``m`` per policy) as one :class:`RMDPVectorEnv`."""
    env_kwargs = dict(env_kwargs or {})
    probe = make(env_id, **env_kwargs)  # validates the id and kwargs once, with a clear error
    check_k(k, probe.unwrapped.population.n)
    if int(m) != m or m < 1:
        raise ValueError(f"m (copies per policy) must be an integer >= 1, got {m}")
    fns = [lambda: probe] + [lambda: make(env_id, **env_kwargs) for _ in range(k * m - 1)]
    return RMDPVectorEnv(fns, k=k, autoreset_mode=autoreset_mode)
