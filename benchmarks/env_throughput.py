"""Steps per second of every r-MDP env next to the raw Gymnasium env it wraps, measured in one run.

Single env: ``gymnasium.make`` of each (both without the passive env checker), pre-sampled
actions, resets included. Vectorized: ``rmdp_envs.make_vector_env`` (k=4 policies x m=4 copies,
in-process and with ``--workers`` env worker processes beside the main one; 1 on 2 cores) against Gymnasium's ``SyncVectorEnv`` of 16 raw copies.
Writes ``benchmarks/results/env_throughput.json``.

    python benchmarks/env_throughput.py [--steps 20000] [--sizes 100 10000 100000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym

import rmdp_envs
from rmdp_envs.envs.mujoco_speed import without_settotalmass_warning
from rmdp_envs.files import atomic_write_json
from rmdp_envs.results import git_commit, hardware, library_versions, provenance

RAW = {
    "rmdp/HalfCheetahSpeed-v0": ("HalfCheetah-v5", {"ctrl_cost_weight": 0.0}),
    "rmdp/HopperSpeed-v0": ("Hopper-v5", {"ctrl_cost_weight": 0.0}),
    "rmdp/Walker2dSpeed-v0": ("Walker2d-v5", {"ctrl_cost_weight": 0.0}),
    "rmdp/AntSpeed-v1": ("Ant-v5", {"ctrl_cost_weight": 0.0, "contact_cost_weight": 0.0, "healthy_z_range": (0.4, 1.0)}),
    "rmdp/CartPolePosition-v0": ("CartPole-v1", {}),
    "rmdp/ResourceGathering-v0": (None, {}),
}
SIZED = {"rmdp/ResourceGathering-v0"}  # fixed population: only its own n


def single_rate(env: gym.Env, steps: int) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(env, steps: int) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    batches = [env.action_space.sample() for _ in range(max(1, steps // env.num_envs))]
    start = time.perf_counter()
    for a in batches:
        env.step(a)
    rate = len(batches) * env.num_envs / (time.perf_counter() - start)
    env.close()
    return rate


def best_of(fn, repeats: int) -> float:
    """Best of a few repeats: the machine's other load only ever slows a run down."""
    return max(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="env steps per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 100_000], help="population sizes n")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many measurements")
    parser.add_argument("--envs", nargs="+", default=list(RAW), help="r-MDP ids")
    parser.add_argument("--workers", type=int, default=1,
                        help="num_workers of the multi-process vector env (the main process steps a share too)")
    parser.add_argument("--out", default="benchmarks/results/env_throughput.json")
    args = parser.parse_args()
    unknown = [env_id for env_id in args.envs if env_id not in RAW]
    if unknown or min(args.sizes) < 1 or args.repeats < 1 or args.steps < 1:
        parser.error(f"--envs takes ids with a raw Gymnasium counterpart ({', '.join(RAW)}), got {unknown}" if unknown
                     else "--sizes, --repeats and --steps must be at least 1")

    rows = []
    for env_id in args.envs:
        raw_id, raw_kwargs = RAW[env_id]
        steps = args.steps // 4 if "Ant" in env_id else args.steps
        raw_single = raw_vector = None
        if raw_id:
            with without_settotalmass_warning():  # Gymnasium's robots warn on MuJoCo >= 3.16 where ours do not
                raw_single = best_of(lambda: single_rate(gym.make(raw_id, disable_env_checker=True, **raw_kwargs), steps),
                                     args.repeats)
                raw_vector = best_of(lambda: vector_rate(gym.vector.SyncVectorEnv(
                    [lambda: gym.make(raw_id, disable_env_checker=True, **raw_kwargs)] * 16,
                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP), steps), args.repeats)
        for n in ([25] if env_id in SIZED else args.sizes):
            kwargs = {} if env_id in SIZED else {"n_agents": n}
            row = {"env_id": env_id, "raw_id": raw_id, "n": n,
                   "single": best_of(lambda: single_rate(gym.make(env_id, **kwargs), steps), args.repeats),
                   "raw_single": raw_single,
                   "vector": best_of(lambda: vector_rate(rmdp_envs.make_vector_env(env_id, 4, 4, kwargs), steps), args.repeats),
                   "vector_workers": best_of(lambda: vector_rate(rmdp_envs.make_vector_env(env_id, 4, 4, kwargs, num_workers=args.workers), steps), args.repeats),
                   "raw_vector": raw_vector}
            row["single_ratio"] = row["single"] / raw_single if raw_single else None
            row["vector_ratio"] = row["vector"] / raw_vector if raw_vector else None
            rows.append(row)
            ratio = f"{row['single_ratio']:.0%}" if raw_single else "-"
            vratio = f"{row['vector_ratio']:.0%}" if raw_vector else "-"
            print(f"{env_id:28s} n={n:>7d}  single {row['single']:>9.0f}/s ({ratio:>4s} of raw)  "
                  f"vector {row['vector']:>9.0f}/s ({vratio:>4s})  {args.workers} worker(s) {row['vector_workers']:>9.0f}/s", flush=True)
    result = {"machine": hardware(), "commit": git_commit(), "versions": library_versions(),
              "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "repeats": args.repeats,
              "workers": args.workers, "rows": rows}
    atomic_write_json(args.out, {**result, "provenance": provenance(Path(__file__).parent)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
