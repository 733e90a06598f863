"""Users never seen in training: welfare of the submitted policies on a fresh population draw.

A solver trains on one population (its env kwargs' ``population_seed``). This column asks how its k
policies serve *other* users from the same distribution: the benchmark's env with the population
seed replaced by the published :data:`UNSEEN_POPULATION_SEED`, scored as protocol v2 scores
(each new user picks its policy on the assignment episodes, welfare on the held-out episodes).
Benchmarks whose users are fixed by the task (ResourceGathering's cells: the population has no
seed) or given explicitly (a ``population`` dict) have no fresh draw: "n/a".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leaderboard.storage import SUBMISSION_FILE, load_submissions, submissions_dir
from rmdp_envs.files import atomic_write_json

#: The population seed of the unseen users (published; no training run may use it).
UNSEEN_POPULATION_SEED = 1_000_003


def unseen_env_kwargs(env_id: str, env_kwargs: dict) -> dict | None:
    """The benchmark's env kwargs with a fresh population draw, or None where there is none."""
    fresh = _fresh_draw(env_id, env_kwargs)
    return None if fresh is None else fresh[0]


def _fresh_draw(env_id: str, env_kwargs: dict) -> tuple[dict, int] | None:
    """``(env kwargs of the fresh draw, its number of users)``, or None where the users are fixed or given."""
    import rmdp_envs  # noqa: PLC0415

    if isinstance(env_kwargs.get("population"), dict):
        return None  # an explicit population: no distribution to draw from
    env = rmdp_envs.make(env_id, **env_kwargs)
    seed = env.unwrapped.population.seed
    env.close()
    if seed is None or seed == UNSEEN_POPULATION_SEED:
        return None
    fresh = {**env_kwargs, "population_seed": UNSEEN_POPULATION_SEED}
    try:
        probe = rmdp_envs.make(env_id, **fresh)
    except (TypeError, ValueError):
        return None  # the env takes no population seed
    population = probe.unwrapped.population
    probe.close()
    return (fresh, population.n) if population.seed == UNSEEN_POPULATION_SEED else None


def score_unseen(env_id: str, env_kwargs: dict, policies, k: int, protocol: dict[str, Any]) -> float | None:
    """Welfare of ``k`` policies for the unseen population under ``protocol`` (v2), or None ("n/a")."""
    from leaderboard.scoring import score  # noqa: PLC0415

    fresh = _fresh_draw(env_id, env_kwargs) if protocol.get("assignment_episodes") else None
    if fresh is None:
        return None
    kwargs, n = fresh
    return score(env_id, kwargs, policies, k, protocol, [0] * n)["best_welfare"]  # the users pick: no own assignment


def add_unseen(board: Path, envs: list[str] | None = None, log=print) -> int:
    """Score every stored protocol-v2 run that lacks ``unseen_welfare``; returns how many runs got one."""
    from rmdp_envs import load_policies  # noqa: PLC0415

    added = 0
    for sub in load_submissions(board):
        b = sub["benchmark"]
        if envs and b["env_id"] not in envs or not sub["protocol"].get("assignment_episodes"):
            continue
        todo = [r for r in sub["runs"] if "unseen_welfare" not in r]
        if not todo:
            continue
        folder = submissions_dir(board) / sub["id"]
        for run in todo:
            policies = load_policies(folder / run["policies"]["path"])
            run["unseen_welfare"] = score_unseen(b["env_id"], b["env_kwargs"], policies, sub["k"], sub["protocol"])
            added += 1
        sub["unseen_population_seed"] = UNSEEN_POPULATION_SEED
        atomic_write_json(folder / SUBMISSION_FILE, sub)  # load_submissions returned the stored file as it is
        log(f"{sub['id']}: unseen users scored for {len(todo)} run(s)")
    return added
