"""The leaderboard: submissions round-trip, bad ones are rejected naming the problem with nothing
written, render is deterministic, sweeps run locally and on a local Ray cluster."""

from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from leaderboard import __main__ as cli
from leaderboard.protocol import PROTOCOL
from leaderboard.references import upper_welfare
from leaderboard.render import collect, render, serving_cell, serving_policies, welfare_plot
from leaderboard.stats import (holm, improvement_p_value, interval, iqm, mean, normalized,
                               probability_of_improvement, relative_difference)
from leaderboard.storage import REPO_ROOT, load_submissions, snapshot
from leaderboard.submit import SubmissionError, schema_errors, submit
from leaderboard.reproduce import reproduce
from leaderboard.sweep import TASK_FILE, SweepError, Task, resumable_run, sweep
from leaderboard.testing import make_fixture_run
from leaderboard.verify import verify_board

RG = "rmdp/ResourceGathering-v0"
QUIET = lambda _m: None  # noqa: E731


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory) -> list[Path]:
    """Two seeds of a k = 2 fixture run on ResourceGathering (made once, copied by each test)."""
    root = tmp_path_factory.mktemp("fixture_runs")
    return [make_fixture_run(root / f"run-s{s}", RG, k=2, seed=s) for s in (0, 1)]


@pytest.fixture
def runs(fixture_runs, tmp_path) -> list[Path]:
    out = []
    for src in fixture_runs:
        dst = tmp_path / "runs" / src.name
        shutil.copytree(src, dst)
        out.append(dst)
    return out


@pytest.fixture
def board(tmp_path) -> Path:
    return tmp_path / "board"


def _edit_result(run: Path, **changes) -> None:
    result = json.loads((run / "result.json").read_text())
    result.update(changes)
    (run / "result.json").write_text(json.dumps(result))


# ----------------------------------------------------------------------------- round trip

def test_valid_submission_round_trips(runs, board):
    written = submit(runs, board, log=QUIET)
    assert len(written) == 1
    (sub,) = load_submissions(board)
    assert schema_errors(sub) == []
    assert sub["k"] == 2 and sub["benchmark"]["env_id"] == RG and sub["benchmark"]["n"] == 25
    assert sub["protocol"]["version"] == PROTOCOL.version
    assert [r["seed"] for r in sub["runs"]] == [0, 1]
    for run_dir, stored in zip(runs, sub["runs"]):
        claimed = json.loads((run_dir / "result.json").read_text())
        assert stored["best_welfare"] == pytest.approx(claimed["best_welfare"], abs=1e-12)
        assert stored["welfare"] == pytest.approx(claimed["welfare"], abs=1e-12)
        assert stored["assignment"] == claimed["assignment"]
        assert stored["egalitarian_welfare"] == pytest.approx(np.max(claimed["utility"], axis=0).min())
        copied = written[0] / stored["policies"]["path"]
        for name in ("policies.json", "policies.safetensors"):
            assert (copied / name).read_bytes() == (run_dir / name).read_bytes()
    assert verify_board(board, log=QUIET) == []  # the board re-checks itself from the copies
    refs = json.loads((board / "reference_points.json").read_text())
    (ref,) = refs["benchmarks"].values()
    assert ref["upper"]["welfare"] == pytest.approx(0.9356)
    assert 0.0 < ref["random"]["welfare"] < ref["upper"]["welfare"]


def test_cli_submit_and_render(runs, board, capsys):
    assert cli.main(["submit", *map(str, runs), "--board-dir", str(board)]) == 0
    assert cli.main(["render", "--board-dir", str(board)]) == 0
    readme = (board / "README.md").read_text()
    assert "| fixture | 2 |" in readme and "W_random" in readme and "W_upper = 0.9356" in readme
    # every link resolves from a board of one's own (the repository's result files are named as text there),
    # and the page shows no Markdown
    targets = re.findall(r"\]\(([^)]+)\)", readme)
    assert targets and all((board / target).exists() for target in targets), targets
    assert "`benchmarks/results/verdict_errors.json` of the rmdp repository" in readme
    page = (board / "site" / "index.html").read_text()
    assert "](" not in page and "**" not in page


# ----------------------------------------------------------------------------- rejections

def _schema(run):
    _edit_result(run, k="two")


def _tamper(run):
    result = json.loads((run / "result.json").read_text())
    _edit_result(run, best_welfare=result["best_welfare"] + 0.25)


def _nan(run):
    text = (run / "result.json").read_text()
    result = json.loads(text)
    (run / "result.json").write_text(text.replace(f'"welfare": {json.dumps(result["welfare"])}', '"welfare": NaN', 1))


def _inf(run):
    _edit_result(run, wall_time_s=math.inf)  # json.dumps writes Infinity


def _overflow(run):
    text = (run / "result.json").read_text()
    (run / "result.json").write_text(text.replace('"wall_time_s": 1.5', '"wall_time_s": 1e999'))


def _unknown_version(run):
    _edit_result(run, env_id="rmdp/ResourceGathering-v9")


def _unknown_env(run):
    _edit_result(run, env_id="rmdp/NoSuchTask-v0")


def _pickle_suffix(run):
    (run / "model.pt").write_bytes(b"not even a real checkpoint")


def _pickle_bytes(run):
    (run / "extra").mkdir()
    (run / "extra" / "state.bin").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))


def _missing_policies(run):
    (run / "policies.safetensors").unlink()


def _k_too_large(run):
    _edit_result(run, k=26)


def _nan_weights(run):
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(run / "policies.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    save_file(tensors, str(run / "policies.safetensors"))


def _unfinished(run):
    _edit_result(run, finished=False)


def _wrong_population(run):
    result = json.loads((run / "result.json").read_text())
    result["population"]["params"][0] = [9.0, 9.0]
    (run / "result.json").write_text(json.dumps(result))


BAD = {
    "schema violation": (_schema, ["schema violation", "'k'"]),
    "tampered welfare": (_tamper, ["tampered welfare", "best_welfare", "tolerance"]),
    "NaN": (_nan, ["NaN"]),
    "infinity": (_inf, ["Infinity"]),
    "overflow to infinity": (_overflow, ["non-finite", "1e999"]),
    "unknown env version": (_unknown_version, ["unknown env id or version", "ResourceGathering-v9", "ResourceGathering-v0"]),
    "unknown env id": (_unknown_env, ["unknown env id or version", "NoSuchTask"]),
    "pickle file type": (_pickle_suffix, ["pickle", "model.pt"]),
    "pickle bytes": (_pickle_bytes, ["pickle", "state.bin"]),
    "missing policies": (_missing_policies, ["missing policies", "policies.safetensors"]),
    "k outside [1, n]": (_k_too_large, ["k=26 outside [1, n] = [1, 25]"]),
    "NaN weights": (_nan_weights, ["NaN or infinite"]),
    "unfinished run": (_unfinished, ["not finished"]),
    "population mismatch": (_wrong_population, ["population"]),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_submission_rejected_and_nothing_written(kind, runs, board, capsys):
    submit([runs[1]], board, log=QUIET)  # a board that already holds something
    before = snapshot(board)
    refs_before = (board / "reference_points.json").read_bytes()
    mutate, needles = BAD[kind]
    mutate(runs[0])
    with pytest.raises(SubmissionError) as err:
        submit([runs[0]], board, log=QUIET)
    for needle in needles:
        assert needle in str(err.value), f"{kind}: {needle!r} not in {err.value}"
    assert str(runs[0]) in str(err.value)
    assert snapshot(board) == before
    assert (board / "reference_points.json").read_bytes() == refs_before
    # the CLI says the same and exits 1
    assert cli.main(["submit", str(runs[0]), "--board-dir", str(board)]) == 1
    assert needles[0] in capsys.readouterr().err
    assert snapshot(board) == before


def test_one_bad_run_rejects_the_whole_call(runs, board):
    _tamper(runs[1])
    with pytest.raises(SubmissionError, match="tampered welfare"):
        submit(runs, board, log=QUIET)
    assert snapshot(board) == {}


def test_duplicates_rejected(runs, board):
    submit(runs, board, log=QUIET)
    before = snapshot(board)
    with pytest.raises(SubmissionError, match="duplicate"):
        submit([runs[0]], board, log=QUIET)
    with pytest.raises(SubmissionError, match="duplicate"):  # a copy of the same run under another name
        copy = runs[0].parent / "copy"
        shutil.copytree(runs[0], copy)
        submit([copy], board, log=QUIET)
    assert snapshot(board) == before


def test_duplicate_within_one_call(runs, board):
    with pytest.raises(SubmissionError, match="duplicate"):
        submit([runs[0], runs[0]], board, log=QUIET)
    assert snapshot(board) == {}


def test_claims_on_other_seeds_are_verified_on_those_seeds(runs, board):
    """A run that evaluated itself on its own seeds is checked there, then scored on the protocol's."""
    import rmdp_envs
    ev = rmdp_envs.evaluate(RG, rmdp_envs.load_policies(runs[0]), 2, 1, 123)
    _edit_result(runs[0], eval_episodes=1, eval_seed=123, best_welfare=ev.best_welfare,
                 welfare=ev.welfare(json.loads((runs[0] / "result.json").read_text())["assignment"]))
    submit([runs[0]], board, log=QUIET)
    (sub,) = load_submissions(board)
    assert sub["runs"][0]["claimed"]["seed"] == 123


# ----------------------------------------------------------------------------- statistics and render

def test_intervals_are_bootstrap_and_clipped_to_what_is_possible():
    point, lo, hi = interval([0.90, 0.91, 0.92, 0.93, 0.935], mean, 0.0, 0.9356)
    assert point == pytest.approx(0.919) and lo <= point <= hi <= 0.9356
    assert interval([0.5, 0.5, 0.5], mean, 0.0, 1.0) == (0.5, 0.5, 0.5)
    assert interval([5.0]) == (5.0, None, None)
    assert interval([1.0, 2.0, 3.0, 4.0, 100.0], iqm)[0] == pytest.approx(3.0)  # the outlier is trimmed
    assert interval([1.0, 2.0, 3.0, 4.0], mean, 0.0, 2.6)[2] <= 2.6
    assert interval([1.0, 2.0, 3.0, 4.0], mean) == interval([1.0, 2.0, 3.0, 4.0], mean)  # fixed random state
    point, lo, hi = interval([0.99, 1.0, 1.1, 1.2, 1.05], mean, 0.0, 1.0)  # a seed beyond the bound stays visible
    assert point == pytest.approx(1.068) and lo == hi == 1.0
    point, lo, hi = interval([-0.3, 0.01, 0.02, 0.03, 0.04], mean, 0.0, 1.0)  # and below: clipped at low too
    assert point == pytest.approx(-0.04) and lo >= 0.0 and hi >= lo
    assert normalized(0.5, 0.0, 1.0) == 0.5
    assert normalized(0.1, 0.1, 0.9356) == 0.0
    assert normalized(1.0, 1.0, 1.0) is None


def test_probability_of_improvement_does_not_depend_on_seed_labels_and_its_test_tells_apart_only_clear_gaps():
    """All pairs of runs are compared, so reordering one solver's runs (other seed numbers) changes neither the
    probability nor its interval (a paired bootstrap gave [0.60, 0.84] or [0.04, 1.00] for these runs); the verdict
    is the exact Mann-Whitney test, which complete separation of 5 runs a side passes (p = 2/252) and a gap that
    reordering can hide does not."""
    x, y = [5.0, 6.0, 7.0, 8.0, 9.0], [4.0, 5.5, 6.5, 7.5, 8.5]
    assert probability_of_improvement(x, y) == probability_of_improvement(x, y[::-1])
    assert probability_of_improvement(x, y)[0] == pytest.approx(0.6)
    assert improvement_p_value(x, y) == pytest.approx(0.690, abs=1e-3)
    a, b = [0.9, 0.91, 0.92, 0.93, 0.94], [0.5, 0.52, 0.51, 0.53, 0.49]
    assert probability_of_improvement(a, b)[0] == 1.0 and improvement_p_value(a, b) == pytest.approx(2 / 252)
    assert improvement_p_value(a, a[::-1]) == 1.0
    assert probability_of_improvement([1.0], [0.0])[1] is None
    assert probability_of_improvement([1.0, 2.0], [1.0, 2.0])[0] == 0.5  # a tie counts half: equal runs, even odds
    assert probability_of_improvement([1.0], [1.0])[0] == 0.5
    assert probability_of_improvement([1.0, 2.0, 3.0], [0.0, 0.5])[1] is not None  # sizes may differ
    tied = improvement_p_value([0.2274] * 8 + [0.3, 0.3], [0.2274] * 10)  # tabular ties: a permutation p-value
    assert 0.0 < tied < 1.0 and tied == improvement_p_value([0.2274] * 8 + [0.3, 0.3], [0.2274] * 10)


def test_holm_controls_the_family_of_comparisons():
    assert holm([0.01, 0.04, 0.03, 0.5]) == [True, False, False, False]  # 0.03 > 0.05 / 3 after the first
    assert holm([0.008, 0.008, 0.016, 0.056]) == [True, True, True, False]
    assert holm([]) == []
    assert holm([0.013, 0.03]) == [True, True]  # 0.013 <= 0.05 / 2, then 0.03 <= 0.05 / 1: the threshold grows
    assert holm([0.04]) == [True]
    assert holm([0.001, 0.04, 0.045]) == [True, False, False]  # step-down: after 0.04 > 0.05 / 2 nothing rejects
    assert holm([0.01, float("nan")]) == [True, False]  # no evidence is not a rejection


def test_relative_difference_is_a_ratio_of_means_with_an_unpaired_interval():
    x, y = [1.1, 1.2, 1.3, 1.2, 1.15], [1.0, 1.02, 0.98, 1.0]  # unequal sizes: nothing is paired
    point, lo, hi = relative_difference(x, y)
    assert point == pytest.approx(np.mean(x) / np.mean(y) - 1)
    assert 0.1 < lo < point < hi < 0.3
    _, lo, hi = relative_difference(x, x)
    assert lo < 0 < hi
    assert relative_difference([1.0], y)[1] is None


def test_committed_board_is_intact():
    """Every committed submission passes the schema and its policy files match their hashes; the
    full re-evaluation of the ResourceGathering rows runs in .ci/run (verify --envs)."""
    board = REPO_ROOT / "leaderboard"
    if not load_submissions(board):
        pytest.skip("no submissions committed")
    assert verify_board(board, log=QUIET, evaluate=False) == []
    assert verify_board(board, log=QUIET, evaluate=False, envs=["rmdp/Nope-v0"]) == ["no submissions for rmdp/Nope-v0"]


def test_welfare_plot_offsets_overlapping_series_and_styles_budgets():
    """Two series with the same numbers stay visible (offset markers); budgets differ by line style; W_k is drawn."""
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    rows = [{"label": label, "k": k, "timesteps": steps, "best": (w, w - 0.5, w + 0.5)}
            for label, steps in (("em", 1_000_000), ("random", 4_000_000)) for k, w in [(1, 4.0), (2, 8.0)]]
    board = {"benchmark": {"env_id": "rmdp/HalfCheetahSpeed-v0", "n": 100}, "protocol": "v2", "rows": rows}
    ref = {"upper": {"welfare": 100.0}, "random": {"welfare": 2.0},
           "k_bounds": {"1": {"welfare": 9.06}, "2": {"welfare": 15.73}}}
    svg = welfare_plot(board, ref)
    assert "W_k" in svg and "(1M)" in svg and "(4M)" in svg
    assert "stroke-dasharray" in svg  # the second budget is dashed


def test_rows_of_one_solver_are_labelled_by_what_differs():
    """Two budgets of EM on one board: the legend says '1M steps' / '4M steps', not a hash soup."""
    def sub(name, k, steps, commit="a" * 40):
        run = {"seed": 0, "total_timesteps": steps, "best_welfare": 1.0, "welfare": 1.0,
               "egalitarian_welfare": 0.0, "wall_time_s": 1.0}
        return {"benchmark": {"key": "b", "env_id": "rmdp/HalfCheetahSpeed-v0"}, "solver": {"name": name, "commit": commit, "config": "c0"}, "k": k,
                "protocol": {"version": "v1"}, "runs": [run], "id": f"{name}-{k}-{steps}"}

    board = collect([sub("em", 5, 1_000_000), sub("em", 5, 4_000_000), sub("em", 2, 1_000_000),
                     sub("random", 5, 1_000_000), sub("random", 5, 1_000_000, commit="b" * 40)])
    labels = {(r["solver"], r["k"], r["timesteps"], r["commit"][0]): r["label"] for r in board["b/v1"]["rows"]}
    assert labels[("em", 5, 1_000_000, "a")] == labels[("em", 2, 1_000_000, "a")] == "em (1M steps)"
    assert labels[("em", 5, 4_000_000, "a")] == "em (4M steps)"
    assert labels[("random", 5, 1_000_000, "b")] == "random (@bbbbbbb)"


def test_upper_reference_points_are_exact_decimals():
    """The published bounds are the round numbers a reader would compute (float32 0.1 x 1000 is not 100.000001)."""
    assert upper_welfare("rmdp/HalfCheetahSpeed-v0", {}) == {"welfare": 100.0, "source": "reward bound: 0.1 per step x 1000 steps"}
    assert upper_welfare("rmdp/ResourceGathering-v0", {})["welfare"] == pytest.approx(0.9356)


def test_render_is_deterministic(runs, board, tmp_path):
    submit(runs, board, log=QUIET)
    cp = [make_fixture_run(tmp_path / f"cp{s}", "rmdp/CartPolePosition-v0", k=2, seed=s, env_kwargs={"n_agents": 12},
                           solver="other") for s in (0, 1)]
    submit(cp, board, log=QUIET)
    first = {p.relative_to(board): p.read_bytes() for p in render(board)}
    second = {p.relative_to(board): p.read_bytes() for p in render(board)}
    assert first == second
    other = tmp_path / "board2"  # the same submissions elsewhere give the same bytes
    shutil.copytree(board / "submissions", other / "submissions")
    shutil.copy(board / "reference_points.json", other / "reference_points.json")
    assert {p.relative_to(other): p.read_bytes() for p in render(other)} == first
    html = (board / "site" / "index.html").read_text()
    assert html.count('<table class="leaderboard"') == 2
    assert 'data-plot="CartPolePosition-v0' in html and "-assignment.svg" in html  # the 1-d population histogram
    readme = (board / "README.md").read_text()
    assert readme.count("## rmdp/") == 2 and "Worst-off user" in readme and "Normalized" in readme
    assert "`python -m leaderboard render --board-dir THIS_FOLDER`" in readme  # not the project board's command
    assert "| Policies serving users |" in readme


def test_policies_serving_users_counts_only_policies_someone_gains_from():
    utility = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]  # user 2 gains from no policy
    assert serving_policies({"utility": utility, "deployed_assignment": [0, 1, 2]}) == 2  # policy 2 serves nobody
    assert serving_policies({"utility": utility, "deployed_assignment": [0, 0, 0]}) == 1
    assert serving_policies({"utility": utility}) == 2  # no picks stored (v1): each user's argmax
    assert serving_cell([4, 4, 4]) == "4" and serving_cell([3, 4, 5, 4]) == "4.0 (3-5)"


# ----------------------------------------------------------------------------- sweeps

FAKE_SOLVER = """
import argparse, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from leaderboard.testing import make_fixture_run
p = argparse.ArgumentParser()
for flag in ("--env-id", "--output-dir"):
    p.add_argument(flag)
for flag in ("--k", "--seed", "--total-timesteps", "--num-workers", "--torch-threads", "--update-threads"):
    p.add_argument(flag, type=int)
p.add_argument("--save-model", action="store_true")
a = p.parse_args()
if {fail}:
    sys.exit("this solver always fails")
make_fixture_run(Path(a.output_dir) / f"run__{{a.seed}}", a.env_id, a.k, a.seed, solver="fake",
                 total_timesteps=a.total_timesteps, weight_seed=100 * a.k + a.seed)
"""


@pytest.fixture
def fake_solvers(tmp_path) -> Path:
    d = tmp_path / "solvers"
    d.mkdir()
    (d / "fake.py").write_text(textwrap.dedent(FAKE_SOLVER.format(root=str(REPO_ROOT), fail=False)))
    (d / "broken.py").write_text(textwrap.dedent(FAKE_SOLVER.format(root=str(REPO_ROOT), fail=True)))
    return d


def test_sweep_reports_failures_and_skips_finished_runs(fake_solvers, tmp_path, board):
    args = dict(envs=[RG], ks=[1, 2], seeds=[0], total_timesteps=100, runs_dir=tmp_path / "runs", board=board,
                workers=2, solvers_dir=fake_solvers, log=QUIET)
    out = sweep(solvers=["fake", "broken"], **args)
    status = sorted((o.task.solver, o.task.k, o.status) for o in out)
    assert status == [("broken", 1, "failed"), ("broken", 2, "failed"), ("fake", 1, "finished"), ("fake", 2, "finished")]
    failed = [o for o in out if o.status == "failed"]
    assert all("exit code 1" in o.message and "this solver always fails" in o.message for o in failed)
    assert sorted(s["k"] for s in load_submissions(board)) == [1, 2]
    before = snapshot(board)
    again = sweep(solvers=["fake"], **args)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert snapshot(board) == before


def _solver_or_fake(fake_solvers) -> tuple[str, Path]:
    if (REPO_ROOT / "solvers" / "em_ppo.py").is_file():
        return "em_ppo", REPO_ROOT / "solvers"
    return "fake", fake_solvers


@pytest.mark.skipif(not (REPO_ROOT / "solvers" / "em_ppo.py").is_file(), reason="solvers/em_ppo.py does not exist yet")
def test_sweep_2x2_local(tmp_path, board):
    out = sweep([RG], ["em_ppo"], [1, 2], [0, 1], 2000, tmp_path / "runs", board, backend="local", workers=2, log=QUIET)
    assert sorted(o.status for o in out) == ["finished"] * 4
    subs = load_submissions(board)
    assert sorted((s["k"], len(s["runs"])) for s in subs) == [(1, 2), (2, 2)]
    assert verify_board(board, log=QUIET) == []
    report = []  # two processes re-evaluate the four runs to the same numbers the board stores
    assert verify_board(board, log=QUIET, workers=2, report=report) == []
    assert sorted((r["k"], r["seed"]) for r in report) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in report:
        assert (r["reevaluated_best_welfare"], r["reevaluated_welfare"]) == (r["stored_best_welfare"], r["stored_welfare"])


@pytest.mark.skipif(not (REPO_ROOT / "solvers" / "em_ppo.py").is_file(), reason="solvers/em_ppo.py does not exist yet")
@pytest.mark.parametrize("signalled", ["group", "sweep"])
def test_sweep_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path, signalled):
    """Ctrl-C in a terminal (SIGINT to the sweep's process group) or ``kill -INT`` of the sweep alone (the runs went on
    to the end, 'nothing submitted'): a summary line, exit 130, no traceback, the run stopped at a checkpoint; the
    same command again resumes that run (the same folder) and finishes it."""
    args = ["-m", "leaderboard", "sweep", "--envs", RG, "--solvers", "em_ppo", "--k", "2", "--seeds", "0",
            "--total-timesteps", "200000", "--runs-dir", str(tmp_path / "runs"), "--no-submit", "--workers", "1"]
    # SIGINT back to its default first: a test run in the background inherits it ignored, and so would the sweep
    default_sigint = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                      "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", default_sigint, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("runs/**/checkpoint.safetensors")) and proc.poll() is None:
            time.sleep(0.1)
        (os.killpg if signalled == "group" else os.kill)(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    assert "sweep interrupted: 0 finished, 1 stopped or failed, 0 not started" in out, out[-3000:]
    (folder,) = {p.parent.parent for p in tmp_path.glob("runs/**/checkpoint.safetensors")}
    (stopped,) = [d for d in folder.iterdir() if d.is_dir()]
    assert "interrupted after iteration" in (folder / "sweep.log").read_text()

    again = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 to run (local backend), 1 of them from a checkpoint" in again.stdout
    assert f"resumed {stopped.name}" in again.stdout
    assert [d for d in folder.iterdir() if d.is_dir()] == [stopped]
    result = json.loads((stopped / "result.json").read_text())
    assert result["finished"] is True and result["transitions"] == 196 * 1024


def test_sweep_sigterm_ends_its_solvers_too(tmp_path):
    """SIGTERM to a sweep (a job's end, ``timeout``) ends its solvers, which run in sessions of their own, instead of
    leaving them training alone in the sweep's folders (a review finding)."""
    args = ["-m", "leaderboard", "sweep", "--envs", RG, "--solvers", "em_ppo", "--k", "2", "--seeds", "0", "1",
            "--total-timesteps", "2000000", "--runs-dir", str(tmp_path / "runs"), "--no-submit", "--workers", "1"]
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("runs/**/checkpoint.safetensors")) and proc.poll() is None:
            time.sleep(0.1)
        solvers = subprocess.run(["pgrep", "-f", str(tmp_path / "runs")], capture_output=True, text=True).stdout.split()
        assert solvers, "no solver running"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    deadline = time.time() + 30
    while time.time() < deadline and subprocess.run(["pgrep", "-f", str(tmp_path / "runs")]).returncode == 0:
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", str(tmp_path / "runs")]).returncode == 1  # no solver left
    assert len(list((tmp_path / "runs").rglob("args.json"))) == 1  # the second seed never started


def test_resumable_run_only_for_the_task_that_started_it(tmp_path):
    task = Task(RG, "em_ppo", 2, 0, 1000)
    folder = tmp_path / "task"
    run = folder / "run_a"
    run.mkdir(parents=True)
    (folder / TASK_FILE).write_text(json.dumps(task.record()))
    for name in ("args.json", "checkpoint.safetensors"):
        (run / name).write_text("{}")
    assert resumable_run(folder, task) == run
    assert resumable_run(folder, Task(RG, "em_ppo", 2, 0, 1000, ("--learning-rate", "0.001"))) is None  # other flags
    (run / "result.json").write_text(json.dumps({"finished": False}))  # an evaluation during training
    assert resumable_run(folder, task) == run
    (run / "result.json").write_text(json.dumps({"finished": True}))
    assert resumable_run(folder, task) is None
    (run / "result.json").unlink()
    started = (folder / TASK_FILE).stat().st_mtime_ns
    os.utime(run / "args.json", ns=(started - 10**9, started - 10**9))  # run_a was made before the task (re)started
    assert resumable_run(folder, task) is None


def test_a_swept_run_reproduces_and_a_changed_one_does_not(tmp_path, board):
    """reproduce retrains from the recorded configuration: same numbers; a tampered stored welfare is caught, and a
    library version other than the run's is named."""
    from leaderboard.reproduce import reproduce
    from leaderboard.storage import submissions_dir
    out = sweep([RG], ["em_ppo"], [2], [3], 2560, tmp_path / "runs", board, backend="local", workers=1, log=QUIET,
                extra_args=["--learning-rate", "0.001", "--num-steps", "32"])
    assert [o.status for o in out] == ["finished"]
    (sub,) = load_submissions(board)
    folder = submissions_dir(board) / sub["id"]
    assert sub["protocol"]["version"] == "v2" and sub["runs"][0]["deployed_assignment"]
    assert reproduce(folder, log=QUIET) is True
    stored = json.loads((folder / "submission.json").read_text())
    stored["runs"][0]["best_welfare"] += 0.05
    stored["runs"][0]["versions"]["mujoco"] = "3.15.0"  # as if trained before the MuJoCo 4 upgrade
    stored["runs"][0]["versions"]["torch"] = "2.0.0"
    (folder / "submission.json").write_text(json.dumps(stored))
    said = []
    assert reproduce(folder, log=said.append) is False
    notes = [line for line in said if line.startswith("note:")]  # named: the library that changed, and it alone
    assert len(notes) == 1 and "torch 2.0.0 (now " in notes[0] and "numpy" not in notes[0]
    assert "mujoco" not in notes[0]  # ResourceGathering steps no MuJoCo: its version cannot move this row


def test_every_board_rows_recorded_code_takes_the_sweeps_process_flags():
    """reproduce passes HEAD's PROCESS_FLAGS to the code of the commit a row records: a flag added there that an
    older row's solvers lack would fail that row's reproduce (tyro rejects unknown flags). Checked per recorded commit
    against its rmdp_train and solvers (a dataclass field per flag); commits this clone lacks are left out."""
    from leaderboard.sweep import PROCESS_FLAGS
    fields = [flag[2:].replace("-", "_") for flag in PROCESS_FLAGS if flag.startswith("--")]
    commits = {(sub.get("solver", {}).get("commit") or "").split("-")[0] for sub in load_submissions(REPO_ROOT / "leaderboard")}
    checked = 0
    for commit in sorted(c for c in commits if c):
        if subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True).returncode:
            continue
        for field in fields:
            found = subprocess.run(["git", "grep", "-q", "-E", rf"^\s+{field}\s*:", commit, "--", "solvers", "rmdp_train"],
                                   cwd=REPO_ROOT, capture_output=True)
            assert found.returncode == 0, f"the code of {commit[:10]} (a board row's) has no --{field.replace('_', '-')}"
        checked += 1
    if commits and not checked:
        pytest.skip("no recorded commit is in this clone (a shallow one?): nothing to check")


@pytest.mark.skipif(not (REPO_ROOT / "solvers" / "em_ppo.py").is_file(), reason="solvers/em_ppo.py does not exist yet")
def test_a_resumed_run_reproduces_by_replaying_its_stop(tmp_path, board):
    """A run stopped at iteration 4 and resumed trains other numbers than the same run in one go (fresh episodes
    from the stop); it records resumed_at [4], the submission keeps it, and reproduce replays the stop."""
    from leaderboard.reproduce import reproduce
    from leaderboard.storage import submissions_dir
    from leaderboard.sweep import PROCESS_FLAGS

    def solver(out: Path, *flags: str) -> str:
        cmd = [sys.executable, str(REPO_ROOT / "solvers" / "em_ppo.py"), "--env-id", "rmdp/Chain-v0", "--k", "2",
               "--seed", "4", "--total-timesteps", "20480", "--save-model", "--output-dir", str(out), *PROCESS_FLAGS, *flags]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    assert "interrupted after iteration 4" in solver(tmp_path / "stopped", "--checkpoint-every", "2", "--interrupt-after", "3")
    (run_dir,) = (tmp_path / "stopped").iterdir()
    solver(tmp_path / "stopped", "--resume", str(run_dir))
    solver(tmp_path / "one_go")
    resumed = json.loads((run_dir / "result.json").read_text())
    (one_go,) = (tmp_path / "one_go").glob("*/result.json")
    assert resumed["resumed_at"] == [4] and "resumed_at" not in json.loads(one_go.read_text())
    # the stop changed the training beyond the protocol's tolerance: retraining in one go would not reproduce it
    assert not PROTOCOL.tolerance_for("rmdp/Chain-v0").ok(resumed["welfare"], json.loads(one_go.read_text())["welfare"])
    (folder,) = submit([run_dir], board, log=QUIET)
    stored = json.loads((folder / "submission.json").read_text())
    assert stored["runs"][0]["resumed_at"] == [4] and schema_errors(stored) == []
    lines = []
    assert reproduce(submissions_dir(board) / stored["id"], log=lines.append) is True
    assert sum("--interrupt-after 4" in line for line in lines) == 1 and sum("--resume" in line for line in lines) == 1


def test_sweep_2x2_ray(fake_solvers, tmp_path, board):
    pytest.importorskip("ray", reason="Ray is not installed (pip install '.[ray]')")
    solver, solvers_dir = _solver_or_fake(fake_solvers)
    out = sweep([RG], [solver], [1, 2], [0, 1], 2000, tmp_path / "runs", board, backend="ray", workers=2,
                solvers_dir=solvers_dir, log=QUIET)
    assert sorted(o.status for o in out) == ["finished"] * 4, [o.message for o in out]
    assert sorted((s["k"], len(s["runs"])) for s in load_submissions(board)) == [(1, 2), (2, 2)]
    # the run folders came back from the workers
    assert all((o.run_dir / "policies.safetensors").is_file() for o in out)


def test_cli_sweep_help():
    out = subprocess.run([sys.executable, "-m", "leaderboard", "sweep", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert out.returncode == 0
    for flag in ("--envs", "--solvers", "--k", "--seeds", "--backend", "--address", "--board-dir"):
        assert flag in out.stdout


def test_unseen_users_column(tmp_path, board, runs):
    """A fresh population draw for sampled users (Chain), "n/a" for fixed ones (ResourceGathering), and
    verify re-checks it."""
    from leaderboard.unseen import UNSEEN_POPULATION_SEED, unseen_env_kwargs

    assert unseen_env_kwargs(RG, {}) is None  # the cells are the users: no fresh draw
    assert unseen_env_kwargs("rmdp/Chain-v0", {}) == {"population_seed": UNSEEN_POPULATION_SEED}
    assert unseen_env_kwargs("rmdp/Chain-v0", {"population_seed": UNSEEN_POPULATION_SEED}) is None
    chain = [make_fixture_run(tmp_path / f"chain-s{s}", "rmdp/Chain-v0", k=2, seed=s) for s in (0, 1)]
    submit(chain + runs, board, log=QUIET)
    subs = {s["benchmark"]["env_id"]: s for s in load_submissions(board)}
    chain_runs = subs["rmdp/Chain-v0"]["runs"]
    assert all(isinstance(r["unseen_welfare"], float) and 0 <= r["unseen_welfare"] <= 1 for r in chain_runs)
    assert any(r["unseen_welfare"] != r["best_welfare"] for r in chain_runs)  # other users, other welfare
    assert all(r["unseen_welfare"] is None for r in subs[RG]["runs"])
    assert subs[RG]["unseen_population_seed"] == UNSEEN_POPULATION_SEED
    render(board)
    text = (board / "README.md").read_text()
    assert "| Unseen users |" in text and "| n/a |" in text
    assert verify_board(board, log=QUIET) == []
    sub_file = next((board / "submissions").glob("Chain*/submission.json"))
    stored = json.loads(sub_file.read_text())
    stored["runs"][0]["unseen_welfare"] += 0.2
    sub_file.write_text(json.dumps(stored))
    assert any("unseen_welfare" in p for p in verify_board(board, log=QUIET))


@pytest.mark.parametrize("argv", [
    ["verify", "--board-dir", "{tmp}/nope"],  # a typo'd board: not "board verified"
    ["render", "--board-dir", "{tmp}/nope"],  # nor an empty board made where none was
    ["unseen", "--board-dir", "{tmp}/nope"],
    ["verify", "--envs", "rmdp/Nope-v0"],
    ["verify", "--no-evaluate", "--report", "{tmp}"],  # a folder: refused before verifying, not after
    ["reproduce", "{tmp}/no_submission"],
    ["sweep", "--envs", "rmdp/Nope-v0", "--solvers", "random_ppo", "--k", "2", "--total-timesteps", "512"],
    ["sweep", "--envs", RG, "--solvers", "nope_ppo", "--k", "2", "--total-timesteps", "512"],
    ["sweep", "--envs", RG, "--solvers", "random_ppo", "--k", "26", "--total-timesteps", "512"],  # n = 25
    ["sweep", "--envs", RG, "--solvers", "random_ppo", "--k", "2", "--seeds", "-1", "--total-timesteps", "512"],
    ["sweep", "--envs", RG, "--solvers", "random_ppo", "--k", "2", "--total-timesteps", "512", "--workers", "0"],
    ["sweep", "--envs", RG, "--solvers", "random_ppo", "--k", "2", "--total-timesteps", "512", "--solver-args", '--gamma "0.9'],
])
def test_cli_bad_input_one_error_line_nothing_written(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "sweep":
        argv += ["--runs-dir", str(tmp_path / "runs"), "--board-dir", str(tmp_path / "board")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert not any(tmp_path.iterdir())  # no board, no runs folder, no report


@pytest.mark.skipif(not (REPO_ROOT / "solvers" / "random_ppo.py").is_file(), reason="solvers/random_ppo.py does not exist")
def test_sweep_stops_starting_runs_once_a_solver_refuses_its_flags(tmp_path):
    """Flags every run would refuse (exit status 2) stop the sweep after the first: the others are not started."""
    lines = []
    out = sweep([RG], ["random_ppo"], [2], [0, 1, 2, 3], 512, tmp_path / "runs", tmp_path / "board", workers=1,
                extra_args=["--gamma", "7"], do_submit=False, log=lines.append)
    assert all(o.status == "failed" for o in out) and len(out) <= 2, lines
    stopping = [line for line in lines if line.startswith("stopping:")]
    assert len(stopping) == 1 and "--gamma must lie in [0, 1]" in stopping[0], lines
    assert lines[-1].endswith(f"{4 - len(out)} not started"), lines


def test_sweep_dry_run_plans_without_running_or_writing(runs, board, tmp_path):
    """--dry-run checks the grid, counts what would run, names the first command and plans the time from the board's
    own recorded runs of the env (here two fixture runs on ResourceGathering); nothing runs, nothing is written."""
    submit(runs, board)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    lines = []
    out = sweep([RG, "rmdp/Chain-v0"], ["em_ppo", "random_ppo"], [2], [0, 1, 2], 1000, tmp_path / "sweep_runs", board,
                workers=2, do_submit=False, log=lines.append, dry_run=True)
    assert out == [] and lines[0].startswith("sweep: 12 runs, 0 finished earlier, 12 to run"), lines
    assert any(line.startswith("first command: ") and "--env-id rmdp/ResourceGathering-v0" in line for line in lines)
    plan = next(line for line in lines if line.startswith("about "))
    assert "with 2 local workers" in plan and "no board run of rmdp/Chain-v0" in plan, plan
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # not even the runs folder
    assert cli.main(["sweep", "--envs", RG, "--solvers", "em_ppo", "--k", "2", "--total-timesteps", "1000", "--dry-run",
                     "--runs-dir", str(tmp_path / "sweep_runs"), "--board-dir", str(board)]) == 0
    assert not (tmp_path / "sweep_runs").exists()
    assert any(line.startswith("checked em_ppo's flags for rmdp/Chain-v0") for line in lines)


@pytest.mark.parametrize("solver_args, said", [("--bogus 1", "Unrecognized options: --bogus"),
                                                ("--learning-rate inf", "--learning-rate must be a finite number")])
def test_sweep_dry_run_asks_the_solvers_about_their_flags(board, tmp_path, capsys, solver_args, said):
    """A misspelt or impossible --solver-args passed the dry run, then failed every task of the real sweep and left
    task folders behind; the dry run now asks each solver (--check-only) and says what it refused, in one line."""
    assert cli.main(["sweep", "--envs", RG, "--solvers", "em_ppo", "--k", "2", "--total-timesteps", "1000", "--dry-run",
                     "--solver-args", solver_args, "--runs-dir", str(tmp_path / "sweep_runs"), "--board-dir", str(board)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: em_ppo refuses the grid's flags") and said in err[0], err
    assert not (tmp_path / "sweep_runs").exists() and not board.exists()


def test_verify_reports_a_stored_number_its_policies_do_not_give(runs, board):
    """verify re-scores the stored policies: a stored welfare edited after submission is reported, column named
    (a re-evaluation that echoed the stored numbers would pass every other round-trip test)."""
    submit(runs, board)
    (folder,) = [d for d in (board / "submissions").iterdir() if d.is_dir()]
    path = folder / "submission.json"
    sub = json.loads(path.read_text())
    sub["runs"][0]["best_welfare"] += 0.5
    path.write_text(json.dumps(sub))
    problems = verify_board(board, log=QUIET)
    assert len(problems) == 1 and "stored best_welfare" in problems[0] and f"seed {sub['runs'][0]['seed']}" in problems[0]


def test_protocol_v2_users_pick_on_assignment_episodes_and_are_scored_on_held_out_ones(tmp_path):
    """v2's point, no number chosen on the episodes that score it: on slippery GridGoals this fixture's picks on the
    assignment episodes differ from the best picks on the held-out ones, and the board deploys the former."""
    import rmdp_envs
    from leaderboard.scoring import score
    from rmdp_train.policies import load_policies

    env_id, k = "rmdp/GridGoals-v0", 3
    policies = load_policies(make_fixture_run(tmp_path / "run", env_id, k=k, seed=0))
    held_out = rmdp_envs.evaluate(env_id, policies, k, PROTOCOL.episodes, PROTOCOL.seed, {})
    picks = rmdp_envs.evaluate(env_id, policies, k, PROTOCOL.assignment_episodes, PROTOCOL.assignment_seed,
                               {}).best_assignment
    assert (picks != held_out.best_assignment).any()  # this instance tells the two rules apart
    n = len(picks)
    scored = score(env_id, {}, policies, k, PROTOCOL.to_dict(), [0] * n)
    assert scored["deployed_assignment"] == picks.tolist()
    assert scored["best_welfare"] == pytest.approx(held_out.welfare(picks))
    assert scored["best_welfare"] < held_out.best_welfare  # picking on the scoring episodes would read higher
    assert scored["welfare"] == pytest.approx(held_out.welfare(np.zeros(n, dtype=np.int64)))  # own assignment, held out


def test_claims_are_checked_on_the_seeds_they_name_not_the_protocols(tmp_path):
    """On stochastic Chain, one episode from seed 123 and the protocol's ten give welfares further apart than the
    exact tolerance: a claim is accepted with the numbers of the seeds it names and refused with the other ones."""
    import rmdp_envs

    env_id = "rmdp/Chain-v0"
    run = make_fixture_run(tmp_path / "run", env_id, k=2, seed=0)
    policies = rmdp_envs.load_policies(run)
    own = rmdp_envs.evaluate(env_id, policies, 2, 1, 123)
    protocol = rmdp_envs.evaluate(env_id, policies, 2, PROTOCOL.episodes, PROTOCOL.seed)
    assert not PROTOCOL.tolerance.ok(own.best_welfare, protocol.best_welfare)  # the seeds tell the two apart
    assignment = json.loads((run / "result.json").read_text())["assignment"]
    _edit_result(run, eval_episodes=1, eval_seed=123, best_welfare=protocol.best_welfare,
                 welfare=protocol.welfare(assignment), utility=protocol.utility.tolist())  # the protocol's, for seed 123
    with pytest.raises(SubmissionError):
        submit([run], tmp_path / "board", log=QUIET)
    _edit_result(run, best_welfare=own.best_welfare, welfare=own.welfare(assignment),
                 utility=own.utility.tolist())  # seed 123's own numbers
    submit([run], tmp_path / "board", log=QUIET)
    (sub,) = load_submissions(tmp_path / "board")
    assert sub["runs"][0]["claimed"]["seed"] == 123


def test_an_unfinished_run_is_refused_as_unfinished(tmp_path, board):
    """A run stopped before its budget is refused for that, with the way on (--resume): not for a missing result.json
    (stopped between evaluations) or missing policies (an intermediate evaluation), which were the reasons given."""
    from leaderboard.sweep import PROCESS_FLAGS

    def stopped(out: Path, *flags: str) -> Path:
        cmd = [sys.executable, str(REPO_ROOT / "solvers" / "random_ppo.py"), "--env-id", "rmdp/Chain-v0", "--k", "2",
               "--total-timesteps", "20480", "--save-model", "--checkpoint-every", "2", "--interrupt-after", "3",
               "--output-dir", str(out), *PROCESS_FLAGS, *flags]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "interrupted after iteration 4" in proc.stdout, proc.stderr[-3000:]
        (run_dir,) = out.iterdir()
        return run_dir

    no_result = stopped(tmp_path / "a")
    intermediate = stopped(tmp_path / "b", "--eval-every", "1000")
    assert not (no_result / "result.json").exists()
    assert json.loads((intermediate / "result.json").read_text())["finished"] is False
    for run_dir in (no_result, intermediate):
        with pytest.raises(SubmissionError, match=r"run not finished .*--resume"):
            submit([run_dir], board, log=QUIET)


def test_verdicts_use_shared_seeds_and_say_when_there_are_none():
    """Rows of one k whose seeds do not overlap (e.g. a solver's rows at two budgets) get 'no shared seeds', not a
    NaN probability and numpy's empty-mean warning; overlapping seeds are compared on the seeds both trained."""
    import warnings
    from leaderboard.render import verdicts

    board = {"rows": [_verdict_row("em", range(5), [5.0, 5.1, 5.2, 5.3, 5.4]),
                      _verdict_row("random", range(5), [1.0, 1.1, 1.2, 1.3, 1.4]),
                      _verdict_row("em (other budget)", range(5, 10), [3.0] * 5)]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (line,) = verdicts(board, 2)
    assert "random: better (P(improvement) = 1.00" in line and "5 shared seeds" in line
    assert "em (other budget): no shared seeds (seeds 5, 6, 7, 8, 9 against 0, 1, 2, 3, 4)" in line and "nan" not in line


def _verdict_row(label, seeds, welfare):
    runs = [{"seed": s, "best_welfare": w} for s, w in zip(seeds, welfare)]
    return {"k": 2, "label": label, "solver": label, "seeds": list(seeds), "runs": runs, "mean_best": float(np.mean(welfare))}


def test_verdicts_take_their_direction_from_the_runs_and_correct_for_the_comparisons_made():
    """A leader by mean whose runs lose most pairs (one lucky seed) is called worse, never better; a gap that one
    comparison alone would pass is not distinguishable once Holm counts the leader's other comparisons; exact ties
    at the top are said to be ties."""
    from leaderboard.render import verdicts

    lucky = _verdict_row("lucky", range(10), [100.0] + [1.0] * 9)
    steady = _verdict_row("steady", range(10), [2.0 + 0.1 * i for i in range(10)])
    (line,) = verdicts({"rows": [lucky, steady]}, 2)
    assert line.startswith("k = 2: lucky has the highest mean") and "steady: worse (P(improvement) = 0.10" in line
    assert "better" not in line

    lead = _verdict_row("lead", range(5), [10.0, 10.1, 10.2, 10.3, 10.4])
    near = _verdict_row("near", range(5), [9.0, 9.1, 9.2, 9.3, 10.05])  # loses one pair of 25: p = 0.016 alone
    others = [_verdict_row(f"same{i}", range(5), [9.95 + 0.1 * j for j in range(5)]) for i in range(3)]
    assert improvement_p_value([r["best_welfare"] for r in lead["runs"]], [r["best_welfare"] for r in near["runs"]]) < 0.05
    (line,) = verdicts({"rows": [lead, near]}, 2)
    assert "near: better" in line  # alone, the one comparison passes
    (line,) = verdicts({"rows": [lead, near, *others]}, 2)
    assert line.startswith("k = 2: lead has the highest mean") and "near: not distinguishable" in line

    tie = [_verdict_row(name, range(5), [1.0] * 5) for name in ("a", "b", "c")]
    (line,) = verdicts({"rows": tie}, 2)
    assert line.startswith("k = 2: a, b and c tie for the highest mean") and "identical" in line


def test_an_rmdp_of_your_own_trains_submits_and_verifies_through_its_module(tmp_path, board, monkeypatch):
    """Gymnasium's 'module:id' form: a module of the user's registers rmdp/MyChain-v0 (rmdp_envs.register); a stock
    solver trains on 'mylab_chain:rmdp/MyChain-v0' with a rollout worker (which imports the module itself), and the
    board accepts, renders and verifies the run once the user names the module (--import-module): it imports no
    module a submitted file names, and says so in one line."""
    import gymnasium as gym
    import rmdp_envs
    (tmp_path / "mylab_chain.py").write_text(
        "import rmdp_envs\nrmdp_envs.register('rmdp/MyChain-v0', 'rmdp_envs.envs.tabular_generators:ChainEnv')\n")
    env_id = "mylab_chain:rmdp/MyChain-v0"
    try:
        cmd = [sys.executable, str(REPO_ROOT / "solvers" / "em_ppo.py"), "--env-id", env_id, "--k", "2",
               "--total-timesteps", "4000", "--save-model", "--output-dir", str(tmp_path / "runs"),
               "--rollout", "workers", "--num-workers", "1",  # a worker process: it must import the module itself
               "--torch-threads", "1", "--update-threads", "1"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (run_dir,) = (tmp_path / "runs").iterdir()
        with pytest.raises(SubmissionError, match="pass --import-module mylab_chain"):  # no module a file names
            submit([run_dir], board, log=QUIET)
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.import_module("mylab_chain")  # what python -m leaderboard --import-module mylab_chain does
        (folder,) = submit([run_dir], board, log=QUIET)
        assert json.loads((folder / "submission.json").read_text())["benchmark"]["env_id"] == env_id
        assert verify_board(board, log=QUIET) == []
        render(board)
        bare = subprocess.run([sys.executable, "-m", "leaderboard", "render", "--board-dir", str(board)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120, env=env)
        lines = bare.stderr.strip().splitlines()
        assert bare.returncode == 2 and len(lines) == 1 and "--import-module mylab_chain" in lines[0], bare.stderr
        named = subprocess.run([sys.executable, "-m", "leaderboard", "verify", "--board-dir", str(board),
                                "--import-module", "mylab_chain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=300, env=env)
        assert named.returncode == 0 and "board verified" in named.stdout, named.stderr[-3000:]
    finally:
        gym.registry.pop("rmdp/MyChain-v0", None)
        sys.modules.pop("mylab_chain", None)
    with pytest.raises(ValueError, match="r-MDP ids live under rmdp/"):
        rmdp_envs.register("mylab/Chain-v0", "rmdp_envs.envs.tabular_generators:ChainEnv")
    with pytest.raises(ValueError, match="registered, but not as an r-MDP"):
        rmdp_envs.make("CartPole-v1")


def test_verify_reports_a_malformed_submission_instead_of_failing_on_it(tmp_path, capsys):
    """The up-front check of the board's envs reads no field a malformed submission lacks: verify still reports its
    schema violation (a KeyError traceback otherwise, a review finding)."""
    folder = tmp_path / "board" / "submissions" / "bad"
    folder.mkdir(parents=True)
    (folder / "submission.json").write_text(json.dumps({"id": "bad", "format": "x"}))
    assert cli.main(["verify", "--board-dir", str(tmp_path / "board"), "--no-evaluate"]) == 1
    assert "schema violation" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["{bad", "[1]", '{"id": "x"}'])
def test_a_malformed_stored_submission_is_one_line_and_verify_lists_it(runs, board, content, capsys):
    """render, unseen and submit read every stored submission: one that is not JSON, not an object or off the schema
    (a hand edit, a truncated file) gave a traceback; it is named in one error line, and verify reports it among the
    board's problems."""
    assert cli.main(["submit", str(runs[0]), "--board-dir", str(board)]) == 0
    (bad,) = [p for p in (board / "submissions").iterdir() if p.is_dir()]
    (bad / "submission.json").write_text(content)
    capsys.readouterr()
    for command in (["render"], ["unseen"], ["submit", str(runs[1])]):
        assert cli.main([*command, "--board-dir", str(board)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: the board at") and bad.name in err[0], err
    assert cli.main(["verify", "--board-dir", str(board), "--no-evaluate"]) == 1
    err = capsys.readouterr().err
    assert bad.name in err or "x: schema violation" in err  # verify names a parsed submission by its id


def test_submit_refuses_a_board_it_cannot_write_before_verifying(runs, tmp_path, capsys):
    """A board path that is a file was found out after minutes of re-evaluation, with a traceback."""
    place = tmp_path / "a_file"
    place.write_text("x")
    assert cli.main(["submit", str(runs[0]), "--board-dir", str(place)]) == 1
    err = capsys.readouterr().err
    assert "cannot write the board" in err and "verifying" not in err and place.read_text() == "x"


def test_the_profile_compares_solvers_on_the_cells_they_all_ran():
    """Pooled over whatever each solver ran, the profile ranked where a solver was run (the family, on MuJoCo only,
    against the others' mostly tabular runs), not how it did."""
    from leaderboard.render import profile_cells

    def board(env_id, rows):
        return {"protocol": PROTOCOL.version, "benchmark": {"env_id": env_id, "key": env_id[-4:]},
                "rows": [{"label": s, "k": k, "normalized_runs": v} for s, k, v in rows]}

    boards = {"a": board("rmdp/Chain-v0", [("em", 2, [0.9, 0.95]), ("family", 2, [0.5]), ("em", 3, [0.9])]),
              "b": board("rmdp/HopperSpeed-v0", [("em", 5, [0.2]), ("family", 5, [0.3, None])])}
    shared, scores, left_out = profile_cells(boards)
    assert shared == [("rmdp/Chain-v0", "n-v0", 2), ("rmdp/HopperSpeed-v0", "d-v0", 5)]  # em's k = 3 alone is left out
    assert scores["family"][shared[1]] == [0.3] and left_out == []
    boards["b"]["rows"].append({"label": "lone", "k": 5, "normalized_runs": [0.1]})  # 1 of 3 cells: named, not pooled
    shared, scores, left_out = profile_cells(boards)
    assert len(shared) == 2 and left_out == ["lone"] and "lone" not in scores


def test_the_protocol_text_fills_in_its_numbers():
    """A lost f-prefix printed '{p.tolerance.describe()}' on the board page."""
    from leaderboard.render import _protocol_text
    text = _protocol_text()
    assert "{" not in text and PROTOCOL.tolerance.describe() in text and PROTOCOL.chaotic_tolerance.describe() in text


def test_a_nan_is_no_evidence_and_a_stored_nan_is_a_malformed_submission(runs, board, capsys):
    """holm read a NaN p-value as a rejection, and Python's json reads NaN: a hand-edited NaN welfare made a verdict
    'significant' and passed the malformed-submission check."""
    assert holm([float("nan"), 0.5]) == [False, False]
    assert cli.main(["submit", str(runs[0]), "--board-dir", str(board)]) == 0
    (folder,) = [p for p in (board / "submissions").iterdir() if p.is_dir()]
    path = folder / "submission.json"
    path.write_text(path.read_text().replace('"best_welfare": ', '"best_welfare": NaN, "was": ', 1))
    capsys.readouterr()
    assert cli.main(["render", "--board-dir", str(board)]) == 2
    assert "NaN" in capsys.readouterr().err


def test_an_identical_pair_counts_in_the_family_of_comparisons():
    """A, B and C score the same on every seed, D a little below: with the two identical comparisons counted, D's
    p = 0.024 is above Holm's 0.05 / 3 (it was judged alone against 0.05)."""
    from leaderboard.render import verdicts
    rows = [_verdict_row(name, range(5), [6.0, 7.0, 8.0, 9.0, 10.0]) for name in "ABC"]
    rows.append(_verdict_row("D", range(5), [1.0, 2.0, 3.0, 4.0, 7.0]))
    (line,) = verdicts({"rows": rows}, 2)
    assert line.startswith("k = 2: A, B and C tie for the highest mean; A against B: identical")
    assert "D: not distinguishable" in line


def test_a_relative_solvers_dir_is_read_from_the_working_folder(board, tmp_path, monkeypatch):
    """--solvers-dir is the user's path: the check read it from the working folder while the runs started in the
    repository's, so a relative one passed the check and then named a file that did not exist."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO_ROOT / "solvers", tmp_path / "mine")
    lines = []
    sweep([RG], ["em_ppo"], [2], [0], 1000, tmp_path / "runs", board, solvers_dir=Path("mine"), do_submit=False,
          log=lines.append, dry_run=True)
    assert any(line.startswith("checked em_ppo's flags") for line in lines), lines
    assert any(str(tmp_path / "mine" / "em_ppo.py") in line for line in lines if line.startswith("first command")), lines
    with pytest.raises(SweepError, match="no solvers folder at .*nowhere.*--solvers-dir"):
        sweep([RG], ["em_ppo"], [2], [0], 1000, tmp_path / "runs", board, solvers_dir=Path("nowhere"),
              do_submit=False, log=QUIET, dry_run=True)


def test_an_installed_package_asks_for_a_board_and_a_checkout(tmp_path, monkeypatch, capsys):
    """Installed from a wheel, the package folder is site-packages: submit wrote the board there (wiped by an
    upgrade), and reproduce ran git in it. Now the board must be named and reproduce asks for a checkout."""
    import leaderboard.storage as storage
    monkeypatch.setattr(storage, "REPO_ROOT", tmp_path / "site-packages")  # what a wheel's install looks like
    monkeypatch.delenv("RMDP_BOARD_DIR", raising=False)
    with pytest.raises(storage.BoardError, match="pass --board-dir"):
        storage.board_dir()
    assert storage.board_dir(tmp_path / "b") == (tmp_path / "b").resolve()
    monkeypatch.setenv("RMDP_BOARD_DIR", str(tmp_path / "env_board"))
    assert storage.board_dir() == (tmp_path / "env_board").resolve()
    monkeypatch.delenv("RMDP_BOARD_DIR")
    assert cli.main(["render"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no board given") and "--board-dir" in err[0], err
    with pytest.raises(ValueError, match="reproduce retrains with the solver files and git history of a checkout"):
        reproduce(tmp_path / "any")


def test_the_recorded_commit_is_rmdps_not_an_enclosing_projects(tmp_path):
    """rmdp installed into a virtual environment inside another project's git repository recorded that project's
    HEAD as the code of every run; a repository that does not track rmdp's own files gives no commit."""
    from rmdp_envs.results import git_commit
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("x")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "other project"], check=True)
    assert git_commit(tmp_path) is None
    assert (git_commit(REPO_ROOT) or "")[:40] == subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                                                                capture_output=True, text=True).stdout.strip()


def test_a_solver_of_ones_own_without_check_only_is_not_refused_by_the_dry_run(board, tmp_path):
    """A solver not built on rmdp_train's flags cannot be asked (--check-only is unknown to it): the dry run says so and
    goes on, rather than refusing the grid for a flag it added itself."""
    own = tmp_path / "own"
    own.mkdir()
    (own / "mine.py").write_text(textwrap.dedent("""
        import argparse
        p = argparse.ArgumentParser()
        for flag in ["--env-id", "--k", "--seed", "--total-timesteps", "--output-dir", "--num-workers", "--torch-threads",
                     "--update-threads"]:
            p.add_argument(flag)
        p.add_argument("--save-model", action="store_true")
        p.parse_args()
    """))
    lines = []
    sweep([RG], ["mine"], [2], [0], 1000, tmp_path / "runs", board, solvers_dir=own, do_submit=False,
          log=lines.append, dry_run=True)
    assert any("mine takes no --check-only" in line for line in lines) and lines[-1].startswith("dry run")


def test_pairwise_script_compares_the_boards_solvers_and_refuses_names_it_does_not_hold():
    """``scripts/pairwise.py`` reads the committed board: its own names give a table, a solver's file name
    (``em_ppo``) or the same solver twice one error line (exit 2), not an empty table."""
    script = [sys.executable, str(REPO_ROOT / "scripts" / "pairwise.py")]
    ok = subprocess.run(script + ["family", "em"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "| rmdp/HalfCheetahSpeed-v0" in ok.stdout, ok.stderr
    for names, says in ((["em_ppo", "em"], "solver 'em_ppo'"), (["em", "em"], "not 'em' with itself")):
        bad = subprocess.run(script + names, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stdout == "" and says in bad.stderr, bad.stderr
        assert [line for line in bad.stderr.splitlines() if "error:" in line] == [bad.stderr.splitlines()[-1]]
