"""The demo's helpers (`course_lib.kit.demo`); the whole demo runs in tests/test_cli.py (slow)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import course_lib.envs  # noqa: F401  (registers course/MazeRobot-v0)
from course_lib.kit.demo import feedback_settings, greedy_rollout
from course_lib.llm.overoptimisation import best_of_n_samples
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


def test_feedback_settings_are_the_validated_best_of_8_on_cpu_and_tiny_in_ci(monkeypatch):
    from course_lib.data.prompts import TEST_PROMPTS

    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    cpu = feedback_settings()
    assert (cpu["n"], cpu["max_new_tokens"], cpu["seed"], cpu["prompts"]) == (8, 24, 2024, TEST_PROMPTS)
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    ci = feedback_settings()
    assert ci["n"] * ci["max_new_tokens"] * len(ci["prompts"]) <= 128 and ci["prompts"] == TEST_PROMPTS[:4]


def length_score(prompts, replies):
    """A toy proxy: the reply's length in characters."""
    return [float(len(r)) for r in replies]


def vowel_share(prompts, replies):
    """A toy gold judge: the share of vowels in the reply."""
    return [sum(c in "aeiou" for c in r) / max(len(r), 1) for r in replies]


def test_best_of_n_samples_scores_every_sample_and_picks_the_proxys_top(tiny):
    model, tok = tiny
    prompts = ["Hello there.", "Tell me about ponds.", "Hi!"]
    model.train()
    s = best_of_n_samples(model, tok, prompts, n=5, proxy_fn=length_score, gold_fn=vowel_share, max_new_tokens=6,
                          seed=3, chunk=4)  # chunks that cut across prompts
    assert model.training  # the mode is restored
    assert s.n == 5 and s.proxy.shape == s.gold.shape == s.ended.shape == (3, 5) and len(s.texts) == 3
    for i, prompt in enumerate(prompts):  # every score belongs to its own reply, prompt by prompt
        assert len(s.texts[i]) == 5
        np.testing.assert_allclose(s.proxy[i], length_score([prompt] * 5, s.texts[i]))
        np.testing.assert_allclose(s.gold[i], vowel_share([prompt] * 5, s.texts[i]))
        assert s.ended[i].tolist() == [r.finished for r in s.texts[i]]
    np.testing.assert_array_equal(s.picked(), [int(np.argmax(row)) for row in s.proxy])  # first index on ties
    assert s.topics == prompts  # prompts outside the course's lists are their own topics
    again = best_of_n_samples(model, tok, prompts, n=5, proxy_fn=length_score, gold_fn=vowel_share, max_new_tokens=6,
                              seed=3, chunk=4)
    assert again.texts == s.texts  # one seed, the same samples


def test_best_of_n_with_the_gold_judge_as_proxy_picks_each_prompts_best_reply(tiny):
    model, tok = tiny
    s = best_of_n_samples(model, tok, ["Hello there.", "Tell me about ponds."], n=6, proxy_fn=vowel_share,
                          gold_fn=vowel_share, max_new_tokens=5, seed=0)
    picked = s.gold[np.arange(2), s.picked()]
    np.testing.assert_allclose(picked, s.gold.max(axis=1))
    assert (picked >= s.gold.mean(axis=1)).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"prompts": []}, "prompts: expected a non-empty list of formatted prompts"),
    ({"prompts": "Hello"}, "prompts: expected a non-empty list of formatted prompts"),
    ({"n": 0}, "n: expected an int >= 1, got 0"),
    ({"max_new_tokens": 0}, "max_new_tokens: expected an int >= 1, got 0"),
    ({"chunk": 1.5}, "chunk: expected an int >= 1, got 1.5"),
    ({"proxy_fn": lambda p, r: [0.0]}, "proxy_fn: expected one score per reply, got 1 for 2"),
    ({"gold_fn": lambda p, r: [0.0] * 3}, "gold_fn: expected one score per reply, got 3 for 2"),
])
def test_best_of_n_samples_rejects_bad_arguments(tiny, kwargs, message):
    model, tok = tiny
    args = {"prompts": ["Hi!"], "n": 2, "proxy_fn": length_score, "gold_fn": vowel_share, "max_new_tokens": 2,
            **kwargs}
    with pytest.raises(ValueError, match=message):
        best_of_n_samples(model, tok, **args)
