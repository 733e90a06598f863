"""Where one minibatch step of EM's update goes: its phases timed, and torch.profiler's operator table.

The update bounds a whole run once the rollouts are fast (README "Cores"); before changing it, see which part
costs: the minibatch's rows, the forward pass, the loss, the backward pass, gradient clipping, Adam. Same
shapes, data and loss as ``benchmarks/update_parallel.py`` (HalfCheetahSpeed, n = 100, k = 5, 512 transitions per
policy per minibatch).

    python benchmarks/update_profile.py --threads 1 --out benchmarks/results/update_compile/update_profile_1thread.txt

Writes a text file: the phases' mean milliseconds per step, then the profiler's table by self CPU time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from rmdp_envs.results import git_commit, hardware  # noqa: E402
from rmdp_train.ppo import take  # noqa: E402
from update_parallel import Args as UpdateArgs, make_update, minibatch_loss, minibatch_steps  # noqa: E402


@dataclass
class Args:
    threads: int = 1
    """torch threads"""
    steps: int = 200
    """timed minibatch steps (after 20 untimed ones)"""
    profiled_steps: int = 100
    """minibatch steps under torch.profiler"""
    out: str = "benchmarks/results/update_compile/update_profile_1thread.txt"
    """the text file written"""


PHASES = ("rows", "forward and loss", "statistics", "zero_grad", "backward", "clip", "adam")


def phase_seconds(u, first: int, count: int, minibatches: int, clip_coef=0.2, ent_coef=1e-3, vf_coef=0.5,
                  max_grad_norm=0.5) -> dict:
    """``update_parallel.minibatch_steps`` with a clock between its phases: each phase's total seconds."""
    totals = dict.fromkeys(PHASES, 0.0)
    b, clock = u.batch, time.perf_counter
    size = b["obs"].shape[1] // minibatches
    for step in range(first, first + count):
        t0 = clock()
        start = (step % minibatches) * size
        idx = u.orders[step // minibatches][:, start:start + size]
        rows = [take(b[name], idx) for name in ("obs", "actions", "logprobs", "advantages", "returns")]
        t1 = clock()
        loss, logratio, ratio = minibatch_loss(u.agent, *rows, clip_coef, ent_coef, vf_coef)
        t2 = clock()
        with torch.no_grad():
            ((ratio - 1) - logratio).mean()
            ((ratio - 1.0).abs() > clip_coef).float().mean().item()
        t3 = clock()
        u.optimizer.zero_grad()
        t4 = clock()
        loss.backward()
        t5 = clock()
        u.agent.clip_grad_norm_(max_grad_norm)
        t6 = clock()
        u.optimizer.step()
        t7 = clock()
        for name, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            totals[name] += seconds
    return totals


def main(args: Args) -> None:
    if args.threads < 1 or args.steps < 1 or args.profiled_steps < 1:
        sys.exit("error: --threads, --steps and --profiled-steps must be >= 1")
    torch.set_num_threads(args.threads)
    shapes = UpdateArgs(steps=args.steps + args.profiled_steps, warmup=20)
    u = make_update(shapes, range(shapes.k))
    minibatch_steps(u, 0, 20, shapes.num_minibatches)
    totals = phase_seconds(u, 20, args.steps, shapes.num_minibatches)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        minibatch_steps(u, 20 + args.steps, args.profiled_steps, shapes.num_minibatches)
    lines = [f"# {__doc__.splitlines()[0]}", f"# {hardware()}, torch {torch.__version__}, {args.threads} thread(s), "
             f"commit {git_commit(ROOT)}", f"# phases: mean ms per minibatch step over {args.steps} steps"]
    lines += [f"{name:>18}: {seconds / args.steps * 1e3:.3f}" for name, seconds in totals.items()]
    lines += [f"{'total':>18}: {sum(totals.values()) / args.steps * 1e3:.3f}", "",
              f"# torch.profiler over {args.profiled_steps} minibatch steps, by self CPU time",
              prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:len(PHASES) + 4]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__.split("\n\n")[0]))
