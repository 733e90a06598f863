"""The names of the files a run writes, and the one way this project writes a file: atomically.

A run folder holds ``result.json`` (:class:`rmdp_envs.results.RunResult`), the saved policies
(``policies.json`` spec + ``policies.safetensors`` weights) and ``checkpoint.safetensors``. Every
writer goes through :func:`atomic_write`: a temporary file in the same folder, then a rename, so
a reader (or a run killed mid-write) never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

RESULT_FILE = "result.json"
POLICY_SPEC_FILE = "policies.json"
POLICY_WEIGHTS_FILE = "policies.safetensors"
#: What ``--save-model`` writes and the leaderboard copies: everything needed to act, no pickle.
POLICY_FILES = (POLICY_SPEC_FILE, POLICY_WEIGHTS_FILE)
CHECKPOINT_FILE = "checkpoint.safetensors"


def writable_place(path: str | Path, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written, or None where it can: checked before work whose result goes there.

    ``folder``: ``path`` is a folder to create or fill (a run folder's parent, a board); else a file, which must not
    be an existing folder. Either way its nearest existing ancestor must be a folder this process can write a file
    in (tried: an empty probe file, removed at once; ``mkdir -p`` makes the rest)."""
    path = Path(path)
    if not folder and path.is_dir():
        return f"{path} is a folder, not a file"
    place = path if folder else path.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        return f"{place} is a file, not a folder"
    try:  # a real probe, not os.access: root passes that everywhere, /proc included
        fd, probe = tempfile.mkstemp(dir=place, prefix=".rmdp-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{place} is not writable ({e.strerror})"
    return None


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path`` (made world-readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and boards are meant to be read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (strict: NaN and infinity are rejected), laid out by :func:`json_text`."""
    atomic_write_text(path, json_text(data) + "\n")


def json_text(data: Any) -> str:
    """``json.dumps(data, indent=2)``'s layout for objects, but a list without objects in it on one line.

    The same JSON value (``json.loads`` gives it back). Python's indenting encoder is written in
    Python and puts every number on a line of its own; a result at n = 100,000 users (its
    population and utility matrix, 4M numbers) took 3.3 s and 115 MB that way, where the C encoder
    writes such lists (``indent=None``) in about half the time and space.
    """
    return _layout(data, 0)


def _layout(value: Any, level: int) -> str:
    pad, end = "  " * (level + 1), "\n" + "  " * level
    if isinstance(value, dict) and value:
        items = (f"{pad}{json.dumps(key if isinstance(key, str) else json.dumps(key))}: {_layout(item, level + 1)}"
                 for key, item in value.items())
        return "{\n" + ",\n".join(items) + end + "}"
    if isinstance(value, (list, tuple)) and any(issubclass(kind, dict) for kind in set(map(type, value))):  # C-speed scan
        return "[\n" + ",\n".join(pad + _layout(item, level + 1) for item in value) + end + "]"
    return json.dumps(value, allow_nan=False)
