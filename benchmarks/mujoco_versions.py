"""Do two MuJoCo versions step the speed tasks alike? (The question behind lifting the mujoco pin.)

Run ``trajectories`` under each installed version (same seed, same random actions, 300 steps or to
the first episode end), then ``compare`` the two files: the first step whose observation differs
and the largest difference at steps 10, 50 and the last common step.

    python benchmarks/mujoco_versions.py trajectories a.npz        # e.g. in the project's .venv (3.15)
    /other/venv/bin/python benchmarks/mujoco_versions.py trajectories b.npz   # mujoco 4.0.0
    python benchmarks/mujoco_versions.py compare a.npz b.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: each robot's speed task (AntSpeed is -v1 since MuJoCo 4 changed its contacts; -v0 is refused)
ROBOTS = {"HalfCheetah": "rmdp/HalfCheetahSpeed-v0", "Hopper": "rmdp/HopperSpeed-v0",
          "Walker2d": "rmdp/Walker2dSpeed-v0", "Ant": "rmdp/AntSpeed-v1"}


def trajectories(path: str, steps: int = 300) -> None:
    import gymnasium as gym  # noqa: PLC0415
    import mujoco  # noqa: PLC0415

    import rmdp_envs  # noqa: F401, PLC0415

    out = {"mujoco": np.array(mujoco.__version__)}
    for robot, env_id in ROBOTS.items():
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        rng = np.random.default_rng(0)
        traj = [obs]
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            traj.append(obs)
            if terminated or truncated:
                break
        out[robot] = np.array(traj)
    np.savez(path, **out)
    print(f"mujoco {mujoco.__version__}: wrote {path}")


def compare(path_a: str, path_b: str) -> None:
    a, b = np.load(path_a), np.load(path_b)
    print(f"mujoco {a['mujoco']} vs {b['mujoco']}")
    for robot in ROBOTS:
        x, y = a[robot], b[robot]
        n = min(len(x), len(y))
        diff = np.abs(x[:n] - y[:n]).max(axis=1)
        first = np.flatnonzero(diff > 0)
        at = {s: f"{diff[min(s, n - 1)]:.2g}" for s in (10, 50)}
        print(f"{robot}: {len(x)} vs {len(y)} observations, first differing step "
              f"{first[0] if first.size else 'none'}, max |diff| at step 10 {at[10]}, 50 {at[50]}, "
              f"last common step {n - 1} {diff[-1]:.2g}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "trajectories":
        trajectories(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1:] in (["-h"], ["--help"]):
        print(__doc__)
    else:
        sys.exit(__doc__)
