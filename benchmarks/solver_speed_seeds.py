"""Issue 3's welfare targets over training seeds: several ``solver_speed.py`` runs, one per seed, read together.

``solver_speed.py`` runs one seed (a speed figure). Whether a solver *meets* a welfare target within its wall-clock
limit is a claim about the solver, so this reads the ``solver_speed.json`` of each seed's folder and reports, per
solver and env: every seed's final best-response welfare (the run's last evaluation, never its best), its minutes
and transitions/s, the mean with a 95% bootstrap interval (``leaderboard.stats.interval``, the board's statistics),
and how many seeds reached the target. Writes ``{out}/solver_speed_seeds.json`` and ``.md``.

    for s in 0 1 2 3 4; do python benchmarks/solver_speed.py --solvers em --minutes 6 --rg-minutes 3 \\
        --cheetah-sps 17000 --seed $s --out benchmarks/results/solver_speed_seeds/seed_$s; done
    python benchmarks/solver_speed_seeds.py benchmarks/results/solver_speed_seeds/seed_*
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from leaderboard.stats import interval  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import provenance  # noqa: E402


@dataclass
class Args:
    folders: tyro.conf.Positional[tuple[str, ...]]
    """folders holding one solver_speed.json each (one seed each)"""
    out: str = "benchmarks/results/solver_speed_seeds"
    """folder for solver_speed_seeds.json and .md"""


def summarize(files: list[dict]) -> list[dict]:
    """One row per (solver, env): the seeds' runs, side by side, and their mean welfare with its interval."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for data in files:
        seed = data["settings"]["seed"]
        for run in data["runs"]:
            cells.setdefault((run["solver"], run["env_id"]), []).append({"seed": seed, "commit": data["commit"], **{
                key: run[key] for key in ("final_best_welfare", "transitions", "transitions_per_s", "wall_time_s",
                                          "finished", "stopped_at_limit", "minutes", "target")}})
    rows = []
    for (solver, env_id), runs in sorted(cells.items()):
        runs.sort(key=lambda run: run["seed"])
        welfare = [run["final_best_welfare"] for run in runs]
        mean, low, high = interval(welfare, low=0.0)
        rows.append({"solver": solver, "env_id": env_id, "minutes_limit": runs[0]["minutes"], "target": runs[0]["target"],
                     "seeds": [run["seed"] for run in runs], "mean_final_best_welfare": mean, "interval": [low, high],
                     "seeds_at_target": sum(w >= runs[0]["target"] for w in welfare),
                     "all_finished": all(run["finished"] for run in runs), "runs": runs})
    return rows


def markdown(rows: list[dict], files: list[dict]) -> str:
    commits = sorted({data["commit"] for data in files})
    lines = ["# Issue 3's welfare targets over training seeds", "",
             f"`python benchmarks/solver_speed_seeds.py` over {len(files)} `solver_speed.py` runs (one seed each); code of "
             f"{', '.join(c[:7] for c in commits)}, {files[0]['hardware']}. Final best-response welfare: each run's last "
             "evaluation; mean with a 95% bootstrap interval over the seeds.", "",
             "| solver | env | limit (min) | target | seeds | final welfare, each seed | mean [95% CI] | seeds at target "
             "| minutes, each seed | transitions/s, each seed |",
             "| --- | --- | ---: | ---: | --- | --- | --- | ---: | --- | --- |"]
    for row in rows:
        runs = row["runs"]
        low, high = row["interval"]
        spread = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
        welfare = ", ".join(f"{run['final_best_welfare']:.3f}" for run in runs)
        minutes = ", ".join(f"{run['wall_time_s'] / 60:.1f}" for run in runs)
        rates = ", ".join(f"{run['transitions_per_s']:,.0f}" for run in runs)
        lines.append(f"| {row['solver']} | {row['env_id']} | {row['minutes_limit']:g} | {row['target']:g} | "
                     f"{', '.join(str(s) for s in row['seeds'])} | {welfare} | {row['mean_final_best_welfare']:.3f}{spread} | "
                     f"{row['seeds_at_target']}/{len(runs)} | {minutes} | {rates} |")
    return "\n".join(lines) + "\n"


def main(args: Args) -> None:
    missing = [folder for folder in args.folders if not (Path(folder) / "solver_speed.json").is_file()]
    if missing or not args.folders:
        raise SystemExit("error: name the folders of solver_speed.py runs, one per seed (solver_speed.py --seed S --out "
                         "FOLDER), e.g. benchmarks/results/solver_speed_seeds/seed_*; "
                         + (f"no solver_speed.json in {', '.join(missing)}" if missing else "none was named"))
    files = [json.loads((Path(folder) / "solver_speed.json").read_text()) for folder in args.folders]
    rows = summarize(files)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "solver_speed_seeds.json", {"folders": list(args.folders), "provenance": provenance(ROOT),
                                                          "rows": rows})
    table = markdown(rows, files)
    atomic_write_text(out / "solver_speed_seeds.md", table)
    print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
