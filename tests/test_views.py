"""GroupReward, the PettingZoo parallel view and the vector env."""

import sys

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from rmdp_envs import GroupReward, make_vector_env, parallel_env

PZ_CASES = [("rmdp/ResourceGathering-v0", 3, {}), ("rmdp/HalfCheetahSpeed-v0", 2, {"n_agents": 10}),
            ("rmdp/CartPolePosition-v0", 4, {"n_agents": 9})]


def test_group_reward_is_weighted_sum_of_group():
    base = gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=20, population="grid")
    env = GroupReward(gym.make("rmdp/HalfCheetahSpeed-v0", n_agents=20, population="grid"), users=[1, 5, 7], weights=[1.0, 2.0, 0.5])
    base.reset(seed=0)
    env.reset(seed=0)
    for _ in range(30):
        action = env.action_space.sample()
        _, r_vec, *_ = base.step(action)
        _, r, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["reward_vector"], r_vec)
        assert r == pytest.approx(r_vec[1] + 2 * r_vec[5] + 0.5 * r_vec[7])


@pytest.mark.parametrize("agents,weights,match", [([], None, "non-empty"), ([0, 25], None, r"\[0, 25\)"),
                                                  ([0, 1], [1.0], "shape"), ([0.5], None, "integer"),
                                                  (3, None, "1-D sequence"), ([0, 4, 0], None, "user 0 appears more")])
def test_group_reward_rejects_bad_groups(agents, weights, match):
    with pytest.raises(ValueError, match=match):
        GroupReward(gym.make("rmdp/ResourceGathering-v0"), agents, weights)


def test_group_reward_takes_issue_2s_agents_keyword_as_users():
    """Issue 2 named the group ``agents``; issue 9's vocabulary calls them users. Both keywords give one view."""
    by_users = GroupReward(gym.make("rmdp/ResourceGathering-v0"), users=[0, 22], weights=[1.0, 0.5])
    by_agents = GroupReward(gym.make("rmdp/ResourceGathering-v0"), agents=[0, 22], weights=[1.0, 0.5])
    for env in (by_users, by_agents):
        env.reset(seed=0)
    rewards = [[env.step(a)[1] for a in (0, 1)] for env in (by_users, by_agents)]
    assert rewards[0] == rewards[1] and rewards[0][1] == pytest.approx(0.5 * 0.98)  # up and down: user 22's 0.98
    for kwargs in ({}, {"users": [0], "agents": [0]}):
        with pytest.raises(TypeError, match="user indices once"):
            GroupReward(gym.make("rmdp/ResourceGathering-v0"), **kwargs)


def test_group_reward_names_an_env_that_is_no_rmdp():
    with pytest.raises(ValueError, match="GroupReward views an r-MDP"):
        GroupReward(gym.make("CartPole-v1"), [0])


def test_group_reward_refuses_a_group_reward_below_it():
    """Its steps give a number, not the vector: the second view failed on its first step with a TypeError."""
    with pytest.raises(ValueError, match="already a GroupReward"):
        GroupReward(GroupReward(gym.make("rmdp/ResourceGathering-v0"), [0, 1]), [0])


def test_group_reward_spec_serializes_and_rebuilds():
    """numpy indices and weights are recorded as plain numbers: the spec goes to JSON and back to the same view."""
    env = GroupReward(gym.make("rmdp/ResourceGathering-v0"), np.array([1, 2]), np.array([1.0, 0.5]))
    rebuilt = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    assert isinstance(rebuilt, GroupReward) and rebuilt.agents.tolist() == [1, 2] and rebuilt.weights.tolist() == [1.0, 0.5]


@pytest.mark.parametrize("env_id,k,kwargs", PZ_CASES)
def test_parallel_env_passes_pettingzoo_api_test(env_id, k, kwargs):
    parallel_api_test(parallel_env(env_id, k, **kwargs), num_cycles=200)


@pytest.mark.parametrize("env_id,k,kwargs", PZ_CASES)
def test_parallel_env_is_seeded_over_many_steps(env_id, k, kwargs):
    """Several steps, not one (PettingZoo's parallel_seed_test checked a single step before PR #1437)."""
    def trace(seed):
        env = parallel_env(env_id, k, **kwargs)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(60):
            if not env.agents:
                obs, _ = env.reset()
                out.append(obs)
            actions = {a: env.action_space(a).sample() for a in env.agents}
            out.append(actions)
            out.append(env.step(actions)[:4])
        return out
    a, b = trace(4), trace(4)
    assert repr(a) == repr(b)
    assert repr(a) != repr(trace(5))


def test_parallel_rewards_are_group_sums_and_info_has_vector():
    assignment = np.array([i % 2 for i in range(25)])
    env = parallel_env("rmdp/ResourceGathering-v0", 2, assignment=assignment)
    env.reset(seed=0)
    # policy_0 goes up and back (rewards cells 22, 17); policy_1 bumps the wall at home (cell 22).
    env.step({"policy_0": 0, "policy_1": 1})
    assert env.agents == ["policy_0"]
    _, rewards, terms, _, infos = env.step({"policy_0": 1})
    vec = infos["policy_0"]["reward_vector"]
    assert vec.shape == (25,) and terms["policy_0"]
    assert rewards["policy_0"] == pytest.approx(vec[assignment == 0].sum()) and rewards["policy_0"] == pytest.approx(0.98)  # of cells 22, 17 only 22 is even


@pytest.mark.parametrize("k,assignment,match", [(0, None, r"k must lie in \[1, n\]"), (26, None, r"k must lie in \[1, n\] = \[1, 25\]"),
                                                (2, [0] * 24, "length n=25"), (2, [0] * 24 + [2], r"\[0, k\)"),
                                                (2, [0] * 24 + [-1], r"\[0, k\)")])
def test_parallel_env_rejects_bad_budget_and_assignment(k, assignment, match):
    with pytest.raises(ValueError, match=match):
        parallel_env("rmdp/ResourceGathering-v0", k, assignment=assignment)


def test_vector_env_steps_policy_major_copies_with_vector_rewards():
    env = make_vector_env("rmdp/ResourceGathering-v0", k=3, copies_per_policy=2)
    assert env.num_envs == 6 and env.policy_index.tolist() == [0, 0, 1, 1, 2, 2]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 27)
    # Every copy goes up; copies of policy 1 come straight back down and finish.
    obs, rewards, term, trunc, infos = env.step(np.zeros(6, dtype=np.int64))
    obs, rewards, term, trunc, infos = env.step(np.array([0, 0, 1, 1, 0, 0]))
    assert rewards.shape == (6, 25) and rewards.dtype == np.float32
    assert term.tolist() == [False, False, True, True, False, False]
    assert infos["_final_obs"].tolist() == term.tolist()
    assert infos["final_obs"][2][:2].tolist() == [4, 2] and obs[2][2:].sum() == 1  # reset in the same step
    np.testing.assert_allclose(infos["episode"]["r"][2], rewards[2])
    assert infos["episode"]["l"][2] == 2


def test_make_vector_env_takes_issue_2s_m_keyword():
    env = make_vector_env("rmdp/ResourceGathering-v0", 3, m=2)
    assert env.num_envs == 6 and env.policy_index.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(TypeError, match="copies per policy once"):
        make_vector_env("rmdp/ResourceGathering-v0", 3, 1, m=2)  # even the default's value, given, is given twice
    assert make_vector_env("rmdp/ResourceGathering-v0", 3).num_envs == 3  # neither: one copy per policy


def test_vector_env_rejects_wrong_action_shape_and_mixed_populations():
    env = make_vector_env("rmdp/CartPolePosition-v0", k=2, copies_per_policy=2, env_kwargs={"n_agents": 5})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(4,\)"):
        env.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="different populations"):
        make_vector_env("rmdp/CartPolePosition-v0", k=2, env_kwargs={"n_agents": 5, "population_seed": None})
    with pytest.raises(ValueError, match=r"k must lie in \[1, n\]"):
        make_vector_env("rmdp/CartPolePosition-v0", k=6, env_kwargs={"n_agents": 5})


@pytest.mark.parametrize("autoreset_mode", ["SameStep", "Disabled"])
def test_worker_process_vector_env_matches_in_process(autoreset_mode):
    """Worker processes give exactly the in-process results, episode ends included, whatever share of the
    copies the main process steps itself (none, the default, half)."""
    def trace(num_workers, main_share=None):
        env = make_vector_env("rmdp/HopperSpeed-v0", k=2, copies_per_policy=3, env_kwargs={"n_agents": 6},
                              autoreset_mode=autoreset_mode, num_workers=num_workers, main_share=main_share)
        out = [env.reset(seed=7)[0]]
        rng = np.random.default_rng(0)
        for _ in range(120):
            obs, rewards, term, trunc, infos = env.step(rng.uniform(-1, 1, size=(6, 3)).astype(np.float32))
            out += [obs, rewards, term, trunc]
            if "_episode" in infos:
                out += [infos["_episode"], infos["episode"]["r"], infos["episode"]["l"]]
                if "final_obs" in infos:
                    out.append(infos["final_obs"][infos["_final_obs"]])
        out.append(env.all_done)
        env.close()
        return out
    a = trace(0)
    assert len(a) > 4 * 120  # Hopper falls: episodes end inside the window
    for other in (trace(1), trace(2), trace(1, main_share=0.0), trace(2, main_share=0.5)):
        assert len(other) == len(a)
        for x, y in zip(a, other):
            np.testing.assert_array_equal(x, y)


def test_main_share_splits_the_copies():
    from rmdp_envs.vector import split_copies
    assert split_copies(40, 1, 0.25) == [slice(0, 10), slice(10, 40)]
    assert split_copies(40, 3, 0.0) == [slice(0, 0), slice(0, 13), slice(13, 27), slice(27, 40)]
    assert split_copies(3, 5, 0.5) == [slice(0, 0), slice(0, 1), slice(1, 2), slice(2, 3)]  # a worker per copy at most
    with pytest.raises(ValueError, match="main_share"):
        split_copies(8, 1, 1.0)
    from rmdp_envs.vector import default_main_share
    assert default_main_share(1) == 0.5 and default_main_share(15) == 0.0  # as measured, benchmarks/results/main_share


def test_worker_errors_surface_in_the_parent():
    env = make_vector_env("rmdp/CartPolePosition-v0", k=1, copies_per_policy=3, env_kwargs={"n_agents": 3}, num_workers=2)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="vector env worker failed"):
        env.step(np.array([0, 0, 5]))


def test_workers_from_a_script_without_main_guard_fail_at_once_saying_what_to_add(tmp_path):
    """Worker processes import the script again; an unguarded one gets the fix in the error, not a hang."""
    import subprocess
    import sys
    script = tmp_path / "unguarded.py"
    script.write_text("import rmdp_envs\n"
                      "env = rmdp_envs.make_vector_env('rmdp/CartPolePosition-v0', k=1, copies_per_policy=2,\n"
                      "                                env_kwargs={'n_agents': 3}, num_workers=1)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr.splitlines()[-1]
    assert proc.stderr.count("Traceback") == 1, proc.stderr  # the parent's error only, not the worker's as well


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_fork_server_imports_torch_once_for_all_workers():
    """Workers fork from a server that already holds the parent's torch instead of importing it each.

    Python's own ``__main__`` preload imports nothing (no main path reaches the server), so without
    ``start_forkserver`` the server never maps libtorch and every worker imports it again.
    """
    import subprocess
    probe = ("import time, torch, multiprocessing.forkserver as fs, rmdp_envs.vector as v\n"
             "v.start_forkserver()\n"
             "pid = fs._forkserver._forkserver_pid\n"
             "for _ in range(600):\n"
             "    if 'libtorch' in open(f'/proc/{pid}/maps').read(): break\n"
             "    time.sleep(0.05)\n"
             "print('libtorch' in open(f'/proc/{pid}/maps').read())\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


@pytest.mark.parametrize("kwargs, match", [
    (dict(env_kwargs=[1]), "env_kwargs must be a dict"),
    (dict(autoreset_mode="bogus"), "autoreset_mode must be an AutoresetMode"),
    (dict(main_share=0.5), "main_share applies with workers only"),  # was ignored without workers
])
def test_make_vector_env_names_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_vector_env("rmdp/ResourceGathering-v0", k=2, **kwargs)


def test_make_vector_env_refuses_copies_beyond_memory_before_building_them():
    """10^5 HalfCheetah copies (about 1 MiB each) cannot fit in this machine's memory: refused at once, not built."""
    from rmdp_envs.results import available_memory
    from rmdp_envs.vector import copy_bytes

    if (available_memory() or 0) >= copy_bytes("rmdp/HalfCheetahSpeed-v0") * 5 * 20_000:
        pytest.skip("this machine could hold the copies")
    with pytest.raises(ValueError, match="copies of rmdp/HalfCheetahSpeed-v0 need about"):
        make_vector_env("rmdp/HalfCheetahSpeed-v0", k=5, copies_per_policy=20_000)


def test_parallel_env_renders_every_policys_copy_and_states_pettingzoo_attributes():
    """``render_mode`` reaches the copies; ``rgb_array`` puts the k frames side by side, ``ansi`` lists them by agent;
    ``observation_spaces`` / ``action_spaces`` hold each agent's space, as PettingZoo envs state them."""
    single = gym.make("rmdp/ResourceGathering-v0", render_mode="rgb_array")
    single.reset(seed=0)
    frame = single.render()
    env = parallel_env("rmdp/ResourceGathering-v0", 3, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render_mode == "rgb_array" and "rgb_array" in env.metadata["render_modes"]
    np.testing.assert_array_equal(env.render(), np.concatenate([frame] * 3, axis=1))  # same seed: the same start
    text = parallel_env("rmdp/ResourceGathering-v0", 2, render_mode="ansi")
    text.reset(seed=0)
    assert text.render().startswith("policy_0:\n") and "\npolicy_1:\n" in text.render()
    assert parallel_env("rmdp/ResourceGathering-v0", 2).render() is None
    assert env.observation_spaces == {a: env.observation_space(a) for a in env.possible_agents}
    assert env.action_spaces == {a: env.action_space(a) for a in env.possible_agents}


@pytest.mark.parametrize("num_workers", [0, 1])
def test_vector_env_call_get_set_attr_and_render_as_gymnasium(num_workers):
    """Gymnasium's ``call`` / ``get_attr`` / ``set_attr`` reach every copy in copy order, through its wrappers and in
    worker processes; ``render()`` returns every copy's frame; the metadata states the copies' render modes."""
    vec = make_vector_env("rmdp/ResourceGathering-v0", 2, 2, dict(render_mode="rgb_array"), num_workers=num_workers)
    single = gym.make("rmdp/ResourceGathering-v0", render_mode="rgb_array")
    vec.reset(seed=0), single.reset(seed=0)
    vec.step(np.array([0, 0, 0, 0]))  # up, away from home: no copy ends its episode
    assert vec.get_attr("_steps") == (1, 1, 1, 1)
    assert [v["steps"] for _, v in vec.call("reset", seed=3)] == [0, 0, 0, 0]
    vec.set_attr("highlighted_users", [[], [0], [], [24]])
    assert vec.get_attr("highlighted_users") == ([], [0], [], [24])
    frames = vec.render()
    assert vec.render_mode == "rgb_array" and "rgb_array" in vec.metadata["render_modes"]
    assert len(frames) == 4 and frames[0].shape == single.render().shape
    np.testing.assert_array_equal(frames[0], single.render())  # both at home, nothing highlighted
    assert not np.array_equal(frames[1], frames[0])  # copy 1 frames user 0's cell
    with pytest.raises(ValueError, match="one value per copy"):
        vec.set_attr("highlighted_users", [[], []])
    with pytest.raises(AttributeError):  # a mistake, answered by every process: the env still steps and answers
        vec.call("no_such_attribute")
    vec.step(np.array([0, 0, 0, 0]))
    assert vec.get_attr("_steps") == (1, 1, 1, 1)
    vec.close()
    assert make_vector_env("rmdp/ResourceGathering-v0", 1, 1).render() is None


def test_gymnasium_vector_wrappers_apply_to_make_vec():
    """With Gymnasium's default autoreset (make_vec's) its vector observation wrappers take the reward-vector env
    (NormalizeObservation refused the other modes): every observation counted, reward vectors passed through."""
    envs = gym.wrappers.vector.NormalizeObservation(gym.make_vec("rmdp/ResourceGathering-v0", num_envs=4))
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):  # episodes end and restart inside
        actions = rng.integers(0, 4, size=4)
        obs, rewards, *_ = envs.step(actions)
        assert rewards.shape == (4, 25)
    assert envs.obs_rms.count > 4 * 60 and np.isfinite(obs).all()


def test_worker_processes_adopt_an_rmdp_registered_at_run_time():
    """An r-MDP registered inside a function (or a notebook) is unknown to a fresh worker process, which failed with
    'unknown env id': the worker adopts the parent's registration, and steps the copies as the parent's would."""
    import rmdp_envs

    def register_here():
        rmdp_envs.register("rmdp/RuntimeChain-v0", "rmdp_envs.envs.tabular_generators:ChainEnv")

    register_here()
    try:
        split = make_vector_env("rmdp/RuntimeChain-v0", 1, 2, num_workers=1)
        alone = make_vector_env("rmdp/RuntimeChain-v0", 1, 2)
        np.testing.assert_array_equal(split.reset(seed=3)[0], alone.reset(seed=3)[0])
        for t in range(30):
            actions = np.array([t % 2, (t + 1) % 2])
            np.testing.assert_array_equal(split.step(actions)[1], alone.step(actions)[1])
        split.close(), alone.close()
    finally:
        gym.registry.pop("rmdp/RuntimeChain-v0", None)


def test_parallel_view_refuses_a_step_before_reset_and_unknown_agents():
    """Before reset it returned empty dicts (no live agents yet); an action for an agent it does not have was dropped."""
    env = parallel_env("rmdp/ResourceGathering-v0", k=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"policy_0": 0, "policy_1": 0})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="does not have"):
        env.step({"policy_0": 0, "policy_1": 0, "policy_7": 0})
