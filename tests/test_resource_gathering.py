"""The paper's Resource Gathering: dynamics, rewards and the 0.9356 full-personalization bound."""

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import rmdp_envs  # noqa: F401  (registers the rmdp/ ids: this file runs alone too)

UP, DOWN, LEFT, RIGHT = range(4)
HOME_CELL = 4 * 5 + 2


def play(actions):
    env = gym.make("rmdp/ResourceGathering-v0")
    obs, _ = env.reset(seed=0)
    total = np.zeros(25)
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        total += reward
        if terminated or truncated:
            return total, terminated, truncated, obs
    return total, False, False, obs


def best_return(agent: int) -> tuple[float, list[int]]:
    """Breadth-first search over action sequences, run through the env itself, for one agent's best return.

    Rewards only come at termination and fall with episode length, so the shortest sequence that
    ends at home with the agent's cell visited is optimal.
    """
    queue = deque([[]])
    seen = set()
    while queue:
        prefix = queue.popleft()
        for a in range(4):
            total, terminated, truncated, obs = play(prefix + [a])
            if terminated and total[agent] > 0:
                return float(total[agent]), prefix + [a]
            if terminated or truncated:
                continue
            key = (tuple(obs[:2]), bool(obs[2 + agent]))
            if key not in seen:
                seen.add(key)
                queue.append(prefix + [a])
    raise AssertionError(f"agent {agent} can never be rewarded")


def test_full_personalization_bound_is_0_9356():
    returns = [best_return(i)[0] for i in range(25)]
    assert np.mean(returns) == pytest.approx(0.9356, abs=1e-6)  # float32 rewards
    assert returns[HOME_CELL] == pytest.approx(0.99)  # one wall bump at home
    assert returns[0] == pytest.approx(1 - 12 / 100)  # corner (0, 0): 6 steps out, 6 back


def test_round_trip_rewards_everyone_visited():
    total, terminated, truncated, obs = play([UP, UP, DOWN, DOWN])
    assert terminated and not truncated
    visited = {HOME_CELL, 17, 12}
    for i in range(25):
        assert total[i] == pytest.approx(0.96 if i in visited else 0.0)
    assert obs[:2].tolist() == [4, 2]


def test_wall_bump_keeps_position_and_at_home_terminates():
    total, terminated, _, obs = play([LEFT, LEFT, LEFT, RIGHT, RIGHT])  # (4,0) bump, back to home
    assert terminated and total[HOME_CELL] == pytest.approx(0.95) and total[20] == pytest.approx(0.95)
    total, terminated, _, _ = play([DOWN])
    assert terminated and total[HOME_CELL] == pytest.approx(0.99) and total.sum() == pytest.approx(0.99)


def test_truncated_episode_pays_nothing():
    env = gym.make("rmdp/ResourceGathering-v0")
    env.reset(seed=0)
    env.step(UP)
    total = 0.0
    for t in range(39):
        _, reward, terminated, truncated, _ = env.step(LEFT if t % 2 else RIGHT)
        total += reward.sum()
        assert not terminated
    assert truncated and total == 0.0


def test_observation_is_position_and_visited_map():
    env = gym.make("rmdp/ResourceGathering-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (27,) and obs[:2].tolist() == [4, 2]
    assert obs[2:].sum() == 1 and obs[2 + HOME_CELL] == 1
    obs, *_ = env.step(UP)
    assert obs[:2].tolist() == [3, 2] and obs[2 + 17] == 1


def test_rgb_array_draws_the_robot_and_the_visited_cells():
    env = gym.make("rmdp/ResourceGathering-v0", render_mode="rgb_array")
    env.reset(seed=0)
    px, colours = env.unwrapped.CELL_PIXELS, env.unwrapped.COLOURS
    start = env.render()
    assert start.shape == (5 * px, 5 * px, 3) and start.dtype == np.uint8

    def colour(image, row, col):  # a pixel inside the cell, off the robot's square
        return tuple(image[row * px + 2, col * px + 2])

    def robot(image, row, col):
        return tuple(image[row * px + px // 2, col * px + px // 2])

    assert robot(start, 4, 2) == colours["robot"] and colour(start, 4, 2) == colours["home"]
    assert colour(start, 3, 2) == colours["empty"]
    env.step(UP)
    moved = env.render()
    assert robot(moved, 3, 2) == colours["robot"] and colour(moved, 3, 2) == colours["visited"]
    assert robot(moved, 4, 2) == colours["home"]  # the robot left home
    text_env = gym.make("rmdp/ResourceGathering-v0", render_mode="ansi")
    text_env.reset(seed=0)
    text = text_env.render()
    assert isinstance(text, str) and text.count("R") == 1, text  # the text view shows the one robot
    env.unwrapped.highlighted_users = [0]  # a policy's users get a dark frame (what the films show)
    framed = env.render()
    assert tuple(framed[2, 2]) == colours["robot"] and tuple(framed[px // 2, 2]) == colours["robot"]
    assert tuple(framed[px + 2, px + 2]) == colours["empty"]  # cell (1, 1) is no one's here
    assert np.array_equal(framed[3 * px:, :], moved[3 * px:, :])  # the rest of the picture is unchanged


def test_stepping_after_the_episode_ended_raises_until_reset():
    """Home again would pay the visited cells a second time: like the tabular r-MDPs, the env refuses the step."""
    env = gym.make("rmdp/ResourceGathering-v0")
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(DOWN)  # a wall bump at home: home, the episode ends
    assert terminated and reward.sum() == pytest.approx(0.99)
    with pytest.raises(RuntimeError, match="the episode has ended"):
        env.step(DOWN)
    env.reset(seed=0)
    assert env.step(DOWN)[2]


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 10**6}, "GiB"),  # 10^12 users: estimated and refused, never built (the kernel killed it at 22 GB)
    ({"size": 5.5}, "integer"),
    ({"size": "big"}, "integer"),
    ({"size": float("nan")}, "integer"),
    ({"home": (1,)}, "pair"),
    ({"size": 3}, "outside the 3x3 grid"),
])
def test_bad_grids_are_refused_before_anything_is_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("rmdp/ResourceGathering-v0", **kwargs)
