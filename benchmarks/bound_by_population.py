"""How the k-policy yardstick W_k moves with the population draw and with n (issue 11, welfare at scale).

Issue 11 compares EM's welfare *as a fraction of W_k* at n = 100 and n = 100,000. W_k is the most
any k policies can reach for *these* users; with few users it depends on how their targets happen
to clump. This script computes W_k of ``rmdp/HalfCheetahSpeed-v0`` (uniform targets) for many
population seeds at small n and for one draw at large n, so the two fractions can be read against
the spread of their denominators. No learning: bounds only (seconds).

    python benchmarks/bound_by_population.py          # n = 100, seeds 0-29; n = 100,000, seed 0; k = 10
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, library_versions, provenance  # noqa: E402


@dataclass
class Args:
    env_id: str = "rmdp/HalfCheetahSpeed-v0"
    k: int = 10
    small_n: int = 100
    seeds: int = 30
    """population seeds 0..seeds-1 at small_n"""
    large_n: int = 100_000
    out: str = "benchmarks/results/bound_by_population.json"


def bound(env_id: str, n: int, seed: int, k: int) -> float:
    import gymnasium as gym  # noqa: PLC0415

    import rmdp_envs  # noqa: F401, PLC0415

    env = gym.make(env_id, n_agents=n, population="uniform", population_seed=seed)
    return float(env.unwrapped.welfare_upper_bound(k)["welfare"])


def main(args: Args) -> None:
    if args.seeds < 2 or args.k < 1 or args.small_n < args.k or args.large_n < args.k:
        sys.exit(f"error: need --seeds >= 2 (a spread over population seeds) and 1 <= --k <= both populations' n; got "
                 f"--seeds {args.seeds}, --k {args.k}, --small-n {args.small_n}, --large-n {args.large_n}")
    small = [bound(args.env_id, args.small_n, s, args.k) for s in range(args.seeds)]
    large = bound(args.env_id, args.large_n, 0, args.k)
    out = {"env_id": args.env_id, "k": args.k, "commit": git_commit(), "versions": library_versions(),
           "small": {"n": args.small_n, "seeds": list(range(args.seeds)), "W_k": small,
                     "mean": float(np.mean(small)), "std": float(np.std(small, ddof=1)),
                     "min": float(np.min(small)), "max": float(np.max(small))},
           "large": {"n": args.large_n, "seed": 0, "W_k": large}}
    atomic_write_json(args.out, {**out, "provenance": provenance(ROOT)})
    print(f"W_{args.k} at n = {args.small_n}, seeds 0-{args.seeds - 1}: mean {out['small']['mean']:.2f} "
          f"(sd {out['small']['std']:.2f}, {out['small']['min']:.2f} to {out['small']['max']:.2f}; seed 0: {small[0]:.2f}); "
          f"n = {args.large_n}: {large:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
