"""TrainState's checkpoint restores everything a run continues from: a resumed run's weights, Adam's moments and
step counts, the loose tensors, the observation statistics, both random generators and the algorithm's arrays."""

import json

import numpy as np
import torch
from torch import optim

from rmdp_train.checkpoint import TrainState, checkpoint_iteration
from rmdp_train.networks import MultiPolicyAgent
from rmdp_train.normalization import RunningMeanStd


def _state(seed: int) -> tuple[TrainState, MultiPolicyAgent]:
    torch.manual_seed(seed)
    agent = MultiPolicyAgent(3, 5, 2, 4, hidden_size=8, discrete=False)
    optimizer = optim.Adam(agent.parameters(), lr=1e-3)
    obs_rms = RunningMeanStd((5,), enabled=True)
    logits = torch.nn.Parameter(torch.randn(3, 4))
    state = TrainState(modules={"actor": agent.actor, "critic": agent.critic}, optimizers={"optimizer": optimizer},
                       obs_rms=obs_rms, rng=np.random.default_rng(seed), assignment=np.zeros(4, dtype=np.int64),
                       utility=np.zeros((3, 4)), seen=np.zeros(3, dtype=bool), tensors={"logits": logits})
    return state, agent


def test_checkpoint_round_trip_restores_every_piece(tmp_path):
    trained, agent = _state(0)
    for _ in range(3):  # some Adam steps: moments and step counts that a fresh optimizer does not have
        loss = sum((p ** 2 + p).sum() for p in agent.parameters())
        trained.optimizers["optimizer"].zero_grad()
        loss.backward()
        trained.optimizers["optimizer"].step()
    trained.obs_rms.update(np.random.default_rng(1).normal(size=(20, 5)))
    trained.rng.random(17)  # a generator moved on from its seed
    trained.assignment[:] = [2, 0, 1, 2]
    trained.utility[:] = np.arange(12.0).reshape(3, 4)
    trained.seen[:] = [True, False, True]
    trained.global_step, trained.iteration, trained.extra = 4096, 7, {"note": [1, 2]}
    saved_torch_rng = torch.get_rng_state()
    trained.save(tmp_path)
    assert checkpoint_iteration(tmp_path) == 7

    fresh, fresh_agent = _state(1)  # other weights, other generators: everything must come from the file
    fresh.load(tmp_path)
    for mine, theirs in zip(agent.state_dict().values(), fresh_agent.state_dict().values()):
        torch.testing.assert_close(theirs, mine, rtol=0, atol=0)
    adam, adam_again = trained.optimizers["optimizer"].state_dict(), fresh.optimizers["optimizer"].state_dict()
    assert json.loads(json.dumps(adam["param_groups"])) == adam_again["param_groups"]  # betas come back as a list
    for key, entry in adam["state"].items():
        for name, value in entry.items():
            torch.testing.assert_close(adam_again["state"][key][name], value, rtol=0, atol=0)
    torch.testing.assert_close(fresh.tensors["logits"], trained.tensors["logits"], rtol=0, atol=0)
    np.testing.assert_array_equal(fresh.obs_rms.mean, trained.obs_rms.mean)
    np.testing.assert_array_equal(fresh.obs_rms.var, trained.obs_rms.var)
    assert fresh.obs_rms.count == trained.obs_rms.count
    assert fresh.rng.random() == trained.rng.random()  # numpy's generator continues where it stopped
    assert torch.equal(torch.get_rng_state(), saved_torch_rng)  # torch's generator too (_state(1) had reseeded it)
    np.testing.assert_array_equal(fresh.assignment, trained.assignment)
    np.testing.assert_array_equal(fresh.utility, trained.utility)
    np.testing.assert_array_equal(fresh.seen, trained.seen)
    assert (fresh.global_step, fresh.iteration, fresh.extra) == (4096, 7, {"note": [1, 2]})
    assert fresh.resumed_at == [7]
