"""Periodic, atomic training checkpoints without pickle.

One file, ``checkpoint.safetensors``: every tensor (network weights, optimizer moments, RNG
states, normalizer statistics) as a safetensors entry and everything else (counters, assignment,
evaluation history, numpy RNG state) as JSON in the file's metadata. Writing goes through a
temporary file and a rename, so a run killed at any moment leaves either the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rmdp_envs.files import CHECKPOINT_FILE, atomic_write
from rmdp_train.cli import fail
from rmdp_train.normalization import RunningMeanStd
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
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the checkpoint of ``run_dir``: ``(tensors, state)``."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"no such run folder: {run_dir}")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {run_dir} ({CHECKPOINT_FILE} is missing)")
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        state = json.loads(f.metadata()[_STATE_KEY])
    return tensors, state


def checkpoint_iteration(run_dir: str | Path) -> int:
    """The iteration the checkpoint of ``run_dir`` was written after, read from its header alone (no tensor)."""
    with safe_open(str(Path(run_dir) / CHECKPOINT_FILE), framework="pt") as f:
        return int(json.loads(f.metadata()[_STATE_KEY])["iteration"])


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_FILE).is_file()


def process_age_s() -> float | None:
    """Seconds since this process started, from ``/proc`` (to the kernel's clock tick, 10 ms); None where there is none."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the command's name
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class TrainState:
    """Everything a run needs to continue where it stopped, besides its arguments: one checkpoint.

    Torch objects (``modules``, ``optimizers``, loose ``tensors`` such as end-to-end's assignment
    logits), the observation normalizer, both random generators, the counters, and the
    algorithm's arrays (``assignment``, the utility estimate ``utility[p, i]`` and which policies
    have ``seen`` a finished episode); ``extra`` holds further JSON-able algorithm state.
    :meth:`save` writes them all to ``checkpoint.safetensors``; :meth:`load` restores them in place.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    obs_rms: RunningMeanStd
    rng: np.random.Generator
    assignment: np.ndarray
    utility: np.ndarray
    seen: np.ndarray
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    global_step: int = 0
    iteration: int = 0
    next_eval: int = 0
    eval_history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    """seconds spent by earlier processes of this run (a resumed run adds its own)"""
    started: float = field(default_factory=time.time)
    """when this process started its clock (:meth:`start_clock`)"""
    resumed_at: list = field(default_factory=list)
    """the iterations from which later processes of this run continued (:meth:`load` adds one): a resumed run trains
    on fresh episodes from there, so retraining it in one go gives other numbers; ``leaderboard reproduce`` replays
    the same stops"""
    phase_seconds: dict = field(default_factory=dict)
    """wall seconds by phase ("rollout", "learning", "evaluation"; the family's "selection"), over all processes of
    the run (:meth:`lap`)"""
    rollout_seconds: dict = field(default_factory=dict)
    """where the rollout phase's time went with ``--rollout workers`` (:meth:`add_rollout_seconds`): the main
    process's seconds before, waiting for and after the workers, and each worker's own (its loop, MuJoCo's steps, the
    per-step barrier), summed over rollouts and processes of the run"""
    start_up_s: float | None = None
    """this process's seconds from its start (``/proc``; None elsewhere) to :meth:`start_clock`: imports, the env
    workers' start, building the learner"""
    _mark: float = field(default_factory=time.time)

    def start_clock(self) -> None:
        self.started = self._mark = time.time()
        self.start_up_s = process_age_s()

    def add_rollout_seconds(self, main: dict[str, float], workers: list[dict[str, float]]) -> None:
        """Add one rollout's timings: ``main`` the main process's phases, ``workers`` one dict per worker."""
        totals = self.rollout_seconds
        for key, seconds in main.items():
            totals[key] = totals.get(key, 0.0) + seconds
        mine = totals.setdefault("workers", [])
        mine.extend({} for _ in range(len(workers) - len(mine)))  # a resumed run may have more workers
        for total, worker in zip(mine, workers):
            for key, seconds in worker.items():
                total[key] = total.get(key, 0.0) + seconds

    def rounded_rollout_seconds(self) -> dict:
        """:attr:`rollout_seconds` to the millisecond, for ``result.json``."""
        return {key: [{k: round(v, 3) for k, v in worker.items()} for worker in value] if key == "workers" else round(value, 3)
                for key, value in self.rollout_seconds.items()}

    def lap(self, phase: str, until: float | None = None) -> None:
        """Charge the wall time since the last lap (or :meth:`start_clock`) up to ``until`` (default: now) to ``phase``.

        The samplers charge "learning" when a rollout starts and "rollout" when it ends, and
        :meth:`rmdp_train.run.Run.record_eval` charges "evaluation": ``result.json``'s ``phase_seconds``
        then says where a run's time went without a profiler (start-up is outside the clock).
        """
        end = time.time() if until is None else until
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + max(0.0, end - self._mark)
        self._mark = max(self._mark, end)

    def elapsed(self) -> float:
        """Wall-clock seconds of the whole run so far, over all its processes."""
        return self.wall_time_s + time.time() - self.started

    def save(self, run_dir: str | Path) -> Path:
        tensors = {"obs_rms/mean": torch.as_tensor(self.obs_rms.mean), "obs_rms/var": torch.as_tensor(self.obs_rms.var),
                   "rng/torch": torch.get_rng_state()}
        for name, module in self.modules.items():
            tensors.update(module_tensors(name, module))
        meta = {}
        for name, optimizer in self.optimizers.items():
            opt_tensors, meta[name] = optimizer_state(name, optimizer)
            tensors.update(opt_tensors)
        tensors.update({name: t.detach() for name, t in self.tensors.items()})
        # the per-user arrays as tensors: JSON of k x n floats would cost seconds and GBs at n = 10^6
        tensors.update({"state/assignment": torch.as_tensor(self.assignment, dtype=torch.int64),
                        "state/utility": torch.as_tensor(self.utility, dtype=torch.float64),
                        "state/seen": torch.as_tensor(self.seen, dtype=torch.bool)})
        return save_checkpoint(run_dir, tensors, {
            "optimizers": meta, "obs_rms_count": self.obs_rms.count, "numpy_rng": self.rng.bit_generator.state,
            "global_step": self.global_step, "iteration": self.iteration, "wall_time_s": self.elapsed(),
            "next_eval": self.next_eval, "eval_history": self.eval_history, "extra": self.extra,
            "phase_seconds": self.phase_seconds, "rollout_seconds": self.rollout_seconds, "resumed_at": self.resumed_at})

    def load(self, run_dir: str | Path) -> None:
        """Restore the run in ``run_dir``; one ``error:`` line (exit status 2) where its checkpoint does not fit the
        networks and arrays its ``args.json`` builds (an edited ``args.json``: torch's size-mismatch traceback)."""
        tensors, state = load_checkpoint(run_dir)
        try:
            self._load(tensors, state)
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            fail(f"--resume {run_dir}: its checkpoint does not fit the run its args.json describes (was args.json "
                 f"edited?): {first}")

    def _load(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        for name, module in self.modules.items():
            load_module(name, module, tensors)
        for name, optimizer in self.optimizers.items():
            load_optimizer(name, optimizer, tensors, state["optimizers"][name])
        with torch.no_grad():
            for name, t in self.tensors.items():
                t.copy_(tensors[name])
        self.obs_rms.load_state_dict({"mean": tensors["obs_rms/mean"].numpy(), "var": tensors["obs_rms/var"].numpy(),
                                      "count": state["obs_rms_count"]})
        torch.set_rng_state(tensors["rng/torch"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.assignment = tensors["state/assignment"].numpy().astype(np.int64)
        self.utility = tensors["state/utility"].numpy().astype(np.float64)
        self.seen = tensors["state/seen"].numpy().astype(bool)
        self.global_step, self.iteration, self.wall_time_s = state["global_step"], state["iteration"], state["wall_time_s"]
        self.next_eval, self.eval_history, self.extra = state["next_eval"], state["eval_history"], state["extra"]
        self.phase_seconds = dict(state.get("phase_seconds", {}))  # checkpoints written before phases were kept have none
        self.rollout_seconds = dict(state.get("rollout_seconds", {}))
        self.resumed_at = [*state.get("resumed_at", []), self.iteration]
