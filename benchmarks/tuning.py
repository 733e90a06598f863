"""The same tuning budget for every solver: a small grid of learning rate x entropy coefficient.

Each solver runs every (learning_rate, ent_coef) pair on one benchmark (ResourceGathering, k = 5,
300k transitions, 2 seeds: 4 solvers x 6 settings x 2 seeds = 48 runs). A setting is scored by the
mean over seeds of its final evaluation (the run's own ``best_welfare``: final policies only, on
the solvers' evaluation seeds, which are not the board's held-out scoring seeds). The best setting
of each solver seeds the board. Runs one process per core, each on one thread, like ``sweep``.

    python benchmarks/tuning.py [--workers 2]   # ~10 minutes on 2 cores

Writes ``benchmarks/results/tuning.json`` and ``tuning.md``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: E402
from rmdp_envs.results import git_commit, hardware, provenance  # noqa: E402


@dataclass
class Args:
    env_id: str = "rmdp/ResourceGathering-v0"
    """the benchmark every solver is tuned on"""
    k: int = 5
    """budget of policies"""
    total_timesteps: int = 300_000
    """transitions per run"""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """training seeds of every setting"""
    solvers: list[str] = field(default_factory=lambda: ["em", "e2e", "cluster", "random"])
    """solver files (solvers/<name>_ppo.py)"""
    learning_rates: list[float] = field(default_factory=lambda: [2.5e-4, 5e-4, 1e-3])
    """initial learning rates of the grid"""
    ent_coefs: list[float] = field(default_factory=lambda: [1e-2, 5e-2])
    """initial entropy coefficients of the grid"""
    workers: int = 2
    """concurrent runs (one core each)"""
    out: str = "benchmarks/results"
    """folder of tuning.json and tuning.md"""


def run_one(solver: str, lr: float, ent: float, seed: int, args: Args, tmp: Path) -> dict:
    out = tmp / f"{solver}-{lr}-{ent}-{seed}"
    cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--env-id", args.env_id, "--k", str(args.k),
           "--seed", str(seed), "--total-timesteps", str(args.total_timesteps), "--learning-rate", str(lr),
           "--ent-coef", str(ent), "--output-dir", str(out), "--num-workers", "0", "--torch-threads", "1",
           "--update-threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(next(out.glob("*/result.json")).read_text())
    return {"solver": solver, "learning_rate": lr, "ent_coef": ent, "seed": seed,
            "best_welfare": result["best_welfare"], "welfare": result["welfare"], "wall_time_s": result["wall_time_s"]}


def main(args: Args) -> None:
    missing = [s for s in args.solvers if not (ROOT / "solvers" / f"{s}_ppo.py").is_file()]
    if missing or args.workers < 1:
        sys.exit(f"error: no solver file solvers/{missing[0]}_ppo.py" if missing else
                 f"error: --workers must be at least 1, got {args.workers}")
    start = time.time()
    grid = list(itertools.product(args.solvers, args.learning_rates, args.ent_coefs, args.seeds))
    with tempfile.TemporaryDirectory(prefix="rmdp-tuning-") as tmp, ThreadPoolExecutor(args.workers) as pool:
        runs = list(pool.map(lambda g: run_one(*g, args, Path(tmp)), grid))
    table, best = [], {}
    for solver in args.solvers:
        for lr, ent in itertools.product(args.learning_rates, args.ent_coefs):
            scores = [r["best_welfare"] for r in runs if (r["solver"], r["learning_rate"], r["ent_coef"]) == (solver, lr, ent)]
            table.append({"solver": solver, "learning_rate": lr, "ent_coef": ent, "mean_best_welfare": float(np.mean(scores)),
                          "seeds": scores})
        rows = [row for row in table if row["solver"] == solver]
        best[solver] = max(rows, key=lambda row: row["mean_best_welfare"])
    report = {"args": asdict(args), "commit": git_commit(), "hardware": hardware(), "wall_time_s": time.time() - start,
              "provenance": provenance(ROOT), "runs": runs, "settings": table,
              "best": {s: {"learning_rate": b["learning_rate"], "ent_coef": b["ent_coef"],
                           "mean_best_welfare": b["mean_best_welfare"]} for s, b in best.items()}}
    out = ROOT / args.out
    atomic_write_json(out / "tuning.json", report)
    lines = [f"# Tuning: {args.env_id}, k = {args.k}, {args.total_timesteps:,} transitions, seeds {args.seeds}", "",
             f"Same grid for every solver; score = mean over seeds of the final evaluation's best-response welfare. "
             f"Commit {report['commit']}, {report['hardware']}, {report['wall_time_s'] / 60:.0f} minutes.", "",
             "| solver | learning_rate | ent_coef | mean | per seed | chosen |", "|---|---:|---:|---:|---|:---:|"]
    for row in table:
        chosen = "**yes**" if (row["learning_rate"], row["ent_coef"]) == (best[row["solver"]]["learning_rate"],
                                                                        best[row["solver"]]["ent_coef"]) else ""
        lines.append(f"| {row['solver']} | {row['learning_rate']:g} | {row['ent_coef']:g} | {row['mean_best_welfare']:.4f} | "
                     f"{', '.join(f'{v:.4f}' for v in row['seeds'])} | {chosen} |")
    atomic_write_text(out / "tuning.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Args))
