"""Fixture runs made through the library alone (no solver): for tests, the CI browser check and demos.

:func:`make_fixture_run` writes what a solver run writes with ``--save-model``: ``result.json`` plus
``policies.json`` / ``policies.safetensors`` of a seeded, untrained :class:`MultiPolicyActor`,
evaluated under the board's protocol with :func:`rmdp_envs.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.protocol import PROTOCOL


def make_fixture_run(run_dir: str | Path, env_id: str = "rmdp/ResourceGathering-v0", k: int = 2, seed: int = 0,
                     env_kwargs: dict[str, Any] | None = None, solver: str = "fixture",
                     total_timesteps: int = 1000, commit: str | None = "0123456789abcdef0123456789abcdef01234567",
                     hidden: tuple[int, ...] = (16,), extra: dict[str, Any] | None = None,
                     weight_seed: int | None = None) -> Path:
    """Write a fixture run to ``run_dir``; the weights come from ``weight_seed`` (default ``seed``)."""
    import torch  # noqa: PLC0415

    import rmdp_envs  # noqa: PLC0415
    from rmdp_envs import RunResult  # noqa: PLC0415
    from rmdp_train.policies import MultiPolicyActor, load_policies, save_policies  # noqa: PLC0415

    run_dir = Path(run_dir)
    env_kwargs = dict(env_kwargs or {})
    env = rmdp_envs.make(env_id, **env_kwargs)
    population = env.unwrapped.population
    obs_dim = int(np.prod(env.observation_space.shape))
    discrete = hasattr(env.action_space, "n")
    out_dim = int(env.action_space.n) if discrete else int(np.prod(env.action_space.shape))
    torch.manual_seed(seed if weight_seed is None else weight_seed)
    actor = MultiPolicyActor(k, obs_dim, out_dim, hidden=hidden, discrete=discrete)
    with torch.no_grad():  # larger head weights than PPO's init, so that policies differ visibly
        actor.head.weight.mul_(300.0)
    save_policies(run_dir, actor, env_id=env_id, env_kwargs=env_kwargs,
                  action_low=None if discrete else env.action_space.low,
                  action_high=None if discrete else env.action_space.high)
    env.close()
    ev = rmdp_envs.evaluate(env_id, load_policies(run_dir), k, PROTOCOL.episodes, PROTOCOL.seed, env_kwargs)
    assignment = ev.best_assignment.tolist()
    RunResult(env_id=env_id, env_kwargs=env_kwargs, population=population.to_dict(), solver=solver, commit=commit,
              seed=seed, k=k, total_timesteps=total_timesteps, wall_time_s=1.5, utility=ev.utility.tolist(),
              assignment=assignment, welfare=ev.welfare(assignment), best_welfare=ev.best_welfare,
              args={"seed": seed, "learning_rate": 3e-4, "hidden": list(hidden)}, hardware="fixture-cpu",
              eval_episodes=PROTOCOL.episodes, eval_seed=PROTOCOL.seed, extra=extra or {}).write(run_dir)
    return run_dir
