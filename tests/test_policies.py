"""Saving and reloading k policies without pickle, and acting with them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rmdp_envs
from rmdp_train.policies import MultiPolicyActor, load_policies, save_policies


def saved_actor(tmp_path, discrete, shared_torso=False):
    torch.manual_seed(0)
    if discrete:
        actor = MultiPolicyActor(3, 27, 4, discrete=True, shared_torso=shared_torso)
        save_policies(tmp_path, actor, env_id="rmdp/ResourceGathering-v0", env_kwargs={})
    else:
        actor = MultiPolicyActor(3, 17, 6, shared_torso=shared_torso)
        with torch.no_grad():
            actor.head.bias.normal_(0, 2.0)  # push some means past the bounds: they must be clipped
        save_policies(tmp_path, actor, env_id="rmdp/HalfCheetahSpeed-v0", env_kwargs={"n_agents": 5},
                      action_low=-np.ones(6), action_high=np.ones(6), obs_mean=np.full(17, 0.5), obs_var=np.full(17, 4.0))
    return actor


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("shared_torso", [True, False])
def test_round_trip_acts_like_the_saved_actor(tmp_path, discrete, shared_torso):
    actor = saved_actor(tmp_path, discrete, shared_torso)
    policy = load_policies(tmp_path)
    obs = np.random.default_rng(0).normal(size=(3, 5, actor.obs_dim))
    actions = policy(obs)
    with torch.no_grad():
        x = obs if discrete else np.clip((obs - 0.5) / np.sqrt(4.0 + 1e-8), -5, 5)
        out = actor(torch.as_tensor(x, dtype=torch.float32)).numpy()
    expected = out.argmax(-1) if discrete else np.clip(out, -1, 1)
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    np.testing.assert_allclose(policy(obs[:, 0]), expected[:, 0], atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policies.json", "policies.safetensors"]
    if not discrete:
        assert np.abs(actions).max() == pytest.approx(1.0)


def test_loaded_policies_evaluate_deterministically(tmp_path):
    saved_actor(tmp_path, discrete=False)
    policy = load_policies(tmp_path)
    a = rmdp_envs.evaluate(policy.env_id, policy, k=3, episodes=2, env_kwargs=policy.env_kwargs)
    b = rmdp_envs.evaluate(policy.env_id, load_policies(tmp_path), k=3, episodes=2, env_kwargs=policy.env_kwargs)
    np.testing.assert_array_equal(a.utility, b.utility)


def test_missing_or_foreign_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="policies.json is missing"):
        load_policies(tmp_path)
    saved_actor(tmp_path, discrete=True)
    spec = json.loads((tmp_path / "policies.json").read_text())
    (tmp_path / "policies.json").write_text(json.dumps({**spec, "format": "something-else"}))
    with pytest.raises(ValueError, match="format 'something-else'"):
        load_policies(tmp_path)


def test_wrong_observation_shape_raises(tmp_path):
    saved_actor(tmp_path, discrete=True)
    with pytest.raises(ValueError, match="observations must have shape"):
        load_policies(tmp_path)(np.zeros((2, 27)))


@pytest.mark.parametrize("shared_torso", [False, True])
def test_copy_policy_makes_a_twin_that_trains_on_as_its_source(shared_torso):
    """EM's --empty-policy split: the copy acts, values and steps (Adam's moments) as its source did."""
    from rmdp_train.networks import MultiPolicyAgent

    torch.manual_seed(0)
    agent = MultiPolicyAgent(3, 17, 6, n=4, shared_torso=shared_torso)
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2, foreach=True)
    obs = torch.randn(3, 8, 17)
    for _ in range(3):  # moments that differ between policies
        optimizer.zero_grad()
        _, logprob, _, value = agent.get_action_and_value(obs, torch.randn(3, 8, 6))
        (value.pow(2).sum() - logprob.sum()).backward()
        optimizer.step()
    same = obs[2:3].expand(3, -1, -1)  # every policy sees policy 2's observations
    assert not torch.allclose(agent.actor(same)[0], agent.actor(same)[2])
    untouched = agent.actor(same)[1].clone()
    agent.copy_policy(2, 0, optimizer)
    assert torch.equal(agent.actor(same)[0], agent.actor(same)[2]) and torch.equal(agent.critic(same)[0], agent.critic(same)[2])
    assert torch.equal(agent.actor(same)[1], untouched)
    optimizer.zero_grad()  # one more step on equal data: the twins stay equal only if their moments were copied too
    _, logprob, _, value = agent.get_action_and_value(same, torch.zeros(3, 8, 6))
    (value.pow(2).sum() - logprob.sum()).backward()
    optimizer.step()
    assert torch.equal(agent.actor(same)[0], agent.actor(same)[2]) and torch.equal(agent.critic(same)[0], agent.critic(same)[2])


def test_save_policies_takes_gymnasiums_numpy_sizes_and_writes_all_or_nothing(tmp_path):
    """Discrete(n).n is a numpy integer in Gymnasium 1.x: an actor sized by it saves (json failed on int64 after the
    weights were written, leaving half a policy folder); a spec that is no JSON writes no file at all."""
    import gymnasium as gym
    env = gym.make("rmdp/ResourceGathering-v0")
    actor = MultiPolicyActor(2, env.observation_space.shape[0], env.action_space.n, discrete=True)
    save_policies(tmp_path / "ok", actor, env_id="rmdp/ResourceGathering-v0", env_kwargs={})
    assert load_policies(tmp_path / "ok").k == 2
    with pytest.raises(ValueError):
        save_policies(tmp_path / "bad", actor, env_id="rmdp/ResourceGathering-v0", env_kwargs={"x": float("nan")})
    assert not any((tmp_path / "bad").iterdir())


def test_evaluate_cli_gives_the_runs_numbers_again(tmp_path, capsys):
    """``python -m rmdp_train.evaluate RUN_DIR`` rebuilds the saved policies and, by default on the run's own
    evaluation episodes, gives result.json's welfare and best response again; other episodes score others."""
    from leaderboard.testing import make_fixture_run
    from rmdp_train.evaluate import main as evaluate_main

    run = make_fixture_run(tmp_path / "run", "rmdp/ResourceGathering-v0", k=2, seed=0)
    result = json.loads((run / "result.json").read_text())
    assert evaluate_main([str(run), "--out", str(tmp_path / "ev.json")]) == 0
    said = json.loads((tmp_path / "ev.json").read_text())
    assert said["welfare"] == pytest.approx(result["welfare"], abs=1e-12)
    assert said["best_welfare"] == pytest.approx(result["best_welfare"], abs=1e-12)
    assert said["seeds"][0] == result["eval_seed"] and said["episodes"] == result["eval_episodes"]
    out = capsys.readouterr().out
    assert f"best response (each user its best policy): {result['best_welfare']:.4f}" in out
    (tmp_path / "empty").mkdir()
    for folder, says in (("nothing", "error: no such run folder"), ("empty", "error: no saved policies")):
        proc = subprocess.run([sys.executable, "-m", "rmdp_train.evaluate", str(tmp_path / folder)],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.strip().startswith(says), proc.stderr
