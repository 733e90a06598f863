"""Main job on a small default: social welfare on Resource Gathering, printed as a table.

Evaluates a uniformly random policy and hand-made policies (k = 1 and k = 5 scripted round
trips) with ``rmdp_envs.evaluate`` and prints them beside the 0.9356 full-personalization bound.
"""

from __future__ import annotations

import numpy as np

import rmdp_envs

ENV_ID = "rmdp/ResourceGathering-v0"
BOUND = 0.9356  # each of the 25 users gets its own shortest round trip
UP, DOWN, LEFT, RIGHT = range(4)


def round_trip(cell: int) -> list[int]:
    """Shortest home -> cell -> home action sequence on the 5x5 grid (home at row 4, column 2)."""
    row, col = divmod(cell, 5)
    side = [LEFT] * (2 - col) if col < 2 else [RIGHT] * (col - 2)
    back = [RIGHT] * (2 - col) if col < 2 else [LEFT] * (col - 2)
    return [UP] * (4 - row) + side + back + [DOWN] * (4 - row) or [DOWN]


def scripted(plans: list[list[int]]):
    """A batched policy_fn playing one fixed plan per policy; the step count is read off the visited map."""
    def policy_fn(obs: np.ndarray) -> np.ndarray:
        steps = obs[..., 2:].sum(-1).astype(int) - 1  # cells visited so far = steps on a simple path
        return np.array([[plan[min(s, len(plan) - 1)] for s in row] for plan, row in zip(plans, steps)])
    policy_fn.batched = True
    return policy_fn


def random_policy(k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 4, size=len(obs))


def main() -> None:
    rows = []
    result = rmdp_envs.evaluate(ENV_ID, random_policy(1), k=1, episodes=50)
    rows.append(("uniformly random", 1, result.best_welfare))
    # One policy: the loop through the middle column (rows 0-3), serving the users on it.
    result = rmdp_envs.evaluate(ENV_ID, scripted([round_trip(2)]), k=1, episodes=1)
    rows.append(("hand-made: middle column", 1, result.best_welfare))
    # Five policies: a round trip to the far end of each column.
    result = rmdp_envs.evaluate(ENV_ID, scripted([round_trip(c) for c in range(5)]), k=5, episodes=1)
    rows.append(("hand-made: one per column", 5, result.best_welfare))
    print(f"Social welfare on {ENV_ID} (per-user mean; best-response assignment)")
    print(f"{'policy':32s} {'k':>3s} {'welfare':>8s} {'of bound':>9s}")
    for name, k, welfare in rows:
        print(f"{name:32s} {k:>3d} {welfare:>8.4f} {welfare / BOUND:>8.1%}")
    print(f"{'full personalization (bound)':32s} {25:>3d} {BOUND:>8.4f} {1:>8.1%}")


if __name__ == "__main__":
    main()
