"""Periodic, atomic training checkpoints without pickle.

One file, ``checkpoint.safetensors``: every tensor (network weights, optimizer moments, RNG
states, normalizer statistics) as a safetensors entry and everything else (counters, assignment,
evaluation history, numpy RNG state) as JSON in the file's metadata. Writing goes through a
temporary file and a rename, so a run killed at any moment leaves either the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rmdp_envs.policies import _atomic_write

CHECKPOINT_FILE = "checkpoint.safetensors"
_STATE_KEY = "rmdp_state"


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict under ``prefix/``."""
    return {f"{prefix}/{name}": t for name, t in module.state_dict().items()}


def load_module(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`module_tensors` (strict: every key must be present)."""
    module.load_state_dict({name[len(prefix) + 1:]: t for name, t in tensors.items() if name.startswith(prefix + "/")})


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors and JSON (param groups, scalar entries)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in sd["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith(prefix + "/"):
            idx, key = name[len(prefix) + 1:].split("/", 1)
            state.setdefault(int(idx), {})[key] = t
    for idx, entries in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Atomically write ``tensors`` and the JSON-serializable ``state`` to ``run_dir/checkpoint.safetensors``."""
    path = Path(run_dir) / CHECKPOINT_FILE
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    metadata = {_STATE_KEY: json.dumps(state, allow_nan=False)}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the checkpoint of ``run_dir``: ``(tensors, state)``."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {run_dir} ({CHECKPOINT_FILE} is missing)")
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        state = json.loads(f.metadata()[_STATE_KEY])
    return tensors, state


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_FILE).is_file()
