"""EM's E-step tolerance (``--e-step-tol``) against the churn of ``--empty-policy split``, per rule.

Right after a split the two copies of a policy differ by noise alone, and users chasing that noise can
empty one of them again: 76-97 splits in Chain k = 10's 20 iterations, 84-139 in AntSpeed's 195 (README
"Solvers"). ``--e-step-tol t`` moves a user only when its estimated gain beats ``t`` (in the task's
return units), which damps that, and also every other move. This runs ``benchmarks/empty_policy.py``
(both rules on the same seeds, or the ``--rules`` given, scored by the board's protocol in a board of their own) once per
tolerance, each into ``{work_dir}_{tol}``, and compares every tolerance with the first, seed by seed,
for each rule.

    python benchmarks/e_step_tol.py --envs rmdp/Chain-v0 --k 5 10 --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --total-timesteps 100000 --solver-args="--n-agents 12 --learning-rate 0.001" \\
        --tols 0 0.02 0.05 --work-dir runs/tol/chain --out benchmarks/results/e_step_tol/chain
    python benchmarks/e_step_tol.py --envs rmdp/HalfCheetahSpeed-v0 --k 10 --tols 0 1.0 \\
        --work-dir runs/tol/cheetah --out benchmarks/results/e_step_tol/halfcheetah

Writes ``{out}/e_step_tol.json`` and ``e_step_tol.md``, and each tolerance's rule-against-rule tables
in ``{out}/tol_<tol>/``. Finished runs are not run again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import empty_policy  # noqa: E402
from leaderboard.render import _ci  # noqa: E402  (the board's format)
from rmdp_envs.core import EMPTY_POLICY_RULES  # noqa: E402
from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import hardware, provenance  # noqa: E402


@dataclass
class Args(empty_policy.Args):
    """benchmarks/empty_policy.py's flags, run once per tolerance."""

    tols: list[str] = field(default_factory=lambda: ["0", "1.0"])
    """E-step tolerances, as they name the folders; the first is the reference (0: the paper's rule)"""
    k: list[int] = field(default_factory=lambda: [10])
    """budgets of policies"""
    work_dir: str = "runs/e_step_tol"
    """each tolerance's runs and board go to ``{work_dir}_{tol}``"""
    out: str = "benchmarks/results/e_step_tol"
    """folder for e_step_tol.json / e_step_tol.md (and tol_<tol>/ with each tolerance's tables)"""


def check_tols(tols: list[str]) -> None:
    for text in tols:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0.0:
            sys.exit(f"error: a tolerance is a number >= 0, got {text!r}")
    if len(set(tols)) != len(tols):
        sys.exit(f"error: each tolerance once, got {tols}")


def compare(per_tol: dict[str, dict], reference: str) -> dict:
    """Per case (env, k, transitions) and rule: each tolerance's welfare, splits and serving policies, and its
    paired difference to the reference tolerance on the seeds both have."""
    out: dict = {}
    for tol, cases in per_tol.items():
        for name, case in cases.items():
            entry = out.setdefault(name, {key: case[key] for key in ("env_id", "k", "total_timesteps", "w_random",
                                                                    "w_k", "digits")} | {"rules": {}})
            summary = empty_policy.summarize(case)
            for rule, runs in case["rules"].items():
                seeds = summary[rule]["seeds"]
                splits = [runs[s]["splits"] for s in seeds if runs[s]["splits"] is not None]
                row = {"seeds": seeds, "welfare": summary[rule]["welfare"],
                       "serving_policies": summary[rule]["serving_policies"],
                       "splits_mean": float(np.mean(splits)) if splits else None,
                       "per_seed": {s: runs[s]["welfare"] for s in seeds}}
                versus = None if tol == reference else \
                    empty_policy.paired(runs, per_tol[reference].get(name, {}).get("rules", {}).get(rule, {}))
                if versus:
                    row["against_reference"] = versus
                entry["rules"].setdefault(rule, {})[tol] = row
    return out


def markdown(comparison: dict, reference: str) -> str:
    lines = ["# EM's E-step tolerance (`--e-step-tol`) per rule for an emptied policy", "",
             "`python benchmarks/e_step_tol.py` (each tolerance's runs through `benchmarks/empty_policy.py`, scored by "
             "the board's protocol: held-out welfare, mean [95% bootstrap CI] over seeds; the difference is this "
             f"tolerance minus tolerance {reference}, same rule, seed by seed, with P(this > {reference}) from a paired "
             "bootstrap).", ""]
    for name, case in sorted(comparison.items(), key=lambda item: (item[1]["env_id"], item[1]["k"])):
        digits = case["digits"]
        lines += [f"## {name}", "", "| rule | tolerance | welfare | splits per run | policies serving | "
                  f"minus tolerance {reference}, paired | P(better) | better / worse on |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for rule in EMPTY_POLICY_RULES:
            for tol, row in case["rules"].get(rule, {}).items():
                ref = row.get("against_reference")
                splits = "-" if row["splits_mean"] is None else f"{row['splits_mean']:.1f}"
                lines.append(f"| {rule} | {tol} | {_ci(row['welfare'], digits)} | {splits} | "
                             f"{row['serving_policies']:.1f} of {case['k']} | "
                             + (f"{_ci(ref['mean_difference'], digits)} | {_ci(ref['p_better'], 2)} | "
                                f"{ref['better_on']} / {ref['worse_on']} of {len(ref['seeds'])} |" if ref else "| | |"))
        lines.append("")
    return "\n".join(lines)


def main(args: Args) -> None:
    check_tols(args.tols)
    per_tol = {}
    for tol in args.tols:
        shared = {f.name: getattr(args, f.name) for f in fields(empty_policy.Args)}
        ep_args = empty_policy.Args(**shared | dict(solver_args=f"{args.solver_args} --e-step-tol {tol}".strip(),
                                                    work_dir=f"{args.work_dir}_{tol}", out=f"{args.out}/tol_{tol}"))
        empty_policy.main(ep_args)
        per_tol[tol] = empty_policy.collect(ROOT / ep_args.work_dir / "board", ROOT / ep_args.work_dir / "runs")
    comparison = compare(per_tol, args.tols[0])
    out = ROOT / args.out
    atomic_write_json(out / "e_step_tol.json", {"args": vars(args), "hardware": hardware(), "provenance": provenance(ROOT),
                                                "cases": comparison})
    atomic_write_text(out / "e_step_tol.md", markdown(comparison, args.tols[0]))
    print((out / "e_step_tol.md").read_text())


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__.split("\n\n")[0]))
