"""A solver run's plumbing: checked flags, run folder, seeding, evaluation, logging and result.

:class:`Run` is what a solver file creates first and uses for everything that is not its
algorithm: it validates the flags (one ``error:`` line, nothing written, on bad input), knows the
environment's shapes (:class:`EnvInfo`), owns the run folder and TensorBoard writer, evaluates the
live policies through the same code path as saved ones, and writes :class:`rmdp_envs.RunResult`.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.utils.tensorboard import SummaryWriter

import rmdp_envs
from rmdp_envs import RunResult
from rmdp_envs.files import atomic_write_json, writable_place
from rmdp_envs.population import Population
from rmdp_envs.rewards import user_rewards_of
from rmdp_envs.results import available_memory, git_commit, hardware, has_final_result, library_versions, usable_cores
from rmdp_envs.vector import copy_bytes, start_forkserver
from rmdp_train.args import PPOArgs, saved_args
from rmdp_train.checkpoint import TrainState, checkpoint_iteration
from rmdp_train.cli import check_env_arguments, check_ranges, check_run_args, env_kwargs_from, fail
from rmdp_train.normalization import RunningMeanStd
from rmdp_train.policies import MultiPolicyActor, PolicySet, policy_spec, save_policies
from rmdp_train.users import user_bins
from rmdp_train.video import VIDEO_FILE, check_filmable, record_policies


@dataclass(frozen=True)
class EnvInfo:
    """What the networks and buffers need to know about an environment."""

    n: int
    population: Population  # the object, not its dict: a tabular task's is n x S x A numbers (a GB as Python floats at 10^6)
    discrete: bool
    obs_dim: int
    act_dim: int
    out_dim: int  # logits or Gaussian mean
    reward_dim: int  # width of the reward statistic (rmdp_envs.rewards): 1 for the speed tasks, n in general
    action_low: np.ndarray | None
    action_high: np.ndarray | None

    @classmethod
    def of(cls, env) -> "EnvInfo":
        discrete = not hasattr(env.action_space, "low")
        act_dim = 1 if discrete else int(np.prod(env.action_space.shape))
        return cls(n=env.unwrapped.population.n, population=env.unwrapped.population, discrete=discrete,
                   obs_dim=int(np.prod(env.observation_space.shape)), act_dim=act_dim,
                   out_dim=int(env.action_space.n) if discrete else act_dim,
                   action_low=None if discrete else env.action_space.low,
                   action_high=None if discrete else env.action_space.high, reward_dim=user_rewards_of(env).dim)


def default_update_threads(rollout: str, environ=os.environ) -> int:
    """``--update-threads`` left unset: ``OMP_NUM_THREADS`` where the user set it, else 2, or with ``--rollout
    workers`` the usable cores up to 8.

    ``OMP_NUM_THREADS`` is how a user says how many threads each process may use, typically when several
    runs share a machine; the update must not override it. EM and random started together on ResourceGathering
    (100k transitions each, 2 cores; ``benchmarks/concurrent_runs.py``, ``concurrent_runs.json``) took 204.9 s
    with 2-thread updates each against 8.1 s with ``OMP_NUM_THREADS=1``: torch's OpenMP threads spin-wait for a
    partner thread that another run holds (learning 199 s instead of 2).
    With ``--rollout main`` the update has otherwise always run on 2 threads (kept: thread counts can change
    the last bits of an update). With ``--rollout workers`` every worker waits during the update;
    measured on the lent 16-core host with the first version of that mode (same update code;
    ``benchmarks/results/rollout_workers/frozen_statistics/``): 8 threads 34,760 transitions/s
    against 28,710 with 2, one call; more than 8 not measured.
    """
    budget = environ.get("OMP_NUM_THREADS", "").strip()
    if budget.isdigit() and int(budget) > 0:
        return int(budget)
    if rollout != "workers":
        return 2
    return max(1, min(8, usable_cores()))


class Run:
    """One solver run: flags checked, folder created, seeds set (see the module docstring).

    ``positive`` / ``non_negative`` / ``unit_interval`` / ``seeds`` name the solver's own flags that must be
    > 0 / >= 0 / in [0, 1] / a seed numpy and Gymnasium take, on top of the shared ones (``None``: unset). The ``--rollout`` modes the solver implements are its ``Args.rollouts``.
    """

    def __init__(self, args: PPOArgs, solver: str, positive: dict | None = None, non_negative: dict | None = None,
                 unit_interval: dict | None = None, seeds: dict | None = None):
        self.args, self.solver = args, solver
        self.device: torch.device | None = None  # set by seed()
        # the code this process runs: read at start, since a commit (or an edit) during a long run would otherwise
        # be recorded as the code that produced its result
        self.commit = git_commit()
        self.interrupted = False  # set by the first Ctrl-C or SIGTERM (_watch_ctrl_c); checkpoint() then stops the run
        self._stop_signal = signal.SIGINT  # which of them: the exit status is 128 + it
        self._previous_handlers: dict[int, Any] = {}
        rollouts = type(args).rollouts
        if args.rollout not in rollouts:
            fail(f"--rollout {args.rollout}: the {solver} solver supports {' and '.join(rollouts)} only")
        check_ranges(positive=dict(adam_eps=args.adam_eps, clip_coef=args.clip_coef, max_grad_norm=args.max_grad_norm,
                                   hidden_size=args.hidden_size),
                     non_negative=dict(learning_rate_end=args.learning_rate_end, ent_coef=args.ent_coef,
                                       ent_coef_end=args.ent_coef_end, vf_coef=args.vf_coef, target_kl=args.target_kl),
                     finite=dict(init_log_std=args.init_log_std),
                     unit_interval=dict(gamma=args.gamma, gae_lambda=args.gae_lambda, utility_ema=args.utility_ema,
                                        **(unit_interval or {})),
                     seeds=dict(seed=args.seed, eval_seed=args.eval_seed, population_seed=args.population_seed,
                                **(seeds or {})))
        if args.ent_coef and args.ent_coef_end == 0:
            fail("--ent-coef-end 0: the entropy coefficient anneals geometrically from --ent-coef, so it would be 0 from "
                 "the second iteration on; give a small positive end (e.g. 1e-5), or --ent-coef 0 for no bonus at all")
        check_output_place(args.output_dir, args.exp_name)
        if args.track and importlib.util.find_spec("wandb") is None:
            fail("--track logs to Weights & Biases, which is not installed: pip install -e .[track] (or pip install wandb; or leave out --track)")
        self.env_kwargs = env_kwargs_from(args.n_agents, args.population, args.population_seed, args.env_kwargs)
        check_env_arguments(args.env_id, self.env_kwargs)  # before the memory estimate: the env and its arguments
        if args.update_threads is None:
            args.update_threads = default_update_threads(args.rollout)
        if args.n_agents:  # before the probe env samples n users: the least any environment needs (dim 1)
            self._check_memory(args.n_agents, 1)
        probe = check_run_args(
            args.env_id, self.env_kwargs, args.k, args.total_timesteps,
            positive=dict(num_envs=args.num_envs, num_steps=args.num_steps, num_minibatches=args.num_minibatches,
                          update_epochs=args.update_epochs, learning_rate=args.learning_rate,
                          eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every,
                          torch_threads=args.torch_threads, update_threads=args.update_threads, critic_bins=args.critic_bins, **(positive or {})),
            non_negative=dict(eval_every=args.eval_every, num_workers=args.num_workers,
                              interrupt_after=args.interrupt_after, **(non_negative or {})))
        if args.main_share is not None and not 0 <= args.main_share < 1:
            probe.close()
            fail(f"--main-share must lie in [0, 1), got {args.main_share}")
        if args.main_share is not None and args.num_workers == 0:
            probe.close()
            fail("--main-share is the main process's share beside env workers: it needs --num-workers >= 1, got 0")
        if args.rollout == "workers" and args.num_workers < 1:
            probe.close()
            fail(f"--rollout workers runs the policies in the env workers: it needs --num-workers >= 1, got {args.num_workers}")
        if args.rollout == "workers" and args.main_share is not None:
            probe.close()
            fail("--main-share applies to --rollout main only: with --rollout workers the workers step every copy")
        self.env = EnvInfo.of(probe)
        self.user_rewards = user_rewards_of(probe)  # what a UserTracker reads (the vector envs' own description)
        twin = rmdp_envs.make(args.env_id, **self.env_kwargs)  # does a second copy share the first one's users?
        self.copies_share_users = twin.unwrapped.population is probe.unwrapped.population
        twin.close()
        probe.close()
        if args.capture_video:  # now, not after training: an env that cannot render, or no OpenGL
            try:
                check_filmable(args.env_id, self.env_kwargs)
            except (ValueError, RuntimeError) as e:
                fail(f"--capture-video: {e}")
        m = args.num_envs
        if args.num_steps * m % args.num_minibatches:
            fail(f"--num-minibatches {args.num_minibatches} must divide num_steps * num_envs = {args.num_steps * m}")
        args.batch_size = args.k * m * args.num_steps
        args.minibatch_size = args.num_steps * m // args.num_minibatches
        args.num_iterations = math.ceil(args.total_timesteps / args.batch_size)
        self.resumed = args.resume is not None
        if self.resumed and fully_trained(args.resume, args.num_iterations):
            print(f"{args.resume}: finished already ({args.num_iterations} iterations; result.json is final): nothing to "
                  "continue, nothing rewritten")
            raise SystemExit(0)
        self._check_memory(self.env.n, self.env.reward_dim, self.env.population.params.shape[1], self.copies_share_users)
        if args.num_workers:  # the workers' imports, done once in the fork server while this process builds the learner
            start_forkserver(also=("rmdp_train.rollout", "rmdp_train.run"))

    def check_evaluation_memory(self, policies: int, episodes: int) -> None:
        """Fail at once where evaluating ``policies`` policies for ``episodes`` episodes each cannot fit in memory
        (every user's return in every episode): the family solver's candidates, more than the run's k."""
        self._check_memory(self.env.n, self.env.reward_dim, self.env.population.params.shape[1], self.copies_share_users,
                           (policies, episodes))

    def _check_memory(self, n: int, reward_dim: int, params_per_user: int = 1, copies_share_users: bool = True,
                      evaluated: tuple[int, int] | None = None) -> None:
        """Fail at once (one ``error:`` line) when the per-user arrays of this run cannot fit in memory."""
        args = self.args
        need = memory_estimate(args, n, reward_dim, params_per_user, copies_share_users, evaluated)
        available = available_memory()
        # refused where what the flags ask for cannot fit: the fixed gigabyte alone (a busy machine's dip in free
        # memory) refused a 25-user run with "needs 1.0 GiB, but 1.0 GiB are available"
        if available is not None and need - FIXED_RUN_BYTES > available:
            evaluation = (f"{args.eval_episodes} evaluation episodes" if evaluated is None else
                          f"{evaluated[0]} policies evaluated for {evaluated[1]} episodes each")
            fewer = "fewer --eval-episodes" if evaluated is None else "fewer evaluated policies or episodes"
            fail(f"this run needs about {(need - FIXED_RUN_BYTES) / 2**30:.1f} GiB for its per-user arrays, env copies and "
                 f"networks, beyond the ~1 GiB every run holds (n = {n} users, "
                 f"k = {args.k}, {args.k * (args.num_envs or 1)} copies x {args.num_steps} steps a rollout, "
                 f"{args.hidden_size} hidden units, {evaluation}), but {available / 2**30:.1f} GiB are available: use "
                 f"fewer users (--n-agents), fewer copies (--num-envs), fewer steps (--num-steps), a smaller "
                 f"--hidden-size or {fewer}")

    def user_bins(self) -> np.ndarray:
        """Each user's critic output (:func:`rmdp_train.users.user_bins` with ``--critic-bins``)."""
        return user_bins(self.env.population.params, self.args.critic_bins)

    def create_folder(self) -> None:
        """The run folder (``args.json`` in it), or the one being resumed. Call after the last check: with
        ``--check-only`` this is where the run stops, every check passed and nothing written."""
        args = self.args
        if args.check_only:
            print(f"{self.solver} {args.env_id} k={args.k}: flags, environment and memory checked; nothing run or written")
            raise SystemExit(0)
        if self.resumed:
            self.dir = Path(args.resume)
        else:
            self.dir = new_run_folder(Path(args.output_dir),
                                      f"{re.sub('[/:]', '_', args.env_id)}__{args.exp_name}__{args.seed}__{int(time.time())}")
            try:
                atomic_write_json(self.dir / "args.json", saved_args(args))
            except BaseException:
                shutil.rmtree(self.dir, ignore_errors=True)  # a folder without args.json is no run: leave nothing
                raise
        self.name = self.dir.name
        # from the folder on, Ctrl-C stops at the first iteration's end with a checkpoint: one that landed in the rest
        # of the start-up (torch.optim's first import, the workers' start) left a traceback and a folder with only
        # args.json, which --resume refuses
        self._watch_ctrl_c()

    def seed(self) -> tuple[np.random.Generator, torch.device]:
        """Seed Python, numpy and torch (CleanRL's block); the solver's numpy generator and the device."""
        args = self.args
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        torch.backends.cudnn.deterministic = args.torch_deterministic
        torch.set_num_threads(args.torch_threads)
        # numpy's BLAS (OpenBLAS) keeps its threads spinning after a product: the users' tables of a tabular task at
        # large n (rmdp_envs.rewards.TableRewards) took the update's cores that way, learning 3.2 s against 1.8 s with
        # one update thread (EM, TabularRandom n = 100,000, 100k transitions). torch's own BLAS is not numpy's.
        threadpool_limits(1, user_api="blas")
        device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")  # CUDA's start costs seconds
        if args.cuda and device.type == "cpu":
            print("--cuda: torch finds no CUDA device here; the networks run on the CPU", file=sys.stderr, flush=True)
        self.device = device  # result.json says where the networks ran (args.cuda says only what was asked)
        return np.random.default_rng(args.seed), device

    def open_writer(self, global_step: int) -> SummaryWriter:
        """The run's TensorBoard writer.

        With ``--track`` a Weights & Biases run mirrors it (CleanRL's ``sync_tensorboard``), started first so that
        it sees the writer; its id is the run folder's name, so ``--resume`` continues the same W&B run."""
        if self.args.track:
            import wandb  # noqa: PLC0415  (optional: checked at start)
            wandb.init(project=self.args.wandb_project_name, entity=self.args.wandb_entity, name=self.name, id=self.name,
                       resume="allow", dir=str(self.dir), config=vars(self.args), sync_tensorboard=True, save_code=True)
        # resumed: drop what the stopped process logged after its checkpoint (steps after global_step); the
        # checkpointed iteration's own scalars, logged at global_step before the checkpoint was written, stay
        self.writer = SummaryWriter(str(self.dir), purge_step=global_step + 1 if self.resumed else None)
        if not self.resumed:
            table = "\n".join(f"|{key}|{value}|" for key, value in vars(self.args).items())
            self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % table)
        return self.writer

    def _watch_ctrl_c(self) -> None:
        """Turn the first Ctrl-C (or SIGTERM to this process: ``kill PID``, a container's stop) into a clean stop at
        the end of the iteration (:meth:`checkpoint`). A SIGTERM to the whole job reaches the env workers too, which
        keep its default (ignoring it would leave a worker that multiprocessing's exit terminates running on).

        Without this, Ctrl-C lands wherever the solver happens to be and every worker process prints
        a traceback of its own, and SIGTERM ended the run silently; the run is left at its last periodic
        checkpoint. A second one stops at once, as usual. Only in the main thread (signals go there), and not
        where a signal is ignored (SIGINT in a background job), which stays as it is.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        said = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
        for signum, name in said.items():
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue

            def first(signum, frame, previous=previous, name=name) -> None:
                self.interrupted, self._stop_signal = True, signum
                signal.signal(signum, previous)
                print(f"\n{name}: stopping at the end of this iteration with a checkpoint ({name} again to stop now)",
                      file=sys.stderr, flush=True)

            self._previous_handlers[signum] = previous
            signal.signal(signum, first)

    def _unwatch_ctrl_c(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers = {}

    # ------------------------------------------------------------------ evaluation and results

    def policy_set(self, actor: MultiPolicyActor, obs_rms: RunningMeanStd) -> PolicySet:
        """The live actor behind the deterministic policy_fn that ``load_policies`` would rebuild."""
        return PolicySet(actor, policy_spec(actor, env_id=self.args.env_id, env_kwargs=self.env_kwargs,
                                            action_low=self.env.action_low, action_high=self.env.action_high,
                                            **obs_rms.spec()))

    def evaluate(self, actor: MultiPolicyActor, obs_rms: RunningMeanStd, assignment: np.ndarray,
                 device: torch.device) -> dict[str, Any]:
        """Greedy evaluation of the policies on the run's evaluation seeds (on the CPU)."""
        args = self.args
        actor.cpu()
        result = rmdp_envs.evaluate(args.env_id, self.policy_set(actor, obs_rms), actor.k, args.eval_episodes,
                                    args.eval_seed, self.env_kwargs)
        actor.to(device).train()
        return {"utility": result.utility, "welfare": result.welfare(assignment), "best_welfare": result.best_welfare,
                "best_assignment": result.best_assignment}

    def record_eval(self, ev: dict[str, Any], state: TrainState, eval_start: float) -> dict[str, Any]:
        """Log an evaluation to TensorBoard and the run's history (and charge its time to the "evaluation" phase)."""
        state.lap("learning", until=eval_start)
        state.lap("evaluation")
        state.eval_history.append({"global_step": state.global_step, "wall_time_s": state.elapsed(),
                                   "eval_s": time.time() - eval_start, "welfare": ev["welfare"],
                                   "best_welfare": ev["best_welfare"]})
        self.writer.add_scalar("welfare/eval", ev["welfare"], state.global_step)
        self.writer.add_scalar("welfare/eval_best_response", ev["best_welfare"], state.global_step)
        return ev

    def final_line(self, ev: dict[str, Any], state: TrainState) -> str:
        """What a solver prints at its end: the final greedy evaluation, said as such (the progress bar's
        ``train_welfare`` is another quantity: the EMA of the stochastic policies' training returns), the budget, the
        time and the run's folder."""
        args = self.args
        return (f"{self.name}: final greedy evaluation ({args.eval_episodes} episode(s) a policy from seed "
                f"{args.eval_seed}): welfare {ev['welfare']:.4f} under the run's assignment, best response "
                f"{ev['best_welfare']:.4f}; {state.global_step} transitions in {state.elapsed():.1f}s; in {self.dir}")

    def eval_due(self, state: TrainState) -> bool:
        """A periodic evaluation (``--eval-every``) is due; advances the next one past the current step."""
        args = self.args
        if not (args.eval_every and state.global_step >= state.next_eval and state.iteration < args.num_iterations):
            return False
        while state.next_eval <= state.global_step:
            state.next_eval += args.eval_every
        return True

    def write_result(self, ev: dict[str, Any], state: TrainState, finished: bool, **extra) -> RunResult:
        args = self.args
        wall = state.elapsed()
        result = RunResult(
            env_id=args.env_id, env_kwargs=self.env_kwargs, population=self.env.population.to_dict(), solver=self.solver,
            commit=self.commit, seed=args.seed, k=args.k, n_agents=self.env.n, total_timesteps=args.total_timesteps,
            transitions=state.global_step, wall_time_s=wall, transitions_per_s=state.global_step / max(wall, 1e-9),
            utility=ev["utility"], assignment=state.assignment, welfare=ev["welfare"], best_welfare=ev["best_welfare"],
            best_assignment=ev["best_assignment"], eval_episodes=args.eval_episodes, eval_seed=args.eval_seed,
            finished=finished, eval_history=state.eval_history, hardware=hardware(), torch_threads=args.torch_threads,
            run_name=self.name, rmdp_version=rmdp_envs.__version__, args=vars(args), versions=library_versions(),
            extra={**({"device": str(self.device)} if self.device else {}), "phase_seconds": {phase: round(s, 3) for phase, s in state.phase_seconds.items()},
                   **({"rollout_seconds": state.rounded_rollout_seconds()} if state.rollout_seconds else {}),
                   **({"start_up_s": round(state.start_up_s, 2)} if state.start_up_s is not None else {}),
                   **({"resumed_at": state.resumed_at} if state.resumed_at else {}), **extra})
        result.write(self.dir)
        return result

    def checkpoint(self, state: TrainState, iterations_this_process: int, progress) -> None:
        """Write a checkpoint when one is due; with ``--interrupt-after``, stop after it as if killed.

        After a Ctrl-C or SIGTERM (:meth:`_watch_ctrl_c`) the checkpoint is written now and the run exits with status
        130 (143 after SIGTERM) and the command that continues it, unless this was the last iteration (then it just finishes).
        """
        args = self.args
        last = state.iteration >= args.num_iterations
        if last or self.interrupted:
            self._unwatch_ctrl_c()  # from here on (after training, or stopping) Ctrl-C stops at once, as usual
        if self.interrupted and not last:
            state.save(self.dir)
            progress.close()
            print(f"interrupted after iteration {state.iteration} of {args.num_iterations} ({state.global_step} "
                  f"transitions; checkpoint written): continue with --resume {self.dir}", file=sys.stderr, flush=True)
            raise SystemExit(128 + self._stop_signal)  # 130 after Ctrl-C, 143 after SIGTERM, as the shell reports them
        if not (state.iteration % args.checkpoint_every == 0 or last):
            return
        state.save(self.dir)
        if args.interrupt_after and iterations_this_process >= args.interrupt_after and state.iteration < args.num_iterations:
            progress.close()
            print(f"interrupted after iteration {state.iteration} (checkpoint written); continue with --resume {self.dir}")
            raise SystemExit(0)

    def log_iteration(self, state: TrainState, *, lr: float, ent_coef: float, sps: int, v_loss: float, pg_loss: float,
                      entropy: float, approx_kl: float, clipfrac: float, flips: int, k: int,
                      explained_var: float) -> float:
        """TensorBoard scalars of one iteration; returns the training welfare estimate (NaN until every policy has data)."""
        w, step, n = self.writer, state.global_step, self.env.n
        train_welfare = float(state.utility[state.assignment, np.arange(n)].mean()) if state.seen.all() else float("nan")
        sizes = np.bincount(state.assignment, minlength=k)
        w.add_scalar("charts/learning_rate", lr, step)
        w.add_scalar("charts/ent_coef", ent_coef, step)
        w.add_scalar("charts/SPS", sps, step)
        w.add_scalar("losses/value_loss", v_loss / k, step)
        w.add_scalar("losses/policy_loss", pg_loss / k, step)
        w.add_scalar("losses/entropy", entropy / k, step)
        w.add_scalar("losses/approx_kl", approx_kl, step)
        w.add_scalar("losses/clipfrac", clipfrac, step)
        w.add_scalar("losses/explained_variance", explained_var, step)
        if state.seen.all():
            w.add_scalar("welfare/train", train_welfare, step)
        if k > 1:  # one policy (k = 1, the family while it trains) serves everyone: nothing to draw
            w.add_scalar("assignment/sizes", sizes.min(), step)  # the smallest group
            w.add_scalar("assignment/largest", sizes.max(), step)
            w.add_scalar("assignment/flips", flips, step)
        return train_welfare

    def capture_video(self, actor: MultiPolicyActor, obs_rms: RunningMeanStd, assignment: np.ndarray) -> Path:
        """Film the policies as ``load_policies`` would rebuild them (:mod:`rmdp_train.video`), from ``--eval-seed``.
        Said before it starts: a MuJoCo film of 300 steps takes about a minute of software rendering."""
        print(f"filming the {actor.k} policies (--capture-video) ...", flush=True)
        film = record_policies(self.policy_set(actor.cpu(), obs_rms), self.args.env_id, actor.k, self.dir / VIDEO_FILE,
                               env_kwargs=self.env_kwargs, assignment=assignment, seed=self.args.eval_seed, progress=True)
        print(f"video of the {actor.k} policies ({film.frames} frames): {film.path}")
        return film.path

    def save_model(self, actor: MultiPolicyActor, obs_rms: RunningMeanStd, **extra) -> None:
        save_policies(self.dir, actor.cpu(), env_id=self.args.env_id, env_kwargs=self.env_kwargs,
                      action_low=self.env.action_low, action_high=self.env.action_high,
                      extra={"solver": self.solver, **extra}, **obs_rms.spec())
        print(f"policies saved to {self.dir}")


def new_run_folder(output_dir: Path, name: str) -> Path:
    """A folder no other run has: ``name`` (CleanRL's ``env__exp__seed__time``), or ``name-2``, ``name-3``, ... when
    a run of the same env, experiment and seed started in the same second (two runs wrote one folder before)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        folder = output_dir / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def fully_trained(run_dir: str, num_iterations: int) -> bool:
    """Whether the run in ``run_dir`` has trained all ``num_iterations`` (its checkpoint's) and written its final
    ``result.json``: a ``--resume`` of it would only evaluate again and rewrite the result. A finished run whose
    ``args.json`` was given a larger budget is not finished."""
    return has_final_result(run_dir) and checkpoint_iteration(run_dir) >= num_iterations


def check_output_place(output_dir: str, exp_name: str | None) -> None:
    """Fail (one ``error:`` line) before anything is written where the run folder ``{output_dir}/{env}__{exp_name}__...``
    could not be made there: an ``--output-dir`` that is a file, or an ``--exp-name`` that is a path (``a/../../b``
    would put the run outside ``--output-dir``)."""
    if exp_name is not None and (not exp_name.strip() or any(sep in exp_name for sep in ("/", "\\"))
                                 or exp_name in (".", "..") or not exp_name.isprintable() or len(exp_name) > 150):
        fail(f"--exp-name must be a plain printable name of at most 150 characters, without path separators, "
             f"got {exp_name!r}")
    if not output_dir.strip():
        fail("--output-dir is empty: name a folder (runs, the default; . for this one)")
    why = writable_place(output_dir, folder=True)
    if why:
        fail(f"--output-dir {output_dir}: cannot create a run folder there ({why})")


def memory_estimate(args: PPOArgs, n: int, reward_dim: int, params_per_user: int = 1,
                    copies_share_users: bool = True, evaluated: tuple[int, int] | None = None) -> int:
    """Bytes a run allocates that grow with the number of users n, estimated before allocating anything.

    * The rollout: every critic output's reward, advantage and return per step and copy
      ((T + 1) x k*m x outputs float32, with the values and GAE's temporaries about 8 such arrays;
      ``outputs = min(n, critic_bins)``, :mod:`rmdp_train.users`), and the critic's last layer
      (k x hidden x outputs, with gradient and Adam's moments 4 copies).
    * Per policy and user (k x n float64): the utility estimate, e2e's logits and Adam moments,
      the E-step's temporaries: about 8 arrays.
    * The env copies' population, sorted targets and reward space (~42 bytes per user): once per process where
      the copies share them (``copies_share_users``: a seeded sampler's population, the tabular generators),
      else once per copy (k*m, and the evaluation's). The check before the users are sampled assumes sharing,
      the least any environment needs; the one after the probe env knows.
    * The final evaluation: every user's return in each episode (k x eval_episodes x n float64, three such
      arrays at once: the returns, their stack and the statistics' temporaries; ``evaluated = (policies,
      episodes)`` where a run evaluates more at once, as the family solver's 64 candidates: measured 3.49 GB at
      n = 100,000 on TabularRandom against 3.50 estimated with two arrays) and the result file's utility matrix
      (k x n) as numbers (~40 bytes each).
    * Environments without a compact reward statistic (``reward_dim = n``): each copy's reward
      vector, statistic and episode sums (3 arrays of k*m x n), and the rollout's statistics
      ((T + 1) x k*m x reward_dim float64, twice: the workers' and the main process's).
    * The population's parameters (``params_per_user`` each: a target for the speed tasks, the whole
      S x A reward table for the tabular ones): a shared copy per process, the tabular rewards' own
      float64 table, and the result file's copy as Python floats and JSON text (~72 bytes each).
    * The env copies themselves (:func:`rmdp_envs.vector.copy_bytes`: 1 MiB a MuJoCo copy), so ``--num-envs 10**5``
      on a MuJoCo task is refused instead of spending minutes building copies that cannot fit.
    * The networks' hidden-to-hidden layers (k policies, actor and critic, ``hidden_size**2`` float32 each, with
      gradient and Adam's moments 4 copies): nothing at the default 64 units, but what ``--hidden-size`` can blow up.
    * The rest, which does not grow with n (torch, networks, observation buffers, MuJoCo): about 1 GiB
      (the peaks of EM on HalfCheetahSpeed at n = 2 x 10^6 and 8 x 10^6 extrapolate to 1.07 GB at n = 0).
    Measured peaks against it (k = 10, one worker, statistic mode): HalfCheetahSpeed n = 10^6 2.18 GB
    (``scale_shared/``), TabularRandom n = 10^6 6.23 GB (``scale_tabular/``).
    """
    k, copies = args.k, args.k * args.num_envs
    outputs = min(n, args.critic_bins)
    policies, episodes = evaluated or (k, args.eval_episodes or 1)
    rollout = 4 * (8 * (args.num_steps + 1) * copies * outputs + 4 * k * args.hidden_size * outputs)
    rollout += 2 * 8 * (args.num_steps + 1) * copies * reward_dim
    holders = 2 + args.num_workers if copies_share_users else copies + policies * min(episodes, 256) + 1
    per_user = 8 * 8 * k * n + 42 * holders * n + 24 * policies * episodes * n + 40 * k * n
    env_side = 3 * 8 * copies * n if reward_dim >= n else 0
    params = (8 * (1 + args.num_workers) + 72) * params_per_user * n
    networks = 4 * 4 * 2 * k * args.hidden_size**2
    return rollout + per_user + env_side + params + networks + copy_bytes(args.env_id) * copies + FIXED_RUN_BYTES


#: What a run holds whatever its size (torch, networks, observation buffers, MuJoCo): :func:`memory_estimate`'s rest.
FIXED_RUN_BYTES = 2**30

