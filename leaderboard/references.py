"""Reference points of the normalized welfare ``(W - W_random) / (W_upper - W_random)``.

* ``W_random``: welfare of one uniformly random policy (k = 1), evaluated with
  :func:`rmdp_envs.evaluate` under the protocol (its random actions are seeded by the protocol seed).
* ``W_upper``: the full-personalization bound (every user gets its own optimal policy), as each
  environment states it (:func:`rmdp_envs.upper_welfare`): the exact optimum for tabular r-MDPs,
  the closed form for ResourceGathering (shortest round trip to each cell: 0.9356 on the paper's
  map), else the largest return a user can collect (speed tasks: 0.1 per step x 1000 steps = 100).

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
from leaderboard.storage import atomic_write_text, dump_json

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


def reference_for(benchmark: dict[str, Any], protocol: Protocol = PROTOCOL) -> dict[str, Any]:
    env_id, env_kwargs = benchmark["env_id"], benchmark["env_kwargs"]
    return {"env_id": env_id, "env_kwargs": env_kwargs, "n": benchmark["n"], "protocol": protocol.version,
            "random": {**random_welfare(env_id, env_kwargs, protocol), "episodes": protocol.episodes,
                       "seed": protocol.seed, "policy": "uniform random actions, numpy default_rng(seed)"},
            "upper": upper_welfare(env_id, env_kwargs)}


def ensure_references(board: Path, benchmarks: list[dict[str, Any]], protocol: Protocol = PROTOCOL) -> dict[str, Any]:
    """Compute the reference points of benchmarks missing from the cache and save it (atomically)."""
    refs = load_references(board)
    key_of = lambda b: f"{b['key']}/{protocol.version}"  # noqa: E731
    missing = {key_of(b): b for b in benchmarks if key_of(b) not in refs["benchmarks"]}
    if missing:
        for key in sorted(missing):
            refs["benchmarks"][key] = reference_for(missing[key], protocol)
        atomic_write_text(board / REFERENCE_FILE, dump_json(refs))
    return refs
