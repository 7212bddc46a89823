"""The demo's helpers (`course_lib.kit.demo`); the whole demo runs in tests/test_cli.py (slow)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import course_lib.envs  # noqa: F401  (registers course/MazeRobot-v0)
from course_lib.kit.demo import greedy_rollout, rlhf_config
from course_lib.tabular.dp import value_iteration
from course_lib.tabular.td import greedy_path


@pytest.fixture
def maze():
    return gym.make("course/MazeRobot-v0")


def test_greedy_rollout_of_the_optimal_q_returns_v_star(maze):
    model = maze.unwrapped.model
    vi = value_iteration(model, gamma=0.99)
    discounted, total, steps, terminated = greedy_rollout(maze, vi.Q, gamma=0.99)
    assert terminated
    assert steps == len(greedy_path(maze, vi.Q)) - 1 == 7
    assert discounted == pytest.approx(vi.V[model.start_state], abs=1e-9)  # DP's exact value of the start
    rewards = maze.unwrapped.rewards
    assert total == pytest.approx(6 * rewards["step"] + rewards["cheese"])  # six steps, then the cheese


def test_greedy_rollout_that_never_arrives_is_truncated(maze):
    step = maze.unwrapped.rewards["step"]
    Q = np.zeros((maze.observation_space.n, maze.action_space.n))  # argmax = action 0 (up) everywhere: bumps a wall
    discounted, total, steps, terminated = greedy_rollout(maze, Q, gamma=0.5)
    assert not terminated and steps == maze.spec.max_episode_steps  # the env's time limit ended it
    assert total == pytest.approx(steps * step)
    assert discounted == pytest.approx(step * (1 - 0.5 ** steps) / (1 - 0.5))  # a geometric series
    assert greedy_rollout(maze, Q, gamma=1.0, max_steps=3) == pytest.approx((3 * step, 3 * step, 3, False))


@pytest.mark.parametrize("kwargs, message", [
    ({"Q": np.zeros((3, 4))}, "Q: expected shape"),
    ({"gamma": 1.5}, "gamma: expected a float in [0, 1], got 1.5"),
    ({"max_steps": 0}, "max_steps: expected an int >= 1, got 0"),
])
def test_greedy_rollout_rejects_bad_arguments(maze, kwargs, message):
    args = {"Q": np.zeros((maze.observation_space.n, 4)), "gamma": 0.9, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        greedy_rollout(maze, **args)


def test_rlhf_config_is_lesson_15s_kl_run_on_cpu_and_tiny_in_ci(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    cpu = rlhf_config()
    assert (cpu.steps, cpu.batch_size, cpu.max_new_tokens, cpu.kl_coef, cpu.learning_rate, cpu.ppo_epochs,
            cpu.trainable) == (12, 8, 16, 0.1, 4e-4, 2, "top:4")
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    ci = rlhf_config()
    assert ci.steps * ci.batch_size * ci.max_new_tokens <= 64 and ci.trainable == "top:1"
