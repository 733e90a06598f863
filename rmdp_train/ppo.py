"""PPO's pieces for k policies trained side by side on one vector env (policy-major copies).

Shapes: a rollout is ``(T, E, ...)`` with ``E = k * m`` copies, copy ``c`` of policy ``p`` being
column ``p * m + c``; the update works per policy on ``(k, T * m, ...)``. Every policy's loss is
computed as if it were alone and the k losses are summed, so the policies do not compete for a
shared normalization or a shared gradient clip.
"""

from __future__ import annotations

import threading

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
    """GAE for every (step, copy, user) at once: inputs ``(T, E, n)`` (ends ``(T, E)``)."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nonterminal = 1.0 - ends[t].unsqueeze(-1)
        delta = rewards[t] + gamma * next_values[t] * nonterminal - values[t]
        lastgaelam = delta + gamma * lam * nonterminal * lastgaelam
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

    Advanced indexing copies whole rows (the same values as ``torch.gather`` with the index expanded
    over the trailing axes, which reads one index per element): 7.5% faster in a profile of the update
    loop alone (EM, HalfCheetahSpeed, n = 100), within noise over a whole run.
    """
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]


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


class CriticUpdate:
    """The critic's share of a PPO update, run beside the next rollout where this process would only wait.

    The next rollout needs only the actor, so with ``--rollout workers`` (this process idle while the
    workers step) the critic's epochs run in a thread during it: PPO stays on-policy, and the advantages
    after that rollout read exactly the critic they would have read. The critic is about two thirds of
    the update's arithmetic at n = 100 (its last layer has an output per user), and the actor's update
    that stays between rollouts is the rest. Actor and critic share no parameters, their gradient clips
    are separate and Adam's moments elementwise, so the actor's pass (policy loss and entropy) followed
    by this pass (``vf_coef`` times the value loss) over the same minibatches in the same order gives the
    numbers of the joint loss, bit for bit (tests in ``tests/test_rollout.py``).

    One optimizer serves both passes: ``zero_grad`` leaves the other network's gradients ``None``, which
    Adam skips. Its learning rate must not change while a pass runs: solvers set it after :meth:`wait`.
    ``background=False`` runs the pass at once, in this thread (``--rollout main`` and the family, whose
    rollouts keep this process busy). The value loss of each pass is logged when it is waited for.
    """

    def __init__(self, agent, optimizer, args, k: int, writer, background: bool):
        self.agent, self.optimizer, self.args, self.k, self.writer = agent, optimizer, args, k, writer
        self.background = background
        self._thread, self._error, self._logged = None, None, None

    def start(self, b_obs: torch.Tensor, b_returns: torch.Tensor, orders: list, minibatch_size: int, step: int) -> None:
        """The critic's epochs over ``(k, N, ...)`` batches, minibatches ``minibatch_size`` wide in each epoch's
        ``orders`` (those of the actor's epochs, early stopping included); its loss is logged at ``step``."""
        self.wait()
        if not self.background:
            self._run(b_obs, b_returns, orders, minibatch_size, step, threads=self.args.update_threads)
            return
        # the sampler refills its buffers during the next rollout, and per_policy can be a view of them (one copy
        # per policy): the pass reads its own copy of the observations (the returns are this iteration's own tensor)
        job = (b_obs.clone(), b_returns, orders, minibatch_size, step)
        # one thread: the workers own the cores while it runs (an OpenMP team would spin against them)
        self._thread = threading.Thread(target=self._run, args=job, kwargs=dict(threads=1), name="critic-update", daemon=True)
        self._thread.start()

    def _run(self, b_obs, b_returns, orders, minibatch_size: int, step: int, threads: int) -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            args, agent, optimizer = self.args, self.agent, self.optimizer
            N = b_obs.shape[1]
            for order in orders:
                for start in range(0, N, minibatch_size):
                    idx = order[:, start:start + minibatch_size]
                    v_loss = value_loss(agent.critic(take(b_obs, idx)), take(b_returns, idx))
                    optimizer.zero_grad()
                    (args.vf_coef * v_loss).backward()
                    agent.clip_critic_grad_norm_(args.max_grad_norm)
                    optimizer.step()
            self._logged = (v_loss.item(), step)
        except BaseException as error:  # re-raised by wait(), in the solver's thread
            self._error = error
        finally:
            torch.set_num_threads(previous)

    def wait(self) -> None:
        """Until the last pass has finished (re-raising its error); logs its value loss."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._logged is not None:
            v_loss, step = self._logged
            self.writer.add_scalar("losses/value_loss", v_loss / self.k, step)
            self._logged = None
