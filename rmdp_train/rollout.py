"""Rollouts of k policies on their policy-major env copies: where the policies run, and what a rollout holds.

Two samplers with one interface (``reset(seed)``, ``collect(agent, state) -> Rollout``, ``close()``),
chosen by ``--rollout``:

* :class:`MainProcessSampler` (``main``, the default): this process runs all policies in one
  batched forward pass per step and steps the copies through a vector env (with ``--num-workers``
  env workers beside it). Observation statistics are updated after every step.
* :class:`WorkerSampler` (``workers``): each worker process owns a contiguous slice of the copies
  *and a copy of the policies*, and runs the whole rollout of ``num_steps`` steps on its own;
  this process only learns. Profiles of the main-process design (``docs/cores.md``) showed its one
  Python thread (the policies' forward pass, the bookkeeping and the pipes of every step) bounding
  the run while the env workers waited; here the per-step work is spread over the workers, and
  the processes talk once per rollout. PPO stays on-policy: the workers act with the weights of
  the iteration's start, exactly the policy being updated. The observation statistics follow
  ``main`` step by step: after every step each worker writes its copies' raw observations into one
  shared array, waits for the others (a barrier), and every worker applies the same update to its
  own copy of the statistics, so they stay equal to what ``main`` computes. The action noise is
  drawn here, from torch's generator, in the order and shapes ``main`` draws it, and sent to the
  workers with the weights. So ``workers`` gives ``main``'s numbers, bit for bit (tested), and
  neither depends on how many workers share the copies. (Noise drawn per copy in the workers from
  its own seeded generator was tried first: learning then differed from ``main``, which left the
  two modes to be compared seed by seed; equal numbers leave nothing to compare.)

``--norm-obs-update rollout`` (a different learner) freezes the statistics while a rollout runs and
updates them once at its end with all of its observations: both samplers then hold the raw
observations (:func:`holds_observations`), the workers meet no barrier and send theirs back whole,
and ``workers`` again gives ``main``'s numbers bit for bit.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import NamedTuple

import numpy as np
import torch

from rmdp_envs.registration import make
from rmdp_envs.results import usable_cores
from rmdp_envs.vector import (RMDPVectorEnv, close_workers, make_vector_env, receive_all, refuse_unguarded_start,
                               serve_commands, split_copies, start_workers)
from rmdp_train.networks import gaussian_log_prob
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.policies import _build
from rmdp_train.users import TRACKER_REWARDS

class Rollout(NamedTuple):
    """One rollout, ``T`` steps of ``E`` copies (policy-major), as the PPO update reads it."""

    obs: torch.Tensor  # (T, E, obs_dim) normalized observations the policies saw
    actions: torch.Tensor  # (T, E, act_dim), or (T, E) for discrete actions
    logprobs: torch.Tensor  # (T, E)
    rewards: torch.Tensor  # (T, E, outputs): what the critic learns (UserTracker.step)
    ends: torch.Tensor  # (T, E) 1.0 where an episode ended (terminated or truncated)
    truncated_finals: list  # (step, copy, normalized final obs) of time-limit truncations
    next_obs: torch.Tensor  # (E, obs_dim) the observation after the last step


class _Buffers:
    """The preallocated tensors a sampler fills each rollout."""

    def __init__(self, T: int, E: int, obs_dim: int, act_dim: int, discrete: bool, outputs: int, device):
        self.act_shape = (T, E) if discrete else (T, E, act_dim)
        self.obs = torch.zeros((T, E, obs_dim), device=device)
        self.actions = torch.zeros(self.act_shape, device=device)
        self.logprobs = torch.zeros((T, E), device=device)
        self.rewards = torch.zeros((T, E, outputs), device=device)
        self.ends = torch.zeros((T, E), device=device)


def holds_observations(args) -> bool:
    """Whether a rollout's raw observations are held until it ends and then update the statistics at once
    (``--norm-obs-update rollout``, with ``--norm-obs``), instead of every step's as it comes (``step``)."""
    return args.norm_obs_update == "rollout" and bool(args.norm_obs)


class MainProcessSampler:
    """The policies run here, one batched forward pass of all ``K`` policies per step (``--rollout main``)."""

    def __init__(self, args, run, K: int, copies: int, users, obs_rms: RunningMeanStd, device):
        env = run.env
        self.envs = make_vector_env(args.env_id, K, copies, run.env_kwargs, num_workers=args.num_workers,
                                    main_share=args.main_share, rewards=TRACKER_REWARDS)
        self.K, self.m, self.E, self.T = K, copies, K * copies, args.num_steps
        self.env, self.users, self.obs_rms, self.device = env, users, obs_rms, device
        self.bootstrap_truncated = args.bootstrap_truncated
        self.policy_index = self.envs.policy_index  # each copy's policy
        self.buf = _Buffers(self.T, self.E, env.obs_dim, env.act_dim, env.discrete, users.outputs, device)
        self.held = np.zeros((self.T, self.E, env.obs_dim)) if holds_observations(args) else None

    def reset(self, seed: int) -> None:
        raw_obs, _ = self.envs.reset(seed=seed)
        self.obs_rms.update(raw_obs)
        self.next_obs = torch.as_tensor(self.obs_rms.normalize(raw_obs), device=self.device)

    def collect(self, agent, state) -> Rollout:
        state.lap("learning")  # everything since the last rollout: the update, the E-step, logging
        buf, env, obs_rms, E = self.buf, self.env, self.obs_rms, self.E
        truncated_finals = []
        next_obs = self.next_obs
        for step in range(self.T):
            state.global_step += E
            buf.obs[step] = next_obs
            with torch.no_grad():
                action, logprob = agent.get_action(next_obs.view(self.K, self.m, env.obs_dim))
            buf.actions[step] = action.reshape(buf.act_shape[1:])
            buf.logprobs[step] = logprob.reshape(E)
            env_action = action.reshape(buf.act_shape[1:]).cpu().numpy()
            if not env.discrete:
                env_action = np.clip(env_action, env.action_low, env.action_high)
            raw_obs, reward, terminations, truncations, infos = self.envs.step(env_action)
            buf.rewards[step] = torch.as_tensor(self.users.step(reward, terminations | truncations, state), device=self.device)
            buf.ends[step] = torch.as_tensor(terminations | truncations, device=self.device, dtype=torch.float32)
            if self.bootstrap_truncated:
                for e in np.flatnonzero(truncations & ~terminations):
                    truncated_finals.append((step, e, obs_rms.normalize(infos["final_obs"][e])))
            if self.held is None:
                obs_rms.update(raw_obs)
            else:
                self.held[step] = raw_obs
            next_obs = torch.as_tensor(obs_rms.normalize(raw_obs), device=self.device)
        if self.held is not None:  # the rollout's observations at once; the next one starts from the new statistics
            obs_rms.update(self.held)
            next_obs = torch.as_tensor(obs_rms.normalize(raw_obs), device=self.device)
        self.next_obs = next_obs
        state.lap("rollout")
        return Rollout(buf.obs, buf.actions, buf.logprobs, buf.rewards, buf.ends, truncated_finals, next_obs)

    def close(self) -> None:
        self.envs.close()


class WorkerSampler:
    """Each env worker runs the policies on its own copies for a whole rollout (``--rollout workers``).

    ``--num-workers`` processes split the ``K * copies`` copies into contiguous slices (this
    process steps none). Per rollout this process sends each worker the actor's weights and the
    observation statistics, and receives the worker's whole rollout in one message.
    """

    def __init__(self, args, run, K: int, copies: int, users, obs_rms: RunningMeanStd, actor, device,
                 context: str = "forkserver"):
        env = run.env
        self.K, self.m, self.E, self.T = K, copies, K * copies, args.num_steps
        self.env, self.users, self.obs_rms, self.device = env, users, obs_rms, device
        self.bootstrap_truncated = args.bootstrap_truncated
        self.policy_index = np.repeat(np.arange(K), copies)  # each copy's policy
        self.buf = _Buffers(self.T, self.E, env.obs_dim, env.act_dim, env.discrete, users.outputs, device)
        refuse_unguarded_start()
        self._slices = split_copies(self.E, int(args.num_workers), 0.0)[1:]
        spec = dict(env_id=args.env_id, env_kwargs=run.env_kwargs, K=K, copies=copies, T=self.T,
                    architecture=actor.architecture(), discrete=env.discrete, action_low=env.action_low,
                    action_high=env.action_high, obs_clip=obs_rms.clip, obs_epsilon=obs_rms.epsilon,
                    norm_obs=obs_rms.enabled, hold_observations=holds_observations(args))
        self.hold = spec["hold_observations"]
        ctx = mp.get_context(context)
        # every step's raw observations of all copies, for the statistics (two, alternating by step parity:
        # one barrier per step then keeps a fast worker from overwriting a step others still read)
        shared = [ctx.RawArray("d", self.E * env.obs_dim) for _ in range(2)]
        barrier = StepBarrier(ctx, len(self._slices))
        self._pipes, self._procs = start_workers(
            ctx, _rollout_worker, [(spec, sl.start, sl.stop, shared, barrier, index) for index, sl in enumerate(self._slices)])
        self._receive_all(starting=True)

    def _receive_all(self, starting: bool = False) -> list:
        return receive_all(self._pipes, self.close, starting, "rollout worker")

    def reset(self, seed: int) -> None:
        """Fresh episodes in every copy (copy ``i`` seeded ``seed + i``, Gymnasium's convention)."""
        for pipe, sl in zip(self._pipes, self._slices):
            pipe.send(("reset", seed + sl.start))
        raw_obs = np.concatenate(self._receive_all())
        self.obs_rms.update(raw_obs)

    def collect(self, agent, state) -> Rollout:
        state.lap("learning")  # everything since the last rollout: the update, the E-step, logging
        started = time.perf_counter()
        buf, obs_rms, T, E = self.buf, self.obs_rms, self.T, self.E
        weights = {name: t.detach().cpu().numpy().copy() for name, t in agent.actor.state_dict().items()}
        # the noise main would draw, step by step: the Gaussian's, or the uniforms behind the Gumbel trick
        shape = (self.K, self.m, self.env.out_dim)
        draw = torch.rand if self.env.discrete else torch.randn
        noise = torch.stack([draw(shape) for _ in range(T)]).reshape(T, E, -1).numpy()
        for pipe, sl in zip(self._pipes, self._slices):
            pipe.send(("collect", (weights, obs_rms.state_dict(), noise[:, sl])))
        sent = time.perf_counter()
        parts = self._receive_all()
        received = time.perf_counter()
        state.global_step += T * E

        def cat(key):
            return np.concatenate([p[key] for p in parts], axis=1)

        buf.obs.copy_(torch.from_numpy(cat("obs")))
        buf.actions.copy_(torch.from_numpy(cat("actions")).reshape(buf.act_shape))
        buf.logprobs.copy_(torch.from_numpy(cat("logprobs")))
        terminations, truncations = cat("terminations"), cat("truncations")
        ends = terminations | truncations
        # the users' side in step order, as if stepped here; the statistics as every worker updated them
        buf.rewards.copy_(torch.from_numpy(self.users.steps(cat("stats"), ends, state)))
        if self.hold:  # the rollout's observations at once, as main updates them; the next rollout starts from these
            obs_rms.update(cat("held"))
            next_obs = obs_rms.normalize(np.concatenate([p["last_raw"] for p in parts]))
        else:
            if any(not np.array_equal(p["obs_rms"]["mean"], parts[0]["obs_rms"]["mean"]) for p in parts[1:]):
                raise RuntimeError("rollout workers disagree on the observation statistics")  # they apply the same updates
            obs_rms.load_state_dict(parts[0]["obs_rms"])
            next_obs = np.concatenate([p["next_obs"] for p in parts])
        buf.ends.copy_(torch.from_numpy(ends.astype(np.float32)))
        truncated_finals = []
        if self.bootstrap_truncated:
            finals = {(t, sl.start + c): final for p, sl in zip(parts, self._slices) for t, c, final in p["finals"]}
            for t, e in zip(*np.nonzero(truncations & ~terminations)):
                truncated_finals.append((int(t), int(e), finals[(t, e)]))
        next_obs = torch.as_tensor(next_obs, device=self.device)
        state.add_rollout_seconds({"main_before": sent - started, "main_waiting": received - sent,
                                   "main_after": time.perf_counter() - received}, [p["seconds"] for p in parts])
        state.lap("rollout")
        return Rollout(buf.obs, buf.actions, buf.logprobs, buf.rewards, buf.ends, truncated_finals, next_obs)

    def close(self) -> None:
        close_workers(self._pipes, self._procs)
        self._pipes, self._procs = [], []


class _RolloutWorker:
    """Copies ``[start, stop)`` of the policy-major layout in one process: their envs, the policies, whole rollouts."""

    def __init__(self, spec: dict, start: int, stop: int, shared: list, barrier: "StepBarrier", index: int):
        torch.set_num_threads(1)  # one process per core
        self.spec, self.T, m = spec, spec["T"], spec["copies"]
        self.envs = RMDPVectorEnv([lambda: make(spec["env_id"], **spec["env_kwargs"]) for _ in range(stop - start)], k=1,
                                  rewards=TRACKER_REWARDS)
        self.actor = _build(spec["architecture"], "a rollout worker's actor").eval()
        self.copies = np.arange(start, stop)
        policy = self.copies // m
        self.first, self.last = int(policy.min()), int(policy.max()) + 1  # the policies these copies follow
        # the grouped input holds policies first..last-1, m rows each; these copies are one contiguous run of its rows
        self.group = torch.as_tensor(policy - self.first)
        self.offset = start - self.first * m
        self.discrete = spec["discrete"]
        self.rms = RunningMeanStd((self.actor.obs_dim,), clip=spec["obs_clip"], epsilon=spec["obs_epsilon"],
                                  enabled=spec["norm_obs"])
        self.raw_obs = None
        # --norm-obs-update rollout: statistics frozen during a rollout, no barrier; the raw observations go back whole
        self.held = np.zeros((self.T, stop - start, self.actor.obs_dim)) if spec["hold_observations"] else None
        self.start, self.stop, self.barrier, self.index = start, stop, barrier, index
        self.shared = [np.frombuffer(array, dtype=np.float64).reshape(-1, self.actor.obs_dim) for array in shared]

    def _update_statistics(self, t: int, raw_obs: np.ndarray) -> float:
        """The statistics updated with step ``t``'s raw observations of *all* copies (the same update in every worker).
        Returns the seconds spent waiting for the other workers."""
        if not self.rms.enabled:
            return 0.0
        all_obs = self.shared[t % 2]
        all_obs[self.start:self.stop] = raw_obs
        arrived = time.perf_counter()
        self.barrier.wait(self.index)
        waited = time.perf_counter() - arrived
        self.rms.update(all_obs)
        return waited

    def reset(self, seed: int) -> np.ndarray:
        self.raw_obs, _ = self.envs.reset(seed=seed)
        return self.raw_obs

    @torch.no_grad()
    def collect(self, weights: dict, statistics: dict, noise: np.ndarray) -> dict:
        """``T`` steps of these copies with the given weights and action noise ``(T, copies, out_dim)``, from the
        given observation statistics."""
        self.actor.load_state_dict({name: torch.from_numpy(w) for name, w in weights.items()})
        self.rms.load_state_dict(statistics)
        T, count, obs_dim, discrete, spec = self.T, len(self.copies), self.actor.obs_dim, self.discrete, self.spec
        policies, rows = slice(self.first, self.last), slice(self.offset, self.offset + count)
        noise = torch.from_numpy(noise)
        out = {"obs": np.empty((T, count, obs_dim), dtype=np.float32),
               "actions": np.empty((T, count) if discrete else (T, count, self.actor.out_dim), dtype=np.float32),
               "logprobs": np.empty((T, count), dtype=np.float32), "stats": None,
               "terminations": np.empty((T, count), dtype=bool), "truncations": np.empty((T, count), dtype=bool),
               "finals": []}
        grouped = torch.zeros((self.last - self.first, spec["copies"], obs_dim))
        grouped_rows = grouped.view(-1, obs_dim)[rows]  # these copies' rows of the policies' input
        layers = self.actor.layers(policies)  # these policies' weights, sliced once for the whole rollout
        if not discrete:
            heads = torch.empty((T, count, self.actor.out_dim))  # each copy's Gaussian mean, every step
            log_std = self.actor.log_std[self.group + self.first]
            std = log_std.exp()
        raw_obs, stats = self.raw_obs, []
        clock = time.perf_counter
        started, stepping, waiting = clock(), 0.0, 0.0  # where a worker's rollout goes (result.json's rollout_seconds)
        for t in range(T):
            obs = self.rms.normalize(raw_obs)
            out["obs"][t] = obs
            grouped_rows.copy_(torch.from_numpy(obs))
            head = self.actor.apply_layers(layers, grouped).view(-1, self.actor.out_dim)[rows]  # each copy's own policy
            if discrete:
                logp_all = torch.log_softmax(head, dim=-1)
                gumbel = -torch.log(-torch.log(noise[t].clamp(1e-20, 1.0)))  # as MultiPolicyAgent.get_action
                action = (logp_all + gumbel).argmax(dim=-1)
                out["logprobs"][t] = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1).numpy()
                env_action = action.numpy()
            else:
                heads[t] = head
                action = head + std * noise[t]
                env_action = np.clip(action.numpy(), spec["action_low"], spec["action_high"])
            out["actions"][t] = action.numpy()
            before_step = clock()
            raw_obs, reward, out["terminations"][t], out["truncations"][t], infos = self.envs.step(env_action)
            stepping += clock() - before_step
            stats.append(reward)
            if "final_obs" in infos:  # before this step's update, as main
                for c in np.flatnonzero(out["truncations"][t] & ~out["terminations"][t]):
                    out["finals"].append((t, int(c), self.rms.normalize(infos["final_obs"][c])))
            if self.held is None:
                waiting += self._update_statistics(t, raw_obs)
            else:
                self.held[t] = raw_obs
        if not discrete:  # the whole rollout's log-probabilities at once: elementwise, the same numbers as step by step
            out["logprobs"][:] = gaussian_log_prob(heads, log_std, torch.from_numpy(out["actions"])).numpy()
        self.raw_obs = raw_obs
        out["stats"] = np.stack(stats)
        if self.held is None:
            out["next_obs"], out["obs_rms"] = self.rms.normalize(raw_obs), self.rms.state_dict()
        else:
            out["held"], out["last_raw"] = self.held, raw_obs
        out["seconds"] = {"loop": clock() - started, "env_step": stepping, "barrier": waiting}
        return out


#: How long a worker waits for the others at a step before giving up (a worker that died never arrives).
BARRIER_TIMEOUT_S = 300.0


#: How long a worker polls the barrier's semaphore before it sleeps on it (:class:`StepBarrier`).
BARRIER_SPIN_S = 0.002


class StepBarrier:
    """A barrier for worker processes that meet once per env step, on semaphores.

    ``multiprocessing.Barrier`` (a condition variable) cost 190 us per wait between two processes
    on the 2-core machine; this one, 48 us (a microbenchmark of 20,000 waits, in the commit message):
    worker 0 collects one ``arrived`` token from every other worker, then releases each its own
    ``go`` token (one per worker, so a fast worker cannot take a slow one's). Semaphores also order
    the memory writes before them, which the shared observation arrays rely on. ``abort()`` wakes
    everyone with :class:`threading.BrokenBarrierError`, as a failing worker must.

    A waiter first polls its semaphore (non-blocking, yielding the core between polls) for up to
    ``spin_s`` seconds and only then sleeps on it: in a rollout the barrier is met every step,
    some 800 us of work apart, and a sleeping worker's wake-up cost the two workers of the 2-core
    machine 15 of their 55 us per transition (HalfCheetah, 20 copies each); polling, 5 to 6.
    ``spin_s`` defaults to ``BARRIER_SPIN_S`` where every party has a core of its own, else 0
    (a poller would take the core of the worker it waits for).
    """

    def __init__(self, ctx, parties: int, spin_s: float | None = None):
        self.parties = parties
        self.arrived = ctx.Semaphore(0)
        self.go = [ctx.Semaphore(0) for _ in range(parties)]
        self.broken = ctx.RawValue("b", 0)
        if spin_s is None:
            spin_s = BARRIER_SPIN_S if parties <= usable_cores() else 0.0
        self.spin_s = float(spin_s)

    def _acquire(self, semaphore) -> None:
        deadline = time.perf_counter() + self.spin_s
        acquired = semaphore.acquire(False)
        while not acquired and time.perf_counter() < deadline:  # poll, yielding the core between tries
            os.sched_yield()
            acquired = semaphore.acquire(False)
        if not (acquired or semaphore.acquire(timeout=BARRIER_TIMEOUT_S)) or self.broken.value:
            raise threading.BrokenBarrierError("another rollout worker failed or stopped answering")

    def wait(self, index: int) -> None:
        if index == 0:
            for _ in range(self.parties - 1):
                self._acquire(self.arrived)
            for go in self.go[1:]:
                go.release()
        else:
            self.arrived.release()
            self._acquire(self.go[index])

    def abort(self) -> None:
        self.broken.value = 1
        for _ in range(self.parties):
            self.arrived.release()
        for go in self.go:
            go.release()


def _rollout_worker(pipe, spec: dict, start: int, stop: int, shared: list, barrier: StepBarrier, index: int) -> None:
    """A worker process: builds a :class:`_RolloutWorker` and answers the parent's commands."""
    serve_commands(pipe, lambda: _RolloutWorker(spec, start, stop, shared, barrier, index),
                   {"reset": lambda worker, seed: worker.reset(seed),
                    "collect": lambda worker, data: worker.collect(*data)},
                   close=lambda worker: worker.envs.close(),
                   on_error=barrier.abort)  # the others, waiting at a step, fail too instead of waiting for this one


def make_sampler(args, run, K: int, copies: int, users, obs_rms: RunningMeanStd, actor, device):
    """The sampler ``--rollout`` names, for ``K`` policies of ``copies`` copies each."""
    if args.rollout == "workers":
        return WorkerSampler(args, run, K, copies, users, obs_rms, actor, device)
    return MainProcessSampler(args, run, K, copies, users, obs_rms, device)
