"""Lesson 2's checks pass the library's reference and fail plausible wrong answers with a useful message."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson02 import (
    bandit_update,
    check_bandit_update,
    check_epsilon_greedy_action,
    check_ucb_scores,
    epsilon_greedy_cases,
    split_inf,
)
from course_lib.tabular.bandits import epsilon_greedy_action, ucb_scores

# ---------------------------------------------------------------------------
# The references pass, and the stub's NotImplementedError propagates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "check, reference, name, total",
    [
        (check_bandit_update, bandit_update, "bandit_update", 8),
        (check_epsilon_greedy_action, epsilon_greedy_action, "epsilon_greedy_action", 14),
        (check_ucb_scores, ucb_scores, "ucb_scores", 8),
    ],
)
def test_reference_passes(check, reference, name, total, capsys):
    result = check(reference)
    assert result.status == "pass" and result.passed == result.total == total
    assert f"[x] {name}: all {total} cases passed" in capsys.readouterr().out


@pytest.mark.parametrize("check", [check_bandit_update, check_epsilon_greedy_action, check_ucb_scores])
def test_stub_propagates_not_implemented(check, capsys, tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_KIT_CHECK_LOG", str(log))

    def stub(*args):
        raise NotImplementedError("Exercise: implement this")

    with pytest.raises(NotImplementedError):
        check(stub)
    assert "not implemented yet" in capsys.readouterr().out
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == ["not-implemented"]


# ---------------------------------------------------------------------------
# bandit_update (the shared learning step, with the incremental mean inside)
# ---------------------------------------------------------------------------


def _update(step):
    def update(q, counts, arm, reward):
        q, counts = q.copy(), counts.copy()
        counts[arm] += 1
        q[arm] += step(counts[arm]) * (reward - q[arm])
        return q, counts

    return update


no_step_size = _update(lambda n: 1.0)  # forgets the 1/n: the estimate jumps to the latest reward
off_by_one = _update(lambda n: 1.0 / (n + 1))
constant_step = _update(lambda n: 0.1)  # a constant step size: a recency-weighted average, not the mean


def divides_by_the_old_count(q, counts, arm, reward):
    q, counts = q.copy(), counts.astype(float)
    q[arm] += (reward - q[arm]) / counts[arm]
    counts[arm] += 1
    return q, counts.astype(counts.dtype)


def changes_the_inputs(q, counts, arm, reward):
    counts[arm] += 1
    q[arm] += (reward - q[arm]) / counts[arm]
    return q.copy(), counts.copy()


def moves_every_lever(q, counts, arm, reward):
    q, counts = q.copy(), counts.copy()
    counts[arm] += 1
    q = q + (reward - q) / counts[arm]
    return q, counts


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (no_step_size, r"case 3 of 8 \(the second reward of lever 0: the mean of 1 and 0; .*\): result\[0\] \(q\): "
                       r"first mismatch at index \[0\]: expected 0.5, got 0"),
        (off_by_one, r"case 1 of 8 \(the first press .*\): result\[0\] \(q\): first mismatch at index \[2\]: "
                     r"expected 1, got 0.5"),
        (divides_by_the_old_count, r"case 1 of 8 .*result\[0\] \(q\): non-finite value"),
        (constant_step, r"case 1 of 8 .*result\[0\] \(q\): first mismatch at index \[2\]: expected 1, got 0.1"),
        (changes_the_inputs, r"case 1 of 8 .*result\[2\] \(inputs left unchanged\): expected True, got False"),
        (moves_every_lever, r"case 1 of 8 .*result\[0\] \(q\): first mismatch at index \[0\]: expected 0, got 1"),
    ],
)
def test_bandit_update_wrong_versions_fail(wrong, expected_message):
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(CheckFailed, match=expected_message) as err:
        check_bandit_update(wrong)
    assert "Hint:" in str(err.value)


# ---------------------------------------------------------------------------
# epsilon_greedy_action
# ---------------------------------------------------------------------------


def first_arm_on_ties(q, epsilon, rng):
    if rng.random() < epsilon:
        return int(rng.integers(len(q)))
    return int(np.argmax(q))  # a tie always goes to the first maximiser


def never_explores(q, epsilon, rng):
    rng.random()
    best = np.flatnonzero(q == q.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def inverted_coin(q, epsilon, rng):
    if rng.random() > epsilon:  # explores with probability 1 - epsilon
        return int(rng.integers(len(q)))
    best = np.flatnonzero(q == q.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def explores_only_the_others(q, epsilon, rng):
    greedy = int(np.argmax(q))
    if rng.random() < epsilon:
        others = [a for a in range(len(q)) if a != greedy]
        return int(rng.choice(others))
    best = np.flatnonzero(q == q.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def tie_break_before_coin(q, epsilon, rng):
    best = np.flatnonzero(q == q.max())
    greedy = int(rng.choice(best))  # draws in the wrong order
    if rng.random() < epsilon:
        return int(rng.integers(len(q)))
    return greedy


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (first_arm_on_ties, r"case 3 of 14 \(epsilon 0, arms 1 and 3 tie at 0.9; .*seed=0\): result: expected 3, got 1"),
        (never_explores, r"case 5 of 14 \(epsilon 1: always explore, .*\): result: expected 3, got 1"),
        (inverted_coin, r"case 1 of 14 \(epsilon 0: pure greedy.*\): result: expected 1, got [023]"),
        (explores_only_the_others, r"case 6 of 14 \(epsilon 1: exploring may pick the greedy arm too; .*\): "
                                   r"result: expected 1, got [023]"),
        (tie_break_before_coin, r"case 4 of 14 \(epsilon 0 before any pull: all 6 estimates are 0.*\): "
                                r"result: expected 4, got 2"),
    ],
)
def test_epsilon_greedy_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_epsilon_greedy_action(wrong)
    assert "Hint:" in str(err.value)


def test_epsilon_greedy_cases_probe_what_they_say():
    """The seeds are searched, so the tie and exploration cases really pick what their ``about`` claims."""
    cases = epsilon_greedy_cases()

    def pick(case):
        q, epsilon = case.args
        return epsilon_greedy_action(q, epsilon, np.random.default_rng(case.kwargs["seed"]))

    ties = [c for c in cases if "tie" in c.about and c.args[1] == 0.0]
    assert ties and all(pick(c) != int(np.argmax(c.args[0])) for c in ties)  # np.argmax would fail each
    explore = [c for c in cases if "explores" in c.about]
    assert explore and all(pick(c) != int(np.argmax(c.args[0])) for c in explore)


def test_epsilon_greedy_student_gets_a_fresh_generator_each_case():
    seen = []

    def records(q, epsilon, rng):
        seen.append(np.random.Generator.random(rng))  # the first number of its stream
        return epsilon_greedy_action(q, epsilon, np.random.default_rng(0))

    with pytest.raises(CheckFailed):
        check_epsilon_greedy_action(records)
    assert seen[0] == np.random.default_rng(0).random()


# ---------------------------------------------------------------------------
# ucb_scores
# ---------------------------------------------------------------------------


def no_sqrt(q, counts, t, c):
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = np.where(counts > 0, c * math.log(t) / np.maximum(counts, 1), np.inf)
    return q.astype(np.float64) + bonus


def no_log(q, counts, t, c):
    bonus = np.where(counts > 0, c * np.sqrt(t / np.maximum(counts, 1)), np.inf)
    return q.astype(np.float64) + bonus


def clamps_counts(q, counts, t, c):
    return q + c * np.sqrt(math.log(t) / np.maximum(counts, 1))  # no +inf: unpulled arms look pulled once


def divides_by_zero(q, counts, t, c):
    with np.errstate(divide="ignore", invalid="ignore"):
        return q + c * np.sqrt(np.log(t) / counts)  # inf only by luck; 0 / 0 = NaN at t = 1


def ignores_c(q, counts, t, c):
    bonus = np.full(q.shape, np.inf)
    pulled = counts > 0
    bonus[pulled] = np.sqrt(math.log(t) / counts[pulled])
    return q + bonus


def as_list(q, counts, t, c):
    return ucb_scores(q, counts, t, c).tolist()


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (no_sqrt, r"case 2 of 8 \(every arm pulled at least once, c = 0.5; .*\): "
                  r"result\[1\] \(finite scores\): first mismatch at index \[0\]"),
        (no_log, r"case 2 of 8 .*result\[1\] \(finite scores\): first mismatch"),
        (clamps_counts, r"case 1 of 8 \(t = 1, no arm pulled yet: every score is \+inf; .*\): "
                        r"result\[0\] \(is \+inf\): first mismatch at index \[0\]: expected True, got False"),
        (divides_by_zero, r"case 1 of 8 .*result\[0\] \(is \+inf\): first mismatch at index \[0\]: "
                          r"expected True, got False"),
        (ignores_c, r"case 2 of 8 .*result\[1\] \(finite scores\): first mismatch"),
        (as_list, r"case 1 of 8 .*result\[0\] \(is \+inf\): expected a ndarray, got list"),
    ],
)
def test_ucb_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_ucb_scores(wrong)
    assert "Hint:" in str(err.value)


def test_ucb_nan_for_an_unpulled_arm_is_reported_as_non_finite():
    def nan_for_unpulled(q, counts, t, c):
        scores = ucb_scores(q, counts, t, c)
        return np.where(np.isinf(scores), np.nan, scores)

    with pytest.raises(CheckFailed, match=r"result\[0\] \(is \+inf\): first mismatch at index \[0\]: expected True"):
        check_ucb_scores(nan_for_unpulled)


def test_split_inf_keeps_nan_and_minus_inf_visible():
    is_inf, finite = split_inf(np.array([1.0, np.inf, np.nan, -np.inf]))
    assert is_inf.tolist() == [False, True, False, False]
    assert finite[0] == 1.0 and finite[1] == 0.0 and np.isnan(finite[2]) and finite[3] == -np.inf
    assert split_inf([1.0]) == ([1.0], [1.0])
