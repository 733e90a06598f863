"""The reference solvers, run as scripts in subprocesses (as CleanRL tests its files), on small budgets.

Each test is independent (its own tmp_path), so ``pytest -n 2 tests/test_solvers.py`` spreads them.
"""

from __future__ import annotations

import ast
import json
import math
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rmdp_envs
from rmdp_envs import load_policies
from rmdp_envs.files import atomic_write_json
from rmdp_envs.results import REQUIRED_KEYS
from rmdp_train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SOLVERS = ["em", "e2e", "cluster", "random"]
RG = "rmdp/ResourceGathering-v0"
CHEETAH = "rmdp/HalfCheetahSpeed-v0"
# tiny budgets: RG 10 iterations of 320 transitions; HalfCheetah (10 agents) 4 iterations of 320
SMALL = {
    RG: ["--num-envs", "2", "--num-steps", "32", "--total-timesteps", "3200"],
    CHEETAH: ["--n-agents", "10", "--num-envs", "1", "--num-steps", "64", "--total-timesteps", "1280",
              "--eval-episodes", "1"],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_solver(solver: str, out: Path, *flags: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--output-dir", str(out), "--torch-threads", "1", *flags]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}"
    return proc


def only_run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def check_result(result: dict, solver: str, env_id: str, k: int, n: int) -> None:
    assert set(REQUIRED_KEYS) <= set(result)
    assert result["solver"] == solver and result["env_id"] == env_id and result["k"] == k
    assert result["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", result["commit"])
    assert np.asarray(result["utility"]).shape == (k, n)
    assignment = np.asarray(result["assignment"])
    assert assignment.shape == (n,) and assignment.min() >= 0 and assignment.max() < k
    assert result["population"]["n"] == n
    assert math.isfinite(result["welfare"]) and math.isfinite(result["best_welfare"])
    assert result["best_welfare"] >= result["welfare"] - 1e-9
    utility = np.asarray(result["utility"])
    assert result["welfare"] == pytest.approx(utility[assignment, np.arange(n)].mean())
    assert result["transitions"] >= result["total_timesteps"] and result["finished"] is True
    assert result["wall_time_s"] > 0
    phases = result["phase_seconds"]  # where the run's time went: the laps cover its clock, never more
    assert {"rollout", "learning", "evaluation"} <= set(phases) and min(phases.values()) >= 0
    assert sum(phases.values()) <= result["wall_time_s"] + 0.01


@pytest.mark.parametrize("env_id", [RG, CHEETAH])
@pytest.mark.parametrize("solver", SOLVERS)
def test_solver_end_to_end_and_reload(solver, env_id, tmp_path):
    """Each solver trains, writes a valid result.json, and its saved policies re-evaluate identically."""
    run_solver(solver, tmp_path, "--env-id", env_id, "--k", "5", "--save-model", *SMALL[env_id])
    run_dir = only_run_dir(tmp_path)
    result = read_result(run_dir)
    n = 25 if env_id == RG else 10
    check_result(result, solver, env_id, 5, n)
    assert sum(result["phase_seconds"].values()) >= 0.95 * result["wall_time_s"] - 0.05  # one process: all of it
    assert list(run_dir.glob("events.out.tfevents.*")) and (run_dir / "checkpoint.safetensors").is_file()
    assert result["device"] == "cpu"  # where the networks ran
    assert {"assignment/sizes", "assignment/largest", "assignment/flips"} <= set(logged_tags(run_dir))
    explained = logged_values(run_dir, "losses/explained_variance")  # CleanRL's critic diagnostic, every iteration
    assert len(explained) == result["args"]["num_iterations"] and all(v <= 1 for v in explained if not math.isnan(v))
    policies = load_policies(run_dir)
    again = rmdp_envs.evaluate(env_id, policies, 5, result["eval_episodes"], result["eval_seed"], result["env_kwargs"])
    np.testing.assert_allclose(again.utility, np.asarray(result["utility"]), rtol=0, atol=1e-9)
    assert again.welfare(result["assignment"]) == pytest.approx(result["welfare"], abs=1e-9)
    assert again.best_welfare == pytest.approx(result["best_welfare"], abs=1e-9)


def test_em_beats_random_assignment(tmp_path):
    """Learning: on ResourceGathering (k=5) EM's evaluated welfare beats the random assignment's at equal samples."""
    flags = ["--env-id", RG, "--k", "5", "--total-timesteps", "300000", "--seed", "1"]
    procs = {}
    for solver in ("em", "random"):  # both at once: one core each
        cmd = [sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--output-dir", str(tmp_path / solver),
               "--torch-threads", "1", *flags]
        procs[solver] = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    results = {}
    for solver, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results[solver] = read_result(only_run_dir(tmp_path / solver))
    assert results["em"]["transitions"] == results["random"]["transitions"]
    em, rnd = results["em"], results["random"]
    assert em["welfare"] > rnd["welfare"] + 0.03, (em["welfare"], rnd["welfare"])  # the baseline of this same test


def read_events(run_dir):
    """The run folder's events as TensorBoard reads them (its purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    return EventAccumulator(str(run_dir), size_guidance={"scalars": 0}, purge_orphaned_data=True).Reload()


def logged_scalars(run_dir, tag: str) -> list:
    return read_events(run_dir).Scalars(tag)


def logged_tags(run_dir) -> list[str]:
    return read_events(run_dir).Tags()["scalars"]


def logged_steps(run_dir, tag: str) -> list[int]:
    return [event.step for event in logged_scalars(run_dir, tag)]


def logged_values(run_dir, tag: str) -> list[float]:
    return [event.value for event in logged_scalars(run_dir, tag)]


@pytest.mark.parametrize("solver", SOLVERS)
def test_interrupted_run_resumes(solver, tmp_path):
    """A run stopped after a checkpoint continues with --resume and finishes with the full budget."""
    flags = ["--env-id", RG, "--k", "5", *SMALL[RG], "--checkpoint-every", "2"]
    proc = run_solver(solver, tmp_path, *flags, "--interrupt-after", "3")
    assert "interrupted after iteration 4" in proc.stdout
    run_dir = only_run_dir(tmp_path)
    assert (run_dir / "checkpoint.safetensors").is_file() and not (run_dir / "result.json").exists()
    proc = run_solver(solver, tmp_path, "--resume", str(run_dir))
    assert "resumed" in proc.stdout and "at iteration 4" in proc.stdout
    result = read_result(run_dir)
    check_result(result, solver, RG, 5, 25)
    assert result["transitions"] == 3200
    # TensorBoard: every iteration's scalars once, the checkpointed iteration's kept (a purge at its step dropped it)
    steps = logged_steps(run_dir, "charts/SPS")
    assert steps == list(range(steps[0], 3200 + 1, steps[0]))  # one point per iteration of steps[0] transitions
    before = (run_dir / "result.json").read_bytes()  # resumed once more: finished, so nothing runs or is rewritten
    proc = run_solver(solver, tmp_path, "--resume", str(run_dir))
    assert "finished already" in proc.stdout and (run_dir / "result.json").read_bytes() == before


def test_resume_refuses_flags_that_differ_from_the_runs(tmp_path):
    """Flags beside --resume were ignored silently (a longer --total-timesteps did nothing): one that differs from the
    run's saved value now fails in one line naming it, nothing rewritten; the same value passes."""
    flags = ["--env-id", RG, "--k", "3", *SMALL[RG], "--checkpoint-every", "2"]
    run_solver("random", tmp_path, *flags, "--interrupt-after", "3")
    run_dir = only_run_dir(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    proc = run_solver("random", tmp_path, "--resume", str(run_dir), "--total-timesteps", "9999", "--k", "3",
                      "--seed", "1", check=False, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "--total-timesteps 9999 (the run's: 3200)" in lines[0], proc.stderr
    assert "--k" not in lines[0] and "--seed" not in lines[0]  # the run's own values: no difference
    proc = run_solver("random", tmp_path, "--resume", str(run_dir), "--k", "5", check=False, timeout=60)
    assert proc.returncode == 2 and "--k 5 (the run's: 3)" in proc.stderr  # typed at its default value: still seen
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    run_solver("random", tmp_path, "--resume", str(run_dir), "--k", "3")
    assert read_result(run_dir)["finished"] is True and read_result(run_dir)["k"] == 3


def test_another_solvers_run_is_not_resumed(tmp_path):
    """EM asked to continue a random-assignment run (or the other way round) refuses in one line and leaves the run as
    it was: it would otherwise finish it as EM's, or fail on the other solver's flags with a traceback."""
    flags = ["--env-id", RG, "--k", "5", *SMALL[RG], "--checkpoint-every", "2"]
    run_solver("random", tmp_path, *flags, "--interrupt-after", "3")
    run_dir = only_run_dir(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for solver in ("em", "e2e"):
        proc = run_solver(solver, tmp_path, "--resume", str(run_dir), check=False, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "not of" in lines[0], proc.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    (run_dir / "args.json").write_text("{")  # unreadable: one line too
    proc = run_solver("random", tmp_path, "--resume", str(run_dir), check=False, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "cannot be read" in proc.stderr, proc.stderr


def test_killed_run_resumes(tmp_path):
    """SIGKILL after the first checkpoint: --resume continues from it."""
    cmd = [sys.executable, str(ROOT / "solvers" / "em_ppo.py"), "--output-dir", str(tmp_path), "--torch-threads", "1",
           "--env-id", RG, "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "400000", "--checkpoint-every", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("*/checkpoint.safetensors")):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_dir = only_run_dir(tmp_path)
    assert (run_dir / "checkpoint.safetensors").is_file()
    _, state = load_checkpoint(run_dir)
    assert state["iteration"] >= 1
    args = json.loads((run_dir / "args.json").read_text())
    args["total_timesteps"] = 320 * (state["iteration"] + 2)  # shorten the rest of the run for the test
    atomic_write_json(run_dir / "args.json", args)
    proc = run_solver("em", tmp_path, "--resume", str(run_dir))
    assert f"at iteration {state['iteration']}" in proc.stdout
    assert read_result(run_dir)["transitions"] == 320 * (state["iteration"] + 2)


@pytest.mark.parametrize("when", ["training", "start-up"])
def test_ctrl_c_stops_at_a_checkpoint_and_resumes(tmp_path, when):
    """Ctrl-C (SIGINT to the whole job, as a terminal sends it, env workers included), in training or as soon as the
    run folder exists (start-up left a traceback and a folder --resume refused): the iteration ends, a checkpoint is
    written though none is due, one line says how to continue and no process prints a traceback; --resume continues
    from that iteration."""
    # SIGINT back to its default first: a test run in the background inherits it ignored, and so would the solver
    default_sigint = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                      "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
    cmd = [sys.executable, "-c", default_sigint, str(ROOT / "solvers" / "em_ppo.py"), "--output-dir", str(tmp_path),
           "--torch-threads", "1", "--env-id", RG, "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "4000000",
           "--checkpoint-every", "100000", "--rollout", "workers", "--num-workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        sign = "*/events.out.tfevents.*" if when == "training" else "*/args.json"
        while time.time() < deadline and not list(tmp_path.glob(sign)) and proc.poll() is None:
            time.sleep(0.02)
        if when == "training":
            time.sleep(1.0)  # into the training loop
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    run_dir = only_run_dir(tmp_path)
    stopped = re.search(r"interrupted after iteration (\d+) of \d+ .*continue with --resume (\S+)", err)
    assert stopped and Path(stopped.group(2)) == run_dir, err[-3000:]
    iteration = int(stopped.group(1))
    _, state = load_checkpoint(run_dir)
    assert state["iteration"] == iteration >= 1 and not (run_dir / "result.json").exists()
    args = json.loads((run_dir / "args.json").read_text())
    args["total_timesteps"] = 320 * (iteration + 2)  # shorten the rest of the run for the test
    atomic_write_json(run_dir / "args.json", args)
    proc = run_solver("em", tmp_path, "--resume", str(run_dir))
    assert f"at iteration {iteration}" in proc.stdout
    assert read_result(run_dir)["transitions"] == 320 * (iteration + 2)


def test_sigterm_to_a_run_stops_it_at_a_checkpoint_like_ctrl_c(tmp_path):
    """SIGTERM to the solver (a cluster's preemption, a job's end, ``kill``) ended it silently at its last periodic
    checkpoint; now it stops as after a first Ctrl-C: the iteration ends, a checkpoint is written, one line says how
    to continue, and the exit status is 143 (128 + SIGTERM)."""
    cmd = [sys.executable, str(ROOT / "solvers" / "em_ppo.py"), "--output-dir", str(tmp_path), "--torch-threads", "1",
           "--env-id", RG, "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "4000000",
           "--checkpoint-every", "100000", "--rollout", "workers", "--num-workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("*/events.out.tfevents.*")) and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(1.0)  # into the training loop
        proc.send_signal(signal.SIGTERM)  # the main process alone, as kill PID or a scheduler's stop sends it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "SIGTERM: stopping at the end of this iteration" in err and "Traceback" not in err, err[-3000:]
    stopped = re.search(r"interrupted after iteration (\d+) of \d+ .*continue with --resume (\S+)", err)
    assert stopped and Path(stopped.group(2)) == only_run_dir(tmp_path), err[-3000:]
    assert load_checkpoint(only_run_dir(tmp_path))[1]["iteration"] == int(stopped.group(1)) >= 1


@pytest.mark.parametrize("flags", [
    ["--k", "30"],  # k > n = 25
    ["--k", "0"],
    ["--env-id", "rmdp/NoSuchEnv-v0"],
    ["--total-timesteps", "-5"],
    ["--env-id", CHEETAH, "--n-agents", "3", "--k", "5"],
    ["--env-kwargs", "{not json"],
    ["--env-kwargs", "[1, 2]"],
    ["--env-id", CHEETAH, "--env-kwargs", '{"no_such_kwarg": 1}'],
    ["--env-id", CHEETAH, "--n-agents", "1000000000"],  # ~1 TB of per-user arrays: refused before sampling the users
    ["--critic-bins", "0"],
    ["--main-share", "1.5"],
    ["--env-id", "rmdp/Chain-v0", "--capture-video"],  # tabular r-MDPs render nothing: refused before training
    ["--seed", "-1"],  # numpy's seeds stop at 0 and 2**32 - 1
    ["--eval-seed", "-1"],  # refused before training, not by the final evaluation's reset
    ["--gamma", "5"],
    ["--utility-ema", "2"],
    ["--hidden-size", "0"],
    ["--hidden-size", "1000000"],  # networks beyond memory: estimated, not allocated
    ["--env-id", CHEETAH, "--num-envs", "100000", "--num-steps", "1", "--num-minibatches", "1"],  # ~100 GB of copies
    ["--warm-start-fraction", "2"],
    ["--exp-name", "a/../../b"],  # would put the run folder outside --output-dir
    ["--env-kwargs", '{"max_episode_steps": -1}'],  # Gymnasium reads it as no time limit: evaluation never ends
    ["--env-id", "rmdp/Chain-v0", "--env-kwargs", '{"horizon": 0}'],
    ["--env-id", "rmdp/GridGoals-v0", "--env-kwargs", '{"size": 100000}'],  # 10^10 states: tables beyond memory
    ["--env-kwargs", '{"size": 1000000}'],  # 10^12 ResourceGathering cells: the kernel killed it after 22 GB
    ["--learning-rate", "inf"],  # passed "> 0", then failed to be written to args.json with a traceback
    ["--init-log-std", "nan"],
    ["--target-kl", "-1"],
    ["--ent-coef-end", "0"],  # a geometric anneal to 0 dropped the entropy bonus after the first iteration
    ["--exp-name", "a" * 200],  # beyond a file name's length
])
def test_bad_flags_one_line_error(flags, tmp_path):
    proc = run_solver("em", tmp_path, *flags, check=False, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("flag", ["--batch-size", "--minibatch-size", "--num-iterations"])
def test_the_values_computed_at_run_time_are_not_flags(flag, tmp_path):
    """CleanRL's computed fields are no flags here: one given was accepted and ignored (the run computed its own)."""
    proc = run_solver("em", tmp_path, flag, "8", check=False, timeout=60)
    assert proc.returncode == 2 and "Unrecognized" in proc.stderr and flag in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())
    assert flag not in run_solver("em", tmp_path, "--help").stdout


@pytest.mark.parametrize("flags, named", [
    (["--n-agents", "5"], "--n-agents"),  # ResourceGathering's 25 users are fixed
    (["--env-id", CHEETAH, "--env-kwargs", '{"no_such_kwarg": 1}'], "'no_such_kwarg'"),
    (["--n-agents", "1000000000"], "--n-agents"),  # named, not a memory estimate for users the env cannot take
])
def test_an_argument_the_env_does_not_take_is_named(flags, named, tmp_path):
    proc = run_solver("em", tmp_path, *flags, check=False, timeout=60)
    assert proc.returncode == 2 and named in proc.stderr and "it takes:" in proc.stderr, proc.stderr


def test_an_unknown_env_is_named_before_the_memory_its_users_would_need(tmp_path):
    proc = run_solver("em", tmp_path, "--env-id", "rmdp/NoSuchEnv-v0", "--n-agents", "1000000000", check=False, timeout=60)
    assert proc.returncode == 2 and "unknown env id 'rmdp/NoSuchEnv-v0'" in proc.stderr and "GiB" not in proc.stderr


def test_a_checkpoint_that_does_not_fit_the_edited_args_is_one_line(tmp_path):
    """args.json edited (hidden_size) beside a checkpoint of the other size: torch's size-mismatch traceback before."""
    run_solver("random", tmp_path, "--env-id", RG, "--k", "3", *SMALL[RG], "--checkpoint-every", "2",
               "--interrupt-after", "3")
    run_dir = only_run_dir(tmp_path)
    args = json.loads((run_dir / "args.json").read_text())
    atomic_write_json(run_dir / "args.json", {**args, "hidden_size": args["hidden_size"] // 2})
    proc = run_solver("random", tmp_path, "--resume", str(run_dir), check=False, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "does not fit the run its args.json describes" in lines[0], proc.stderr


@pytest.mark.parametrize("solver", SOLVERS)
def test_many_users_pool_the_critic_into_bins(solver, tmp_path):
    """20,000 users, critic pooled into 8 bins: every solver runs and reports every user's own utility (that the
    E-step reads per-user returns under bins: tests/test_rewards.py's tracker tests)."""
    n, k = 20_000, 3
    run_solver(solver, tmp_path, "--env-id", CHEETAH, "--k", str(k), "--n-agents", str(n), "--critic-bins", "8",
               "--num-envs", "1", "--num-steps", "64", "--total-timesteps", "1152", "--eval-episodes", "1")
    result = read_result(only_run_dir(tmp_path))
    assert np.asarray(result["utility"]).shape == (k, n) and len(result["assignment"]) == n
    utility = np.asarray(result["utility"])
    assert result["best_welfare"] == pytest.approx(utility.max(axis=0).mean())
    assert np.ptp(utility, axis=1).max() > 0  # users differ: the result is per user, not per bin


@pytest.mark.parametrize("solver", ["e2e", "cluster", "random"])
def test_bad_k_other_solvers(solver, tmp_path):
    proc = run_solver(solver, tmp_path, "--k", "26", check=False, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "k must lie in [1, n] = [1, 25]" in lines[0], proc.stderr


def test_same_seed_same_welfare(tmp_path):
    flags = ["--env-id", RG, "--k", "3", "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "12800", "--seed", "7"]
    results = []
    for i in range(2):
        run_solver("em", tmp_path / str(i), *flags)
        results.append(read_result(only_run_dir(tmp_path / str(i))))
    assert results[0]["welfare"] == results[1]["welfare"]
    assert results[0]["utility"] == results[1]["utility"]
    assert results[0]["assignment"] == results[1]["assignment"]


FAMILY_SMALL = {
    RG: ["--num-envs", "2", "--num-steps", "32", "--total-timesteps", "3200"],
    CHEETAH: ["--n-agents", "10", "--num-envs", "1", "--num-steps", "64", "--total-timesteps", "4000",
              "--eval-episodes", "1", "--max-candidates", "3"],
    "rmdp/Chain-v0": ["--n-agents", "6", "--num-envs", "2", "--num-steps", "32", "--total-timesteps", "8000"],
}


@pytest.mark.parametrize("env_id", sorted(FAMILY_SMALL))
def test_family_solver_runs_and_its_policies_are_accepted_by_the_board(env_id, tmp_path):
    """The policy-family baseline: k members chosen from the family, saved as k policies, verified by submit."""
    from leaderboard.submit import submit
    run_solver("family", tmp_path / "runs", "--env-id", env_id, "--k", "2", "--save-model", *FAMILY_SMALL[env_id])
    run_dir = only_run_dir(tmp_path / "runs")
    result = read_result(run_dir)
    n = {RG: 25, CHEETAH: 10, "rmdp/Chain-v0": 6}[env_id]
    check_result(result, "family", env_id, 2, n)
    assert result["selection_method"] in ("dp", "milp", "greedy+swaps")
    assert len(set(result["member_users"])) == 2
    assert logged_values(run_dir, "losses/explained_variance")  # the PPO scalars, as every solver's,
    assert not [tag for tag in logged_tags(run_dir) if tag.startswith("assignment/")]  # but one policy: no groups
    assert result["transitions"] <= result["total_timesteps"] + 2 * 32 * 2 * 2  # selection rollouts counted
    policies = load_policies(run_dir)
    again = rmdp_envs.evaluate(env_id, policies, 2, result["eval_episodes"], result["eval_seed"], result["env_kwargs"])
    np.testing.assert_allclose(again.utility, np.asarray(result["utility"]), rtol=0, atol=1e-9)
    written = submit([run_dir], tmp_path / "board", log=lambda _m: None)
    assert len(written) == 1


def test_family_refuses_the_flag_it_would_ignore(tmp_path):
    """--shared-torso shapes the k-policy solvers' networks; the family accepted it and trained the same network."""
    proc = run_solver("family", tmp_path, "--shared-torso", *FAMILY_SMALL[RG], check=False, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --shared-torso"), proc.stderr
    assert not any(tmp_path.iterdir())


def test_em_split_rule_reseeds_every_emptied_policy(tmp_path):
    """--empty-policy split: each policy its users leave is re-seeded (recorded in result.json), so all k serve someone;
    the paper's rule, on the same seed, records no split."""
    flags = ["--env-id", "rmdp/Chain-v0", "--n-agents", "12", "--k", "10", "--total-timesteps", "20480", "--seed", "0",
             "--num-workers", "0"]
    run_solver("em", tmp_path / "split", *flags, "--empty-policy", "split")
    result = read_result(only_run_dir(tmp_path / "split"))
    check_result(result, "em", "rmdp/Chain-v0", 10, 12)
    assert result["args"]["empty_policy"] == "split" and result["splits"], "no policy emptied: the test needs a split"
    for iteration, emptied, donor in result["splits"]:
        assert 1 <= iteration <= result["args"]["num_iterations"] and emptied != donor and 0 <= min(emptied, donor)
    assert np.bincount(result["assignment"], minlength=10).min() >= 1
    run_solver("em", tmp_path / "reinstate", *flags)
    assert "splits" not in read_result(only_run_dir(tmp_path / "reinstate"))


def test_em_e_step_tol_holds_users_until_a_move_gains_more(tmp_path):
    """--e-step-tol: a tolerance above any possible gain keeps every user on its warm-start (round-robin)
    policy, so no policy empties and nothing is split; a negative one is refused with one line."""
    flags = ["--env-id", "rmdp/Chain-v0", "--n-agents", "12", "--k", "10", "--total-timesteps", "20480", "--seed", "0",
             "--num-workers", "0", "--empty-policy", "split"]
    run_solver("em", tmp_path / "held", *flags, "--e-step-tol", "1000")
    result = read_result(only_run_dir(tmp_path / "held"))
    assert result["args"]["e_step_tol"] == 1000
    assert result["assignment"] == rmdp_envs.round_robin(12, 10).tolist() and result["splits"] == []
    proc = run_solver("em", tmp_path / "negative", *flags, "--e-step-tol", "-0.1", check=False)
    assert proc.returncode != 0 and "--e-step-tol" in proc.stderr and not (tmp_path / "negative").exists()


def test_nvidia_gpus_reads_the_driver_listing_without_starting_cuda(tmp_path):
    """result.json's hardware names the GPU from the driver's /proc listing: asking CUDA would start its driver,
    seconds of every CPU run's start-up on a GPU host."""
    from rmdp_envs.results import nvidia_gpus
    for bus, model in [("0000:1b:00.0", "NVIDIA H100 80GB HBM3"), ("0000:9a:00.0", "NVIDIA H200")]:
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: \t\t {model}\nIRQ:   \t\t 16\nGPU UUID: \t GPU-1\n")
    (tmp_path / "0000:ff:00.0").mkdir()  # a folder without the file is skipped
    assert nvidia_gpus(tmp_path) == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert nvidia_gpus(tmp_path / "absent") == []


def test_memory_estimate_counts_what_a_run_evaluates_and_whether_copies_share_users():
    """The estimate behind the one-line refusal: the family solver's candidates are evaluated like k policies, copies
    that each hold their own users cost once per copy, and a tabular population's S x A numbers per user count."""
    from rmdp_train.args import PPOArgs
    from rmdp_train.run import memory_estimate

    args = PPOArgs(k=10, num_envs=8, num_steps=64, num_workers=1, eval_episodes=20)
    n = 1_000_000
    shared = memory_estimate(args, n, 1)
    assert memory_estimate(args, n, 1, evaluated=(64, 20)) - shared == 24 * (64 - 10) * 20 * n
    assert memory_estimate(args, n, 1, copies_share_users=False) - shared == 42 * (80 + 10 * 20 + 1 - 3) * n
    assert memory_estimate(args, n, 1, params_per_user=30) - shared == (8 * 2 + 72) * 29 * n


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    """The folder name (CleanRL's env__exp__seed__time) repeats for runs of one seed started in the same second: the
    later run takes name-2, name-3, ... instead of writing into the earlier one's folder (its args.json and events
    mixed in); a solver run uses it."""
    from rmdp_train.run import new_run_folder
    name = "rmdp_Chain-v0__random_ppo__1__1700000000"
    assert [new_run_folder(tmp_path, name).name for _ in range(3)] == [name, f"{name}-2", f"{name}-3"]
    run_solver("random", tmp_path / "solver", "--env-id", "rmdp/Chain-v0", "--k", "2", "--total-timesteps", "2000")
    assert (only_run_dir(tmp_path / "solver") / "result.json").is_file()


@pytest.mark.parametrize("solver", [*SOLVERS, "family"])
def test_help_says_what_the_solver_does_and_cites_the_paper(solver):
    """--help showed one line ("EM-like PPO (every shared flag is in ...)"): it now opens with the solver file's own
    description, its run example included, and names the paper."""
    text = subprocess.run([sys.executable, str(ROOT / "solvers" / f"{solver}_ppo.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(ENV, COLUMNS="200")).stdout
    first_line = ast.get_docstring(ast.parse((ROOT / "solvers" / f"{solver}_ppo.py").read_text())).splitlines()[0]
    assert first_line in text and "arXiv 2401.06514" in text and "--total-timesteps" in text


def test_help_shows_the_family_defaults_instead_of_none():
    """Flags whose default is the environment family's showed '(default: None)' in --help; they show the values."""
    from rmdp_train.args import ENV_DEFAULTS
    env = dict(ENV, COLUMNS="200")
    text = subprocess.run([sys.executable, str(ROOT / "solvers" / "em_ppo.py"), "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env).stdout
    blocks, flag = {}, None  # each flag's help, its wrapped lines joined
    for line in text.splitlines():
        match = re.match(r"│ (--[a-z-]+)", line)
        if match:
            flag = match.group(1)
            blocks[flag] = ""
        if flag and line.startswith("│"):
            blocks[flag] += " " + line.strip("│ ")
    blocks = {flag: " ".join(block.split()) for flag, block in blocks.items()}
    for name in ENV_DEFAULTS["default"]:
        block = blocks[f"--{name.replace('_', '-')}"]
        assert "(default: None)" not in block and "(default: " in block, block
    assert "(default: 0.0005 for ResourceGathering, tabular tasks; 0.0003 for MuJoCo and CartPole tasks)" in \
        blocks["--learning-rate"]


def test_track_mirrors_the_run_to_wandb_or_names_what_is_missing(tmp_path):
    """CleanRL's --track: without wandb installed, one error line naming the install and nothing written; with it
    (offline here), the run's W&B record lies in its folder beside the TensorBoard events."""
    import importlib.util
    flags = ["--env-id", "rmdp/Chain-v0", "--k", "2", "--total-timesteps", "2000", "--track"]
    if importlib.util.find_spec("wandb") is None:
        proc = run_solver("random", tmp_path, *flags, check=False, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "pip install wandb" in lines[0], proc.stderr
        assert not any(tmp_path.iterdir())
    else:
        cmd = [sys.executable, str(ROOT / "solvers" / "random_ppo.py"), "--output-dir", str(tmp_path), *flags]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                              env=dict(ENV, WANDB_MODE="offline", WANDB_SILENT="true"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_dir = only_run_dir(tmp_path)
        assert (run_dir / "result.json").is_file() and any((run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("solver", [*SOLVERS, "family"])
def test_check_only_checks_and_writes_nothing(solver, tmp_path):
    """--check-only (what a sweep's dry run asks of each solver): every check a run makes before its folder, exit 0,
    nothing written; a flag a run would refuse is refused the same way."""
    proc = run_solver(solver, tmp_path, "--check-only", timeout=120)
    assert "checked; nothing run or written" in proc.stdout and not any(tmp_path.iterdir())
    proc = run_solver(solver, tmp_path, "--check-only", "--k", "0", check=False, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and not any(tmp_path.iterdir())


def test_torch_threads_do_not_change_the_numbers(tmp_path):
    """The networks' orthogonal init rounded differently on 2 threads, so --torch-threads 2 trained other policies
    from the same seed and the board's reproduce (one thread) failed such a run; the init now runs on one thread."""
    results = []
    for threads in ("1", "2"):
        out = tmp_path / threads
        run_solver("em", out, "--env-id", CHEETAH, "--k", "3", *SMALL[CHEETAH], "--update-threads", "2",
                   "--torch-threads", threads)
        results.append(read_result(only_run_dir(out)))
    assert all(results[0][key] == results[1][key] for key in ("welfare", "best_welfare", "utility", "assignment"))
