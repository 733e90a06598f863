"""``verify``: re-check the whole board from what is stored (hashes, schema, re-evaluation)."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from leaderboard.protocol import PROTOCOL
from leaderboard.scoring import score
from leaderboard.unseen import score_unseen
from leaderboard.storage import load_submissions, sha256_file, submissions_dir
from leaderboard.submit import schema_errors

SCORED_COLUMNS = ("best_welfare", "welfare", "egalitarian_welfare", "unseen_welfare")
"""A run's stored numbers that ``verify`` re-scores (``unseen_welfare`` only where the run stores one)."""

#: What the board draws from besides its welfare columns ("worst-off user", "policies serving users", the assignment
#: plots), compared where evaluation is exactly repeatable: the worst-off user and the utilities within the
#: tolerance, the users' picks exactly. On chaotic dynamics one user's utility moves far more than the mean over
#: users that the tolerance was measured on (a HalfCheetahSpeed row stored under MuJoCo 3.15: 7.8 of one user's 63
#: under 4.0, its welfare 0.36), so there only the welfare columns are re-checked.
EXACT_ONLY = ("egalitarian_welfare", "utility", "deployed_assignment")
SCORED_ARRAYS = ("utility", "deployed_assignment")


def verify_board(board: Path, log=print, evaluate: bool = True, envs: list[str] | None = None,
                 workers: int = 1, report: list[dict] | None = None) -> list[str]:
    """Problems found (empty: every stored number is reproduced from the stored policies).

    ``evaluate=False`` checks only the schema and the policy files' hashes (seconds, not minutes:
    what CI can afford on every commit); ``envs`` restricts the check to those env ids.
    ``workers`` > 1 re-evaluates that many runs at once in separate processes (one thread each): a
    MuJoCo board holds hundreds of runs at about half a minute each. ``report``, when given, receives
    one dict per re-evaluated run: its stored and re-evaluated numbers (e.g. after a MuJoCo upgrade).
    """
    problems: list[str] = []
    subs = load_submissions(board, problems)
    if envs is not None:
        unknown = sorted(set(envs) - {sub["benchmark"]["env_id"] for sub in subs})
        if unknown:
            return [f"no submissions for {', '.join(unknown)}"]
        subs = [sub for sub in subs if sub["benchmark"]["env_id"] in envs]
    jobs = []
    for sub in subs:
        errors = schema_errors(sub)
        if errors:
            problems.append(f"{sub['id']}: schema violation " + "; ".join(errors))
            continue
        if sub["protocol"]["version"] != PROTOCOL.version:
            log(f"{sub['id']}: protocol {sub['protocol']['version']} (current {PROTOCOL.version}); evaluated with its own")
        for run in sub["runs"]:
            folder = submissions_dir(board) / sub["id"] / run["policies"]["path"]
            bad = [name for name, digest in run["policies"]["sha256"].items()
                   if not (folder / name).is_file() or sha256_file(folder / name) != digest]
            if bad:
                problems.append(f"{sub['id']} seed {run['seed']}: policy files missing or changed: {', '.join(bad)}")
            elif evaluate:
                jobs.append((sub, run, folder))
        if not evaluate:
            log(f"checked {sub['id']}")
    if not jobs:
        return problems
    if workers <= 1:
        outcomes = map(_rescore, jobs)
        pool = None
    else:  # spawn: torch and MuJoCo state are not forked; one thread per process
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_one_thread)
        outcomes = pool.map(_rescore, jobs)
    try:
        for (sub, run, _), rescored in zip(jobs, outcomes):
            tol = PROTOCOL.tolerance_for(sub["benchmark"]["env_id"])
            exact = tol == PROTOCOL.tolerance
            for name in SCORED_COLUMNS:
                if name != "best_welfare" and name != "welfare" and run.get(name) is None:
                    continue  # unseen_welfare where the run has none; rows stored before a column was recorded
                if name in EXACT_ONLY and not exact:
                    continue
                value = rescored[name]
                if value is None or not tol.ok(run[name], value):
                    shown = "None" if value is None else f"{value:.6g}"
                    problems.append(f"{sub['id']} seed {run['seed']}: stored {name} {run[name]:.6g}, "
                                    f"re-evaluation {shown}")
            if exact:
                problems += _array_problems(sub, run, rescored, tol)
            if report is not None:
                report.append({"id": sub["id"], "env_id": sub["benchmark"]["env_id"], "solver": sub["solver"]["name"],
                               "k": sub["k"], "seed": run["seed"],
                               **{f"stored_{name}": run.get(name) for name in SCORED_COLUMNS},
                               **{f"reevaluated_{name}": rescored[name] for name in SCORED_COLUMNS}})
            log(f"checked {sub['id']} seed {run['seed']}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return problems


def _array_problems(sub: dict, run: dict, rescored: dict, tol) -> list[str]:
    """The stored utilities and picks against the re-scored ones (:data:`SCORED_ARRAYS`; absent in old rows), for an
    env whose evaluation is exactly repeatable."""
    where, problems = f"{sub['id']} seed {run['seed']}", []
    if run.get("utility") is not None:
        stored, again = np.asarray(run["utility"], dtype=np.float64), np.asarray(rescored["utility"], dtype=np.float64)
        if stored.shape != again.shape:
            problems.append(f"{where}: stored utility has shape {stored.shape}, re-evaluation {again.shape}")
        else:
            off = np.abs(stored - again) > tol.atol + tol.rtol * np.abs(again)
            if off.any():
                p, i = map(int, np.argwhere(off)[0])
                problems.append(f"{where}: stored utility of user {i} under policy {p} {stored[p, i]:.6g}, "
                                f"re-evaluation {again[p, i]:.6g} ({int(off.sum())} entries off)")
    if run.get("deployed_assignment") is not None and list(run["deployed_assignment"]) != rescored["deployed_assignment"]:
        moved = sum(a != b for a, b in zip(run["deployed_assignment"], rescored["deployed_assignment"]))
        problems.append(f"{where}: stored deployed_assignment differs from the re-evaluated picks ({moved} users)")
    return problems


def _one_thread() -> None:
    """Each verifying process keeps to one core: numpy's BLAS and torch would otherwise each take all."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
        threadpool_limits(1)
    except ImportError:
        pass
    try:
        import torch  # noqa: PLC0415
        torch.set_num_threads(1)
    except ImportError:
        pass


def _rescore(job: tuple[dict, dict, Path]) -> dict:
    """:func:`rescore_run` of one ``(submission, run, policies folder)`` job (a pool maps one argument)."""
    return rescore_run(*job)


def rescore_run(sub: dict, run: dict, folder: Path) -> dict:
    """One stored run's board numbers re-evaluated from its saved policies under the protocol it was scored with.

    :data:`SCORED_COLUMNS` (``unseen_welfare`` None where the run stores none) and :data:`SCORED_ARRAYS`: what
    ``verify`` compares with the stored run, and what ``benchmarks/reevaluation.py`` measures the protocol's
    tolerances with.
    """
    from rmdp_envs import load_policies  # noqa: PLC0415

    b, proto = sub["benchmark"], sub["protocol"]
    policies = load_policies(folder)
    scored = score(b["env_id"], b["env_kwargs"], policies, sub["k"], proto, run["assignment"])
    unseen = (score_unseen(b["env_id"], b["env_kwargs"], policies, sub["k"], proto)
              if run.get("unseen_welfare") is not None else None)
    return {**{name: scored[name] for name in ("best_welfare", "welfare", "egalitarian_welfare", *SCORED_ARRAYS)},
            "unseen_welfare": unseen}
