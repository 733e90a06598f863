"""Where a rollout worker's time goes, per transition, beside the bare physics of the same trajectories.

Builds one ``--rollout workers`` worker (``rmdp_train.rollout._RolloutWorker``) in this process with a
barrier of one party (no waiting on other workers) over ``--copies`` copies of EM's layout on
``rmdp/HalfCheetahSpeed-v0`` (k = 5, 8 copies per policy, 256 steps), an untrained actor (seeded), and
times whole rollouts: the env step (``RMDPVectorEnv.step``: MuJoCo plus the per-copy Python), the
observation statistics' update, and the rest (normalization, the policies' forward pass, noise, buffers).
Then it replays the rollouts' actions on fresh copies with only the calls Gymnasium's step makes into
MuJoCo (``mj_step`` with the frame skip, ``mj_rnePostConstraint``): the floor no Python-side change to
the worker can go under. One process, so per-core figures.

    python benchmarks/worker_loop.py                     # 20 copies (a worker's share on 2 cores), 6 rollouts

Writes ``{out}/worker_loop.json``.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402

from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance  # noqa: E402
from rmdp_train.policies import MultiPolicyActor  # noqa: E402
from rmdp_train.rollout import StepBarrier, _RolloutWorker  # noqa: E402

ENV_ID = "rmdp/HalfCheetahSpeed-v0"
K, COPIES_PER_POLICY, T = 5, 8, 256


@dataclass
class Args:
    copies: int = 20
    """copies this worker steps (of the k x 8 = 40; 20 is one worker's share on 2 cores)"""
    rollouts: int = 6
    """timed rollouts (after one untimed warm-up)"""
    seed: int = 0
    """actor initialization, action noise and env resets"""
    out: str = "benchmarks/results"
    """folder for worker_loop.json"""


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.seconds += time.perf_counter() - start


def bare_physics(actions: np.ndarray, seed: int) -> float:
    """Seconds to replay ``actions`` ``(steps, copies, act_dim)`` with Gymnasium's MuJoCo calls only."""
    envs = [gym.make(ENV_ID).unwrapped for _ in range(actions.shape[1])]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    pairs = [(env.model, env.data, env.frame_skip) for env in envs]
    start = time.perf_counter()
    for step in actions:
        for (model, data, frame_skip), action in zip(pairs, step):
            data.ctrl[:] = action
            mujoco.mj_step(model, data, nstep=frame_skip)
            mujoco.mj_rnePostConstraint(model, data)
    return time.perf_counter() - start


def main(args: Args) -> None:
    if not 1 <= args.copies <= K * COPIES_PER_POLICY or args.rollouts < 1:
        sys.exit(f"error: --copies must lie in [1, {K * COPIES_PER_POLICY}] and --rollouts be >= 1")
    torch.manual_seed(args.seed)
    env = gym.make(ENV_ID)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MultiPolicyActor(K, obs_dim, act_dim)
    spec = dict(env_id=ENV_ID, env_kwargs={}, K=K, copies=COPIES_PER_POLICY, T=T, architecture=actor.architecture(),
                discrete=False, action_low=env.action_space.low, action_high=env.action_space.high, obs_clip=5.0,
                obs_epsilon=1e-8, norm_obs=True, hold_observations=False)
    ctx = mp.get_context("fork")
    shared = [ctx.RawArray("d", K * COPIES_PER_POLICY * obs_dim) for _ in range(2)]
    worker = _RolloutWorker(spec, 0, args.copies, shared, StepBarrier(ctx, 1), 0)
    worker.reset(args.seed)
    weights = {name: value.detach().numpy().copy() for name, value in actor.state_dict().items()}
    rng = np.random.default_rng(args.seed)
    noise = rng.standard_normal((args.rollouts + 1, T, args.copies, act_dim)).astype(np.float32)
    worker.collect(weights, worker.rms.state_dict(), noise[0])  # warm-up: allocations, first-call costs
    step, update = Timed(worker.envs.step), Timed(worker.rms.update)
    worker.envs.step, worker.rms.update = step, update
    total, actions = 0.0, []
    for r in range(1, args.rollouts + 1):
        start = time.perf_counter()
        out = worker.collect(weights, worker.rms.state_dict(), noise[r])
        total += time.perf_counter() - start
        actions.append(np.clip(out["actions"], env.action_space.low, env.action_space.high))
    transitions = args.rollouts * T * args.copies
    physics = bare_physics(np.concatenate(actions), args.seed)
    per = {name: round(seconds / transitions * 1e6, 2) for name, seconds in
           {"total": total, "env_step": step.seconds, "statistics_update": update.seconds,
            "policy_and_rest": total - step.seconds - update.seconds, "bare_physics": physics}.items()}
    report = {"machine": hardware(), "commit": git_commit(ROOT), "versions": library_versions(), "env_id": ENV_ID,
              "copies": args.copies, "rollouts": args.rollouts, "steps_per_rollout": T, "seed": args.seed,
              "transitions": transitions, "us_per_transition": per,
              "note": "one process, no other worker to wait for; an untrained actor; bare_physics replays the same "
                      "actions from the same resets with only mj_step (frame skip) and mj_rnePostConstraint"}
    path = Path(args.out) / "worker_loop.json"
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    print(per)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
