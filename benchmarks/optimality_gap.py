"""Optimality gap on tabular r-MDPs: exact optimum vs exact EM vs the deep solvers.

For several seeded instances of each tabular family and each budget k: the optimal welfare
(``rmdp_envs.exact.optimal_welfare``), exact EM (mean and best of ``restarts`` random starts) and
the deep solvers' evaluated best-response welfare (on the first ``deep_seeds`` instances and
budgets ``deep_ks``), each as a fraction of the optimum. EM's gap is the cost of
local optima; a deep solver's further gap is the cost of RL noise.

    python benchmarks/optimality_gap.py            # writes benchmarks/results/optimality_gap.{json,md}
"""

from __future__ import annotations

import glob
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import tyro

import rmdp_envs
from rmdp_envs.envs.tabular_generators import TabularRandomEnv
from rmdp_envs.exact import (em_exact, full_personalization, optimal_welfare, policy_utilities, policy_welfare,
                             tabulate_policies)

#: every registered r-MDP that states it is tabular (the exact optimum applies)
TABULAR_IDS = tuple(i for i in rmdp_envs.registered_ids() if rmdp_envs.env_metadata(i)["rmdp_family"] == "tabular")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Args:
    seeds: int = 3
    """instances per family: seed s sets population_seed (and instance_seed) to s"""
    ks: tuple[int, ...] = (1, 2, 3, 4)
    """budgets of policies"""
    n_agents: int = 10
    """users per instance (the exact optimum handles up to 16)"""
    restarts: int = 10
    """exact-EM runs per instance and k, from seeds 0..restarts-1"""
    out_dir: str = "benchmarks/results"
    """where optimality_gap.json and optimality_gap.md go"""
    deep_solvers: tuple[str, ...] = ("em", "e2e", "cluster", "random")
    """deep solvers (solvers/{name}_ppo.py) trained on some instances; empty to skip them"""
    deep_seeds: int = 1
    """instances per family (seeds 0..deep_seeds-1) on which the deep solvers run"""
    deep_ks: tuple[int, ...] = (2, 3)
    """budgets on which the deep solvers run"""
    deep_timesteps: int = 200_000
    """transitions per deep-solver run"""
    deep_eval_episodes: int = 20
    """the solvers' own sampled evaluation (kept beside the exact score in the JSON)"""


def instance_kwargs(env_id: str, seed: int, n_agents: int) -> dict:
    """The instance of ``seed``: its population, and its random tables where the env draws them (``instance_seed``)."""
    kwargs = {"n_agents": n_agents, "population_seed": seed}
    env_class = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    if "instance_seed" in inspect.signature(env_class).parameters:
        kwargs["instance_seed"] = seed
    return kwargs


def deep_solver_welfares(mdp, env_id: str, env_kwargs: dict, k: int, seed: int, args: Args) -> dict[str, dict]:
    """Best-response welfare of each deep solver, trained on this instance and scored exactly.

    Each solver file runs in a subprocess (``--env-kwargs`` carries the instance, ``--save-model``
    keeps its policies). The greedy policies are tabulated at every (step, state) and scored by
    ``policy_utilities``: no sampling noise, so a score can never exceed the optimum.
    ``result.json``'s sampled welfare (``deep_eval_episodes`` episodes) is kept beside it.
    """
    if seed >= args.deep_seeds or k not in args.deep_ks:
        return {}
    welfares = {}
    with tempfile.TemporaryDirectory() as out:
        for solver in args.deep_solvers:
            cmd = [sys.executable, os.path.join(ROOT, "solvers", f"{solver}_ppo.py"), "--env-id", env_id, "--k", str(k),
                   "--env-kwargs", json.dumps(env_kwargs), "--total-timesteps", str(args.deep_timesteps),
                   "--eval-episodes", str(args.deep_eval_episodes), "--save-model", "--output-dir", os.path.join(out, solver)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            (result,) = glob.glob(os.path.join(out, solver, "*", "result.json"))
            with open(result) as f:
                sampled = json.load(f)["best_welfare"]
            utilities = policy_utilities(mdp, tabulate_policies(mdp, rmdp_envs.load_policies(os.path.dirname(result)), k))
            welfares[solver] = {"welfare": float(utilities.max(axis=0).mean()), "welfare_sampled": float(sampled)}
            print(f"  {env_id} seed {seed} k={k} {solver}: {welfares[solver]['welfare']:.4f} "
                  f"(sampled {sampled:.4f})", flush=True)
    return welfares


def add_solver_scores(row: dict, welfares: dict[str, dict]) -> dict:
    """Put each solver's welfare and its fraction of the optimum into a result row."""
    row["solvers"] = {name: {**w, "fraction_of_optimum": w["welfare"] / row["optimum"]} for name, w in welfares.items()}
    return row


def measure(env_id: str, seed: int, k: int, args: Args) -> dict:
    """One result row: optimum, exact EM over restarts, and the references around them."""
    env_kwargs = instance_kwargs(env_id, seed, args.n_agents)
    mdp = gym.make(env_id, **env_kwargs).unwrapped
    optimum = optimal_welfare(mdp, k).value
    em = np.array([em_exact(mdp, k, seed=r).value for r in range(args.restarts)])
    uniform = np.full((1, mdp.horizon, mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    row = {"env_id": env_id, "env_kwargs": env_kwargs, "k": k, "optimum": optimum,
           "em_mean": float(em.mean()), "em_std": float(em.std()), "em_best": float(em.max()),
           "em_mean_fraction": float(em.mean() / optimum), "em_best_fraction": float(em.max() / optimum),
           "em_runs_at_optimum": int(np.sum(em >= optimum - 1e-9)),
           "full_personalization": full_personalization(mdp),
           "uniform_random": policy_welfare(mdp, uniform, np.zeros(mdp.n_agents, dtype=np.int64))}
    return add_solver_scores(row, deep_solver_welfares(mdp, env_id, env_kwargs, k, seed, args))


def time_optimum() -> dict:
    """Wall time of optimal_welfare at the issue's reference size (acceptance: under 10 s)."""
    size = {"n_agents": 12, "n_states": 50, "n_actions": 4, "horizon": 20}
    mdp = TabularRandomEnv(**size)
    start = time.perf_counter()
    value = optimal_welfare(mdp, 3).value
    seconds = time.perf_counter() - start
    return {**size, "k": 3, "seconds": seconds, "under_10_s": seconds < 10, "optimum": value,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}


def markdown(rows: list[dict], timing: dict, args: Args) -> str:
    head = ["env", "seed", "k", "optimum", "EM mean", "EM best", "EM mean / opt", "EM best / opt", "EM runs at opt"]
    lines = ["# Optimality gap on tabular r-MDPs", "",
             f"Welfare = per-user mean expected return (in [0, 1]); n = {args.n_agents} users; exact EM over "
             f"{args.restarts} random starts. rmdp {rmdp_envs.__version__}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["env_id"].split("/")[1], row["env_kwargs"]["population_seed"], row["k"],
                 f"{row['optimum']:.4f}", f"{row['em_mean']:.4f}", f"{row['em_best']:.4f}",
                 f"{row['em_mean_fraction']:.3f}", f"{row['em_best_fraction']:.3f}",
                 f"{row['em_runs_at_optimum']}/{args.restarts}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    deep = [row for row in rows if row["solvers"]]
    if deep:
        solvers = sorted({name for row in deep for name in row["solvers"]})
        head = ["env", "seed", "k", "optimum", "exact EM mean / opt"] + [f"{s} / opt" for s in solvers]
        lines += ["", "## Deep solvers", "",
                  f"Each solver trained once ({args.deep_timesteps:,} transitions, default flags) per instance; "
                  "its greedy policies are tabulated at every (step, state) and their best-response welfare "
                  "computed exactly (`rmdp_envs.exact.tabulate_policies` + `policy_utilities`).", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in deep:
            cells = [row["env_id"].split("/")[1], row["env_kwargs"]["population_seed"], row["k"],
                     f"{row['optimum']:.4f}", f"{row['em_mean_fraction']:.3f}"]
            cells += [f"{row['solvers'][s]['fraction_of_optimum']:.3f}" if s in row["solvers"] else "" for s in solvers]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"`optimal_welfare` at n={timing['n_agents']}, k={timing['k']}, S={timing['n_states']}, "
              f"A={timing['n_actions']}, H={timing['horizon']}: {timing['seconds']:.2f} s ({timing['machine']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = tyro.cli(Args)
    timing = time_optimum()
    rows = [measure(env_id, seed, k, args) for env_id in TABULAR_IDS for seed in range(args.seeds) for k in args.ks]
    table = markdown(rows, timing, args)
    print(table)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "optimality_gap.json"), "w") as f:
        json.dump({"args": asdict(args), "rmdp_version": rmdp_envs.__version__,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "timing": timing, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out_dir, "optimality_gap.md"), "w") as f:
        f.write(table)
