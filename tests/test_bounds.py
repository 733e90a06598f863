"""The k-policy bounds W_k (rmdp_envs.bounds): the yardstick every normalized score and clipped interval is read
against, so each is checked against a computation that does not share its code."""

from __future__ import annotations

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest

import rmdp_envs
from leaderboard.references import k_bounds
from leaderboard.storage import PACKAGE_DIR
from rmdp_envs.bounds import tent_welfare_bound


def brute_tent(targets: np.ndarray, half_width: float, k: int, weights=None) -> float:
    """Every k-subset of candidate speeds (the targets and a fine grid between them), each user served by its best:
    no assumption about where the optimum lies or that groups are contiguous."""
    w = np.ones(len(targets)) if weights is None else np.asarray(weights, dtype=np.float64)
    speeds = np.union1d(targets, np.linspace(targets.min() - half_width, targets.max() + half_width, 61))
    tents = np.clip(1.0 - np.abs(speeds[:, None] - targets[None, :]) / half_width, 0.0, None) * w  # (speeds, users)
    return max(tents[list(chosen)].max(axis=0).sum() for chosen in itertools.combinations(range(len(speeds)), k))


@pytest.mark.parametrize("trial", range(6))
def test_tent_bound_is_the_best_k_speeds(trial):
    rng = np.random.default_rng(trial)
    targets = np.sort(rng.uniform(0.0, 2.0, size=int(rng.integers(3, 7))))
    weights = rng.integers(1, 4, size=targets.size) if trial % 2 else None
    for k in (1, 2, 3):
        assert tent_welfare_bound(targets, 0.3, k, weights) == pytest.approx(brute_tent(targets, 0.3, k, weights),
                                                                             abs=1e-9)


def test_resource_gathering_bound_grows_to_full_personalization():
    """W_1 = 0.74 (its derivation: a 26-step walk through every cell), W_k non-decreasing, and from k = 10 on the
    full personalization 0.9356 that 25 policies reach by walking each to its own cell (scripted in test_evaluate)."""
    env = gym.make("rmdp/ResourceGathering-v0")
    bounds = [rmdp_envs.k_policy_bound(env, k)["welfare"] for k in range(1, 26)]
    assert bounds[0] == pytest.approx(0.74)
    assert all(a <= b + 1e-12 for a, b in zip(bounds, bounds[1:]))
    assert bounds[9] == bounds[24] == pytest.approx(0.9356)


def test_the_boards_stored_bounds_are_what_the_code_computes():
    """reference_points.json holds the W_k every normalized column of the board divides by: a change to a bound's
    code (or an env's rewards) that left the stored ones stale would mis-scale the board silently."""
    path = PACKAGE_DIR / "reference_points.json"
    if not path.is_file():
        pytest.skip("no board here (an sdist ships no reference_points.json)")
    refs = json.loads(path.read_text())["benchmarks"]
    checked = 0
    for ref in refs.values():
        stored = ref.get("k_bounds", {})
        if not stored:
            continue
        now = k_bounds({"env_id": ref["env_id"], "env_kwargs": ref["env_kwargs"]}, [int(k) for k in stored])
        for k, bound in stored.items():
            assert now[k]["welfare"] == pytest.approx(bound["welfare"], rel=1e-9), (ref["env_id"], k)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("env_id", ["rmdp/HalfCheetahSpeed-v0", "rmdp/ResourceGathering-v0", "rmdp/Chain-v0"])
def test_a_budget_outside_one_to_n_is_refused(env_id):
    """k = 0 gave a bound of -inf (and k > n one past full personalization) where it should say what k may be."""
    env = gym.make(env_id)
    n = env.unwrapped.population.n
    for k in (0, -1, n + 1):
        with pytest.raises(ValueError, match=r"k must lie in \[1, n\]"):
            rmdp_envs.k_policy_bound(env, k)



def test_k_policy_bound_takes_an_env_id_as_the_other_entry_points_do():
    """An id (with the env's arguments) gives what the made env gives; arguments beside a made env are refused."""
    made = gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=10)
    assert rmdp_envs.k_policy_bound("rmdp/HalfCheetahSpeed-v0", 3, n_agents=10) == rmdp_envs.k_policy_bound(made, 3)
    with pytest.raises(TypeError, match="go with an env id"):
        rmdp_envs.k_policy_bound(made, 3, n_agents=10)
    with pytest.raises(ValueError, match="unknown env id"):
        rmdp_envs.k_policy_bound("rmdp/Nope-v0", 3)
