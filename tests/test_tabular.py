"""Tabular r-MDPs: table validation, the env contract, and the three registered generators."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rmdp_envs
from rmdp_envs import GroupReward
from rmdp_envs.tabular import TabularRMDP

TABULAR_IDS = ["rmdp/TabularRandom-v0", "rmdp/GridGoals-v0", "rmdp/Chain-v0"]


def tiny_tables(n=2, S=3, A=2, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    return P, rng.random((n, S, A)), np.full(S, 1 / S), 4


@pytest.mark.parametrize("edit,message", [
    (lambda P, R, init, H: (P[:, :, :-1], R, init, H), "P must have shape"),
    (lambda P, R, init, H: (P + 0.01 * (np.arange(P.size) == 9).reshape(P.shape), R, init, H),
     r"row P\[1, 1, :\] sums to 1.01"),
    (lambda P, R, init, H: (P - 0.5, R, init, H), "negative probabilities"),
    (lambda P, R, init, H: (np.where(P > 0.5, np.nan, P), R, init, H), "P contains NaN"),
    (lambda P, R, init, H: (P, R[:, :, :1], init, H), r"R must have shape \(n, S, A\) = \(n, 3, 2\)"),
    (lambda P, R, init, H: (P, R[0], init, H), "R must have shape"),
    (lambda P, R, init, H: (P, np.full_like(R, np.inf), init, H), "R contains NaN or infinite"),
    (lambda P, R, init, H: (P, R, init[:2], H), r"init must have shape \(S,\) = \(3,\)"),
    (lambda P, R, init, H: (P, R, init * 2, H), "init sums to 2"),
    (lambda P, R, init, H: (P, R, init, 0), "horizon must be an integer >= 1"),
    (lambda P, R, init, H: (P, R, init, 2.5), "horizon must be an integer >= 1"),
    (lambda P, R, init, H: (P, [["a"]], init, H), "R must be a numeric array"),
])
def test_malformed_tables_are_rejected(edit, message):
    with pytest.raises(ValueError, match=message):
        TabularRMDP(*edit(*tiny_tables()))


def test_population_must_match_reward_tables():
    with pytest.raises(ValueError, match="population has 3 users but R has reward tables for 2"):
        TabularRMDP(*tiny_tables(), population=rmdp_envs.Population(params=np.arange(3), kind="x"))


def test_tables_are_read_only_and_rows_renormalized():
    P, R, init, H = tiny_tables()
    mdp = TabularRMDP(P * (1 + 1e-10), R, init, H)
    assert np.abs(mdp.P.sum(-1) - 1).max() < 1e-15
    with pytest.raises(ValueError):
        mdp.R[0, 0, 0] = 1.0


@pytest.mark.parametrize("env_id", TABULAR_IDS)
def test_make_is_silent_and_group_view_passes_check_env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(GroupReward(env.unwrapped, users=[0, 2]), skip_render_check=True)


@pytest.mark.parametrize("env_id", TABULAR_IDS)
@pytest.mark.parametrize("horizon", [None, 3])
def test_episode_follows_the_tables_and_ends_at_the_horizon(env_id, horizon):
    """Reward = R[:, s, a], observation = (one-hot s, t / H), termination exactly at step H."""
    env = gym.make(env_id, **({} if horizon is None else {"horizon": horizon}))
    mdp = env.unwrapped
    obs, info = env.reset(seed=1)
    env.action_space.seed(1)
    for t in range(1, mdp.horizon + 1):
        state = info["state"]
        assert mdp.decode(obs) == (state, t - 1) and env.observation_space.contains(obs)
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        assert reward.dtype == np.float32 and mdp.reward_space.contains(reward)
        np.testing.assert_array_equal(reward, mdp.R[:, state, action].astype(np.float32))
        assert mdp.P[state, action, info["state"]] > 0
        assert (terminated, truncated) == (t == mdp.horizon, False)
    assert horizon is None or mdp.horizon == horizon


def test_start_and_transition_frequencies_match_the_tables():
    mdp = TabularRMDP(*tiny_tables(n=1, S=3, A=1))
    counts = np.zeros((2, 3))
    for episode in range(3000):
        _, info = mdp.reset(seed=episode)
        counts[0, info["state"]] += 1
        if info["state"] == 0:
            counts[1, mdp.step(0)[4]["state"]] += 1
    np.testing.assert_allclose(counts[0] / counts[0].sum(), mdp.init, atol=0.03)
    np.testing.assert_allclose(counts[1] / counts[1].sum(), mdp.P[0, 0], atol=0.05)


@pytest.mark.parametrize("env_id", TABULAR_IDS)
def test_identical_kwargs_build_identical_instances(env_id):
    a, b = gym.make(env_id, population_seed=4).unwrapped, gym.make(env_id, population_seed=4).unwrapped
    other = gym.make(env_id, population_seed=5).unwrapped
    assert a.population == b.population and np.array_equal(a.R, b.R) and np.array_equal(a.P, b.P)
    assert a.population != other.population and not np.array_equal(a.R, other.R)


def test_evaluate_runs_on_a_tabular_env():
    result = rmdp_envs.evaluate("rmdp/Chain-v0", lambda obs: np.full(len(obs), 2), k=2, episodes=3,
                                env_kwargs={"n_agents": 5})
    assert result.returns.shape == (2, 3, 5) and np.all(result.lengths == 15)


def test_random_family_agents_follow_their_latent_types():
    mdp = gym.make("rmdp/TabularRandom-v0", n_agents=12, noise=0.0, n_types=2).unwrapped
    types = np.array(mdp.population.meta["types"])
    same = [np.array_equal(mdp.R[i], mdp.R[j]) for i in range(12) for j in range(12)]
    assert same == [bool(types[i] == types[j]) for i in range(12) for j in range(12)]
    assert np.all((mdp.P > 0).sum(-1) <= 3) and mdp.R.max() <= 1 / mdp.horizon
    with pytest.raises(ValueError, match="branching"):
        gym.make("rmdp/TabularRandom-v0", n_states=3, branching=4)


def test_grid_goals_reward_only_on_the_goal_cell():
    mdp = gym.make("rmdp/GridGoals-v0", n_agents=6, size=3, population_seed=2).unwrapped
    goals = mdp.population.params @ np.array([3, 1])
    expected = (np.arange(9)[None, :] == goals[:, None]) / mdp.horizon
    np.testing.assert_array_equal(mdp.R, np.repeat(expected[:, :, None], 5, axis=2))
    assert not np.any(goals == 0), "the start cell is nobody's goal"
    no_slip = gym.make("rmdp/GridGoals-v0", size=3, slip=0.0).unwrapped
    assert no_slip.P[4, 0, 1] == 1 and no_slip.P[0, 0, 0] == 1  # up from the centre; bump at the top


def test_chain_reward_is_a_triangle_around_each_target():
    mdp = gym.make("rmdp/Chain-v0", n_agents=4, population="grid", half_width=2.0).unwrapped
    targets = mdp.population.params[:, 0]
    expected = np.maximum(0, 1 - np.abs(np.arange(10)[None, :] - targets[:, None]) / 2.0) / mdp.horizon
    np.testing.assert_allclose(mdp.R[:, :, 1], expected, atol=1e-7)
    assert targets.min() >= 0 and targets.max() <= 9
    assert mdp.P[0, 0, 0] == 1 and mdp.P[3, 2, 4] == pytest.approx(0.9) and mdp.P[3, 2, 3] == pytest.approx(0.1)
