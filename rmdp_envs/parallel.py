"""PettingZoo view: the k representative policies as the agents of a parallel env."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pettingzoo import ParallelEnv

from rmdp_envs.core import check_assignment, check_k, round_robin
from rmdp_envs.registration import make


class RMDPParallelEnv(ParallelEnv):
    """Agents ``policy_0 ... policy_{k-1}``, each acting in its own copy of the r-MDP.

    Agent ``j``'s reward is the summed reward of the users assigned to it; its info carries the
    full reward vector (``"reward_vector"``, shape ``(n,)``). All copies reset with the same seed:
    every representative faces the same environment, as in the r-MDP.
    """

    metadata = {"name": "rmdp_parallel_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, env_id: str, k: int, assignment: Sequence[int] | None = None, **env_kwargs):
        self.env_id = env_id
        self.envs = [make(env_id, **env_kwargs)]
        n = self.envs[0].unwrapped.population.n
        self.k = check_k(k, n)
        self.envs += [make(env_id, **env_kwargs) for _ in range(self.k - 1)]
        self.assignment = round_robin(n, self.k) if assignment is None else check_assignment(assignment, self.k, n)
        self.n_users = n
        self.population = self.envs[0].unwrapped.population
        self.possible_agents = [f"policy_{j}" for j in range(self.k)]
        self.agents: list[str] = []
        self._reset_once = False
        self._index = {name: j for j, name in enumerate(self.possible_agents)}
        # (k, n) 0/1 matrix: rewards of all policies' groups in one product.
        self._groups = (self.assignment[None, :] == np.arange(self.k)[:, None]).astype(np.float64)
        # PettingZoo's attributes beside its space methods; the render modes are the copies' own
        self.observation_spaces = {agent: self.observation_space(agent) for agent in self.possible_agents}
        self.action_spaces = {agent: self.action_space(agent) for agent in self.possible_agents}
        self.render_mode = env_kwargs.get("render_mode")
        copy_metadata = self.envs[0].metadata
        self.metadata = {**type(self).metadata, "render_modes": list(copy_metadata.get("render_modes", []))}
        if "render_fps" in copy_metadata:
            self.metadata["render_fps"] = copy_metadata["render_fps"]

    def observation_space(self, agent: str):
        return self.envs[self._index[agent]].observation_space

    def action_space(self, agent: str):
        return self.envs[self._index[agent]].action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents, self._reset_once = list(self.possible_agents), True
        observations, infos = {}, {}
        for j, agent in enumerate(self.agents):
            observations[agent], info = self.envs[j].reset(seed=seed, options=options)
            if seed is not None:
                self.envs[j].action_space.seed(seed + j)
            infos[agent] = dict(info)
        return observations, infos

    def step(self, actions: dict):
        if not self._reset_once:  # agents is empty before the first reset: the step returned empty dicts
            raise RuntimeError("call reset() before step()")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"actions missing for live agents: {sorted(missing)}")
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise ValueError(f"actions for agents this env does not have: {sorted(map(str, unknown))} "
                             f"(its agents: {', '.join(self.possible_agents)})")
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for agent in self.agents:
            j = self._index[agent]
            obs, reward_vector, term, trunc, info = self.envs[j].step(actions[agent])
            observations[agent] = obs
            rewards[agent] = float(self._groups[j] @ reward_vector)
            terminations[agent], truncations[agent] = bool(term), bool(trunc)
            infos[agent] = dict(info, reward_vector=reward_vector)
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def render(self):
        """Every policy's copy: ``rgb_array`` frames side by side in one image (policy 0 leftmost), ``ansi`` texts
        one under another under their agents' names, ``human`` each copy's window; ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        frames = [env.render() for env in self.envs]
        if self.render_mode == "rgb_array":
            return np.concatenate(frames, axis=1)
        if self.render_mode == "ansi":
            return "\n".join(f"{agent}:\n{frame}" for agent, frame in zip(self.possible_agents, frames))
        return None if self.render_mode == "human" else frames

    def close(self):
        for env in self.envs:
            env.close()


def parallel_env(env_id: str, k: int, assignment: Sequence[int] | None = None, **env_kwargs) -> RMDPParallelEnv:
    """The PettingZoo parallel view of ``env_id`` with ``k`` representative policies."""
    return RMDPParallelEnv(env_id, k, assignment, **env_kwargs)
