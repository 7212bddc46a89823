"""The agent-environment loop: discounted_return and run_episode (course_lib.envs.loop)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import course_lib.envs  # noqa: F401  (registers the ids)
from course_lib.envs.loop import Episode, discounted_return, run_episode
from course_lib.tabular.dp import value_iteration

RIGHT = 1


def test_discounted_return_matches_a_hand_computation():
    # G_0 = -1 + 0.9 * (-1) + 0.81 * 10 = -1.9 + 8.1
    assert discounted_return([-1.0, -1.0, 10.0], 0.9) == pytest.approx(6.2)
    # the shortest path to the cheese: 6 steps of -1, then +10 at t = 6
    expected = -sum(0.9**t for t in range(6)) + 10 * 0.9**6
    assert discounted_return([-1.0] * 6 + [10.0], 0.9) == pytest.approx(expected)


def test_discounted_return_edge_cases_of_gamma():
    rewards = [3.0, -5.0, 7.0]
    assert discounted_return(rewards, 0.0) == 3.0  # only r_1
    assert discounted_return(rewards, 1.0) == 5.0  # the plain sum
    assert discounted_return(rewards, 0) == 3.0 and discounted_return(rewards, 1) == 5.0  # ints are fine
    assert discounted_return([], 0.9) == 0.0


def test_discounted_return_takes_arrays_and_returns_a_python_float():
    rewards = np.random.default_rng(0).normal(size=50)  # (50,)
    got = discounted_return(rewards, 0.99)
    assert type(got) is float
    assert got == pytest.approx(float(np.sum(0.99 ** np.arange(50) * rewards)))


@pytest.mark.parametrize("gamma", [1.5, -0.1, float("nan"), "0.9", None, True])
def test_discounted_return_rejects_bad_gamma_naming_it(gamma):
    with pytest.raises(ValueError, match="gamma: expected a float in \\[0, 1\\]"):
        discounted_return([1.0], gamma)


def test_run_episode_stops_on_truncation_from_the_registered_time_limit():
    env = gym.make("course/MazeRobot-v0")
    assert env.spec.max_episode_steps == 100
    episode = run_episode(env, lambda s: RIGHT, seed=0)  # bumps into a wall forever
    assert isinstance(episode, Episode)
    assert len(episode.actions) == len(episode.rewards) == 100 and len(episode.states) == 101
    assert episode.truncated is True and episode.terminated is False
    assert episode.rewards == [-1.0] * 100


def test_run_episode_stops_on_termination_at_the_cheese():
    env = gym.make("course/MazeRobot-v0")
    pi = value_iteration(env.unwrapped.model).policy  # (S,) shortest-path actions
    episode = run_episode(env, lambda s: int(pi[s]), seed=0)
    assert episode.terminated is True and episode.truncated is False
    assert len(episode.actions) == 7  # the small maze's shortest path
    assert episode.rewards == [-1.0] * 6 + [10.0]
    assert episode.states[0] == env.unwrapped.start_state
    assert episode.states[-1] in env.unwrapped.model.terminal_states
    assert all(type(s) is int for s in episode.states) and all(type(a) is int for a in episode.actions)


def test_run_episode_max_steps_counts_as_truncation():
    episode = run_episode(gym.make("course/MazeRobot-v0"), lambda s: RIGHT, seed=0, max_steps=5)
    assert len(episode.actions) == 5 and episode.truncated is True and episode.terminated is False
    # a termination on the very last allowed step is a termination, not a truncation
    env = gym.make("course/MazeRobot-v0")
    pi = value_iteration(env.unwrapped.model).policy
    episode = run_episode(env, lambda s: int(pi[s]), seed=0, max_steps=7)
    assert episode.terminated is True and episode.truncated is False
    with pytest.raises(ValueError, match="max_steps: expected an int >= 1"):
        run_episode(env, lambda s: RIGHT, max_steps=0)


def test_run_episode_is_reproducible_with_the_same_seed():
    env = gym.make("course/MazeRobot-v0", slip=0.3)
    pi = value_iteration(env.unwrapped.model).policy
    policy = lambda s: int(pi[s])  # noqa: E731
    runs = {seed: [run_episode(env, policy, seed=seed) for _ in range(2)] for seed in range(6)}
    assert all(a == b for a, b in runs.values())  # same seed, same slips, same episode
    assert len({tuple(a.states) for a, _ in runs.values()}) > 1  # the seed matters when the floor is slippery
