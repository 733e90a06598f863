"""How long one board run takes, by task, solver and budget: what a sweep on a cluster should plan per core.

Every run the board holds records its own wall time (``wall_time_s``, start-up to final evaluation) and the
machine it ran on. The board's runs were trained the sweep's way (``leaderboard.sweep.PROCESS_FLAGS``: one
process and one torch thread per run, about one run per core at a time), so a run's wall time is what a cluster
node pays per core for it. This script reads them back (no training, seconds) and writes, per task and
transitions, per solver and k: the runs, their mean, median and range of seconds, transitions per second, and the
machines; and per task, runs per core-hour.

    python benchmarks/run_times.py                     # the project's board -> benchmarks/results/run_times.{json,md}
    python benchmarks/run_times.py --board-dir runs/demo/board --out /tmp
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from leaderboard.storage import board_dir, load_submissions  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, provenance  # noqa: E402


@dataclass
class Args:
    board_dir: Optional[str] = None
    """the board to read (default: the project's, leaderboard/)"""
    out: str = "benchmarks/results"
    """folder for run_times.json and run_times.md"""


def run_times(submissions: list[dict]) -> list[dict]:
    """One row per (task, transitions, solver, k): the seconds of its runs and what they say per core."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for sub in submissions:
        for run in sub["runs"]:
            if run.get("wall_time_s") is None:
                continue
            key = (sub["benchmark"]["env_id"], int(run["total_timesteps"]), sub["solver"]["name"], int(sub["k"]))
            groups[key].append(run)
    rows = []
    for (env_id, transitions, solver, k), runs in sorted(groups.items()):
        seconds = np.array([float(r["wall_time_s"]) for r in runs])
        rows.append({"env_id": env_id, "transitions": transitions, "solver": solver, "k": k, "runs": len(runs),
                     "mean_s": round(float(seconds.mean()), 1), "median_s": round(float(np.median(seconds)), 1),
                     "min_s": round(float(seconds.min()), 1), "max_s": round(float(seconds.max()), 1),
                     "transitions_per_s": round(transitions / float(seconds.mean())),
                     "hardware": sorted({str(r.get("hardware")) for r in runs})})
    return rows


def per_task(rows: list[dict]) -> list[dict]:
    """Per task and transitions: every run's mean seconds over solvers and budgets, and runs per core-hour."""
    tasks: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        tasks[(row["env_id"], row["transitions"])].append(row)
    summary = []
    for (env_id, transitions), group in sorted(tasks.items()):
        runs = sum(r["runs"] for r in group)
        mean = sum(r["mean_s"] * r["runs"] for r in group) / runs
        summary.append({"env_id": env_id, "transitions": transitions, "runs": runs, "mean_s": round(mean, 1),
                        "fastest_mean_s": min(r["mean_s"] for r in group), "slowest_mean_s": max(r["mean_s"] for r in group),
                        "runs_per_core_hour": round(3600 / mean, 1)})
    return summary


def markdown(report: dict) -> str:
    lines = [f"# Board run times (commit {str(report['commit'])[:10]})", "", report["what"], "",
             "| task | transitions | runs | mean s per run | fastest / slowest solver-k mean | runs per core-hour |",
             "|---|---:|---:|---:|---:|---:|"]
    for t in report["tasks"]:
        lines.append(f"| {t['env_id']} | {t['transitions']:,} | {t['runs']} | {t['mean_s']} | {t['fastest_mean_s']} / "
                     f"{t['slowest_mean_s']} | {t['runs_per_core_hour']} |")
    lines += ["", "| task | transitions | solver | k | runs | mean s | median s | min-max s | transitions/s | machines |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['env_id']} | {r['transitions']:,} | {r['solver']} | {r['k']} | {r['runs']} | {r['mean_s']} | "
                     f"{r['median_s']} | {r['min_s']}-{r['max_s']} | {r['transitions_per_s']:,} | {'; '.join(r['hardware'])} |")
    return "\n".join(lines) + "\n"


def _shown(board: Path) -> str:
    """The board's folder relative to the repository where it lies inside (the same file from any checkout)."""
    try:
        return board.resolve().relative_to(ROOT.resolve()).as_posix()
    except ValueError:
        return str(board)


def main(args: Args) -> None:
    board = board_dir(args.board_dir)
    submissions = load_submissions(board)
    if not submissions:
        sys.exit(f"error: no submissions in {board}: nothing to time")
    rows = run_times(submissions)
    report = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "board": _shown(board), "commit": git_commit(ROOT),
              "provenance": provenance(ROOT), "tasks": per_task(rows), "rows": rows}
    out = Path(args.out)
    atomic_write_json(out / "run_times.json", report)
    atomic_write_text(out / "run_times.md", markdown(report))
    for t in report["tasks"]:
        print(f"{t['env_id']} {t['transitions']:,}: {t['runs']} runs, {t['mean_s']} s each on average, "
              f"{t['runs_per_core_hour']} runs per core-hour")
    print(f"wrote {out / 'run_times.json'} and {out / 'run_times.md'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
