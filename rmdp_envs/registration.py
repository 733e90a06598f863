"""Registers every r-MDP under the ``rmdp/`` namespace of Gymnasium's registry."""

from __future__ import annotations

import importlib
import sys

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


#: The namespace every r-MDP id lives in: what the solvers, the evaluation and the board list and accept.
NAMESPACE = "rmdp/"


def register(env_id: str, entry_point: str, max_episode_steps: int | None = None, **kwargs) -> None:
    """Register an r-MDP (yours too): ``gymnasium.register`` under ``rmdp/``, with what an r-MDP needs there.

    The passive env checker is off (it rejects reward vectors), and the ``vector_entry_point`` is
    :mod:`rmdp_envs.vector_entry`'s, so ``gymnasium.make_vec(id, num_envs=N)`` builds the vector env that carries
    reward vectors (Gymnasium's own cannot). ``max_episode_steps``: the time limit (an r-MDP whose episodes may not
    end needs one: evaluation runs every episode to its end). Other keywords go to ``gymnasium.register``.
    """
    if not env_id.startswith(NAMESPACE):
        raise ValueError(f"r-MDP ids live under {NAMESPACE} (what the solvers, the evaluation and the board accept): "
                         f"got {env_id!r}, e.g. {NAMESPACE}{env_id.split('/')[-1]}")
    gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps, disable_env_checker=True,
                 vector_entry_point=f"rmdp_envs.vector_entry:{env_id}", **kwargs)


def register_envs() -> None:
    """Register all of rmdp's ids (idempotent), through :func:`register`."""
    for env_id, (entry_point, max_steps) in ENV_SPECS.items():
        if env_id not in gym.registry:
            register(env_id, entry_point, max_steps)


def registered_ids() -> list[str]:
    """Every r-MDP id currently registered (including ones added by other modules)."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(NAMESPACE))


class UnknownEnvId(ValueError):
    """An env id that names no registered r-MDP (see :func:`registered_id`)."""


def registered_id(env_id: str, import_module: bool = True) -> str:
    """``env_id`` as registered, after importing the module of Gymnasium's ``"module:rmdp/Name-vN"`` form (a module
    that registers its own r-MDPs: every process that makes the env, rollout workers included, imports it this way);
    a clear ``ValueError`` for an id that is not a registered r-MDP (:class:`UnknownEnvId` for one never registered).

    ``import_module=False`` imports nothing: the board, whose env ids come from submitted files, makes only envs whose
    modules the user named (``python -m leaderboard --import-module``), never a module a file names."""
    bare = env_id
    if ":" in env_id:
        module, bare = env_id.split(":", 1)
        if module not in sys.modules and not import_module:
            raise ValueError(f"env id {env_id!r} names the module {module!r}, which is not imported: pass "
                             f"--import-module {module} (the board imports only the modules you name)")
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 (ImportError, or the module's own error while it registers)
            raise ValueError(f"env id {env_id!r}: cannot import {module!r}, the module that should register "
                             f"{bare!r} ({type(e).__name__}: {e})") from None
    ids = registered_ids()
    if bare in ids:
        return bare
    if bare in gym.registry:
        raise ValueError(f"{bare!r} is registered, but not as an r-MDP: r-MDPs register under {NAMESPACE} "
                         "(rmdp_envs.register)")
    name = bare.rsplit("-v", 1)[0]
    versions = [other for other in ids if other.rsplit("-v", 1)[0] == name]
    if versions:  # a retired or mistyped version of a registered task (rmdp/AntSpeed-v0 since MuJoCo 4)
        raise UnknownEnvId(f"unknown env id {env_id!r}: that version of {name} is not registered (a version is retired "
                           f"when its dynamics or rewards change); use {' or '.join(versions)}")
    raise UnknownEnvId(f"unknown env id {env_id!r}; registered r-MDPs: {', '.join(ids)}. An r-MDP of your own: "
                       f"register it with rmdp_envs.register in a module and name it as 'yourmodule:{NAMESPACE}Name-v0', "
                       "so that every process imports that module")


def spec_of(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registration of ``env_id`` (the ``"module:..."`` form imports the module), for a worker process to adopt."""
    return gym.spec(registered_id(env_id))


def env_metadata(env_id: str) -> dict:
    """The env class's ``metadata`` (its stated facts, e.g. ``rmdp_evaluation``), without building an env."""
    entry_point = spec_of(env_id).entry_point
    creator = gym.envs.registration.load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return dict(getattr(creator, "metadata", {}))


def make(env_id: str, **env_kwargs) -> gym.Env:
    """``gymnasium.make`` with a clear error for ids that are not r-MDPs (``"module:rmdp/Name-vN"`` imports the module)."""
    return gym.make(registered_id(env_id), **env_kwargs)
