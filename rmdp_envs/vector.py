"""Step k policies x m copies of an r-MDP as one vector environment.

Gymnasium's ``SyncVectorEnv`` stores rewards as a float per copy, so it cannot carry reward
vectors; this one returns rewards of shape ``(num_envs, n)``. With ``rewards="statistic"`` it
returns each step's reward *statistic* ``(num_envs, dim)`` instead (:mod:`rmdp_envs.rewards`:
one number per copy for the speed tasks), which is what solvers and evaluation use at large n. Copies are ordered policy-major:
copy ``c`` of policy ``j`` is sub-env ``j * m + c`` (``policy_index`` gives ``j`` per sub-env).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable, Sequence

import multiprocessing as mp
import multiprocessing.forkserver
import multiprocessing.resource_tracker

import numpy as np
import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rmdp_envs.core import check_k
from rmdp_envs.results import available_memory
from rmdp_envs.registration import make, spec_of
from rmdp_envs.rewards import user_rewards_of

#: The autoreset modes the vector envs implement (all of Gymnasium's).
AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED, AutoresetMode.NEXT_STEP)

#: What a vector env's step returns as rewards: every user's reward, or the statistic that describes them.
REWARD_MODES = ("vector", "statistic")


def _seeds_per_copy(seed: int | Sequence[int] | None, num_envs: int) -> list[int | None]:
    """Gymnasium's convention: an int seeds copy ``i`` with ``seed + i``; a list gives each its own."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return [None if seed is None else int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"need one seed per sub-env ({num_envs}), got {len(seeds)}")
    return seeds


def _reset_mask(options: dict | None, num_envs: int) -> tuple[np.ndarray, dict | None]:
    """Gymnasium 1.x's partial reset: ``options["reset_mask"]``, a bool array with one entry per copy, names the
    copies to reset (the others keep their episodes). Returns the mask (all copies where none is given) and the
    options the copies' own ``reset`` receives (without the mask)."""
    if options is None or "reset_mask" not in options:
        return np.ones(num_envs, dtype=bool), options
    mask = np.asarray(options["reset_mask"])
    if mask.dtype != np.bool_ or mask.shape != (num_envs,):
        raise ValueError(f"options['reset_mask'] must be a bool array of shape ({num_envs},), one entry per copy; "
                         f"got dtype {mask.dtype}, shape {mask.shape}")
    return mask, {key: value for key, value in options.items() if key != "reset_mask"} or None


def _check_batch_actions(actions, num_envs: int, single_action_space: gym.Space) -> np.ndarray:
    actions = np.asarray(actions)
    expected = (num_envs,) + tuple(single_action_space.shape)
    if actions.shape != expected:
        raise ValueError(f"actions must have shape {expected} (one action per sub-env), got {actions.shape}")
    if actions.dtype.kind == "f" and not np.isfinite(actions).all():  # once a step for every copy and worker
        raise ValueError("actions contain NaN or infinite values (MuJoCo would reset the copy and go on)")
    return actions


def _check_reward_mode(rewards: str) -> str:
    if rewards not in REWARD_MODES:
        raise ValueError(f"rewards must be one of {REWARD_MODES}, got {rewards!r}")
    return rewards


def _set_layout(vec: VectorEnv, first: gym.Env, num_envs: int, k: int, mode: AutoresetMode, rewards: str) -> None:
    """The attributes every r-MDP vector env exposes: policy-major copies, spaces, population, reward mode."""
    vec.num_envs, vec.k, vec.copies_per_policy = num_envs, k, num_envs // k
    vec.reward_mode = rewards
    vec.user_rewards = user_rewards_of(first)  # the description of the users' rewards (rmdp_envs.rewards)
    vec.autoreset_mode = mode
    vec.render_mode = first.render_mode
    vec.metadata = {"autoreset_mode": mode, "render_modes": list(first.metadata.get("render_modes", []))}
    if "render_fps" in first.metadata:
        vec.metadata["render_fps"] = first.metadata["render_fps"]
    vec.policy_index = np.repeat(np.arange(k), num_envs // k)
    vec.population = first.unwrapped.population
    vec.n_users = vec.population.n
    vec.single_observation_space = first.observation_space
    vec.single_action_space = first.action_space
    vec.single_reward_space = first.unwrapped.reward_space
    vec.reward_space = vec.single_reward_space  # MO-Gymnasium's vector envs name a copy's reward space so (its wrappers read it)
    vec.observation_space = batch_space(vec.single_observation_space, num_envs)
    vec.action_space = batch_space(vec.single_action_space, num_envs)


def _steps_by_velocity(user_rewards) -> bool:
    """Whether copies with these rewards (the speed tasks') can step for their velocity alone and have their reward
    vectors rebuilt from it (``UserRewards.rewards``, the same float32 values)."""
    return getattr(user_rewards, "key", None) == "x_velocity"


class _UserReturns:
    """Every copy's running return for every user (float32: half the per-step cost at large n), and the returns of
    the episodes that end: what ``infos["episode"]["r"]`` reports in vector mode."""

    def __init__(self, num_envs: int, n: int):
        self.sums = np.zeros((num_envs, n), dtype=np.float32)

    def add(self, rewards: np.ndarray, frozen: np.ndarray | None = None) -> np.ndarray:
        """Add a step's reward vectors; with ``frozen`` (copies a ``DISABLED`` autoreset stopped), ``rewards`` are
        rebuilt ones whose frozen rows are zeroed first, as a frozen copy's reward is. Returns ``rewards``."""
        if frozen is not None:
            rewards[frozen] = 0.0
        np.add(self.sums, rewards, out=self.sums)
        return rewards

    def pop(self, finished: np.ndarray) -> np.ndarray:
        """The returns of the copies that ``finished`` (zero rows for the others); their sums start again."""
        returns = np.where(finished[:, None], self.sums, np.float32(0.0))
        self.sums[finished] = 0.0
        return returns

    def reset(self, copies: np.ndarray | slice = slice(None)) -> None:
        """Start the running returns of ``copies`` (a bool mask; default all) again."""
        self.sums[copies] = 0.0


class _RMDPVectorBase(VectorEnv):
    """What both r-MDP vector envs share beyond :func:`_set_layout`: the copies a ``DISABLED`` autoreset froze."""

    _done: np.ndarray  # (num_envs,) bool, set by the subclass

    @property
    def all_done(self) -> bool:
        """With ``DISABLED`` autoreset: whether every copy has finished its episode."""
        return bool(self._done.all())

    @property
    def done(self) -> np.ndarray:
        """With ``DISABLED`` autoreset: which copies have finished (and are frozen)."""
        return self._done.copy()

    def call(self, name: str, *args, **kwargs) -> tuple:
        """Gymnasium's ``VectorEnv.call``: every copy's attribute ``name`` (through its wrappers), called with the
        arguments where it is callable, in copy order."""
        return tuple(self._call_copies(name, args, kwargs))

    def get_attr(self, name: str) -> tuple:
        """Every copy's attribute ``name`` (Gymnasium's ``get_attr``)."""
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of every copy (Gymnasium's ``set_attr``): one value for all, or a list or tuple
        of one value per copy."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs one value per copy ({self.num_envs}), got {len(values)}")
        self._set_copies(name, list(values))

    def render(self) -> tuple | None:
        """Every copy's ``render()`` (Gymnasium's ``SyncVectorEnv.render``); ``None`` without a render mode."""
        return None if self.render_mode is None else self.call("render")


class RMDPVectorEnv(_RMDPVectorBase):
    """In-process vector env over r-MDP copies with vector rewards.

    ``autoreset_mode``: ``SAME_STEP`` (training: a finished copy is reset inside the step that
    finished it, the last observation goes to ``infos["final_obs"]``) or ``DISABLED``
    (evaluation: a finished copy is frozen, returns zero reward and is not stepped until reset) or
    ``NEXT_STEP`` (Gymnasium's default: a finished copy's next step is its reset, with the reset's
    observation, zero reward and no ending; what Gymnasium's vector wrappers such as
    ``NormalizeObservation`` require). ``infos["episode"]`` holds the undiscounted return vector
    ``r`` (num_envs, n) and length ``l`` of episodes that ended this step, with mask ``infos["_episode"]``.

    ``rewards="statistic"``: ``step`` returns the reward statistics ``(num_envs, dim)`` of
    ``self.user_rewards`` instead of the reward vectors, and ``infos["episode"]`` only ``l``
    (the caller keeps the users' returns, e.g. with ``self.user_rewards.episode_returns``).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], k: int = 1,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, rewards: str = "vector"):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        if self.num_envs == 0 or self.num_envs % k:
            raise ValueError(f"need a positive multiple of k={k} copies, got {self.num_envs}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in AUTORESET_MODES:
            raise ValueError(f"autoreset_mode must be one of {[m.name for m in AUTORESET_MODES]}, got {mode}")
        first = self.envs[0]
        if any(env.unwrapped.population != first.unwrapped.population for env in self.envs[1:]):
            raise ValueError("the copies were built with different populations (population_seed=None?); "
                             "all copies of an r-MDP must share one population: fix population_seed")
        _set_layout(self, first, self.num_envs, k, mode, _check_reward_mode(rewards))
        self._statistic = rewards == "statistic"
        # Speed tasks: the copies step their dynamics alone (SpeedRewardMixin.step_velocity), the time limit counted
        # here; None where a copy has wrappers that could change what step returns.
        self._fast = _velocity_steppers(self.envs) if _steps_by_velocity(self.user_rewards) else None
        # The copies step for their statistic, skipping their O(n) vectors, in statistic mode, and in vector mode where
        # they step by velocity, which then rebuilds all copies' vectors at once (UserRewards.rewards, the same float32
        # values): that made HalfCheetahSpeed's 16-copy vector env 1.27x faster at n = 100 and at n = 100,000.
        # CartPolePosition and the tabular tasks keep the copies' own vectors in vector mode: rebuilt, they were slower
        # at n = 100 (CartPolePosition) or 10,000 (TabularRandom) (measured with benchmarks/env_throughput.py's loops).
        self._by_statistic = self._statistic or self._fast is not None
        if self._by_statistic and not self.user_rewards.needs_reward_vector:
            for env in self.envs:
                env.unwrapped.reward_vector = False
        self._reward_width = self.user_rewards.dim if self._by_statistic else self.n_users
        # where the copies allow it (the planar robots: VelocityBatch) their velocity steps taken together, else one by one
        self._batch = self._fast[0][0].velocity_batch([base for base, _ in self._fast]) if self._fast else None
        self._limits = None if self._fast is None else np.array([limit for _, limit in self._fast])
        self._obs = np.zeros((self.num_envs,) + self.single_observation_space.shape, dtype=self.single_observation_space.dtype)
        self._returns = None if self._statistic else _UserReturns(self.num_envs, self.n_users)  # none: statistic mode
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        """Reset every copy, or with ``options={"reset_mask": mask}`` only the masked ones (Gymnasium 1.x's
        partial reset, e.g. of the copies a ``DISABLED`` autoreset froze); the others keep their episodes."""
        seeds = _seeds_per_copy(seed, self.num_envs)
        mask, options = _reset_mask(options, self.num_envs)
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            env, s = self.envs[i], seeds[i]
            self._obs[i], _ = env.reset(seed=s, options=options)
            if s is not None:
                env.action_space.seed(s)
        if self._returns is not None:
            self._returns.reset(mask)
        self._lengths[mask] = 0
        self._done[mask] = False
        return self._obs.copy(), infos

    def step(self, actions):
        actions = _check_batch_actions(actions, self.num_envs, self.single_action_space)
        rewards = np.empty((self.num_envs, self._reward_width), dtype=np.float64 if self._by_statistic else np.float32)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        finished = np.zeros(self.num_envs, dtype=bool)
        frozen = self._done.copy()  # copies that finished earlier (DISABLED, NEXT_STEP): zero reward this step
        step_copies = self._step_each if self._batch is None else self._step_batch
        final_obs = step_copies(actions, rewards, terminations, truncations, finished)
        if self._by_statistic and not self._statistic:  # vector mode, the vectors rebuilt from the copies' statistics
            rewards = self._returns.add(self.user_rewards.rewards(rewards), frozen)
        elif self._returns is not None:
            self._returns.add(rewards)
        self._lengths += ~self._done | finished
        infos: dict[str, Any] = {}
        if finished.any():
            infos["episode"] = {"l": np.where(finished, self._lengths, 0)}
            if self._returns is not None:
                infos["episode"]["r"] = self._returns.pop(finished)
            infos["_episode"] = finished
            if final_obs is not None:
                # rows of copies that did not finish: this step's observation, as the worker-split env gives them
                final_obs[~finished] = self._obs[~finished]
                infos["final_obs"], infos["_final_obs"] = final_obs, finished
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                self._lengths[finished] = 0
        if self.autoreset_mode is AutoresetMode.NEXT_STEP and frozen.any():
            # the copies that finished at the previous step were not stepped: this step is their reset
            for i in np.flatnonzero(frozen):
                self._obs[i], _ = self.envs[i].reset()
            self._done[frozen] = False
            self._lengths[frozen] = 0
        return self._obs.copy(), rewards, terminations, truncations, infos

    def _step_each(self, actions, rewards, terminations, truncations, finished) -> np.ndarray | None:
        """Step the copies one by one into the given arrays; finished copies reset (``SAME_STEP``) or freeze
        (``DISABLED``, and ``NEXT_STEP`` until the next step resets them). Returns the final observations of the
        copies that finished, if any."""
        final_obs = None
        for i, env in enumerate(self.envs):
            if self._done[i]:
                rewards[i] = 0.0
                continue
            if self._fast is not None:
                base, limit = self._fast[i]
                obs, rewards[i, 0], terminations[i] = base.step_velocity(actions[i])
                truncations[i] = self._lengths[i] + 1 >= limit  # Gymnasium's TimeLimit, which this skips
            else:
                obs, reward, terminations[i], truncations[i], info = env.step(actions[i])
                rewards[i] = self.user_rewards.statistic(reward, info) if self._by_statistic else reward
            self._obs[i] = obs
            if terminations[i] or truncations[i]:
                finished[i] = True
                final_obs = self._end_episode(i, final_obs)
        return final_obs

    def _step_batch(self, actions, rewards, terminations, truncations, finished) -> np.ndarray | None:
        """:meth:`_step_each` for a ``VelocityBatch`` (``rmdp_envs.envs.mujoco_speed``): the live copies stepped
        together, then those that finished reset or frozen one by one, the same numbers."""
        frozen = self._done.any()  # only with DISABLED or NEXT_STEP autoreset
        live = np.flatnonzero(~self._done) if frozen else slice(None)
        rewards[self._done] = 0.0
        obs, rewards[live, 0], terminations[live] = self._batch.step(actions, live if frozen else None)
        truncations[live] = self._lengths[live] + 1 >= self._limits[live]  # Gymnasium's TimeLimit, which this skips
        self._obs[live] = obs
        final_obs = None
        for i in np.flatnonzero(terminations | truncations):  # both False for the frozen copies
            finished[i] = True
            final_obs = self._end_episode(i, final_obs)
        return final_obs

    def _end_episode(self, i: int, final_obs: np.ndarray | None) -> np.ndarray | None:
        """Copy ``i`` finished this step, its last observation in ``self._obs[i]``: reset it (``SAME_STEP``, the last
        observation kept in ``final_obs``, allocated at the step's first finish) or freeze it (``DISABLED``, and
        ``NEXT_STEP`` until its next step)."""
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            if final_obs is None:
                final_obs = self._obs.copy()
            final_obs[i] = self._obs[i]  # copies stepped one by one after the first finish are not in that copy yet
            self._obs[i], _ = self.envs[i].reset()
        else:
            self._done[i] = True
        return final_obs

    def _call_copies(self, name: str, args: tuple, kwargs: dict) -> list:
        results = []
        for env in self.envs:
            attribute = env.get_wrapper_attr(name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return results

    def _set_copies(self, name: str, values: list) -> None:
        for env, value in zip(self.envs, values):
            env.set_wrapper_attr(name, value)

    def close_extras(self, **kwargs):
        for env in self.envs:
            env.close()


def _velocity_steppers(envs: Sequence[gym.Env]) -> list[tuple[gym.Env, int]] | None:
    """Each copy's unwrapped env and time limit, where every copy can be stepped by ``step_velocity``.

    Only ``TimeLimit`` and ``OrderEnforcing`` may wrap a copy (what ``gymnasium.make`` adds to the
    r-MDPs): neither changes observations, rewards or terminations, and the vector env counts the
    time limit itself. Any other wrapper, or an env without ``step_velocity``, keeps Gymnasium's step.
    """
    steppers = []
    for env in envs:
        limit, layer = None, env
        while isinstance(layer, gym.Wrapper):
            if isinstance(layer, gym.wrappers.TimeLimit):
                limit = layer._max_episode_steps
            elif not isinstance(layer, gym.wrappers.OrderEnforcing):
                return None
            layer = layer.env
        if limit is None or not hasattr(layer, "step_velocity"):
            return None
        steppers.append((layer, int(limit)))
    return steppers


def default_main_share(num_workers: int) -> float:
    """The fraction of the copies the main process steps itself, beside ``num_workers`` worker processes.

    The main process also runs the policies and the solver's bookkeeping every step. Measured
    (``benchmarks/results/main_share/``, HalfCheetah, EM solver, the lent 16-core host): with one
    worker an equal split is best (2 pinned cores: 8,386 transitions/s at 1/2, 7,442 at 1/4, 6,807
    at 0), since the main process would otherwise wait for the worker; with 15 workers the main
    process is the bottleneck and does best stepping nothing (22,677/s vs 20,327/s at an equal
    1/16, same machine, same call). From ``MANY_WORKERS`` workers on, where an equal share would
    be a fifth or less, it steps none; below that it keeps its equal share (not measured between).
    """
    return 0.0 if num_workers >= MANY_WORKERS else 1.0 / (num_workers + 1)


#: From this many workers on the main process only runs the policies (:func:`default_main_share`).
MANY_WORKERS = 4


def split_copies(num_envs: int, num_workers: int, main_share: float) -> list[slice]:
    """Contiguous slices of the copies: the main process's first (possibly empty), then one per worker."""
    if not 0.0 <= main_share < 1.0:
        raise ValueError(f"main_share must lie in [0, 1), got {main_share}")
    workers = max(1, min(num_workers, num_envs))
    local = min(int(round(main_share * num_envs)), num_envs - workers)  # every worker keeps at least one copy
    bounds = local + np.linspace(0, num_envs - local, workers + 1).round().astype(int)
    return [slice(0, local)] + [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class RMDPAsyncVectorEnv(_RMDPVectorBase):
    """:class:`RMDPVectorEnv` split into contiguous slices: one stepped here, the rest in workers.

    Same interface and results as the in-process env. The main process sends the workers their
    actions, steps its own slice while they step theirs, then collects: with one worker on a
    2-core machine both cores step environments and the inter-process round trip hides behind the
    local work. Workers start with ``forkserver``, safe for a parent holding torch or TensorBoard
    threads.
    """

    def __init__(self, env_id: str, env_kwargs: dict, k: int, m: int, num_workers: int,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, context: str = "forkserver",
                 rewards: str = "vector", main_share: float | None = None, layout_env: gym.Env | None = None):
        num_envs = k * m
        self._slices = split_copies(num_envs, int(num_workers), default_main_share(num_workers) if main_share is None
                                     else main_share)
        mode = str(AutoresetMode(autoreset_mode).value)
        probe = layout_env or make(env_id, **env_kwargs)
        # Vector mode on the speed tasks: the slices send one velocity per copy, not an (n,) vector, and the vectors
        # are rebuilt here (as RMDPVectorEnv does in-process): at n = 100,000 each copy's step shipped 400 KB.
        self._rebuild = _check_reward_mode(rewards) == "vector" and _steps_by_velocity(user_rewards_of(probe))
        sent = "statistic" if self._rebuild else rewards
        self._pipes, self._procs = start_workers(
            mp.get_context(context), _worker,
            [(env_id, env_kwargs, sl.stop - sl.start, mode, sent, spec_of(env_id)) for sl in self._slices[1:]])
        count = self._slices[0].stop
        # the slices that answer a step: this process's (when it steps any), then the workers'
        self._answering = self._slices if count else self._slices[1:]
        # this process's own share of the copies (none when the workers step them all)
        self._local = RMDPVectorEnv([lambda: make(env_id, **env_kwargs) for _ in range(count)], k=1, autoreset_mode=mode,
                                    rewards=sent) if count else None
        self._receive_all(starting=True)  # workers report that their envs are built (or raise their error here)
        _set_layout(self, probe, num_envs, k, AutoresetMode(mode), rewards)
        if probe is not layout_env:
            probe.close()
        self._returns = _UserReturns(num_envs, self.n_users) if self._rebuild else None
        self._done = np.zeros(num_envs, dtype=bool)
        self.closed = False

    def _receive_all(self, starting: bool = False) -> list:
        return receive_all(self._pipes, self.close, starting, "vector env worker")

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        """As :meth:`RMDPVectorEnv.reset` (``options["reset_mask"]`` too): each slice resets its part."""
        seeds = _seeds_per_copy(seed, self.num_envs)
        mask, options = _reset_mask(options, self.num_envs)

        def options_of(sl: slice) -> dict:  # the slice's part of the mask
            return {**(options or {}), "reset_mask": mask[sl]}

        for pipe, sl in zip(self._pipes, self._slices[1:]):
            pipe.send(("reset", (seeds[sl], options_of(sl))))
        local = [] if self._local is None else [self._local.reset(seed=seeds[self._slices[0]],
                                                                  options=options_of(self._slices[0]))]
        self._done[mask] = False
        if self._returns is not None:
            self._returns.reset(mask)
        return np.concatenate([obs for obs, _ in local + self._receive_all()]), {}

    def step(self, actions):
        actions = _check_batch_actions(actions, self.num_envs, self.single_action_space)
        for pipe, sl in zip(self._pipes, self._slices[1:]):
            pipe.send(("step", actions[sl]))
        try:
            local = [] if self._local is None else [self._local.step(actions[self._slices[0]])]
        except Exception:
            self._receive_all()  # keep the workers in step with the protocol before raising
            raise
        parts = local + self._receive_all()
        obs = np.concatenate([p[0] for p in parts])
        rewards = np.concatenate([p[1] for p in parts])
        if self._returns is not None:  # velocities from the slices: the vectors rebuilt here
            rewards = self._returns.add(self.user_rewards.rewards(rewards), self._done)
        terminations = np.concatenate([p[2] for p in parts])
        truncations = np.concatenate([p[3] for p in parts])
        infos: dict[str, Any] = {}
        finished = np.zeros(self.num_envs, dtype=bool)
        for (_, _, _, _, info), sl in zip(parts, self._answering):
            if "_episode" not in info:
                continue
            if not infos:
                infos = {"episode": {"l": np.zeros(self.num_envs, dtype=np.int64)}}
                if "r" in info["episode"]:
                    infos["episode"]["r"] = np.zeros((self.num_envs, self.n_users), dtype=np.float32)
                if self.autoreset_mode is AutoresetMode.SAME_STEP:
                    infos["final_obs"] = obs.copy()
            if "r" in info["episode"]:
                infos["episode"]["r"][sl] = info["episode"]["r"]
            infos["episode"]["l"][sl] = info["episode"]["l"]
            finished[sl] = info["_episode"]
            if "final_obs" in info:
                infos["final_obs"][sl] = info["final_obs"]
        if infos:
            infos["_episode"] = finished
            if "final_obs" in infos:
                infos["_final_obs"] = finished
            if self._returns is not None:
                infos["episode"]["r"] = self._returns.pop(finished)
        if self.autoreset_mode is AutoresetMode.DISABLED:
            self._done |= finished
        elif self.autoreset_mode is AutoresetMode.NEXT_STEP:  # the slices reset these at the next step
            self._done = finished
        return obs, rewards, terminations, truncations, infos

    def _call_copies(self, name: str, args: tuple, kwargs: dict) -> list:
        for pipe in self._pipes:
            pipe.send(("call", (name, args, kwargs)))
        local = [] if self._local is None else [_answer(self._local.call, name, *args, **kwargs)]
        return [result for part in _raise_any(local + self._receive_all()) for result in part]

    def _set_copies(self, name: str, values: list) -> None:
        for pipe, sl in zip(self._pipes, self._slices[1:]):
            pipe.send(("set_attr", (name, values[sl])))
        local = [] if self._local is None else [_answer(self._local.set_attr, name, values[self._slices[0]])]
        _raise_any(local + self._receive_all())

    def close_extras(self, **kwargs):
        close_workers(self._pipes, self._procs)
        if self._local is not None:
            self._local.close()


def _answer(method: Callable, *args, **kwargs) -> tuple[bool, Any]:
    """``(True, result)`` of a copy-wide ``call`` / ``set_attr``, or ``(False, the exception)``: a user's mistake (an
    attribute no copy has) is answered like a result, so no process is left with an unread answer and no worker
    counts as failed (which closes the env)."""
    try:
        return True, method(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 (re-raised in the parent by _raise_any)
        return False, e


def _raise_any(answers: list[tuple[bool, Any]]) -> list:
    """The results of :func:`_answer`'s answers, in order; the first exception among them raised."""
    for ok, value in answers:
        if not ok:
            raise value
    return [value for _, value in answers]


def refuse_unguarded_start() -> None:
    """Stop a worker bootstrapping itself: it is importing a script whose code starts workers outside an
    ``if __name__ == "__main__":`` guard. It exits quietly (``SystemExit``: the fork server's child and a spawned
    interpreter both end without a traceback), and the parent, which sees it die while starting, raises the one
    error that says what to add (:data:`MAIN_GUARD_HINT`): a traceback from the worker too made 41 lines of it."""
    if getattr(mp.current_process(), "_inheriting", False):
        raise SystemExit(1)


#: Modules a worker would otherwise import again by itself. A ``forkserver`` worker runs its parent's
#: script again (as ``__mp_main__``), re-importing torch and the rest: about 1 s per worker, one
#: after another on a busy machine. The fork server's own preload of ``__main__`` is meant to spare
#: that but has imported nothing since Python 3.4 (no main path reaches the server: CPython issues
#: gh-126631 and gh-137996, fixed in 3.13 and 3.14 only). Those of these the parent holds are
#: imported once in the fork server instead, and every worker forks with them.
FORKSERVER_PRELOAD = ("numpy", "torch", "gymnasium", "mujoco", "rmdp_envs")


def start_forkserver(also: Sequence[str] = ()) -> None:
    """Start Python's fork server now, preloading the modules of :data:`FORKSERVER_PRELOAD` and ``also`` this
    process holds (a program adds its own heavy modules: the solvers, their trainer's).

    Call it as soon as a program knows it will start workers: the server imports while the program
    goes on (the solvers: while they build the learner), and the workers then start at once. One
    already running is left as it is (it serves the whole process).
    """
    preload = [name for name in (*FORKSERVER_PRELOAD, *also) if name in sys.modules]
    mp.get_context("forkserver").set_forkserver_preload(preload)
    # The server and the resource tracker start with SIGINT ignored, which a new interpreter keeps (a blocked mask it
    # does not: fork_exec clears it), and so do the workers the server forks: Ctrl-C is this process's to handle, and
    # one that reached the server while it imported killed it ("Fatal Python error: init_import_site"). Only the main
    # thread may set a handler; a Ctrl-C to this process in the moment of the two starts is lost.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        multiprocessing.resource_tracker.ensure_running()
        multiprocessing.forkserver.ensure_running()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def start_workers(ctx, target: Callable, worker_args: Sequence[tuple]) -> tuple[list, list]:
    """One daemon process per entry of ``worker_args``, running ``target(pipe, *args)``: their pipes and processes."""
    if ctx.get_start_method() == "forkserver":
        start_forkserver()
    pipes, procs = [], []
    for args in worker_args:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(child, *args), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    return pipes, procs


def receive_all(pipes: list, close: Callable[[], None], starting: bool, what: str) -> list:
    """Each worker's ``(ok, payload)`` answer, in order; on a failure or a dead worker, ``close()`` and raise.

    ``starting``: the workers are reporting that they started; one that died then most likely
    re-imported an unguarded script (:data:`MAIN_GUARD_HINT`).
    """
    results = []
    for pipe in pipes:
        try:
            ok, payload = pipe.recv()
        except EOFError:
            ok, payload = False, "a worker process died" + (f" while starting. {MAIN_GUARD_HINT}" if starting else "")
        if not ok:
            close()
            raise RuntimeError(f"{what} failed: {payload}")
        results.append(payload)
    return results


def close_workers(pipes: list, procs: list) -> None:
    """Ask every worker to close, then wait for it (terminating one that does not exit within 5 s)."""
    for pipe in pipes:
        try:
            pipe.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()


def serve_commands(pipe, build: Callable[[], Any], commands: dict[str, Callable[[Any, Any], Any]],
                   close: Callable[[Any], None], on_error: Callable[[], None] | None = None) -> None:
    """A worker process's loop: build its object, report ``(True, None)`` or the error, then answer each
    ``(command, data)`` with ``(True, commands[command](obj, data))`` or ``(False, error)`` until ``close``.

    ``on_error`` runs before an error is reported (e.g. to release workers waiting for this one).
    Ctrl-C is the parent's to handle (a terminal sends it to every process of the job): a worker ignores
    it and ends when the parent closes it or exits (its pipe then reads end-of-file).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        obj = build()
        pipe.send((True, None))
    except Exception as exc:  # reported to the parent, which raises it
        pipe.send((False, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            command, data = pipe.recv()
        except EOFError:  # the parent is gone without closing us
            close(obj)
            return
        try:
            if command not in commands:
                close(obj)
                return
            pipe.send((True, commands[command](obj, data)))
        except Exception as exc:
            if on_error is not None:
                on_error()
            pipe.send((False, f"{type(exc).__name__}: {exc}"))


def _worker(pipe, env_id: str, env_kwargs: dict, count: int, autoreset_mode: str, rewards: str, spec) -> None:
    """Runs one slice of copies in-process and answers the parent's commands. ``spec``: the parent's registration of
    the env, adopted where this process has none (an r-MDP registered at run time, or named by a bare id whose
    module only the parent imported, as ``gymnasium.make_vec`` passes it)."""
    gym.registry.setdefault(spec.id, spec)
    serve_commands(pipe, lambda: RMDPVectorEnv([lambda: make(env_id, **env_kwargs) for _ in range(count)], k=1,
                                               autoreset_mode=autoreset_mode, rewards=rewards),
                   {"step": lambda env, actions: env.step(actions),
                    "reset": lambda env, data: env.reset(seed=data[0], options=data[1]),
                    "call": lambda env, data: _answer(env.call, data[0], *data[1], **data[2]),
                    "set_attr": lambda env, data: _answer(env.set_attr, *data)},
                   close=lambda env: env.close())


#: What a script that starts worker processes needs (they import the script again, as ``__mp_main__``).
MAIN_GUARD_HINT = ("num_workers > 0 starts worker processes, which import your script again: put the code that "
                   "builds the env under `if __name__ == \"__main__\":` (or use num_workers=0)")


#: Memory one env copy may hold, by the family the env states (``metadata["rmdp_family"]``), for estimates made
#: before building copies: measured in one process, HalfCheetah 1.07 MiB and Ant 0.52 MiB a copy, ResourceGathering
#: 3 KiB, CartPole and the tabular tasks next to nothing.
COPY_BYTES = {"mujoco": 2**20, "default": 2**14}


def copy_bytes(env_id: str) -> int:
    """:data:`COPY_BYTES` of ``env_id``'s family (an unknown id, refused elsewhere with its own message: the default)."""
    from rmdp_envs.registration import env_metadata  # noqa: PLC0415

    try:
        family = env_metadata(env_id).get("rmdp_family")
    except ValueError:
        family = None
    return COPY_BYTES.get(family, COPY_BYTES["default"])


def make_vector_env(env_id: str, k: int = 1, copies_per_policy: int | None = None, env_kwargs: dict | None = None,
                    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
                    num_workers: int = 0, rewards: str = "vector",
                    main_share: float | None = None, *, m: int | None = None) -> RMDPVectorEnv | RMDPAsyncVectorEnv:
    """Build ``k * m`` copies of ``env_id`` (``m = copies_per_policy``, 1 unless given; ``m=`` names it too: issue 2's
    ``make_vector_env(env_id, k, m, ...)``) as one vector env.

    ``num_workers = 0`` steps every copy in this process (:class:`RMDPVectorEnv`); ``>= 1``
    adds that many worker processes, each stepping a share while this process steps its own
    (:class:`RMDPAsyncVectorEnv`): worth it when stepping the copies costs more than a
    round trip between processes (MuJoCo, yes; ResourceGathering and CartPole, no). On 2 cores
    use 1. ``rewards``: ``"vector"`` (every user's reward, the environments' contract) or
    ``"statistic"`` (the cheap description of :mod:`rmdp_envs.rewards`, for large populations).
    ``main_share``: with workers, the fraction of the copies this process steps itself (default
    :func:`default_main_share`); which process steps a copy never changes its results.
    ``autoreset_mode``: any of Gymnasium's (:class:`RMDPVectorEnv` says what each does); the solvers use ``SAME_STEP``.
    """
    if m is not None and copies_per_policy is not None:
        raise TypeError("make_vector_env takes the copies per policy once: copies_per_policy or m, not both")
    copies_per_policy = next((c for c in (copies_per_policy, m) if c is not None), 1)
    _check_reward_mode(rewards)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise TypeError(f"env_kwargs must be a dict of keyword arguments, got {type(env_kwargs).__name__} {env_kwargs!r}")
    env_kwargs = dict(env_kwargs or {})
    modes = [mode.value for mode in AUTORESET_MODES]
    if str(getattr(autoreset_mode, "value", autoreset_mode)) not in modes:
        raise ValueError(f"autoreset_mode must be an AutoresetMode ({', '.join(map(repr, modes))}), got {autoreset_mode!r}")
    if main_share is not None and not num_workers:
        raise ValueError(f"main_share applies with workers only (num_workers >= 1), got main_share={main_share} "
                         "with num_workers=0")
    if num_workers:
        refuse_unguarded_start()
    probe = make(env_id, **env_kwargs)  # validates the id and kwargs once, with a clear error
    check_k(k, probe.unwrapped.population.n)
    m = copies_per_policy
    if int(m) != m or m < 1:
        raise ValueError(f"copies_per_policy must be an integer >= 1, got {m}")
    if int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")
    need, available = copy_bytes(env_id) * k * m, available_memory()
    if available is not None and need > available:
        probe.close()
        raise ValueError(f"{k * m} copies of {env_id} need about {need / 2**30:.1f} GiB, but {available / 2**30:.1f} GiB "
                         "are available: use fewer copies_per_policy")
    if num_workers:
        try:
            return RMDPAsyncVectorEnv(env_id, env_kwargs, k, m, num_workers, autoreset_mode, rewards=rewards,
                                      main_share=main_share, layout_env=probe)
        finally:
            probe.close()
    fns = [lambda: probe] + [lambda: make(env_id, **env_kwargs) for _ in range(k * m - 1)]
    return RMDPVectorEnv(fns, k=k, autoreset_mode=autoreset_mode, rewards=rewards)
