"""How much the board's ResourceGathering rows owe to their tuning seeds.

Each solver's setting was chosen on ResourceGathering, k = 5, seeds 0 and 1 (``benchmarks/tuning.py``,
``results/tuning.md``: the best of six settings by those two seeds), and the board's rows train seeds 0-9 with
that setting, so seeds 0 and 1 of every row are runs the choice was made on (at k = 5 the very same runs). This
reads the board and sets each row's mean over seeds 0-9 beside its mean over seeds 2-9, the seeds no choice saw.

    python benchmarks/tuning_overlap.py   (writes results/tuning_overlap.json and .md; reads only the board)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leaderboard.render import collect  # noqa: E402
from leaderboard.storage import board_dir, load_submissions  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, provenance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "rmdp/ResourceGathering-v0"
TUNING_SEEDS = {0, 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)  # --help must not rewrite the committed results
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for tuning_overlap.json and .md (default: benchmarks/results, the committed ones)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    tuning = json.loads((RESULTS / "tuning.json").read_text())
    rows = []
    for board in collect(load_submissions(board_dir())).values():
        if board["benchmark"]["env_id"] != ENV_ID or board["protocol"] != "v2":
            continue
        for row in board["rows"]:
            welfare = {r["seed"]: r["best_welfare"] for r in row["runs"]}
            fresh = [v for seed, v in welfare.items() if seed not in TUNING_SEEDS]
            rows.append({"solver": row["solver"], "k": row["k"], "seeds": sorted(welfare),
                         "mean_all": float(np.mean(list(welfare.values()))), "mean_untuned_seeds": float(np.mean(fresh)),
                         "mean_tuning_seeds": float(np.mean([welfare[s] for s in sorted(TUNING_SEEDS & set(welfare))]))})
    rows.sort(key=lambda r: (r["k"], -r["mean_all"]))
    atomic_write_json(out / "tuning_overlap.json", {"env_id": ENV_ID, "tuning_seeds": sorted(TUNING_SEEDS),
                                                        "tuning_commit": tuning.get("commit"), "commit": git_commit(),
                                                        "provenance": provenance(Path(__file__).parent),
                                                        "rows": rows})
    lines = [f"# Tuning seeds in the board's {ENV_ID} rows", "",
             "`python benchmarks/tuning_overlap.py`: each row's mean best-response welfare over all its seeds, over "
             "seeds 0-1 (the seeds its setting was chosen on, `tuning.md`), and over the other seeds.", "",
             "| k | solver | seeds 0-9 | tuning seeds 0-1 | seeds 2-9 | ranks by seeds 0-9 / 2-9 |", "|---:|---|---:|---:|---:|---|"]
    for k in sorted({r["k"] for r in rows}):
        mine = [r for r in rows if r["k"] == k]
        by_fresh = sorted(mine, key=lambda r: -r["mean_untuned_seeds"])
        for r in mine:
            lines.append(f"| {k} | {r['solver']} | {r['mean_all']:.4f} | {r['mean_tuning_seeds']:.4f} | "
                         f"{r['mean_untuned_seeds']:.4f} | {mine.index(r) + 1} / {by_fresh.index(r) + 1} |")
    atomic_write_text(out / "tuning_overlap.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
