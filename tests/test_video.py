"""Films of k policies (rmdp_train.video): what they show is the episode the evaluation scores, bad input is
refused before anything is written, and the solvers' --capture-video and the CLI write them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rmdp_envs
from rmdp_train.video import CAPTION_PIXELS, MAX_FRAMES, record_policies

ROOT = Path(__file__).resolve().parents[1]
RG, CHEETAH = "rmdp/ResourceGathering-v0", "rmdp/HalfCheetahSpeed-v0"
UP, DOWN, LEFT, RIGHT = range(4)


def out_and_back(obs: np.ndarray) -> np.ndarray:
    """Policy j walks j + 1 cells up from home and straight back (every policy ends its episode)."""
    actions = []
    for j, o in enumerate(obs):
        row, visited = int(o[0]), o[2:].reshape(5, 5)
        far = visited[4 - (j + 1), 2] > 0  # its farthest cell reached: head home
        actions.append(DOWN if far and row < 4 else UP)
    return np.array(actions)


def test_film_shows_the_episode_the_evaluation_scores(tmp_path):
    k, assignment = 3, rmdp_envs.round_robin(25, 3)
    film = record_policies(out_and_back, RG, k, tmp_path / "film.gif", assignment=assignment, seed=10_000)
    assert film.steps == [2, 4, 6]  # j + 1 cells up and back
    scored = rmdp_envs.evaluate(RG, out_and_back, k, episodes=1, seed=10_000)
    for j in range(k):
        assert film.returns[j] == pytest.approx(scored.utility[j, assignment == j].mean())
    with Image.open(film.path) as gif:  # the start and one frame per step until the last episode ends
        assert gif.n_frames == film.frames == 1 + 6
        assert gif.size == (3 * 240, 180 + CAPTION_PIXELS)
        assert gif.info["loop"] == 0


def test_a_policy_without_users_is_filmed_without_a_return(tmp_path):
    with np.errstate(all="raise"):
        film = record_policies(out_and_back, RG, 2, tmp_path / "f.gif", assignment=np.zeros(25, dtype=int))
    assert film.steps == [2, 4] and film.returns[1] == 0.0


def test_long_episodes_are_filmed_every_few_steps(tmp_path):
    film = record_policies(lambda obs: np.full(len(obs), LEFT), RG, 2, tmp_path / "f.gif", every=5)
    assert film.steps == [40, 40] and film.frames == 1 + 8  # truncated at 40 steps, filmed at 5, 10, ..., 40
    film = record_policies(lambda obs: np.full(len(obs), LEFT), RG, 2, tmp_path / "g.gif", steps=12)
    assert film.steps == [12, 12] and film.frames == 1 + 12 and film.frames <= MAX_FRAMES + 1


def test_cartpole_position_is_filmed(tmp_path):
    """CartPolePosition draws with pygame (the ``train`` extra's ``gymnasium[classic-control]``), no OpenGL needed."""
    film = record_policies(lambda obs: np.ones(len(obs), dtype=int), "rmdp/CartPolePosition-v0", 2, tmp_path / "c.gif",
                           env_kwargs={"n_agents": 4}, steps=5)
    assert film.steps == [5, 5] and film.frames == 1 + 5
    with Image.open(film.path) as gif:
        gif.seek(gif.n_frames - 1)
        assert len(gif.convert("RGB").getcolors(2**16)) > 2  # the cart and pole drawn, not a blank tile


@pytest.mark.parametrize("call, message", [
    (dict(env_id="rmdp/Chain-v0"), "cannot be filmed"),
    (dict(assignment=[0, 1]), "assignment must have length n=25"),
    (dict(k=0), "k must be"),
    (dict(steps=0), "steps must be"),
    (dict(tile=(8, 8)), "tile must be"),
    (dict(seed=-1), "seed must be"),
    (dict(tile=(100_000, 100_000)), "needs about .* GiB"),  # estimated, not rendered until the kernel kills it
    (dict(path="{tmp}"), "is a folder"),
])
def test_bad_input_is_refused_before_anything_is_written(call, message, tmp_path):
    kwargs = {**dict(policy_fn=out_and_back, env_id=RG, k=2, path=tmp_path / "film.gif"), **call}
    kwargs["path"] = str(kwargs["path"]).replace("{tmp}", str(tmp_path))
    with pytest.raises(ValueError, match=message):
        record_policies(**kwargs)
    assert not any(tmp_path.iterdir())


def _opengl_works() -> bool:
    """MuJoCo can render off-screen here (a subprocess: a failed OpenGL start can leave a process unusable)."""
    code = f"from rmdp_train.video import check_filmable; check_filmable({CHEETAH!r}, {{'n_agents': 4}})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120).returncode == 0


def test_mujoco_film_follows_the_robot(tmp_path):
    if not _opengl_works():
        pytest.skip("no OpenGL for MuJoCo here (MUJOCO_GL=egl or osmesa needs a GPU driver or Mesa)")
    forward = np.array([[1, -1, 1, -1, 1, -1]], dtype=np.float32)
    film = record_policies(lambda obs: np.repeat(forward, len(obs), axis=0), CHEETAH, 2, tmp_path / "c.gif",
                           env_kwargs={"n_agents": 4}, steps=30, tile=(64, 48))
    assert film.steps == [30, 30] and film.frames == 31
    with Image.open(film.path) as gif:
        assert gif.size == (2 * 64, 48 + CAPTION_PIXELS)
        gif.seek(30)
        last = np.asarray(gif.convert("RGB"))[CAPTION_PIXELS:]
    assert last.std() > 10  # a scene, not an empty frame


def test_the_camera_follows_the_robot():
    """Gymnasium's free camera looks at a fixed point; the film's looks at the robot wherever it has gone."""
    if not _opengl_works():
        pytest.skip("no OpenGL for MuJoCo here")
    from rmdp_train.video import _render, _render_kwargs
    env = rmdp_envs.make(CHEETAH, **_render_kwargs(CHEETAH, {"n_agents": 4}, (64, 48)))
    env.reset(seed=0)
    _render(env, CHEETAH)
    env.unwrapped.data.qpos[0] = 25.0  # the cheetah 25 m down the track
    env.step(np.zeros(6))
    _render(env, CHEETAH)
    lookat, torso = env.unwrapped.mujoco_renderer.viewer.cam.lookat, env.unwrapped.data.xpos[1]
    assert torso[0] > 20 and lookat[0] == pytest.approx(torso[0]) and lookat[1] == pytest.approx(torso[1])
    env.close()


def test_capture_video_flag_and_the_cli(tmp_path):
    """--capture-video films the final policies and changes no number of the run; the CLI films a saved run."""
    runs = {}
    for flags in ([], ["--capture-video"]):
        out = tmp_path / ("film" if flags else "plain")
        cmd = [sys.executable, str(ROOT / "solvers" / "em_ppo.py"), "--output-dir", str(out), "--k", "3", "--num-envs",
               "2", "--num-steps", "32", "--total-timesteps", "1920", "--save-model", "--torch-threads", "1", *flags]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[bool(flags)] = next(out.iterdir())
    run_dir = runs[True]
    results = [json.loads((runs[flag] / "result.json").read_text()) for flag in (False, True)]
    assert results[0]["utility"] == results[1]["utility"] and results[0]["assignment"] == results[1]["assignment"]
    assert not (runs[False] / "videos").exists()
    with Image.open(run_dir / "videos" / "policies.gif") as gif:
        assert gif.size == (3 * 240, 180 + CAPTION_PIXELS) and gif.n_frames >= 2
    again = subprocess.run([sys.executable, "-m", "rmdp_train.video", str(run_dir), "--out", str(tmp_path / "again.gif"),
                            "--steps", "5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again.gif").is_file() and "6 frames" in again.stdout
    missing = subprocess.run([sys.executable, "-m", "rmdp_train.video", str(tmp_path / "film")], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no saved policies")


def test_a_board_submission_is_filmed_with_the_solvers_own_assignment():
    from rmdp_train.policies import recorded_assignment
    row = ROOT / "leaderboard" / "submissions" / "ResourceGathering-v0_adcaab__em__k5__1599ba2638"
    stored = json.loads((row / "submission.json").read_text())["runs"]
    seed0 = next(run for run in stored if run["policies"]["path"] == "policies/seed-0-t300000")
    assert recorded_assignment(row / "policies" / "seed-0-t300000") == seed0["assignment"]


def test_a_board_submission_is_filmed_outside_the_board():
    """The film's default place was inside the submission, in the folder git tracks: a later `git add -A` committed it."""
    from rmdp_train.video import VIDEO_FILE, default_film_path
    row = ROOT / "leaderboard" / "submissions" / "ResourceGathering-v0_adcaab__em__k5__1599ba2638"
    assert default_film_path(row / "policies" / "seed-0-t300000") == \
        Path("runs") / "videos" / "ResourceGathering-v0_adcaab__em__k5__1599ba2638-seed-0-t300000.gif"
    assert default_film_path(Path("runs") / "some_run") == Path("runs") / "some_run" / VIDEO_FILE


def test_the_film_shows_the_evaluation_episode_unless_told():
    """The CLI filmed seed 0 while --capture-video films the run's --eval-seed: filming a run again gave another film.
    Now a run's eval seed, a board submission's first held-out seed (an episode that scores it), else 0."""
    from rmdp_train.policies import recorded_eval_seed
    row = ROOT / "leaderboard" / "submissions" / "ResourceGathering-v0_adcaab__em__k5__1599ba2638"
    assert recorded_eval_seed(row / "policies" / "seed-0-t300000") == 20000
    assert recorded_eval_seed(Path("/nonexistent")) == 0
