"""Lesson 4's checks pass the library's TD targets and fail plausible wrong versions with a useful message."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson04 import (
    check_double_q_target,
    check_expected_sarsa_target,
    check_q_learning_target,
    check_sarsa_target,
    double_q_target_cases,
    expected_sarsa_target_cases,
    q_learning_target_cases,
    sarsa_target_cases,
)
from course_lib.tabular.td import double_q_target, expected_sarsa_target, q_learning_target, sarsa_target

CHECKS = {
    "q_learning_target": (check_q_learning_target, q_learning_target, q_learning_target_cases),
    "sarsa_target": (check_sarsa_target, sarsa_target, sarsa_target_cases),
    "expected_sarsa_target": (check_expected_sarsa_target, expected_sarsa_target, expected_sarsa_target_cases),
    "double_q_target": (check_double_q_target, double_q_target, double_q_target_cases),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_passes(name, capsys):
    check, reference, cases = CHECKS[name]
    result = check(reference)
    n = len(cases())
    assert result.status == "pass" and result.passed == result.total == n
    assert f"[x] {name}: all {n} cases passed" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cases_are_seeded_and_cover_terminal_transitions(name):
    _, reference, cases = CHECKS[name]
    first, second = cases(), cases()
    assert [reference(*c.args) for c in first] == [reference(*c.args) for c in second]
    assert all(c.about and c.hint for c in first)
    assert any(c.args[-1] is True for c in first) and any(c.args[-1] is False for c in first)
    assert all(type(reference(*c.args)) is float for c in first)


# ---- numpy scalars and ints are numbers too ---------------------------------------------


def q_learning_numpy(reward, q_next, gamma, terminated):
    return np.float64(reward) if terminated else reward + gamma * np.max(q_next)  # np.float64, not float


def sarsa_numpy(reward, q_next_action, gamma, terminated):
    return np.float64(reward + (0.0 if terminated else gamma * q_next_action))


def expected_sarsa_numpy(reward, q_next, probs_next, gamma, terminated):
    if terminated:
        return np.float64(reward)
    keep = probs_next > 0
    return reward + gamma * np.sum(probs_next[keep] * q_next[keep])


def double_q_numpy(reward, q_select_next, q_eval_next, gamma, terminated):
    return np.float64(reward) if terminated else reward + gamma * q_eval_next[np.argmax(q_select_next)]


@pytest.mark.parametrize("name, fn", [("q_learning_target", q_learning_numpy), ("sarsa_target", sarsa_numpy),
                                      ("expected_sarsa_target", expected_sarsa_numpy),
                                      ("double_q_target", double_q_numpy)])
def test_numpy_float64_results_pass(name, fn):
    check, _, cases = CHECKS[name]
    assert any(isinstance(fn(*c.args), np.float64) for c in cases())  # the point of this test
    assert check(fn).status == "pass"


# ---- wrong versions ---------------------------------------------------------------------


def q_bootstraps_on_terminal(reward, q_next, gamma, terminated):
    return float(reward + gamma * np.max(q_next))


def q_forgets_gamma(reward, q_next, gamma, terminated):
    return float(reward) if terminated else float(reward + np.max(q_next))


def q_uses_mean(reward, q_next, gamma, terminated):
    return float(reward) if terminated else float(reward + gamma * np.mean(q_next))


def q_uses_argmax(reward, q_next, gamma, terminated):
    return float(reward) if terminated else float(reward + gamma * np.argmax(q_next))


def q_max_from_zero(reward, q_next, gamma, terminated):
    best = 0.0
    for v in q_next:
        best = max(best, v)
    return float(reward) if terminated else float(reward + gamma * best)


def q_wrong_sign(reward, q_next, gamma, terminated):
    return float(reward) if terminated else float(reward - gamma * np.max(q_next))


def q_returns_array(reward, q_next, gamma, terminated):
    return np.array([q_learning_target(reward, q_next, gamma, terminated)])


def q_crashes(reward, q_next, gamma, terminated):
    return q_next[10]


@pytest.mark.parametrize(
    "wrong, message",
    [
        (q_bootstraps_on_terminal, r"case 2 of 10 \(s' is terminal \(terminated=True\);.*expected -?\d.*, got"),
        (q_forgets_gamma, r"case 1 of 10 \(a non-terminal step, gamma 0\.9;"),
        (q_uses_mean, r"(?s)case 1 of 10 .*Hint: target = r \+ gamma \* max_a' Q\(s', a'\): the best next value"),
        (q_uses_argmax, r"case 1 of 10 \(a non-terminal step"),
        (q_max_from_zero, r"case 4 of 10 \(every next value is negative;"),
        (q_wrong_sign, r"case 1 of 10 .*result: expected -?\d[\d.]*, got -?\d"),
        (q_returns_array, r"case 1 of 10 .*result: expected a number, got ndarray"),
        (q_crashes, r"case 1 of 10 .* raised IndexError"),
    ],
)
def test_q_learning_wrong_versions_fail(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_q_learning_target(wrong)
    assert "Hint:" in str(err.value)


def sarsa_bootstraps_on_terminal(reward, q_next_action, gamma, terminated):
    return float(reward + gamma * q_next_action)


def sarsa_forgets_gamma(reward, q_next_action, gamma, terminated):
    return float(reward) if terminated else float(reward + q_next_action)


def sarsa_td_error_sign(reward, q_next_action, gamma, terminated):
    return float(reward) if terminated else float(gamma * q_next_action - reward)


def sarsa_gamma_on_terminal_reward(reward, q_next_action, gamma, terminated):
    return float(gamma * reward) if terminated else float(reward + gamma * q_next_action)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (sarsa_bootstraps_on_terminal, r"(?s)case 2 of 8 \(s' is terminal \(terminated=True\);.*"
                                       r"Hint: terminated=True means s' is terminal"),
        (sarsa_forgets_gamma, r"case 1 of 8 \(a non-terminal step, gamma 0\.9;"),
        (sarsa_td_error_sign, r"case 1 of 8 .*result: expected"),
        (sarsa_gamma_on_terminal_reward, r"case 2 of 8 \(s' is terminal"),
    ],
)
def test_sarsa_wrong_versions_fail(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_sarsa_target(wrong)
    assert "Hint:" in str(err.value)


def expected_sarsa_uses_max(reward, q_next, probs_next, gamma, terminated):
    """Q-learning's max instead of the policy's expectation."""
    return float(reward) if terminated else float(reward + gamma * np.max(q_next))


def expected_sarsa_naive_dot(reward, q_next, probs_next, gamma, terminated):
    return float(reward) if terminated else float(reward + gamma * np.dot(probs_next, q_next))


def expected_sarsa_bootstraps_on_terminal(reward, q_next, probs_next, gamma, terminated):
    return float(reward + gamma * np.dot(probs_next, q_next))


def expected_sarsa_unweighted_sum(reward, q_next, probs_next, gamma, terminated):
    keep = probs_next > 0
    return float(reward) if terminated else float(reward + gamma * np.sum(q_next[keep]))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (expected_sarsa_uses_max, r"case 1 of 7 \(a non-terminal step, epsilon-greedy probabilities"),
        (expected_sarsa_naive_dot, r"(?s)case 6 of 7 \(invalid next actions: value -inf with probability 0;.*"
                                   r"expected a finite number, got nan.*Hint: 0 \* -inf is nan"),
        (expected_sarsa_bootstraps_on_terminal, r"case 2 of 7 \(s' is terminal"),
        (expected_sarsa_unweighted_sum, r"case 1 of 7 "),
    ],
)
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_expected_sarsa_wrong_versions_fail(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_expected_sarsa_target(wrong)


def double_q_same_table(reward, q_select_next, q_eval_next, gamma, terminated):
    """Selects and evaluates with Q1: plain Q-learning on one table, biased again."""
    return float(reward) if terminated else float(reward + gamma * np.max(q_select_next))


def double_q_eval_table_only(reward, q_select_next, q_eval_next, gamma, terminated):
    return float(reward) if terminated else float(reward + gamma * np.max(q_eval_next))


def double_q_swapped(reward, q_select_next, q_eval_next, gamma, terminated):
    return float(reward) if terminated else float(reward + gamma * q_select_next[np.argmax(q_eval_next)])


def double_q_bootstraps_on_terminal(reward, q_select_next, q_eval_next, gamma, terminated):
    return float(reward + gamma * q_eval_next[np.argmax(q_select_next)])


def double_q_forgets_gamma(reward, q_select_next, q_eval_next, gamma, terminated):
    return float(reward) if terminated else float(reward + q_eval_next[np.argmax(q_select_next)])


def double_q_last_tie(reward, q_select_next, q_eval_next, gamma, terminated):
    best = np.flatnonzero(q_select_next == np.max(q_select_next))[-1]  # the last of the tied actions
    return float(reward) if terminated else float(reward + gamma * q_eval_next[best])


@pytest.mark.parametrize(
    "wrong, message",
    [
        (double_q_same_table, r"(?s)case 1 of 8 \(a non-terminal step, gamma 0\.9, the two tables disagree;.*"
                              r"Hint: a' = argmax_a Q1\(s', a\) from the first table"),
        (double_q_eval_table_only, r"case 1 of 8 \(a non-terminal step"),
        (double_q_swapped, r"case 1 of 8 \(a non-terminal step"),
        (double_q_bootstraps_on_terminal, r"case 2 of 8 \(s' is terminal"),
        (double_q_forgets_gamma, r"case 1 of 8 \(a non-terminal step, gamma 0\.9"),
        (double_q_last_tie, r"(?s)case 4 of 8 \(two actions tie in the selecting table;.*Hint: break ties like np\.argmax"),
    ],
)
def test_double_q_wrong_versions_fail(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_double_q_target(wrong)


def test_double_q_masked_case_catches_selection_in_the_wrong_table():
    """With -inf in the selecting table only, choosing in the evaluating table picks an invalid action."""
    masked = double_q_target_cases()[4]
    reward, q_select, q_eval, gamma, terminated = masked.args
    assert np.argmax(q_eval) >= 2  # an action that is invalid in s'
    assert double_q_eval_table_only(*masked.args) != double_q_target(*masked.args)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_stub_propagates_not_implemented(name, capsys):
    check, _, _ = CHECKS[name]

    def stub(*args):
        raise NotImplementedError("Exercise: implement it")

    with pytest.raises(NotImplementedError):
        check(stub)
    assert f"[ ] {name}: not implemented yet" in capsys.readouterr().out
