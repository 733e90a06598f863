"""``reproduce``: retrain one stored run from its recorded configuration and compare the welfare.

The solver named by the submission is run again with the submission's benchmark, k, seed, budget
and hyperparameters, with the same process settings as ``sweep`` (no env worker, one torch
thread: thread counts can change float results), and with the code of the commit the run records
(``git archive`` of ``solvers/``, ``rmdp_envs/`` and ``rmdp_train/`` into a temporary folder that
is imported first): the code is part of the configuration, and a row stays reproducible after the
solvers change. ``--at-head`` retrains with the current code instead. Its policies are scored under the submission's
protocol; the run reproduces when both welfare columns match the stored ones within the
protocol's tolerance for the environment's dynamics class.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from leaderboard.protocol import PROTOCOL, Tolerance
from leaderboard.scoring import score
from leaderboard.storage import CHECKOUT_HINT, REPO_ROOT, SUBMISSION_FILE, in_checkout
from leaderboard.sweep import PROCESS_FLAGS, THREAD_ENV


def solver_flags(hyperparameters: dict[str, Any]) -> list[str]:
    """The recorded hyperparameters as solver flags (tyro spelling: ``--flag`` / ``--no-flag`` for booleans)."""
    from rmdp_train.args import PPOArgs  # noqa: PLC0415

    plain_bools = {f.name for f in dataclasses.fields(PPOArgs) if f.type in (bool, "bool")}
    flags: list[str] = []
    for key, value in sorted(hyperparameters.items()):
        if value is None or key == "env_kwargs":  # env_kwargs: passed from the benchmark itself
            continue
        name = key.replace("_", "-")
        if key in plain_bools:
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags += [f"--{name}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return flags


#: What a recorded commit's code needs to train: exported into the temporary folder.
CODE_PATHS = ("solvers", "rmdp_envs", "rmdp_train")


def export_code(commit: str, into: Path) -> bool:
    """Write the solvers and libraries of ``commit`` under ``into``; False when this clone lacks the commit."""
    has = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True)
    if has.returncode != 0:
        return False
    archive = subprocess.run(["git", "archive", "--format=tar", commit, *CODE_PATHS], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return True


def train(cmd: list[str], stops: list[int], out: Path, root: Path, env: dict, log=print) -> Path:
    """Run the solver ``cmd`` (its ``--output-dir`` is ``out``), stopping and resuming at each of ``stops``; its run folder.

    A resumed run trains on fresh episodes from the iteration it continued from, so a run that stopped
    (Ctrl-C, a kill, a sweep's timeout) is replayed with the same stops: a checkpoint every iteration,
    ``--interrupt-after`` up to each stop, then ``--resume`` from it.
    """
    def call(args: list[str]) -> None:
        settings = [f"{key}={shlex.quote(value)}" for key, value in sorted(env.items()) if os.environ.get(key) != value]
        # pasteable: the folder, the environment it adds (the recorded code's path, thread counts), the command
        log(f"$ (cd {shlex.quote(str(root))} && {' '.join(['env', *settings]) + ' ' if settings else ''}{shlex.join(args)})")
        proc = subprocess.run(args, cwd=root, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"the solver failed:\n{proc.stderr[-3000:]}")

    done = 0
    for stop in sorted(set(stops)):  # a run resumed twice from one checkpoint (killed before its next) stopped once
        if done == 0:
            call([*cmd, "--checkpoint-every", "1", "--interrupt-after", str(stop)])
        else:
            call([cmd[0], cmd[1], "--resume", str(_run_folder(out)), "--interrupt-after", str(stop - done)])
        done = stop
    call(cmd if done == 0 else [cmd[0], cmd[1], "--resume", str(_run_folder(out))])
    return next(out.glob("*/result.json")).parent


def _run_folder(out: Path) -> Path:
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    return run_dir


def version_changes(recorded: dict | None, env_id: str | None = None) -> dict[str, tuple[str | None, str | None]]:
    """``{library: (recorded, installed)}`` for the libraries whose installed version differs from a run's record.

    The recorded commit pins rmdp's own code, not its dependencies: a different MuJoCo, torch or numpy can change
    the last bits of a step or a matmul, which a chaotic task (HalfCheetah) grows into other trajectories and so
    other trained policies (``benchmarks/results/mujoco4.md``). A retrained run then need not reproduce, while
    ``verify`` (re-scoring the stored policies) still can.
    """
    from rmdp_envs.results import library_versions  # noqa: PLC0415

    now = library_versions()
    unused = {"rmdp"}
    if env_id is not None:  # MuJoCo steps only the MuJoCo tasks: a ResourceGathering row's note named it anyway
        import rmdp_envs  # noqa: PLC0415
        if rmdp_envs.env_metadata(env_id).get("rmdp_family") != "mujoco":
            unused.add("mujoco")
    return {name: (version, now.get(name)) for name, version in sorted((recorded or {}).items())
            if name not in unused and name in now and version != now[name]}


def reproduce(submission_dir: Path, seed: int | None = None, log=print, at_head: bool = False) -> bool:
    """Retrain the run of ``seed`` (default: the first) of a stored submission; True when it reproduces.

    With the code of the run's recorded commit unless ``at_head`` (or this clone lacks that commit).
    """
    from rmdp_envs import load_policies  # noqa: PLC0415

    if not (in_checkout() and (REPO_ROOT / ".git").exists()):
        raise ValueError(f"reproduce retrains with the solver files and git history of {CHECKOUT_HINT}; this rmdp "
                         f"runs from {REPO_ROOT}, which lacks them")
    path = submission_dir / SUBMISSION_FILE
    try:
        sub = json.loads(path.read_text())
        runs = {r["seed"]: r for r in sub["runs"]}
        b, solver = sub["benchmark"], sub["solver"]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a submission: {type(e).__name__} {e} (python -m leaderboard verify "
                         "checks every submission against the schema)") from None
    seed = min(runs) if seed is None else seed
    if seed not in runs:
        raise ValueError(f"{submission_dir}: no run with seed {seed} (seeds: {sorted(runs)})")
    run = runs[seed]
    from rmdp_envs.results import git_commit  # noqa: PLC0415

    stored, now = (solver.get("commit") or "").split("-")[0], (git_commit(REPO_ROOT) or "").split("-")[0]
    with tempfile.TemporaryDirectory(prefix="rmdp-reproduce-") as out, tempfile.TemporaryDirectory(prefix="rmdp-code-") as code:
        root, env = REPO_ROOT, {**os.environ, **THREAD_ENV}
        if not at_head and stored and stored != now:
            if export_code(stored, Path(code)):
                root = Path(code)
                env["PYTHONPATH"] = os.pathsep.join([code, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
                log(f"code of the recorded commit {stored[:10]} (HEAD is {now[:10]}; --at-head retrains with HEAD's)")
            else:
                log(f"note: commit {stored[:10]} is not in this clone: retraining with HEAD ({now[:10]})")
        changed = version_changes(run.get("versions"), b["env_id"])
        if changed:
            log("note: the run was trained under other library versions, which can change its numbers (`verify` "
                "re-scores the stored policies instead): "
                + ", ".join(f"{name} {was} (now {is_})" for name, (was, is_) in changed.items()))
        script = root / "solvers" / f"{solver['name']}_ppo.py"
        if not script.is_file():
            raise ValueError(f"{submission_dir}: solver {solver['name']!r} has no file {script}")
        cmd = [sys.executable, str(script), "--env-id", b["env_id"], "--k", str(sub["k"]), "--seed", str(run["seed"]),
               "--total-timesteps", str(run["total_timesteps"]), "--env-kwargs", json.dumps(b["env_kwargs"]),
               "--save-model", "--output-dir", out, *PROCESS_FLAGS,
               *solver_flags(solver["hyperparameters"])]
        run_dir = train(cmd, run.get("resumed_at", []), Path(out), root, env, log)
        assignment = json.loads((run_dir / "result.json").read_text())["assignment"]
        again = score(b["env_id"], b["env_kwargs"], load_policies(run_dir), sub["k"], sub["protocol"], assignment)
    tol = Tolerance(**sub["protocol"]["tolerance"]) if "tolerance" in sub["protocol"] else PROTOCOL.tolerance_for(b["env_id"])
    ok = True
    for name in ("best_welfare", "welfare"):
        same = tol.ok(run[name], again[name])
        ok &= same
        log(f"{name}: stored {run[name]:.6g}, retrained {again[name]:.6g} ({'ok' if same else 'DIFFERS'}; {tol.describe()})")
    return ok
