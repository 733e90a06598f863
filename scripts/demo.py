"""Main job on a small default: train EM and the random-assignment baseline on Resource Gathering.

Trains both solvers (k = 5 policies for 25 users, equal transitions), prints their social welfare
beside a uniformly random policy and the 0.9356 full-personalization bound, then submits both runs
to a demo leaderboard under ``runs/demo/board`` and renders it (open ``site/index.html`` there).

    python scripts/demo.py [--total-timesteps 300000] [--seed 1] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import rmdp_envs

ENV_ID = "rmdp/ResourceGathering-v0"
BOUND = 0.9356  # each of the 25 users gets its own shortest round trip
ROOT = Path(__file__).resolve().parent.parent


def train(solver: str, args: argparse.Namespace, out: Path) -> dict:
    """Run one solver file in a subprocess and return its result.json."""
    before = set(out.glob("*/result.json"))
    cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}.py"), "--env-id", ENV_ID, "--k", str(args.k),
           "--seed", str(args.seed), "--total-timesteps", str(args.total_timesteps), "--save-model",
           "--output-dir", str(out)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)
    (result_path,) = set(out.glob("*/result.json")) - before
    return json.loads(result_path.read_text()) | {"run_dir": str(result_path.parent)}


def random_policy_welfare(episodes: int = 50) -> float:
    rng = np.random.default_rng(0)
    return rmdp_envs.evaluate(ENV_ID, lambda obs: rng.integers(0, 4, size=len(obs)), k=1, episodes=episodes).best_welfare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-timesteps", type=int, default=300_000, help="transitions per solver (all policies)")
    parser.add_argument("--seed", type=int, default=1, help="training seed of both solvers")
    parser.add_argument("--k", type=int, default=5, help="budget of policies")
    parser.add_argument("--out", default="runs/demo", help="folder for the runs and the demo board")
    args = parser.parse_args()
    out = Path(args.out)
    results = {solver: train(solver, args, out) for solver in ("em_ppo", "random_ppo")}

    print(f"\nSocial welfare on {ENV_ID}, k = {args.k}, {args.total_timesteps:,} transitions each "
          "(per-user mean; evaluated greedily)")
    print(f"{'':34s} {'own assignment':>15s} {'best response':>14s} {'of bound':>9s} {'seconds':>8s}")
    for solver, label in (("em_ppo", "EM (Ivanov & Ben-Porat)"), ("random_ppo", "random even assignment")):
        r = results[solver]
        print(f"{label:34s} {r['welfare']:>15.4f} {r['best_welfare']:>14.4f} {r['best_welfare'] / BOUND:>8.1%} "
              f"{r['wall_time_s']:>8.1f}")
    w_random = random_policy_welfare()
    print(f"{'uniformly random policy':34s} {'':>15s} {w_random:>14.4f} {w_random / BOUND:>8.1%}")
    print(f"{'full personalization (k = 25)':34s} {'':>15s} {BOUND:>14.4f} {1:>8.1%}")

    board = out / "board"
    leaderboard = [sys.executable, "-m", "leaderboard"]
    subprocess.run(leaderboard + ["submit", *(r["run_dir"] for r in results.values()), "--board-dir", str(board)], check=True)
    subprocess.run(leaderboard + ["render", "--board-dir", str(board)], check=True)
    print(f"\nLeaderboard of this demo: open {(board / 'site' / 'index.html').resolve()}"
          f"\n(the project's board: leaderboard/README.md and leaderboard/site/index.html)")


if __name__ == "__main__":
    main()
