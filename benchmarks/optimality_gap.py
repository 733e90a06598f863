"""Optimality gap on tabular r-MDPs: exact optimum vs exact EM vs the deep solvers.

For several seeded instances of each tabular family and each budget k: the optimal welfare
(``rmdp_envs.exact.optimal_welfare``), exact EM (mean and best of ``restarts`` random starts) and
the deep solvers' evaluated best-response welfare (on the first ``deep_seeds`` instances and
budgets ``deep_ks``), each as a fraction of the optimum. EM's gap is the cost of
local optima; a deep solver's further gap is the cost of RL noise.

Each deep solver trains ``deep_training_seeds`` times per instance (training seeds 0..S-1), one core per
run (the sweep's ``PROCESS_FLAGS``), ``jobs`` runs at a time; a solver's cell is the mean fraction of
the optimum over its seeds with a 95% bootstrap interval (``leaderboard.stats.interval``, clipped to
[0, 1]: a tabulated policy's exact welfare cannot pass the optimum). The JSON keeps every seed's score.

    python benchmarks/optimality_gap.py            # writes benchmarks/results/optimality_gap.{json,md}
"""

from __future__ import annotations

import glob
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import tyro

import rmdp_envs
from leaderboard.stats import interval
from leaderboard.sweep import PROCESS_FLAGS
from rmdp_envs.envs.tabular_generators import TabularRandomEnv
from rmdp_envs.exact import (em_exact, full_personalization, optimal_welfare, policy_utilities, policy_welfare,
                             tabulate_policies)
from rmdp_envs.files import atomic_write_json, atomic_write_text
from rmdp_envs.results import hardware, provenance, usable_cores

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
    deep_training_seeds: int = 10
    """training seeds 0..S-1 per deep solver and instance (the interval is over them)"""
    jobs: int = 0
    """deep-solver runs at a time, one core each (0: this machine's usable cores)"""


def instance_kwargs(env_id: str, seed: int, n_agents: int) -> dict:
    """The instance of ``seed``: its population, and its random tables where the env draws them (``instance_seed``)."""
    kwargs = {"n_agents": n_agents, "population_seed": seed}
    env_class = gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    if "instance_seed" in inspect.signature(env_class).parameters:
        kwargs["instance_seed"] = seed
    return kwargs


def _train_and_score(mdp, env_id: str, env_kwargs: dict, k: int, solver: str, seed: int, args: Args, out: str) -> dict:
    """One deep-solver run on this instance: its greedy policies' exact best-response welfare, and its sampled one."""
    folder = os.path.join(out, f"{solver}-{seed}")
    cmd = [sys.executable, os.path.join(ROOT, "solvers", f"{solver}_ppo.py"), "--env-id", env_id, "--k", str(k),
           "--env-kwargs", json.dumps(env_kwargs), "--total-timesteps", str(args.deep_timesteps), "--seed", str(seed),
           "--eval-episodes", str(args.deep_eval_episodes), "--save-model", "--output-dir", folder, *PROCESS_FLAGS]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:  # the solver's own last lines say why; a bare CalledProcessError would hide them
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{solver} (seed {seed}) on {env_id} k={k} exited with {done.returncode}:\n{tail}")
    (result,) = glob.glob(os.path.join(folder, "*", "result.json"))
    with open(result) as f:
        sampled = json.load(f)["best_welfare"]
    utilities = policy_utilities(mdp, tabulate_policies(mdp, rmdp_envs.load_policies(os.path.dirname(result)), k))
    return {"welfare": float(utilities.max(axis=0).mean()), "welfare_sampled": float(sampled)}


def deep_solver_welfares(mdp, env_id: str, env_kwargs: dict, k: int, seed: int, args: Args) -> dict[str, list[dict]]:
    """Each deep solver's runs (one per training seed), trained on this instance and scored exactly.

    Each solver file runs in a subprocess (``--env-kwargs`` carries the instance, ``--save-model``
    keeps its policies). The greedy policies are tabulated at every (step, state) and scored by
    ``policy_utilities``: no sampling noise, so a score can never exceed the optimum.
    ``result.json``'s sampled welfare (``deep_eval_episodes`` episodes) is kept beside it.
    """
    if seed >= args.deep_seeds or k not in args.deep_ks:
        return {}
    runs = [(solver, s) for solver in args.deep_solvers for s in range(args.deep_training_seeds)]
    with tempfile.TemporaryDirectory() as out, ThreadPoolExecutor(args.jobs or usable_cores()) as pool:
        scores = list(pool.map(lambda run: _train_and_score(mdp, env_id, env_kwargs, k, *run, args, out), runs))
    welfares: dict[str, list[dict]] = {}
    for (solver, s), score in zip(runs, scores):
        welfares.setdefault(solver, []).append({"training_seed": s, **score})
    for solver, scored in welfares.items():
        print(f"  {env_id} seed {seed} k={k} {solver}: " + " ".join(f"{w['welfare']:.4f}" for w in scored), flush=True)
    return welfares


def add_solver_scores(row: dict, welfares: dict[str, list[dict]]) -> dict:
    """Put each solver's runs, and their mean fraction of the optimum with its 95% interval, into a result row."""
    row["solvers"] = {}
    for name, runs in welfares.items():
        fractions = [w["welfare"] / row["optimum"] for w in runs]
        point, low, high = interval(fractions, low=0.0, high=1.0)
        row["solvers"][name] = {"fraction_of_optimum": point, "fraction_interval": [low, high],
                                "runs": [{**w, "fraction_of_optimum": f} for w, f in zip(runs, fractions)]}
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
            "machine": hardware()}


def solver_cell(scores: dict) -> str:
    """``mean [low, high] (m/S at 99%)`` of one solver's fractions of the optimum over its training seeds."""
    low, high = scores["fraction_interval"]
    fractions = [run["fraction_of_optimum"] for run in scores["runs"]]
    spread = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{scores['fraction_of_optimum']:.3f}{spread} ({sum(f >= 0.99 for f in fractions)}/{len(fractions)})"


def markdown(rows: list[dict], timing: dict, args: Args, made: dict) -> str:
    head = ["env", "seed", "k", "optimum", "EM mean", "EM best", "EM mean / opt", "EM best / opt", "EM runs at opt"]
    lines = ["# Optimality gap on tabular r-MDPs", "",
             f"Welfare = per-user mean expected return (in [0, 1]); n = {args.n_agents} users; exact EM over "
             f"{args.restarts} random starts. Code of {made['commit']}, {made['machine']}, "
             f"{made['created']}.", "",
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
                  f"Each solver trained {args.deep_training_seeds} times per instance (training seeds 0-"
                  f"{args.deep_training_seeds - 1}; {args.deep_timesteps:,} transitions, default flags, one core per "
                  "run); its greedy policies are tabulated at every (step, state) and their best-response welfare "
                  "computed exactly (`rmdp_envs.exact.tabulate_policies` + `policy_utilities`). A cell: the mean "
                  "fraction of the optimum over the seeds, [95% bootstrap interval], and how many seeds reached "
                  "99% of it.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in deep:
            cells = [row["env_id"].split("/")[1], row["env_kwargs"]["population_seed"], row["k"],
                     f"{row['optimum']:.4f}", f"{row['em_mean_fraction']:.3f}"]
            cells += [solver_cell(row["solvers"][s]) if s in row["solvers"] else "" for s in solvers]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"`optimal_welfare` at n={timing['n_agents']}, k={timing['k']}, S={timing['n_states']}, "
              f"A={timing['n_actions']}, H={timing['horizon']}: {timing['seconds']:.2f} s ({timing['machine']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = tyro.cli(Args)
    unknown = [name for name in args.deep_solvers if not os.path.exists(os.path.join(ROOT, "solvers", f"{name}_ppo.py"))]
    if unknown:
        raise SystemExit("error: --deep-solvers names no solver file: " + ", ".join(f"solvers/{name}_ppo.py" for name in unknown))
    from rmdp_envs.exact import MAX_EXACT_USERS  # noqa: E402
    if not (1 <= min(args.ks) and max(args.ks) <= args.n_agents <= MAX_EXACT_USERS):
        raise SystemExit(f"error: need 1 <= --ks <= --n-agents <= {MAX_EXACT_USERS} (the exact optimum's limit); got "
                         f"--ks {' '.join(map(str, args.ks))}, --n-agents {args.n_agents}")
    made = {**provenance(ROOT), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    timing = time_optimum()
    rows = [measure(env_id, seed, k, args) for env_id in TABULAR_IDS for seed in range(args.seeds) for k in args.ks]
    table = markdown(rows, timing, args, made)
    print(table)
    os.makedirs(args.out_dir, exist_ok=True)
    atomic_write_json(os.path.join(args.out_dir, "optimality_gap.json"),
                      {"args": asdict(args), **made, "timing": timing, "rows": rows})
    atomic_write_text(os.path.join(args.out_dir, "optimality_gap.md"), table)
