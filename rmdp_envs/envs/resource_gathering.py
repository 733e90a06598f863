"""The paper's modified Resource Gathering: every cell of a 5x5 grid is a user who wants it visited."""

from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces

from rmdp_envs.bounds import walk_cover_bound
from rmdp_envs.core import check_k, check_render_mode, make_reward_space
from rmdp_envs.population import Population
from rmdp_envs.results import available_memory

# Row/column change of each action: up, down, left, right.
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)


class ResourceGatheringEnv(gym.Env):
    """Resource Gathering with one user (user) per cell, after Ivanov & Ben-Porat (AAAI 2024).

    ## Description
    A robot walks a 5x5 grid with no enemies or resources. It starts at home (row 4, column 2)
    and the episode ends when it steps onto home again. User ``i`` wants cell ``i`` (row-major)
    visited before the robot comes home, and prefers short trips.

    ## Action space
    ``Discrete(4)``: 0 up, 1 down, 2 left, 3 right. A move into a wall keeps the position.

    ## Observation space
    ``Box(27,)`` float32: the robot's row and column, then the 25-cell visited map (row-major;
    a cell is visited once the robot has stood on it, home included from the start).

    ## Rewards
    A vector of 25 float32 values. When the robot steps onto home at step ``T`` (a wall bump at
    home counts), every user whose cell was visited gets ``1 - T/100``; every other reward is 0.
    An episode truncated at the step limit pays nothing. The best single trip for user ``i`` is the
    shortest round trip to its cell (``T = 1`` for home: bump the wall), so full personalization
    averages 0.9356 per user.

    ## Population
    Fixed: user ``i`` is cell ``i``; ``population.params[i] = (row, col)``.

    ## Info
    ``reset``: ``{"steps": 0}``; ``step``: ``steps`` (moves so far) and ``visited`` (a copy of the
    ``(size * size,)`` bool map the observation carries).

    ## Starting state and episode end
    Deterministic start at home. Terminates on stepping onto home; truncated after 40 steps
    (``max_episode_steps`` of the registration).

    ## Rendering
    ``"ansi"``: one text row per grid row (``R`` robot, ``H`` home, ``x`` visited, ``.`` not yet).
    ``"rgb_array"``: the same picture as an ``(size * 32, size * 32, 3)`` uint8 image (visited
    cells green, home blue, the robot a dark square), what ``rmdp_train.video`` films. The cells
    of the users in ``highlighted_users`` (default none; the film sets a policy's users) get a
    dark frame: whom the robot works for.

    ## Version History
    * v0: initial version (the paper's 5x5 map, home (4, 2), 40-step limit).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4, "rmdp_evaluation": "exact",
                "rmdp_family": "gridworld"}
    #: pixels per cell of the ``rgb_array`` picture, and its colours
    CELL_PIXELS = 32
    COLOURS = {"empty": (236, 236, 236), "visited": (150, 214, 150), "home": (120, 160, 230), "robot": (40, 40, 40),
               "grid": (255, 255, 255)}

    #: Bytes a cell (a user) holds at the least: its parameters (2 float64), the observation space's bounds (float32
    #: and float64 while built), the visited map and a reward vector (float32).
    BYTES_PER_CELL = 64

    def __init__(self, size: int = 5, home: tuple[int, int] = (4, 2), render_mode: str | None = None):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        if (not isinstance(home, (tuple, list, np.ndarray)) or len(home) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in home)):
            raise ValueError(f"home must be a (row, column) pair of integers, got {home!r}")
        if not (0 <= home[0] < size and 0 <= home[1] < size):
            raise ValueError(f"home {tuple(map(int, home))} is outside the {size}x{size} grid")
        need = self.BYTES_PER_CELL * size * size  # estimated before anything of that size is built; memory read
        available = available_memory() if need > 2**28 else None  # only where it could matter (not per copy)
        if available is not None and need > available:
            raise ValueError(f"a {size}x{size} grid has {size * size:,} users and needs about {need / 2**30:.1f} GiB, "
                             f"but {available / 2**30:.1f} GiB are available")
        check_render_mode(render_mode, self.metadata, type(self).__name__)
        self.size = size
        self.home = np.array(home, dtype=np.int64)
        self.render_mode = render_mode
        cells = np.ascontiguousarray(np.indices((size, size), dtype=np.float64).reshape(2, -1).T)  # (row, col), row-major
        self.population = Population(params=cells, kind="cells", seed=None, meta={"size": size, "home": list(home)})
        n = size * size
        self.reward_space = make_reward_space(n, 0.0, 1.0)
        self.action_space = spaces.Discrete(4)
        high = np.concatenate([[size - 1, size - 1], np.ones(n)]).astype(np.float32)
        self.observation_space = spaces.Box(low=np.zeros(n + 2, dtype=np.float32), high=high, dtype=np.float32)
        self._position = self.home.copy()
        self._visited = np.zeros(n, dtype=bool)
        self._steps = 0
        self._ended = False
        self.highlighted_users: list[int] = []  # rgb_array frames these users' cells (rendering only)

    @property
    def n_agents(self) -> int:
        return self.population.n

    def full_personalization_welfare(self) -> dict:
        """Closed form: user ``i`` alone would take the shortest round trip to its cell (home: bump a wall)."""
        steps, _ = self._round_trips()
        return {"welfare": float(np.mean(1.0 - steps / 100.0)),
                "source": "closed form: shortest round trip to each user's cell"}

    def _round_trips(self) -> tuple[np.ndarray, int]:
        steps = (np.abs(self.population.params - self.home).sum(axis=1) * 2).astype(np.int64)
        home_user = int(np.flatnonzero(steps == 0)[0])
        steps[home_user] = 1  # home: bump a wall
        return steps, home_user

    def welfare_upper_bound(self, k: int) -> dict:
        """Certified upper bound of k closed walks (:func:`rmdp_envs.bounds.walk_cover_bound`); exact at k = 1."""
        k = check_k(k, self.n_agents)
        steps, home_user = self._round_trips()
        max_steps = gym.spec(self.spec.id).max_episode_steps if self.spec is not None else 40
        value = walk_cover_bound(steps, home_user, k, max_steps) / self.n_agents
        return {"welfare": round(value, 6), "kind": "upper bound",
                "derivation": "capacity relaxation of k closed walks from home: a T-step walk visits at most T cells, "
                              "each within round trip T, and pays 1 - T/100 to each; solved exactly by a DP (k = 1: "
                              "0.74, attained by a 26-step walk through every cell; k >= 10 reaches full personalization)"}

    def _cell(self, position: np.ndarray) -> int:
        return int(position[0] * self.size + position[1])

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._position, self._visited]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._position = self.home.copy()
        self._visited[:] = False
        self._visited[self._cell(self._position)] = True
        self._steps = 0
        self._ended = False
        return self._obs(), {"steps": 0}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, 4), got {action!r}")
        if self._ended:  # as the tabular r-MDPs: home again would pay the visited cells a second time
            raise RuntimeError("the episode has ended (the robot is home); call reset()")
        self._steps += 1
        self._position = np.clip(self._position + MOVES[int(action)], 0, self.size - 1)
        self._visited[self._cell(self._position)] = True
        terminated = self._ended = bool(np.array_equal(self._position, self.home))
        if terminated:
            reward = self._visited.astype(np.float32) * np.float32(1.0 - self._steps / 100.0)
        else:
            reward = np.zeros(self.n_agents, dtype=np.float32)
        info = {"steps": self._steps, "visited": self._visited.copy()}
        return self._obs(), reward, terminated, False, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self._picture()
        if self.render_mode != "ansi":
            return None
        rows = []
        for r in range(self.size):
            row = ""
            for c in range(self.size):
                if (r, c) == tuple(self._position):
                    row += "R"
                elif (r, c) == tuple(self.home):
                    row += "H"
                else:
                    row += "x" if self._visited[r * self.size + c] else "."
            rows.append(row)
        return "\n".join(rows)

    def _picture(self) -> np.ndarray:
        """The grid as an image: one ``CELL_PIXELS`` square per cell, a white line between cells."""
        px, colours = self.CELL_PIXELS, self.COLOURS
        cells = np.where(self._visited.reshape(self.size, self.size, 1), colours["visited"], colours["empty"])
        cells[tuple(self.home)] = colours["home"]
        image = np.repeat(np.repeat(cells.astype(np.uint8), px, axis=0), px, axis=1)
        image[::px], image[:, ::px] = colours["grid"], colours["grid"]
        for user in self.highlighted_users:  # a 2-pixel frame inside the cell
            r, c = divmod(int(user), self.size)
            cell = image[r * px + 1:(r + 1) * px, c * px + 1:(c + 1) * px]
            cell[:2], cell[-2:], cell[:, :2], cell[:, -2:] = (colours["robot"],) * 4
        r, c = (int(v) * px for v in self._position)
        image[r + px // 4:r + px - px // 4, c + px // 4:c + px - px // 4] = colours["robot"]
        return image
