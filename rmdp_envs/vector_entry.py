"""``gymnasium.make_vec("rmdp/...", num_envs=N)``: the registry's vector entry point of every r-MDP.

Gymnasium's own vectorizers (``vectorization_mode="sync"`` and ``"async"``) keep one float reward per
copy, so they cannot carry an r-MDP's reward vector (their step fails inside numpy). Every ``rmdp/`` id
is therefore registered with a ``vector_entry_point`` that names this module and the id
(``"rmdp_envs.vector_entry:rmdp/HalfCheetahSpeed-v0"``: a string, so the spec stays JSON-serializable);
``make_vec``'s default mode then builds :func:`rmdp_envs.make_vector_env`, whose rewards are ``(N, n)``::

    envs = gymnasium.make_vec("rmdp/HalfCheetahSpeed-v0", num_envs=8)             # 8 copies, one policy
    envs = gymnasium.make_vec("rmdp/HalfCheetahSpeed-v0", num_envs=10, k=5)       # 5 policies x 2 copies
    envs = gymnasium.make_vec("rmdp/HalfCheetahSpeed-v0", num_envs=8, num_workers=1, n_agents=1000)

The keywords of :func:`make_vec_env` shape the vector env; every other keyword goes to each copy's
``gymnasium.make``, as it does for Gymnasium's own ``make_vec``. An r-MDP of your own gets the same by
registering ``vector_entry_point=f"rmdp_envs.vector_entry:{env_id}"``.
"""

from __future__ import annotations

import functools

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rmdp_envs.vector import RMDPAsyncVectorEnv, RMDPVectorEnv, make_vector_env


def make_vec_env(env_id: str, num_envs: int = 1, *, k: int = 1, num_workers: int = 0, rewards: str = "vector",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, main_share: float | None = None,
                 **env_kwargs) -> RMDPVectorEnv | RMDPAsyncVectorEnv:
    """``num_envs`` copies of ``env_id`` as ``k`` policies' blocks of ``num_envs // k`` copies (policy-major).

    ``num_envs`` counts every copy, as Gymnasium's does; with ``k`` policies it must be a multiple of
    ``k``. ``autoreset_mode``: ``NEXT_STEP`` by default, as Gymnasium's own vector envs (a finished copy's next
    step is its reset), or ``SAME_STEP`` (the solvers': reset inside the step that ends the episode, the last
    observation in ``infos["final_obs"]``) or ``DISABLED``. ``num_workers``, ``rewards`` and ``main_share``: as
    :func:`make_vector_env`.
    """
    if isinstance(num_envs, bool) or int(num_envs) != num_envs or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if num_envs % k:
        below = k * (num_envs // k)
        raise ValueError(f"num_envs ({num_envs}) counts all copies of the k = {k} policies, so it must be a multiple "
                         f"of k: {f'{below} or ' if below else ''}{below + k}")
    return make_vector_env(env_id, k=int(k), copies_per_policy=int(num_envs) // int(k), env_kwargs=env_kwargs,
                           autoreset_mode=autoreset_mode, num_workers=num_workers, rewards=rewards,
                           main_share=main_share)


def __getattr__(name: str):
    """``rmdp_envs.vector_entry:<id>`` (what Gymnasium's ``load_env_creator`` looks up): the creator of ``<id>``."""
    if name in gym.registry:
        return functools.partial(make_vec_env, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
