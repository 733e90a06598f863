"""``sweep``: run a grid of solver runs (env x solver x k x seed) and submit what finished.

Each task runs ``solvers/<solver>.py ... --save-model`` in its own folder
``<runs-dir>/<env>/<solver>/t<timesteps>/k<k>-s<seed>/``; a task whose folder already holds a
finished run (``result.json`` + policies) is skipped, so re-running a sweep only runs what failed
or is new, and (local backend) a run that stopped with a checkpoint, by Ctrl-C, a kill or a timeout,
continues from it with ``--resume`` when the same task started it (``task.json``). Ctrl-C stops a local
sweep cleanly: no new run starts, the running ones stop at a checkpoint. Backends: ``local``, a pool of
solver processes sized to the machine (one torch thread each), and ``ray``, the same tasks as Ray tasks on a cluster (``--address``) or on a local
one; run folders come back to this machine as file contents, so the workers need no shared disk.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from leaderboard.storage import CHECKOUT_HINT, REPO_ROOT
from rmdp_envs.files import CHECKPOINT_FILE, POLICY_FILES, RESULT_FILE, atomic_write_json, writable_place
from rmdp_envs.results import has_final_result

#: Largest file copied back from a Ray worker (TensorBoard logs and checkpoints can be big).
MAX_RETURNED_FILE = 64 << 20
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: How every sweep run uses its machine (reproduce uses the same): a sweep spreads runs over the cores, so each
#: keeps to one, with no env worker process and one torch thread (a run that spins up threads on a busy machine
#: slows every run down). With no worker the policies run in the main process (``--rollout main``), which trains
#: what ``--rollout workers`` trains: a run reproduces whichever way it used its machine (``rollout`` is not recorded).
PROCESS_FLAGS = ("--num-workers", "0", "--torch-threads", "1", "--update-threads", "1")


@dataclass(frozen=True)
class Task:
    env_id: str
    solver: str
    k: int
    seed: int
    total_timesteps: int
    extra_args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.env_id} {self.solver} k={self.k} seed={self.seed}"

    def folder(self, runs_dir: Path) -> Path:
        env = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.env_id)
        return runs_dir / env / self.solver / f"t{self.total_timesteps}" / f"k{self.k}-s{self.seed}"

    def record(self) -> dict[str, Any]:
        """What :data:`TASK_FILE` holds: a run is resumed only for the task that started it."""
        return {"env_id": self.env_id, "solver": self.solver, "k": self.k, "seed": self.seed,
                "total_timesteps": self.total_timesteps, "extra_args": list(self.extra_args),
                "process_flags": list(PROCESS_FLAGS)}

    def command(self, script: str, output_dir: str, python: str = sys.executable) -> list[str]:
        return [python, script, "--env-id", self.env_id, "--k", str(self.k), "--seed", str(self.seed),
                "--total-timesteps", str(self.total_timesteps), "--output-dir", output_dir, "--save-model",
                *PROCESS_FLAGS, *self.extra_args]


@dataclass
class Outcome:
    task: Task
    status: str  # "finished", "skipped" (finished earlier) or "failed"
    run_dir: Path | None = None
    message: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def finished_run(folder: Path) -> Path | None:
    """The newest run folder under ``folder`` with a finished result and saved policies."""
    if not folder.is_dir():
        return None
    for result in sorted(folder.glob(f"*/{RESULT_FILE}"), reverse=True):
        run = result.parent
        if all((run / name).is_file() for name in POLICY_FILES) and has_final_result(run):
            return run
    return None


#: Written into a task's folder when the sweep starts the task afresh (a changed --solver-args shares the folder).
TASK_FILE = "task.json"


def resumable_run(folder: Path, task: Task) -> Path | None:
    """The newest run under ``folder`` with a checkpoint and no result, if this same ``task`` started it.

    Runs older than :data:`TASK_FILE` were started for an earlier task in the same folder (other
    --solver-args): never resumed.
    """
    try:
        record = folder / TASK_FILE
        if json.loads(record.read_text()) != task.record():
            return None
        started = record.stat().st_mtime_ns
        runs = sorted((c.parent for c in folder.glob(f"*/{CHECKPOINT_FILE}")), reverse=True)
        run = runs[0] if runs else None
        if run is None or has_final_result(run) or (run / "args.json").stat().st_mtime_ns < started:
            return None
    except (OSError, ValueError):
        return None
    return run


def _error_line(log_text: str) -> str:
    """What a solver said when it refused its input: its ``error:`` line, else (tyro's boxed message) the first line
    of words after the command line the log starts with."""
    lines = log_text.splitlines()[1:]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    words = [w for w in (line.strip("│╭╰╮╯─ ") for line in lines) if any(c.isalpha() for c in w)]
    return next((w for w in words if ":" in w), words[0] if words else "exit status 2")  # past the box's title


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Countdown:
    """``[done/total, about M min left]`` for a sweep's log lines: the wall time per finished run so far times the
    runs still to go (runs in parallel included, since it is wall time)."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.time()

    def tick(self) -> str:
        self.done += 1
        if self.done == self.total:
            return f"[{self.done}/{self.total}]"
        left = (time.time() - self.start) / self.done * (self.total - self.done)
        return f"[{self.done}/{self.total}, about {_duration(left)} left]"


#: The solver processes of a local sweep now running, each in a session of its own (:func:`forward_ctrl_c`).
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
#: Set once the sweep was stopped: a solver that starts after that is stopped as it starts.
_STOPPING = threading.Event()


def _signal_running(signum: int) -> int:
    with _RUNNING_LOCK:
        running = [proc for proc in _RUNNING if proc.poll() is None]
    for proc in running:
        proc.send_signal(signum)
    return len(running)


def forward_ctrl_c() -> int:
    """Send SIGINT to every running solver of this sweep; returns how many. A solver stops at its next checkpoint on
    the first, at once on the second. The solvers run in sessions of their own, so a terminal's Ctrl-C (to the
    sweep's process group) and ``kill -INT`` of the sweep alone reach them the same way: once, from here."""
    _STOPPING.set()
    return _signal_running(signal.SIGINT)


def _end_with_the_sweep(signum: int, frame) -> None:
    """SIGTERM or SIGHUP (a closed terminal, ``timeout``, a job's end) to the sweep: its solvers, in sessions of their
    own, get it too (SIGTERM: each ends its iteration and writes a checkpoint, SIGHUP: it dies and resumes from its
    last periodic one), then the sweep exits."""
    _STOPPING.set()
    _signal_running(signum)
    raise SystemExit(128 + signum)


def run_local_task(task: Task, folder: Path, script: Path, timeout: float | None) -> Outcome:
    if _STOPPING.is_set():  # the sweep is ending: the pool's last queued tasks start nothing
        return Outcome(task, "failed", None, "not started: the sweep was stopped", 0.0, {})
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    log = folder / "sweep.log"
    resume = resumable_run(folder, task)
    if resume is not None:
        cmd = [sys.executable, str(script), "--resume", str(resume)]
    else:
        cmd = task.command(str(script), str(folder))
        atomic_write_json(folder / TASK_FILE, task.record())
    extra = {"resumed": resume.name} if resume is not None else {}
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        # its own session: Ctrl-C reaches it once, from the sweep (run_local), however the sweep was signalled
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env={**os.environ, **THREAD_ENV},
                                start_new_session=True)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        if _STOPPING.is_set():  # started while the sweep was being stopped
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    seconds = time.time() - start
    run = finished_run(folder)
    if rc != 0 or run is None:
        why = f"exit code {rc}" if rc != 0 else "no finished run with saved policies"
        text = log.read_text()
        if rc == BAD_INPUT:
            extra = {**extra, "returncode": rc, "error": _error_line(text)}
        return Outcome(task, "failed", None, f"{why}; log {log}:\n{_tail(text)}", seconds, extra)
    return Outcome(task, "finished", run, "", seconds, extra)


def run_local(todo: list[tuple[Task, Path]], solvers_dir: Path, workers: int | None, timeout: float | None,
              log: Callable[[str], None]) -> list[Outcome]:
    """The tasks in a pool of solver processes on this machine.

    On Ctrl-C (SIGINT to the sweep, from a terminal or ``kill -INT``) no new run starts, the running ones are
    passed it (:func:`forward_ctrl_c`: they stop at a checkpoint; a second Ctrl-C stops them at once) and waited
    for, one line sums up, and ``KeyboardInterrupt`` goes on to the caller. SIGTERM and SIGHUP end the running
    solvers too and then the sweep (:func:`_end_with_the_sweep`), so none trains on alone.
    """
    n = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    outcomes: list[Outcome] = []
    _STOPPING.clear()
    handled = (signal.SIGTERM, signal.SIGHUP) if threading.current_thread() is threading.main_thread() else ()
    previous = {signum: signal.signal(signum, _end_with_the_sweep) for signum in handled}
    try:
        return _run_pool(todo, solvers_dir, n, timeout, log, outcomes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_pool(todo: list[tuple[Task, Path]], solvers_dir: Path, n: int, timeout: float | None,
              log: Callable[[str], None], outcomes: list[Outcome]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run_local_task, t, f, solvers_dir / f"{t.solver}.py", timeout) for t, f in todo]
        countdown = Countdown(len(futures))
        try:
            stopped = False
            for fut in as_completed(futures):
                if fut.cancelled():  # not started after a run refused its input
                    continue
                out = fut.result()
                resumed = f", resumed {out.extra['resumed']}" if "resumed" in out.extra else ""
                log(f"{countdown.tick()} {out.status:8s} {out.task.name} ({out.seconds:.1f}s{resumed})")
                outcomes.append(out)
                if out.extra.get("returncode") == BAD_INPUT and not stopped:  # refused flags: so would every other run
                    stopped = True
                    cancelled = sum(f.cancel() for f in futures)
                    log(f"stopping: {out.task.name} refused its input ({out.extra['error']}); {cancelled} run(s) not "
                        "started, the running ones finish")
        except KeyboardInterrupt:
            forward_ctrl_c()
            log("Ctrl-C: no new run starts; the running ones stop at a checkpoint (Ctrl-C again to stop now)")
            while True:
                try:
                    pool.shutdown(wait=True, cancel_futures=True)
                    break
                except KeyboardInterrupt:  # again: the solvers stop at once
                    forward_ctrl_c()
            ended = [f.result() for f in futures if f.done() and not f.cancelled()]
            finished = sum(o.status == "finished" for o in ended)
            log(f"sweep interrupted: {finished} finished, {len(ended) - finished} stopped or failed, "
                f"{sum(f.cancelled() for f in futures)} not started, nothing submitted; the same command continues "
                "(finished runs are skipped and submitted, stopped ones resume from their checkpoints)")
            raise
    order = {task: i for i, (task, _) in enumerate(todo)}
    return sorted(outcomes, key=lambda o: order[o.task])  # logged as they finish, returned in the grid's order


def _ray_task(cmd_tail: list[str], script: str, cwd: str | None, timeout: float | None) -> dict[str, Any]:
    """Runs on a Ray worker: the solver in a temporary folder; returns its run folder as bytes."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="rmdp-sweep-") as out:
        cmd = [sys.executable, script, *cmd_tail, "--output-dir", out, "--save-model"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                                  env={**os.environ, **THREAD_ENV})
            rc, log = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, log = "timeout", str(e)
        files: dict[str, bytes] = {}
        runs = sorted(Path(out).glob(f"*/{RESULT_FILE}"))
        if runs:
            run = runs[-1].parent
            for path in sorted(run.rglob("*")):
                if path.is_file() and path.stat().st_size <= MAX_RETURNED_FILE:
                    files[str(path.relative_to(out))] = path.read_bytes()
    import socket  # noqa: PLC0415

    return {"rc": rc, "log": " ".join(cmd) + "\n" + log, "files": files, "seconds": time.time() - start,
            "node": socket.gethostname()}


def _ray_tail(task: Task) -> list[str]:
    cmd = task.command("SCRIPT", "OUT")
    cmd = cmd[2:]
    i = cmd.index("--output-dir")
    del cmd[i:i + 3]  # --output-dir OUT --save-model are added on the worker
    return cmd


def run_ray(tasks: list[tuple[Task, Path]], solvers_dir: Path, address: str | None, workers: int | None,
            timeout: float | None, log: Callable[[str], None]) -> list[Outcome]:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise SystemExit("the ray backend needs Ray: pip install '.[ray]' (or pip install ray)") from None
    solvers_dir = solvers_dir.resolve()
    inside_repo = solvers_dir.is_relative_to(REPO_ROOT)
    if address:  # a remote cluster: ship the code; workers need the project's dependencies installed
        if not inside_repo:
            raise SystemExit(f"--solvers-dir {solvers_dir} must lie inside the repository to be shipped to a Ray cluster")
        runtime_env = {"working_dir": str(REPO_ROOT),
                       "excludes": [".git", ".venv", "venv", "runs", "leaderboard/submissions", "leaderboard/site"]}
        where = lambda s: str(solvers_dir.relative_to(REPO_ROOT) / f"{s}.py")  # noqa: E731
        cwd = None
    else:  # a local cluster on this machine: same files, same interpreter
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}}
        where = lambda s: str(solvers_dir / f"{s}.py")  # noqa: E731
        cwd = str(REPO_ROOT)
    init = {"address": address} if address else {"num_cpus": workers or os.cpu_count(), "include_dashboard": False}
    ray.init(runtime_env=runtime_env, log_to_driver=False, **init)
    log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs in the cluster")
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
    try:
        pending = {remote.remote(_ray_tail(t), where(t.solver), cwd, timeout): (t, folder) for t, folder in tasks}
        outcomes, countdown = [], Countdown(len(pending))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task, folder = pending.pop(done[0])
            try:
                res = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 (a worker crash is a failed run)
                outcomes.append(Outcome(task, "failed", None, f"ray task error: {e}"))
                log(f"{countdown.tick()} failed   {task.name}: ray task error")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "sweep.log").write_text(res["log"])
            for rel, data in res["files"].items():
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            run = finished_run(folder)
            if res["rc"] != 0 or run is None:
                why = f"exit code {res['rc']}" if res["rc"] != 0 else "no finished run with saved policies"
                outcomes.append(Outcome(task, "failed", None, f"{why} on {res['node']}; log {folder / 'sweep.log'}:\n"
                                        f"{_tail(res['log'])}", res["seconds"]))
            else:
                outcomes.append(Outcome(task, "finished", run, "", res["seconds"], {"node": res["node"]}))
            log(f"{countdown.tick()} {outcomes[-1].status:8s} {task.name} ({res['seconds']:.1f}s on {res['node']})")
    except KeyboardInterrupt:
        finished = sum(o.status == "finished" for o in outcomes)
        log(f"sweep interrupted: {finished} finished (their folders are here), {len(pending)} Ray tasks cancelled, "
            "nothing submitted; the same command continues (finished runs are skipped and submitted, the rest start "
            "again: Ray tasks return only finished runs)")
        raise
    finally:
        ray.shutdown()
    return outcomes


class SweepError(ValueError):
    """A grid that cannot run as asked: said once, before any run starts (the CLI prints it as one ``error:`` line)."""


#: The exit status of a solver refusing its input (``rmdp_train.cli.fail``): every run of the grid would say the same.
BAD_INPUT = 2


def check_grid(envs: list[str], solvers: list[str], ks: list[int], seeds: list[int], total_timesteps: int,
               solvers_dir: Path, runs_dir: Path, extra_args: list[str] | tuple[str, ...] = (),
               workers: int | None = None, timeout: float | None = None) -> None:
    """Raise :class:`SweepError` naming the first problem of the grid, before anything is written: an unknown
    solver file (listing those there), an unknown env id (listing the registered ones), k outside ``[1, n]`` of an
    env (n as ``--n-agents`` in ``extra_args`` makes it, else the env's default), a seed numpy cannot take, a budget
    < 1, ``workers`` < 1, a ``timeout`` <= 0, or a runs folder that is a file."""
    import gymnasium as gym  # noqa: PLC0415

    import rmdp_envs  # noqa: PLC0415
    from rmdp_envs.core import check_seed  # noqa: PLC0415
    from rmdp_envs.registration import registered_id  # noqa: PLC0415

    if not solvers_dir.is_dir():
        raise SweepError(f"no solvers folder at {solvers_dir}: sweeps run the solver files of {CHECKOUT_HINT}; "
                         "pass --solvers-dir with a folder of them")
    for solver in solvers:
        if not (solvers_dir / f"{solver}.py").is_file():
            known = sorted(p.stem for p in solvers_dir.glob("*_ppo.py"))
            raise SweepError(f"unknown solver {solver!r}: {solvers_dir / (solver + '.py')} does not exist; "
                             f"solvers there: {', '.join(known)}")
    for env_id in envs:
        try:
            registered_id(env_id)
        except ValueError as e:
            raise SweepError(str(e)) from None
    if total_timesteps < 1:
        raise SweepError(f"--total-timesteps must be >= 1, got {total_timesteps}")
    for seed in seeds:
        try:
            check_seed(seed, "--seeds")
        except ValueError as e:
            raise SweepError(str(e)) from None
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    if timeout is not None and not timeout > 0:
        raise SweepError(f"--timeout must be > 0 seconds, got {timeout}")
    why = writable_place(runs_dir, folder=True)
    if why:
        raise SweepError(f"--runs-dir {runs_dir}: {why}")
    extra = list(extra_args)
    kwargs = {}
    if "--n-agents" in extra[:-1]:
        kwargs["n_agents"] = int(extra[extra.index("--n-agents") + 1])
    for env_id in envs:
        try:
            env = rmdp_envs.make(env_id, **kwargs)
        except (ValueError, TypeError, gym.error.Error) as e:
            raise SweepError(f"{env_id}: {e}") from None
        n = env.unwrapped.population.n
        env.close()
        bad_ks = [k for k in ks if not 1 <= k <= n]
        if bad_ks:
            raise SweepError(f"--k {' '.join(map(str, bad_ks))}: {env_id} has n = {n} users, so k must lie in [1, {n}]")


def _duration(seconds: float) -> str:
    """``42 s``, ``17 min`` or ``2.5 h``: the unit a person plans a sweep in."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def planned_seconds(board: Path, tasks: list[Task]) -> tuple[float, list[str]]:
    """Single-core seconds the ``tasks`` would take at the speed the board's stored runs of the same env recorded
    (their ``wall_time_s`` per transition, all solvers and budgets of that env, run the sweep's way: one core
    each), and the envs the board has no run of (not counted)."""
    from leaderboard.storage import load_submissions  # noqa: PLC0415

    per_transition: dict[str, list[float]] = defaultdict(list)
    for sub in load_submissions(board):
        for run in sub["runs"]:
            per_transition[sub["benchmark"]["env_id"]].append(run["wall_time_s"] / run["total_timesteps"])
    seconds, unknown = 0.0, set()
    for task in tasks:
        rates = per_transition.get(task.env_id)
        if rates:
            seconds += sum(rates) / len(rates) * task.total_timesteps
        else:
            unknown.add(task.env_id)
    return seconds, sorted(unknown)


def check_flags(tasks: list[Task], solvers_dir: Path, log: Callable[[str], None] = print) -> None:
    """Ask each solver, once per env (its largest k), whether it takes the grid's flags (``--check-only``: the flags,
    the env and the memory checked, nothing written): :class:`SweepError` with the solver's own error line where not.

    Why: a dry run checked the grid but not ``--solver-args``, so a misspelt flag passed it and then failed every task
    of the real sweep, leaving task folders behind."""
    firsts: dict[tuple[str, str], Task] = {}
    for task in tasks:
        key = (task.solver, task.env_id)
        if key not in firsts or task.k > firsts[key].k:
            firsts[key] = task
    for (solver, env_id), task in sorted(firsts.items()):
        with tempfile.TemporaryDirectory(prefix="rmdp-check-") as scratch:
            cmd = task.command(str(solvers_dir / f"{solver}.py"), scratch) + ["--check-only"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
            except subprocess.TimeoutExpired:
                raise SweepError(f"{solver} did not finish checking its flags for {env_id} within 600 s") from None
        if proc.returncode == 2:  # refused (one error line, or tyro's box); _error_line reads a log after its command
            reason = _error_line("\n" + proc.stderr).removeprefix("error: ")
            if re.search(r"nrecognized (options|arguments):[^\n]*--check-only", proc.stderr):  # a solver of one's own,
                # not built on rmdp_train's flags (argparse's or tyro's words): it cannot be asked
                log(f"{solver} takes no --check-only: its flags for {env_id} are not checked before the sweep")
                continue
            raise SweepError(f"{solver} refuses the grid's flags for {env_id} (k = {task.k}): {reason}")
        if proc.returncode != 0:  # a crash: its last words, not a traceback's header
            said = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            raise SweepError(f"{solver} crashed checking its flags for {env_id} (k = {task.k}), exit status "
                             f"{proc.returncode}: {said[-1] if said else 'no output'}")
        log(f"checked {solver}'s flags for {env_id}")


def sweep(envs: list[str], solvers: list[str], ks: list[int], seeds: list[int], total_timesteps: int,
          runs_dir: Path, board: Path, backend: str = "local", address: str | None = None,
          workers: int | None = None, solvers_dir: Path | None = None, extra_args: list[str] | None = None,
          timeout: float | None = None, do_submit: bool = True, log: Callable[[str], None] = print,
          dry_run: bool = False) -> list[Outcome]:
    """Run the grid, then submit each (env, solver, k) group's finished runs not yet on the board.

    ``dry_run``: check the grid and say what would run (runs finished earlier, to resume, to start; the first
    command; the time the board's own runs of those envs suggest), then return without running or writing."""
    from leaderboard.submit import SubmissionError, submit  # noqa: PLC0415

    # resolved here: the check below reads it from this folder, the runs start in the repository's
    solvers_dir = (Path(solvers_dir) if solvers_dir else REPO_ROOT / "solvers").resolve()
    check_grid(envs, solvers, ks, seeds, total_timesteps, solvers_dir, runs_dir, extra_args or (), workers, timeout)
    runs_dir = Path(runs_dir).resolve()
    tasks = [Task(e, s, k, seed, total_timesteps, tuple(extra_args or ()))
             for e in envs for s in solvers for k in ks for seed in seeds]
    outcomes: list[Outcome] = []
    todo = []
    for task in tasks:
        folder = task.folder(runs_dir)
        run = finished_run(folder)
        if run is not None:
            outcomes.append(Outcome(task, "skipped", run, "finished earlier"))
        else:
            todo.append((task, folder))
    resumable = sum(resumable_run(f, t) is not None for t, f in todo) if backend == "local" else 0
    log(f"sweep: {len(tasks)} runs, {len(tasks) - len(todo)} finished earlier, {len(todo)} to run ({backend} backend)"
        + (f", {resumable} of them from a checkpoint" if resumable else ""))
    if dry_run:
        check_flags([t for t, _ in todo], solvers_dir, log)
        if todo:
            task, folder = todo[0]
            log("first command: " + " ".join(task.command(str(solvers_dir / f"{task.solver}.py"), str(folder))))
            seconds, unknown = planned_seconds(board, [t for t, _ in todo])
            parallel = max(1, min(workers or os.cpu_count() or 1, len(todo))) if backend == "local" else None
            log(f"about {_duration(seconds)} of one core at the board's recorded speed for these envs"
                + (f", about {_duration(seconds / parallel)} with {parallel} local worker{'s' * (parallel > 1)}" if parallel else "")
                + (f" (no board run of {', '.join(unknown)} to go by: not counted)" if unknown else ""))
        log("dry run: nothing was run or written")
        return outcomes
    if todo:
        if backend == "local":
            outcomes += run_local(todo, solvers_dir, workers, timeout, log)
        elif backend == "ray":
            outcomes += run_ray(todo, solvers_dir, address, workers, timeout, log)
        else:
            raise SystemExit(f"unknown backend {backend!r} (local or ray)")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        log(f"FAILED {o.task.name}: {o.message}")
    if do_submit:
        groups: dict[tuple, list[Path]] = defaultdict(list)
        for o in outcomes:
            if o.run_dir is not None:
                groups[(o.task.env_id, o.task.solver, o.task.k)].append(o.run_dir)
        for key in sorted(groups):
            try:
                written = submit(sorted(groups[key]), board, skip_duplicates=True, log=lambda _m: None)
                log(f"submitted {key[0]} {key[1]} k={key[2]}: {', '.join(p.name for p in written)}" if written else
                    f"nothing to submit for {key[0]} {key[1]} k={key[2]}: its runs are already on the board")
            except SubmissionError as e:
                log(f"REJECTED {key[0]} {key[1]} k={key[2]}: {e}")
                for o in outcomes:
                    if (o.task.env_id, o.task.solver, o.task.k) == key and o.status != "failed":
                        o.extra["rejected"] = str(e)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    not_started = len(tasks) - len(outcomes)
    log(f"sweep done: {counts['finished']} finished, {counts['skipped']} skipped (finished earlier), {counts['failed']} failed"
        + (f", {not_started} not started" if not_started else ""))
    return outcomes
