"""How exactly does re-evaluating stored policies repeat? The measurement behind the protocol's tolerances.

``verify`` re-scores every stored run from its saved policies and accepts it when each board column
(``best_welfare``, ``welfare`` and, where stored, ``unseen_welfare``) is within the tolerance of the
env's dynamics class (``metadata["rmdp_evaluation"]``: exact or chaotic; ``leaderboard/protocol.py``).
This re-scores stored board runs the same way (:func:`leaderboard.verify.rescore_run`, the protocol the
run was stored with, v1 or v2) with each of ``--threads`` torch threads, and records every column's
difference from the stored number, absolute and relative, beside the tolerance's bound for it
(``share_of_tolerance``: above 1.0 fails ``verify``). Within one thread count and library set a
difference comes only from the machine; across thread counts, CPUs or MuJoCo versions from the float
summation order of the network (on chaotic dynamics a different greedy action can follow and grow).

Runs are picked round-robin over the board's (env id, protocol version) groups within each class, from each group
the first submission of a solver not picked yet in that class, its first stored run, so that ``--per-class`` runs
cover as many envs and solvers as they can. Each row names the versions and machine that stored the run.

    python benchmarks/reevaluation.py                          # 5 runs per class, 1 and 2 threads (~10 min, 2 cores)
    python benchmarks/reevaluation.py --per-class 2 --threads 1

Writes ``benchmarks/results/reevaluation.json`` (atomically, once every run is scored).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rmdp_envs  # noqa: E402
from leaderboard.protocol import PROTOCOL  # noqa: E402
from leaderboard.storage import board_dir, load_submissions, submissions_dir  # noqa: E402
from leaderboard.verify import SCORED_COLUMNS, rescore_run  # noqa: E402
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance  # noqa: E402


@dataclass
class Args:
    per_class: int = 5
    """stored runs re-scored per dynamics class, spread round-robin over its (env id, protocol version) groups"""
    threads: tuple[int, ...] = (1, 2)
    """torch thread counts to re-score each run with"""
    out: str = "benchmarks/results/reevaluation.json"


def pick_runs(subs: list[dict], per_class: int) -> dict[str, list[dict]]:
    """``{class: [submission, ...]}``: up to ``per_class`` submissions a class, one group after another."""
    groups: dict[str, dict[tuple[str, str], list[dict]]] = {}
    for sub in subs:
        cls = rmdp_envs.env_metadata(sub["benchmark"]["env_id"])["rmdp_evaluation"]
        groups.setdefault(cls, {}).setdefault((sub["benchmark"]["env_id"], sub["protocol"]["version"]), []).append(sub)
    picked = {}
    for cls, by_group in sorted(groups.items()):
        queues = [list(group) for _, group in sorted(by_group.items())]
        picked[cls], used = [], set()
        while len(picked[cls]) < per_class and any(queues):
            for queue in queues:
                if queue and len(picked[cls]) < per_class:
                    fresh = [sub for sub in queue if sub["solver"]["name"] not in used]  # vary the solvers too
                    sub = (fresh or queue)[0]
                    queue.remove(sub)
                    picked[cls].append(sub)
                    used = set() if not fresh else used | {sub["solver"]["name"]}
    return picked


def main(args: Args) -> None:
    if args.per_class < 1 or not args.threads or min(args.threads) < 1:
        raise SystemExit("error: --per-class and every --threads count must be at least 1")
    board = board_dir()
    picked = pick_runs(load_submissions(board), args.per_class)
    rows, start = [], time.perf_counter()
    for cls, subs in picked.items():
        for sub in subs:
            run, env_id = sub["runs"][0], sub["benchmark"]["env_id"]
            folder = submissions_dir(board) / sub["id"] / run["policies"]["path"]
            tol = PROTOCOL.tolerance_for(env_id)
            for threads in args.threads:
                torch.set_num_threads(threads)
                rescored = rescore_run(sub, run, folder)
                for column in SCORED_COLUMNS:
                    if run.get(column) is None:
                        continue
                    stored, again = run[column], rescored[column]
                    diff = abs(again - stored)
                    rows.append({"class": cls, "env_id": env_id, "protocol": sub["protocol"]["version"],
                                 "submission": sub["id"], "seed": run["seed"], "threads": threads, "column": column,
                                 "stored": stored, "reevaluated": again, "abs_diff": diff,
                                 "rel_diff": diff / max(abs(stored), 1e-12),
                                 "share_of_tolerance": diff / (tol.atol + tol.rtol * abs(again)),
                                 "stored_versions": run.get("versions"), "stored_hardware": run.get("hardware")})
                    print(f"{cls:8s} {sub['id'][:48]:48s} {column:14s} threads {threads}: stored {stored:.6g}, "
                          f"re-evaluated {again:.6g}", flush=True)
    summary = {}
    for cls, subs in picked.items():
        mine = [r for r in rows if r["class"] == cls]
        worst = max(mine, key=lambda r: r["share_of_tolerance"])
        summary[cls] = {"runs": len(subs), "envs": sorted({r["env_id"] for r in mine}),
                        "tolerance": asdict(PROTOCOL.tolerance_for(subs[0]["benchmark"]["env_id"])),
                        "max_abs_diff": max(r["abs_diff"] for r in mine),
                        "max_rel_diff": max(r["rel_diff"] for r in mine),
                        "max_share_of_tolerance": worst["share_of_tolerance"],
                        "worst": {key: worst[key] for key in ("submission", "column", "threads", "stored", "reevaluated")},
                        "differs_across_threads": any(
                            len({r["reevaluated"] for r in mine if (r["submission"], r["column"]) == key}) > 1
                            for key in {(r["submission"], r["column"]) for r in mine})}
    atomic_write_json(ROOT / args.out, {"args": asdict(args), "commit": git_commit(), "hardware": hardware(),
                                        "versions": library_versions(), "date": time.strftime("%Y-%m-%d"), "provenance": provenance(ROOT),
                                        "wall_time_s": round(time.perf_counter() - start, 1),
                                        "summary": summary, "rows": rows})
    for cls, facts in summary.items():
        print(f"{cls}: {facts['runs']} runs, largest difference {facts['max_abs_diff']:.3g} "
              f"({facts['max_rel_diff']:.3%}), {facts['max_share_of_tolerance']:.3f} of the tolerance")


if __name__ == "__main__":
    main(tyro.cli(Args))
