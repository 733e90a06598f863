"""The ``result.json`` of a training run and the provenance it carries (code version, machine)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from rmdp_envs.policies import atomic_write_json

RESULT_FILE = "result.json"
#: Keys every solver's result.json holds (a contract for the benchmark and leaderboard tools).
REQUIRED_KEYS = ("env_id", "env_kwargs", "population", "solver", "commit", "seed", "k", "total_timesteps",
                 "wall_time_s", "utility", "assignment", "welfare", "best_welfare")


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit hash of the repository holding ``path`` (this package by default), or None.

    ``-dirty`` is appended when tracked files differ from that commit: the hash alone would claim
    code that did not produce the result.
    """
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or len(commit) != 40:
        return None
    return commit + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")


def hardware() -> str:
    """A one-line description of the machine: CPU model, cores, accelerator."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"
    try:
        import torch
        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return text


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_result(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Atomically write ``run_dir/result.json``; checks the required keys are present."""
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        raise ValueError(f"result is missing keys {missing}")
    path = Path(run_dir) / RESULT_FILE
    atomic_write_json(path, _plain(result))
    return path
