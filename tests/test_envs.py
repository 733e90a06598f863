"""API tests run over every registered r-MDP: the contract every environment keeps."""

import json
import subprocess
import sys

import gymnasium as gym
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv
import numpy as np
import pytest

import rmdp_envs
from rmdp_envs import Population
from rmdp_envs.envs.cartpole_position import CartPolePositionEnv
from rmdp_envs.envs.mujoco_speed import SPEED_FACTS, SpeedRewardMixin, without_settotalmass_warning

ENV_IDS = rmdp_envs.registered_ids()
# Small populations keep the API tests fast; the population itself is tested separately.
SMALL = {eid: ({"n_agents": 8} if "Speed" in eid or "CartPole" in eid else {}) for eid in ENV_IDS}


# check_env (inside check_rmdp_env) warns that unbounded observation boxes (MuJoCo's, CartPole's velocities) are
# wide, as it does for Gymnasium's own envs; any other warning still shows
WIDE_BOXES = pytest.mark.filterwarnings("ignore:.*A Box observation space m(in|ax)imum value is -?infinity:UserWarning")


@WIDE_BOXES
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_keeps_the_rmdp_contract(env_id):
    """Population and reward space, stated facts, Gymnasium's check_env on one user's view, float32 reward
    vectors inside the space, seeded determinism over 200 steps, pickling, the users' reward description."""
    env = gym.make(env_id, **SMALL[env_id])
    rmdp_envs.check_rmdp_env(env, steps=200, seed=3)
    assert env.unwrapped.metadata["rmdp_family"] == rmdp_envs.env_metadata(env_id)["rmdp_family"]  # the instance says it too


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_make_vec_builds_the_reward_vector_env(env_id):
    """``gymnasium.make_vec(id, num_envs=4, k=2)`` (its default mode: the registered vector entry point) gives the
    steps of ``make_vector_env(id, 2, 2)`` with Gymnasium's default autoreset for the same seed and actions, with ``(num_envs, n)`` rewards and a spec
    that still serializes to JSON."""
    built = gym.make_vec(env_id, num_envs=4, k=2, **SMALL[env_id])
    reference = rmdp_envs.make_vector_env(env_id, 2, 2, SMALL[env_id], autoreset_mode="NextStep")  # Gymnasium's
    assert isinstance(built, rmdp_envs.RMDPVectorEnv) and built.num_envs == 4
    assert built.spec.kwargs["vectorization_mode"] == "vector_entry_point" and json.loads(built.spec.to_json())
    n = reference.envs[0].unwrapped.population.n
    obs, _ = built.reset(seed=5)
    ref_obs, _ = reference.reset(seed=5)
    np.testing.assert_array_equal(obs, ref_obs)
    built.action_space.seed(0)
    for _ in range(60):
        action = built.action_space.sample()
        got, want = built.step(action), reference.step(action)
        for a, b in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(a, b)
    assert got[1].shape == (4, n)
    assert built.reward_space == built.single_reward_space and built.reward_space.shape == (n,)  # MO-Gymnasium's name
    built.close(), reference.close()


def test_gymnasium_make_vec_sync_mode_takes_a_scalar_view_per_copy():
    """``wrappers=`` needs Gymnasium's own vectorizer (``make_vec`` refuses it with the entry point): with a
    ``GroupReward`` per copy, ``SyncVectorEnv`` steps the group's scalar reward, the sum of its users' rewards."""
    import functools
    users = [0, 3, 7]
    built = gym.make_vec("rmdp/ResourceGathering-v0", num_envs=2, vectorization_mode="sync",
                         vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},  # episodes end here
                         wrappers=[functools.partial(rmdp_envs.GroupReward, users=users)])
    reference = rmdp_envs.make_vector_env("rmdp/ResourceGathering-v0", 1, 2)
    built.reset(seed=1), reference.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = rng.integers(0, 4, size=2)
        _, reward, terminated, *_ = built.step(actions)
        _, vectors, reference_terminated, *_ = reference.step(actions)
        np.testing.assert_allclose(reward, vectors[:, users].sum(1), rtol=1e-6)
        np.testing.assert_array_equal(terminated, reference_terminated)
    built.close(), reference.close()


def test_gymnasium_make_vec_names_bad_arguments():
    with pytest.raises(ValueError, match="multiple of k"):
        gym.make_vec("rmdp/Chain-v0", num_envs=3, k=2)
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        gym.make_vec("rmdp/Chain-v0", num_envs=0)
    with pytest.raises(ValueError, match="autoreset_mode must be an AutoresetMode"):
        gym.make_vec("rmdp/Chain-v0", num_envs=2, autoreset_mode="Sometimes")


class _Float64Rewards(CartPolePositionEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward.astype(np.float64), terminated, truncated, info


class _RewardsOutsideTheSpace(CartPolePositionEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward + np.float32(1.0), terminated, truncated, info


class _UnseededNoise(CartPolePositionEnv):
    """From its 5th step on, the last user's reward comes from a generator that reset(seed=...) does not
    reseed: not reproducible, though the first steps (all Gymnasium's own check_env compares) are."""
    _noise = np.random.default_rng()

    def reset(self, **kwargs):
        self._steps = 0
        return super().reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._steps += 1
        if self._steps >= 5:
            reward[-1] = np.float32(0.1) * np.float32(self._noise.random())
        return obs, reward, terminated, truncated, info


class _HalvedRewards(CartPolePositionEnv):
    """Returns half the rewards its user_rewards() description (inherited) rebuilds."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward * np.float32(0.5), terminated, truncated, info


class _NoFamily(CartPolePositionEnv):
    metadata = {**CartPolePositionEnv.metadata, "rmdp_family": None}


@WIDE_BOXES
@pytest.mark.parametrize("env_class,rule", [
    (_Float64Rewards, "float32 array of shape"), (_RewardsOutsideTheSpace, "leaves reward_space"),
    (_UnseededNoise, "differs between two runs"), (_HalvedRewards, "does not rebuild the reward vector"),
    (_NoFamily, "rmdp_family"),
])
def test_check_rmdp_env_names_the_broken_rule(env_class, rule):
    with pytest.raises(rmdp_envs.RMDPContractError, match=rule):
        rmdp_envs.check_rmdp_env(env_class(n_agents=6), steps=100)


def test_check_rmdp_env_needs_a_population_and_an_env():
    env = CartPolePositionEnv(n_agents=4)
    env.population = env.population.params  # an array, not a Population
    with pytest.raises(rmdp_envs.RMDPContractError, match="must be a rmdp_envs.Population"):
        rmdp_envs.check_rmdp_env(env)
    with pytest.raises(TypeError, match="gymnasium.Env"):
        rmdp_envs.check_rmdp_env("rmdp/CartPolePosition-v0")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        rmdp_envs.check_rmdp_env(CartPolePositionEnv(n_agents=4), steps=0)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_prints_no_warnings(env_id, tmp_path):
    """Nothing on stderr, and no ``MUJOCO_LOG.TXT`` (where MuJoCo's own handler also writes) left in the cwd."""
    code = f"import rmdp_envs, gymnasium as g; e = g.make({env_id!r}); e.reset(seed=0); e.step(e.action_space.sample())"
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_gymnasiums_own_robot_is_quiet_inside_the_silencer(tmp_path):
    """The benchmarks' raw rates and the dynamics test build Gymnasium's HalfCheetah inside the silencer: without
    it MuJoCo >= 3.16 prints the deprecation and writes MUJOCO_LOG.TXT into the working directory."""
    quiet = ("from rmdp_envs.envs.mujoco_speed import without_settotalmass_warning as w; import gymnasium as g\n"
             "with w(): g.make('HalfCheetah-v5')")
    proc = subprocess.run([sys.executable, "-c", quiet], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert list(tmp_path.iterdir()) == []
    loud = subprocess.run([sys.executable, "-c", "import gymnasium as g; g.make('HalfCheetah-v5')"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "settotalmass" in loud.stderr  # the silencer is what keeps it quiet, not a MuJoCo that stopped warning


def test_only_the_settotalmass_deprecation_is_silenced():
    """MuJoCo >= 3.16 warns about Gymnasium's half_cheetah.xml on every compile; other warnings still pass."""
    import mujoco
    seen = []
    mujoco.set_mju_user_warning(seen.append)
    try:
        with without_settotalmass_warning():
            handler = mujoco.get_mju_user_warning()
            handler("compiler attribute 'settotalmass' is deprecated and will be removed in a future release")
            handler("Nan, Inf or huge value in QACC at DOF 0")
            gym.make("rmdp/HalfCheetahSpeed-v0").close()
        assert seen == ["Nan, Inf or huge value in QACC at DOF 0"]
        assert mujoco.get_mju_user_warning() == seen.append  # the caller's handler is back
    finally:
        mujoco.set_mju_user_warning(None)


SPEED_IDS = [e for e in ENV_IDS if "Speed" in e]


@pytest.mark.parametrize("env_id", SPEED_IDS)
def test_speed_reward_matches_formula_from_info(env_id):
    env = gym.make(env_id, n_agents=50, population_seed=7)
    targets = env.unwrapped.population.params[:, 0]
    low, high = env.unwrapped.target_range
    half_width = (high - low) / 20
    env.reset(seed=1)
    env.action_space.seed(1)
    seen_positive = False
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        expected = 0.1 * np.clip(1 - np.abs(info["x_velocity"] - targets) / half_width, 0, 1)
        np.testing.assert_allclose(reward, expected, atol=1e-6)
        seen_positive |= bool(reward.max() > 0)
        if terminated or truncated:
            env.reset()
    assert seen_positive, "no agent was ever rewarded: the check above would be vacuous"


def test_speed_reward_with_targets_on_the_velocity():
    """Force every target onto the current velocity: everyone gets the full 0.1 (window edges included)."""
    env = gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=5)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    v = info["x_velocity"]
    reward_fn = rmdp_envs.rewards.TargetWindowReward(np.array([v, v + 0.1, v - 0.2, v + 0.2, v + 5]), 0.2, 0.1)
    np.testing.assert_allclose(reward_fn(v), [0.1, 0.05, 0.0, 0.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("env_id,base_id", [("rmdp/HalfCheetahSpeed-v0", "HalfCheetah-v5"), ("rmdp/HopperSpeed-v0", "Hopper-v5"),
                                             ("rmdp/Walker2dSpeed-v0", "Walker2d-v5"), ("rmdp/AntSpeed-v1", "Ant-v5"),
                                             ("rmdp/CartPolePosition-v0", "CartPole-v1")])
def test_dynamics_are_gymnasiums(env_id, base_id):
    kwargs = {"ctrl_cost_weight": 0.0} if "Speed" in env_id else {}
    if "Ant" in env_id:
        kwargs.update(contact_cost_weight=0.0, healthy_z_range=(0.4, 1.0))
    with without_settotalmass_warning():  # the raw robot's compile warns as ours would
        ours, raw = gym.make(env_id, n_agents=3), gym.make(base_id, **kwargs)
    assert ours.spec.max_episode_steps == raw.spec.max_episode_steps
    o1, _ = ours.reset(seed=5)
    o2, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    raw.action_space.seed(5)
    for _ in range(100):
        action = raw.action_space.sample()
        o1, _, t1, tr1, _ = ours.step(action)
        o2, _, t2, tr2, _ = raw.step(action)
        np.testing.assert_array_equal(o1, o2)
        assert (t1, tr1) == (t2, tr2)
        if t1 or tr1:
            break


def test_cartpole_position_reward_formula():
    env = gym.make("rmdp/CartPolePosition-v0", n_agents=40, population_seed=2)
    targets = env.unwrapped.population.params[:, 0]
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        np.testing.assert_array_equal(reward, np.where(np.abs(info["x_position"] - targets) < 1 / 20, np.float32(0.1), 0))
        if terminated or truncated:
            env.reset()


def test_retired_ant_version_names_the_current_one():
    """MuJoCo 4 changed Ant's contact dynamics, so AntSpeed is -v1; asking for -v0 says which id to use."""
    with pytest.raises(gym.error.DeprecatedEnv, match="rmdp/AntSpeed-v1"), \
            pytest.warns(DeprecationWarning, match="rmdp/AntSpeed-v0 is out of date"):  # Gymnasium's own word
        gym.make("rmdp/AntSpeed-v0")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_class_documents_itself(env_id):
    """Each env class is its own manual (Gymnasium's way): a docstring with its version history."""
    doc = type(gym.make(env_id, **SMALL[env_id]).unwrapped).__doc__ or ""
    assert "Version History" in doc and "v" + env_id.rsplit("-v", 1)[1] in doc


def test_speed_env_defaults_follow_the_paper():
    for env_id, target_range in [("rmdp/HalfCheetahSpeed-v0", (0, 4)), ("rmdp/HopperSpeed-v0", (0, 2.5)),
                                 ("rmdp/Walker2dSpeed-v0", (0, 2.5)), ("rmdp/AntSpeed-v1", (0, 3))]:
        env = gym.make(env_id)
        pop = env.unwrapped.population
        assert pop.n == 100 and pop.kind == "uniform" and pop.seed == 0
        assert env.unwrapped.target_range == target_range
        assert target_range[0] <= pop.params.min() and pop.params.max() <= target_range[1]
        assert env.spec.max_episode_steps == 1000
    ant = gym.make("rmdp/AntSpeed-v1").unwrapped
    assert ant._ctrl_cost_weight == 0 and ant._contact_cost_weight == 0 and ant._healthy_z_range == (0.4, 1.0)


def test_env_accepts_population_object_and_dict():
    pop = Population.sample("clusters", 12, 0.0, 4.0, seed=3)
    a = gym.make("rmdp/HalfCheetahSpeed-v0", population=pop).unwrapped.population
    b = gym.make("rmdp/HalfCheetahSpeed-v0", population=json.loads(json.dumps(pop.to_dict()))).unwrapped.population
    assert a == pop and b == pop


@pytest.mark.parametrize("env_id", ["rmdp/HalfCheetahSpeed-v0", "rmdp/CartPolePosition-v0"])
def test_a_ready_population_drawn_over_another_interval_needs_its_target_range(env_id):
    """The reward window is l = (high - low) / 20 of ``target_range``: a population drawn over (0, 10) used to get the
    default's window silently; now it says so, and an explicit ``target_range`` sets the window."""
    pop = Population.sample("uniform", 20, 0.0, 10.0, seed=0)
    with pytest.raises(ValueError, match=r"drawn over \(0, 10\).*pass target_range="):
        gym.make(env_id, population=pop)
    env = gym.make(env_id, population=pop.to_dict(), target_range=(0, 10)).unwrapped
    assert env.population == pop and env.half_width == 0.5 and env.target_range == (0.0, 10.0)
    bare = Population(params=pop.params, kind="given")  # no interval of its own: the task's default window
    assert gym.make(env_id, population=bare).unwrapped.half_width == pytest.approx(
        np.diff(type(gym.make(env_id).unwrapped).default_target_range)[0] / 20)


@pytest.mark.filterwarnings("ignore:.*initialised with render_mode='bogus':UserWarning")  # Gymnasium's make warns first
@pytest.mark.parametrize("env_id", ["rmdp/HalfCheetahSpeed-v0", "rmdp/CartPolePosition-v0"])
@pytest.mark.parametrize("kwargs,message", [
    ({"target_range": 5}, "target_range must be a pair"),
    ({"target_range": (3, 1)}, "target_range needs finite low < high"),
    ({"target_range": (0, float("nan"))}, "target_range needs finite low < high"),
    ({"population": Population(params=np.zeros((3, 2)), kind="x")}, "one target per user"),
    ({"render_mode": "bogus"}, "renders in .*got render_mode='bogus'"),
])
def test_target_tasks_refuse_bad_arguments_at_make(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, n_agents=4, **kwargs)


def test_a_boolean_population_size_is_refused_whatever_ran_before():
    """The sampled population is cached by its arguments: True == 1 must not find n_agents=1's entry."""
    gym.make("rmdp/CartPolePosition-v0", n_agents=1, population_seed=5)
    for bad in ({"n_agents": True, "population_seed": 5}, {"n_agents": 1, "population_seed": True}):
        with pytest.raises(ValueError, match="must be an integer"):
            gym.make("rmdp/CartPolePosition-v0", **bad)


def test_cartpole_position_pays_nothing_after_termination():
    """As Gymnasium's CartPole (0.0 after ``terminated``): stepping on does not keep paying the users."""
    env = gym.make("rmdp/CartPolePosition-v0", n_agents=40, target_range=(-2.4, 2.4)).unwrapped  # wide: most users paid
    env.reset(seed=0)
    terminated, paid = False, 0.0
    while not terminated:
        _, reward, terminated, _, _ = env.step(1)
        paid += reward.sum()
    assert paid > 0
    with pytest.warns(UserWarning, match="already returned terminated = True"):
        after = [env.step(1)[1] for _ in range(5)]
    assert all(r.shape == (40,) and r.dtype == np.float32 and not r.any() for r in after)


def test_unknown_population_kind_raises():
    with pytest.raises(ValueError, match="unknown population kind"):
        gym.make("rmdp/HalfCheetahSpeed-v0", population="normal")


def test_unknown_env_id_raises_clear_error():
    with pytest.raises(ValueError, match="unknown env id 'rmdp/Nope-v0'"):
        rmdp_envs.make("rmdp/Nope-v0")
    with pytest.raises(ValueError, match="unknown env id"):
        rmdp_envs.make_vector_env("rmdp/Nope-v0", k=2)
    with pytest.raises(gym.error.Error):
        gym.make("rmdp/Nope-v0")


def test_a_retired_version_is_answered_with_the_current_one():
    """AntSpeed-v0 was retired with MuJoCo 4: the error names -v1 instead of listing every r-MDP."""
    with pytest.raises(ValueError, match=r"unknown env id 'rmdp/AntSpeed-v0': .* use rmdp/AntSpeed-v1$"):
        rmdp_envs.make("rmdp/AntSpeed-v0")
    with pytest.raises(ValueError, match=r"use rmdp/ResourceGathering-v0$"):
        rmdp_envs.make("rmdp/ResourceGathering-v7")


def test_wrong_action_shape_raises():
    env = gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=3)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.zeros(5))
    rg = gym.make("rmdp/ResourceGathering-v0")
    rg.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an integer"):
        rg.step(7)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_controls_and_out_of_range_pushes_are_refused(bad, tmp_path, monkeypatch):
    """MuJoCo took a NaN control, warned, wrote MUJOCO_LOG.TXT into the working folder, reset its state and returned
    ordinary rewards; CartPole's own check is an assert (gone under python -O). Both refuse in a ValueError now, the
    vector env's step too (once for all copies), and nothing is written."""
    monkeypatch.chdir(tmp_path)
    env = gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        env.step(np.full(6, bad))
    vec = rmdp_envs.make_vector_env("rmdp/HalfCheetahSpeed-v0", k=1, copies_per_policy=2, num_workers=0,
                                    env_kwargs={"n_agents": 3})
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        vec.step(np.full((2, 6), bad))
    vec.close()
    cart = gym.make("rmdp/CartPolePosition-v0", n_agents=3)
    cart.reset(seed=0)
    for action in (2, -5, 1.7):
        with pytest.raises(ValueError, match="action must be 0"):
            cart.step(action)
    assert not any(tmp_path.iterdir())


class SwimmerSpeed(SpeedRewardMixin, SwimmerEnv):
    """A speed task of one's own on a robot without Gymnasium's health test (module level: the check pickles it)."""
    metadata = {**SwimmerEnv.metadata, **SPEED_FACTS}
    default_target_range = (0.0, 0.5)
    base_defaults = {"ctrl_cost_weight": 0.0}


class InconsistentSwimmerSpeed(SwimmerSpeed):
    """Its health ends episodes in step_velocity only."""
    _terminates = True
    _terminate_when_unhealthy = True
    is_healthy = property(lambda self: False)


def test_a_speed_task_on_a_robot_without_a_health_test_steps_and_passes_the_check():
    """A speed task of one's own on Swimmer (no is_healthy) read is_healthy in step_velocity, the solvers' rollout
    step, and failed there only; check_rmdp_env now compares step_velocity with step."""
    env = SwimmerSpeed(n_agents=5)
    env.reset(seed=0)
    assert env.step_velocity(np.zeros(2))[2] is False
    rmdp_envs.check_rmdp_env(gym.wrappers.TimeLimit(env, 50), steps=60)
    with pytest.raises(rmdp_envs.RMDPContractError, match="step_velocity"):
        rmdp_envs.check_rmdp_env(gym.wrappers.TimeLimit(InconsistentSwimmerSpeed(n_agents=5), 50), steps=60)


@pytest.mark.parametrize("env_id", ["rmdp/HalfCheetahSpeed-v0", "rmdp/HopperSpeed-v0", "rmdp/Walker2dSpeed-v0",
                                    "rmdp/AntSpeed-v1"])
def test_speed_tasks_name_their_keywords_and_refuse_reward_weights(env_id):
    """A misspelt keyword names what the task takes (Gymnasium's robot named only MujocoEnv.__init__); a keyword that
    only weighs the robot's scalar reward is refused (it was accepted and changed nothing); the robot's and
    MujocoEnv's other keywords still pass."""
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_users'; it takes n_agents, .*render_mode"):
        gym.make(env_id, n_users=10)
    with pytest.raises(ValueError, match="ctrl_cost_weight only weighs .*scalar reward"):
        gym.make(env_id, ctrl_cost_weight=10.0)
    env = gym.make(env_id, n_agents=3, reset_noise_scale=0.2, render_mode="rgb_array", width=32, height=32)
    assert env.unwrapped._reset_noise_scale == 0.2 and env.unwrapped.render_mode == "rgb_array"
