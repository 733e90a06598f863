"""Welfare evaluation against utilities computed by hand."""

import numpy as np
import pytest

import rmdp_envs
from rmdp_envs import evaluate

UP, DOWN = 0, 1
HOME_CELL = 22


def scripted(plans):
    """policy_fn playing a fixed action sequence per policy (one copy per policy: episodes=1)."""
    steps = [0] * len(plans)

    def policy_fn(obs):
        actions = []
        for j, plan in enumerate(plans):
            if obs[j][2:].sum() == 1 and obs[j][0] == 4 and obs[j][1] == 2:
                steps[j] = 0
            actions.append(plan[min(steps[j], len(plan) - 1)])
            steps[j] += 1
        return np.array(actions)
    return policy_fn


def test_stay_home_policy_utility_by_hand():
    result = evaluate("rmdp/ResourceGathering-v0", lambda obs: np.full(len(obs), DOWN), k=1, episodes=3)
    expected = np.zeros((1, 25))
    expected[0, HOME_CELL] = 0.99
    np.testing.assert_allclose(result.utility, expected)
    assert result.welfare([0] * 25) == pytest.approx(0.99 / 25)
    assert result.lengths.tolist() == [[1, 1, 1]]


def test_two_policies_welfare_and_best_response():
    # policy 0: up, up, down, down (cells 22, 17, 12 at T=4); policy 1: stay home (cell 22 at T=1).
    result = evaluate("rmdp/ResourceGathering-v0", scripted([[UP, UP, DOWN, DOWN], [DOWN]]), k=2, episodes=1)
    u = result.utility
    assert u[0, 12] == pytest.approx(0.96) and u[0, 17] == pytest.approx(0.96) and u[0, HOME_CELL] == pytest.approx(0.96)
    assert u[1, HOME_CELL] == pytest.approx(0.99) and u[1].sum() == pytest.approx(0.99)
    assert result.best_assignment[HOME_CELL] == 1 and result.best_assignment[12] == 0
    assert result.best_welfare == pytest.approx((0.96 * 2 + 0.99) / 25)
    assert result.welfare([0] * 25) == pytest.approx(0.96 * 3 / 25)
    assert result.best_welfare >= max(result.welfare([0] * 25), result.welfare([1] * 25))


def test_evaluate_is_deterministic_on_seeds_and_uses_common_starts():
    def random_fn(obs, rng=np.random.default_rng(0)):
        return rng.uniform(-1, 1, size=(len(obs), 6)).astype(np.float32)
    a = evaluate("rmdp/HalfCheetahSpeed-v0", lambda o: np.zeros((len(o), 6), np.float32), k=2, episodes=2,
                 env_kwargs={"n_agents": 7})
    # Zero actions from identical starts: both policies see identical returns.
    np.testing.assert_array_equal(a.utility[0], a.utility[1])
    b = evaluate("rmdp/HalfCheetahSpeed-v0", lambda o: np.zeros((len(o), 6), np.float32), k=2, episodes=2,
                 env_kwargs={"n_agents": 7})
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.lengths.tolist() == [[1000, 1000], [1000, 1000]]
    assert random_fn(np.zeros((2, 17))).shape == (2, 6)


def test_batched_policy_fn_matches_per_copy_calls():
    def plain(obs):
        return (obs[:, 0] > 0).astype(np.int64)

    def batched(obs):
        return (obs[..., 0] > 0).astype(np.int64)
    batched.batched = True
    a = evaluate("rmdp/CartPolePosition-v0", plain, k=2, episodes=3, env_kwargs={"n_agents": 6})
    b = evaluate("rmdp/CartPolePosition-v0", batched, k=2, episodes=3, env_kwargs={"n_agents": 6})
    np.testing.assert_array_equal(a.returns, b.returns)


@pytest.mark.parametrize("assignment,match", [([0] * 24, "length n=25"), ([0] * 24 + [2], r"\[0, k\)"),
                                              ([0] * 24 + [-1], r"\[0, k\)"), ([0.5] * 25, "integer")])
def test_bad_assignment_raises(assignment, match):
    result = evaluate("rmdp/ResourceGathering-v0", lambda obs: np.full(len(obs), DOWN), k=2, episodes=1)
    with pytest.raises(ValueError, match=match):
        result.welfare(assignment)


def test_bad_budget_and_actions_raise():
    stay = lambda obs: np.full(len(obs), DOWN)  # noqa: E731
    with pytest.raises(ValueError, match=r"k must lie in \[1, n\] = \[1, 25\], got k=26"):
        evaluate("rmdp/ResourceGathering-v0", stay, k=26)
    with pytest.raises(ValueError, match=r"k must lie in \[1, n\]"):
        evaluate("rmdp/ResourceGathering-v0", stay, k=0)
    with pytest.raises(ValueError, match=r"policy_fn must return actions of shape \(2,\)"):
        evaluate("rmdp/ResourceGathering-v0", lambda obs: np.zeros(3, np.int64), k=2, episodes=1)
    with pytest.raises(ValueError, match="unknown env id"):
        evaluate("rmdp/Nope-v0", stay, k=1)
    with pytest.raises(ValueError, match="episodes"):
        evaluate("rmdp/ResourceGathering-v0", stay, k=1, episodes=0)


def test_welfare_upper_bound_with_k_equal_n_is_full_personalization():
    """k = 25 policies, one per cell on its shortest round trip: evaluate reproduces the 0.9356 bound."""
    plans = []
    for cell in range(25):
        r, c = divmod(cell, 5)
        out = [0] * (4 - r) + ([2] * (2 - c) if c < 2 else [3] * (c - 2))
        back = ([3] * (2 - c) if c < 2 else [2] * (c - 2)) + [1] * (4 - r)
        plans.append(out + back if cell != HOME_CELL else [1])
    result = evaluate("rmdp/ResourceGathering-v0", scripted(plans), k=25, episodes=1)
    assert result.welfare(np.arange(25)) == pytest.approx(0.9356)
    assert result.best_welfare == pytest.approx(0.9356)
    assert rmdp_envs.check_k(25, 25) == 25


def test_an_env_whose_episodes_never_end_is_refused_not_evaluated_forever(monkeypatch):
    """An r-MDP registered without a time limit, whose episodes do not end: evaluation stopped nowhere (it ran every
    episode to its end); past the bound it fails naming the fix."""
    import gymnasium as gym
    from rmdp_envs import evaluation
    rmdp_envs.register("rmdp/EndlessResourceGathering-v0", "rmdp_envs.envs.resource_gathering:ResourceGatheringEnv")
    monkeypatch.setattr(evaluation, "UNBOUNDED_EPISODE_STEPS", 500)  # the bound, smaller: the test's time
    try:
        up = lambda obs: np.zeros(obs.shape[:-1], dtype=np.int64)  # noqa: E731  (up, into the wall: never home)
        with pytest.raises(RuntimeError, match="no time limit: register it with max_episode_steps"):
            rmdp_envs.evaluate("rmdp/EndlessResourceGathering-v0", up, 2, episodes=1)
        ended = rmdp_envs.evaluate("rmdp/ResourceGathering-v0", up, 2, episodes=1)  # its time limit: 40 steps
        assert ended.lengths.max() == 40
    finally:
        gym.registry.pop("rmdp/EndlessResourceGathering-v0", None)


def _cartpole_return(action_of, seed: int, kwargs: dict) -> np.ndarray:
    """One episode of a single CartPolePosition env under ``action_of(step)``: every user's summed reward."""
    import gymnasium as gym  # noqa: PLC0415
    env = gym.make("rmdp/CartPolePosition-v0", **kwargs)
    env.reset(seed=seed)
    total, step, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(action_of(step))
        total, step, done = total + reward.astype(np.float64), step + 1, terminated or truncated
    return total


def test_a_finished_copy_adds_nothing_while_the_others_run():
    """Policy 0 pushes right and falls within a dozen steps; policy 1 alternates and runs far longer. Each row of
    utilities is its own single-env episode's returns: a finished copy's idle steps must not pay its users (its
    frozen cart sits near a target, and some users' window holds it)."""
    kwargs = {"n_agents": 30, "target_range": (-2.4, 2.4)}
    steps = [0]

    def policy_fn(obs):  # one copy per policy (episodes=1): row j is policy j
        steps[0] += 1
        return np.array([1, steps[0] % 2])

    result = evaluate("rmdp/CartPolePosition-v0", policy_fn, k=2, episodes=1, seed=3, env_kwargs=kwargs)
    assert result.lengths[0, 0] < result.lengths[1, 0]
    np.testing.assert_allclose(result.utility[0], _cartpole_return(lambda t: 1, 3, kwargs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.utility[1], _cartpole_return(lambda t: (t + 1) % 2, 3, kwargs), rtol=1e-5,
                               atol=1e-6)


def test_episodes_beyond_one_round_of_copies_start_from_their_own_seeds(monkeypatch):
    """Episode e starts from seed + e however many rounds the copies take (at most MAX_PARALLEL_COPIES at once)."""
    import rmdp_envs.evaluation as evaluation  # noqa: PLC0415
    monkeypatch.setattr(evaluation, "MAX_PARALLEL_COPIES", 2)  # k = 1: two episodes a round
    kwargs = {"n_agents": 10}
    push = lambda obs: np.where(obs[:, 2] > 0, 1, 0)  # noqa: E731  (a deterministic policy that depends on the start)
    together = evaluate("rmdp/CartPolePosition-v0", push, k=1, episodes=5, seed=7, env_kwargs=kwargs)
    assert together.seeds == (7, 8, 9, 10, 11)
    for e in range(5):
        alone = evaluate("rmdp/CartPolePosition-v0", push, k=1, episodes=1, seed=7 + e, env_kwargs=kwargs)
        np.testing.assert_array_equal(together.returns[:, e], alone.returns[:, 0])
        assert together.lengths[0, e] == alone.lengths[0, 0]
    assert len(set(together.lengths[0].tolist())) > 1  # the starts differ, so a repeated seed would show


def test_best_assignment_breaks_ties_to_the_lowest_index():
    """The deployment rule the board stores and verify compares exactly: equal utilities go to the first policy."""
    returns = np.array([[[1.0, 0.0, 2.0]], [[1.0, 3.0, 2.0]], [[0.5, 3.0, 2.0]]])  # (k=3, episodes=1, n=3)
    result = rmdp_envs.EvalResult(returns=returns, lengths=np.ones((3, 1)), seeds=(0,))
    assert result.best_assignment.tolist() == [0, 1, 0]

