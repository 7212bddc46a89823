"""Lesson 3's checks pass the references and fail plausible wrong answers with a useful message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_lib.checks import CheckFailed
from course_lib.checks.lesson03 import (
    bellman_backup_cases,
    check_bellman_backup,
    check_run_value_iteration,
    random_mdp,
    run_value_iteration,
    value_iteration_sweep,
)
from course_lib.envs.maze import MazeRobotEnv
from course_lib.tabular.dp import bellman_backup, value_iteration


# ---- the references and the cases ------------------------------------------------------------


@pytest.mark.parametrize(
    "check, reference, n",
    [(check_bellman_backup, bellman_backup, 7), (check_run_value_iteration, run_value_iteration, 7)],
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


# ---- wrong versions: run_value_iteration -------------------------------------------------------


def _vi(sweep, policy_of=lambda Q: Q.argmax(axis=1), stop=lambda change, theta: change.max() < theta):
    """Value iteration with one switch per plausible mistake."""

    def run(P, R, done, gamma, theta=1e-8):
        V = np.zeros(R.shape[0])
        for _ in range(10_000):
            V_new = sweep(P, R, done, V, gamma)
            change = np.abs(V_new - V)
            V = V_new
            if stop(change, theta):
                break
        return V, policy_of(bellman_backup(P, R, done, V, gamma))

    return run


vi_max_over_states = _vi(lambda P, R, done, V, g: bellman_backup(P, R, done, V, g).max(axis=0))
vi_min = _vi(lambda P, R, done, V, g: bellman_backup(P, R, done, V, g).min(axis=1))
vi_bootstraps_through_terminal = _vi(lambda P, R, done, V, g: (R + g * P @ V).max(axis=1))
vi_mean = _vi(lambda P, R, done, V, g: bellman_backup(P, R, done, V, g).mean(axis=1))
vi_clipped_at_zero = _vi(lambda P, R, done, V, g: np.maximum(bellman_backup(P, R, done, V, g).max(axis=1), 0.0))
vi_argmin_policy = _vi(value_iteration_sweep, policy_of=lambda Q: Q.argmin(axis=1))
vi_values_as_policy = _vi(value_iteration_sweep, policy_of=lambda Q: Q.max(axis=1))
vi_stops_when_one_state_settles = _vi(value_iteration_sweep, stop=lambda change, theta: change.min() < theta)


def vi_returns_q(P, R, done, gamma, theta=1e-8):
    V, policy = run_value_iteration(P, R, done, gamma, theta)
    return bellman_backup(P, R, done, V, gamma), policy


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (vi_max_over_states, r"case 1 of 7 .*raised ValueError: operands could not be broadcast"),
        (vi_min, r"case 1 of 7 \(3 states, 2 actions, no terminal transitions, gamma 0\.9.*result\[0\] \(V\): first mismatch"),
        (vi_bootstraps_through_terminal, r"case 2 of 7 \(terminal transitions \(done True\)"),
        (vi_mean, r"case 1 of 7 .*result\[0\] \(V\): first mismatch"),
        (vi_clipped_at_zero, r"case 3 of 7 \(all rewards negative"),
        (vi_argmin_policy, r"case 1 of 7 .*result\[1\] \(policy is greedy\): first mismatch at index \[\d\]: expected True, got False"),
        (vi_values_as_policy, r"case 1 of 7 .*result\[1\] \(policy is greedy\): expected a ndarray|expected dtype bool, got dtype float64"),
        (vi_stops_when_one_state_settles, r"case [3-7] of 7 .*result\[0\] \(V\): first mismatch"),
        (vi_returns_q, r"case 1 of 7 .*result\[0\] \(V\): expected shape \(3,\), got shape \(3, 2\)"),
    ],
)
def test_run_value_iteration_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_run_value_iteration(wrong)
    assert "Hint:" in str(err.value)


def test_a_policy_that_breaks_ties_the_other_way_is_accepted():
    def last_on_ties(P, R, done, gamma, theta=1e-8):
        V, _ = run_value_iteration(P, R, done, gamma, theta)
        Q = np.round(bellman_backup(P, R, done, V, gamma), 9)
        return V, Q.shape[1] - 1 - np.argmax(Q[:, ::-1], axis=1)

    assert check_run_value_iteration(last_on_ties).status == "pass"


# ---- the stubs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [check_bellman_backup, check_run_value_iteration])
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


def test_a_stubbed_backup_inside_value_iteration_propagates():
    # in the exercise notebook value iteration calls the student's bellman_backup, which may still be a stub
    def stubbed_backup(*args):
        raise NotImplementedError

    def vi(P, R, done, gamma, theta=1e-8):
        return stubbed_backup(P, R, done, np.zeros(R.shape[0]), gamma).max(axis=1), None

    with pytest.raises(NotImplementedError):
        check_run_value_iteration(vi)


def test_lesson_3_text_about_the_cliff_start_matches_the_model():
    """Lesson 3 says that pushing left against the wall on the slippery cliff start stays put with probability 0.9."""
    import nbformat

    from conftest import ROOT

    model = MazeRobotEnv("cliff", slip=0.2).model
    start, left = model.start_state, 3
    stay = sum(t.prob for t in model.transitions[start][left] if t.next_state == start)
    up = sum(t.prob for t in model.transitions[start][left] if t.next_state != start)
    assert stay == pytest.approx(0.9) and up == pytest.approx(0.1)
    lesson = next((ROOT / "notebooks").glob("03_*.ipynb"))
    text = "\n".join(c.source for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "markdown")
    assert "stays put with probability 0.9" in text and "stays put with probability 0.8" not in text
