"""The layout's contracts: a torch-free environment package, one run-result schema, environments that
state their own facts, solver files that stay short and differ only where their algorithms differ."""

from __future__ import annotations

import ast
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rmdp_envs
from rmdp_envs import RunResult, e_step
from rmdp_envs.core import EVALUATION_CLASSES, FAMILIES
from rmdp_envs.files import json_text
from rmdp_envs.results import REQUIRED_KEYS, run_result_schema

ROOT = Path(__file__).resolve().parents[1]
SOLVERS = sorted((ROOT / "solvers").glob("*_ppo.py"))


def test_environment_package_imports_without_torch():
    code = "import rmdp_envs, sys, gymnasium; gymnasium.make('rmdp/HalfCheetahSpeed-v0').reset(seed=0); " \
           "assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_load_policies_is_served_lazily_by_the_training_package():
    from rmdp_train import policies
    assert rmdp_envs.load_policies is policies.load_policies
    with pytest.raises(AttributeError):
        rmdp_envs.no_such_name  # noqa: B018


def test_schema_json_run_result_is_generated_from_the_dataclass():
    schema = json.loads((ROOT / "leaderboard" / "schema.json").read_text())
    assert schema["$defs"]["run_result"] == run_result_schema(), (
        "leaderboard/schema.json is out of date with rmdp_envs.results.RunResult; regenerate $defs.run_result from "
        "run_result_schema()")


def test_run_result_round_trips_and_keeps_extra_keys(tmp_path):
    result = RunResult(env_id="rmdp/ResourceGathering-v0", env_kwargs={}, population={"kind": "cells", "params": [[0.0]]},
                       solver="x", commit=None, seed=0, k=1, total_timesteps=10, wall_time_s=1.0, utility=np.zeros((1, 1)),
                       assignment=np.zeros(1, dtype=np.int64), welfare=0.0, best_welfare=0.0, extra={"phase": 2})
    result.write(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["phase"] == 2 and data["utility"] == [[0.0]] and set(REQUIRED_KEYS) <= set(data)
    again = RunResult.read(tmp_path)
    assert again.extra == {"phase": 2} and again.to_dict() == data
    del data["welfare"]
    with pytest.raises(ValueError, match="welfare"):
        RunResult.from_dict(data)
    with pytest.raises(ValueError, match="repeats"):
        RunResult(**{**again.__dict__, "extra": {"seed": 3}}).to_dict()


def test_json_text_is_json_with_lists_of_numbers_on_one_line():
    data = {"utility": [[0.5, 1.0], [2.0, -3.25]], "history": [{"step": 1, "x": [1, 2]}, {}], "empty": {}, "none": None,
            "nested": {"a": {"b": [True, "s"]}}, 7: "int key"}
    text = json_text(data)
    assert json.loads(text) == json.loads(json.dumps(data))
    assert '"utility": [[0.5, 1.0], [2.0, -3.25]]' in text and '\n    {\n      "step": 1,' in text
    with pytest.raises(ValueError, match="JSON compliant"):
        json_text({"x": [float("nan")]})


@pytest.mark.parametrize("env_id", rmdp_envs.registered_ids())
def test_every_environment_states_its_facts(env_id):
    meta = rmdp_envs.env_metadata(env_id)
    assert meta.get("rmdp_evaluation") in EVALUATION_CLASSES
    assert meta.get("rmdp_family") in FAMILIES
    env = rmdp_envs.make(env_id)
    upper = rmdp_envs.upper_welfare(env)
    env.close()
    assert upper["welfare"] is not None and upper["welfare"] > 0 and upper["source"]


def test_tabular_upper_reference_is_the_exact_full_personalization():
    from leaderboard.references import upper_welfare
    from rmdp_envs.exact import full_personalization
    env = rmdp_envs.make("rmdp/Chain-v0")
    assert upper_welfare("rmdp/Chain-v0", {})["welfare"] == pytest.approx(full_personalization(env))
    assert "exact" in upper_welfare("rmdp/Chain-v0", {})["source"]


def test_leaderboard_never_decides_by_the_spelling_of_an_env_id():
    for path in (ROOT / "leaderboard").glob("*.py"):
        text = path.read_text()
        hits = re.findall(r"(startswith|endswith)\([^)]*(rmdp/|Speed|Gathering|Tabular|Chain|Grid)", text)
        hits += re.findall(r'(==|!=|\bin)\s*\(?["\']rmdp/', text)
        assert not hits, f"{path.name} decides by env id spelling: {hits}"


@pytest.mark.parametrize("path", SOLVERS, ids=lambda p: p.name)
def test_solver_files_are_short_and_import_no_solver(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 350
    imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {p.stem for p in SOLVERS} and "solvers" not in imported


def _code_lines(path: Path) -> list[str]:
    """The file's code without docstrings and comments (ast round trip)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [stmt for stmt in body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                                                       and isinstance(stmt.value.value, str))] or [ast.Pass()]
    return ast.unparse(tree).splitlines()


def test_em_and_random_differ_only_in_the_assignment_rule():
    em, rnd = (_code_lines(ROOT / "solvers" / f"{name}_ppo.py") for name in ("em", "random"))
    changed = [line for line in difflib.unified_diff(em, rnd, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    rule = ("assignment", "e_step", "warm_start", "SOLVER", "Run(args, SOLVER", "import math", "flips", "pass",
            "split", "empty", "write_result")  # EM's --empty-policy and the splits it records
    assert changed and all(any(word in line for word in rule) for line in changed), "\n".join(changed)


# ----------------------------------------------------------------------------- the one E-step

def test_e_step_moves_users_to_their_best_policy_and_keeps_ties():
    utility = np.array([[1.0, 0.0, 0.5, 0.2],
                        [0.0, 1.0, 0.5, 0.1]])
    assert e_step(utility, np.array([1, 0, 1, 1])).tolist() == [0, 1, 1, 0]  # user 2 ties: stays on policy 1
    assert e_step(utility, np.array([0, 0, 0, 1])).tolist() == [0, 1, 0, 0]


def test_e_step_never_empties_a_policy_and_refills_with_the_cheapest_move():
    utility = np.array([[1.0, 1.0, 1.0],
                        [0.0, 0.9, 0.5]])
    new = e_step(utility, np.array([0, 1, 1]))
    assert np.bincount(new, minlength=2).min() >= 1
    assert new.tolist() == [0, 1, 0]  # user 1 loses 0.1 by staying, user 2 would lose 0.5


def test_e_step_split_rule_leaves_the_emptied_policy_for_split_largest_groups():
    utility = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                        [5.0, 4.0, 3.0, 2.0, 1.0],
                        [0.0, 0.0, 0.0, 0.0, 9.0]])
    new = e_step(utility, np.array([0, 1, 1, 1, 2]), empty="split")
    assert new.tolist() == [1, 1, 1, 1, 2]  # policy 0's one user leaves it; the paper's rule would hand it back
    assert e_step(utility, np.array([0, 1, 1, 1, 2])).tolist() == [0, 1, 1, 1, 2]
    split, pairs = rmdp_envs.split_largest_groups(utility, new)
    assert pairs == [(0, 1)]  # the empty policy copies the largest group's policy ...
    assert split.tolist() == [1, 1, 0, 0, 2]  # ... and takes the half of that group it serves worst (utility 3, 2)
    with pytest.raises(ValueError, match="empty must be one of"):
        e_step(utility, new, empty="drop")


def test_split_largest_groups_fills_every_empty_policy_and_keeps_full_ones():
    rng = np.random.default_rng(0)
    utility = rng.random((4, 9))
    split, pairs = rmdp_envs.split_largest_groups(utility, np.zeros(9, dtype=int))
    assert [p for p, _ in pairs] == [1, 2, 3] and np.bincount(split, minlength=4).min() >= 1
    assert pairs[0] == (1, 0)  # the first split halves the one group: 4 of 9 users
    full = np.arange(9) % 4
    assert rmdp_envs.split_largest_groups(utility, full) == (pytest.approx(full), [])
    with pytest.raises(ValueError, match="no group has two"):
        rmdp_envs.split_largest_groups(rng.random((3, 2)), np.array([0, 1]))


def test_e_step_tolerance_ignores_float_noise():
    utility = np.array([[1.0, 1.0 + 1e-15], [1.0 + 1e-15, 1.0]])
    assert e_step(utility, np.array([0, 1]), tol=1e-12).tolist() == [0, 1]
    assert e_step(utility, np.array([0, 1])).tolist() == [1, 0]
