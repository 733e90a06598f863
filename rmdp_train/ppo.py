"""PPO's pieces for k policies trained side by side on one vector env (policy-major copies).

Shapes: a rollout is ``(T, E, ...)`` with ``E = k * m`` copies, copy ``c`` of policy ``p`` being
column ``p * m + c``; the update works per policy on ``(k, T * m, ...)``. Every policy's loss is
computed as if it were alone and the k losses are summed, so the policies do not compete for a
shared normalization or a shared gradient clip.
"""

from __future__ import annotations

import numpy as np
import torch


def schedules(args, iteration: int, first: int = 1, iterations: int | None = None) -> tuple[float, float]:
    """Learning rate (linear) and entropy coefficient (geometric) of ``iteration`` (1-based).

    Annealed over ``iterations`` iterations starting at ``first`` (default: the whole run); a
    solver that starts fresh policies mid-run (clustering's phase 2) restarts them there.
    """
    frac = (iteration - first) / (args.num_iterations if iterations is None else iterations)
    lr = args.learning_rate_end + (args.learning_rate - args.learning_rate_end) * (1.0 - frac)
    ent_coef = args.ent_coef * (args.ent_coef_end / args.ent_coef) ** frac if args.ent_coef > 0 else 0.0
    return lr, ent_coef


def compute_gae(rewards, values, next_values, ends, gamma: float, lam: float) -> torch.Tensor:
    """GAE for every (step, copy, user) at once: inputs ``(T, E, n)`` (ends ``(T, E)``).

    The TD errors and the per-step decay are whole-rollout elementwise passes; only the recursion
    ``A_t = delta_t + gamma * lam * (1 - end_t) * A_{t+1}`` loops over steps (CleanRL computes all of it
    inside the loop: the same operations on the same values, so the same numbers, in fewer, larger ops).
    """
    nonterminal = (1.0 - ends).unsqueeze(-1)
    deltas = rewards + gamma * next_values * nonterminal - values
    decay = gamma * lam * nonterminal
    advantages = torch.empty_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        lastgaelam = deltas[t] + decay[t] * lastgaelam
        advantages[t] = lastgaelam
    return advantages


@torch.no_grad()
def advantages_and_returns(critic, obs, next_obs, rewards, ends, truncated_finals, policy_of_env, k: int,
                           gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every user's GAE and return ``(T, E, n)`` after a rollout, its values in one batched critic pass.

    ``truncated_finals``: ``(step, copy, normalized final observation)`` of time-limit truncations,
    whose discounted value is added to that step's reward (bootstrapping); an empty list otherwise.
    """
    T, E = obs.shape[:2]
    m = E // k
    grouped_obs = torch.cat([obs, next_obs.unsqueeze(0)]).view(T + 1, k, m, -1).permute(1, 0, 2, 3)
    values_all = critic(grouped_obs.reshape(k, (T + 1) * m, -1)).view(k, T + 1, m, -1)
    values_all = values_all.permute(1, 0, 2, 3).reshape(T + 1, E, -1)
    values, next_values = values_all[:-1], values_all[1:]
    rewards = rewards.clone()
    if truncated_finals:
        steps, copies, final = zip(*truncated_finals)
        final = torch.as_tensor(np.stack(final), device=obs.device)
        final_values = critic(final.unsqueeze(0).expand(k, -1, -1))  # (k, F, n); take each row's own policy
        rewards[list(steps), list(copies)] += gamma * final_values[policy_of_env[list(copies)], torch.arange(len(copies))]
    advantages = compute_gae(rewards, values, next_values, ends, gamma, lam)
    return advantages, advantages + values


def explained_variance(advantages: torch.Tensor, returns: torch.Tensor) -> float:
    """CleanRL's diagnostic of the critic, ``1 - Var(returns - values) / Var(returns)`` over every (step, copy, user)
    of a rollout (1: the critic predicts the returns; 0 or less: no better than their mean). ``returns - values`` are
    the GAE advantages (:func:`advantages_and_returns` returns ``advantages + values``), so the values are not kept;
    NaN when the returns do not vary."""
    var_returns = returns.var().item()
    return float("nan") if var_returns == 0 else 1.0 - advantages.var().item() / var_returns


def group_mean(advantages: torch.Tensor, weights: torch.Tensor, policy_of_env: torch.Tensor) -> torch.Tensor:
    """``(T, E)``: each copy's advantage for its policy, the ``weights[p]``-weighted sum over users.

    With ``weights`` the 0/1 assignment mask divided by group sizes this is the mean advantage of
    the users assigned to the copy's policy (the M-step's objective).
    """
    return (advantages * weights[policy_of_env]).sum(-1)


def assignment_weights(assignment: np.ndarray, k: int, device) -> torch.Tensor:
    """``(k, n)``: 1 / |group p| for the users of policy p, else 0."""
    mask = torch.as_tensor(np.arange(k)[:, None] == assignment[None, :], dtype=torch.float32, device=device)
    return mask / mask.sum(1, keepdim=True).clamp(min=1)


def per_policy(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(T, k * m, ...) -> (k, T * m, ...)``: the rollout of each policy as one batch."""
    T, E = x.shape[:2]
    m = E // k
    return x.view((T, k, m) + x.shape[2:]).transpose(0, 1).reshape((k, T * m) + x.shape[2:])


def minibatch_order(rng: np.random.Generator, k: int, N: int, device) -> torch.Tensor:
    """``(k, N)``: an independent random order of each policy's N transitions for one epoch."""
    return torch.as_tensor(np.argsort(rng.random((k, N)), axis=1), device=device)


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` ``(k, b)`` of each policy's batch ``x`` ``(k, N, ...)``: ``(k, b, ...)``.

    One ``index_select`` of whole rows from the ``(k * N, ...)`` view: the same values as advanced
    indexing ``x[arange(k)[:, None], idx]`` (and as ``torch.gather`` with the index expanded over the
    trailing axes), with one flat index instead of two broadcast ones.
    """
    k, N = x.shape[:2]
    flat = (idx + N * torch.arange(k, device=idx.device).unsqueeze(1)).reshape(-1)
    return x.reshape((k * N,) + x.shape[2:]).index_select(0, flat).view(idx.shape + x.shape[2:])


def normalize_per_policy(adv: torch.Tensor) -> torch.Tensor:
    """Standardize each policy's minibatch advantages ``(k, b)`` separately."""
    return (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)


def clipped_policy_loss(adv: torch.Tensor, ratio: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """PPO's clipped surrogate, each policy's mean over its minibatch, summed over policies."""
    loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef))
    return loss.mean(1).sum()


def value_loss(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Half the squared error of every user's value ``(k, b, n)``, each policy's mean, summed over policies."""
    return 0.5 * ((values - returns) ** 2).mean((1, 2)).sum()
