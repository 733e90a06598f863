"""The vector env's vector mode with glibc's malloc thresholds at their defaults and raised, per process.

Why: in vector mode CartPolePosition's and the tabular tasks' copies build their own ``(n,)`` reward vectors,
which the vector env stacks into the step's ``(copies, n)`` array, and an episode's end adds another such array
(``infos["episode"]["r"]``). From n = 10,000 on, a step's peak heap is about twice its largest array, which is
where glibc's dynamic trim threshold sits (twice the largest block it has unmapped), so the heap is grown and
trimmed back every step and each grown page faults on first touch (``strace``: about 1.6 ``brk`` calls a step).
A process that has imported torch happens to have raised the thresholds already; a torch-free one (an env user,
the env worker processes) has not. glibc reads ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` at its
start, so each case runs in a fresh child process, once with the variables unset and once with them set.

The speed tasks are the control: their vector mode rebuilds the reward vectors from the copies' speeds, one
array a step, and does not fault. rmdp itself sets nothing: the thresholds are the process's, not a library's.

    python benchmarks/allocator.py                                  # writes benchmarks/results/allocator/allocator.{json,md}
    python benchmarks/allocator.py --sizes 100 10000 --repeats 1    # a quick look
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

#: the raised thresholds: arrays up to 32 MiB come from the heap, and freed heap up to 64 MiB stays mapped
RAISED = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


@dataclass
class Args:
    env_ids: tuple[str, ...] = ("rmdp/CartPolePosition-v0", "rmdp/TabularRandom-v0", "rmdp/HalfCheetahSpeed-v0")
    """the envs (HalfCheetahSpeed is the control: its vector mode rebuilds the vectors from the speeds)"""
    sizes: tuple[int, ...] = (100, 10_000, 100_000)
    """population sizes n"""
    steps: int = 20_000
    """transitions per measurement (spread over the 16 copies)"""
    repeats: int = 3
    """fresh child processes per case; the best rate is kept (other load only ever slows a run)"""
    out: str = "benchmarks/results/allocator"
    """folder for allocator.json and allocator.md"""


def measure(env_id: str, n: int, steps: int) -> dict:
    """In this process: the 16-copy vector env (k = 4 x m = 4, in-process, vector mode) as env_throughput.py steps it,
    with the minor page faults per batch step."""
    import rmdp_envs  # noqa: PLC0415 - the child imports it under the thresholds it was started with
    from env_throughput import vector_rate  # noqa: PLC0415

    env = rmdp_envs.make_vector_env(env_id, k=4, copies_per_policy=4, env_kwargs={"n_agents": n})
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rate = vector_rate(env, steps)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"steps_per_s": rate, "minor_faults_per_batch_step": faults / max(1, steps // 16)}


def run_child(env_id: str, n: int, steps: int, raised: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in RAISED}
    if raised:
        env.update(RAISED)
    code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from allocator import measure; "
            f"print(json.dumps(measure({env_id!r}, {n}, {steps})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], made: dict, args: Args) -> str:
    lines = ["# The vector env's vector mode under glibc's default and raised malloc thresholds", "",
             f"`python benchmarks/allocator.py`; code of {made['commit']}, {made['machine']}. The 16-copy "
             f"vector env (k = 4 x m = 4, in-process, vector mode, random actions), {args.steps:,} transitions, best of "
             f"{args.repeats} fresh processes per case; raised: `"
             + " ".join(f"{k}={v}" for k, v in RAISED.items()) + "`.", "",
             "| env | n | steps/s, defaults | steps/s, raised | raised / defaults | page faults per step, defaults | raised |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        d, r = row["defaults"], row["raised"]
        lines.append(f"| {row['env_id']} | {row['n']:,} | {d['steps_per_s']:,.0f} | {r['steps_per_s']:,.0f} | "
                     f"{r['steps_per_s'] / d['steps_per_s']:.2f}x | {d['minor_faults_per_batch_step']:.1f} | "
                     f"{r['minor_faults_per_batch_step']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = tyro.cli(Args)
    if args.repeats < 1 or min(args.sizes) < 1:
        sys.exit(f"error: --repeats and --sizes must be at least 1, got {args.repeats} and {' '.join(map(str, args.sizes))}")
    from rmdp_envs.files import atomic_write_json, atomic_write_text  # noqa: PLC0415
    from rmdp_envs.results import provenance  # noqa: PLC0415

    made = provenance(ROOT)
    rows = []
    for env_id in args.env_ids:
        for n in args.sizes:
            row = {"env_id": env_id, "n": n}
            for name, raised in (("defaults", False), ("raised", True)):
                runs = [run_child(env_id, n, args.steps, raised) for _ in range(args.repeats)]
                row[name] = max(runs, key=lambda run: run["steps_per_s"])
                row[name]["all_steps_per_s"] = [run["steps_per_s"] for run in runs]
            print(json.dumps(row), flush=True)
            rows.append(row)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out) / "allocator.json", {**made, "args": asdict(args), "raised": RAISED,
                                                          "rows": rows})
    table = markdown(rows, made, args)
    atomic_write_text(Path(args.out) / "allocator.md", table)
    print(table)


if __name__ == "__main__":
    main()
