"""Several solver runs at once on one machine: what the PPO update's thread count does to them.

A run's update uses 2 torch threads by default (more with ``--rollout workers`` on a bigger machine).
When as many runs as cores share the machine, each update's OpenMP threads spin-wait for a partner
thread that another run holds. ``OMP_NUM_THREADS=1`` (which ``--update-threads`` now defaults to when
set, ``rmdp_train.run.default_update_threads``) or ``--update-threads 1`` avoids it; the sweep does
the same and also runs each run in one process (``leaderboard.sweep.PROCESS_FLAGS``), the third setting.
Each setting starts the runs together and waits for all of them; run ``i`` has seed ``--seed + i`` and
the same budget in every setting.

    python benchmarks/concurrent_runs.py                          # EM and random on ResourceGathering, 100k
    python benchmarks/concurrent_runs.py --solvers em em em em --env-id rmdp/HalfCheetahSpeed-v0 --settings 2 3 \
        --timesteps 200000 --tag _cheetah4

    python benchmarks/concurrent_runs.py --solvers em em --env-id rmdp/HalfCheetahSpeed-v0 --settings 3 \
        --timesteps 2000000 --raw --tag _cheetah2_2M    # a 2-core machine's seed sweep against its raw rate

Writes ``{out}/concurrent_runs{tag}.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance, usable_cores  # noqa: E402

#: Each setting: (extra environment, extra solver flags, pinned). Pinned: run i and its worker processes (which
#: inherit the affinity) keep to core i, modulo the usable cores.
SETTINGS = {
    "2 update threads each (the default with OMP_NUM_THREADS unset)": ({}, ["--update-threads", "2"], False),
    "OMP_NUM_THREADS=1 (the update's default follows it)": ({"OMP_NUM_THREADS": "1"}, [], False),
    "OMP_NUM_THREADS=1 and --num-workers 0 (one process per run, as the sweep)": ({"OMP_NUM_THREADS": "1"},
                                                                                  ["--num-workers", "0"], False),
    "OMP_NUM_THREADS=1, one worker, run i pinned to core i (a run per core, as the one-core runs of cores_scaling.sh)": (
        {"OMP_NUM_THREADS": "1"}, ["--num-workers", "1", "--rollout", "workers"], True),
}


@dataclass
class Args:
    solvers: list[str] = field(default_factory=lambda: ["em", "random"])
    """the runs started together (solvers/{name}_ppo.py), one per entry"""
    env_id: str = "rmdp/ResourceGathering-v0"
    """environment of every run"""
    timesteps: int = 100_000
    """transitions of each run"""
    seed: int = 1
    """training seed of the first run (run i: seed + i)"""
    settings: list[int] = field(default_factory=lambda: [1, 2, 3])
    """which of SETTINGS to run, numbered from 1 in their order"""
    timeout_s: float = 900.0
    """a setting's runs are stopped after this long (and reported as unfinished)"""
    out: str = "benchmarks/results"
    """folder for concurrent_runs{tag}.json"""
    tag: str = ""
    """appended to the file name"""
    raw: bool = False
    """after each setting, also step raw HalfCheetah-v5 in one process per usable core (``benchmarks/cores.py``'s
    raw rate), so the group's summed transitions/s can be read as a fraction of what the cores step"""


def _pinned_to(core: int):
    """What the child runs before the solver starts: keep to ``core``."""
    return lambda: os.sched_setaffinity(0, {core})


def run_together(args: Args, environ: dict, flags: list[str], pinned: bool) -> dict:
    """Start one run per solver at once; wall time of the whole group and each run's phases and welfare."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(environ)
    with tempfile.TemporaryDirectory(prefix="rmdp-concurrent-") as out:
        procs = {}
        start = time.perf_counter()
        cores = sorted(os.sched_getaffinity(0))
        for index, solver in enumerate(args.solvers):
            cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--env-id", args.env_id,
                   "--seed", str(args.seed + index), "--total-timesteps", str(args.timesteps),
                   "--output-dir", f"{out}/{index}", *flags]
            pin = _pinned_to(cores[index % len(cores)]) if pinned else None
            procs[f"{index}-{solver}"] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                          text=True, preexec_fn=pin)
        runs, finished = {}, True
        for name, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=max(1.0, args.timeout_s - (time.perf_counter() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                runs[name], finished = {"finished": False}, False
                continue
            if proc.returncode != 0:
                sys.exit(f"error: {name} failed: {err.strip().splitlines()[-1:]}")
            result = json.loads(next(Path(out, name.split("-")[0]).glob("*/result.json")).read_text())
            runs[name] = {"seed": result["seed"], "finished": True, "transitions": result["transitions"],
                          "wall_time_s": round(result["wall_time_s"], 2),
                            "phase_seconds": result["phase_seconds"], "best_welfare": result["best_welfare"],
                            "update_threads": result["args"]["update_threads"], "rollout": result["args"]["rollout"],
                            "num_workers": result["args"]["num_workers"]}
        wall = time.perf_counter() - start
        transitions = sum(run.get("transitions", 0) for run in runs.values())
        return {"wall_s": round(wall, 1), "all_finished": finished, "transitions_per_s": round(transitions / wall),
                "runs": runs}


def main(args: Args) -> None:
    rows = {}
    chosen = [(number, item) for number, item in enumerate(SETTINGS.items(), 1) if number in args.settings]
    if len(chosen) != len(set(args.settings)):
        sys.exit(f"error: --settings are numbered 1 to {len(SETTINGS)}, got {args.settings}")
    for _, (name, (environ, flags, pinned)) in chosen:
        rows[name] = run_together(args, environ, flags, pinned)
        if args.raw:
            from cores import RAW_STEPS, raw_rate  # noqa: PLC0415 (benchmarks/cores.py, beside this script)

            raw = raw_rate(usable_cores(), RAW_STEPS)
            rows[name].update(raw=round(raw), to_raw=round(rows[name]["transitions_per_s"] / raw, 3))
        print(name, json.dumps(rows[name]), flush=True)
    report = {"machine": hardware(), "cores": usable_cores(), "commit": git_commit(ROOT), "versions": library_versions(),
              "env_id": args.env_id, "solvers": args.solvers, "timesteps": args.timesteps, "seed": args.seed,
              "timeout_s": args.timeout_s, "settings": rows}
    path = Path(args.out) / f"concurrent_runs{args.tag}.json"
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
