"""Lesson 1's checks pass the library's reference and fail plausible wrong answers with a useful message."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson01 import (
    EXERCISES,
    check_cat_statement,
    check_concept_definitions,
    check_discounted_return,
    check_rl_loop_order,
    check_robot_story,
    check_run_episode,
    concept_definitions,
    rl_loop_order,
    robot_story,
)
from course_lib.envs.loop import Episode, discounted_return, run_episode

# ---- discounted_return ---------------------------------------------------------------


def test_discounted_return_reference_passes(capsys):
    result = check_discounted_return(discounted_return)
    assert result.status == "pass" and result.passed == result.total == 9
    assert "[x] discounted_return: all 9 cases passed" in capsys.readouterr().out


def _valid(gamma):
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma: expected a float in [0, 1], got {gamma!r}")


def exponent_off_by_one(rewards, gamma):
    _valid(gamma)
    return float(sum(gamma ** (t + 1) * r for t, r in enumerate(rewards)))


def no_discount(rewards, gamma):
    _valid(gamma)
    return float(sum(rewards))


def discounts_the_wrong_end(rewards, gamma):
    _valid(gamma)
    T = len(rewards)
    return float(sum(gamma ** (T - 1 - t) * r for t, r in enumerate(rewards)))


def no_validation(rewards, gamma):
    return float(sum(gamma**t * r for t, r in enumerate(rewards)))


def vague_error(rewards, gamma):
    if not 0 <= gamma <= 1:
        raise ValueError("bad input")
    return no_validation(rewards, gamma)


def recursion_without_base_case(rewards, gamma):
    _valid(gamma)
    return rewards[0] + gamma * recursion_without_base_case(rewards[1:], gamma) if len(rewards) > 1 else rewards[0]


def returns_the_list_of_terms(rewards, gamma):
    _valid(gamma)
    return [gamma**t * r for t, r in enumerate(rewards)]


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (exponent_off_by_one, r"case 1 of 9 \(three rewards, gamma 0.9.*: result: expected 6.2, got 5.58"),
        (no_discount, r"case 1 of 9 .*expected 6.2, got 8"),
        (discounts_the_wrong_end, r"case 1 of 9 .*expected 6.2, got 8.29"),
        (no_validation, r"case 8 of 9 \(gamma = 1.5 .*expected 'raises ValueError naming gamma', got 4"),
        (vague_error, r"case 8 of 9 .*got 'raises ValueError without the word gamma"),
        (recursion_without_base_case, r"case 5 of 9 \(an empty episode.* raised IndexError"),
        (returns_the_list_of_terms, r"case 1 of 9 .*result: expected a number, got list"),
    ],
)
def test_discounted_return_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_discounted_return(wrong)
    assert "Hint:" in str(err.value)


def test_discounted_return_stub_propagates(capsys):
    def stub(rewards, gamma):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_discounted_return(stub)
    assert "[ ] discounted_return: not implemented yet" in capsys.readouterr().out


def test_a_crash_on_a_valid_gamma_is_reported_not_swallowed():
    def raises_value_error(rewards, gamma):
        raise ValueError("gamma is fine, but I crash")

    with pytest.raises(CheckFailed, match=r"case 1 of 9 .* raised ValueError: gamma is fine"):
        check_discounted_return(raises_value_error)


# ---- run_episode ---------------------------------------------------------------------


def test_run_episode_reference_passes(capsys):
    result = check_run_episode(run_episode)
    assert result.status == "pass" and result.passed == result.total == 9
    assert "[x] run_episode: all 9 cases passed" in capsys.readouterr().out


def _loop(env, policy, seed, max_steps, *, reset_seed=True, keep_last_state=True, stop_on_truncation=True,
          truncate_on_max_steps=True, reward_lag=False, as_arrays=False):
    """run_episode with one switch per plausible mistake."""
    obs, _ = env.reset(seed=seed) if reset_seed else env.reset()
    states, actions, rewards = [int(obs)], [], []
    terminated = truncated = False
    previous_reward = 0.0
    for _ in range(max_steps):
        action = int(policy(obs))
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action)
        rewards.append(previous_reward if reward_lag else float(reward))
        previous_reward = float(reward)
        states.append(int(obs))
        if terminated or (truncated and stop_on_truncation):
            break
    else:
        truncated = truncated or truncate_on_max_steps
    if not keep_last_state:
        states = states[:-1]
    if as_arrays:
        return Episode(np.array(states), np.array(actions), np.array(rewards), terminated, truncated)
    return Episode(states, actions, rewards, bool(terminated), bool(truncated))


def drops_the_last_state(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, keep_last_state=False)


def ignores_truncation(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, stop_on_truncation=False)


def ignores_the_seed(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, reset_seed=False)


def max_steps_is_not_a_truncation(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, truncate_on_max_steps=False)


def reward_of_the_previous_step(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, reward_lag=True)


def numpy_arrays(env, policy, seed=None, max_steps=1000):
    return _loop(env, policy, seed, max_steps, as_arrays=True)


def plain_tuple(env, policy, seed=None, max_steps=1000):
    return tuple(run_episode(env, policy, seed, max_steps))


def policy_called_twice(env, policy, seed=None, max_steps=1000):
    def greedy_twice(s):
        policy(s)  # e.g. "print what the policy would do", which advances a random policy's generator
        return policy(s)

    return run_episode(env, greedy_twice, seed, max_steps)


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (drops_the_last_state, r"case 1 of 9 \(the shortest path.*result\[0\] \(states\): expected 8 items, got 7"),
        (ignores_truncation, r"case 2 of 9 \(always right.*result\[0\] \(states\): expected 101 items, got 1001"),
        # unseeded, the slips are random: usually case 3 differs, by chance a later slippery case
        (ignores_the_seed, r"case [3-9] of 9 .*slip=0\.[12]\), .*result\[0\] \(states\)"),
        (max_steps_is_not_a_truncation, r"case 6 of 9 \(max_steps=5.*result\[4\] \(truncated\): expected True, got False"),
        (reward_of_the_previous_step, r"case 1 of 9 .*result\[2\] \(rewards\)\[0\]: expected -1, got 0"),
        (numpy_arrays, r"case 1 of 9 .*result\[0\] \(states\): expected a list of 8 items, got ndarray"),
        (plain_tuple, r"case 1 of 9 .*result: expected an Episode of 5 items, got tuple"),
        (policy_called_twice, r"case 4 of 9 \(a uniform random agent"),
    ],
)
def test_run_episode_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_run_episode(wrong)
    assert "Hint:" in str(err.value)
    assert "input: gym.make('course/" in str(err.value)  # the case names its env, not an object address


def test_run_episode_stub_propagates(capsys):
    def stub(env, policy, seed=None, max_steps=1000):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_run_episode(stub)
    assert "[ ] run_episode: not implemented yet" in capsys.readouterr().out


def truncated_on_the_last_allowed_step(env, policy, seed=None, max_steps=1000):
    """Marks truncated=True whenever the episode used its whole budget, even when that last step terminated."""
    episode = run_episode(env, policy, seed, max_steps)
    if len(episode.actions) == max_steps:
        return episode._replace(truncated=True)
    return episode


def test_run_episode_rejects_truncated_on_a_step_that_terminated():
    with pytest.raises(CheckFailed, match=r"case 9 of 9 \(max_steps=7: the cheese is reached on the last allowed "
                                          r"step.*result\[4\] \(truncated\): expected False, got True") as err:
        check_run_episode(truncated_on_the_last_allowed_step)
    assert "terminated=True and truncated=False" in str(err.value)
    spec = EXERCISES["run_episode"]
    run = spec.call(truncated_on_the_last_allowed_step)
    reference = spec.call(run_episode)
    hidden = [c for c in spec.hidden_cases() if "last one max_steps allows" in c.about]
    assert hidden and run(*hidden[0].args, **hidden[0].kwargs) != reference(*hidden[0].args, **hidden[0].kwargs)


# ---- graded concept checks -----------------------------------------------------------


def test_the_concept_checks_pass_their_answers(capsys):
    for check, answer in ((check_robot_story, robot_story()), (check_cat_statement, " c "),
                          (check_rl_loop_order, rl_loop_order()), (check_concept_definitions, concept_definitions())):
        assert check(answer).status == "pass"


@pytest.mark.parametrize("check, answer, expected, right", [
    (check_cat_statement, "A", "the feeder box does not choose anything", "C"),
    (check_cat_statement, "b", "the cat cannot choose the food", "C"),
    (check_cat_statement, "D", "something in the cat changed", "C"),
    (check_robot_story, {**robot_story(), "the robot": "policy", "the robot's rule for choosing its next move": "agent"},
     r"2 of 6 answers.*'the robot' \(you chose 'policy'\): a policy is a rule", "agent"),
    (check_rl_loop_order, ["D", "A", "F", "B", "E", "C"],
     r"step 2 of your order is A .*must know its state before it can pick", None),
    (check_rl_loop_order, ["D", "F", "A", "B", "C", "E"],
     r"step 5 of your order is C .*should still learn from the last step", None),
    (check_rl_loop_order, ["D", "F", "A", "B"], r"each of the letters .* exactly once", None),
    (check_concept_definitions, {**concept_definitions(), "terminated": "g", "truncated": "f"},
     r"2 of 7 answers.*'terminated' \(you chose 'g'\): g is one of the two ways a run can end; terminated means", "f"),
    (check_concept_definitions, {**concept_definitions(), "return": "b", "value function": "c"},
     r"'return' \(you chose 'b'\): b is an average over many possible futures", "c"),
])
def test_a_wrong_concept_answer_says_why_without_giving_the_answer(check, answer, expected, right):
    with pytest.raises(CheckFailed, match=expected) as err:
        check(answer)
    message = str(err.value).split("Hint:")[0]
    if right is not None:
        assert f"'{right}'" not in message.replace(f"you chose '{right}'", "")
    assert str(rl_loop_order()) not in message  # never the order itself
