"""PPO's pieces (``rmdp_train.ppo``): the same numbers as their textbook forms, bit for bit."""

import numpy as np
import pytest
import torch

from rmdp_train.normalization import RunningMeanStd
from rmdp_train.ppo import (advantages_and_returns, clipped_policy_loss, compute_gae, explained_variance,
                            normalize_per_policy, take)


def cleanrl_gae(rewards, values, next_values, ends, gamma, lam):
    """CleanRL's loop, everything inside it: the reference ``compute_gae`` must equal exactly."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nonterminal = 1.0 - ends[t].unsqueeze(-1)
        delta = rewards[t] + gamma * next_values[t] * nonterminal - values[t]
        lastgaelam = delta + gamma * lam * nonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages


def test_gae_equals_the_per_step_loop_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    T, E, n = 64, 6, 5
    rewards, values, next_values = (torch.randn(T, E, n, generator=gen) for _ in range(3))
    ends = (torch.rand(T, E, generator=gen) < 0.1).float()
    assert ends.sum() > 0  # episode ends inside the rollout, so the mask matters
    for gamma, lam in [(0.99, 0.95), (1.0, 1.0), (0.9, 0.0)]:
        assert torch.equal(compute_gae(rewards, values, next_values, ends, gamma, lam),
                           cleanrl_gae(rewards, values, next_values, ends, gamma, lam))


def test_gae_by_hand():
    """gamma = lam = 1: the rewards to go, plus the bootstrap value where no episode ended, minus the value."""
    rewards = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
    values = torch.tensor([0.5, 0.25, 0.125]).view(3, 1, 1)
    next_values = torch.tensor([0.25, 0.125, 10.0]).view(3, 1, 1)
    no_end = compute_gae(rewards, values, next_values, torch.zeros(3, 1), 1.0, 1.0).flatten().tolist()
    assert no_end == [1 + 2 + 3 + 10 - 0.5, 2 + 3 + 10 - 0.25, 3 + 10 - 0.125]
    ended_at_1 = compute_gae(rewards, values, next_values, torch.tensor([[0.0], [1.0], [0.0]]), 1.0, 1.0).flatten().tolist()
    assert ended_at_1 == [1 + 2 - 0.5, 2 - 0.25, 3 + 10 - 0.125]


@pytest.mark.parametrize("trailing", [(), (3,), (4, 2)])
def test_take_gives_each_policy_its_own_rows(trailing):
    gen = torch.Generator().manual_seed(1)
    k, N, b = 3, 20, 7
    x = torch.randn((k, N) + trailing, generator=gen)
    idx = torch.stack([torch.randperm(N, generator=gen)[:b] for _ in range(k)])
    got = take(x, idx)
    assert got.shape == (k, b) + trailing
    assert torch.equal(got, x[torch.arange(k).unsqueeze(1), idx])
    expanded = idx.view((k, b) + (1,) * len(trailing)).expand((k, b) + trailing)
    assert torch.equal(got, torch.gather(x, 1, expanded))
    assert torch.equal(got[1, 0], x[1, idx[1, 0]])


def test_clipped_surrogate_takes_the_pessimistic_side():
    """PPO's loss is the max of the two negated surrogates: a positive advantage gains at most (1 + clip) times it,
    a negative one loses at least (1 - clip) times it."""
    adv, ratio = torch.tensor([[1.0], [-1.0]]), torch.tensor([[1.5], [0.5]])
    assert clipped_policy_loss(adv[:1], ratio[:1], 0.2).item() == pytest.approx(-1.2)
    assert clipped_policy_loss(adv[1:], ratio[1:], 0.2).item() == pytest.approx(0.8)
    assert clipped_policy_loss(adv, ratio, 0.2).item() == pytest.approx(-1.2 + 0.8)  # each policy's mean, summed


def test_advantages_are_standardized_per_policy():
    out = normalize_per_policy(torch.tensor([[1.0, 2.0, 3.0], [100.0, 200.0, 300.0]]))
    torch.testing.assert_close(out, torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]), atol=1e-6, rtol=0)


def test_a_truncated_step_bootstraps_its_final_observations_discounted_value():
    """A time-limit truncation adds gamma * V(final observation) to that step's reward: with a critic of constant
    1 and gamma = 0.5, exactly 0.5 more than the same step ending."""
    def critic(x):  # (k, B, obs) -> (k, B, n): a constant value of 1 for the single user
        return torch.ones(x.shape[:-1] + (1,))

    T, E, obs_dim = 3, 1, 2
    obs, next_obs = torch.zeros(T, E, obs_dim), torch.zeros(E, obs_dim)
    rewards = torch.zeros(T, E, 1)
    ends = torch.tensor([[0.0], [1.0], [0.0]])  # step 1 ends the episode (a truncation, bootstrapped below)
    policy_of_env = torch.zeros(E, dtype=torch.long)
    args = (obs, next_obs, rewards, ends)
    _, ended = advantages_and_returns(critic, *args, [], policy_of_env, 1, gamma=0.5, lam=1.0)
    _, truncated = advantages_and_returns(critic, *args, [(1, 0, np.zeros(obs_dim, dtype=np.float32))], policy_of_env,
                                          1, gamma=0.5, lam=1.0)
    assert (truncated - ended)[1, 0, 0].item() == pytest.approx(0.5)
    assert (truncated - ended)[0, 0, 0].item() == pytest.approx(0.5 * 1.0 * 0.5)  # step 0 sees it through lam = 1


def test_running_statistics_are_those_of_all_the_data_joined():
    """Chan et al.'s merge: after batches of different means and spreads, the mean and (population) variance of
    everything seen (up to the 1e-4 prior count at mean 0, variance 1)."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, size=(size, 3)) for loc, scale, size in [(0, 1, 50), (5, 2, 80), (-3, 0.5, 30)]]
    rms = RunningMeanStd((3,))
    for batch in batches:
        rms.update(batch)
    joined = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, joined.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rms.var, joined.var(axis=0), rtol=1e-5, atol=1e-5)
    assert rms.count == pytest.approx(len(joined) + 1e-4)


def test_explained_variance_is_cleanrls_from_the_advantages():
    """``1 - Var(returns - values) / Var(returns)`` with ``returns - values`` read from the advantages: numpy's
    formula on the values themselves; 1 for a critic that predicts the returns, 0 for one that predicts 0 where
    the returns have mean 0, NaN for returns that do not vary."""
    gen = torch.Generator().manual_seed(1)
    values, returns = torch.randn(32, 4, 3, generator=gen), torch.randn(32, 4, 3, generator=gen)
    v, r = values.double().numpy(), returns.double().numpy()
    expected = 1 - np.var(r - v, ddof=1) / np.var(r, ddof=1)
    assert explained_variance(returns - values, returns) == pytest.approx(expected, rel=1e-5)
    assert explained_variance(torch.zeros_like(returns), returns) == 1.0
    centred = returns - returns.mean()
    assert explained_variance(centred, centred) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(explained_variance(values, torch.ones_like(returns)))
