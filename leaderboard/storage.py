"""The board on disk: ``<board>/submissions/<id>/`` entries, written atomically, read back sorted.

Layout of a board directory (``leaderboard/`` by default, ``--board-dir`` or ``$RMDP_BOARD_DIR``)::

    submissions/<id>/submission.json          the verified submission (schema.json)
    submissions/<id>/policies/seed-<s>/...     policies.json + policies.safetensors of each run
    reference_points.json                      W_random and W_upper of every benchmark
    README.md, site/index.html, site/*.svg     written by ``render``
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rmdp_envs.files import POLICY_FILES

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
#: The hint for a command that needs a checkout of rmdp (its board, its solver files, its git history).
CHECKOUT_HINT = "a checkout of rmdp (git clone, then make install)"


def in_checkout() -> bool:
    """Whether this package runs from a checkout of rmdp (its solvers and pyproject beside it), not from an installed
    wheel, whose ``leaderboard/`` folder lies in site-packages: no board to write into, no solver files to run."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "solvers").is_dir()
SUBMISSION_FILE = "submission.json"


def board_dir(path: str | Path | None = None) -> Path:
    """The board root: ``path``, else ``$RMDP_BOARD_DIR``, else the ``leaderboard/`` package folder of a checkout
    (:class:`BoardError` in an installed package: its folder is site-packages, which an upgrade wipes)."""
    if path is None:
        path = os.environ.get("RMDP_BOARD_DIR")
        if not path and not in_checkout():
            raise BoardError(f"no board given: the default board is the project's own, in {CHECKOUT_HINT}, and this "
                             f"rmdp is installed at {PACKAGE_DIR}; pass --board-dir DIR (or set RMDP_BOARD_DIR)")
        path = path or PACKAGE_DIR
    return Path(path).resolve()


def board_flag(board: Path) -> str:
    """``" --board-dir PATH"`` for a command printed about ``board`` (empty for the project's own board), so a hint
    pasted as it is acts on the board it was printed for; PATH relative to the working folder where it lies below it."""
    board = Path(board).resolve()
    if board == PACKAGE_DIR:
        return ""
    try:
        shown = board.relative_to(Path.cwd().resolve())
    except ValueError:
        shown = board
    return f" --board-dir {shown}"


def submissions_dir(board: Path) -> Path:
    return board / "submissions"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, no NaN: the text that hashes identify."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def short_hash(data: Any, length: int = 12) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:length]


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_submission(board: Path, submission: dict[str, Any], policy_dirs: dict[str, Path]) -> Path:
    """Write ``submissions/<id>/`` in one step: build it in a hidden temporary folder, then rename.

    ``policy_dirs`` maps each run's ``policies.path`` (``policies/seed-<s>``) to the run folder whose
    ``policies.json`` and ``policies.safetensors`` are copied. Fails if ``<id>`` exists.
    """
    root = submissions_dir(board)
    root.mkdir(parents=True, exist_ok=True)
    final = root / submission["id"]
    if final.exists():
        raise FileExistsError(f"duplicate: submission {submission['id']} already exists in {root}")
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{submission['id']}.", suffix=".tmp"))
    try:
        for rel, src in sorted(policy_dirs.items()):
            dst = tmp / rel
            dst.mkdir(parents=True)
            for name in POLICY_FILES:
                shutil.copyfile(src / name, dst / name)
        (tmp / SUBMISSION_FILE).write_text(dump_json(submission))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        os.rename(tmp, final)  # atomic on one filesystem; fails if final appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class BoardError(ValueError):
    """A board that cannot be found, or a stored submission file that is not a JSON object (hand-edited,
    truncated): named in one line, not a traceback."""


def submission_folders(board: Path) -> list[Path]:
    """The folders of the stored submissions, sorted by id (hidden temporary folders are skipped)."""
    root = submissions_dir(board)
    if not root.is_dir():
        return []
    return [entry for entry in sorted(root.iterdir())
            if not entry.name.startswith(".") and (entry / SUBMISSION_FILE).is_file()]


def _reject_constant(name: str):
    raise ValueError(f"contains {name} (NaN and infinite values are not allowed)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"contains the non-finite number {text} (NaN and infinite values are not allowed)")
    return value


def loads_finite(text: str) -> Any:
    """JSON without NaN, Infinity or numbers that overflow to infinity (Python's json reads all three)."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def read_submission(folder: Path) -> dict[str, Any]:
    """One stored submission; :class:`BoardError` naming the file where it is not readable JSON without NaN or
    infinities (a hand edit's NaN made a verdict "significant"), or not an object."""
    path = folder / SUBMISSION_FILE
    try:
        sub = loads_finite(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise BoardError(f"{folder.name}: {SUBMISSION_FILE} is not readable, finite JSON ({type(e).__name__}: "
                         f"{str(e)[:200]})") from e
    if not isinstance(sub, dict):
        raise BoardError(f"{folder.name}: {SUBMISSION_FILE} holds a JSON {type(sub).__name__}, not an object")
    return sub


def load_submissions(board: Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Every stored submission, sorted by id (hidden temporary folders are skipped).

    A ``submission.json`` that is not readable JSON, or not an object, raises :class:`BoardError` naming it; with
    ``problems`` (``verify``: every problem of the board in one report) it is appended there and left out instead.
    """
    out = []
    for folder in submission_folders(board):
        try:
            out.append(read_submission(folder))
        except BoardError as e:
            if problems is None:
                raise
            problems.append(str(e))
    return out


def snapshot(board: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``submissions/`` (tests: nothing changed)."""
    root = submissions_dir(board)
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
