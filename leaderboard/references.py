"""Reference points of the normalized welfare ``(W - W_random) / (W_k - W_random)``.

* ``W_random``: welfare of one uniformly random policy (k = 1), evaluated with
  :func:`rmdp_envs.evaluate` under the protocol (its random actions are seeded by the protocol seed).
* ``W_upper``: the full-personalization bound (every user gets its own optimal policy), as each
  environment states it (:func:`rmdp_envs.upper_welfare`): the exact optimum for tabular r-MDPs,
  the closed form for ResourceGathering (shortest round trip to each cell: 0.9356 on the paper's
  map), else the largest return a user can collect (speed tasks: 0.1 per step x 1000 steps = 100).

* ``W_k``: the most k policies can reach (``k_bounds``, per budget): exact where the env knows
  the optimum (tabular r-MDPs), a certified upper bound otherwise (speed tasks: a DP over
  contiguous groups of targets; ResourceGathering: a capacity relaxation of k closed walks),
  each with its derivation. Normalizing by it tells how much of what is attainable a solver gets.

They are cached, keyed by benchmark, in ``reference_points.json`` beside the submissions and
published with the tables, so anyone can recompute a normalized score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import rmdp_envs
from leaderboard.protocol import PROTOCOL, REFERENCE_FORMAT, Protocol
from leaderboard.storage import dump_json
from rmdp_envs.files import atomic_write_text

REFERENCE_FILE = "reference_points.json"


class RandomPolicy:
    """Uniformly random actions for ``k`` policies, seeded: the same actions on every call sequence."""

    batched = True

    def __init__(self, action_space, seed: int):
        self.space = action_space
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        lead = obs.shape[:2]
        if hasattr(self.space, "n"):
            return self.rng.integers(0, int(self.space.n), size=lead) + int(getattr(self.space, "start", 0))
        low, high = np.asarray(self.space.low), np.asarray(self.space.high)
        return self.rng.uniform(low, high, size=lead + low.shape).astype(self.space.dtype)


def random_welfare(env_id: str, env_kwargs: dict, protocol: Protocol = PROTOCOL) -> dict[str, float]:
    env = rmdp_envs.make(env_id, **env_kwargs)
    space = env.action_space
    env.close()
    result = rmdp_envs.evaluate(env_id, RandomPolicy(space, protocol.seed), 1, protocol.episodes, protocol.seed, env_kwargs)
    u = result.utility[0]
    return {"welfare": float(u.mean()), "egalitarian_welfare": float(u.min())}


def upper_welfare(env_id: str, env_kwargs: dict) -> dict[str, Any]:
    """W_upper as the environment states it (:func:`rmdp_envs.upper_welfare`)."""
    env = rmdp_envs.make(env_id, **env_kwargs)
    try:
        return rmdp_envs.upper_welfare(env)
    finally:
        env.close()


def load_references(board: Path) -> dict[str, Any]:
    path = board / REFERENCE_FILE
    if path.is_file():
        return json.loads(path.read_text())
    return {"format": REFERENCE_FORMAT, "benchmarks": {}}


def k_bounds(benchmark: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """``{str(k): {"welfare", "kind", "derivation"}}``: what k policies can reach at most (:func:`rmdp_envs.k_policy_bound`)."""
    env = rmdp_envs.make(benchmark["env_id"], **benchmark["env_kwargs"])
    try:
        return {str(k): rmdp_envs.k_policy_bound(env, k) for k in sorted(set(ks))}
    finally:
        env.close()


def reference_for(benchmark: dict[str, Any], protocol: Protocol = PROTOCOL, ks: list[int] = ()) -> dict[str, Any]:
    env_id, env_kwargs = benchmark["env_id"], benchmark["env_kwargs"]
    return {"env_id": env_id, "env_kwargs": env_kwargs, "n": benchmark["n"], "protocol": protocol.version,
            "random": {**random_welfare(env_id, env_kwargs, protocol), "episodes": protocol.episodes,
                       "seed": protocol.seed, "policy": "uniform random actions, numpy default_rng(seed)"},
            "upper": upper_welfare(env_id, env_kwargs), "k_bounds": k_bounds(benchmark, list(ks))}


def ensure_references(board: Path, benchmarks: list[dict[str, Any]], protocol: Protocol = PROTOCOL,
                      ks: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Compute the reference points missing from the cache (new benchmarks, new budgets k) and save it atomically.

    ``ks`` maps a benchmark key to the budgets whose k-policy bound the board needs.
    """
    refs = load_references(board)
    ks = ks or {}
    changed = False
    for b in benchmarks:
        key = f"{b['key']}/{protocol.version}"
        wanted = ks.get(b["key"], [])
        if key not in refs["benchmarks"]:
            refs["benchmarks"][key] = reference_for(b, protocol, wanted)
            changed = True
            continue
        entry = refs["benchmarks"][key]
        have = entry.setdefault("k_bounds", {})
        new = [k for k in wanted if str(k) not in have]
        if new:
            have.update(k_bounds(b, new))
            entry["k_bounds"] = dict(sorted(have.items(), key=lambda kv: int(kv[0])))
            changed = True
    if changed:
        refs["benchmarks"] = dict(sorted(refs["benchmarks"].items()))
        atomic_write_text(board / REFERENCE_FILE, dump_json(refs))
    return refs


def k_bound(ref: dict[str, Any], k: int) -> float | None:
    """The k-policy bound of a reference entry (None when the board has not computed it)."""
    entry = ref.get("k_bounds", {}).get(str(k))
    return None if entry is None else entry["welfare"]
