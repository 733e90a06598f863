"""Registers every r-MDP under the ``rmdp/`` namespace of Gymnasium's registry."""

from __future__ import annotations

import gymnasium as gym

#: id -> (entry point, max_episode_steps). A retired version is left out: Gymnasium then answers its id
#: with ``DeprecatedEnv`` naming the current one (AntSpeed-v0 was Ant under MuJoCo < 4; MuJoCo 4 changed
#: its contact dynamics, 1e-3 after 10 steps, benchmarks/results/mujoco4.md, so it is -v1 now).
#: ``None``: the env ends episodes itself (tabular r-MDPs take their horizon as a keyword).
ENV_SPECS: dict[str, tuple[str, int | None]] = {
    "rmdp/ResourceGathering-v0": ("rmdp_envs.envs.resource_gathering:ResourceGatheringEnv", 40),
    "rmdp/HalfCheetahSpeed-v0": ("rmdp_envs.envs.mujoco_speed:HalfCheetahSpeedEnv", 1000),
    "rmdp/HopperSpeed-v0": ("rmdp_envs.envs.mujoco_speed:HopperSpeedEnv", 1000),
    "rmdp/Walker2dSpeed-v0": ("rmdp_envs.envs.mujoco_speed:Walker2dSpeedEnv", 1000),
    "rmdp/AntSpeed-v1": ("rmdp_envs.envs.mujoco_speed:AntSpeedEnv", 1000),
    "rmdp/CartPolePosition-v0": ("rmdp_envs.envs.cartpole_position:CartPolePositionEnv", 500),
    "rmdp/TabularRandom-v0": ("rmdp_envs.envs.tabular_generators:TabularRandomEnv", None),
    "rmdp/GridGoals-v0": ("rmdp_envs.envs.tabular_generators:GridGoalsEnv", None),
    "rmdp/Chain-v0": ("rmdp_envs.envs.tabular_generators:ChainEnv", None),
}


def register_envs() -> None:
    """Register all ids (idempotent). The passive checker is off: it rejects vector rewards.

    Each id's ``vector_entry_point`` is :mod:`rmdp_envs.vector_entry`'s, so ``gymnasium.make_vec(id,
    num_envs=N)`` builds the vector env that carries reward vectors (Gymnasium's own cannot).
    """
    for env_id, (entry_point, max_steps) in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps,
                         disable_env_checker=True, vector_entry_point=f"rmdp_envs.vector_entry:{env_id}")


def registered_ids() -> list[str]:
    """Every r-MDP id currently registered (including ones added by other modules)."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith("rmdp/"))


def env_metadata(env_id: str) -> dict:
    """The env class's ``metadata`` (its stated facts, e.g. ``rmdp_evaluation``), without building an env."""
    ids = registered_ids()
    if env_id not in ids:
        raise ValueError(f"unknown env id {env_id!r}; registered r-MDPs: {', '.join(ids)}")
    entry_point = gym.spec(env_id).entry_point
    creator = gym.envs.registration.load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return dict(getattr(creator, "metadata", {}))


def make(env_id: str, **env_kwargs) -> gym.Env:
    """``gymnasium.make`` with a clear error for ids that are not r-MDPs."""
    ids = registered_ids()
    if env_id not in ids:
        raise ValueError(f"unknown env id {env_id!r}; registered r-MDPs: {', '.join(ids)}")
    return gym.make(env_id, **env_kwargs)
