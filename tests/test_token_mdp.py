"""The token-level MDP: Gymnasium's checks, the prefix numbering, the scorer, and the earlier lessons'
learners running on "text" unchanged (tabular Q-learning matches brute force; REINFORCE improves)."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import course_lib.envs  # noqa: F401  (registers course/TokenMDP-v0)
from course_lib.envs.token_mdp import DEFAULT_VOCAB, EOS, TokenMDPEnv, WordScorer
from course_lib.tabular.td import TDConfig, td_control


@pytest.mark.parametrize("observation", ["index", "onehot"])
def test_passes_gymnasium_check_env(observation):
    check_env(TokenMDPEnv(observation=observation), skip_render_check=True)


def test_registered_ids_make_both_observation_kinds():
    assert isinstance(gym.make("course/TokenMDP-v0").observation_space, gym.spaces.Discrete)
    space = gym.make("course/TokenMDPOneHot-v0").observation_space
    assert isinstance(space, gym.spaces.Box) and space.shape == (5 * (len(DEFAULT_VOCAB) - 1),)


def test_prefix_numbers_are_a_bijection_in_the_order_of_prefixes():
    env = TokenMDPEnv(max_tokens=3)
    prefixes = env.prefixes()
    assert len(prefixes) == env.n_prefixes == 1 + 5 + 25 + 125
    assert [env.prefix_index(p) for p in prefixes] == list(range(env.n_prefixes))


def test_an_episode_writes_the_chosen_words_and_scores_only_at_the_end():
    env = TokenMDPEnv()
    obs, info = env.reset(seed=0)
    assert obs == 0 and info["text"] == ""
    rewards = []
    for word in ("the", "robot", "found", "cheese"):
        obs, r, terminated, truncated, info = env.step(DEFAULT_VOCAB.index(word))
        rewards.append(r)
        assert not terminated and not truncated
    obs, r, terminated, truncated, info = env.step(0)  # EOS
    assert rewards == [0.0] * 4 and terminated and not truncated and info == {"text": "the robot found cheese",
                                                                              "eos": True}
    assert r == pytest.approx(0.1 + 0.3 + 0.6 + 1.0 + 3 * 0.5 + 0.5)


def test_the_length_limit_finishes_the_text_without_eos():
    env = TokenMDPEnv(max_tokens=2)
    env.reset()
    env.step(DEFAULT_VOCAB.index("found"))
    _, r, terminated, truncated, info = env.step(DEFAULT_VOCAB.index("cheese"))
    assert terminated and not truncated and info["eos"] is False
    assert r == pytest.approx(0.6 + 1.0 + 0.5)  # no EOS bonus


def test_onehot_observation_marks_one_word_per_written_position():
    env = TokenMDPEnv(observation="onehot", max_tokens=3)
    env.reset()
    obs, *_ = env.step(DEFAULT_VOCAB.index("robot"))
    obs, *_ = env.step(DEFAULT_VOCAB.index("lost"))
    grid = obs.reshape(3, 5)
    assert grid[0].argmax() == DEFAULT_VOCAB.index("robot") - 1 and grid[1].argmax() == DEFAULT_VOCAB.index("lost") - 1
    assert grid.sum() == 2 and grid[2].sum() == 0


def test_word_scorer_counts_weights_pairs_eos_and_repeats():
    scorer = WordScorer(weights={"a": 1.0, "b": -2.0}, pairs={("a", "b"): 3.0}, eos_bonus=0.25, repeat_penalty=0.5)
    assert scorer(()) == 0.0
    assert scorer(("a", "b", EOS)) == pytest.approx(1 - 2 + 3 + 0.25)
    assert scorer(("a", "a", "a")) == pytest.approx(3 - 2 * 0.5)
    with pytest.raises(ValueError, match="weights, pairs: expected finite float weights, got 'a': nan"):
        WordScorer(weights={"a": float("nan")})


def test_best_text_is_the_brute_force_maximum():
    env = TokenMDPEnv()
    best, score = env.best_text()
    assert best == ("the", "robot", "found", "cheese", EOS) and score == pytest.approx(4.0)
    words = DEFAULT_VOCAB[1:]
    every = [tuple(p) + (EOS,) for k in range(5) for p in itertools.product(words, repeat=k)]
    every += list(itertools.product(words, repeat=5))
    assert max(env.scorer(w) for w in every) == pytest.approx(score)


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab": ("a", EOS)}, "vocab: expected distinct non-empty words with '<eos>' first"),
    ({"vocab": (EOS, "a", "a")}, "vocab: expected distinct"),
    ({"max_tokens": 0}, "max_tokens: expected an int in [1, 8], got 0"),
    ({"scorer": 3}, "scorer: expected a callable"),
    ({"observation": "pixels"}, "observation: expected 'index' or 'onehot', got 'pixels'"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError) as err:
        TokenMDPEnv(**kwargs)
    assert message in str(err.value)


def test_bad_action_is_rejected():
    env = TokenMDPEnv()
    env.reset()
    with pytest.raises(ValueError, match=r"action: expected a token index in \[0, 5\], got 9"):
        env.step(9)


def test_lesson_4_q_learning_finds_the_best_text_by_brute_force():
    """Tabular Q-learning, unchanged, on prefixes of up to 3 words (156 states)."""
    env = TokenMDPEnv(max_tokens=3)
    best, score = env.best_text()
    Q, _ = td_control(env, TDConfig(episodes=3000, alpha=0.5, gamma=1.0, epsilon=1.0), seed=0)
    obs, _ = env.reset()
    done, words = False, []
    while not done:
        action = int(Q[obs].argmax())
        words.append(DEFAULT_VOCAB[action])
        obs, r, done, _, _ = env.step(action)
    assert tuple(words) == best and r == pytest.approx(score)
    assert Q[0].max() == pytest.approx(score, abs=1e-3)  # Q(empty prefix, best first word) -> the best score


def test_lesson_6_reinforce_runs_on_text_and_raises_the_score():
    from course_lib.deep.reinforce import ReinforceConfig, reinforce

    config = ReinforceConfig(episodes=600, episodes_per_batch=20, lr=2e-2, gamma=1.0, hidden=32)
    _, history = reinforce("course/TokenMDPOneHot-v0", config, seed=0, progress=False)
    first, last = np.mean(history.returns[:60]), np.mean(history.returns[-60:])
    assert last > first + 1.0, (first, last)
