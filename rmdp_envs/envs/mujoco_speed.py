"""MuJoCo locomotion where every user wants the robot to run at its own target speed.

Gymnasium's v5 environments supply the dynamics unchanged; only the reward is replaced by a
vector with one entry per user (and the control/contact costs, which belong to no user, are
switched off as in the paper).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import EzPickle
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from rmdp_envs.bounds import MAX_TENT_USERS, TENT_BINS, binned_tent_welfare_bound, tent_welfare_bound
from rmdp_envs.rewards import TargetWindowReward, WindowRewards
from rmdp_envs.core import (NO_REWARD_VECTOR, check_k, check_render_mode, derived, init_keyword_chain, make_reward_space,
                            resolve_target_population)
from rmdp_envs.population import Population

#: Per-step reward of a user whose target is met exactly; 1000 steps give at most 100.
REWARD_SCALE = 0.1


#: The facts every speed task states (:data:`rmdp_envs.core.EVALUATION_CLASSES`, :data:`~rmdp_envs.core.FAMILIES`):
#: continuous physics, re-evaluated with the leaderboard's loose tolerance; the solvers' MuJoCo defaults.
SPEED_FACTS = {"rmdp_evaluation": "chaotic", "rmdp_family": "mujoco"}


#: Gymnasium robot keywords that only weigh its scalar reward (the speed tasks replace it with the users' vector).
REWARD_ONLY_KEYWORDS = ("forward_reward_weight", "ctrl_cost_weight", "contact_cost_weight", "healthy_reward")


class SpeedRewardMixin:
    """Replaces a Gymnasium MuJoCo env's scalar reward by the users' target-speed rewards.

    A speed task is this mixin before one of Gymnasium's v5 robots (``class HalfCheetahSpeedEnv(
    SpeedRewardMixin, HalfCheetahEnv)``), which keeps the dynamics, observation and action unchanged.

    ## Rewards
    A float32 vector of length ``n_agents``: user ``i`` with target ``t_i`` gets
    ``0.1 * clip(1 - |v - t_i| / l, 0, 1)`` per step, ``v = info["x_velocity"]``,
    ``l = (high - low) / 20`` for targets from ``(low, high)``; at most 100 per user over the
    1000-step limit.

    ## Population
    ``n_agents`` (default 100) targets drawn by the sampler ``population`` (default ``"uniform"``)
    from ``target_range`` (default: the task's :attr:`default_target_range`) with ``population_seed``
    (default 0); or pass a :class:`rmdp_envs.Population` (or its dict) as ``population``.
    ``env.unwrapped.population``.

    ## Arguments
    ``n_agents``, ``population``, ``population_seed``, ``target_range``, and any keyword of the
    robot's Gymnasium env (over the task's :attr:`base_defaults`).
    """

    #: the interval the users' targets are drawn from unless ``target_range`` says otherwise
    default_target_range: tuple[float, float] = (0.0, 1.0)
    #: keywords the task passes to the Gymnasium robot unless the caller overrides them (the costs no user pays)
    base_defaults: dict[str, Any] = {}

    def __init__(self, n_agents: int = 100, population: str | Population | dict = "uniform",
                 population_seed: int | None = 0, target_range: tuple[float, float] | None = None, **kwargs):
        self._check_robot_keywords(kwargs)
        check_render_mode(kwargs.get("render_mode"), self.metadata, type(self).__name__)
        self._init_population(n_agents, population, population_seed, target_range)
        with without_settotalmass_warning():
            super().__init__(**{**self.base_defaults, **kwargs})
        # Gymnasium's MuJoCo __init__ sets the instance's own metadata (render_fps): state the task's facts there too
        self.metadata = {**self.metadata, **SPEED_FACTS}
        # Record our own arguments (the robot recorded its own), so pickling rebuilds this class.
        EzPickle.__init__(self, n_agents, population, population_seed, target_range, **kwargs)

    def _check_robot_keywords(self, kwargs: dict[str, Any]) -> None:
        """Refuse a keyword the robot does not take, naming what the task takes (Gymnasium's robot would name only
        its own base class's ``__init__``), and one that only weighs the robot's scalar reward, which the users'
        reward vector replaces: it would be accepted and change nothing."""
        # after this mixin: the robot's keywords, and those its **kwargs pass on (MujocoEnv's render_mode, ...)
        chain = [(cls, names) for cls, names in init_keyword_chain(type(self)) if cls is not SpeedRewardMixin]
        robot, takes = chain[0][0], list(dict.fromkeys(name for _, names in chain for name in names))
        for name in kwargs:
            if name not in takes:
                # not the reward weights (refused below) nor what the robot passes MujocoEnv itself
                listed = [key for key in takes if key not in REWARD_ONLY_KEYWORDS + ("model_path", "observation_space")]
                raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {name!r}; it takes n_agents, "
                                f"population, population_seed, target_range and {robot.__name__}'s (MujocoEnv's "
                                f"included): {', '.join(listed)}")
        weights = sorted(set(kwargs) & set(REWARD_ONLY_KEYWORDS))
        if weights:
            raise ValueError(f"{type(self).__name__}: {', '.join(weights)} only weigh{'s' if len(weights) == 1 else ''} "
                             f"{robot.__name__}'s scalar reward, which the users' reward vector replaces, so "
                             f"{'it' if len(weights) == 1 else 'they'} would change nothing here")

    def _init_population(
        self,
        n_agents: int,
        population: str | Population | dict[str, Any],
        population_seed: int | None,
        target_range: tuple[float, float] | None,
    ) -> None:
        self.population, (low, high) = resolve_target_population(population, n_agents, population_seed, target_range,
                                                                 self.default_target_range)
        self.target_range = (low, high)
        self.half_width = (high - low) / 20.0
        self.targets = self.population.params[:, 0]
        self._reward_fn = derived(self.population, ("triangle", self.half_width, REWARD_SCALE),
                                  lambda: TargetWindowReward(self.targets, self.half_width, REWARD_SCALE, "triangle"))
        self.reward_space = make_reward_space(self.population.n, 0.0, REWARD_SCALE)

    @property
    def n_agents(self) -> int:
        return self.population.n

    def welfare_upper_bound(self, k: int) -> dict:
        """The best-response welfare no k policies can exceed (:func:`rmdp_envs.bounds.tent_welfare_bound`)."""
        k = check_k(k, self.population.n)
        horizon = gym.spec(self.spec.id).max_episode_steps if self.spec is not None else 1000
        scale = REWARD_SCALE * horizon / self.population.n
        derivation = (f"{REWARD_SCALE} x {horizon} steps x (1/n) x max over k constant speeds of the users' summed "
                      "tent rewards (exact DP over contiguous groups of sorted targets); a group's per-step reward "
                      "never exceeds its best constant speed's, so no k policies exceed it")
        if self.population.n <= MAX_TENT_USERS:
            total = tent_welfare_bound(self.targets, self.half_width, k)
        else:
            total, slack = binned_tent_welfare_bound(self.targets, self.half_width, k)
            derivation += (f"; targets rounded to {TENT_BINS} bins, which adds at most {slack * scale:.4g} "
                           "(each tent is 1/l-Lipschitz)")
        return {"welfare": round(total * scale, 6), "kind": "upper bound", "derivation": derivation}

    #: ``False`` skips building the ``(n,)`` reward vector (``step`` then returns an empty one): set by
    #: the vector env for solvers and evaluation that read the users' rewards from :meth:`user_rewards`.
    reward_vector = True

    def user_rewards(self) -> WindowRewards:
        """Every user's reward as a function of ``info["x_velocity"]`` (:mod:`rmdp_envs.rewards`)."""
        return WindowRewards(self._reward_fn, "x_velocity")

    def step(self, action):
        _check_finite(action)
        obs, _, terminated, truncated, info = super().step(action)
        reward = self._reward_fn(info["x_velocity"]) if self.reward_vector else NO_REWARD_VECTOR
        return obs, reward, terminated, truncated, info

    def step_velocity(self, action) -> tuple[np.ndarray, float, bool]:
        """One step of the dynamics alone: ``(observation, info["x_velocity"], terminated)`` of :meth:`step`.

        Gymnasium's ``step`` also computes the costs and healthy reward that no user receives, an
        info dict and the reward vector: a quarter of a HalfCheetah step's time. The vector env's
        statistic mode, which needs only the velocity, calls this instead; the same MuJoCo calls
        and float operations as Gymnasium's v5 ``step``, so the same numbers (test against the
        registered envs in ``tests/test_rewards.py``). ``action`` must have the action space's shape and be finite
        (the vector env checks a step's actions once for all copies).
        """
        before = self._forward_x()
        self._step_mujoco_simulation(action, self.frame_skip)
        velocity = (self._forward_x() - before) / self.dt
        terminated = self._terminates and (not self.is_healthy) and self._terminate_when_unhealthy
        return self._get_obs(), velocity, bool(terminated)

    @staticmethod
    def velocity_batch(envs: Sequence[gym.Env]) -> "VelocityBatch | None":
        """:meth:`step_velocity` of all these unwrapped copies at once (:class:`VelocityBatch`), or ``None``."""
        return VelocityBatch.of(envs)

    @property
    def _terminates(self) -> bool:
        """Whether unhealthy states end episodes: where the robot has Gymnasium's health test (``is_healthy``: Hopper,
        Walker2d, Ant), not for one without (HalfCheetah, Swimmer: a speed task of one's own on such a robot read
        ``is_healthy`` and failed on its first step). A subclass may set it as a class attribute."""
        return hasattr(type(self), "is_healthy")

    def _forward_x(self) -> float:
        """The x position Gymnasium's v5 ``step`` differentiates (the root joint's; Ant: its main body's)."""
        return self.data.qpos[0]


def _hopper_health(env: gym.Env, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """Gymnasium's v5 ``HopperEnv.is_healthy`` of stacked copies, the same comparisons."""
    (low, high), (min_z, max_z) = env._healthy_state_range, env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    state = np.concatenate((qpos, qvel), axis=1)[:, 2:]
    z, angle = qpos[:, 1], qpos[:, 2]
    return (np.all(np.logical_and(low < state, state < high), axis=1) & (min_z < z) & (z < max_z)
            & (min_angle < angle) & (angle < max_angle))


def _walker_health(env: gym.Env, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """Gymnasium's v5 ``Walker2dEnv.is_healthy`` of stacked copies, the same comparisons."""
    (min_z, max_z), (min_angle, max_angle) = env._healthy_z_range, env._healthy_angle_range
    z, angle = qpos[:, 1], qpos[:, 2]
    return (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)


#: The planar robots whose v5 observation is ``(qpos[1:], qvel)`` (Hopper and Walker2d clip the velocities to
#: +-10) and whose health depends on qpos and qvel alone: their velocity clip and health test for stacked copies.
_PLANAR = {HalfCheetahEnv: (None, None), HopperEnv: (10, _hopper_health), Walker2dEnv: (10, _walker_health)}

def _check_finite(action) -> None:
    """Refuse NaN or infinite controls: MuJoCo would warn that the simulation is unstable, write MUJOCO_LOG.TXT into
    the working folder, reset the state and go on, so the step would return ordinary-looking rewards."""
    if not np.isfinite(action).all():
        raise ValueError(f"action contains NaN or infinite values: {action!r}")


#: The settings every copy of a batch must share (what its observations, health and velocities depend on).
_SHARED = ("frame_skip", "dt", "_exclude_current_positions_from_observation", "_terminates",
           "_terminate_when_unhealthy", "_healthy_state_range", "_healthy_z_range", "_healthy_angle_range")


class VelocityBatch:
    """:meth:`SpeedRewardMixin.step_velocity` of many copies of one speed env at once: the same numbers.

    Why: in a rollout worker (``benchmarks/worker_loop.py``, 20 HalfCheetah copies) a copy's step cost
    about 33 us of which MuJoCo's own calls are 25-26 us; the rest was Python around each call (the
    ``dt`` property, ``_get_obs``'s flattens and concatenation, the attribute lookups of
    ``step_velocity`` and of the vector env's loop). Here a copy costs its MuJoCo calls (the same
    ``mj_step`` with the frame skip and ``mj_rnePostConstraint`` as Gymnasium's step, on the copy's own
    ``MjData``, so the same warm start) and three array copies; observations, velocities and health are
    then computed for all copies at once with numpy, the same float operations as Gymnasium's.

    For the planar robots of :data:`_PLANAR` (HalfCheetah, Hopper, Walker2d); :meth:`of` returns ``None``
    for Ant (contact forces in its observation, its main body's x) or a subclass that changes them, and the
    caller keeps ``step_velocity``. The copies' ``MjData`` must stay the same objects: Gymnasium's reset
    changes them in place.
    """

    def __init__(self, envs: Sequence[gym.Env], clip: int | None,
                 health: Callable[[gym.Env, np.ndarray, np.ndarray], np.ndarray] | None):
        first = self.first = envs[0]
        self.dt, self.frame_skip, self.clip, self.health = first.dt, first.frame_skip, clip, health
        self.skip = 1 if first._exclude_current_positions_from_observation else 0
        self.terminates = bool(first._terminates and first._terminate_when_unhealthy)
        self._copies = [(i, env.model, env.data, env.data.qpos, env.data.qvel, env.data.ctrl)
                        for i, env in enumerate(envs)]
        self.qpos = np.zeros((len(envs), first.model.nq))
        self.qvel = np.zeros((len(envs), first.model.nv))
        self.x_before = np.zeros(len(envs))

    @classmethod
    def of(cls, envs: Sequence[gym.Env]) -> "VelocityBatch | None":
        """A batch over these unwrapped copies, or ``None`` where their steps cannot be batched this way."""
        first = envs[0] if envs else None
        kind = type(first)
        base = next((base for base in _PLANAR if isinstance(first, base)), None)
        if not (isinstance(first, SpeedRewardMixin) and base is not None and kind._get_obs is base._get_obs
                and getattr(kind, "is_healthy", None) is getattr(base, "is_healthy", None)
                and kind._forward_x is SpeedRewardMixin._forward_x):
            return None  # observations, health or x of another kind: per-copy step_velocity
        shared = [getattr(first, name, None) for name in _SHARED]
        if any(type(env) is not kind or [getattr(env, name, None) for name in _SHARED] != shared for env in envs):
            return None
        return cls(envs, *_PLANAR[base])

    def step(self, actions: np.ndarray, copies: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step ``copies`` (indices into the batch; ``None``: all) with ``actions[copy]``: ``(observations,
        velocities, terminations)`` of those copies, in their order, as ``step_velocity`` returns them one by one."""
        step, post, frame_skip = mujoco.mj_step, mujoco.mj_rnePostConstraint, self.frame_skip
        qpos_all, qvel_all, x_before = self.qpos, self.qvel, self.x_before
        for i, model, data, qpos, qvel, ctrl in (self._copies if copies is None else [self._copies[c] for c in copies]):
            x_before[i] = qpos[0]
            ctrl[:] = actions[i]
            step(model, data, nstep=frame_skip)
            post(model, data)
            qpos_all[i] = qpos
            qvel_all[i] = qvel
        if copies is not None:
            qpos_all, qvel_all, x_before = qpos_all[copies], qvel_all[copies], x_before[copies]
        velocities = (qpos_all[:, 0] - x_before) / self.dt
        shown = qvel_all if self.clip is None else np.clip(qvel_all, -self.clip, self.clip)
        observations = np.concatenate((qpos_all[:, self.skip:], shown), axis=1)
        if self.terminates:
            terminations = ~self.health(self.first, qpos_all, qvel_all)
        else:
            terminations = np.zeros(len(velocities), dtype=bool)
        return observations, velocities, terminations


#: MuJoCo >= 3.16 deprecates the ``settotalmass`` compiler attribute of Gymnasium's half_cheetah.xml and
#: says so on every compile; the compiled model is the same, and the XML is Gymnasium's, not ours to edit.
_SETTOTALMASS = "compiler attribute 'settotalmass' is deprecated"


@contextmanager
def without_settotalmass_warning() -> Iterator[None]:
    """Drop MuJoCo's ``settotalmass`` deprecation while a model compiles; pass every other MuJoCo warning on.

    Public so that code building Gymnasium's own robots beside ours (the benchmarks' raw rates, the tests that
    compare dynamics) stays as quiet: MuJoCo's default handler prints the warning and appends it to a
    ``MUJOCO_LOG.TXT`` in the working directory."""
    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if _SETTOTALMASS in message:
            return
        if previous is not None:
            previous(message)
        else:  # what MuJoCo's own handler prints
            print(f"WARNING: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


class HalfCheetahSpeedEnv(SpeedRewardMixin, HalfCheetahEnv):
    """HalfCheetah where each of n users wants its own forward velocity (Ivanov & Ben-Porat, AAAI 2024).

    ## Dynamics, observation and action
    Exactly Gymnasium's ``HalfCheetah-v5`` with the control cost off (``ctrl_cost_weight=0``); see its
    documentation. Episodes never terminate; they are truncated at 1000 steps.

    ## Users
    Targets in (0, 4) by default. Rewards, population and arguments: :class:`SpeedRewardMixin`.

    ## Version History
    * v0: initial version (the paper's reward; Gymnasium v5 dynamics).
    """

    metadata = {**HalfCheetahEnv.metadata, **SPEED_FACTS}
    default_target_range = (0.0, 4.0)
    base_defaults = {"ctrl_cost_weight": 0.0}
    _terminates = False


class HopperSpeedEnv(SpeedRewardMixin, HopperEnv):
    """Hopper where each of n users wants its own forward velocity (Ivanov & Ben-Porat, AAAI 2024).

    ## Dynamics, observation and action
    Exactly Gymnasium's ``Hopper-v5`` with the control cost off; unhealthy states terminate, as there.

    ## Users
    Targets in (0, 2.5) by default. Rewards, population and arguments: :class:`SpeedRewardMixin`.

    ## Version History
    * v0: initial version (the paper's reward; Gymnasium v5 dynamics).
    """

    metadata = {**HopperEnv.metadata, **SPEED_FACTS}
    default_target_range = (0.0, 2.5)
    base_defaults = {"ctrl_cost_weight": 0.0}


class Walker2dSpeedEnv(SpeedRewardMixin, Walker2dEnv):
    """Walker2d where each of n users wants its own forward velocity (Ivanov & Ben-Porat, AAAI 2024).

    ## Dynamics, observation and action
    Exactly Gymnasium's ``Walker2d-v5`` with the control cost off; unhealthy states terminate, as there.

    ## Users
    Targets in (0, 2.5) by default. Rewards, population and arguments: :class:`SpeedRewardMixin`.

    ## Version History
    * v0: initial version (the paper's reward; Gymnasium v5 dynamics).
    """

    metadata = {**Walker2dEnv.metadata, **SPEED_FACTS}
    default_target_range = (0.0, 2.5)
    base_defaults = {"ctrl_cost_weight": 0.0}


class AntSpeedEnv(SpeedRewardMixin, AntEnv):
    """Ant where each of n users wants its own forward velocity (Ivanov & Ben-Porat, AAAI 2024).

    ## Dynamics, observation and action
    Exactly Gymnasium's ``Ant-v5`` with the control and contact costs off and ``healthy_z_range``
    (0.4, 1.0); unhealthy states terminate. The velocity is the main body's, as Gymnasium's.

    ## Users
    Targets in (0, 3) by default. Rewards, population and arguments: :class:`SpeedRewardMixin`.

    ## Version History
    * v1: MuJoCo 4 (its contact dynamics differ from MuJoCo 3's; ``benchmarks/results/mujoco4.md``).
    * v0: initial version under MuJoCo < 4, retired (``gymnasium.make`` names v1).
    """

    metadata = {**AntEnv.metadata, **SPEED_FACTS}
    default_target_range = (0.0, 3.0)
    base_defaults = {"ctrl_cost_weight": 0.0, "contact_cost_weight": 0.0, "healthy_z_range": (0.4, 1.0)}

    def _forward_x(self) -> float:
        """Gymnasium's v5 Ant differentiates its main body's x, not the root joint's."""
        return self.data.body(self._main_body).xpos[0]
