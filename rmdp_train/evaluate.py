"""Score the saved policies of a run again: ``python -m rmdp_train.evaluate RUN_DIR``.

CleanRL's evals, for k policies: a finished run (``--save-model``) or a board submission's policy folder is
rebuilt by :func:`rmdp_train.policies.load_policies` (no solver import) and scored by :func:`rmdp_envs.evaluate`,
greedy, every user's return under every policy. By default on the run's own evaluation episodes (its
``--eval-episodes`` from its ``--eval-seed``), which gives ``result.json``'s numbers again; ``--episodes`` and
``--seed`` score others. It prints the welfare under the run's assignment, the best response (each user its best
policy, picked on the same episodes), and for each policy whom it serves best and how well; ``--out`` writes the
whole evaluation as JSON. A board submission's folder is scored on its held-out episodes, but with the users' picks
made on those same episodes: the board's protocol v2 picks on separate episodes (``python -m leaderboard verify``
re-scores a submission the board's way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import tyro

import rmdp_envs
from rmdp_envs.core import check_seed
from rmdp_envs.files import atomic_write_json

#: Episodes a policy when neither --episodes nor the folder says (the board protocol's number).
DEFAULT_EPISODES = 10


@dataclass
class Args:
    """Score the saved policies of a run (``--save-model``) or of a board submission's policy folder again."""

    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """a run folder with policies.json and policies.safetensors, or a submission's policies/seed-S-tT folder"""
    episodes: Annotated[Optional[int], tyro.conf.arg(help_behavior_hint="(default: the run's --eval-episodes; a board "
                                                     f"submission's protocol episodes; else {DEFAULT_EPISODES})")] = None
    """greedy episodes of each policy"""
    seed: Annotated[Optional[int], tyro.conf.arg(help_behavior_hint="(default: the run's --eval-seed; a board "
                                                 "submission's first held-out seed)")] = None
    """reset seed of the first episode (episode e uses seed + e, the same for every policy)"""
    out: Optional[str] = None
    """also write the evaluation here as JSON (utility, welfare, best response, episodes, seeds)"""


def summary(result: rmdp_envs.EvalResult, assignment: list[int] | None) -> list[str]:
    """The lines :func:`main` prints: the welfare figures, then one line a policy (whom it serves best, how well)."""
    lines = []
    if assignment is not None:
        lines.append(f"welfare under the run's assignment: {result.welfare(assignment):.4f}")
    lines.append(f"best response (each user its best policy): {result.best_welfare:.4f}")
    best, picks = result.best_assignment, np.arange(result.n)
    rewarded = result.utility.max(axis=0) > 0  # a user no policy rewards picks none (the board's plots: grey)
    for j in range(result.k):
        served = picks[(best == j) & rewarded]
        mean = f"their mean utility {result.utility[j, served].mean():.4f}" if served.size else "no one"
        assigned = "" if assignment is None else f"; {int((np.asarray(assignment) == j).sum())} assigned to it"
        lines.append(f"  policy {j}: best for {served.size} user(s) ({mean}){assigned}")
    if not rewarded.all():
        lines.append(f"  {int((~rewarded).sum())} user(s) get no reward from any policy")
    return lines


def main(argv: list[str] | None = None) -> int:
    from rmdp_train.cli import fail  # noqa: PLC0415
    from rmdp_train.policies import (load_policies_or_fail, recorded_assignment,  # noqa: PLC0415
                                     recorded_eval_episodes, recorded_eval_seed)

    args = tyro.cli(Args, args=argv, prog="python -m rmdp_train.evaluate")
    folder = Path(args.run_dir)
    policies = load_policies_or_fail(folder)
    episodes = (recorded_eval_episodes(folder) or DEFAULT_EPISODES) if args.episodes is None else args.episodes
    if episodes < 1:
        fail(f"--episodes must be at least 1, got {episodes}")
    seed = recorded_eval_seed(folder) if args.seed is None else args.seed
    try:
        check_seed(seed, "--seed")
    except ValueError as e:
        fail(str(e))
    if args.out is not None and not Path(args.out).parent.is_dir():
        fail(f"--out {args.out}: its folder does not exist")
    assignment = recorded_assignment(folder)
    result = rmdp_envs.evaluate(policies.env_id, policies, policies.k, episodes, seed, policies.env_kwargs)
    print(f"{policies.env_id}, k = {policies.k}, n = {result.n}: {episodes} greedy episode(s) a policy from seed {seed}")
    print("\n".join(summary(result, assignment)))
    if args.out is not None:
        atomic_write_json(args.out, {"env_id": policies.env_id, "env_kwargs": policies.env_kwargs, "k": policies.k,
                                     **result.to_dict(), "assignment": assignment,
                                     "welfare": None if assignment is None else result.welfare(assignment)})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
