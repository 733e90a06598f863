"""Main job on a small default: train EM and the random-assignment baseline on Resource Gathering.

Trains both solvers (k = 5 policies for 25 users, equal transitions; each films its final policies,
``videos/policies.gif`` in its run folder), submits both runs to a demo
leaderboard under ``runs/demo/board`` (made afresh on every run, so the demo can be run again), and
prints the board's numbers: each solver's welfare under protocol v2 (users pick their policy on
assignment episodes, welfare measured on held-out episodes) beside the board's reference points
(a uniformly random policy, the most k policies can reach, full personalization), all read from
the demo board's ``reference_points.json``, the same file and code as the project's board.

    python scripts/demo.py [--total-timesteps 300000] [--seed 1] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ENV_ID = "rmdp/ResourceGathering-v0"
ROOT = Path(__file__).resolve().parent.parent


def train(solver: str, args: argparse.Namespace, out: Path) -> Path:
    """Run one solver file in a subprocess; returns its run folder."""
    before = set(out.glob("*/result.json"))
    cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}.py"), "--env-id", ENV_ID, "--k", str(args.k),
           "--seed", str(args.seed), "--total-timesteps", str(args.total_timesteps), "--save-model",
           "--capture-video", "--output-dir", str(out)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)
    (result_path,) = set(out.glob("*/result.json")) - before
    return result_path.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-timesteps", type=int, default=300_000, help="transitions per solver (all policies)")
    parser.add_argument("--seed", type=int, default=1, help="training seed of both solvers")
    parser.add_argument("--k", type=int, default=5, help="budget of policies")
    parser.add_argument("--out", default="runs/demo", help="folder for the runs and the demo board")
    args = parser.parse_args()
    out = Path(args.out)
    runs = {solver: train(solver, args, out) for solver in ("em_ppo", "random_ppo")}

    from leaderboard.protocol import PROTOCOL  # noqa: PLC0415
    from leaderboard.references import REFERENCE_FILE, k_bound  # noqa: PLC0415
    from leaderboard.render import render  # noqa: PLC0415
    from leaderboard.storage import load_submissions  # noqa: PLC0415
    from leaderboard.stats import normalized  # noqa: PLC0415
    from leaderboard.submit import submit  # noqa: PLC0415

    board = out / "board"
    shutil.rmtree(board, ignore_errors=True)  # a fresh demo board each time: running the demo twice works
    submit(list(runs.values()), board, log=lambda *_: None)
    render(board)
    refs = json.loads((board / REFERENCE_FILE).read_text())["benchmarks"]
    subs = {sub["solver"]["name"]: sub for sub in load_submissions(board)}
    ref = next(iter(refs.values()))

    print(f"\nSocial welfare on {ENV_ID}, k = {args.k}, {args.total_timesteps:,} transitions each, seed {args.seed} "
          f"(protocol {PROTOCOL.version}: users pick on {PROTOCOL.assignment_episodes} assignment episodes, scored on "
          f"{PROTOCOL.episodes} held-out episodes)")
    bound = k_bound(ref, args.k)
    print(f"{'':34s} {'users pick':>11s} {'own assignment':>15s} {'normalized':>10s} {'seconds':>8s}")
    for solver, label in (("em", "EM (Ivanov & Ben-Porat)"), ("random", "random even assignment")):
        r = subs[solver]["runs"][0]
        share = normalized(r["best_welfare"], ref["random"]["welfare"], bound)  # the board's: 0 random policy, 1 W_k
        print(f"{label:34s} {r['best_welfare']:>11.4f} {r['welfare']:>15.4f} "
              f"{'' if share is None else format(share, '.1%'):>10s} {r['wall_time_s']:>8.1f}")
    print(f"{'uniformly random policy':34s} {ref['random']['welfare']:>11.4f}")
    print(f"{f'W_k: most {args.k} policies can reach':34s} {bound:>11.4f}  ({ref['k_bounds'][str(args.k)]['kind']})")
    print(f"{'full personalization (k = 25)':34s} {ref['upper']['welfare']:>11.4f}")
    print(f"\nnormalized: (users pick - uniformly random policy) / (W_k - uniformly random policy), the board's measure."
          f"\nThese reference points come from {board / REFERENCE_FILE}, as on the project's board."
          f"\nFilms of each solver's {args.k} policies (their users in the captions): "
          f"{', '.join(str(run / 'videos' / 'policies.gif') for run in runs.values())}"
          f"\nDemo board: open {(board / 'site' / 'index.html').resolve()}"
          f"\nRe-render it with: python -m leaderboard render --board-dir {board}"
          f"\n(the project's board: leaderboard/README.md and leaderboard/site/index.html)")


if __name__ == "__main__":
    main()
