"""PPO's pieces (``rmdp_train.ppo``): the same numbers as their textbook forms, bit for bit."""

import pytest
import torch

from rmdp_train.ppo import compute_gae, take


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
