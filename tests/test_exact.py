"""Exact welfare: the subset DP against brute force, its identities, exact EM, and Monte Carlo."""

import functools
import itertools

import gymnasium as gym
import numpy as np
import pytest

import rmdp_envs
from rmdp_envs.exact import (MAX_EXACT_USERS, em_exact, optimal_welfare, policy_utilities, policy_welfare,
                             tabular_policy_fn, tabulate_policies, welfare_bounds)

SMALL = {  # brute-forceable instances: n <= 6
    "rmdp/TabularRandom-v0": {"n_agents": 6, "n_states": 5, "n_actions": 3, "horizon": 4, "noise": 0.3},
    "rmdp/GridGoals-v0": {"n_agents": 6, "size": 3, "horizon": 5},
    "rmdp/Chain-v0": {"n_agents": 6, "length": 6, "horizon": 6},
}


def small(env_id, seed=0):
    return gym.make(env_id, population_seed=seed, **SMALL[env_id]).unwrapped


def reference_value(mdp, reward):
    """Optimal expected return for one (S, A) reward table, by explicit loops (independent of exact.py)."""
    S, A = reward.shape
    future = [0.0] * S
    for _ in range(mdp.horizon):
        future = [max(reward[s, a] + sum(mdp.P[s, a, s2] * future[s2] for s2 in range(S)) for a in range(A))
                  for s in range(S)]
    return sum(mdp.init[s] * future[s] for s in range(S))


def brute_force(mdp, k):
    """Best welfare over all k^n assignments, each group served by its own optimal policy."""
    n = mdp.n_agents
    group_value = functools.lru_cache(None)(lambda group: reference_value(mdp, mdp.R[list(group)].sum(0)) if group else 0.0)
    best = -np.inf
    for assignment in itertools.product(range(k), repeat=n):
        groups = [tuple(i for i in range(n) if assignment[i] == j) for j in range(k)]
        best = max(best, sum(group_value(g) for g in groups) / n)
    return best


@pytest.mark.parametrize("env_id", SMALL)
def test_optimum_equals_brute_force(env_id):
    mdp = small(env_id)
    for k in (2, 3):
        solution = optimal_welfare(mdp, k)
        assert solution.value == pytest.approx(brute_force(mdp, k), abs=1e-9)
        assert sorted(i for group in solution.partition for i in group) == list(range(mdp.n_agents))
        assert len(solution.partition) == k and solution.policies.shape == (k, mdp.horizon, mdp.n_states)
        assert policy_welfare(mdp, solution.policies, solution.assignment) == pytest.approx(solution.value, abs=1e-12)


@pytest.mark.parametrize("env_id", SMALL)
def test_one_policy_is_the_summed_reward_mdp_and_n_policies_full_personalization(env_id):
    mdp = small(env_id, seed=1)
    n = mdp.n_agents
    assert optimal_welfare(mdp, 1).value == pytest.approx(reference_value(mdp, mdp.R.sum(0)) / n, abs=1e-12)
    individual = np.mean([reference_value(mdp, mdp.R[i]) for i in range(n)])
    assert optimal_welfare(mdp, n).value == pytest.approx(individual, abs=1e-12)
    assert welfare_bounds(mdp, 2, restarts=3).upper_bound == pytest.approx(individual, abs=1e-12)


@pytest.mark.parametrize("env_id", SMALL)
def test_optimum_is_non_decreasing_in_k(env_id):
    mdp = gym.make(env_id, n_agents=9, population_seed=2).unwrapped
    values = [optimal_welfare(mdp, k).value for k in range(1, 10)]
    assert np.all(np.diff(values) >= -1e-12), values
    assert values[-1] > values[0], "a population where personalization never helps tests nothing"


@pytest.mark.parametrize("env_id", SMALL)
def test_exact_em_never_decreases_and_never_beats_the_optimum(env_id):
    mdp = gym.make(env_id, n_agents=10, population_seed=3).unwrapped
    for k in (2, 3, 4):
        optimum = optimal_welfare(mdp, k).value
        for seed in range(4):
            result = em_exact(mdp, k, seed=seed)
            assert np.all(np.diff(result.trace) >= -1e-12), result.trace
            assert result.value == result.trace[-1] <= optimum + 1e-12
            assert policy_welfare(mdp, result.policies, result.assignment) == pytest.approx(result.value, abs=1e-12)
            assert all(result.partition), "the last agent of a policy must stay: no policy empties"


def test_em_stops_at_once_from_the_optimal_partition():
    mdp = gym.make("rmdp/GridGoals-v0", n_agents=10, population_seed=3).unwrapped
    optimum = optimal_welfare(mdp, 3)
    result = em_exact(mdp, 3, init_assignment=optimum.assignment)
    assert result.trace == (pytest.approx(optimum.value, abs=1e-12),)


def test_em_gets_stuck_somewhere_on_grid_goals():
    """The benchmark's premise: exact EM has local optima, so its gap to the optimum is informative."""
    mdp = gym.make("rmdp/GridGoals-v0", population_seed=0).unwrapped
    optimum = optimal_welfare(mdp, 2).value
    assert min(em_exact(mdp, 2, seed=s).value for s in range(10)) < optimum - 1e-3


def test_policy_welfare_agrees_with_monte_carlo_through_evaluate():
    kwargs = {"n_agents": 5, "n_states": 6, "n_actions": 3, "horizon": 6, "noise": 0.3}
    mdp = gym.make("rmdp/TabularRandom-v0", **kwargs).unwrapped
    solution = em_exact(mdp, 2)
    result = rmdp_envs.evaluate("rmdp/TabularRandom-v0", tabular_policy_fn(mdp, solution.policies), k=2,
                                episodes=400, seed=0, env_kwargs=kwargs)
    exact = policy_utilities(mdp, solution.policies)
    z = np.abs(result.utility - exact) / np.maximum(result.utility_sem, 1e-9)
    assert z.max() < 4.5, z
    assert np.abs(result.welfare(solution.assignment) - solution.value) < 4.5 * result.utility_sem.max()


def test_tabulate_inverts_tabular_policy_fn_and_encode_inverts_decode():
    mdp = small("rmdp/TabularRandom-v0")
    table = np.random.default_rng(0).integers(0, mdp.n_actions, size=(3, mdp.horizon, mdp.n_states))
    np.testing.assert_array_equal(tabulate_policies(mdp, tabular_policy_fn(mdp, table), 3), table)
    state, t = np.array([[0, 4], [2, 1]]), np.array([[0, 3], [1, 2]])
    for a, b in zip(mdp.decode(mdp.encode(state, t)), (state, t)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="policy_fn must return"):
        tabulate_policies(mdp, lambda obs: obs, 3)  # (k, batch, S + 1): not one action per observation


def test_env_observations_are_what_encode_builds():
    """The env's scalar fast path and encode must describe one observation layout."""
    mdp = small("rmdp/TabularRandom-v0")
    obs, info = mdp.reset(seed=0)
    for step in range(mdp.horizon):
        np.testing.assert_array_equal(obs, mdp.encode(info["state"], step))
        obs, _, _, _, info = mdp.step(step % mdp.n_actions)


def test_saved_network_policies_scored_exactly_match_their_monte_carlo_evaluation(tmp_path):
    """The exact score of trained policies (no sampling noise) is what evaluate estimates."""
    import torch  # noqa: PLC0415

    from rmdp_train.policies import MultiPolicyActor, load_policies, save_policies  # noqa: PLC0415

    kwargs = {"n_agents": 5, "n_states": 6, "n_actions": 3, "horizon": 6, "noise": 0.3}
    mdp = gym.make("rmdp/TabularRandom-v0", **kwargs).unwrapped
    torch.manual_seed(0)
    save_policies(tmp_path, MultiPolicyActor(2, mdp.n_states + 1, mdp.n_actions, discrete=True),
                  env_id="rmdp/TabularRandom-v0", env_kwargs=kwargs)
    policies = load_policies(tmp_path)
    table = tabulate_policies(mdp, policies, 2)
    assert len(np.unique(table)) > 1  # a real network, not a constant
    result = rmdp_envs.evaluate("rmdp/TabularRandom-v0", policies, k=2, episodes=400, seed=0, env_kwargs=kwargs)
    z = np.abs(result.utility - policy_utilities(mdp, table)) / np.maximum(result.utility_sem, 1e-9)
    assert z.max() < 4.5, z


def test_stochastic_policies_mix_deterministic_ones():
    mdp = small("rmdp/Chain-v0")
    deterministic = np.stack([np.zeros((mdp.horizon, mdp.n_states), int), np.full((mdp.horizon, mdp.n_states), 2)])
    mixed = np.eye(3)[deterministic].mean(0, keepdims=True)  # at every step, left or right with 1/2 each
    assert policy_utilities(mdp, mixed).shape == (1, mdp.n_agents)
    assert policy_welfare(mdp, mixed, np.zeros(mdp.n_agents, int)) > 0


@pytest.mark.parametrize("policies,message", [
    (np.zeros((2, 3, 6), int), r"policies must have shape \(k, horizon, S\)"),
    (np.full((1, 6, 6), 3), r"integer actions in \[0, 3\)"),
    (np.full((1, 6, 6, 3), 0.5), "probability distributions"),
])
def test_malformed_policies_are_rejected(policies, message):
    with pytest.raises(ValueError, match=message):
        policy_welfare(small("rmdp/Chain-v0"), policies, np.zeros(6, int))


def test_too_many_agents_points_to_the_bounds():
    mdp = gym.make("rmdp/Chain-v0", n_agents=MAX_EXACT_USERS + 1).unwrapped
    with pytest.raises(ValueError, match="welfare_bounds"):
        optimal_welfare(mdp, 2)


def test_bounds_bracket_the_optimum_and_scale_past_the_dp():
    mdp = gym.make("rmdp/GridGoals-v0", n_agents=10, population_seed=1).unwrapped
    bounds = welfare_bounds(mdp, 3, restarts=5)
    assert bounds.lower_bound <= optimal_welfare(mdp, 3).value + 1e-12 <= bounds.upper_bound + 2e-12
    large_mdp = gym.make("rmdp/GridGoals-v0", n_agents=200).unwrapped
    large = welfare_bounds(large_mdp, 4, restarts=3)
    assert 0 < large.lower_bound <= large.upper_bound and large.gap >= 0
    best = large.lower_solution
    assert large.lower_bound == pytest.approx(policy_welfare(large_mdp, best.policies, best.assignment), abs=1e-12)


def test_the_lower_bound_is_the_best_of_its_restarts():
    """``restarts`` independent EM starts (seeds seed, seed + 1, ...), and the best kept: restarts that all
    reused one seed would report 10 starts and give one."""
    mdp = gym.make("rmdp/GridGoals-v0", population_seed=0).unwrapped
    values = [em_exact(mdp, 2, seed=s).value for s in range(10)]
    assert len(set(np.round(values, 12))) > 1  # the starts differ on this instance
    assert welfare_bounds(mdp, 2, restarts=10).lower_bound == max(values)
