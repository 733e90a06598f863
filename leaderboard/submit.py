"""``submit``: turn solver run folders into verified board entries, or reject them naming the problem.

Every check runs before anything is written: reading (no pickle, strict JSON without NaN or
infinity), the run schema, the environment id and version, the population, ``1 <= k <= n``, the
saved policies, duplicates, and finally the re-evaluation of the saved policies, whose welfare
must match the claimed welfare within the protocol's tolerance. Only then is each submission
written, in one atomic step, with copies of its policies.
"""

from __future__ import annotations

import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.protocol import PROTOCOL, SUBMISSION_FORMAT, Protocol, recorded_hyperparameters
from leaderboard.scoring import score
from leaderboard.unseen import UNSEEN_POPULATION_SEED, score_unseen
from leaderboard.storage import (PACKAGE_DIR, load_submissions, loads_finite, sha256_file, short_hash,
                                 submissions_dir, write_submission)
from rmdp_envs.files import CHECKPOINT_FILE, POLICY_FILES, POLICY_SPEC_FILE, POLICY_WEIGHTS_FILE, RESULT_FILE
from rmdp_envs.results import RunResult
#: Suffixes of formats that run code when loaded (pickle and what wraps it).
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt", ".dill", ".cloudpickle"})
#: kwargs that only say how the population is drawn; the population itself identifies the benchmark.
POPULATION_KWARGS = frozenset({"n_agents", "population", "population_seed"})


class SubmissionError(ValueError):
    """A submission was rejected; the message names the run folder and the problem."""


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads((PACKAGE_DIR / "schema.json").read_text())


def _validator(ref: str | None = None):
    import jsonschema  # noqa: PLC0415 (keeps `import leaderboard` light)

    full = schema()
    target = full if ref is None else {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": f"#/$defs/{ref}"}
    return jsonschema.Draft202012Validator(target, format_checker=jsonschema.FormatChecker())


def schema_errors(document: Any, ref: str | None = None) -> list[str]:
    """Schema violations of ``document`` (the whole submission, or ``$defs/<ref>``), as readable lines."""
    errors = sorted(_validator(ref).iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"at '{'/'.join(map(str, e.absolute_path)) or '(top level)'}': {e.message}" for e in errors]


# ----------------------------------------------------------------------------- reading

def read_json_strict(path: Path) -> Any:
    """JSON without NaN, Infinity or numbers that overflow to infinity."""
    try:
        return loads_finite(path.read_text())
    except ValueError as e:  # JSONDecodeError is a ValueError too
        raise SubmissionError(f"{path}: {e}") from None


def _is_pickle(path: Path) -> str | None:
    """Why ``path`` would run code when loaded, or ``None``."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return f"pickle-based file type {path.suffix!r}"
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle data (protocol magic bytes)"
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                if any(name.endswith((".pkl", ".pickle")) for name in z.namelist()):
                    return "a zip archive holding pickle data (torch.save format)"
        except zipfile.BadZipFile:
            pass
    return None


def scan_for_pickles(run_dir: Path) -> None:
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            why = _is_pickle(path)
            if why:
                raise SubmissionError(f"{run_dir}: pickle file rejected: {path.relative_to(run_dir)} is {why}; "
                                      "loading it could run arbitrary code. Save policies with --save-model "
                                      "(safetensors + JSON) and remove pickle files from the run folder")


# ----------------------------------------------------------------------------- one run

@dataclass
class Run:
    """A run folder that passed the checks that need no evaluation."""

    run_dir: Path
    result: RunResult
    benchmark: dict[str, Any]
    k: int
    n: int
    solver: str
    commit: str | None
    hyperparameters: dict[str, Any]
    config: str
    policy_sha: dict[str, str]
    claimed_eval: tuple[int, int]
    verified: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.result.seed)

    @property
    def group(self) -> tuple:
        return (self.benchmark["key"], self.solver, self.k, self.commit, self.config)

    def identity(self, protocol_version: str) -> tuple:
        """Two runs with the same identity are duplicates."""
        return self.group + (int(self.result.total_timesteps), self.seed, protocol_version)


def benchmark_of(env_id: str, env_kwargs: dict[str, Any], population: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in env_kwargs.items() if k not in POPULATION_KWARGS}
    key = short_hash({"env_id": env_id, "env_kwargs": rest, "population": population})
    return {"env_id": env_id, "env_kwargs": env_kwargs, "population": population,
            "n": len(population["params"]), "key": key}


def _claimed_eval(result: RunResult, protocol: Protocol) -> tuple[int, int]:
    """(episodes, seed) of the run's own evaluation; the protocol's when the result does not record them."""
    if result.eval_episodes is None or result.eval_seed is None:
        return protocol.episodes, protocol.seed
    return int(result.eval_episodes), int(result.eval_seed)


#: What to do with a run that stopped before its budget.
UNFINISHED_HINT = "continue it with its solver's --resume RUN_DIR, then submit it"


def check_run(run_dir: Path, protocol: Protocol = PROTOCOL) -> Run:
    """Every check of one run folder that needs no evaluation; raises :class:`SubmissionError`."""
    import rmdp_envs  # noqa: PLC0415
    from rmdp_train.policies import SPEC_FORMAT  # noqa: PLC0415

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SubmissionError(f"{run_dir}: not a run folder")
    if not (run_dir / RESULT_FILE).is_file():
        if (run_dir / CHECKPOINT_FILE).is_file():
            raise SubmissionError(f"{run_dir}: run not finished (a checkpoint, no {RESULT_FILE} yet): {UNFINISHED_HINT}")
        raise SubmissionError(f"{run_dir}: missing {RESULT_FILE} (pass the folder that a solver run wrote)")
    scan_for_pickles(run_dir)
    data = read_json_strict(run_dir / RESULT_FILE)
    errors = schema_errors(data, "run_result")
    if errors:
        raise SubmissionError(f"{run_dir / RESULT_FILE}: schema violation " + "; ".join(errors))
    result = RunResult.from_dict(data)

    env_id = result.env_id
    from rmdp_envs.registration import UnknownEnvId, registered_id  # noqa: PLC0415
    try:
        registered_id(env_id, import_module=False)  # a module the submitter's file names is imported only if named
    except ValueError as e:
        if not isinstance(e, UnknownEnvId):  # a module not imported, an id outside rmdp/
            raise SubmissionError(f"{run_dir}: {e}") from None
        ids = rmdp_envs.registered_ids()
        name = env_id.split(":")[-1].rsplit("-v", 1)[0]
        versions = [i for i in ids if i.rsplit("-v", 1)[0] == name]
        hint = f"registered versions: {', '.join(versions)}" if versions else f"registered: {', '.join(ids)}"
        raise SubmissionError(f"{run_dir}: unknown env id or version {env_id!r} ({hint}; an r-MDP of your own is "
                              "named 'yourmodule:rmdp/Name-vN', the module that registers it)") from None
    try:
        env = rmdp_envs.make(env_id, **result.env_kwargs)
    except Exception as e:  # noqa: BLE001 (any construction error is the submitter's)
        raise SubmissionError(f"{run_dir}: env_kwargs {result.env_kwargs} do not build {env_id}: {e}") from None
    population = env.unwrapped.population.to_dict()
    env.close()
    claimed_pop = result.population
    if claimed_pop.get("params") != population["params"] or claimed_pop.get("kind") != population["kind"]:
        raise SubmissionError(f"{run_dir}: population in {RESULT_FILE} differs from the one env_kwargs build "
                              f"({claimed_pop.get('kind')!r} vs {population['kind']!r})")
    n = len(population["params"])
    k = result.k
    if not 1 <= k <= n:
        raise SubmissionError(f"{run_dir}: k={k} outside [1, n] = [1, {n}]")
    utility = np.asarray(result.utility, dtype=np.float64)
    if utility.shape != (k, n):
        raise SubmissionError(f"{run_dir}: utility must have shape (k, n) = ({k}, {n}), got {utility.shape}")
    assignment = result.assignment
    if len(assignment) != n or min(assignment) < 0 or max(assignment) >= k:
        raise SubmissionError(f"{run_dir}: assignment must give each of n={n} users a policy index in [0, k={k})")

    if result.finished is False:  # before the policies: an unfinished run has none yet, and that is not the reason
        raise SubmissionError(f"{run_dir}: run not finished ({RESULT_FILE} says finished: false, an intermediate "
                              f"evaluation): {UNFINISHED_HINT}")
    missing = [name for name in POLICY_FILES if not (run_dir / name).is_file()]
    if missing:
        raise SubmissionError(f"{run_dir}: missing policies: {', '.join(missing)} not found "
                              "(train with --save-model so the board can re-evaluate the policies)")
    spec = read_json_strict(run_dir / POLICY_SPEC_FILE)
    if spec.get("format") != SPEC_FORMAT:
        raise SubmissionError(f"{run_dir}: {POLICY_SPEC_FILE} has format {spec.get('format')!r}, expected {SPEC_FORMAT!r}")
    if spec.get("env_id") != env_id or spec.get("k") != k:
        raise SubmissionError(f"{run_dir}: {POLICY_SPEC_FILE} is for env {spec.get('env_id')!r} with k={spec.get('k')}, "
                              f"but {RESULT_FILE} says {env_id!r} with k={k}")
    _check_weights(run_dir)

    hyper = recorded_hyperparameters(result.args)
    return Run(run_dir=run_dir, result=result, benchmark=benchmark_of(env_id, result.env_kwargs, population),
               k=k, n=n, solver=result.solver, commit=result.commit, hyperparameters=hyper,
               config=short_hash(hyper, 8), policy_sha={name: sha256_file(run_dir / name) for name in POLICY_FILES},
               claimed_eval=_claimed_eval(result, protocol))


def _check_weights(run_dir: Path) -> None:
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.numpy import load_file  # noqa: PLC0415

    try:
        tensors = load_file(str(run_dir / POLICY_WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as e:
        raise SubmissionError(f"{run_dir}: {POLICY_WEIGHTS_FILE} is not a readable safetensors file: {e}") from None
    for name in sorted(tensors):
        if not np.all(np.isfinite(tensors[name])):
            raise SubmissionError(f"{run_dir}: {POLICY_WEIGHTS_FILE} tensor {name!r} contains NaN or infinite values")


# ----------------------------------------------------------------------------- verification

def verify_run(run: Run, protocol: Protocol = PROTOCOL) -> None:
    """Re-evaluate the saved policies; compare with the claim; keep the protocol's numbers."""
    import rmdp_envs  # noqa: PLC0415
    from rmdp_envs import load_policies  # noqa: PLC0415

    env_id, env_kwargs = run.result.env_id, run.result.env_kwargs
    try:
        policies = load_policies(run.run_dir)
    except Exception as e:  # noqa: BLE001
        raise SubmissionError(f"{run.run_dir}: saved policies do not load: {e}") from None
    episodes, seed = run.claimed_eval
    try:
        own = rmdp_envs.evaluate(env_id, policies, run.k, episodes, seed, env_kwargs)
        scored = score(env_id, env_kwargs, policies, run.k, protocol.to_dict(), run.result.assignment)
        scored["unseen_welfare"] = score_unseen(env_id, env_kwargs, policies, run.k, protocol.to_dict())
    except Exception as e:  # noqa: BLE001
        raise SubmissionError(f"{run.run_dir}: re-evaluating the saved policies failed: {e}") from None
    tol = protocol.tolerance_for(env_id)
    assignment = run.result.assignment
    for name, claimed, verified in (("best_welfare", run.result.best_welfare, own.best_welfare),
                                    ("welfare", run.result.welfare, own.welfare(assignment))):
        if not tol.ok(claimed, verified):
            unstated = ("; result.json records no eval_seed/eval_episodes, so these are the protocol's: record the "
                        "evaluation the claim comes from") if run.result.eval_seed is None or run.result.eval_episodes is None else ""
            raise SubmissionError(
                f"{run.run_dir}: tampered welfare: claimed {name} {claimed:.6g} but re-evaluating the saved policies "
                f"({episodes} episodes from seed {seed}) gives {verified:.6g}; tolerance {tol.describe()}{unstated}")
    diff = np.abs(np.asarray(run.result.utility) - own.utility)
    bad = np.argwhere(diff > tol.atol + tol.rtol * np.abs(own.utility))
    if bad.size:
        j, i = (int(v) for v in bad[0])
        raise SubmissionError(f"{run.run_dir}: tampered utility: claimed utility[{j}][{i}] = "
                              f"{run.result.utility[j][i]:.6g} but re-evaluation gives {own.utility[j, i]:.6g}; "
                              f"tolerance {tol.describe()}")
    run.verified = scored


# ----------------------------------------------------------------------------- assembling

def _existing_index(board: Path) -> tuple[set[tuple], dict[str, str], set[str]]:
    identities, weights, ids = set(), {}, set()
    for sub in load_submissions(board):
        ids.add(sub["id"])
        b, s = sub["benchmark"], sub["solver"]
        for r in sub["runs"]:
            identities.add((b["key"], s["name"], sub["k"], s["commit"], s["config"], r["total_timesteps"],
                            r["seed"], sub["protocol"]["version"]))
            weights[r["policies"]["sha256"][POLICY_WEIGHTS_FILE]] = sub["id"]
    return identities, weights, ids


def build_submission(runs: list[Run], protocol: Protocol = PROTOCOL) -> dict[str, Any]:
    first = runs[0]
    runs = sorted(runs, key=lambda r: (r.seed, int(r.result.total_timesteps)))
    digest = short_hash([protocol.version] + [r.policy_sha[POLICY_WEIGHTS_FILE] for r in runs], 10)
    env_name = first.benchmark["env_id"].split("/", 1)[1]
    sub_id = f"{env_name}_{first.benchmark['key'][:6]}__{first.solver}__k{first.k}__{digest}"
    out_runs = []
    for r in runs:
        episodes, seed = r.claimed_eval
        out_runs.append({
            "seed": r.seed, "total_timesteps": int(r.result.total_timesteps),
            "wall_time_s": float(r.result.wall_time_s), "hardware": (r.result.hardware or "unknown"),
            "best_welfare": r.verified["best_welfare"], "welfare": r.verified["welfare"],
            "egalitarian_welfare": r.verified["egalitarian_welfare"],
            "assignment": [int(a) for a in r.result.assignment], "utility": r.verified["utility"],
            "deployed_assignment": r.verified["deployed_assignment"], "versions": r.result.versions,
            "unseen_welfare": r.verified.get("unseen_welfare"),
            "claimed": {"welfare": float(r.result.welfare), "best_welfare": float(r.result.best_welfare),
                        "episodes": episodes, "seed": seed},
            "policies": {"path": f"policies/seed-{r.seed}-t{int(r.result.total_timesteps)}", "sha256": r.policy_sha},
            # where a resumed run continued from a checkpoint (reproduce replays these stops)
            **({"resumed_at": [int(i) for i in r.result.extra["resumed_at"]]} if r.result.extra.get("resumed_at") else {}),
        })
    tol = protocol.tolerance_for(first.benchmark["env_id"])
    return {
        "format": SUBMISSION_FORMAT, "id": sub_id,
        "protocol": {**protocol.to_dict(), "tolerance": {"atol": tol.atol, "rtol": tol.rtol}},
        "benchmark": first.benchmark, "k": first.k,
        "solver": {"name": first.solver, "commit": first.commit, "hyperparameters": first.hyperparameters,
                   "config": first.config},
        "runs": out_runs, "unseen_population_seed": UNSEEN_POPULATION_SEED,
    }


def _check_board_place(board: Path) -> None:
    """A board folder this process can write its submissions and reference points in, or one clear error."""
    from rmdp_envs.files import writable_place  # noqa: PLC0415

    why = writable_place(board, folder=True)
    for place in (submissions_dir(board), board / "site"):
        if why is None and place.exists() and not place.is_dir():
            why = f"{place} is a file, not a folder"
    if why is None and submissions_dir(board).is_dir():
        why = writable_place(submissions_dir(board), folder=True)
    if why is not None:
        raise SubmissionError(f"cannot write the board at {board}: {why}")


def submit(run_dirs: list[str | Path], board: Path, protocol: Protocol = PROTOCOL,
           skip_duplicates: bool = False, log=print) -> list[Path]:
    """Check, verify and store ``run_dirs`` (one submission per benchmark x solver x k x version x config).

    Raises :class:`SubmissionError` before writing anything if any run fails a check. With
    ``skip_duplicates`` runs already on the board are left out instead of rejected (``sweep``).
    """
    from leaderboard.references import ensure_references  # noqa: PLC0415

    if not run_dirs:
        raise SubmissionError("no run folders given")
    _check_board_place(board)  # before minutes of re-evaluation
    runs = [check_run(Path(d), protocol) for d in run_dirs]
    identities, weights, ids = _existing_index(board)
    seen: dict[tuple, Path] = {}
    fresh = []
    for run in runs:
        ident = run.identity(protocol.version)
        sha = run.policy_sha[POLICY_WEIGHTS_FILE]
        if ident in seen:
            raise SubmissionError(f"{run.run_dir}: duplicate: same benchmark, solver, k, commit, config, timesteps "
                                  f"and seed {run.seed} as {seen[ident]}")
        seen[ident] = run.run_dir
        if ident in identities or sha in weights:
            if skip_duplicates:
                continue
            where = f"submission {weights[sha]}" if sha in weights else "an existing submission"
            raise SubmissionError(f"{run.run_dir}: duplicate: {run.solver} k={run.k} seed {run.seed} "
                                  f"({run.benchmark['env_id']}, commit {run.commit}) is already on the board ({where})")
        fresh.append(run)
    for run in fresh:
        log(f"verifying {run.run_dir} ...")
        verify_run(run, protocol)
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in fresh:
        groups[run.group].append(run)
    submissions = []
    for key in sorted(groups, key=repr):
        sub = build_submission(groups[key], protocol)
        errors = schema_errors(sub)
        if errors:
            raise SubmissionError(f"submission {sub['id']}: schema violation " + "; ".join(errors))
        if sub["id"] in ids:
            raise SubmissionError(f"duplicate: submission {sub['id']} already exists")
        submissions.append((sub, groups[key]))
    if submissions:  # before writing: a failure here leaves submissions/ untouched
        ensure_references(board, [s["benchmark"] for s, _ in submissions], protocol)
    written = []
    for sub, group in submissions:
        policy_dirs = {r_out["policies"]["path"]: r.run_dir
                       for r_out, r in zip(sub["runs"], sorted(group, key=lambda r: (r.seed, int(r.result.total_timesteps))))}
        written.append(write_submission(board, sub, policy_dirs))
        log(f"accepted {sub['id']} ({len(sub['runs'])} run(s))")
    return written
