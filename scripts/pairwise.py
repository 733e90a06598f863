"""Compare two solvers of the board head to head: per benchmark, k and budget, on the seeds both trained (protocol v2).

The rendered board compares every solver with the top one only; this answers a question such as
"where does the policy family beat EM?" with the board's statistics (``leaderboard.stats``): mean with a
bootstrap interval, the probability of improvement over all pairs of runs with an interval that resamples each
solver on its own, and the exact Mann-Whitney test, Holm-corrected over each benchmark's rows (its budgets k are questions asked of one
table at once; across benchmarks, as on the board, each benchmark is its own table). The board's family is another
(the leader's comparisons at one k), so near the threshold the two can differ on the same pair.

    python scripts/pairwise.py family em [--out leaderboard/family_vs_em.md]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leaderboard.render import MIN_VERDICT_SEEDS, _ci  # noqa: E402  (the board's own "point [lo, hi]" format)
from leaderboard.stats import holm, improvement_p_value, interval, probability_of_improvement  # noqa: E402
from leaderboard.storage import board_dir, load_submissions  # noqa: E402


def pairwise(a: str, b: str, board: Path, version: str = "v2") -> str:
    """The head-to-head table of solvers ``a`` and ``b`` (the board's names, e.g. ``em``, not ``em_ppo``);
    ValueError names the problem when either is not on the board or both are the same."""
    submissions = load_submissions(board)
    names = sorted({sub["solver"]["name"] for sub in submissions if sub["protocol"]["version"] == version})
    unknown = [name for name in dict.fromkeys((a, b)) if name not in names]
    if unknown:
        raise ValueError(f"no protocol {version} runs of solver {', '.join(map(repr, unknown))} on the board {board}; "
                         f"its solvers: {', '.join(names) or 'none'}")
    if a == b:
        raise ValueError(f"compare two different solvers, not {a!r} with itself")
    runs: dict[tuple, dict[str, dict[tuple, dict[int, float]]]] = defaultdict(lambda: defaultdict(dict))
    for sub in submissions:
        if sub["protocol"]["version"] != version or sub["solver"]["name"] not in (a, b):
            continue
        key = (sub["benchmark"]["env_id"], sub["benchmark"]["key"], sub["k"], sub["runs"][0]["total_timesteps"])
        setting = (sub["solver"]["commit"][:7], sub["solver"]["config"])  # never pool two configurations' seeds
        runs[key][sub["solver"]["name"]].setdefault(setting, {}).update({r["seed"]: r["best_welfare"] for r in sub["runs"]})
    lines = [f"# {a} against {b}, head to head (protocol {version}, the seeds both trained)", "",
             f"`python scripts/pairwise.py {a} {b}`: welfare (the board's number) as mean [95% bootstrap CI]; "
             f"P({a} > {b}) over all pairs of runs, with a bootstrap interval that resamples each solver on its own; "
             f"'yes' / 'no' where the exact Mann-Whitney test rejects P = 1/2 at 5% after Holm's correction over the "
             f"benchmark's rows (p before the correction), 'not distinguishable' otherwise; no verdict under "
             f"{MIN_VERDICT_SEEDS} shared seeds. A solver with several configurations at one cell gets a row for each.",
             "", f"| benchmark | k | transitions | seeds | {a} | {b} | P({a} > {b}) | p | {a} better? | commit, config ({a} / {b}) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|---|"]
    rows, tests = [], []
    for key in sorted(runs):
        for set_a, pa in sorted(runs[key].get(a, {}).items()):
            for set_b, pb in sorted(runs[key].get(b, {}).items()):
                seeds = sorted(set(pa) & set(pb))
                env_id, bench, k, steps = key
                head = f"| {env_id} ({bench}) | {k} | {steps:,} |"
                tail = f"{set_a[0]} {set_a[1]} / {set_b[0]} {set_b[1]} |"
                if not seeds:
                    rows.append(f"{head} none shared ({a}: {len(pa)}, {b}: {len(pb)}) | | | | | no shared seeds | {tail}")
                    continue
                x, y = [pa[s] for s in seeds], [pb[s] for s in seeds]
                poi = probability_of_improvement(x, y)
                cells = (f"{head} {len(seeds)} ({seeds[0]}-{seeds[-1]}) | {_ci(interval(x, low=0.0), 2)} | "
                         f"{_ci(interval(y, low=0.0), 2)} | {_ci(poi, 2)} |")
                if len(seeds) < MIN_VERDICT_SEEDS:
                    rows.append(f"{cells} | too few shared seeds | {tail}")
                    continue
                p = improvement_p_value(x, y)
                tests.append((len(rows), p, poi[0], (env_id, bench)))
                rows.append((cells, p, tail))
    for benchmark in {test[3] for test in tests}:
        mine = [test for test in tests if test[3] == benchmark]
        for (i, p, probability, _), apart in zip(mine, holm([test[1] for test in mine])):
            cells, _, tail = rows[i]
            verdict = ("yes" if probability > 0.5 else "no") if apart else "not distinguishable"
            rows[i] = f"{cells} {p:.3f} | {verdict} | {tail}"
    return "\n".join(lines + rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="solver name on the board, e.g. family")
    parser.add_argument("b", help="solver name on the board, e.g. em")
    parser.add_argument("--board-dir", default=None)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    try:
        text = pairwise(args.a, args.b, board_dir(args.board_dir))
    except ValueError as error:
        parser.error(str(error))
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
