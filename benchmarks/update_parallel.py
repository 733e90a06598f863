"""The PPO update with the k policies dealt to processes, beside the solvers' joint update.

On a many-core host the learning phase, not the stepping, bounds a whole run: issue 11's 100,000
transitions/s is a 2M-transition run in 20 s, and the update's minibatch steps run in one process whose
extra torch threads help little at these sizes (64 hidden units, 512 transitions per policy per
minibatch). Every piece of EM's M-step is the policy's own: per-policy means summed over policies,
per-policy advantage normalization and gradient clipping, Adam elementwise; only the early-stop KL of an
epoch's last minibatch looks at all of them. So within an epoch the k updates are independent and could
run in k processes. This measures what that would buy before anything is built:

* ``joint``: all k policies in one process, one batched step (the solvers' way), at each of ``--threads``;
* ``split``: the k policies dealt to P processes (``--processes``) of ``--split-threads`` torch threads
  each, stepping at the same time;
* ``one_policy``: one policy's share alone in this process at ``--split-threads``: the floor of a split
  into k processes on a host with k idle cores (measurable where there are fewer);
* ``compiled`` (with ``--compile``): the joint update with its forward pass and losses compiled by
  ``torch.compile`` (inductor), at each of ``--threads``: its fused kernels cut the small elementwise
  operations that half of a minibatch step is, but they round differently (``same_as_eager``) and the
  compile is paid at every run's start (``compile_s``: the first minibatch step, forward and backward, with
  inductor's on-disk caches off, as a first run on a machine pays it; later runs there pay less).

Both run EM's update (``solvers/em_ppo.py``'s loss, from ``rmdp_train.ppo``) on HalfCheetahSpeed's shapes
(17 observations, 6 actions, n = 100 critic outputs) over random data of a real rollout's size, the same
seeded parameters, data and minibatch orders. The split parameters are checked bit for bit against the
joint update at the same thread count (``same_as_joint``): the split changes no number. Each rate is
projected onto a default 2M run's update (196 iterations x 5 epochs x 4 minibatches; the KL early stop can
only shorten it). The rest of the learning phase (the critic's pass for GAE, E-steps, logging) is not here.

    python benchmarks/update_parallel.py                      # this host's cores; 3 alternating repeats
    python benchmarks/update_parallel.py --threads 1 2 4 8 16 --processes 2 3 5
    python benchmarks/update_parallel.py --compile --processes --out benchmarks/results/update_compile

Writes ``{out}/update_parallel_{cores}.json``.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdp_envs.files import atomic_write_json  # noqa: E402
from rmdp_envs.results import git_commit, hardware, library_versions, provenance, usable_cores  # noqa: E402
from rmdp_train.networks import MultiPolicyAgent  # noqa: E402
from rmdp_train.ppo import clipped_policy_loss, minibatch_order, normalize_per_policy, take, value_loss  # noqa: E402

OBS_DIM, ACT_DIM = 17, 6  # HalfCheetah


@dataclass
class Args:
    threads: Optional[list[int]] = None
    """torch threads of the joint update (default: 1, 2, 4, ... up to this host's usable cores)"""
    processes: Optional[list[int]] = None
    """process counts of the split update (default: 2, 3, 5 where k and the cores allow)"""
    split_threads: int = 1
    """torch threads of each split process"""
    compile: bool = False
    """also time the joint update compiled by torch.compile at each of --threads (rows ``compiled``)"""
    k: int = 5
    """policies"""
    n: int = 100
    """critic outputs (users)"""
    copies_per_policy: int = 8
    """--num-envs of the projected run"""
    num_steps: int = 256
    """--num-steps of the projected run"""
    num_minibatches: int = 4
    """--num-minibatches of the projected run (512 transitions per policy per minibatch at the defaults)"""
    update_epochs: int = 5
    """--update-epochs of the projected run"""
    total_timesteps: int = 2_000_000
    """the projected run's transitions"""
    steps: int = 200
    """timed minibatch steps per measurement (after --warmup)"""
    warmup: int = 20
    """untimed minibatch steps first"""
    repeats: int = 3
    """alternating repeats of every configuration (medians reported)"""
    seed: int = 0
    """parameters, data and minibatch orders"""
    out: str = "benchmarks/results"
    """folder for update_parallel_{cores}.json"""


@dataclass
class Update:
    """One process's share of the M-step: its policies' agent, Adam, data and minibatch orders."""

    agent: MultiPolicyAgent
    optimizer: torch.optim.Optimizer
    batch: dict
    orders: list


def make_update(args: Args, policies: range) -> Update:
    """The joint update's parameters, data and orders, cut to ``policies`` (all of them for the joint update)."""
    torch.manual_seed(args.seed)
    joint = MultiPolicyAgent(args.k, OBS_DIM, ACT_DIM, args.n)
    agent = MultiPolicyAgent(len(policies), OBS_DIM, ACT_DIM, args.n)
    with torch.no_grad():
        for mine, whole in zip(agent.parameters(), joint.parameters()):
            mine.copy_(whole[policies.start:policies.stop])
    N = args.copies_per_policy * args.num_steps
    gen = torch.Generator().manual_seed(args.seed + 1)
    whole = dict(obs=torch.randn(args.k, N, OBS_DIM, generator=gen), actions=torch.randn(args.k, N, ACT_DIM, generator=gen),
                 logprobs=torch.randn(args.k, N, generator=gen) * 0.1 - 5.0, advantages=torch.randn(args.k, N, generator=gen),
                 returns=torch.randn(args.k, N, args.n, generator=gen))
    batch = {name: x[policies.start:policies.stop].contiguous() for name, x in whole.items()}
    rng = np.random.default_rng(args.seed)
    epochs = -(-(args.warmup + args.steps) // args.num_minibatches)
    orders = [minibatch_order(rng, args.k, N, "cpu")[policies.start:policies.stop] for _ in range(epochs)]
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-4, eps=1e-5, foreach=True)
    return Update(agent, optimizer, batch, orders)


def minibatch_loss(agent: MultiPolicyAgent, obs, actions, logprobs, advantages, returns, clip_coef: float,
                   ent_coef: float, vf_coef: float):
    """EM's M-step loss of one minibatch (``solvers/em_ppo.py``), with the log-ratio and ratio its statistics read."""
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(obs, actions)
    logratio = newlogprob - logprobs
    ratio = logratio.exp()
    pg_loss = clipped_policy_loss(normalize_per_policy(advantages), ratio, clip_coef)
    loss = pg_loss - ent_coef * entropy.mean(1).sum() + vf_coef * value_loss(newvalue, returns)
    return loss, logratio.detach(), ratio.detach()


def minibatch_steps(u: Update, first: int, count: int, minibatches: int, clip_coef: float = 0.2,
                    ent_coef: float = 1e-3, vf_coef: float = 0.5, max_grad_norm: float = 0.5,
                    loss_fn=minibatch_loss) -> None:
    """Minibatch steps ``first .. first + count`` of EM's M-step (``solvers/em_ppo.py``), as the solver takes them."""
    b = u.batch
    size = b["obs"].shape[1] // minibatches
    for step in range(first, first + count):
        order = u.orders[step // minibatches]
        start = (step % minibatches) * size
        idx = order[:, start:start + size]
        loss, logratio, ratio = loss_fn(u.agent, take(b["obs"], idx), take(b["actions"], idx), take(b["logprobs"], idx),
                                        take(b["advantages"], idx), take(b["returns"], idx), clip_coef, ent_coef, vf_coef)
        with torch.no_grad():
            ((ratio - 1) - logratio).mean()
            ((ratio - 1.0).abs() > clip_coef).float().mean().item()
        u.optimizer.zero_grad()
        loss.backward()
        u.agent.clip_grad_norm_(max_grad_norm)
        u.optimizer.step()


def parameter_bytes(agent: MultiPolicyAgent) -> list[bytes]:
    return [p.detach().numpy().tobytes() for p in agent.parameters()]


def timed_steps(args: Args, u: Update, loss_fn=minibatch_loss) -> float:
    """Seconds of ``--steps`` minibatch steps after ``--warmup`` untimed ones."""
    minibatch_steps(u, 0, args.warmup, args.num_minibatches, loss_fn=loss_fn)
    start = time.perf_counter()
    minibatch_steps(u, args.warmup, args.steps, args.num_minibatches, loss_fn=loss_fn)
    return time.perf_counter() - start


def compiled_run(args: Args, threads: int) -> tuple[float, list[bytes], float]:
    """``joint_run`` with the loss compiled: its seconds, parameters, and the first step's seconds (the compile)."""
    torch.set_num_threads(threads)
    torch._dynamo.reset()  # compile afresh at every thread count, as a run would,
    torch._inductor.config.force_disable_caches = True  # and cold, as a run's first on a machine: no on-disk kernels
    u = make_update(args, range(args.k))
    loss_fn = torch.compile(minibatch_loss)
    start = time.perf_counter()
    minibatch_steps(u, 0, 1, args.num_minibatches, loss_fn=loss_fn)
    compile_s = time.perf_counter() - start
    minibatch_steps(u, 1, args.warmup - 1, args.num_minibatches, loss_fn=loss_fn)
    start = time.perf_counter()
    minibatch_steps(u, args.warmup, args.steps, args.num_minibatches, loss_fn=loss_fn)
    return time.perf_counter() - start, [p.detach().contiguous().numpy().tobytes() for p in u.agent.parameters()], compile_s


def _split_process(args: Args, policies: range, barrier, results) -> None:
    torch.set_num_threads(args.split_threads)
    u = make_update(args, policies)
    minibatch_steps(u, 0, args.warmup, args.num_minibatches)
    barrier.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable across processes
    minibatch_steps(u, args.warmup, args.steps, args.num_minibatches)
    results.put((policies.start, start, time.perf_counter(), parameter_bytes(u.agent)))


def split_run(args: Args, processes: int) -> tuple[float, list[bytes]]:
    """Wall seconds of the split update (first start to last finish) and its parameters, policies in order."""
    shares = [range(int(part[0]), int(part[-1]) + 1) for part in np.array_split(np.arange(args.k), processes)]
    ctx = mp.get_context("spawn")  # no forked torch thread pools
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_split_process, args=(args, share, barrier, results)) for share in shares]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
        if p.exitcode:
            sys.exit(f"error: a split update process exited with status {p.exitcode}")
    wall = max(end for _, _, end, _ in got) - min(start for _, start, _, _ in got)
    tensors = [b"".join(parts) for parts in zip(*(params for *_, params in got))]
    return wall, tensors


def joint_run(args: Args, threads: int, policies: Optional[range] = None) -> tuple[float, list[bytes]]:
    torch.set_num_threads(threads)
    u = make_update(args, policies or range(args.k))
    seconds = timed_steps(args, u)
    # the split processes hold contiguous rows of every (k, ...) parameter: compare row blocks joined in order
    return seconds, [p.detach().contiguous().numpy().tobytes() for p in u.agent.parameters()]


def md5(tensors: list[bytes]) -> str:
    return hashlib.md5(b"".join(tensors)).hexdigest()[:8]


def check(args: Args, threads: list[int], processes: list[int]) -> Optional[str]:
    """What is wrong with the request, in one line, or None."""
    if args.k < 1 or args.n < 1:
        return "--k and --n must be >= 1"
    if any(not 1 <= p <= args.k for p in processes):
        return f"--processes must lie in [1, k = {args.k}], got {processes}"
    if min(threads) < 1 or args.split_threads < 1:
        return "--threads and --split-threads must be >= 1"
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        return "--steps and --repeats must be >= 1 and --warmup >= 0"
    if args.compile and args.warmup < 1:
        return "--compile needs --warmup >= 1: its first minibatch step is the compile, timed apart"
    if args.num_minibatches < 1 or args.copies_per_policy * args.num_steps % args.num_minibatches:
        return "--num-minibatches must divide --copies-per-policy x --num-steps"
    return None


def main(args: Args) -> None:
    cores = usable_cores()
    threads = args.threads or sorted({t for t in (1, 2, 4, 8, 16, cores) if t <= cores})
    processes = args.processes or [p for p in (2, 3, 5) if p <= min(args.k, cores)]
    problem = check(args, threads, processes)
    if problem:
        sys.exit(f"error: {problem}")
    configs = [("joint", t) for t in threads] + [("split", p) for p in processes] + [("one_policy", args.split_threads)]
    configs += [("compiled", t) for t in threads] if args.compile else []
    seconds: dict = {c: [] for c in configs}
    hashes: dict = {}
    compile_seconds: dict = {c: [] for c in configs}
    for r in range(args.repeats):
        for mode, count in configs:
            if mode == "split":
                wall, tensors = split_run(args, count)
            elif mode == "compiled":
                wall, tensors, compile_s = compiled_run(args, count)
                compile_seconds[(mode, count)].append(compile_s)
            else:
                wall, tensors = joint_run(args, count, range(1) if mode == "one_policy" else None)
            seconds[(mode, count)].append(wall)
            hashes.setdefault((mode, count), md5(tensors))
            print(f"repeat {r}: {mode} {count}: {wall / args.steps * 1e3:.2f} ms per minibatch step", flush=True)
    iterations = -(-args.total_timesteps // (args.k * args.copies_per_policy * args.num_steps))
    steps_2m = iterations * args.update_epochs * args.num_minibatches
    rows = []
    for (mode, count), walls in seconds.items():
        ms = statistics.median(walls) / args.steps * 1e3
        row = {"mode": mode, ("processes" if mode == "split" else "threads"): count, "ms_per_minibatch_step": round(ms, 3),
               "ms_min_max": [round(min(walls) / args.steps * 1e3, 3), round(max(walls) / args.steps * 1e3, 3)],
               "update_s_projected": round(ms * steps_2m / 1e3, 1), "parameters_md5": hashes[(mode, count)]}
        if mode == "one_policy":
            row["update_s_projected_note"] = "a split into k processes with no interference between them"
        if mode == "compiled":
            row["compile_s"] = round(statistics.median(compile_seconds[(mode, count)]), 1)
            row["compile_s_each"] = [round(c, 1) for c in compile_seconds[(mode, count)]]  # repeat 0's first also imports inductor
            row["same_as_eager"] = hashes[(mode, count)] == hashes[("joint", count)]
        if mode == "split":
            row["threads_each"] = args.split_threads
            reference = hashes.get(("joint", args.split_threads))
            row["same_as_joint"] = None if reference is None else reference == hashes[(mode, count)]
        rows.append(row)
    report = {"machine": hardware(), "cores": cores, "commit": git_commit(ROOT), "versions": library_versions(),
              "shapes": {"k": args.k, "n": args.n, "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": 64,
                         "minibatch_per_policy": args.copies_per_policy * args.num_steps // args.num_minibatches},
              "projected_run": {"total_timesteps": args.total_timesteps, "iterations": iterations,
                                "minibatch_steps": steps_2m},
              "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed, "rows": rows,
              "note": "medians of alternating repeats; same_as_joint compares the split parameters bit for bit with "
                      "the joint update at the split processes' thread count; update_s_projected is the update's "
                      "minibatch steps alone (no GAE critic pass, E-step or logging), before any KL early stop; "
                      "compiled rows: compile_s is the median first minibatch step (forward and backward compiled), "
                      "same_as_eager compares their parameters bit for bit with the eager joint update's"}
    path = Path(args.out) / f"update_parallel_{cores}.json"
    atomic_write_json(path, {**report, "provenance": provenance(ROOT)})
    for row in rows:
        print(row)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(tyro.cli(Args))
