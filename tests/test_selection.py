"""Choosing k of C candidates (the policy-family baseline's last step) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from rmdp_envs.selection import brute_force, dp_contiguous, greedy_swaps, milp, select_k, welfare_of


@pytest.mark.parametrize("trial", range(25))
def test_milp_is_exact_and_greedy_keeps_its_guarantee_on_random_matrices(trial):
    rng = np.random.default_rng(trial)
    C, n = int(rng.integers(3, 8)), int(rng.integers(4, 10))
    k = int(rng.integers(1, C + 1))
    utility = rng.random((C, n)) * rng.integers(1, 5)
    _, optimum = brute_force(utility, k)
    assert welfare_of(utility, milp(utility, k)) == pytest.approx(optimum, abs=1e-9)
    greedy = welfare_of(utility, greedy_swaps(utility, k))
    assert (1 - 1 / np.e) * optimum - 1e-9 <= greedy <= optimum + 1e-9


@pytest.mark.parametrize("trial", range(25))
def test_dp_is_exact_on_one_dimensional_distance_utilities(trial):
    """Speed-task structure: utility falls off with |candidate - user target|, so groups are contiguous."""
    rng = np.random.default_rng(100 + trial)
    C, n = int(rng.integers(3, 9)), int(rng.integers(4, 12))
    k = int(rng.integers(1, C + 1))
    targets, centers = rng.random(n), rng.random(C)
    utility = np.clip(1 - np.abs(centers[:, None] - targets[None, :]) / rng.uniform(0.1, 0.5), 0, None)
    chosen = dp_contiguous(utility, k, targets)
    assert len(chosen) == k == len(set(chosen))
    assert welfare_of(utility, chosen) == pytest.approx(brute_force(utility, k)[1], abs=1e-9)


def test_select_k_names_its_method_and_checks_k():
    rng = np.random.default_rng(0)
    utility = rng.random((6, 5))
    assert select_k(utility, 2, user_params=rng.random((5, 2)))[1] == "milp"
    assert select_k(utility, 2, user_params=rng.random(5))[1] == "dp"
    assert select_k(utility, 6)[1] == "all"
    with pytest.raises(ValueError, match="k must lie"):
        select_k(utility, 7)


@pytest.mark.parametrize("trial", range(25))
def test_milp_and_select_k_deploy_exactly_k_distinct_candidates(trial):
    """The budget is k policies, not at most k: a pick of fewer would leave a reviewed slot unused (and extra
    members never lower the welfare)."""
    rng = np.random.default_rng(100 + trial)
    C, n, k = int(rng.integers(4, 9)), int(rng.integers(3, 12)), int(rng.integers(2, 4))
    u = rng.random((C, n)) * (rng.random((C, n)) < 0.5)  # sparse: some candidates add nothing beyond the others
    assert len(set(milp(u, k))) == k
    chosen, _ = select_k(u, k)
    assert len(set(chosen)) == k


def test_swaps_reach_every_slot_greedy_filled():
    """Greedy fills the slots in order; a swap in the first slot can leave the last one improvable, and the swaps
    must still reach it. On this matrix (found by search) greedy takes candidate 1, then 0 (every second pick gives
    0.66; ties go to the lowest index), swapping slot 0 gives {2, 0} (0.68), and only swapping the last slot then
    reaches the optimum {2, 3} (0.80)."""
    u = np.array([[0.0, 0.7, 0.4, 0.2, 0.8], [0.9, 0.2, 0.0, 0.3, 1.0], [1.0, 0.3, 0.7, 0.1, 0.3],
                  [0.0, 0.6, 0.0, 0.8, 0.9], [1.0, 0.6, 0.4, 0.2, 0.0]])
    chosen = greedy_swaps(u, 2)
    assert welfare_of(u, chosen) == pytest.approx(brute_force(u, 2)[1]) == pytest.approx(0.8)
    for slot, other in ((s, c) for s in range(2) for c in range(len(u)) if c not in chosen):  # swap-stable
        assert welfare_of(u, chosen[:slot] + [other] + chosen[slot + 1:]) <= welfare_of(u, chosen) + 1e-12

