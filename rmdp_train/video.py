"""Film k policies side by side: one tile per policy, captioned with its users and their return so far.

After a run a researcher wants to *see* the k policies: which speeds the cheetahs settled on, which
cells each ResourceGathering robot visits, whom each policy serves. :func:`record_policies` steps one
copy of the environment per policy from the same reset seed, with the deterministic policies that
:func:`rmdp_envs.evaluate` scores, renders every ``every``-th step (``render_mode="rgb_array"``), tiles
the k frames in a grid and writes an animated GIF (Pillow, already installed with TensorBoard and
matplotlib: no video codec to install). Solvers call it with ``--capture-video``; for a saved run or a
board submission: ``python -m rmdp_train.video RUN_DIR``.

MuJoCo renders through OpenGL. On a machine without a display this module asks for EGL (headless
GPU or Mesa) unless ``MUJOCO_GL`` says otherwise; where no OpenGL works, one clear error says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import numpy as np
import tyro
from tqdm import tqdm

import rmdp_envs
from rmdp_envs.core import check_assignment, check_seed
from rmdp_envs.files import atomic_write, writable_place
from rmdp_envs.results import available_memory

#: Where ``--capture-video`` puts the film, inside the run folder.
VIDEO_FILE = Path("videos") / "policies.gif"
#: Frames a film keeps at most by default: ``every`` is chosen so that the steps fit (GIFs grow with frames).
MAX_FRAMES = 150
#: Height of the caption band above each tile, in pixels.
CAPTION_PIXELS = 30


def record_policies(policy_fn: Callable[[np.ndarray], Any], env_id: str, k: int, path: str | Path, *,
                    env_kwargs: dict | None = None, assignment=None, seed: int = 0, steps: int = 300,
                    every: int | None = None, tile: tuple[int, int] = (240, 180), columns: int | None = None,
                    progress: bool = False) -> "Film":
    """Write an animated GIF of ``k`` policies acting side by side; returns what it filmed (:class:`Film`).

    ``policy_fn(obs)`` maps ``(k, *obs_shape)`` to ``k`` actions (a :class:`rmdp_train.policies.PolicySet`).
    Every policy starts from reset seed ``seed`` and acts for up to ``steps`` steps (a finished episode's
    last frame stays, marked as over). ``assignment`` (one policy per user) names each policy's users in
    its caption and the return shown is their mean; without it, the mean over all users. ``every``:
    film every ``every``-th step (default: as many as keep the film within :data:`MAX_FRAMES` frames).
    ``tile``: width and height of one policy's picture. ``progress``: a progress bar of the steps on stderr (MuJoCo's
    software rendering takes a few tenths of a second per frame). Bad input raises ``ValueError`` before anything
    is stepped or written.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps}")
    if every is not None and (int(every) != every or every < 1):
        raise ValueError(f"every must be an integer >= 1, got {every}")
    check_seed(seed)
    width, height = (int(v) for v in tile)
    if width < 16 or height < 16:
        raise ValueError(f"tile must be at least 16 x 16 pixels, got {tile}")
    why = writable_place(path)
    if why:
        raise ValueError(f"cannot write the film to {path}: {why}")
    frames_kept = min(int(steps), MAX_FRAMES if every is None else math.ceil(int(steps) / int(every))) + 1
    need = 4 * frames_kept * k * width * (height + CAPTION_PIXELS)  # RGB frames before quantizing, and the render's
    available = available_memory()
    if available is not None and need > available:
        raise ValueError(f"a film of {k} tiles of {width} x {height} pixels, {frames_kept} frames, needs about "
                         f"{need / 2**30:.1f} GiB, but {available / 2**30:.1f} GiB are available: use a smaller "
                         "--width/--height or more --every")
    env_kwargs = _render_kwargs(env_id, env_kwargs, (width, height))
    envs = [rmdp_envs.make(env_id, **env_kwargs) for _ in range(k)]
    bar = None  # the progress bar, closed even when a render fails
    try:
        first = envs[0]
        population, limit = first.unwrapped.population, first.spec.max_episode_steps
        fps = first.metadata.get("render_fps")
        users = None if assignment is None else check_assignment(assignment, k, population.n)
        steps = min(int(steps), limit or int(steps))
        every = int(every or max(1, math.ceil(steps / MAX_FRAMES)))
        tiles = [_Tile(j, _who(j, users, population)) for j in range(k)]
        for env, tile_j in zip(envs, tiles):
            if hasattr(env.unwrapped, "highlighted_users") and tile_j.who[1] is not None:
                env.unwrapped.highlighted_users = tile_j.who[1].tolist()  # an env that can show its users draws them
        obs = [env.reset(seed=seed)[0] for env in envs]
        bar = tqdm(total=steps, unit="step", desc="filming", disable=not progress, mininterval=1.0, dynamic_ncols=True)
        frames = [_compose([_render(env, env_id) for env in envs], tiles, 0, (width, height), columns)]  # GIF frames
        for t in range(1, steps + 1):
            actions = np.asarray(policy_fn(np.stack(obs)))
            for j, (env, tile_j) in enumerate(zip(envs, tiles)):
                if tile_j.over:
                    continue
                obs[j], reward, terminated, truncated, info = env.step(actions[j])
                tile_j.add(reward, info, t, terminated or truncated)
            all_over = all(tile_j.over for tile_j in tiles)
            if t % every == 0 or t == steps or all_over:
                pictures = [tile_j.picture(lambda: _render(env, env_id)) for env, tile_j in zip(envs, tiles)]
                frames.append(_compose(pictures, tiles, t, (width, height), columns))
            bar.update()
            if all_over:
                break
    finally:
        if bar is not None:
            bar.close()
        for env in envs:
            env.close()
    _write_gif(frames, Path(path), float(fps or 30) / every)
    return Film(path=Path(path), frames=len(frames), steps=[tile_j.step for tile_j in tiles],
                returns=[tile_j.total for tile_j in tiles])


@dataclass(frozen=True)
class Film:
    """What :func:`record_policies` wrote: the GIF, its number of frames, and per policy the steps it acted
    and its users' mean undiscounted return over them (the caption's last numbers)."""

    path: Path
    frames: int
    steps: list[int]
    returns: list[float]


def check_filmable(env_id: str, env_kwargs: dict | None = None, tile: tuple[int, int] = (240, 180)) -> None:
    """Raise (``ValueError``: no ``rgb_array`` mode; ``RuntimeError``: no OpenGL) unless ``env_id`` can be filmed
    here: one frame is rendered. ``--capture-video`` checks this before training, not after."""
    env = rmdp_envs.make(env_id, **_render_kwargs(env_id, env_kwargs, tile))
    try:
        env.reset(seed=0)
        _render(env, env_id)
    finally:
        env.close()


def _render_kwargs(env_id: str, env_kwargs: dict | None, tile: tuple[int, int]) -> dict:
    """``env_kwargs`` for a copy that renders ``rgb_array`` frames (MuJoCo: at the tile's size, off-screen)."""
    stated = rmdp_envs.env_metadata(env_id)  # the class's facts (an instance may replace its metadata)
    modes = stated.get("render_modes", [])
    if "rgb_array" not in modes:
        raise ValueError(f"{env_id} cannot be filmed: it renders {modes or 'nothing'}, a film needs 'rgb_array'")
    kwargs = {**(env_kwargs or {}), "render_mode": "rgb_array"}
    if stated.get("rmdp_family") == "mujoco":
        _prefer_headless_gl()
        kwargs.update(width=int(tile[0]), height=int(tile[1]))
    elif not _has_display():  # pygame (CartPole's renderer) draws off-screen; without a display SDL's default video
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # driver prints "error: XDG_RUNTIME_DIR is invalid ..."
    return kwargs


@dataclass
class _Tile:
    """One policy's caption state: whom it serves, their return so far, whether its episode is over."""

    policy: int
    who: tuple[str, np.ndarray | None]  # (label, the users' indices or None for all)
    total: float = 0.0
    step: int = 0
    speed: float | None = None
    over: bool = False
    last: np.ndarray | None = None  # the picture a finished episode keeps

    def picture(self, render: Callable[[], np.ndarray]) -> np.ndarray:
        """This step's picture: rendered, or the one its episode ended on (kept once filmed)."""
        picture = self.last if self.last is not None else render()
        if self.over:
            self.last = picture
        return picture

    def add(self, reward: np.ndarray, info: dict, t: int, done: bool) -> None:
        reward, members = np.asarray(reward, dtype=np.float64), self.who[1]
        if members is None:
            self.total += float(reward.mean())
        elif members.size:  # a policy nobody is assigned to has no users' return to show
            self.total += float(reward[members].mean())
        self.step, self.over = t, bool(done)
        self.speed = float(info["x_velocity"]) if "x_velocity" in info else None

    def caption(self) -> tuple[str, str]:
        line = f"step {self.step}" + ("" if self.speed is None else f"  speed {self.speed:+.2f}")
        line += f"  return {self.total:.2f}" + ("  (over)" if self.over else "")
        return f"policy {self.policy}: {self.who[0]}", line


def _who(policy: int, users: np.ndarray | None, population) -> tuple[str, np.ndarray | None]:
    """A policy's caption label and its users (all users when no assignment is given)."""
    if users is None:
        return f"all {population.n} users", None
    members = np.flatnonzero(users == policy)
    label = f"{members.size} user" + ("" if members.size == 1 else "s")
    if members.size and population.params.shape[1] == 1 and population.kind != "cells":
        values = population.params[members, 0]
        label += f", targets {values.min():.2f}-{values.max():.2f}" if members.size > 1 else f", target {values[0]:.2f}"
    return label, members


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _prefer_headless_gl() -> None:
    """Ask MuJoCo for EGL (off-screen) where there is no display and ``MUJOCO_GL`` is not set."""
    if "MUJOCO_GL" in os.environ or _has_display():
        return
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _render(env, env_id: str) -> np.ndarray:
    _follow(env.unwrapped)
    try:
        frame = env.render()
    except Exception as e:  # MuJoCo's FatalError, PyOpenGL's ImportError, Gymnasium's RuntimeError / DependencyNotInstalled
        hint = ("; MuJoCo renders off-screen through OpenGL: set MUJOCO_GL=egl (a GPU or Mesa's EGL) or MUJOCO_GL=osmesa"
                if rmdp_envs.env_metadata(env_id).get("rmdp_family") == "mujoco" else "")
        raise RuntimeError(f"rendering {env_id} failed ({type(e).__name__}: {' '.join(str(e).split())}){hint}") from e
    return np.asarray(frame, dtype=np.uint8)


def _follow(env) -> None:
    """Keep a MuJoCo robot in view: Gymnasium's free camera looks at a fixed point, and a cheetah at 4 m/s
    leaves it within seconds; the camera's point follows the robot's first body over the ground instead."""
    viewer = getattr(getattr(env, "mujoco_renderer", None), "viewer", None)  # made by the first render
    if viewer is not None:
        viewer.cam.lookat[:2] = env.data.xpos[1][:2]


def _compose(pictures: list[np.ndarray], tiles: list[_Tile], t: int, size: tuple[int, int], columns: int | None):
    """One film frame: the k pictures in a grid, each under its caption, as a 128-colour GIF frame (a paletted
    Pillow image: a third of the memory of the RGB frame, which a long film of many policies would hold)."""
    from PIL import Image, ImageDraw

    width, height = size
    columns = int(columns or min(len(pictures), 3 if len(pictures) in (5, 6) else 4))
    rows = math.ceil(len(pictures) / columns)
    cell_h = height + CAPTION_PIXELS
    frame = Image.new("RGB", (columns * width, rows * cell_h), (255, 255, 255))
    for j, (picture, tile) in enumerate(zip(pictures, tiles)):
        x, y = (j % columns) * width, (j // columns) * cell_h
        image = Image.fromarray(picture)
        if image.size != (width, height):  # fit, keeping the picture's shape (MuJoCo renders at the tile's size)
            scale = min(width / image.width, height / image.height)
            fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(fitted, Image.Resampling.NEAREST)
        frame.paste(image, (x + (width - image.width) // 2, y + CAPTION_PIXELS + (height - image.height) // 2))
        first, second = tile.caption() if t else (f"policy {tile.policy}: {tile.who[0]}", "step 0")
        caption = Image.new("RGB", (width, CAPTION_PIXELS), (255, 255, 255))  # a narrow tile cuts its own caption
        draw = ImageDraw.Draw(caption)
        draw.text((4, 2), first, fill=(0, 0, 0))
        draw.text((4, 15), second, fill=(90, 90, 90))
        frame.paste(caption, (x, y))
    return frame.quantize(colors=128, method=Image.Quantize.MEDIANCUT)  # median cut: no dither noise


def _write_gif(frames: list, path: Path, fps: float) -> None:
    """An endlessly looping GIF, written atomically (a reader never sees half a film)."""
    duration = max(20, int(round(1000.0 / fps)))  # browsers slow frames under 20 ms down to 100 ms

    def write(tmp: str) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)

    atomic_write(path, write)


def default_film_path(folder: Path) -> Path:
    """``RUN_DIR/videos/policies.gif``; for a board submission's policy folder (``submissions/<id>/policies/seed-S``)
    ``runs/videos/<id>-seed-S.gif`` instead: a film written into the board would be committed with it."""
    submission = folder.parent.parent
    if (submission / "submission.json").is_file() and submission.parent.name == "submissions":
        return Path("runs") / "videos" / f"{submission.name}-{folder.name}.gif"
    return folder / VIDEO_FILE


@dataclass
class Args:
    """Film the saved policies of a run (``--save-model``) or of a board submission's policy folder."""

    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """a run folder with policies.json and policies.safetensors, or a submission's policies/seed-S-tT folder"""
    out: Annotated[Optional[str], tyro.conf.arg(help_behavior_hint="(default: RUN_DIR/videos/policies.gif; for a "
                                                "board submission's folder runs/videos/<submission>-<seed folder>.gif)")] = None
    """where the GIF goes: beside a run's policies, never inside a board's submissions/ (git tracks them)"""
    steps: int = 300
    """steps of each policy's episode to film (at most the time limit)"""
    every: int | None = None
    """film every this-many steps (default: keep the film within 150 frames)"""
    seed: Annotated[Optional[int], tyro.conf.arg(help_behavior_hint="(default: the run's --eval-seed, as "
                                                 "--capture-video films; a board submission's first held-out seed)")] = None
    """reset seed of every policy's episode: by default the film --capture-video made, or the board's scored episode"""
    width: int = 240
    """width of one policy's picture in pixels"""
    height: int = 180
    """height of one policy's picture in pixels"""


def main(argv: list[str] | None = None) -> int:
    from rmdp_train.cli import fail
    from rmdp_train.policies import load_policies_or_fail, recorded_assignment, recorded_eval_seed

    args = tyro.cli(Args, args=argv, prog="python -m rmdp_train.video")
    folder = Path(args.run_dir)
    policies = load_policies_or_fail(folder)
    out = Path(args.out) if args.out else default_film_path(folder)
    seed = recorded_eval_seed(folder) if args.seed is None else args.seed
    try:
        film = record_policies(policies, policies.env_id, policies.k, out, env_kwargs=policies.env_kwargs,
                               assignment=recorded_assignment(folder), seed=seed, steps=args.steps, every=args.every,
                               tile=(args.width, args.height), progress=True)
    except (ValueError, RuntimeError) as e:
        fail(str(e))
    print(f"wrote {film.path} ({film.frames} frames; users' mean return per policy: "
          f"{', '.join(f'{r:.2f}' for r in film.returns)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
