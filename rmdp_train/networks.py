"""The agent every solver trains: k actors and their critics, evaluated for all policies at once.

Inputs are grouped by policy: ``(k, B, obs_dim)`` holds ``B`` observations for each of the ``k``
policies, and every layer is one batched matrix product over policies (:class:`GroupedLinear`).
:class:`MultiPolicyAgent` has CleanRL's ``get_value`` / ``get_action_and_value(obs, action=None)``
shape; the actor alone (:class:`~rmdp_train.policies.MultiPolicyActor`) is what gets saved.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rmdp_train.policies import GroupedLinear, MultiPolicyActor


class MultiCritic(nn.Module):
    """Values of all n users under each of the k policies: ``(k, B, obs_dim) -> (k, B, n)``.

    One output per user: a user's value under a policy is a fixed function of the state, so the
    critic stays valid when an assignment moves users between policies, and the group value of any
    assignment is a sum of outputs. k separate networks (batched matmuls, same cost as one network
    with a one-hot policy input) because the policies visit different states. The last layer costs
    O(hidden * n) per state: fine for the paper's n <= 100.
    """

    def __init__(self, k: int, obs_dim: int, n: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([GroupedLinear(k, obs_dim, hidden), GroupedLinear(k, hidden, hidden)])
        self.head = GroupedLinear(k, hidden, n, std=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = obs
        for layer in self.layers:
            h = torch.tanh(layer(h))
        return self.head(h)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class MultiPolicyAgent(nn.Module):
    """k policies (actor) and the users' values under each (critic), CleanRL's ``Agent`` for k policies."""

    def __init__(self, k: int, obs_dim: int, out_dim: int, n: int, hidden_size: int = 64, shared_torso: bool = False,
                 discrete: bool = False, init_log_std: float = -1.0):
        super().__init__()
        self.k, self.discrete = k, discrete
        self.actor = MultiPolicyActor(k, obs_dim, out_dim, hidden=(hidden_size,) * 2, shared_torso=shared_torso,
                                      discrete=discrete, init_log_std=init_log_std)
        self.critic = MultiCritic(k, obs_dim, n, hidden_size)
        # per-policy gradient clipping: parameters with a leading k axis, and those all policies share
        self._grouped_actor = [p for mod in self.actor.modules() if isinstance(mod, GroupedLinear) for p in mod.parameters()]
        self._grouped_actor += [] if discrete else [self.actor.log_std]
        self._shared_actor = [p for p in self.actor.parameters()
                              if all(p is not q for q in self._grouped_actor) and p.requires_grad]

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``(k, B, n)``: every user's value under each policy."""
        return self.critic(obs)

    def get_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample from every policy at once: actions and log-probabilities ``(k, B)``.

        The rollout calls this rather than :meth:`get_action_and_value`: the values of a whole
        rollout are computed afterwards in one batched pass, which is cheaper than per step.
        """
        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            gumbel = -torch.log(-torch.log(torch.rand_like(out).clamp_(1e-20, 1.0)))
            actions = (logp_all + gumbel).argmax(dim=-1)
            return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        log_std = self.actor.log_std.unsqueeze(1)
        actions = out + log_std.exp() * torch.randn_like(out)
        return actions, gaussian_log_prob(out, log_std, actions)

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """``(action, log_prob, entropy, value)``; with ``action`` given, its log-probability under the current policies."""
        if action is None:
            action, _ = self.get_action(obs)
        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            log_prob = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        else:
            log_std = self.actor.log_std.unsqueeze(1).expand_as(out)
            entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
            log_prob = gaussian_log_prob(out, log_std, action)
        return action, log_prob, entropy, self.critic(obs)

    @torch.no_grad()
    def copy_policy(self, source: int, target: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Make policy ``target`` a copy of policy ``source``: actor, critic and the optimizer's moments.

        EM's ``--empty-policy split`` re-seeds a policy this way, so the copy continues ``source``'s
        training (Adam's per-parameter state included) instead of starting from a cold optimizer.
        Parameters all policies share (``--shared-torso``) are left alone.
        """
        for param in self._grouped_actor + list(self.critic.parameters()):
            param[target] = param[source]
            for value in (optimizer.state.get(param, {}) if optimizer is not None else {}).values():
                if torch.is_tensor(value) and value.dim() and value.shape[0] == self.k:
                    value[target] = value[source]

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip each policy's actor gradient, and each policy's critic gradient, to ``max_norm`` separately.

        A global clip over k policies would let one policy's large gradient shrink all the others'.
        Parameters shared by all policies (``--shared-torso``) are clipped together.
        """
        norms = clip_grad_norm_per_policy(self._grouped_actor, self.k, max_norm)
        if self._shared_actor:
            nn.utils.clip_grad_norm_(self._shared_actor, max_norm)
        clip_grad_norm_per_policy(list(self.critic.parameters()), self.k, max_norm)
        return norms


def clip_grad_norm_per_policy(grouped: list, k: int, max_norm: float) -> torch.Tensor:
    """Scale the gradients of parameters with a leading k axis so that each policy's norm is <= max_norm."""
    grads = [p.grad for p in grouped if p.grad is not None]
    norms = torch.sqrt(sum(g.reshape(k, -1).pow(2).sum(1) for g in grads))
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view((k,) + (1,) * (g.dim() - 1)))
    return norms
