"""How exactly does re-evaluating stored policies repeat? The measurement behind the protocol's tolerances.

For stored board runs of each dynamics class (``metadata["rmdp_evaluation"]``: exact or chaotic),
re-evaluates the saved policies on the run's own protocol seeds with 1 and with 2 torch threads and
records the largest difference from the stored best-response welfare, absolute and relative to the
value. Differences within one thread count come from nothing but the machine; across thread counts
they come from the float summation order of the network (a different greedy action can follow).

    python benchmarks/reevaluation.py [--per-class 4]     # a few minutes on 2 cores

Writes ``benchmarks/results/reevaluation.json``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rmdp_envs  # noqa: E402
from leaderboard.storage import board_dir, load_submissions, submissions_dir  # noqa: E402
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware  # noqa: E402


@dataclass
class Args:
    per_class: int = 4
    """stored runs re-evaluated per dynamics class (the first submissions of each class, one run each)"""
    threads: tuple[int, ...] = (1, 2)
    """torch thread counts to re-evaluate with"""
    out: str = "benchmarks/results/reevaluation.json"


def main(args: Args) -> None:
    board = board_dir()
    picked: dict[str, list] = {}
    for sub in load_submissions(board):
        cls = rmdp_envs.env_metadata(sub["benchmark"]["env_id"])["rmdp_evaluation"]
        if len(picked.setdefault(cls, [])) < args.per_class:
            picked[cls].append(sub)
    rows = []
    for cls, subs in sorted(picked.items()):
        for sub in subs:
            run, proto, b = sub["runs"][0], sub["protocol"], sub["benchmark"]
            folder = submissions_dir(board) / sub["id"] / run["policies"]["path"]
            for threads in args.threads:
                torch.set_num_threads(threads)
                ev = rmdp_envs.evaluate(b["env_id"], rmdp_envs.load_policies(folder), sub["k"], proto["episodes"],
                                        proto["seed"], b["env_kwargs"])
                diff = abs(ev.best_welfare - run["best_welfare"])
                rows.append({"class": cls, "submission": sub["id"], "seed": run["seed"], "threads": threads,
                             "stored": run["best_welfare"], "reevaluated": ev.best_welfare, "abs_diff": diff,
                             "rel_diff": diff / max(abs(run["best_welfare"]), 1e-12)})
                print(f"{cls:8s} {sub['id'][:50]:50s} threads {threads}: stored {run['best_welfare']:.6g}, "
                      f"re-evaluated {ev.best_welfare:.6g}", flush=True)
    summary = {cls: {"runs": len(picked[cls]), "max_abs_diff": max(r["abs_diff"] for r in rows if r["class"] == cls),
                     "max_rel_diff": max(r["rel_diff"] for r in rows if r["class"] == cls)} for cls in picked}
    atomic_write_json(ROOT / args.out, {"args": asdict(args), "commit": git_commit(), "hardware": hardware(),
                                        "summary": summary, "rows": rows})
    print(summary)


if __name__ == "__main__":
    main(tyro.cli(Args))
