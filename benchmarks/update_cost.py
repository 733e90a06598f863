"""What a cheaper (or dearer) PPO update buys and costs: EM's throughput and final welfare under a few update budgets
(another solver's with ``--solver``).

On two cores the on-policy update is about 30% of a 2M-transition EM run (README "Cores",
``result.json``'s ``phase_seconds``), and the rest of the way to 60% of the raw stepping rate goes
through it. Fewer minibatches or epochs make it cheaper but change the learner, so each setting is
run on the same seeds as the default and compared seed by seed (paired: same seed, same rollout
noise until the policies part). EM on ``rmdp/HalfCheetahSpeed-v0`` (another speed task with ``--env-id``), n = 100, k = 5,
``--rollout workers`` with one worker per core (the family solver: ``--rollout main``); one run at a time. A setting may also pool the critic's
users (``5x4b20``: ``--critic-bins 20``, one output per 5 users instead of one per user), the other way
to make the update cheaper: the critic's n outputs are most of its arithmetic at n = 100. And a setting may
reshape the rollout at the same batch (``5x4c32t64``: ``--num-envs 32 --num-steps 64``, 4x the copies for a
quarter of the steps, so the same iterations and minibatches): the many-core way of PPO, where every env
step of all copies costs the workers a barrier. Or a setting may remove that barrier (``5x4r``:
``--norm-obs-update rollout``, the observation statistics frozen during each rollout). Settings alternate seed by
seed (one run at a time), so that a slower hour slows every setting alike.

    python benchmarks/update_cost.py                                   # default, 2 and 1 minibatches, seeds 0-2
    python benchmarks/update_cost.py --settings 5x4 2x4 --seeds 0 1 2 3 4
    python benchmarks/update_cost.py --settings 5x4 5x4b50 5x4b20 --out benchmarks/results/update_cost_bins
    python benchmarks/update_cost.py --settings 5x4 5x4c16t128 5x4c32t64 --out benchmarks/results/update_cost_shape
    python benchmarks/update_cost.py --settings 5x4 5x4c16t128 --seeds 3 4 5 6 7 8 9 --append \
        --out benchmarks/results/update_cost_shape                       # more seeds for the same table
    python benchmarks/update_cost.py --settings 5x4 5x4r --seeds 0 1 2 3 4 5 6 7 8 9 \
        --out benchmarks/results/norm_obs_update                         # no per-step barrier
    python benchmarks/update_cost.py --settings 5x4 10x8 --seeds 0 1 2 3 4 5 6 7 8 9 \
        --out benchmarks/results/update_cost_more                        # a dearer update
    python benchmarks/update_cost.py --solver random --settings 5x4 10x8 --seeds 0 1 2 3 4 \
        --out benchmarks/results/update_cost_more/random                 # the same for the random-assignment baseline
    python benchmarks/update_cost.py --env-id rmdp/HopperSpeed-v0 --settings 5x4 10x8 --seeds 0 1 2 3 4 \
        --out benchmarks/results/update_cost_more/hopper                 # the same on another MuJoCo task

Writes ``{out}/update_cost.json`` and ``update_cost.md``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cores import POLICIES, TASK, solver_rate  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance, usable_cores  # noqa: E402

DEFAULT = "5x4"  # the MuJoCo family's update_epochs x num_minibatches (rmdp_train.args.ENV_DEFAULTS)


@dataclass
class Args:
    settings: list[str] = field(default_factory=lambda: [DEFAULT, "5x2", "5x1"])
    """update budgets as EPOCHSxMINIBATCHES[bBINS][cCOPIES][tSTEPS][r] (--update-epochs, --num-minibatches, and if given
    --critic-bins, --num-envs (copies per policy; default 8), --num-steps (default 256), --norm-obs-update rollout);
    the first is the reference"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """training seeds, the same for every setting"""
    timesteps: int = 2_000_000
    """transitions of each run"""
    workers: int = 0
    """rollout worker processes (0: one per core this process may use; with --rollout main one fewer)"""
    out: str = "benchmarks/results"
    """folder for update_cost.json / update_cost.md"""
    append: bool = False
    """add these runs to the rows already in {out}/update_cost.json (more seeds for a verdict) instead of starting a new
    file; a setting and seed already there is refused before anything runs, and every appended row records its commit"""
    rescore: bool = False
    """run nothing: recompute the summary and update_cost.md from the rows already in {out}/update_cost.json"""
    solver: str = "em"
    """the solver file (solvers/{solver}_ppo.py) whose update is varied: em, e2e, cluster, random or family (which
    collects with --rollout main, the main process beside one worker per other core)"""
    env_id: str = TASK
    """the task (a MuJoCo speed task: the family whose update ENV_DEFAULTS sets at 5x4), n = 100, k = 5"""


COPIES = 8  # the MuJoCo family's --num-envs, which cores.solver_rate passes
#: the solvers whose update can be varied here, as the tables name them
SOLVERS = {"em": "EM", "e2e": "End-to-end", "cluster": "Clustering", "random": "Random assignment", "family": "Policy family"}
#: where a solver's policies run while collecting, if not in one worker process per core (``--rollout workers``): the
#: family's copies serve users drawn per episode, which only ``main`` does (the main process steps a share of the
#: copies beside one worker per other core)
ROLLOUT = {"family": "main"}
STEPS = 256  # the MuJoCo family's --num-steps
#: the tasks whose update can be varied here: the MuJoCo speed tasks (their family's update is the 5x4 default)
SPEED_TASKS = [TASK, "rmdp/HopperSpeed-v0", "rmdp/Walker2dSpeed-v0", "rmdp/AntSpeed-v1"]


#: the committed folders that the figure (plot_update_cost.py) and the verdicts (update_cost_verdicts.py) read:
#: HalfCheetahSpeed's solvers, one folder each, then EM on the other speed tasks
MORE = "benchmarks/results/update_cost_more"
SOLVER_FOLDERS = [MORE, f"{MORE}/e2e", f"{MORE}/cluster", f"{MORE}/random", f"{MORE}/family"]
TASK_FOLDERS = [f"{MORE}/hopper", f"{MORE}/walker2d", f"{MORE}/ant"]


def report_task(report: dict) -> str:
    """The task of an ``update_cost.json``'s runs (files written before ``--env-id`` ran on the default task)."""
    return report.get("env_id", TASK)


def read_reports(folders: list[Path]) -> list[dict]:
    """The ``update_cost.json`` of each folder (the figure and the verdicts read committed results this way), or one
    ``error:`` line naming every folder that holds none."""
    missing = [str(folder) for folder in folders if not (folder / "update_cost.json").exists()]
    if missing:
        sys.exit(f"error: no update_cost.json in {', '.join(missing)} (run benchmarks/update_cost.py --out FOLDER first)")
    return [json.loads((folder / "update_cost.json").read_text()) for folder in folders]


def parse_setting(text: str) -> dict:
    """``"5x4"`` -> epochs 5, minibatches 4; ``"5x4b20c32t64"`` adds critic bins 20, 32 copies per policy and 64 steps
    per rollout; a final ``r`` updates the observation statistics once per rollout (``--norm-obs-update rollout``)
    (None where not given: the solver's own)."""
    match = re.fullmatch(r"(\d+)x(\d+)(?:b(\d+))?(?:c(\d+))?(?:t(\d+))?(r)?", text.lower())
    if match is None:
        sys.exit(f"error: a setting is EPOCHSxMINIBATCHES[bBINS][cCOPIES][tSTEPS][r] such as 5x4, 5x4b20, 5x4c32t64 or "
                 f"5x4r, got {text!r}")
    values = [None if part is None else int(part) for part in match.groups()[:-1]]
    if any(value is not None and value < 1 for value in values):
        sys.exit(f"error: epochs, minibatches, bins, copies and steps must be at least 1, got {text!r}")
    return {**dict(zip(["update_epochs", "num_minibatches", "critic_bins", "num_envs", "num_steps"], values)),
            "norm_obs_update": "rollout" if match.group(6) else None}


def setting_flags(setting: dict) -> list[str]:
    """The solver flags of a parsed setting, besides ``--num-envs`` (cores.solver_rate's own argument)."""
    flags = []
    for key, value in setting.items():
        if value is not None and key != "num_envs":
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def main(args: Args) -> None:
    out = Path(args.out)
    if args.rescore:
        report = json.loads((out / "update_cost.json").read_text())
        report["summary"] = summarize(report["rows"], list(report["summary"]))
        write(report, out)
        return
    settings = {text: parse_setting(text) for text in args.settings}
    if args.solver not in SOLVERS:
        sys.exit(f"error: --solver must be one of {', '.join(SOLVERS)}, got {args.solver!r}")
    if args.env_id not in SPEED_TASKS:
        sys.exit(f"error: --env-id must be one of {', '.join(SPEED_TASKS)} (the MuJoCo speed tasks), got {args.env_id!r}")
    rollout = ROLLOUT.get(args.solver, "workers")
    workers = args.workers or (usable_cores() if rollout == "workers" else usable_cores() - 1)
    earlier = appended_to(out, args, workers) if args.append else None
    commit = git_commit(ROOT)
    rows = []
    for seed in args.seeds:  # settings alternate seed by seed, so that a slower hour slows all of them alike
        for text, setting in settings.items():
            row = solver_rate(workers, args.timesteps, setting["num_envs"] or COPIES, rollout=rollout,
                              extra=["--seed", str(seed), *setting_flags(setting)], solver=args.solver,
                              env_id=args.env_id)
            row.update(setting=text, **{key: value for key, value in setting.items() if key != "num_envs"})
            if earlier is not None:
                row["commit"] = commit
            rows.append(row)
            print(json.dumps(row), flush=True)
    if earlier is not None:
        order = list(earlier["summary"]) + [text for text in args.settings if text not in earlier["summary"]]
        earlier["rows"] += rows
        earlier["summary"] = summarize(earlier["rows"], order)
        write(earlier, out)
        return
    report = {"machine": hardware(), "commit": commit, "versions": library_versions(), "workers": workers,
              "env": f"{SOLVERS[args.solver]} on {args.env_id}, n = 100, k = 5, {COPIES} copies per policy "
                     f"unless a setting says, --rollout {rollout}", "solver": args.solver, "env_id": args.env_id,
              "reference": args.settings[0], "rows": rows, "summary": summarize(rows, args.settings)}
    write(report, out)


def appended_to(out: Path, args: Args, workers: int) -> dict:
    """The report ``--append`` adds to, after checking that the new runs fit it; exits with one ``error:`` line if not."""
    path = out / "update_cost.json"
    if not path.exists():
        sys.exit(f"error: --append needs an earlier {path}; run without --append to start one")
    report = json.loads(path.read_text())
    if report.get("solver", "em") != args.solver:
        sys.exit(f"error: {path} holds runs of {report.get('solver', 'em')}, not of --solver {args.solver}")
    if report_task(report) != args.env_id:
        sys.exit(f"error: {path} holds runs on {report_task(report)}, not on --env-id {args.env_id}")
    first = report["rows"][0]  # a run's transitions are --total-timesteps rounded up to whole iterations
    batch = POLICIES * first["num_envs"] * (first.get("num_steps") or STEPS)
    if report["workers"] != workers or not args.timesteps <= first["transitions"] < args.timesteps + batch:
        sys.exit(f"error: {path} has {report['workers']} workers and {first['transitions']:,} transitions per run; "
                 f"these runs would have {workers} and {args.timesteps:,}: a paired table needs the same")
    taken = sorted({(r["setting"], r["seed"]) for r in report["rows"]} & {(t, s) for t in args.settings for s in args.seeds})
    if taken:
        sys.exit(f"error: {path} already has setting and seed {', '.join(f'{t} {s}' for t, s in taken)}; leave those out")
    return report


def summarize(rows: list[dict], settings: list[str]) -> dict:
    """Per setting: median throughput and learning time, the mean best-response welfare over seeds with its
    bootstrap interval (clipped to [0, 100], a user's most), and the paired differences to the first setting
    with the interval of their mean (``leaderboard.stats.interval``, the board's statistics)."""
    from leaderboard.stats import interval  # noqa: PLC0415

    reference = {r["seed"]: r for r in rows if r["setting"] == settings[0] and "best_welfare" in r}
    summary = {}
    for text in settings:
        mine = [r for r in rows if r["setting"] == text and "best_welfare" in r]
        paired = [r["best_welfare"] - reference[r["seed"]]["best_welfare"] for r in mine if r["seed"] in reference]
        summary[text] = {"transitions_per_s_median": float(np.median([r["transitions_per_s"] for r in mine])),
                         "learning_s_median": float(np.median([r["phase_seconds"]["learning"] for r in mine])),
                         "best_welfare_mean": interval([r["best_welfare"] for r in mine], low=0.0, high=100.0),
                         "best_welfare_minus_reference": paired,
                         "mean_difference": interval(paired, low=-100.0, high=100.0)}
    return summary


def write(report: dict, out: Path) -> None:
    atomic_write_json(out / "update_cost.json", {**report, "provenance": provenance(ROOT)})
    atomic_write_text(out / "update_cost.md", markdown(report))
    print(f"wrote {out / 'update_cost.json'}, {out / 'update_cost.md'}")


def markdown(report: dict) -> str:
    appended = sorted({r["commit"][:10] for r in report["rows"] if "commit" in r} - {str(report["commit"])[:10]})
    commits = f"commit {str(report['commit'])[:10]}" + (f" (rows appended later: {', '.join(appended)})" if appended else "")
    lines = [f"# Update cost: {report['env']}", "",
             f"{report['machine']}; {commits}; {report['workers']} rollout workers; final "
             f"evaluation's best-response welfare; paired differences against {report['reference']} (same seed).", "",
             "| setting (epochs x minibatches [b critic bins] [c copies] [t steps] [r statistics per rollout]) | seed | transitions/s | learning s | rollout s | best welfare |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        if "best_welfare" in r:
            lines.append(f"| {r['setting']} | {r['seed']} | {r['transitions_per_s']:,} | {r['phase_seconds']['learning']:.1f} | "
                         f"{r['phase_seconds']['rollout']:.1f} | {r['best_welfare']:.2f} |")
        else:
            lines.append(f"| {r['setting']} | - | error: {' '.join(r.get('error', []))[:120]} | | | |")
    lines += ["", "Means over seeds with 95% bootstrap intervals (`leaderboard.stats.interval`; few seeds give wide ones).", "",
              "| setting | median transitions/s | median learning s | mean best welfare [95%] | minus the reference, "
              "per seed | mean difference [95%] |", "|---|---:|---:|---:|---|---:|"]
    for text, s in report["summary"].items():
        diffs = ", ".join(f"{d:+.2f}" for d in s["best_welfare_minus_reference"])
        lines.append(f"| {text} | {s['transitions_per_s_median']:,.0f} | {s['learning_s_median']:.1f} | "
                     f"{_with_interval(s['best_welfare_mean'])} | {diffs} | {_with_interval(s['mean_difference'])} |")
    return "\n".join(lines) + "\n"


def _with_interval(value) -> str:
    point, low, high = value
    return f"{point:.2f}" if low is None else f"{point:.2f} [{low:.2f}, {high:.2f}]"


if __name__ == "__main__":
    main(tyro.cli(Args))
