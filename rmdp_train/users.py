"""The users' side of a rollout in memory that does not grow with steps x copies x n.

The critic has one output per user while ``n <= critic_bins`` (the per-user critic: a user's value
is a fixed function of the state, valid whichever policy group the E-step moves it to; a policy's
advantage is the mean advantage of its users). Beyond that, users are pooled into ``critic_bins``
bins of similar users (quantiles of their first population parameter: the target, for the speed
tasks) and the critic has one output per bin: the rollout keeps ``steps x copies x bins``
rewards, and a policy's advantage is its users' bin advantages weighted by how many of its users
each bin holds. The E-step's input, every user's return in every finished episode, is built once
per episode from the env's reward statistics (:mod:`rmdp_envs.rewards`), O(n) per episode.

Measured (README "Solvers", *Many users*): a critic with a single output per policy (the group's mean reward) is
the cheapest design, but EM with it fell behind on ResourceGathering k = 5 (0.692 and 0.904 against
the per-user critic's 0.899 and 0.904 at 300k transitions, seeds 1 and 2): its targets jump
whenever users move, while a per-user (or per-bin) value stays valid.
"""

from __future__ import annotations

import numpy as np
import torch

from rmdp_envs.rewards import UserRewards


def user_bins(params: np.ndarray, max_bins: int) -> np.ndarray:
    """``(n,)``: each user's bin. One bin per user (in user order) when ``n <= max_bins``; otherwise
    ``max_bins`` equal-count bins of users sorted by their parameters (first column first)."""
    params = np.asarray(params, dtype=np.float64).reshape(len(params), -1)
    n = params.shape[0]
    if n <= max_bins:
        return np.arange(n)
    order = np.lexsort(params.T[::-1])  # by the first column, ties by the next (stable)
    bins = np.empty(n, dtype=np.int64)
    bins[order] = np.arange(n) * max_bins // n
    return bins


def per_user_bins(bins: np.ndarray) -> bool:
    """Whether ``bins`` gives every user its own output (in user order)."""
    return bool(np.array_equal(bins, np.arange(len(bins))))


#: The vector env's ``rewards=`` mode a :class:`UserTracker` reads: each step's reward statistic, from
#: which it rebuilds the reward vectors itself where the critic has one output per user
#: (``UserRewards.rewards``, bit for bit the env's). The env then builds no O(n) vector per copy, and
#: on the speed tasks steps the dynamics without Gymnasium's per-copy ``step`` (``step_velocity``).
TRACKER_REWARDS = "statistic"


class UserTracker:
    """Per-step critic rewards and per-episode user returns of one policy-major vector env (``k`` x ``m`` copies).

    ``step(rewards, finished, state)`` returns the rewards the critic learns, ``(k * m, outputs)``
    float32 (every user's reward, or each bin's mean), and folds the users' returns of the episodes
    that ``finished`` into ``state.utility[p, i]`` (an EMA per policy and user; a policy's first
    episode sets its row). Its input is what a vector env in mode :data:`TRACKER_REWARDS` returns: the
    reward statistics (:mod:`rmdp_envs.rewards`); while there is one output per user it rebuilds the
    reward vectors from them (``user_rewards.rewards``), once users are pooled it never builds them.
    """

    def __init__(self, user_rewards: UserRewards, k: int, m: int, ema: float, bins: np.ndarray):
        self.user_rewards, self.k, self.m, self.ema = user_rewards, k, m, ema
        self.bins = np.asarray(bins)
        self.outputs = int(self.bins.max()) + 1
        self.per_user = per_user_bins(self.bins)
        self.policy = np.repeat(np.arange(k), m)
        if self.per_user:  # every user's reward per step anyway: sum them (float32, as the vector env did)
            self._sums = np.zeros((k * m, user_rewards.n), dtype=np.float32)
        else:
            self._pool = user_rewards.pooled(self.bins)
            self._episodes = user_rewards.episode_returns(k * m)

    def step(self, stats: np.ndarray, finished: np.ndarray, state) -> np.ndarray:
        return self.steps(stats[None], finished[None], state)[0]

    def steps(self, stats: np.ndarray, finished: np.ndarray, state) -> np.ndarray:
        """:meth:`step` over a whole rollout, ``stats`` ``(T, E, dim)`` and ``finished`` ``(T, E)``: the same
        rewards ``(T, E, outputs)`` and the same folds in step order, the rewards built in one numpy pass."""
        T, E = finished.shape
        flat = stats.reshape(T * E, -1)
        if self.per_user:  # (E, n) float32 per step: the vectors the env would have returned
            rewards = self.user_rewards.rewards(flat).reshape(T, E, -1)
            for t in range(T):
                np.add(self._sums, rewards[t], out=self._sums)
                for e in np.flatnonzero(finished[t]):
                    self._fold(state, self.policy[e], self._sums[e])
                self._sums[finished[t]] = 0.0
            return rewards
        rewards = self._pool(flat).reshape(T, E, -1)
        for t in range(T):
            self._episodes.add(stats[t])
            if finished[t].any():
                self._fold_together(state, finished[t])
        return rewards

    def _fold(self, state, p: int, returns: np.ndarray) -> None:
        ema = self.ema
        state.utility[p] = ema * state.utility[p] + (1 - ema) * returns if state.seen[p] else returns
        state.seen[p] = True

    def _fold_together(self, state, finished: np.ndarray) -> None:
        """The same EMA over a policy's episodes that ended at this step (in copy order), as one weighted sum.

        Folding c episodes one by one gives ``ema^c U + sum_j (1 - ema) ema^(c-1-j) R_j`` (a policy's
        first episode replaces ``U``); returns are linear in an episode's statistics, so one call covers all c.
        """
        ema = self.ema
        policies, groups = np.unique(self.policy[finished]), []
        for p in policies:
            copies = np.flatnonzero(finished & (self.policy == p))
            coefs = (1 - ema) * ema ** np.arange(len(copies) - 1, -1, -1, dtype=np.float64)
            if not state.seen[p]:
                coefs[0] = ema ** (len(copies) - 1)
            groups.append((copies, coefs))
        for p, (copies, _), returns in zip(policies, groups, self._episodes.combine_groups(groups)):
            if state.seen[p]:  # in place: the same two operations, without two temporaries of n per policy
                row = state.utility[p]
                row *= ema ** len(copies)
                row += returns
            else:
                state.utility[p] = returns
            state.seen[p] = True
        self._episodes.clear(np.flatnonzero(finished))

    def pool_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """``(K, n) -> (K, outputs)``: a policy's weight on each critic output (unchanged per user)."""
        if self.per_user:
            return weights
        pooled = np.stack([np.bincount(self.bins, weights=row, minlength=self.outputs) for row in weights.cpu().double().numpy()])
        return torch.as_tensor(pooled, dtype=weights.dtype, device=weights.device)

    def bin_labels_to_users(self, labels: np.ndarray) -> np.ndarray:
        """Labels of the critic's outputs (users or bins) as labels of the users."""
        return np.asarray(labels)[self.bins]
