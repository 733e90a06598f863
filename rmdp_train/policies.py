"""k policies as one network, saved as weights (safetensors) plus a JSON spec, and reloaded.

Solvers build their actor from :class:`MultiPolicyActor` so that :func:`load_policies` can
rebuild any saved run without importing a solver file and without unpickling anything.
Inputs are grouped by policy: a tensor of shape ``(k, B, obs_dim)`` holds ``B`` observations
for each of the ``k`` policies, and every layer is one batched matrix product over policies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rmdp_envs.files import POLICY_SPEC_FILE as SPEC_FILE
from rmdp_envs.files import POLICY_WEIGHTS_FILE as WEIGHTS_FILE
from rmdp_envs.files import RESULT_FILE, atomic_write, atomic_write_text, json_text
from rmdp_envs.results import RunResult

SPEC_FORMAT = "rmdp-policies-v1"


def orthogonal_(weight: torch.Tensor, std: float) -> None:
    """``nn.init.orthogonal_`` on one thread, whatever ``torch.set_num_threads`` says: its QR decomposition rounds the
    last bits differently with 2 threads (1,353 of a 64x64 matrix's 4,096 entries), so ``--torch-threads 2`` trained
    other policies from the same seed; the draws from torch's generator are the same either way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        nn.init.orthogonal_(weight, std)
    finally:
        torch.set_num_threads(threads)


class GroupedLinear(nn.Module):
    """``k`` independent linear layers applied to ``(k, B, in)`` inputs (orthogonal init)."""

    def __init__(self, k: int, in_features: int, out_features: int, std: float = math.sqrt(2), bias: float = 0.0):
        super().__init__()
        weight = torch.empty(k, out_features, in_features)
        for j in range(k):
            orthogonal_(weight[j], std)
        self.weight = nn.Parameter(weight.transpose(1, 2).contiguous())  # (k, in, out)
        self.bias = nn.Parameter(torch.full((k, out_features), float(bias)))

    def forward(self, x: torch.Tensor, policies: slice = slice(None)) -> torch.Tensor:
        """``x``: ``(k', B, in)`` for the ``k'`` policies that ``policies`` selects (all by default)."""
        return torch.baddbmm(self.bias[policies].unsqueeze(1), x, self.weight[policies])


def _linear(in_features: int, out_features: int, std: float = math.sqrt(2)) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class MultiPolicyActor(nn.Module):
    """The actors of ``k`` policies: tanh MLPs, either fully separate or sharing a torso.

    ``forward(obs)`` maps ``(k, B, obs_dim)`` to ``(k, B, out_dim)``: logits for a discrete
    action space, the action mean for a continuous one. ``log_std`` (``(k, act_dim)``) is the
    Gaussian policy's log standard deviation (unused for discrete actions).
    """

    def __init__(self, k: int, obs_dim: int, out_dim: int, hidden: tuple[int, ...] = (64, 64),
                 shared_torso: bool = False, discrete: bool = False, init_log_std: float = -0.5):
        super().__init__()
        # plain ints (Gymnasium's Discrete(n).n is a numpy integer): the saved spec is JSON
        self.k, self.obs_dim, self.out_dim = int(k), int(obs_dim), int(out_dim)
        self.hidden, self.shared_torso, self.discrete = tuple(int(h) for h in hidden), bool(shared_torso), bool(discrete)
        sizes = (obs_dim,) + self.hidden
        layers = [(_linear(a, b) if shared_torso else GroupedLinear(k, a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        self.torso = nn.ModuleList(layers)
        self.head = GroupedLinear(k, sizes[-1], out_dim, std=0.01)
        self.log_std = nn.Parameter(torch.full((k, out_dim), float(init_log_std)), requires_grad=not discrete)

    def forward(self, obs: torch.Tensor, policies: slice = slice(None)) -> torch.Tensor:
        """``policies``: run only these policies on ``(k', B, obs_dim)`` (a rollout worker's share)."""
        return self.apply_layers(self.layers(policies), obs)

    def layers(self, policies: slice = slice(None)) -> list[tuple[bool, torch.Tensor, torch.Tensor]]:
        """Every layer's ``(grouped, weight, bias)`` for ``policies``, as :meth:`apply_layers` takes them.

        A rollout worker runs the same policies every step of a rollout: it takes these once and calls
        :meth:`apply_layers` per step, 13 us instead of the module call's 33 (3 policies, 8 rows each).
        """
        return [(True, layer.weight[policies], layer.bias[policies].unsqueeze(1)) if isinstance(layer, GroupedLinear)
                else (False, layer.weight, layer.bias) for layer in list(self.torso) + [self.head]]

    @staticmethod
    def apply_layers(layers: list, obs: torch.Tensor) -> torch.Tensor:
        """The tanh MLP of :meth:`layers` on ``obs``: what ``forward`` computes, the same operations."""
        h = obs
        for index, (grouped, weight, bias) in enumerate(layers):
            h = torch.baddbmm(bias, h, weight) if grouped else nn.functional.linear(h, weight, bias)
            if index < len(layers) - 1:
                h = torch.tanh(h)
        return h

    def architecture(self) -> dict[str, Any]:
        return {"type": "multi_policy_mlp", "k": self.k, "obs_dim": self.obs_dim, "out_dim": self.out_dim,
                "hidden": list(self.hidden), "activation": "tanh", "shared_torso": self.shared_torso,
                "discrete": self.discrete}


class ConditionedActor(nn.Module):
    """k policies that are one network conditioned on k fixed inputs (the policy-family baseline).

    ``family`` is a one-policy :class:`MultiPolicyActor` over ``obs_dim + d`` inputs; member ``j``
    is the family evaluated with the condition ``conditions[j]`` (``(k, d)``, normalized user
    parameters) appended to every observation. Acts like a :class:`MultiPolicyActor` of ``k``
    policies: ``(k, B, obs_dim) -> (k, B, out_dim)``.
    """

    def __init__(self, family: MultiPolicyActor, conditions: torch.Tensor):
        super().__init__()
        self.family = family
        self.register_buffer("conditions", torch.as_tensor(conditions, dtype=torch.float32).clone())
        self.k, self.d = self.conditions.shape
        self.obs_dim, self.out_dim, self.discrete = family.obs_dim - self.d, family.out_dim, family.discrete

    @property
    def log_std(self) -> torch.Tensor:
        return self.family.log_std.expand(self.k, -1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        k, batch = obs.shape[:2]
        cond = self.conditions.to(obs.dtype).unsqueeze(1).expand(k, batch, self.d)
        return self.family(torch.cat([obs, cond], dim=-1).reshape(1, k * batch, -1)).reshape(k, batch, -1)

    def architecture(self) -> dict[str, Any]:
        return {"type": "conditioned_mlp", "k": self.k, "family": self.family.architecture(),
                "conditions": self.conditions.tolist()}


def policy_spec(actor: MultiPolicyActor, *, env_id: str, env_kwargs: dict,
                action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                obs_mean: np.ndarray | None = None, obs_var: np.ndarray | None = None,
                obs_clip: float = 5.0, obs_epsilon: float = 1e-8, extra: dict | None = None) -> dict[str, Any]:
    """The JSON spec of ``actor`` (what :func:`save_policies` writes to ``policies.json``).

    ``PolicySet(actor, policy_spec(actor, ...))`` acts exactly as the saved and reloaded policies
    will, which lets a solver evaluate its live actor with the deployment code path.
    """
    return {
        "format": SPEC_FORMAT,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "k": actor.k,
        "architecture": actor.architecture(),
        "action": None if actor.discrete else {"low": np.asarray(action_low).tolist(), "high": np.asarray(action_high).tolist()},
        "obs_norm": None if obs_mean is None else {"mean": np.asarray(obs_mean).tolist(), "var": np.asarray(obs_var).tolist(),
                                                    "clip": float(obs_clip), "epsilon": float(obs_epsilon)},
        **(extra or {}),
    }


def save_policies(run_dir: str | Path, actor: MultiPolicyActor, *, env_id: str, env_kwargs: dict,
                  action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                  obs_mean: np.ndarray | None = None, obs_var: np.ndarray | None = None,
                  obs_clip: float = 5.0, obs_epsilon: float = 1e-8, extra: dict | None = None) -> None:
    """Save ``actor`` as ``policies.safetensors`` (weights only) and ``policies.json`` (spec).

    The spec holds the architecture, the environment, the action bounds (continuous actions are
    clipped to them) and the observation-normalization statistics (``(obs - mean) /
    sqrt(var + epsilon)``, clipped to ``[-clip, clip]``), everything needed to act.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = policy_spec(actor, env_id=env_id, env_kwargs=env_kwargs, action_low=action_low, action_high=action_high,
                       obs_mean=obs_mean, obs_var=obs_var, obs_clip=obs_clip, obs_epsilon=obs_epsilon, extra=extra)
    text = json_text(spec) + "\n"  # first: a spec that is no JSON fails before any file is written
    tensors = {name: t.detach().cpu().contiguous() for name, t in actor.state_dict().items()}
    atomic_write(run_dir / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    atomic_write_text(run_dir / SPEC_FILE, text)


class PolicySet:
    """Deterministic ``policy_fn`` of ``k`` saved policies, for :func:`rmdp_envs.evaluate`.

    Accepts observations of shape ``(k, obs_dim)`` or ``(k, m, obs_dim)`` (``batched = True``)
    and returns the greedy action (argmax of logits, or the clipped mean) of each row's policy.
    """

    batched = True

    def __init__(self, actor: MultiPolicyActor, spec: dict[str, Any]):
        self.actor = actor.eval()
        self.spec = spec
        self.k = actor.k
        self.env_id = spec["env_id"]
        self.env_kwargs = spec.get("env_kwargs") or {}
        norm = spec.get("obs_norm")
        self._norm = None if norm is None else (
            np.asarray(norm["mean"], dtype=np.float64), np.sqrt(np.asarray(norm["var"], dtype=np.float64) + norm["epsilon"]),
            float(norm["clip"]))
        action = spec.get("action")
        self._bounds = None if action is None else (np.asarray(action["low"]), np.asarray(action["high"]))

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        grouped = obs.ndim == 3
        if not grouped:
            obs = obs[:, None]
        if obs.shape[0] != self.k or obs.shape[-1] != self.actor.obs_dim:
            raise ValueError(f"observations must have shape (k={self.k}, [m,] {self.actor.obs_dim}), got {obs.shape}")
        if self._norm is not None:
            mean, std, clip = self._norm
            obs = np.clip((obs - mean) / std, -clip, clip)
        out = self.actor(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        if self.actor.discrete:
            actions = out.argmax(-1)
        else:
            actions = np.clip(out, *self._bounds).astype(np.float32)
        return actions if grouped else actions[:, 0]


def load_policies(run_dir: str | Path) -> PolicySet:
    """Rebuild the saved policies of a run directory (no solver import, no pickle)."""
    run_dir = Path(run_dir)
    spec_path, weights_path = run_dir / SPEC_FILE, run_dir / WEIGHTS_FILE
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no such run folder: {run_dir}")
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"no saved policies in {run_dir}: {path.name} is missing (train with --save-model)")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"{spec_path} has format {spec.get('format')!r}, expected {SPEC_FORMAT!r}")
    actor = _build(spec["architecture"], spec_path)
    actor.load_state_dict(load_file(str(weights_path)))
    return PolicySet(actor, spec)


def load_policies_or_fail(run_dir: str | Path) -> PolicySet:
    """:func:`load_policies` for a command line: a folder without (readable) saved policies is one ``error:`` line."""
    from rmdp_train.cli import fail  # noqa: PLC0415

    try:
        return load_policies(run_dir)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))


def _build(arch: dict[str, Any], spec_path: Path) -> nn.Module:
    """The (untrained) network a saved architecture describes."""
    if arch.get("type") == "multi_policy_mlp":
        return MultiPolicyActor(k=arch["k"], obs_dim=arch["obs_dim"], out_dim=arch["out_dim"], hidden=tuple(arch["hidden"]),
                                shared_torso=arch["shared_torso"], discrete=arch["discrete"])
    if arch.get("type") == "conditioned_mlp":
        return ConditionedActor(_build(arch["family"], spec_path), torch.tensor(arch["conditions"]))
    raise ValueError(f"unknown policy architecture {arch.get('type')!r} in {spec_path}")


# ----------------------------------------------------------------------------- what a policy folder records

def recorded_assignment(folder: Path) -> list[int] | None:
    """The solver's own assignment of the users that a run folder records: ``result.json``'s, or for a board
    submission's policy folder (``policies/seed-S-tT``) its run's ``assignment`` in ``submission.json`` (not the
    users' picks, ``deployed_assignment``): a film shows whom the solver meant each policy for."""
    if (folder / RESULT_FILE).is_file():
        return list(RunResult.read(folder).assignment)
    submission = folder.parent.parent / "submission.json"
    if submission.is_file():
        relative = folder.relative_to(folder.parent.parent).as_posix()
        for run in json.loads(submission.read_text()).get("runs", []):
            if run.get("policies", {}).get("path") == relative:
                return run.get("assignment")
    return None


def _recorded(folder: Path, name: str) -> int | None:
    """One number a policy folder's evaluation records (``"episodes"`` or ``"seed"``): a run's ``result.json``, else its
    ``args.json`` (``eval_<name>``, what its evaluations and ``--capture-video`` used), a board submission's held-out
    protocol (``protocol.<name>``); None where none says."""
    places = ((folder / RESULT_FILE, (f"eval_{name}",)), (folder / "args.json", (f"eval_{name}",)),
              (folder.parent.parent / "submission.json", ("protocol", name)))
    for path, keys in places:
        try:
            value: Any = json.loads(path.read_text())
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def recorded_eval_seed(folder: Path) -> int:
    """The first episode's reset seed that scored a policy folder (:func:`_recorded`), else 0: films and
    re-evaluations default to it."""
    seed = _recorded(folder, "seed")
    return 0 if seed is None else seed


def recorded_eval_episodes(folder: Path) -> int | None:
    """How many episodes a policy scored a policy folder (:func:`_recorded`), None where nothing says."""
    episodes = _recorded(folder, "episodes")
    return episodes if episodes is None or episodes >= 1 else None
