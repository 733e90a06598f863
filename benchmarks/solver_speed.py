"""Speed and welfare of the reference solvers against wall clock and against transitions.

Runs each solver (one at a time, so runs do not compete for the cores) as a subprocess with a
wall-clock limit, evaluating every ``--eval-every`` transitions, and reads the evaluation history
from its ``result.json``: transitions per second including learning (and excluding the time spent
in evaluation), evaluated welfare (best response and under the solver's assignment) against wall
clock and against transitions. A run still going at the limit is stopped; its last evaluation
counts. Only that final evaluation is reported (never the best of the run's evaluations: picking
the best of ~20 noisy evaluations would select noise). Writes ``{out}/solver_speed.json`` and ``{out}/solver_speed.png``.

    python benchmarks/solver_speed.py                                  # the issue's setting: 15 + 3 minutes per solver
    python benchmarks/solver_speed.py --minutes 1 --rg-minutes 0.5 --solvers em random   # a quick check

Targets (issue 3, 2-core machine): >= 15,000 transitions/s; HalfCheetahSpeed (n=100, k=5)
final best-response welfare >= 21 within 15 minutes; ResourceGathering (k=5) >= 0.89 within 3 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance  # noqa: E402

CHEETAH = "rmdp/HalfCheetahSpeed-v0"
RG = "rmdp/ResourceGathering-v0"
TARGETS = {CHEETAH: 21.0, RG: 0.89}


@dataclass
class Args:
    solvers: list[str] = field(default_factory=lambda: ["em", "e2e", "cluster", "random"])
    """solvers to measure (files solvers/{name}_ppo.py)"""
    minutes: float = 15.0
    """wall-clock limit of each HalfCheetahSpeed run"""
    rg_minutes: float = 3.0
    """wall-clock limit of each ResourceGathering run"""
    envs: list[str] = field(default_factory=lambda: [CHEETAH, RG])
    """environments to measure"""
    k: int = 5
    """number of policies"""
    n_agents: int = 100
    """users of HalfCheetahSpeed"""
    seed: int = 1
    """seed of every run"""
    cheetah_sps: float = 15_000
    """assumed throughput that sets HalfCheetah's --total-timesteps (learning-rate and entropy schedules) to fit the limit"""
    rg_sps: float = 20_000
    """the same for ResourceGathering"""
    cheetah_eval_every: Optional[int] = None
    """transitions between evaluations on HalfCheetah (default: about 20 evaluations per run)"""
    rg_eval_every: Optional[int] = None
    """transitions between evaluations on ResourceGathering (default: about 20 evaluations per run)"""
    extra: list[str] = field(default_factory=list)
    """further flags passed to every solver run, after '=' (e.g. --extra=--num-envs 8; without '=' the parser reads
    --num-envs as a flag of its own)"""
    merge: bool = False
    """keep the other solvers' entries of an existing solver_speed.json (re-measure a few runs)"""
    out: str = str(ROOT / "benchmarks" / "results")
    """folder for solver_speed.json and solver_speed.png"""
    runs_dir: str = str(ROOT / "runs" / "solver_speed")
    """output directory of the solver runs (TensorBoard logs, result.json; git-ignored)"""


def run_one(args: Args, solver: str, env_id: str) -> dict:
    minutes = args.minutes if env_id == CHEETAH else args.rg_minutes
    sps = args.cheetah_sps if env_id == CHEETAH else args.rg_sps
    total = int(minutes * 60 * sps)
    eval_every = (args.cheetah_eval_every if env_id == CHEETAH else args.rg_eval_every) or max(total // 20, 1)
    out = Path(args.runs_dir)
    cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--env-id", env_id, "--k", str(args.k),
           "--seed", str(args.seed), "--total-timesteps", str(total), "--eval-every", str(eval_every),
           "--output-dir", str(out), "--exp-name", f"{solver}_speed", *args.extra]
    if env_id != RG:
        cmd += ["--n-agents", str(args.n_agents)]
    before = set(out.glob("*")) if out.exists() else set()
    print(f"[{solver} on {env_id}] {minutes} min limit, budget {total} transitions: {' '.join(cmd[1:])}", flush=True)
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=minutes * 60 + 30)  # + start-up and the final evaluation
        stopped = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        stopped = True
    wall = time.time() - start
    run_dirs = sorted(set(out.glob("*")) - before)
    result_path = run_dirs[-1] / "result.json" if run_dirs else None
    if result_path is None or not result_path.is_file():
        raise RuntimeError(f"{solver} on {env_id} wrote no result.json (exit {proc.returncode}):\n{err[-2000:]}")
    result = json.loads(result_path.read_text())
    history = result["eval_history"]
    eval_time = sum(h.get("eval_s", 0.0) for h in history)
    train_time = max(result["wall_time_s"] - eval_time, 1e-9)
    summary = {
        "solver": solver, "env_id": env_id, "k": args.k, "minutes": minutes, "total_timesteps": total,
        "stopped_at_limit": stopped, "finished": result["finished"], "process_wall_s": wall,
        "transitions": result["transitions"], "wall_time_s": result["wall_time_s"],
        "transitions_per_s": result["transitions_per_s"],
        "transitions_per_s_excluding_eval": result["transitions"] / train_time,
        "final_best_welfare": history[-1]["best_welfare"] if history else None,
        "final_welfare": history[-1]["welfare"] if history else None,
        "target": TARGETS.get(env_id), "history": history, "run_dir": str(run_dirs[-1]),
    }
    print(f"  {summary['transitions_per_s']:.0f} transitions/s ({summary['transitions_per_s_excluding_eval']:.0f} "
          f"without evaluation), final best-response welfare {summary['final_best_welfare']}", flush=True)
    return summary


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env_id"] for r in runs})
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 4 * len(envs)), squeeze=False)
    for row, env_id in enumerate(envs):
        for run in (r for r in runs if r["env_id"] == env_id):
            h = run["history"]
            for col, key, scale, label in ((0, "wall_time_s", 1 / 60, "wall clock (minutes)"),
                                           (1, "global_step", 1e-6, "transitions (millions)")):
                ax = axes[row, col]
                x = [e[key] * scale for e in h]
                line, = ax.plot(x, [e["best_welfare"] for e in h], marker="o", ms=3, label=f"{run['solver']} (best response)")
                ax.plot(x, [e["welfare"] for e in h], ls="--", color=line.get_color(), alpha=0.6)
                ax.set_xlabel(label)
        for col in (0, 1):
            ax = axes[row, col]
            if TARGETS.get(env_id) is not None:
                ax.axhline(TARGETS[env_id], color="grey", ls=":", lw=1, label="target")
            ax.set_ylabel("welfare per user")
            ax.set_title(f"{env_id} (k={runs[0]['k']})")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8)
    fig.suptitle("solid: best-response welfare, dashed: under the solver's assignment", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args: Args) -> None:
    missing = [s for s in args.solvers if not (ROOT / "solvers" / f"{s}_ppo.py").is_file()]
    if missing:
        sys.exit(f"error: no solver file solvers/{missing[0]}_ppo.py (--solvers takes names such as em, e2e, cluster)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run_one(args, solver, env_id) for env_id in args.envs for solver in args.solvers]
    if args.merge and (out / "solver_speed.json").is_file():
        # re-measured (solver, env) pairs replace their old entries; the rest are kept
        fresh = {(r["solver"], r["env_id"]) for r in runs}
        old = json.loads((out / "solver_speed.json").read_text())["runs"]
        runs = [r for r in old if (r["solver"], r["env_id"]) not in fresh] + runs
        runs.sort(key=lambda r: (r["env_id"] != CHEETAH, args.solvers.index(r["solver"]) if r["solver"] in args.solvers else 99))
    report = {"commit": git_commit(ROOT), "hardware": hardware(), "versions": library_versions(), "cpu_count": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "settings": vars(args), "runs": runs}
    atomic_write_json(out / "solver_speed.json", {**report, "provenance": provenance(ROOT)})
    plot(runs, out / "solver_speed.png")
    print(f"wrote {out / 'solver_speed.json'} and {out / 'solver_speed.png'}")
    for r in runs:
        print(f"{r['solver']:8s} {r['env_id']:28s} {r['transitions_per_s']:8.0f} transitions/s  "
              f"final best response ({r['minutes']} min limit): {r['final_best_welfare']}  (target {r['target']})")


if __name__ == "__main__":
    main(tyro.cli(Args))
