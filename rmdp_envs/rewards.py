"""Users' rewards from a cheap per-step description, for solvers and evaluation at large n.

An r-MDP's public contract is the ``(n,)`` reward vector of every step. Building that vector costs
O(n) per step and copy, and a rollout buffer of them O(steps x copies x n) memory: 4 GB for
n = 100,000 users, 40 copies and 256 steps. But what a solver needs from the users is smaller:

* per step and copy, the reward of the *group* the copy's policy serves (a weighted mean over
  users, the M-step's objective), or the mean rewards of a fixed set of bins of similar users
  (what the solvers' critic learns when n is large), and
* per finished episode, every user's *return* (the E-step's input): O(n) per episode, not per step.

A :class:`UserRewards` gives both from a per-step *statistic* of width ``dim``. Environments whose
users differ only in a target on one scalar (the speed tasks, CartPole's position) describe every
user's reward by that scalar (:class:`WindowRewards`, ``dim = 1``): group rewards cost
O(log n) per step and copy with prefix sums over the sorted targets, and an episode's returns
O(n log steps) from its sorted list of visited values. The tabular r-MDPs describe it by the
step's (state, action) cell (:class:`TableRewards`, ``dim = 1``): group and bin rewards are
looked up in tables made once, an episode's returns follow from its visit counts. Every other
environment is described by its reward vector itself (:class:`VectorRewards`, ``dim = n``),
which is exact and as cheap as before. ``tests/test_rewards.py`` checks that both give the same group rewards and returns as
the environments' reward vectors.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np


class TargetWindowReward:
    """Rewards of users who each want a scalar quantity ``x`` near their own target.

    ``r_i = scale * max(0, 1 - |x - t_i| / half_width)`` (``shape="triangle"``) or
    ``r_i = scale * [|x - t_i| < half_width]`` (``shape="box"``). Only users whose target lies
    within ``half_width`` of ``x`` can be rewarded, and with the targets sorted once they are a
    contiguous window found by two binary searches: the cost per step grows with the window,
    not with ``n``.
    """

    def __init__(self, targets: np.ndarray, half_width: float, scale: float, shape: str = "triangle"):
        if not (half_width > 0 and np.isfinite(half_width)):  # NaN passed "<= 0" and paid every user 0
            raise ValueError(f"half_width must be a finite number > 0, got {half_width}")
        if shape not in ("triangle", "box"):
            raise ValueError(f"shape must be 'triangle' or 'box', got {shape!r}")
        targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        self.n = targets.shape[0]
        self.order = np.argsort(targets, kind="stable")
        # Sorted populations (the samplers' default) need no scatter: the window is a slice.
        self._presorted = bool(np.all(self.order == np.arange(self.n)))
        self.sorted_targets = targets[self.order]
        self._sorted_list = self._scaled_targets = None  # built on the first call: a copy stepped for statistics never needs them
        self.half_width = float(half_width)
        self.scale = float(scale)
        self.shape = shape

    def _scaled(self) -> np.ndarray:
        """``sorted_targets / half_width``, made on first use."""
        if self._scaled_targets is None:
            self._scaled_targets = self.sorted_targets / self.half_width
        return self._scaled_targets

    def __call__(self, x: float) -> np.ndarray:
        if self._sorted_list is None:
            self._sorted_list = self.sorted_targets.tolist()  # bisect on a list beats np.searchsorted per call
        scaled = self._scaled()
        reward = np.zeros(self.n, dtype=np.float32)
        x = float(x)
        lo = bisect_right(self._sorted_list, x - self.half_width)
        hi = bisect_left(self._sorted_list, x + self.half_width)
        if hi > lo:
            values = self._values(scaled[lo:hi], x)
            if self._presorted:
                reward[lo:hi] = values
            else:
                reward[self.order[lo:hi]] = values
        return reward

    def _values(self, scaled_targets: np.ndarray, x):
        """The rewards of targets inside the window (``scaled_targets = t / half_width``), one float64 recipe
        for :meth:`__call__` and :meth:`many` (``x`` a float, or a column of them).

        A box's rewards are the scale alone, which both callers broadcast over their window: building the array
        here (``np.full`` of the broadcast shape) cost CartPolePosition a third of its step rate at n = 100."""
        if self.shape == "box":
            return self.scale
        values = scaled_targets - x / self.half_width
        np.abs(values, out=values)
        np.subtract(1.0, values, out=values)
        values *= self.scale
        return values

    def many(self, xs: np.ndarray) -> np.ndarray:
        """``(E,) -> (E, n)``: the rewards of every ``x`` at once, bit for bit ``__call__``'s.

        The same float64 operations on the same numbers, by one of two paths that give the same bytes: one numpy
        pass over the union of the windows (:meth:`_many_over_union`), or each ``x``'s own window written into its
        row (:meth:`_many_by_rows`). A row costs the union pass its whole span, and the row path its own window plus
        Python's overhead per row, worth :data:`ROW_OVERHEAD_USERS` users of the union pass; :meth:`many` takes the
        cheaper. The per-user critic's rewards (n = 100, 10,240 speeds a rollout) take the union pass, 3.1x faster
        than by rows there; a 16-copy vector env at n = 100,000, whose windows are a few thousand users of a span of
        100,000, takes the rows, 14.5x faster than the union pass (``benchmarks/results/many_paths.md``).
        """
        xs = np.asarray(xs, dtype=np.float64).reshape(-1)
        reward = np.zeros((xs.shape[0], self.n), dtype=np.float32)
        if not xs.size:
            return reward
        t = self.sorted_targets
        lo = int(np.searchsorted(t, (xs - self.half_width).min(), side="right"))  # bisect_right, as __call__
        hi = int(np.searchsorted(t, (xs + self.half_width).max(), side="left"))
        if hi <= lo:
            return reward
        if hi - lo > ROW_OVERHEAD_USERS:  # a union this wide may cost more than the rows: look at each window
            los = np.searchsorted(t, xs - self.half_width, side="right")
            his = np.searchsorted(t, xs + self.half_width, side="left")
            if self.by_rows(los, his):
                return self._many_by_rows(xs, los, his, reward)
        return self._many_over_union(xs, lo, hi, reward)

    @staticmethod
    def by_rows(los: np.ndarray, his: np.ndarray) -> bool:
        """Whether :meth:`many` writes row by row for windows ``[los, his)``: where their union's span is wider than a
        window plus Python's overhead of a row."""
        return int(his.max() - los.min()) > float(np.maximum(his - los, 0).mean()) + ROW_OVERHEAD_USERS

    def _many_by_rows(self, xs: np.ndarray, los: np.ndarray, his: np.ndarray, reward: np.ndarray) -> np.ndarray:
        scaled = self._scaled()
        for row, (x, a, b) in enumerate(zip(xs.tolist(), los.tolist(), his.tolist())):
            if b > a:
                reward[row, slice(a, b) if self._presorted else self.order[a:b]] = self._values(scaled[a:b], x)
        return reward

    def _many_over_union(self, xs: np.ndarray, lo: int, hi: int, reward: np.ndarray) -> np.ndarray:
        column = xs[:, None]
        window = self.sorted_targets[lo:hi]
        inside = (window > column - self.half_width) & (window < column + self.half_width)  # bisect's window, per x
        block = np.where(inside, self._values(window / self.half_width, column), 0.0).astype(np.float32)
        if self._presorted:
            reward[:, lo:hi] = block
        else:
            reward[:, self.order[lo:hi]] = block
        return reward


#: Python's cost of one row of :meth:`TargetWindowReward.many`'s row path in users of its union pass: about 2 us
#: a row against 4-8 ns a (row, user) element on this project's 2-core Xeon (``benchmarks/many_paths.py``).
ROW_OVERHEAD_USERS = 256


class UserRewards:
    """How every user's per-step reward follows from a per-step statistic of width :attr:`dim`.

    ``statistic(reward, info)`` reads the statistic of one step (from what ``env.step``
    returned); ``rewards(stats)`` rebuilds the reward vectors ``(B, n)`` the environment would
    have returned; ``grouped(weights)`` gives a function of ``(stats (E, dim), policy (E,))`` to
    each copy's group reward ``sum_i weights[policy, i] * r_i``; ``pooled(bins)`` a function of
    ``stats`` to the mean reward of each bin of users ``(E, bins)``; an :class:`EpisodeReturns`
    collects whole episodes and gives the users' returns.
    """

    n: int
    dim: int
    #: whether ``env.step`` must still build its reward vector for :meth:`statistic` to work
    needs_reward_vector: bool = True

    def statistic(self, reward: np.ndarray, info: dict) -> np.ndarray:
        raise NotImplementedError

    def rewards(self, stats: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grouped(self, weights: np.ndarray):
        raise NotImplementedError

    def pooled(self, bins: np.ndarray):
        """``bins``: each user's bin ``(n,)`` (``0..B-1``, none empty); returns ``stats -> (E, B)`` mean rewards, float32."""
        raise NotImplementedError

    def episode_returns(self, num_envs: int, dtype=np.float64) -> "EpisodeReturns":
        raise NotImplementedError


class VectorRewards(UserRewards):
    """The general description: the statistic is the reward vector itself (``dim = n``)."""

    def __init__(self, n: int):
        self.n = self.dim = int(n)

    def statistic(self, reward, info):
        return reward

    def rewards(self, stats):
        return np.asarray(stats, dtype=np.float32).reshape(-1, self.n)

    def grouped(self, weights):
        weights = np.asarray(weights, dtype=np.float64)
        return lambda stats, policy: np.einsum("en,en->e", weights[policy], stats)

    def pooled(self, bins):
        order = np.argsort(bins, kind="stable")
        starts = np.flatnonzero(np.diff(np.concatenate([[-1], np.asarray(bins)[order]])))
        sizes = np.diff(np.concatenate([starts, [len(order)]]))
        return lambda stats: (np.add.reduceat(np.asarray(stats)[:, order], starts, axis=1) / sizes).astype(np.float32)

    def episode_returns(self, num_envs, dtype=np.float64):
        return _VectorReturns(num_envs, self.n, dtype)


class TableRewards(UserRewards):
    """Users rewarded by a table of the step's (state, action) cell, ``r_i = R[i, s, a]`` (``dim = 1``).

    The statistic is the cell's flat index ``s * A + a`` (``info[key]``). With the users' tables
    transposed once to ``(cells, n)``, a step's reward vectors are rows of it (the env's float32
    values, bit for bit), a policy group's reward and a bin's mean reward are looked up in
    ``(K, cells)`` and ``(cells, bins)`` tables made once per assignment or binning, and an
    episode's returns follow from how often it visited each cell: O(1) per step and copy, and
    O(cells x n) when episodes are folded, instead of O(n) per step and copy and a rollout of
    ``steps x copies x n`` statistics.
    """

    needs_reward_vector = False

    def __init__(self, tables: np.ndarray, key: str = "state_action"):
        tables = np.asarray(tables)
        self.n, self.dim, self.key = tables.shape[0], 1, key
        # (cells, n): the env's float32 rewards, held as float64 (exactly) for the products of returns and groups
        self.by_cell = tables.reshape(self.n, -1).T.astype(np.float32).astype(np.float64)

    @staticmethod
    def cells(stats: np.ndarray) -> np.ndarray:
        """``(B, 1)`` statistics -> ``(B,)`` cell indices."""
        return np.asarray(stats).reshape(-1).astype(np.intp)

    def statistic(self, reward, info):
        return np.array([info[self.key]], dtype=np.float64)

    def rewards(self, stats):
        return self.by_cell[self.cells(stats)].astype(np.float32)

    def grouped(self, weights):
        per_cell = np.asarray(weights, dtype=np.float64) @ self.by_cell.T  # (K, cells)
        return lambda stats, policy: per_cell[policy, self.cells(stats)]

    def pooled(self, bins):
        """Each cell's bin means, by :meth:`VectorRewards.pooled`'s own arithmetic on the cell's reward vector."""
        per_cell = VectorRewards(self.n).pooled(bins)(self.by_cell)  # (cells, bins) float32
        return lambda stats: per_cell[self.cells(stats)]

    def episode_returns(self, num_envs, dtype=np.float64):
        return _TableReturns(num_envs, self)


class WindowRewards(UserRewards):
    """Users rewarded by a :class:`TargetWindowReward` of one scalar ``info[key]`` (``dim = 1``)."""

    needs_reward_vector = False

    def __init__(self, window: TargetWindowReward, key: str):
        self.window, self.key = window, key
        self.n, self.dim = window.n, 1

    def statistic(self, reward, info):
        return np.array([info[self.key]], dtype=np.float64)

    def rewards(self, stats):
        return self.window.many(stats)

    def grouped(self, weights):
        """Group rewards in O(log n) per copy: prefix sums of the weights, and of weights x targets."""
        w = self.window
        weights = np.asarray(weights, dtype=np.float64)[:, w.order]  # sorted-target order
        zero = np.zeros((weights.shape[0], 1))
        cum_w = np.hstack([zero, np.cumsum(weights, axis=1)])
        cum_wt = np.hstack([zero, np.cumsum(weights * w.sorted_targets, axis=1)])
        t, l, s = w.sorted_targets, w.half_width, w.scale

        def group_rewards(stats, policy):
            x = np.asarray(stats, dtype=np.float64).reshape(-1)
            lo = np.searchsorted(t, x - l, side="right")
            hi = np.searchsorted(t, x + l, side="left")
            if w.shape == "box":
                return s * (cum_w[policy, hi] - cum_w[policy, lo])
            mid = np.clip(np.searchsorted(t, x, side="right"), lo, hi)
            # targets in (x - l, x]: s (1 - x/l + t/l); in (x, x + l): s (1 + x/l - t/l)
            left_w, left_wt = cum_w[policy, mid] - cum_w[policy, lo], cum_wt[policy, mid] - cum_wt[policy, lo]
            right_w, right_wt = cum_w[policy, hi] - cum_w[policy, mid], cum_wt[policy, hi] - cum_wt[policy, mid]
            return s * ((1 - x / l) * left_w + left_wt / l + (1 + x / l) * right_w - right_wt / l)

        return group_rewards

    def pooled(self, bins):
        """Mean reward of each bin in O(bins) per copy; the bins must be contiguous ranges of sorted targets."""
        w = self.window
        sorted_bins = np.asarray(bins)[w.order]
        if np.any(np.diff(sorted_bins) < 0):
            raise ValueError("WindowRewards.pooled needs bins that are contiguous ranges of the sorted targets")
        edges = np.concatenate([np.flatnonzero(np.diff(np.concatenate([[-1], sorted_bins]))), [w.n]])
        first, last, sizes = edges[:-1], edges[1:], np.diff(edges).astype(np.float64)
        cum_t = np.concatenate([[0.0], np.cumsum(w.sorted_targets)])
        t, l, s = w.sorted_targets, w.half_width, w.scale

        def pool(stats):
            x = np.asarray(stats, dtype=np.float64).reshape(-1, 1)
            lo = np.clip(np.searchsorted(t, x - l, side="right"), first, last)  # (E, bins): each bin's window
            hi = np.clip(np.searchsorted(t, x + l, side="left"), first, last)
            if w.shape == "box":
                return (s * (hi - lo) / sizes).astype(np.float32)
            mid = np.clip(np.searchsorted(t, x, side="right"), lo, hi)
            total = ((1 - x / l) * (mid - lo) + (cum_t[mid] - cum_t[lo]) / l
                     + (1 + x / l) * (hi - mid) - (cum_t[hi] - cum_t[mid]) / l)
            return (s * total / sizes).astype(np.float32)

        return pool

    def episode_returns(self, num_envs, dtype=np.float64):
        return _WindowReturns(num_envs, self)

    def returns_of(self, xs: np.ndarray, coefs: np.ndarray) -> np.ndarray:
        """``(n,)``: every user's summed reward over the values ``xs``, value ``j`` counted ``coefs[j]`` times.

        O((n + len(xs)) log len(xs)): the values sorted once, each user's window found by binary search.
        """
        w = self.window
        order = np.argsort(xs, kind="stable")
        xs, coefs = np.asarray(xs, dtype=np.float64)[order], np.asarray(coefs, dtype=np.float64)[order]
        cum_c = np.concatenate([[0.0], np.cumsum(coefs)])
        cum_cx = np.concatenate([[0.0], np.cumsum(coefs * xs)])
        t, l, s = w.sorted_targets, w.half_width, w.scale
        lo = np.searchsorted(xs, t - l, side="right")
        hi = np.searchsorted(xs, t + l, side="left")
        if w.shape == "box":
            sorted_returns = s * (cum_c[hi] - cum_c[lo])
        else:
            mid = np.clip(np.searchsorted(xs, t, side="right"), lo, hi)
            # values in (t - l, t]: s (1 - t/l + x/l); in (t, t + l): s (1 + t/l - x/l)
            left_c, left_cx = cum_c[mid] - cum_c[lo], cum_cx[mid] - cum_cx[lo]
            right_c, right_cx = cum_c[hi] - cum_c[mid], cum_cx[hi] - cum_cx[mid]
            sorted_returns = s * ((1 - t / l) * left_c + left_cx / l + (1 + t / l) * right_c - right_cx / l)
        returns = np.empty(w.n)
        returns[w.order] = sorted_returns
        return returns


class EpisodeReturns:
    """Per-copy episode accumulators of one vector env's statistics.

    ``add(stats)`` every step (``(num_envs, dim)``); ``combine(copies, coefs)`` is
    ``sum_j coefs[j] * returns of copy copies[j]``'s episode so far ``(n,)``; ``clear(copies)``
    starts those copies' next episodes.
    """

    def add(self, stats: np.ndarray, active: np.ndarray | None = None) -> None:
        """Append one step; copies with ``active`` False (frozen after their episode) are skipped."""
        raise NotImplementedError

    def combine(self, copies, coefs) -> np.ndarray:
        raise NotImplementedError

    def combine_groups(self, groups) -> np.ndarray:
        """``(len(groups), n)``: :meth:`combine` of each ``(copies, coefs)`` pair (one pass where a description can)."""
        return np.stack([self.combine(copies, coefs) for copies, coefs in groups])

    def clear(self, copies) -> None:
        raise NotImplementedError

    def returns(self) -> np.ndarray:
        """``(num_envs, n)``: every copy's current episode return (O(num_envs x n): small n or evaluation)."""
        return self.combine_groups([([e], [1.0]) for e in range(self.num_envs)])


class _VectorReturns(EpisodeReturns):
    def __init__(self, num_envs: int, n: int, dtype):
        self.num_envs = num_envs
        self._sums = np.zeros((num_envs, n), dtype=dtype)

    def add(self, stats, active=None):
        if active is None:
            np.add(self._sums, stats, out=self._sums)
        else:
            self._sums[active] += stats[active]

    def combine(self, copies, coefs):
        return sum(float(c) * self._sums[e].astype(np.float64) for e, c in zip(copies, coefs))

    def clear(self, copies):
        self._sums[list(copies)] = 0.0


class _WindowReturns(EpisodeReturns):
    """Keeps each copy's visited values (O(num_envs x episode length)); returns from :meth:`WindowRewards.returns_of`."""

    def __init__(self, num_envs: int, model: WindowRewards, capacity: int = 1024):
        self.num_envs, self.model = num_envs, model
        self._values = np.zeros((num_envs, capacity))
        self._length = np.zeros(num_envs, dtype=np.int64)

    def add(self, stats, active=None):
        if self._length.max() >= self._values.shape[1]:
            self._values = np.hstack([self._values, np.zeros_like(self._values)])
        copies = np.arange(self.num_envs) if active is None else np.flatnonzero(active)
        self._values[copies, self._length[copies]] = np.asarray(stats).reshape(-1)[copies]
        self._length[copies] += 1

    def combine(self, copies, coefs):
        xs = np.concatenate([self._values[e, :self._length[e]] for e in copies])
        cs = np.concatenate([np.full(self._length[e], float(c)) for e, c in zip(copies, coefs)])
        return self.model.returns_of(xs, cs)

    def clear(self, copies):
        self._length[list(copies)] = 0


class _TableReturns(EpisodeReturns):
    """Keeps each copy's visits per cell (O(num_envs x cells)); returns are the visits times the users' tables."""

    def __init__(self, num_envs: int, model: TableRewards):
        self.num_envs, self.model = num_envs, model
        self._visits = np.zeros((num_envs, model.by_cell.shape[0]))

    def add(self, stats, active=None):
        cells = self.model.cells(stats)
        copies = np.arange(self.num_envs) if active is None else np.flatnonzero(active)
        self._visits[copies, cells[copies]] += 1.0

    def combine(self, copies, coefs):
        return self.combine_groups([(copies, coefs)])[0]

    def combine_groups(self, groups):
        """One matrix product for all groups: the users' tables are read once, not once per group."""
        weights = np.zeros((len(groups), self.num_envs))
        for row, (copies, coefs) in zip(weights, groups):
            row[list(copies)] = coefs
        return (weights @ self._visits) @ self.model.by_cell

    def clear(self, copies):
        self._visits[list(copies)] = 0.0


def user_rewards_of(env) -> UserRewards:
    """The cheapest exact description an environment offers (``env.unwrapped.user_rewards()``), else its vector."""
    base = env.unwrapped
    own = getattr(base, "user_rewards", None)
    return own() if own is not None else VectorRewards(base.population.n)
