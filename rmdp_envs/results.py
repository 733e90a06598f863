"""The run-result contract: :class:`RunResult`, what every solver writes to ``result.json``.

Solvers build a :class:`RunResult` and :meth:`~RunResult.write` it; the leaderboard reads it back
with :meth:`~RunResult.read` and nothing else (no second spelling of any key). The JSON schema of
the file (``$defs/run_result`` in ``leaderboard/schema.json``) is generated from this dataclass by
:func:`run_result_schema`, and a test keeps the two equal. Also here: the provenance every result
carries (code version, machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from rmdp_envs.files import RESULT_FILE, atomic_write_json


def _ref(name: str) -> dict[str, Any]:
    return {"schema": {"$ref": f"#/$defs/{name}"}}


@dataclass
class RunResult:
    """One training run, evaluated at its end (or mid-run, with ``finished=False``).

    The first 13 fields are required (earlier issues fixed their names); the rest are provenance
    and diagnostics. Solver-specific keys (e.g. clustering's ``phase``) go to ``extra`` and are
    written at the top level beside the others.
    """

    env_id: str
    env_kwargs: dict
    population: dict = field(metadata=_ref("population"))
    solver: str = field(metadata=_ref("solver_name"))
    commit: Optional[str]
    seed: int
    k: int
    total_timesteps: int = field(metadata={"schema": {"type": "integer", "minimum": 1}})
    wall_time_s: float = field(metadata={"schema": {"type": "number", "minimum": 0}})
    utility: list = field(metadata={**_ref("matrix"), "doc": "(k, n): mean return of user i under policy p"})
    assignment: list = field(metadata={"schema": {"type": "array", "minItems": 1, "items": {"type": "integer"}}})
    welfare: float  # under the solver's own assignment
    best_welfare: float  # each user takes the policy best for it on the same episodes
    n_agents: Optional[int] = None
    transitions: Optional[int] = None
    transitions_per_s: Optional[float] = None
    best_assignment: Optional[list] = None
    eval_episodes: Optional[int] = field(default=None, metadata={"schema": {"type": ["integer", "null"], "minimum": 1}})
    eval_seed: Optional[int] = None
    finished: bool = True
    eval_history: list = field(default_factory=list)
    hardware: Optional[str] = None
    torch_threads: Optional[int] = None
    run_name: Optional[str] = None
    rmdp_version: Optional[str] = None
    args: dict = field(default_factory=dict)  # every solver flag, as run (the hyperparameters)
    versions: dict = field(default_factory=dict)  # the libraries that change results (library_versions())
    extra: dict = field(default_factory=dict, metadata={"flatten": True})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "extra"}
        clash = sorted(set(self.extra) & set(out))
        if clash:
            raise ValueError(f"RunResult.extra repeats the fields {clash}")
        return {**out, **_plain(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [f.name for f in _required_fields() if f.name not in data]
        if missing:
            raise ValueError(f"{RESULT_FILE} is missing the keys {missing}")
        return cls(**{key: value for key, value in data.items() if key in names},
                   extra={key: value for key, value in data.items() if key not in names})

    def write(self, run_dir: str | Path) -> Path:
        """Atomically write ``run_dir/result.json``."""
        path = Path(run_dir) / RESULT_FILE
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, run_dir: str | Path) -> "RunResult":
        return cls.from_dict(json.loads((Path(run_dir) / RESULT_FILE).read_text()))


def _required_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(RunResult)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


#: Keys every solver's result.json holds (a contract for the benchmark and leaderboard tools).
REQUIRED_KEYS = tuple(f.name for f in _required_fields())

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def run_result_schema() -> dict[str, Any]:
    """The JSON schema of ``result.json``, generated from :class:`RunResult` (extra keys allowed)."""
    hints = typing.get_type_hints(RunResult)
    properties = {}
    for f in dataclasses.fields(RunResult):
        if f.metadata.get("flatten"):
            continue
        if "schema" in f.metadata:
            properties[f.name] = f.metadata["schema"]
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if args else hint
        kind = _JSON_TYPES[typing.get_origin(base) or base]
        properties[f.name] = {"type": [kind, "null"] if args else kind}
    return {
        "description": "A solver's result.json (generated from rmdp_envs.results.RunResult; solver-specific extra keys are allowed).",
        "type": "object",
        "required": list(REQUIRED_KEYS),
        "properties": properties,
    }


def has_final_result(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run's final ``result.json`` (an evaluation during training writes one with
    ``finished: false``; a missing or unreadable file is no final result)."""
    try:
        return json.loads((Path(run_dir) / RESULT_FILE).read_text()).get("finished", True) is not False
    except (OSError, ValueError):
        return False


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit hash of the checkout of rmdp holding ``path`` (this package by default), or None.

    ``-dirty`` is appended when tracked files differ from that commit: the hash alone would claim
    code that did not produce the result. None where that repository does not track this very file: rmdp
    installed into a virtual environment inside another project's repository would otherwise record that
    project's commit as the code of the run.
    """
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(Path(__file__).resolve())], cwd=cwd,
                                 capture_output=True, text=True, timeout=5)
        if tracked.returncode != 0:
            return None
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or len(commit) != 40:
        return None
    return commit + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")


#: Distributions whose version can change a run's numbers (recorded in every result).
PINNED = ("numpy", "gymnasium", "mujoco", "pettingzoo", "torch", "scikit-learn", "threadpoolctl", "rmdp")


def library_versions() -> dict[str, str | None]:
    """``{distribution: version}`` of :data:`PINNED` (None where not installed), plus Python's."""
    from importlib import metadata  # noqa: PLC0415

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PINNED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(path: str | Path | None = None) -> dict[str, Any]:
    """What a benchmark's result file records of how it was made: the command line (``python`` and the script's
    arguments as typed), the code (:func:`git_commit` of ``path``), the machine (:func:`hardware`), the versions that
    can change numbers (:func:`library_versions`) and the UTC time; a number quoted from the file can be made again."""
    import datetime  # noqa: PLC0415

    return {"command": shlex.join(["python", *sys.argv]), "commit": git_commit(path), "machine": hardware(),
            "versions": library_versions(),
            "utc": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}


def available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None where the file does not exist)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity set where the OS has one (``taskset`` pins a share of a
    bigger host), else the machine's logical cores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hardware() -> str:
    """A one-line description of the machine: CPU model, cores, accelerator (if torch is loaded)."""
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
    gpus = nvidia_gpus()
    torch = sys.modules.get("torch")  # never import torch (or start CUDA) just to describe the machine
    try:
        if not gpus and torch is not None and torch.cuda.is_initialized():
            gpus = [torch.cuda.get_device_name(0)]
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return text + (f", GPU {gpus[0]}" if gpus else "")


def nvidia_gpus(root: str | Path = "/proc/driver/nvidia/gpus") -> list[str]:
    """The NVIDIA GPUs' model names as the driver lists them in ``/proc``: asking CUDA instead initializes its driver,
    seconds of a CPU run's start-up on a GPU host (``torch.cuda.is_available``)."""
    names = []
    for info in sorted(Path(root).glob("*/information")):
        try:
            models = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("Model:")]
        except OSError:
            continue
        names += models[:1]
    return names


#: Types json writes as they are: a list of only these needs no conversion (a population's rows, n of them).
_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(map(_JSON_SCALARS.__contains__, map(type, value))):  # in C: no Python call per element
            return list(value)
        return [_plain(v) for v in value]
    return value
