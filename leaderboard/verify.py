"""``verify``: re-check the whole board from what is stored (hashes, schema, re-evaluation)."""

from __future__ import annotations

from pathlib import Path

from leaderboard.protocol import PROTOCOL
from leaderboard.scoring import score
from leaderboard.unseen import score_unseen
from leaderboard.storage import load_submissions, sha256_file, submissions_dir
from leaderboard.submit import schema_errors


def verify_board(board: Path, log=print, evaluate: bool = True, envs: list[str] | None = None) -> list[str]:
    """Problems found (empty: every stored number is reproduced from the stored policies).

    ``evaluate=False`` checks only the schema and the policy files' hashes (seconds, not minutes:
    what CI can afford on every commit); ``envs`` restricts the check to those env ids.
    """
    from rmdp_envs import load_policies  # noqa: PLC0415

    problems = []
    subs = load_submissions(board)
    if envs is not None:
        unknown = sorted(set(envs) - {sub["benchmark"]["env_id"] for sub in subs})
        if unknown:
            return [f"no submissions for {', '.join(unknown)}"]
        subs = [sub for sub in subs if sub["benchmark"]["env_id"] in envs]
    for sub in subs:
        where = submissions_dir(board) / sub["id"]
        errors = schema_errors(sub)
        if errors:
            problems.append(f"{sub['id']}: schema violation " + "; ".join(errors))
            continue
        if sub["protocol"]["version"] != PROTOCOL.version:
            log(f"{sub['id']}: protocol {sub['protocol']['version']} (current {PROTOCOL.version}); evaluated with its own")
        b, proto = sub["benchmark"], sub["protocol"]
        tol = PROTOCOL.tolerance_for(b["env_id"])
        for run in sub["runs"]:
            folder = where / run["policies"]["path"]
            bad = [name for name, digest in run["policies"]["sha256"].items()
                   if not (folder / name).is_file() or sha256_file(folder / name) != digest]
            if bad:
                problems.append(f"{sub['id']} seed {run['seed']}: policy files missing or changed: {', '.join(bad)}")
                continue
            if not evaluate:
                continue
            policies = load_policies(folder)
            scored = score(b["env_id"], b["env_kwargs"], policies, sub["k"], proto, run["assignment"])
            for name in ("best_welfare", "welfare"):
                value = scored[name]
                if not tol.ok(run[name], value):
                    problems.append(f"{sub['id']} seed {run['seed']}: stored {name} {run[name]:.6g}, re-evaluation {value:.6g}")
            if run.get("unseen_welfare") is not None:
                value = score_unseen(b["env_id"], b["env_kwargs"], policies, sub["k"], proto)
                if value is None or not tol.ok(run["unseen_welfare"], value):
                    problems.append(f"{sub['id']} seed {run['seed']}: stored unseen_welfare {run['unseen_welfare']:.6g}, "
                                    f"re-evaluation {value}")
        log(f"checked {sub['id']}")
    return problems
