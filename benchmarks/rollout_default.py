"""The solvers' default ``--rollout`` against the earlier one: whole-run time of the same runs both ways.

``--rollout`` left unset now means ``workers`` (``rmdp_train.args.default_rollout``: one worker process
per usable core runs the policies on its copies). Before, it meant ``main`` with the family's
``--num-workers`` (1 beside the main process for MuJoCo and CartPole, 0 for ResourceGathering), which
``--rollout main`` still gives. Both train the same numbers bit for bit (``tests/test_rollout.py``), so
each pair of runs must also report the same welfare, which this script checks. Runs alternate between
the two (a shared host's speed drifts), one at a time.

    python benchmarks/rollout_default.py                          # EM, three envs, 300k transitions, 3 repeats
    python benchmarks/rollout_default.py --solvers em random --repeats 1

Writes ``{out}/rollout_default.json``; prints a Markdown table of the medians.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cores import SolverFailed, timed_run  # noqa: E402
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance, usable_cores  # noqa: E402

#: The flags of each side: the earlier default, spelled out, and no flag at all (the default now).
MODES = {"main (earlier default)": ["--rollout", "main"], "default (workers)": []}


@dataclass
class Args:
    envs: list[str] = field(default_factory=lambda: ["rmdp/HalfCheetahSpeed-v0", "rmdp/CartPolePosition-v0",
                                                     "rmdp/ResourceGathering-v0"])
    """environment ids"""
    solvers: list[str] = field(default_factory=lambda: ["em"])
    """solvers (solvers/{name}_ppo.py) that implement both modes"""
    timesteps: int = 300_000
    """transitions of each run"""
    k: int = 5
    """policies"""
    seed: int = 1
    """training seed of every run"""
    repeats: int = 3
    """runs of each mode, alternating"""
    out: str = "benchmarks/results"
    """folder for rollout_default.json"""


def run(solver: str, env_id: str, k: int, seed: int, timesteps: int, flags: list[str]) -> dict:
    """One solver run as a subprocess: wall time (start-up included), phases, welfare and how it used the machine."""
    flags = ["--env-id", env_id, "--k", str(k), "--seed", str(seed), "--total-timesteps", str(timesteps), *flags]
    try:
        wall, result = timed_run(solver, flags)
    except SolverFailed as error:
        sys.exit(f"error: {solver} {' '.join(flags)} failed: {error}")
    used = result["args"]
    return {"wall_s": round(wall, 2), "transitions_per_s": round(result["transitions"] / wall),
            "phase_seconds": result["phase_seconds"], "best_welfare": result["best_welfare"],
            "rollout": used["rollout"], "num_workers": used["num_workers"], "update_threads": used["update_threads"]}


def main(args: Args) -> None:
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be at least 1, got {args.repeats}")
    rows, table = [], []
    for solver in args.solvers:
        for env_id in args.envs:
            runs = {mode: [] for mode in MODES}
            for repeat in range(args.repeats):
                for mode, flags in MODES.items():
                    row = {"solver": solver, "env_id": env_id, "mode": mode, "repeat": repeat,
                           **run(solver, env_id, args.k, args.seed, args.timesteps, flags)}
                    runs[mode].append(row)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            welfare = {row["best_welfare"] for mode_rows in runs.values() for row in mode_rows}
            if len(welfare) != 1:
                sys.exit(f"error: {solver} on {env_id}: the two modes learned different welfare {sorted(welfare)}")
            before, now = (float(np.median([r["wall_s"] for r in runs[mode]])) for mode in MODES)
            table.append(f"| {solver} | {env_id} | {before:.1f} | {now:.1f} | {before / now:.2f}x | {welfare.pop():.4f} |")
    report = {"machine": hardware(), "cores": usable_cores(), "commit": git_commit(ROOT), "versions": library_versions(),
              "timesteps": args.timesteps, "k": args.k, "seed": args.seed, "repeats": args.repeats,
              "modes": {mode: flags for mode, flags in MODES.items()}, "rows": rows}
    path = Path(args.out) / "rollout_default.json"
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    print("| solver | env | earlier default: median s | default now: median s | speed-up | best welfare (both) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(table))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
