"""EM's E-step when every user leaves a policy: the paper's rule against re-seeding the policy by a split.

The paper's rule (``--empty-policy reinstate``) hands an emptied policy back the user whose move
gained least, even when that user gains nothing from it: the board's "Policies serving users" column
showed EM leaving budget unused on the speed tasks. ``--empty-policy split`` makes the emptied policy a
copy of the largest group's policy and gives it the half of that group the policy serves worst
(``rmdp_envs.split_largest_groups``). Both rules train on the same seeds through the board's own sweep
(one process per run, ``leaderboard.sweep.PROCESS_FLAGS``) into a board of their own, which scores each
run's final policies with the board's protocol (users pick on the assignment episodes, welfare on the
held-out ones). Paired by seed: until the first emptied policy the two rules train the same numbers.

    python benchmarks/empty_policy.py --envs rmdp/HalfCheetahSpeed-v0 --k 5 --seeds 0 1 2 3 4
    python benchmarks/empty_policy.py --envs rmdp/Chain-v0 --k 5 10 --seeds 0 1 2 3 4 5 6 7 8 9 \
        --total-timesteps 100000 --solver-args="--n-agents 12 --learning-rate 0.001"  # the board's Chain rows
    python benchmarks/empty_policy.py --rescore          # tables again from the runs already on the board

Writes ``{out}/empty_policy.json`` and ``empty_policy.md``. Runs that finished earlier are not run again
(the sweep skips them), so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from leaderboard.references import k_bound, load_references  # noqa: E402
from leaderboard.render import _ci, _digits, serving_policies  # noqa: E402  (the board's own formats and column)
from leaderboard.stats import interval, normalized, probability_of_improvement  # noqa: E402
from leaderboard.storage import load_submissions  # noqa: E402
from leaderboard.sweep import Task, finished_run, sweep  # noqa: E402
from rmdp_envs.core import EMPTY_POLICY_RULES  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import hardware, provenance  # noqa: E402

SOLVER = "em_ppo"


@dataclass
class Args:
    envs: list[str] = field(default_factory=lambda: ["rmdp/HalfCheetahSpeed-v0"])
    """env ids (the board's populations: n = 100 on the speed tasks)"""
    k: list[int] = field(default_factory=lambda: [5])
    """budgets of policies"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """training seeds, the same for both rules"""
    total_timesteps: int = 2_000_000
    """transitions of each run"""
    rules: list[str] = field(default_factory=lambda: list(EMPTY_POLICY_RULES))
    """the rules to run (both by default; one alone where the other's runs are already known)"""
    solver_args: str = ""
    """more solver flags for both rules, one string after '=' (e.g. --solver-args="--n-agents 12" for the board's Chain;
    without '=' the parser reads --n-agents as a flag of its own)"""
    workers: int = 0
    """concurrent runs (0: one per core)"""
    work_dir: str = "runs/empty_policy"
    """run folders (``{work_dir}/runs/<rule>/...``) and the board that scores them (``{work_dir}/board``)"""
    out: str = "benchmarks/results/empty_policy"
    """folder for empty_policy.json / empty_policy.md"""
    rescore: bool = False
    """run nothing: the tables from the runs already on ``{work_dir}/board`` (the tables always cover every
    env, k and budget on that board, not only the ones asked for)"""


def rule_of(submission: dict) -> str:
    """The rule a submission's runs used (runs from before the flag existed used the paper's)."""
    return submission["solver"]["hyperparameters"].get("empty_policy", "reinstate")


def splits_of(run_dir: Path | None) -> list | None:
    """``[iteration, emptied policy, copied policy]`` of each split a run made (``result.json``; split rule only)."""
    if run_dir is None or not (run_dir / "result.json").is_file():
        return None
    return json.loads((run_dir / "result.json").read_text()).get("splits")


def collect(board: Path, runs_dir: Path) -> dict:
    """Per (env, k, transitions): each rule's runs by seed, from every scored submission on ``board``."""
    cases: dict[str, dict] = {}
    references = load_references(board)["benchmarks"]
    for sub in load_submissions(board):
        env_id, k, rule = sub["benchmark"]["env_id"], sub["k"], rule_of(sub)
        ref = references[f"{sub['benchmark']['key']}/{sub['protocol']['version']}"]
        for run in sub["runs"]:
            steps = run["total_timesteps"]
            case = cases.setdefault(f"{env_id} k={k} {steps:,} transitions", {
                "env_id": env_id, "k": k, "total_timesteps": steps, "benchmark": sub["benchmark"]["key"],
                "w_random": ref["random"]["welfare"], "w_k": k_bound(ref, k), "digits": _digits(ref), "rules": {}})
            task = Task(env_id, SOLVER, k, run["seed"], steps)
            splits = splits_of(finished_run(task.folder(runs_dir / rule)))
            case["rules"].setdefault(rule, {})[run["seed"]] = {
                "welfare": run["best_welfare"], "own_assignment_welfare": run["welfare"],
                "worst_off": run.get("egalitarian_welfare"), "serving_policies": serving_policies(run),
                "splits": None if splits is None else len(splits), "first_split": splits[0][0] if splits else None,
                "wall_time_s": run["wall_time_s"], "commit": sub["solver"]["commit"]}
    for case in cases.values():
        _fill_runs_without_a_split(case, runs_dir)
    return cases


def _fill_runs_without_a_split(case: dict, runs_dir: Path) -> None:
    """A split-rule run in which no policy ever emptied trains the paper's rule's numbers bit for bit, so the
    board keeps only one copy of its policies (a duplicate is skipped): pair it with the reinstate run it equals."""
    split = case["rules"].get("split", {})
    for seed, run in case["rules"].get("reinstate", {}).items():
        task = Task(case["env_id"], SOLVER, case["k"], seed, case["total_timesteps"])
        if seed not in split and splits_of(finished_run(task.folder(runs_dir / "split"))) == []:
            case["rules"].setdefault("split", split)[seed] = {**run, "splits": 0, "first_split": None,
                                                              "same_as_reinstate": True}


def summarize(case: dict) -> dict:
    """Means with bootstrap intervals per rule, and split against reinstate on the seeds both have."""
    out = {}
    for rule, runs in case["rules"].items():
        seeds = sorted(runs)
        welfare = interval([runs[s]["welfare"] for s in seeds], low=0.0, high=case["w_k"])
        out[rule] = {"seeds": seeds, "welfare": welfare,
                     "normalized": normalized(welfare[0], case["w_random"], case["w_k"]),
                     "serving_policies": float(np.mean([runs[s]["serving_policies"] for s in seeds]))}
    versus = paired(case["rules"].get("split", {}), case["rules"].get("reinstate", {}))
    if versus:
        out["paired"] = {"seeds": versus["seeds"], "p_split_better": versus["p_better"],
                         "mean_difference": versus["mean_difference"], "split_better_on": versus["better_on"]}
    return out


def paired(runs: dict, reference: dict) -> dict | None:
    """``runs`` against ``reference`` (seed -> run) on the seeds both have, if at least two: P(better) with the board's
    interval (each side's runs resampled on its own; the committed results were measured when it was a paired
    bootstrap), the mean welfare difference with its interval, and on how many seeds each is ahead."""
    both = sorted(set(runs) & set(reference))
    if len(both) < 2:
        return None
    x, y = [runs[s]["welfare"] for s in both], [reference[s]["welfare"] for s in both]
    return {"seeds": both, "p_better": probability_of_improvement(x, y), "mean_difference": interval(np.subtract(x, y)),
            "better_on": int(np.sum(np.greater(x, y))), "worse_on": int(np.sum(np.less(x, y)))}


def markdown(cases: dict) -> str:
    lines = ["# EM: the paper's rule for an emptied policy (reinstate) against a split", "",
             "`python benchmarks/empty_policy.py` (every run on its board; n = the board's "
             "population; welfare is the board's held-out number, mean [95% bootstrap CI] over seeds; P(split > "
             "reinstate) with the board's bootstrap interval (leaderboard.stats.probability_of_improvement); the difference "
             "is split minus reinstate, seed by seed).", ""]
    order = lambda item: (item[1]["env_id"], item[1]["k"], item[1]["total_timesteps"])  # noqa: E731  (k = 5 before 10)
    for name, case in sorted(cases.items(), key=order):
        summary, digits = case["summary"], case["digits"]
        bound = "" if case["w_k"] is None else (f"W_random = {case['w_random']:.{digits}f}, W_{case['k']} = "
                                                f"{case['w_k']:.{digits}f} (the board's reference points)")
        lines += [f"## {name}", "", bound, "", "| seed | " + " | ".join(f"{r} welfare | {r} serving | {r} splits"
                                                             for r in EMPTY_POLICY_RULES) + " |",
                  "|---:|" + "---:|---:|---:|" * len(EMPTY_POLICY_RULES)]
        seeds = sorted(set().union(*(set(runs) for runs in case["rules"].values())))
        for seed in seeds:
            cells = []
            for rule in EMPTY_POLICY_RULES:
                run = case["rules"].get(rule, {}).get(seed)
                cells += ([f"{run['welfare']:.{digits}f}", str(run["serving_policies"]),
                           "-" if run["splits"] is None else str(run["splits"])] if run else ["", "", ""])
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        lines.append("")
        for rule in EMPTY_POLICY_RULES:
            if rule in summary:
                share = summary[rule]["normalized"]
                lines.append(f"- {rule}: welfare {_ci(summary[rule]['welfare'], digits)}"
                             + ("" if share is None else f" ({share:.2f} of the way from W_random to W_{case['k']})")
                             + f", policies serving users {summary[rule]['serving_policies']:.1f} of {case['k']} "
                             "(mean over seeds)")
        if "paired" in summary:
            paired = summary["paired"]
            lines.append(f"- split against reinstate, {len(paired['seeds'])} paired seeds: P(split > reinstate) = "
                         f"{_ci(paired['p_split_better'], 2)}, difference {_ci(paired['mean_difference'], digits)}, "
                         f"split higher on {paired['split_better_on']} of {len(paired['seeds'])}")
        lines.append("")
    return "\n".join(lines)


def main(args: Args) -> None:
    unknown = sorted(set(args.rules) - set(EMPTY_POLICY_RULES))
    if unknown or not args.rules:
        sys.exit(f"error: --rules takes some of {', '.join(EMPTY_POLICY_RULES)}, got {args.rules}")
    work = ROOT / args.work_dir
    board, runs_dir = work / "board", work / "runs"
    if not args.rescore:
        if not (board / "reference_points.json").is_file():  # the board's W_random and W_k, not recomputed here
            board.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "leaderboard" / "reference_points.json", board / "reference_points.json")
        for rule in args.rules:
            sweep(args.envs, [SOLVER], args.k, args.seeds, args.total_timesteps, runs_dir / rule, board,
                  workers=args.workers or None, extra_args=["--empty-policy", rule, *shlex.split(args.solver_args)])
    cases = collect(board, runs_dir)
    if not cases:
        sys.exit(f"error: no scored runs on {board}")
    for case in cases.values():
        case["summary"] = summarize(case)
    out = ROOT / args.out
    atomic_write_json(out / "empty_policy.json", {"args": vars(args), "hardware": hardware(), "provenance": provenance(ROOT),
                                                  "cases": cases})
    atomic_write_text(out / "empty_policy.md", markdown(cases))
    print((out / "empty_policy.md").read_text())


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__.split("\n\n")[0]))
