"""How the board's unseen users differ from its training users, on the speed tasks (no learning; seconds).

The board's unseen-users column scores each submission's policies on a fresh population draw
(``leaderboard.unseen``: the benchmark's env kwargs with population seed ``UNSEEN_POPULATION_SEED``).
On HalfCheetahSpeed the policies serve the fresh users *better* than the users they were trained for.
Is the draw easier? This compares the two draws of each speed benchmark by their target speeds (the
share in the slowest ``--slow`` of the target range: slow targets are the easy ones at 2M transitions;
0.375 of HalfCheetah's (0, 4) is 1.5 m/s) and by the k-policy yardstick W_k (``welfare_upper_bound``)
at the board's budgets.

    python benchmarks/unseen_draw.py        # the four speed tasks at their board kwargs (defaults)

Writes ``benchmarks/results/unseen_draw.json`` and ``unseen_draw.md``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rmdp_envs  # noqa: E402
from leaderboard.unseen import UNSEEN_POPULATION_SEED, unseen_env_kwargs  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, library_versions, provenance  # noqa: E402


@dataclass
class Args:
    env_ids: tuple[str, ...] = ("rmdp/HalfCheetahSpeed-v0", "rmdp/HopperSpeed-v0", "rmdp/Walker2dSpeed-v0",
                                "rmdp/AntSpeed-v1")
    """speed benchmarks, each at its default kwargs (the board's)"""
    ks: tuple[int, ...] = (1, 2, 3, 5, 10)
    """budgets whose W_k is computed for both draws"""
    slow: float = 0.375
    """a target in this slowest fraction of the env's target range counts as slow"""
    out: str = "benchmarks/results/unseen_draw.json"


def describe(env_id: str, env_kwargs: dict, ks: tuple[int, ...], slow: float) -> dict:
    """One draw: its seed, n, the share of slow targets (below ``slow`` of the range) and W_k for each k."""
    env = rmdp_envs.make(env_id, **env_kwargs)
    population = env.unwrapped.population
    targets = np.asarray(population.params)[:, 0]
    low, high = population.meta["low"], population.meta["high"]
    below = low + slow * (high - low)
    facts = {"population_seed": population.seed, "n": population.n, "target_range": [low, high],
             "slow_below": below, "share_slow": float(np.mean(targets < below)), "mean_target": float(targets.mean()),
             "W_k": {str(k): float(env.unwrapped.welfare_upper_bound(k)["welfare"]) for k in ks}}
    env.close()
    return facts


def main(args: Args) -> None:
    import rmdp_envs  # noqa: PLC0415
    from rmdp_envs.core import check_k  # noqa: PLC0415
    for env_id in args.env_ids:
        try:
            n = rmdp_envs.make(env_id).unwrapped.population.n  # the id, then every k against its users
            for k in args.ks:
                check_k(k, n)
        except ValueError as e:
            raise SystemExit(f"error: {env_id}: {e}") from None
    rows = []
    for env_id in args.env_ids:
        fresh = unseen_env_kwargs(env_id, {})
        if fresh is None:
            raise SystemExit(f"error: {env_id} has no fresh population draw (its users are fixed or given)")
        rows.append({"env_id": env_id, "training": describe(env_id, {}, args.ks, args.slow),
                     "unseen": describe(env_id, fresh, args.ks, args.slow)})
    atomic_write_json(ROOT / args.out, {"args": {**vars(args), "env_ids": list(args.env_ids), "ks": list(args.ks)},
                                        "unseen_population_seed": UNSEEN_POPULATION_SEED, "commit": git_commit(),
                                        "versions": library_versions(), "provenance": provenance(ROOT),
                                        "rows": rows})
    lines = [f"# Training draw against the unseen draw (population seed {UNSEEN_POPULATION_SEED})", "",
             f"`python benchmarks/unseen_draw.py`, commit {git_commit()[:9]}; the share of slow targets (in the slowest "
             f"{args.slow:g} of the target range) and the k-policy bound W_k (`welfare_upper_bound`) of each draw.", "",
             "| benchmark | draw | seed | n | slow: below (m/s) | slow targets | mean target | {} |".format(
                 " | ".join(f"W_{k}" for k in args.ks)),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in args.ks) + " |"]
    for row in rows:
        for draw in ("training", "unseen"):
            f = row[draw]
            lines.append(f"| {row['env_id']} | {draw} | {f['population_seed']} | {f['n']} | {f['slow_below']:.3g} | {f['share_slow']:.0%} | "
                         f"{f['mean_target']:.3f} | " + " | ".join(f"{f['W_k'][str(k)]:.2f}" for k in args.ks) + " |")
    atomic_write_text(ROOT / Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Args))
