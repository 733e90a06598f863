"""Cores: the raw MuJoCo stepping rate of a machine next to what the EM solver reaches on it.

Three measurements on HalfCheetah (the ``rmdp/HalfCheetahSpeed-v0`` dynamics), each over every
process count in ``--processes``:

* ``raw``: Gymnasium's ``HalfCheetah-v5``, random actions, one env per process, P processes at
  once; steps/s summed over processes (resets included). This is the rate the solver is compared with.
* ``rollout``: MuJoCo's own batched C stepping (``mujoco.rollout``, P threads, 5 substeps per
  env step like the env's frame skip) on 1,024 copies: the physics ceiling without Python per copy.
* ``solver``: ``solvers/em_ppo.py`` (n = 100, k = 5) with ``--num-workers P - 1`` env worker
  processes beside the main one (``--rollout workers``: ``P`` workers that also run the policies,
  the main process only learning); transitions over the whole wall time (start-up, learning and
  the final evaluation included).

Writes ``{out}/cores_{cores}.json`` (cores = this machine's logical CPU count).

    python benchmarks/cores.py                                # 1 and 2 processes (a 2-core machine)
    python benchmarks/cores.py --processes 1 4 8 16 --num-envs 32 --timesteps 2000000
    python benchmarks/cores.py --rollout workers --tag _workers
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Literal, Optional
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.envs.mujoco_speed import without_settotalmass_warning  # noqa: E402
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance, usable_cores  # noqa: E402


#: env steps per process of a raw-rate measurement (a few seconds: long enough to be steady, short beside a run)
RAW_STEPS = 20_000


@dataclass
class Args:
    processes: list[int] = field(default_factory=lambda: [1, 2])
    """process (or thread) counts to measure"""
    raw_steps: int = RAW_STEPS
    """env steps per process for the raw rate"""
    timesteps: int = 1_000_000
    """transitions of each solver run"""
    num_envs: int = 8
    """copies per policy in the solver runs (--num-envs)"""
    solver: bool = True
    """also run the solver (the slow part)"""
    main_share: Optional[float] = None
    """--main-share of the solver runs (default: the solvers' own, rmdp_envs.vector.default_main_share)"""
    rollout: Literal["main", "workers"] = "main"  # rmdp_train.args.RolloutMode: not imported, the raw processes stay light
    """--rollout of the solver runs: "main" (P - 1 env workers beside the main process) or "workers" (P workers that
    run the policies too; the main process only learns)"""
    update_threads: Optional[int] = None
    """--update-threads of the solver runs (default: the solvers' own, 2)"""
    critic_bins: Optional[int] = None
    """--critic-bins of the solver runs (default: the solvers' own, 128, so one critic output per user at n = 100; 20
    is the cheaper update of README "Cores")"""
    norm_obs_update: Optional[str] = None
    """--norm-obs-update of the solver runs (default: the solvers' own, "step"; "rollout" freezes the observation
    statistics during each rollout, so the workers meet no per-step barrier)"""
    cuda: bool = False
    """--cuda for the solver runs: the update on the GPU, the rollout workers keep the policies on the CPU (each row
    records whether the solver found CUDA: without it --cuda runs on the CPU)"""
    repeats: int = 1
    """measurements of each process count, one after the other (a shared host's rate moves between minutes:
    the summary gives each count's median)"""
    tag: str = ""
    """appended to the file name: cores_{cores}{tag}.json"""
    out: str = "benchmarks/results"
    """folder for cores_{cores}{tag}.json"""


def _raw_worker(steps: int, seed: int, queue) -> None:
    import gymnasium as gym  # noqa: PLC0415

    with without_settotalmass_warning():  # Gymnasium's robot warns on MuJoCo >= 3.16 where ours does not
        env = gym.make("HalfCheetah-v5", ctrl_cost_weight=0.0, disable_env_checker=True)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    queue.put(steps / (time.perf_counter() - start))


def raw_rate(processes: int, steps: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_raw_worker, args=(steps, i, queue)) for i in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def rollout_rate(threads: int, copies: int = 1024, steps: int = 20) -> float:
    import gymnasium as gym  # noqa: PLC0415
    import mujoco  # noqa: PLC0415
    from mujoco import rollout  # noqa: PLC0415

    with without_settotalmass_warning():
        env = gym.make("HalfCheetah-v5", disable_env_checker=True).unwrapped
    model, frame_skip = env.model, env.frame_skip
    datas = [mujoco.MjData(model) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((copies, mujoco.mj_stateSize(model, spec)))
    mujoco.mj_getState(model, env.data, state[0], spec)
    state[:] = state[0]
    rng = np.random.default_rng(0)
    with rollout.Rollout(nthread=threads) as runner:
        runner.rollout(model, datas, state, rng.uniform(-1, 1, (copies, frame_skip, model.nu)))  # warm up the pool
        start = time.perf_counter()
        for _ in range(steps):
            control = rng.uniform(-1, 1, (copies, frame_skip, model.nu))
            out_state, _ = runner.rollout(model, datas, state, control)
            state = out_state[:, -1]
        return copies * steps / (time.perf_counter() - start)


class SolverFailed(RuntimeError):
    """A solver run exited with an error; the message is its stderr's last line."""


def timed_run(solver: str, flags: list[str]) -> tuple[float, dict]:
    """``solvers/{solver}_ppo.py`` with ``flags`` as a subprocess writing to a temporary folder: its whole wall time
    (start-up included) and its ``result.json``. Raises :class:`SolverFailed` when it fails."""
    with tempfile.TemporaryDirectory(prefix="rmdp-bench-") as out:
        cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), *flags, "--output-dir", out]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:  # the last line with words (tyro's error box ends in a line of box characters)
            said = [line.strip(" │╭╮╰╯─") for line in proc.stderr.splitlines()]
            raise SolverFailed(next((line for line in reversed(said) if line), f"exit status {proc.returncode}"))
        return wall, json.loads(next(Path(out).glob("*/result.json")).read_text())


POLICIES = 5  # k of every solver run here (the paper's HalfCheetahSpeed budget)
TASK = "rmdp/HalfCheetahSpeed-v0"  # the task of every solver run here unless a caller names another


def _update_device(cuda_flag: bool) -> str:
    """Where the solver's update ran: ``--cuda`` uses the GPU only where torch finds one (as this process's torch does)."""
    if not cuda_flag:
        return "cpu"
    import torch  # noqa: PLC0415 (only for --cuda rows: the CPU rows need no torch here)
    return "cuda" if torch.cuda.is_available() else "cpu (--cuda, but torch found no CUDA device)"


def solver_rate(workers: int, timesteps: int, num_envs: int, main_share: float | None = None, rollout: str = "main",
                update_threads: int | None = None, extra: list[str] | None = None, solver: str = "em",
                env_id: str = TASK) -> dict:
    """One run of ``solvers/{solver}_ppo.py`` (EM by default; n = 100, k = 5; HalfCheetahSpeed by default) as a
    subprocess: its transitions over the whole wall time, its phases and welfare.

    ``extra``: further solver flags (``benchmarks/update_cost.py`` varies the update with them).
    """
    flags = ["--env-id", env_id, "--k", str(POLICIES), "--total-timesteps", str(timesteps),
             "--num-workers", str(workers), "--num-envs", str(num_envs), "--rollout", rollout]
    flags += ([] if main_share is None else ["--main-share", str(main_share)])
    flags += ([] if update_threads is None else ["--update-threads", str(update_threads)]) + list(extra or [])
    try:
        wall, result = timed_run(solver, flags)
    except SolverFailed as error:
        return {"workers": workers, "error": [str(error)]}
    return {"workers": workers, "rollout": rollout, "update_threads": result["args"]["update_threads"],
            "critic_bins": result["args"]["critic_bins"], "norm_obs_update": result["args"].get("norm_obs_update", "step"),
            "update_device": _update_device(result["args"].get("cuda", False)),
            "num_envs": num_envs, "main_share": result["args"]["main_share"],
            "transitions": result["transitions"], "wall_s": round(wall, 1), "phase_seconds": result.get("phase_seconds"),
            "start_up_s": result.get("start_up_s"), "rollout_seconds": result.get("rollout_seconds"),
            "transitions_per_s": round(result["transitions"] / wall), "best_welfare": result["best_welfare"],
            "welfare": result["welfare"], "seed": result["seed"]}


def main(args: Args) -> None:
    cores = usable_cores()  # the CPUs this process may use (taskset pins a share of a bigger host)
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be at least 1, got {args.repeats}")
    rows = []
    for p, repeat in [(p, r) for p in args.processes for r in range(args.repeats)]:
        row = {"processes": p, "repeat": repeat, "raw": round(raw_rate(p, args.raw_steps)), "rollout": round(rollout_rate(p))}
        if args.solver:
            workers = p if args.rollout == "workers" else p - 1  # "workers": the main process waits while they collect
            extra = [] if args.critic_bins is None else ["--critic-bins", str(args.critic_bins)]
            extra += [] if args.norm_obs_update is None else ["--norm-obs-update", args.norm_obs_update]
            extra += ["--cuda"] if args.cuda else []
            row["solver"] = solver_rate(workers, args.timesteps, args.num_envs, args.main_share, args.rollout,
                                        args.update_threads, extra=extra)
            if "transitions_per_s" in row["solver"]:
                row["solver_to_raw"] = round(row["solver"]["transitions_per_s"] / row["raw"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for p in args.processes:
        mine = [r for r in rows if r["processes"] == p]
        summary[str(p)] = {"raw_median": float(np.median([r["raw"] for r in mine]))}
        rates = [r["solver"]["transitions_per_s"] for r in mine if "transitions_per_s" in r.get("solver", {})]
        if rates:
            summary[str(p)].update(solver_median=float(np.median(rates)), solver_min=min(rates), solver_max=max(rates),
                                   solver_to_raw_median=float(np.median([r["solver_to_raw"] for r in mine if "solver_to_raw" in r])))
    report = {"machine": hardware(), "cores": cores, "summary": summary, "host_cpus": os.cpu_count(), "cpus": sorted(os.sched_getaffinity(0)), "commit": git_commit(ROOT), "versions": library_versions(),
              "env": "HalfCheetah-v5 dynamics; solver: em_ppo on rmdp/HalfCheetahSpeed-v0, n = 100, k = 5", "rows": rows}
    path = Path(args.out) / f"cores_{cores}{args.tag}.json"
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    print(f"wrote {path}")
    failed = [r["solver"]["error"][0] for r in rows if "error" in r.get("solver", {})]
    if failed:
        sys.exit(f"error: {len(failed)} solver run(s) failed (recorded in the file); the first: {failed[0]}")


if __name__ == "__main__":
    main(tyro.cli(Args))
