"""``--rollout workers``: the policies run in the env workers (rmdp_train.rollout).

It must train exactly what ``--rollout main`` trains (same numbers, any number of workers), refuse
flag combinations it cannot honour with one line, and the pieces it is built from must agree with
the main-process path (the users' side of a whole rollout at once, a subset of policies' forward pass).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rmdp_envs
from rmdp_envs.rewards import user_rewards_of
from rmdp_train.policies import MultiPolicyActor
from rmdp_train.users import UserTracker, user_bins
from test_solvers import CHEETAH, RG, SMALL, check_result, only_run_dir, read_result, run_solver


def _weights(run_dir) -> dict:
    from safetensors.numpy import load_file
    return load_file(str(run_dir / "policies.safetensors"))


# episodes of 40 steps: time-limit truncations (their bootstrapped final observations) inside every rollout
TRUNCATING = ["--env-kwargs", '{"max_episode_steps": 40}']


@pytest.mark.parametrize("solver,env_id,extra,runs", [
    ("em", CHEETAH, [], [("main", 1), ("workers", 1), ("workers", 3)]),
    ("em", CHEETAH, TRUNCATING, [("main", 1), ("workers", 2)]),
    ("em", CHEETAH, [*TRUNCATING, "--norm-obs-update", "rollout"], [("main", 1), ("workers", 2)]),  # no barrier
    ("cluster", RG, [], [("main", 0), ("workers", 2)]),  # discrete actions; a new sampler for phase 2
    ("e2e", RG, [], [("main", 0), ("workers", 3)]),
])
def test_rollout_workers_gives_the_numbers_of_main(solver, env_id, extra, runs, tmp_path):
    """Same seed and flags: --rollout workers trains exactly what --rollout main does, with any number of workers."""
    outcomes = []
    for rollout, workers in runs:
        out = tmp_path / f"{rollout}{workers}"
        run_solver(solver, out, "--env-id", env_id, "--k", "3", *SMALL[env_id], *extra, "--rollout", rollout,
                   "--num-workers", str(workers), "--save-model", "--seed", "4")
        run_dir = only_run_dir(out)
        outcomes.append((read_result(run_dir), _weights(run_dir)))
        check_rollout_seconds(outcomes[-1][0], rollout, workers)
        if "--norm-obs-update" in extra and rollout == "workers":  # statistics frozen per rollout: nobody waits per step
            assert all(worker["barrier"] == 0 for worker in outcomes[-1][0]["rollout_seconds"]["workers"])
    (first, w1) = outcomes[0]
    check_result(first, solver, env_id, 3, first["n_agents"])
    for result, weights in outcomes[1:]:
        assert result["utility"] == first["utility"] and result["welfare"] == first["welfare"]
        assert weights.keys() == w1.keys() and all(np.array_equal(weights[key], w1[key]) for key in w1)


def test_norm_obs_update_rollout_is_another_learner(tmp_path):
    """--norm-obs-update rollout changes what is learned (statistics frozen during each rollout), and the statistics
    still follow the observations: the saved mean is not the prior's."""
    outcomes = {}
    for update in ("step", "rollout"):
        out = tmp_path / update
        run_solver("em", out, "--env-id", CHEETAH, "--k", "3", *SMALL[CHEETAH], "--rollout", "main", "--num-workers", "1",
                   "--norm-obs-update", update, "--save-model", "--seed", "4")
        run_dir = only_run_dir(out)
        spec = json.loads((run_dir / "policies.json").read_text())
        outcomes[update] = (read_result(run_dir)["utility"], _weights(run_dir), np.asarray(spec["obs_norm"]["mean"]))
    (u_step, w_step, mean_step), (u_roll, w_roll, mean_roll) = outcomes["step"], outcomes["rollout"]
    assert u_step != u_roll and not all(np.array_equal(w_step[key], w_roll[key]) for key in w_step)
    assert np.abs(mean_roll).max() > 0.01 and not np.array_equal(mean_step, mean_roll)


def check_rollout_seconds(result: dict, rollout: str, workers: int) -> None:
    """result.json says where a --rollout workers run's rollouts went: per worker, its loop holds MuJoCo's steps and
    the barrier's waits; the main process's share is within the rollout phase. --rollout main keeps no such split."""
    assert result["start_up_s"] > 0  # Linux: /proc gives the process's start
    if rollout == "main":
        assert "rollout_seconds" not in result
        return
    seconds = result["rollout_seconds"]
    assert len(seconds["workers"]) == workers
    for worker in seconds["workers"]:
        assert worker["env_step"] > 0 and worker["barrier"] >= 0
        assert worker["loop"] >= worker["env_step"] + worker["barrier"] - 0.002  # rounded to the millisecond
    main = seconds["main_before"] + seconds["main_waiting"] + seconds["main_after"]
    # a worker's loop starts once its own message is sent and ends before the main process receives its rollout
    assert max(w["loop"] for w in seconds["workers"]) <= seconds["main_before"] + seconds["main_waiting"] + 0.01
    assert main <= result["phase_seconds"]["rollout"] + 0.01


def test_rollout_workers_resumes_after_interruption(tmp_path):
    flags = ["--env-id", RG, "--k", "5", *SMALL[RG], "--checkpoint-every", "2", "--rollout", "workers", "--num-workers", "1"]
    proc = run_solver("em", tmp_path, *flags, "--interrupt-after", "3")
    assert "interrupted after iteration 4" in proc.stdout
    run_dir = only_run_dir(tmp_path)
    proc = run_solver("em", tmp_path, "--resume", str(run_dir))
    assert "at iteration 4" in proc.stdout
    result = read_result(run_dir)
    check_result(result, "em", RG, 5, 25)
    assert result["transitions"] == 3200


@pytest.mark.parametrize("flags", [
    ["--rollout", "workers", "--num-workers", "0"],
    ["--rollout", "workers", "--num-workers", "1", "--main-share", "0.5"],
])
def test_rollout_workers_bad_flags_one_line_error(flags, tmp_path):
    proc = run_solver("em", tmp_path, *flags, check=False, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--rollout workers" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())


def test_family_refuses_rollout_workers(tmp_path):
    proc = run_solver("family", tmp_path, "--rollout", "workers", "--num-workers", "1", check=False, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--rollout workers" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("n,max_bins", [(12, 128), (300, 8)])  # one output per user; users pooled into bins
def test_user_tracker_steps_equals_step_by_step(n, max_bins):
    env = rmdp_envs.make(CHEETAH, n_agents=n)
    user_rewards = user_rewards_of(env)
    bins = user_bins(np.asarray(env.unwrapped.population.to_dict()["params"]), max_bins)
    k, m, T = 2, 3, 40
    rng = np.random.default_rng(0)
    stats = rng.uniform(-1, 4, (T, k * m, user_rewards.dim))
    finished = rng.random((T, k * m)) < 0.1

    class State:
        def __init__(self):
            self.utility, self.seen = np.zeros((k, n)), np.zeros(k, dtype=bool)

    one, many = State(), State()
    a, b = UserTracker(user_rewards, k, m, 0.9, bins), UserTracker(user_rewards, k, m, 0.9, bins)
    step_by_step = np.stack([a.step(stats[t], finished[t], one) for t in range(T)])
    at_once = b.steps(stats, finished, many)
    assert np.array_equal(step_by_step, at_once)
    assert np.array_equal(one.utility, many.utility) and np.array_equal(one.seen, many.seen)


@pytest.mark.parametrize("shared_torso", [False, True])
def test_forward_of_a_subset_of_policies_matches_the_full_pass(shared_torso):
    torch.manual_seed(0)
    actor = MultiPolicyActor(5, 7, 3, (16, 16), shared_torso=shared_torso)
    x = torch.randn(5, 4, 7)
    with torch.no_grad():
        full, part = actor(x)[1:3], actor(x[1:3], slice(1, 3))
    torch.testing.assert_close(part, full)


def test_submissions_do_not_record_rollout_and_reproduce_in_main():
    """Where the policies ran does not change the numbers, so it is not part of a method's configuration; the
    board's runs (one process each) resolve to ``main``."""
    from leaderboard.protocol import recorded_hyperparameters
    from leaderboard.sweep import PROCESS_FLAGS
    from rmdp_train.args import PPOArgs, apply_env_defaults

    base = {"seed": 3, "learning_rate": 3e-4, "num_workers": 2}
    for rollout in ("main", "workers"):
        assert recorded_hyperparameters({**base, "rollout": rollout}) == {"learning_rate": 3e-4}
    workers = PROCESS_FLAGS[PROCESS_FLAGS.index("--num-workers") + 1]
    assert apply_env_defaults(PPOArgs(env_id=CHEETAH, num_workers=int(workers))).rollout == "main"


def _wait_at_barrier(barrier, index, queue):
    import threading
    try:
        barrier.wait(index)
        queue.put("passed")
    except threading.BrokenBarrierError:
        queue.put("broken")


@pytest.mark.parametrize("spin_s", [0.0, 5.0])  # sleeping waiters; polling ones (a budget longer than the test)
def test_step_barrier_meets_and_abort_wakes_the_waiters(spin_s):
    """The per-step barrier lets workers through together, and a failing worker's abort() frees the others at once."""
    import multiprocessing as mp
    from rmdp_train.rollout import StepBarrier

    ctx = mp.get_context("forkserver")
    barrier, queue = StepBarrier(ctx, 3, spin_s=spin_s), ctx.Queue()
    procs = [ctx.Process(target=_wait_at_barrier, args=(barrier, i, queue)) for i in (1, 2)]
    for p in procs:
        p.start()
    barrier.wait(0)  # the leader: returns once both others arrived
    assert sorted(queue.get(timeout=30) for _ in procs) == ["passed", "passed"]
    for p in procs:
        p.join(timeout=30)
    waiter = ctx.Process(target=_wait_at_barrier, args=(barrier, 1, queue))
    waiter.start()
    barrier.abort()  # as a worker that failed mid-rollout
    assert queue.get(timeout=30) == "broken"  # the waiter woke (queue.get raises if it did not within 30 s)
    waiter.join(timeout=30)


def test_rollout_defaults_to_workers_on_every_usable_core_unless_told(monkeypatch):
    """With no flags a solver collects in workers on every core this process may use (one worker per copy at
    most); an explicit ``--num-workers``, ``--rollout main``, ``--num-workers 0``, ``--main-share`` and a solver
    without the workers' rollout (the family) keep or choose the main process."""
    from pathlib import Path
    from rmdp_envs.results import usable_cores
    from rmdp_train.args import PPOArgs, apply_env_defaults
    copies = 5 * 8  # k x the families' num_envs
    for env_id in (RG, CHEETAH):
        default = apply_env_defaults(PPOArgs(env_id=env_id, k=5))
        assert default.rollout == "workers" and default.num_workers == min(usable_cores(), copies)
    assert apply_env_defaults(PPOArgs(env_id=RG, k=1, num_envs=1)).num_workers == 1
    assert apply_env_defaults(PPOArgs(env_id=CHEETAH, k=5, num_workers=1)).num_workers == 1
    main = apply_env_defaults(PPOArgs(env_id=CHEETAH, k=5, rollout="main"))
    assert (main.rollout, main.num_workers) == ("main", 1)  # the MuJoCo family's one worker beside main
    assert apply_env_defaults(PPOArgs(env_id=RG, k=5, rollout="main")).num_workers == 0
    assert apply_env_defaults(PPOArgs(env_id=CHEETAH, k=5, num_workers=0)).rollout == "main"
    assert apply_env_defaults(PPOArgs(env_id=CHEETAH, k=5, main_share=0.5)).rollout == "main"
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "solvers"))
    from family_ppo import Args as FamilyArgs
    family = apply_env_defaults(FamilyArgs(env_id=CHEETAH, k=5))
    assert (family.rollout, family.num_workers) == ("main", 1)


def test_update_threads_default_respects_omp_num_threads():
    """A user's OMP_NUM_THREADS bounds the update's threads (several runs on one machine must not spin against
    each other); unset or malformed, the mode's own default applies."""
    from rmdp_envs.results import usable_cores
    from rmdp_train.run import default_update_threads
    assert default_update_threads("workers", {"OMP_NUM_THREADS": "1"}) == 1
    assert default_update_threads("main", {"OMP_NUM_THREADS": "3"}) == 3
    assert default_update_threads("main", {}) == 2
    assert default_update_threads("main", {"OMP_NUM_THREADS": "zero"}) == 2
    assert default_update_threads("workers", {"OMP_NUM_THREADS": ""}) == max(1, min(8, usable_cores()))
