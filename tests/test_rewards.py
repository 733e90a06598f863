"""The cheap reward descriptions (rmdp_envs.rewards) give what the environments' reward vectors give.

Real environments, random actions: the statistic mode of the vector env must step the same
dynamics, and the group rewards, rebuilt reward vectors and episode returns computed from the
statistics must equal those computed from the ``(n,)`` reward vectors themselves.
"""

import numpy as np
import pytest

import rmdp_envs
from rmdp_envs.population import Population
from rmdp_envs.rewards import TableRewards, VectorRewards, WindowRewards, user_rewards_of
from rmdp_train.users import UserTracker, user_bins

K, M = 2, 2


def shuffled_speed_population(n: int, seed: int = 0) -> dict:
    """Unsorted targets, some outside the range and some equal: the prefix sums must not rely on order."""
    rng = np.random.default_rng(seed)
    targets = np.concatenate([rng.uniform(-0.5, 4.5, n - 4), [1.0, 1.0, 0.0, 4.0]])
    return Population(params=rng.permutation(targets)[:, None], kind="custom", seed=seed).to_dict()


CASES = [
    # a short time limit: truncations within the test's 300 steps, so the per-episode checks run here too
    ("rmdp/HalfCheetahSpeed-v0", dict(population=shuffled_speed_population(60), max_episode_steps=100), WindowRewards),
    ("rmdp/HopperSpeed-v0", dict(n_agents=40), WindowRewards),  # terminations: episodes of different lengths
    ("rmdp/CartPolePosition-v0", dict(n_agents=50), WindowRewards),  # box-shaped rewards
    ("rmdp/ResourceGathering-v0", {}, VectorRewards),
    ("rmdp/TabularRandom-v0", dict(n_agents=40), TableRewards),  # every user its own noisy table
    ("rmdp/GridGoals-v0", dict(n_agents=30), TableRewards),
    ("rmdp/Chain-v0", dict(n_agents=30), TableRewards),
]


@pytest.mark.parametrize("env_id,kwargs,kind", CASES)
def test_statistics_describe_the_reward_vectors(env_id, kwargs, kind):
    env = rmdp_envs.make(env_id, **kwargs)
    model = user_rewards_of(env)
    assert isinstance(model, kind)
    n = model.n
    vec = rmdp_envs.make_vector_env(env_id, K, M, kwargs)
    stat = rmdp_envs.make_vector_env(env_id, K, M, kwargs, rewards="statistic")
    o1, _ = vec.reset(seed=4)
    o2, _ = stat.reset(seed=4)
    for env_ in (vec, stat):
        env_.action_space.seed(4)
    rng = np.random.default_rng(0)
    weights = rng.random((K, n)) * (rng.random((K, n)) < 0.7)
    weights /= weights.sum(1, keepdims=True)
    grouped = model.grouped(weights)
    bins = user_bins(env.unwrapped.population.params, 7)  # 7 bins of similar users
    pooled = model.pooled(bins)
    sizes = np.bincount(bins)
    episodes = model.episode_returns(K * M)
    sums = np.zeros((K * M, n))
    finished_returns = []
    for _ in range(300):
        actions = vec.action_space.sample()
        a1 = vec.step(actions)
        a2 = stat.step(actions)
        for i in (0, 2, 3):  # observations, terminations, truncations: the same dynamics
            np.testing.assert_array_equal(a1[i], a2[i])
        reward, stats = a1[1], a2[1]
        assert stats.shape == (K * M, model.dim)
        np.testing.assert_allclose(model.rewards(stats), reward, rtol=0, atol=1e-7)
        np.testing.assert_allclose(grouped(stats, vec.policy_index),
                                   np.einsum("en,en->e", weights[vec.policy_index], reward), rtol=1e-6, atol=1e-7)
        per_bin = np.stack([np.bincount(bins, weights=row, minlength=7) for row in reward.astype(np.float64)]) / sizes
        np.testing.assert_allclose(pooled(stats), per_bin, rtol=1e-5, atol=1e-7)
        episodes.add(stats)
        sums += reward
        done = a1[2] | a1[3]
        for e in np.flatnonzero(done):
            np.testing.assert_allclose(episodes.combine([e], [1.0]), sums[e], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(a1[4]["episode"]["r"][e], sums[e], rtol=1e-5, atol=1e-5)
            finished_returns.append(sums[e].copy())
        episodes.clear(np.flatnonzero(done))
        sums[done] = 0.0
    assert finished_returns, "no episode ended: the per-episode checks never ran"
    np.testing.assert_allclose(episodes.returns(), sums, rtol=1e-6, atol=1e-6)
    vec.close()
    stat.close()


def test_tracker_folds_episodes_like_one_at_a_time():
    """Binned mode: the merged EMA over episodes ending together equals the per-user mode's one-by-one fold."""
    kwargs = dict(population=shuffled_speed_population(30))
    env = rmdp_envs.make_vector_env("rmdp/HalfCheetahSpeed-v0", K, M, kwargs, rewards="statistic")
    model, n, ema = env.user_rewards, 30, 0.9
    params = env.population.params

    class State:
        def __init__(self):
            self.utility, self.seen = np.zeros((K, n)), np.zeros(K, dtype=bool)

    per_user, binned = State(), State()
    exact = UserTracker(model, K, M, ema, user_bins(params, 128))
    pooled = UserTracker(model, K, M, ema, user_bins(params, 5))
    assert exact.per_user and exact.outputs == n and not pooled.per_user and pooled.outputs == 5
    rng = np.random.default_rng(1)
    for step in range(40):
        stats = rng.uniform(-1, 5, (K * M, 1))
        finished = (rng.random(K * M) < 0.5) if step % 7 == 6 else np.zeros(K * M, dtype=bool)
        vectors = model.rewards(stats)  # per-user mode rebuilds the reward vectors from the statistics
        np.testing.assert_array_equal(exact.step(stats, finished, per_user), vectors)
        assert pooled.step(stats, finished, binned).shape == (K * M, 5)
    assert per_user.seen.any()
    np.testing.assert_allclose(binned.utility, per_user.utility, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(binned.seen, per_user.seen)
    env.close()


def test_user_bins_are_quantiles_of_the_first_parameter():
    params = np.random.default_rng(0).permutation(np.arange(1000.0))[:, None]
    bins = user_bins(params, 10)
    assert np.bincount(bins).tolist() == [100] * 10
    assert all(params[bins == b].max() < params[bins == b + 1].min() for b in range(9))
    np.testing.assert_array_equal(user_bins(params[:10], 10), np.arange(10))


def test_statistic_mode_skips_the_reward_vector_and_checks_its_mode():
    env = rmdp_envs.make_vector_env("rmdp/HalfCheetahSpeed-v0", 1, 2, dict(n_agents=100_000), rewards="statistic")
    env.reset(seed=0)
    _, stats, *_ = env.step(env.action_space.sample())
    assert stats.shape == (2, 1) and all(not e.unwrapped.reward_vector for e in env.envs)
    env.close()
    with pytest.raises(ValueError, match="rewards must be one of"):
        rmdp_envs.make_vector_env("rmdp/HalfCheetahSpeed-v0", 1, 1, rewards="vectors")


def test_tabular_copies_share_their_tables_and_skip_the_vector():
    """A statistic-mode vector env of a tabular task: one set of reward tables per process, no (n,) vector per step,
    and per-step rewards rebuilt from the cell bit for bit the env's (float32) values."""
    kwargs = dict(n_agents=100_000)
    env = rmdp_envs.make_vector_env("rmdp/TabularRandom-v0", 2, 2, kwargs, rewards="statistic")
    tables = {id(e.unwrapped.R) for e in env.envs}
    assert len(tables) == 1 and not env.envs[0].unwrapped.R.flags.writeable
    env.reset(seed=0)
    _, stats, *_ = env.step(env.action_space.sample())
    assert stats.shape == (4, 1) and all(not e.unwrapped.reward_vector and e.unwrapped._step_rewards is None for e in env.envs)
    single = rmdp_envs.make("rmdp/TabularRandom-v0", **kwargs)
    single.reset(seed=0)
    _, reward, *_, info = single.step(1)
    np.testing.assert_array_equal(env.user_rewards.rewards([[info["state_action"]]])[0], reward)
    assert single.unwrapped.R is env.envs[0].unwrapped.R  # the same process: the same tables
    env.close()


def test_speed_copies_share_population_targets_and_reward_space():
    """A seeded population is drawn once per process: the copies share it, its sorted targets and their reward space."""
    env = rmdp_envs.make_vector_env("rmdp/HalfCheetahSpeed-v0", 2, 2, dict(n_agents=50_000), rewards="statistic")
    bases = [e.unwrapped for e in env.envs]
    for attribute in ("population", "_reward_fn", "reward_space"):
        assert len({id(getattr(base, attribute)) for base in bases}) == 1, attribute
    other = rmdp_envs.make("rmdp/HalfCheetahSpeed-v0", n_agents=50_000, population_seed=1).unwrapped
    assert other.population is not bases[0].population and other.population != bases[0].population
    assert other._reward_fn is not bases[0]._reward_fn and other.reward_space is bases[0].reward_space
    env.close()


def test_tabular_populations_given_by_the_caller_stay_theirs():
    """A Population passed in is the env's own, its tables not cached: only a sampler's name gives shared tables."""
    population = Population(params=np.linspace(0.0, 9.0, 12)[:, None], kind="custom")
    env = rmdp_envs.make("rmdp/Chain-v0", population=population)
    assert env.unwrapped.population is population
    other = rmdp_envs.make("rmdp/Chain-v0", population=population)
    assert other.unwrapped.R is not env.unwrapped.R


def test_evaluation_at_a_million_users():
    """Evaluation builds returns per episode, not per step, so 10^6 users evaluate (how fast: benchmarks/scale.py):
    every user keeps its own return, and the same call gives the same returns."""
    n = 1_000_000
    result = rmdp_envs.evaluate("rmdp/CartPolePosition-v0", lambda obs: np.zeros(len(obs), dtype=np.int64), k=2,
                                episodes=1, env_kwargs=dict(n_agents=n))
    assert result.returns.shape == (2, 1, n)
    assert result.returns.max() > 0 and np.unique(result.returns[0, 0]).size > 1  # per user, not one group value
    again = rmdp_envs.evaluate("rmdp/CartPolePosition-v0", lambda obs: np.zeros(len(obs), dtype=np.int64), k=2,
                               episodes=1, env_kwargs=dict(n_agents=n))
    np.testing.assert_array_equal(again.returns, result.returns)


@pytest.mark.parametrize("shape", ["triangle", "box"])
@pytest.mark.parametrize("presorted", [True, False])
def test_window_rewards_of_many_speeds_are_bit_for_bit_one_at_a_time(shape, presorted):
    """``TargetWindowReward.many`` (the per-user critic's rewards each step) equals stacking ``__call__``,
    window edges included, so it changes no solver's numbers."""
    from rmdp_envs.rewards import TargetWindowReward
    rng = np.random.default_rng(3)
    targets = rng.uniform(0, 4, 300)
    targets = np.sort(targets) if presorted else targets
    window = TargetWindowReward(targets, 0.2, 0.1, shape)
    xs = np.concatenate([rng.uniform(-1, 5, 100), targets[:10] + 0.2, targets[:10] - 0.2, targets[:10], [-9.0, 9.0]])
    one_at_a_time = np.stack([window(x) for x in xs])
    assert one_at_a_time.any()
    np.testing.assert_array_equal(window.many(xs), one_at_a_time)
    assert window.many(xs).tobytes() == one_at_a_time.tobytes()
    los = np.searchsorted(window.sorted_targets, xs - 0.2, side="right")
    his = np.searchsorted(window.sorted_targets, xs + 0.2, side="left")
    by_rows = window._many_by_rows(xs, los, his, np.zeros((xs.size, 300), dtype=np.float32))
    over_union = window._many_over_union(xs, int(los.min()), int(his.max()), np.zeros((xs.size, 300), dtype=np.float32))
    assert by_rows.tobytes() == one_at_a_time.tobytes() and over_union.tobytes() == one_at_a_time.tobytes()  # both paths
    assert window.many(np.array([-9.0])).shape == (1, 300) and not window.many(np.array([-9.0])).any()


def test_many_takes_the_cheaper_path_at_the_solvers_and_the_vector_envs_shapes():
    """The per-user critic's rollout (n = 100, thousands of speeds over the whole population) goes over the union in
    one pass; a vector env's step at n = 100,000 (16 speeds, windows of a few thousand users) goes row by row. The
    other way round cost the critic 3.1x and the vector env 14.5x (``benchmarks/results/many_paths.md``)."""
    from rmdp_envs.rewards import TargetWindowReward

    def paths(n, rows):
        window = TargetWindowReward(np.linspace(0, 4, n), 0.2, 0.1)
        xs = np.random.default_rng(0).uniform(0, 4, rows)
        t = window.sorted_targets
        return window.by_rows(np.searchsorted(t, xs - 0.2, side="right"), np.searchsorted(t, xs + 0.2, side="left"))

    assert not paths(100, 10_240)
    assert paths(100_000, 16)


def follow(ref, action, i, obs, term, trunc, infos, autoreset_mode):
    """Step the reference copy ``ref`` (made by ``gymnasium.make``) as the vector env stepped its copy ``i``: the same
    termination, truncation, final and next observation. Returns the reference's reward, info and whether its episode
    ended (``SameStep``: the reference reset, as the vector env's copy)."""
    ref_obs, ref_reward, ref_term, ref_trunc, info = ref.step(action)
    assert (term[i], trunc[i]) == (ref_term, ref_trunc)
    ended = bool(ref_term or ref_trunc)
    if ended and autoreset_mode == "SameStep":
        np.testing.assert_array_equal(infos["final_obs"][i], ref_obs)
        ref_obs, _ = ref.reset()
    np.testing.assert_array_equal(obs[i], ref_obs)
    return ref_reward, info, ended


def reset_next_step(ref, obs, autoreset_mode: str) -> bool:
    """A copy that ended its episode at the previous step: with ``NextStep`` this step was its reset (the reference
    resets too, and the observations must agree); returns whether the copy stays frozen (``Disabled``)."""
    if autoreset_mode != "NextStep":
        return True
    np.testing.assert_array_equal(obs, ref.reset()[0])
    return False


@pytest.mark.parametrize("autoreset_mode", ["SameStep", "Disabled", "NextStep"])
@pytest.mark.parametrize("env_id", ["rmdp/HalfCheetahSpeed-v0", "rmdp/HopperSpeed-v0", "rmdp/Walker2dSpeed-v0",
                                    "rmdp/AntSpeed-v1"])
def test_velocity_stepping_is_the_registered_gymnasium_envs_step(env_id, autoreset_mode):
    """The statistic mode steps the speed tasks' dynamics alone (``step_velocity``, or ``VelocityBatch`` for all
    copies at once; the time limit counted by the vector env): the same observations, velocities (to the bit), terminations, truncations and resets as
    copies made by ``gymnasium.make`` and stepped with ``env.step``, for the same seeds and actions."""
    import gymnasium as gym
    kwargs = {"n_agents": 5, "max_episode_steps": 60}  # a short time limit: truncations inside the test
    stat = rmdp_envs.make_vector_env(env_id, 2, 2, kwargs, rewards="statistic", autoreset_mode=autoreset_mode)
    assert stat._fast is not None  # the velocity stepping is what is under test
    # the planar robots' copies step together (VelocityBatch); Ant's one by one (step_velocity)
    assert (stat._batch is not None) == (env_id != "rmdp/AntSpeed-v1")
    refs = [gym.make(env_id, **kwargs) for _ in range(4)]
    obs, _ = stat.reset(seed=11)
    np.testing.assert_array_equal(obs, np.stack([ref.reset(seed=11 + i)[0] for i, ref in enumerate(refs)]))
    rng = np.random.default_rng(0)
    done, ends = np.zeros(4, dtype=bool), 0
    for _ in range(150):
        actions = rng.uniform(-1, 1, (4,) + stat.single_action_space.shape)
        obs, stats, term, trunc, infos = stat.step(actions)
        for i, ref in enumerate(refs):
            if done[i]:  # Disabled: a finished copy stays frozen; NextStep: this step is its reset
                assert stats[i, 0] == 0.0 and not term[i] and not trunc[i]
                done[i] = reset_next_step(ref, obs[i], autoreset_mode)
                continue
            _, info, ended = follow(ref, actions[i], i, obs, term, trunc, infos, autoreset_mode)
            assert stats[i, 0] == info["x_velocity"]
            ends += ended
            done[i] = ended and autoreset_mode != "SameStep"
    assert ends >= 4
    stat.close()


@pytest.mark.parametrize("autoreset_mode", ["SameStep", "Disabled", "NextStep"])
@pytest.mark.parametrize("env_id,kwargs", [
    ("rmdp/HalfCheetahSpeed-v0", dict(population=shuffled_speed_population(60))),  # VelocityBatch, unsorted targets
    ("rmdp/HopperSpeed-v0", dict(n_agents=40)),  # VelocityBatch with terminations
    ("rmdp/AntSpeed-v1", dict(n_agents=30)),  # step_velocity copy by copy
    ("rmdp/CartPolePosition-v0", dict(n_agents=50)),  # box-shaped window, env.step without its vector
    ("rmdp/TabularRandom-v0", dict(n_agents=40)),  # TableRewards
    ("rmdp/ResourceGathering-v0", {}),  # VectorRewards: the env's own vectors
])
@pytest.mark.parametrize("num_workers", [0, 1])
def test_vector_mode_gives_the_registered_envs_reward_vectors(env_id, kwargs, autoreset_mode, num_workers):
    """The vector mode rebuilds the speed tasks' reward vectors from the copies' velocities (in-process, or from what
    the worker sends): the same observations, reward vectors and episode returns (to the bit), terminations and
    truncations as copies made by ``gymnasium.make`` and stepped with ``env.step``, for the same seeds and actions."""
    import gymnasium as gym
    kwargs = dict(kwargs, max_episode_steps=40)  # a short time limit: truncations inside the test
    vec = rmdp_envs.make_vector_env(env_id, 2, 2, kwargs, autoreset_mode=autoreset_mode, num_workers=num_workers)
    rebuilt = vec._rebuild if num_workers else vec._by_statistic
    assert rebuilt == ("Speed" in env_id)  # the speed tasks rebuild their vectors from the velocities
    refs = [gym.make(env_id, **kwargs) for _ in range(4)]
    obs, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(obs, np.stack([ref.reset(seed=5 + i)[0] for i, ref in enumerate(refs)]))
    vec.action_space.seed(5)
    sums = np.zeros((4, vec.n_users), dtype=np.float32)
    done, ends = np.zeros(4, dtype=bool), 0
    for _ in range(100):
        actions = vec.action_space.sample()
        obs, rewards, term, trunc, infos = vec.step(actions)
        assert rewards.dtype == np.float32 and rewards.shape == (4, vec.n_users)
        if "final_obs" in infos:  # rows of copies that did not finish: the step's observation, with or without workers
            np.testing.assert_array_equal(infos["final_obs"][~infos["_final_obs"]], obs[~infos["_final_obs"]])
        for i, ref in enumerate(refs):
            if done[i]:  # Disabled: a finished copy stays frozen, with zero reward; NextStep: this step is its reset
                assert not rewards[i].any() and not term[i] and not trunc[i]
                done[i] = reset_next_step(ref, obs[i], autoreset_mode)
                continue
            ref_reward, _, ended = follow(ref, actions[i], i, obs, term, trunc, infos, autoreset_mode)
            assert rewards[i].tobytes() == np.asarray(ref_reward, dtype=np.float32).tobytes()
            sums[i] += ref_reward
            if ended:
                assert infos["episode"]["r"][i].tobytes() == sums[i].tobytes()
                sums[i] = 0.0
            ends += ended
            done[i] = ended and autoreset_mode != "SameStep"
    vec.close()
    assert ends >= 4


@pytest.mark.parametrize("env_id,kwargs", [
    ("rmdp/HopperSpeed-v0", dict(n_agents=20)),  # VelocityBatch, its episodes ending at different steps
    ("rmdp/ResourceGathering-v0", {}),  # the copies' own reward vectors
])
@pytest.mark.parametrize("num_workers", [0, 1])
def test_reset_mask_resets_only_the_masked_copies(env_id, kwargs, num_workers):
    """Gymnasium 1.x's partial reset (``options={"reset_mask": mask}``, with ``DISABLED`` autoreset): the masked
    copies start new episodes from their seeds, the others continue theirs exactly as copies never reset would
    (observations, reward vectors, episode returns to the bit); a mask of the wrong shape or dtype is refused."""
    import gymnasium as gym
    kwargs = dict(kwargs, max_episode_steps=30)
    vec = rmdp_envs.make_vector_env(env_id, 2, 2, kwargs, autoreset_mode="Disabled", num_workers=num_workers)
    refs = [gym.make(env_id, **kwargs) for _ in range(4)]
    obs, _ = vec.reset(seed=5)
    [ref.reset(seed=5 + i) for i, ref in enumerate(refs)]
    rng = np.random.default_rng(0)
    vec.single_action_space.seed(0)
    sums = np.zeros((4, vec.n_users), dtype=np.float32)
    frozen, resets = np.zeros(4, dtype=bool), 0
    for t in range(120):
        if t in (7, 45, 80):  # copies 1 and 3 (one of each policy) mid-episode or frozen, reset from seeds of their own
            mask = np.array([False, True, False, True])
            seeds = [None, 100 + t, None, 200 + t]
            obs, _ = vec.reset(seed=seeds, options={"reset_mask": mask})
            for i in np.flatnonzero(mask):
                want, _ = refs[i].reset(seed=seeds[i])
                np.testing.assert_array_equal(obs[i], want)
                sums[i], frozen[i] = 0.0, False
            resets += 1
        actions = np.stack([vec.single_action_space.sample() for _ in range(4)]) if env_id.startswith("rmdp/Hopper") \
            else rng.integers(0, 4, size=4)
        obs, rewards, term, trunc, infos = vec.step(actions)
        for i, ref in enumerate(refs):
            if frozen[i]:
                assert not rewards[i].any()
                continue
            want_obs, want_reward, want_term, want_trunc, _ = ref.step(actions[i])
            np.testing.assert_array_equal(obs[i], want_obs)
            assert rewards[i].tobytes() == np.asarray(want_reward, dtype=np.float32).tobytes()
            sums[i] += want_reward
            if want_term or want_trunc:
                assert infos["episode"]["r"][i].tobytes() == sums[i].tobytes()
                frozen[i] = True
    assert resets == 3
    for bad in (np.array([True, False]), np.array([1, 0, 1, 0])):
        with pytest.raises(ValueError, match="reset_mask"):
            vec.reset(options={"reset_mask": bad})
    vec.close()
