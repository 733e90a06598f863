"""Compare two solvers of the board head to head: per benchmark and k, paired by seed (protocol v2).

The rendered board compares every solver with the top one only; this answers a question such as
"where does the policy family beat EM?" with the same statistics (mean with a bootstrap interval,
probability of improvement with a paired bootstrap interval, ``leaderboard.stats``).

    python scripts/pairwise.py family em [--out leaderboard/family_vs_em.md]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leaderboard.render import _ci  # noqa: E402  (the board's own "point [lo, hi]" format)
from leaderboard.stats import distinguishable, interval, probability_of_improvement  # noqa: E402
from leaderboard.storage import board_dir, load_submissions  # noqa: E402


def pairwise(a: str, b: str, board: Path, version: str = "v2") -> str:
    runs: dict[tuple, dict[str, dict[int, float]]] = defaultdict(dict)
    commits: dict[tuple, dict[str, str]] = defaultdict(dict)
    for sub in load_submissions(board):
        if sub["protocol"]["version"] != version or sub["solver"]["name"] not in (a, b):
            continue
        key = (sub["benchmark"]["env_id"], sub["benchmark"]["key"], sub["k"], sub["runs"][0]["total_timesteps"])
        runs[key].setdefault(sub["solver"]["name"], {}).update({r["seed"]: r["best_welfare"] for r in sub["runs"]})
        commits[key][sub["solver"]["name"]] = sub["solver"]["commit"][:7]
    lines = [f"# {a} against {b}, head to head (protocol {version}, paired by seed)", "",
             f"`python scripts/pairwise.py {a} {b}`: welfare (the board's number) as mean [95% bootstrap CI]; "
             f"P({a} > {b}) with a paired bootstrap interval; 'yes'/'no' where the interval excludes 1/2, "
             "'not distinguishable' otherwise.", "",
             f"| benchmark | k | transitions | seeds | {a} | {b} | P({a} > {b}) | {a} better? | commits ({a} / {b}) |",
             "|---|---:|---:|---|---:|---:|---:|---|---|"]
    for key in sorted(runs):
        pair = runs[key]
        if a not in pair or b not in pair:
            continue
        seeds = sorted(set(pair[a]) & set(pair[b]))
        x, y = [pair[a][s] for s in seeds], [pair[b][s] for s in seeds]
        poi = probability_of_improvement(x, y)
        verdict = ("yes" if poi[1] > 0.5 else "no") if distinguishable(poi) else "not distinguishable"
        env_id, bench, k, steps = key
        lines.append(f"| {env_id} ({bench}) | {k} | {steps:,} | {len(seeds)} ({seeds[0]}-{seeds[-1]}) | "
                     f"{_ci(interval(x, low=0.0), 2)} | {_ci(interval(y, low=0.0), 2)} | {_ci(poi, 2)} | {verdict} | "
                     f"{commits[key][a]} / {commits[key][b]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="solver name on the board, e.g. family")
    parser.add_argument("b", help="solver name on the board, e.g. em")
    parser.add_argument("--board-dir", default=None)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    text = pairwise(args.a, args.b, board_dir(args.board_dir))
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
