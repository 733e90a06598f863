"""``TargetWindowReward.many``'s two paths timed side by side, and which one ``many`` takes.

``many`` rebuilds the reward vectors of many speeds (or positions) at once, by one numpy pass over the union of their
windows or by each one's own window written into its row; both give the same bytes (``tests/test_rewards.py``), so
the choice is speed alone. The per-user critic asks for a whole rollout's rewards at once (n = 100, 10,240 speeds),
a vector env for one step's (16 speeds, any n). This times both paths at those shapes and between them, on the
speed tasks' triangle (HalfCheetahSpeed) and CartPolePosition's box, and records the path ``many`` chose.

    python benchmarks/many_paths.py            # writes benchmarks/results/many_paths.json and .md
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import rmdp_envs  # noqa: E402,F401 - registers the ids
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import provenance  # noqa: E402


@dataclass
class Args:
    env_ids: tuple[str, ...] = ("rmdp/HalfCheetahSpeed-v0", "rmdp/CartPolePosition-v0")
    """envs whose users' rewards are a TargetWindowReward (triangle and box)"""
    sizes: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    """population sizes n"""
    rows: tuple[int, ...] = (16, 1_024, 10_240)
    """speeds per call: a vector env's step (16) to a rollout of the per-user critic (10,240)"""
    repeats: int = 5
    """timed calls per path; the fastest is kept"""
    out: str = "benchmarks/results"
    """folder for many_paths.json and .md"""


def fastest(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def measure(env_id: str, n: int, rows: int, repeats: int) -> dict:
    window = gym.make(env_id, n_agents=n).unwrapped.user_rewards().window
    low, high = float(window.sorted_targets[0]), float(window.sorted_targets[-1])
    xs = np.random.default_rng(0).uniform(low, high, rows)  # the population's range, as a rollout's speeds spread
    t = window.sorted_targets
    los = np.searchsorted(t, xs - window.half_width, side="right")
    his = np.searchsorted(t, xs + window.half_width, side="left")
    empty = lambda: np.zeros((rows, n), dtype=np.float32)  # noqa: E731
    by_rows = fastest(lambda: window._many_by_rows(xs, los, his, empty()), repeats)
    over_union = fastest(lambda: window._many_over_union(xs, int(los.min()), int(his.max()), empty()), repeats)
    chose_rows = window.by_rows(los, his)
    return {"env_id": env_id, "shape": window.shape, "n": n, "rows": rows, "span": int(his.max() - los.min()),
            "mean_window": float(np.maximum(his - los, 0).mean()), "by_rows_ms": 1e3 * by_rows,
            "over_union_ms": 1e3 * over_union, "many_takes": "rows" if chose_rows else "union",
            "took_the_faster": chose_rows == (by_rows < over_union)}


def markdown(rows: list[dict], made: dict) -> str:
    lines = ["# `TargetWindowReward.many`: its two paths, and the one it takes", "",
             f"`python benchmarks/many_paths.py`; code of {made['commit']}, {made['machine']}. Fastest of "
             "the repeats, ms per call; speeds drawn uniformly over the population's targets.", "",
             "| env | n | speeds | span | mean window | by rows (ms) | over the union (ms) | many takes | the faster? |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['env_id']} | {r['n']:,} | {r['rows']:,} | {r['span']:,} | {r['mean_window']:.1f} | "
                     f"{r['by_rows_ms']:.3f} | {r['over_union_ms']:.3f} | {r['many_takes']} | "
                     f"{'yes' if r['took_the_faster'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> None:
    if args.repeats < 1 or min(args.sizes) < 1 or min(args.rows) < 1:
        sys.exit("error: --repeats, --sizes and --rows must be at least 1")
    made = provenance(ROOT)
    rows = [measure(env_id, n, count, args.repeats) for env_id in args.env_ids for n in args.sizes for count in args.rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "many_paths.json", {**made, "args": asdict(args), "rows": rows})
    table = markdown(rows, made)
    atomic_write_text(out / "many_paths.md", table)
    print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
