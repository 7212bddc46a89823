"""The maze robot env: Gymnasium API, layouts, the exact model, validation, rendering."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import course_lib.envs  # noqa: F401  (registers the ids)
from course_lib.envs import LAYOUTS, MaxBiasEnv, MazeRobotEnv

IDS = {"course/MazeRobot-v0": 100, "course/CliffMaze-v0": 200, "course/LargeMaze-v0": 400, "course/MaxBias-v0": 10}


@pytest.mark.parametrize("env_id", IDS)
def test_registered_ids_pass_check_env_with_warnings_as_errors(env_id):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == IDS[env_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_slippery_maze_passes_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("course/MazeRobot-v0", slip=0.2, render_mode="ansi").unwrapped)


def bfs_steps(layout) -> int:
    grid = [list(r) for r in layout]
    start = next((r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "S")
    dist = {start: 0}
    q = deque([start])
    while q:
        r, c = q.popleft()
        if grid[r][c] == "C":
            return dist[(r, c)]
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            n = (r + dr, c + dc)
            if grid[n[0]][n[1]] not in "#XT" and n not in dist:
                dist[n] = dist[(r, c)] + 1
                q.append(n)
    raise AssertionError("no path")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_model_matches_step(layout):
    """Every transition of the exact model is what step() does (deterministic floor)."""
    env = MazeRobotEnv(layout)
    m = env.model
    for s in range(m.n_states):
        if s in m.wall_states or s in m.terminal_states:
            continue
        for a in range(4):
            (t,) = m.transitions[s][a]
            env.reset(seed=0)
            env.state = s
            s2, r, terminated, truncated, _ = env.step(a)
            assert (s2, r, terminated, truncated) == (t.next_state, t.reward, t.terminated, False)


def test_slip_probabilities_sum_to_one_and_match_sampling():
    env = MazeRobotEnv("small", slip=0.3)
    P, R, done = env.model.arrays()
    np.testing.assert_allclose(P.sum(axis=2), 1.0)
    env.reset(seed=1)
    s = env.state_of(2, 3)
    counts = np.zeros(env.model.n_states)
    for _ in range(4000):
        env.state = s
        counts[env.step(1)[0]] += 1  # try to move right
    np.testing.assert_allclose(counts / counts.sum(), P[s, 1], atol=0.03)


def test_cliff_sends_back_to_start_and_cheese_terminates():
    env = MazeRobotEnv("cliff")
    env.reset(seed=0)
    s, r, terminated, _, _ = env.step(1)  # right from S: into the cliff
    assert (s, r, terminated) == (env.start_state, -100.0, False)
    env.state = env.state_of(3, 12)
    s, r, terminated, _, _ = env.step(2)  # down onto the cheese
    assert r == 10.0 and terminated and env.grid[env.cell_of(s)] == "C"


def test_time_limit_truncates_not_terminates():
    env = gym.make("course/MazeRobot-v0")
    env.reset(seed=0)
    for i in range(100):
        _, _, terminated, truncated, _ = env.step(0)  # bump into the wall above, forever
        assert not terminated
    assert truncated and i == 99


@pytest.mark.parametrize(
    "layout, message",
    [
        (["#####", "#..C#", "#####"], r"expected exactly one start 'S', got 0"),
        (["#####", "#S.S#", "#C..#", "#####"], r"got 2 at \(row 1, column 1\), \(row 1, column 3\)"),
        (["#####", "#S..#", "#####"], "expected at least one cheese 'C', got none"),
        (["#####", "#S.C#", "####"], "ragged rows: row 2 has 4 cells, row 0 has 5"),
        (["#####", "#S?C#", "#####"], r"unknown character '\?' at row 1, column 2"),
        (["#####", "#S#C#", "#####"], r"the cheese is unreachable from the start at \(row 1, column 1\)"),
        (["#####", "#STC#", "#####"], "the cheese is unreachable"),
        ([], "expected a non-empty list of strings"),
        ("tiny", r"layout: expected one of \['cliff', 'large', 'large_changed', 'small'\]"),
    ],
)
def test_invalid_layouts_say_what_and_where(layout, message):
    with pytest.raises(ValueError, match=message):
        MazeRobotEnv(layout)


@pytest.mark.parametrize("kwargs, message", [({"slip": 1.0}, r"slip: expected a probability in \[0, 1\), got 1.0"),
                                             ({"render_mode": "human"}, "render_mode: expected one of")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MazeRobotEnv("small", **kwargs)


@pytest.mark.parametrize("name", ["step_reward", "cheese_reward", "trap_reward", "cliff_reward"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_rewards_are_rejected_naming_the_argument(name, value):
    with pytest.raises(ValueError, match=rf"{name}: expected a finite number, got {value}"):
        MazeRobotEnv("cliff", **{name: value})


def test_bad_action_names_the_argument():
    env = MazeRobotEnv("small")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action: expected an int in \[0, 3\].*got 4"):
        env.step(4)


def test_renderings():
    env = MazeRobotEnv("small", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.splitlines()[1] == "#R..#.#" and text.count("C") == 1
    env.step(1)
    assert env.render().splitlines()[1] == "#SR.#.#"
    img = MazeRobotEnv("small", render_mode="rgb_array")
    img.reset(seed=0)
    frame = img.render()
    assert frame.shape == (6 * 24, 7 * 24, 3) and frame.dtype == np.uint8
    centre = frame[1 * 24 + 12, 1 * 24 + 12]
    assert tuple(centre) == (40, 110, 220)  # the robot is drawn on the start cell


def test_max_bias_env_masks_and_rewards():
    env = MaxBiasEnv(n_b=5)
    s, info = env.reset(seed=0)
    assert s == 0 and info["action_mask"].tolist() == [1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match=r"action: expected an int in \[0, 4\], got 7"):
        env.step(7)
    assert env.step(3)[1:3] == (0.0, True)  # an unmarked action in A acts like 'right'
    with pytest.raises(ValueError, match="the episode has ended"):
        env.step(0)
    env.reset()
    s, r, terminated, _, info = env.step(0)
    assert (s, r, terminated) == (1, 0.0, False) and info["action_mask"].all()
    rewards = []
    for _ in range(3000):
        env.reset()
        env.step(0)
        rewards.append(env.step(int(env.np_random.integers(5)))[1])
    assert abs(np.mean(rewards) + 0.1) < 0.06 and abs(np.std(rewards) - 1.0) < 0.05
