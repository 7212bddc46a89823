"""Lesson 3's checks pass the references and fail plausible wrong answers with a useful message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_lib.checks import CheckFailed
from course_lib.checks.lesson03 import (
    bellman_backup_cases,
    check_bellman_backup,
    check_greedy_policy,
    check_value_iteration_sweep,
    greedy_policy,
    random_mdp,
    value_iteration_sweep,
)
from course_lib.envs.maze import MazeRobotEnv
from course_lib.tabular.dp import bellman_backup, value_iteration


# ---- the references and the cases ------------------------------------------------------------


@pytest.mark.parametrize(
    "check, reference, n",
    [(check_bellman_backup, bellman_backup, 7), (check_value_iteration_sweep, value_iteration_sweep, 6),
     (check_greedy_policy, greedy_policy, 6)],
)
def test_reference_passes(capsys, check, reference, n):
    result = check(reference)
    assert result.status == "pass" and result.passed == result.total == n
    assert f"[x] {result.exercise}: all {n} cases passed" in capsys.readouterr().out


def test_random_mdps_are_valid_and_seeded():
    P, R, done, V = random_mdp(1, 5, 3, p_done=0.3)
    assert P.shape == (5, 3, 5) and R.shape == (5, 3) and done.shape == (5, 3, 5) and V.shape == (5,)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0)
    assert (P >= 0).all() and done.dtype == bool and done.any() and not done.all()
    for a, b in zip(random_mdp(1, 5, 3, p_done=0.3), (P, R, done, V)):
        np.testing.assert_array_equal(a, b)
    # the terminal-transition case really puts probability on terminating transitions
    P, _, done, _, _ = bellman_backup_cases()[1].args
    assert (P * done).sum() > 1.0


def test_sweep_reference_repeated_is_value_iteration():
    model = MazeRobotEnv("small", slip=0.2).model
    P, R, done = model.arrays()
    V = np.zeros(model.n_states)
    for _ in range(2000):
        V_new = value_iteration_sweep(P, R, done, V, 0.95)
        if np.abs(V_new - V).max() < 1e-12:
            break
        V = V_new
    np.testing.assert_allclose(V, value_iteration(model, gamma=0.95, theta=1e-12).V, atol=1e-8)


# ---- wrong versions: bellman_backup -------------------------------------------------------------


def backup_ignores_done(P, R, done, V, gamma):
    return R + gamma * P @ V  # bootstraps through terminal transitions


def backup_forgets_gamma(P, R, done, V, gamma):
    return R + np.einsum("sat,sat,t->sa", P, ~done, V)


def backup_inverted_done(P, R, done, V, gamma):
    return R + gamma * np.einsum("sat,sat,t->sa", P, done, V)


def backup_value_of_current_state(P, R, done, V, gamma):
    return R + gamma * (P * ~done).sum(axis=-1) * V[:, None]


def backup_gamma_on_reward(P, R, done, V, gamma):
    return gamma * (R + np.einsum("sat,sat,t->sa", P, ~done, V))


def backup_returns_list(P, R, done, V, gamma):
    return bellman_backup(P, R, done, V, gamma).tolist()


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (backup_ignores_done, r"case 2 of 7 \(terminal transitions \(done True\): no bootstrapping"),
        (backup_forgets_gamma, r"case 1 of 7 \(3 states, 2 actions, no terminal transitions, gamma 0\.9.*first mismatch"),
        (backup_inverted_done, r"case 1 of 7 .*first mismatch at index \[0, 0\]"),
        (backup_value_of_current_state, r"case 1 of 7 .*first mismatch"),
        (backup_gamma_on_reward, r"case 1 of 7 .*first mismatch"),
        (backup_returns_list, r"case 1 of 7 .*expected a ndarray, got list"),
    ],
)
def test_bellman_backup_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_bellman_backup(wrong)
    assert "Hint:" in str(err.value)


def test_bellman_backup_hint_names_the_terminal_rule():
    with pytest.raises(CheckFailed, match=r"Hint: multiply each term .* by \(1 - done"):
        check_bellman_backup(backup_ignores_done)


def test_bellman_backup_gamma_zero_case_catches_gamma_on_the_reward_only_when_reached():
    # a version that is right except when gamma == 0 fails exactly the gamma-0 case
    def wrong_at_zero(P, R, done, V, gamma):
        return bellman_backup(P, R, done, V, gamma if gamma > 0 else 1.0)

    with pytest.raises(CheckFailed, match=r"case 3 of 7 \(gamma 0: Q\(s, a\) = R\(s, a\)"):
        check_bellman_backup(wrong_at_zero)


# ---- wrong versions: value_iteration_sweep ---------------------------------------------------


def sweep_max_over_states(P, R, done, V, gamma):
    return bellman_backup(P, R, done, V, gamma).max(axis=0)


def sweep_min(P, R, done, V, gamma):
    return bellman_backup(P, R, done, V, gamma).min(axis=1)


def sweep_forgets_gamma(P, R, done, V, gamma):
    return bellman_backup(P, R, done, V, 1.0).max(axis=1)


def sweep_bootstraps_through_terminal(P, R, done, V, gamma):
    return (R + gamma * P @ V).max(axis=1)


def sweep_mean(P, R, done, V, gamma):
    return bellman_backup(P, R, done, V, gamma).mean(axis=1)  # evaluates the random policy instead


def sweep_clipped_at_zero(P, R, done, V, gamma):
    return np.maximum(bellman_backup(P, R, done, V, gamma).max(axis=1), 0.0)


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (sweep_max_over_states, r"case 1 of 6 .*expected shape \(3,\), got shape \(2,\)"),
        (sweep_min, r"case 1 of 6 \(3 states, 2 actions, no terminal transitions, gamma 0\.9.*first mismatch"),
        (sweep_forgets_gamma, r"case 1 of 6 .*first mismatch"),
        (sweep_bootstraps_through_terminal, r"case 2 of 6 \(terminal transitions \(done True\)"),
        (sweep_mean, r"case 1 of 6 .*first mismatch"),
        (sweep_clipped_at_zero, r"case 3 of 6 \(all rewards and values negative"),
    ],
)
def test_value_iteration_sweep_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_value_iteration_sweep(wrong)
    assert "Hint:" in str(err.value)


def test_max_over_states_fails_on_values_when_shapes_agree():
    def square_only(P, R, done, V, gamma):  # right shape for S = A, wrong axis
        Q = bellman_backup(P, R, done, V, gamma)
        return Q.max(axis=0) if Q.shape[0] == Q.shape[1] else Q.max(axis=1)

    with pytest.raises(CheckFailed, match=r"case 4 of 6 \(as many actions as states .*first mismatch"):
        check_value_iteration_sweep(square_only)


# ---- wrong versions: greedy_policy ---------------------------------------------------------------


def policy_argmin(Q):
    return np.argmin(Q, axis=1)


def policy_last_on_ties(Q):
    return Q.shape[1] - 1 - np.argmax(Q[:, ::-1], axis=1)


def policy_over_states(Q):
    return np.argmax(Q, axis=0)


def policy_values_not_actions(Q):
    return Q.max(axis=1)


def policy_from_zero(Q):
    best = np.zeros(len(Q), dtype=int)
    for s in range(len(Q)):
        top = 0.0  # wrong: the best value can be negative
        for a in range(Q.shape[1]):
            if Q[s, a] > top:
                top, best[s] = Q[s, a], a
    return best


def policy_as_list(Q):
    return [int(a) for a in np.argmax(Q, axis=1)]


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (policy_argmin, r"case 1 of 6 \(5 states, 3 actions, no ties.*first mismatch"),
        (policy_last_on_ties, r"case 2 of 6 \(ties: the first best action wins"),
        (policy_over_states, r"case 1 of 6 .*expected shape \(5,\), got shape \(3,\)"),
        (policy_values_not_actions, r"case 1 of 6 .*expected dtype int64, got dtype float64"),
        (policy_from_zero, r"case 4 of 6 \(all values negative"),
        (policy_as_list, r"case 1 of 6 .*expected a ndarray, got list"),
    ],
)
def test_greedy_policy_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_greedy_policy(wrong)
    assert "Hint:" in str(err.value)


# ---- the stubs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [check_bellman_backup, check_value_iteration_sweep, check_greedy_policy])
def test_stub_is_reported_and_propagates(capsys, tmp_path, monkeypatch, check):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_KIT_CHECK_LOG", str(log))

    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise: implement this")

    with pytest.raises(NotImplementedError):
        check(stub)
    assert "not implemented yet" in capsys.readouterr().out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in records] == ["not-implemented"]


def test_a_stubbed_backup_inside_the_sweep_propagates():
    # in the exercise notebook the sweep calls the student's bellman_backup, which may still be a stub
    def stubbed_backup(*args):
        raise NotImplementedError

    def sweep(P, R, done, V, gamma):
        return stubbed_backup(P, R, done, V, gamma).max(axis=1)

    with pytest.raises(NotImplementedError):
        check_value_iteration_sweep(sweep)
