"""Lesson 4's checks pass the library's TD targets and fail plausible wrong versions with a useful message."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson04 import (
    EXERCISES,
    check_cliff_prediction,
    check_q_learning_agent,
    check_q_learning_step,
    check_the_bug,
    q_learning_agent,
    q_learning_step,
    check_double_q_target,
    check_expected_sarsa_target,
    check_q_learning_target,
    check_sarsa_target,
    double_q_target_cases,
    expected_sarsa_target_cases,
    q_learning_target_cases,
    sarsa_target_cases,
)
from course_lib.tabular.td import double_q_target, epsilon_greedy, expected_sarsa_target, q_learning_target, sarsa_target

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
        (q_bootstraps_on_terminal, r"case 2 of 11 \(s' is terminal \(terminated=True\);.*expected -?\d.*, got"),
        (q_forgets_gamma, r"case 1 of 11 \(a non-terminal step, gamma 0\.9;"),
        (q_uses_mean, r"(?s)case 1 of 11 .*Hint: target = r \+ gamma \* max_a' Q\(s', a'\): the best next value"),
        (q_uses_argmax, r"case 1 of 11 \(a non-terminal step"),
        (q_max_from_zero, r"case 4 of 11 \(every next value is negative;"),
        (q_wrong_sign, r"case 1 of 11 .*result: expected -?\d[\d.]*, got -?\d"),
        (q_returns_array, r"case 1 of 11 .*result: expected a number, got ndarray"),
        (q_crashes, r"case 1 of 11 .* raised IndexError"),
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


# ---- defect: -inf turned into 0 before the max ------------------------------------------


def q_zeroes_the_mask(reward, q_next, gamma, terminated):
    """Replaces -inf (invalid actions) by 0 before the max: invents an action worth 0."""
    if terminated:
        return float(reward)
    return float(reward + gamma * np.max(np.nan_to_num(q_next, neginf=0.0)))


def test_q_learning_target_rejects_turning_minus_inf_into_zero():
    with pytest.raises(CheckFailed, match=r"case 11 of 11 \(invalid actions \(-inf\) beside valid ones that are all "
                                          r"negative.*result: expected -1.675, got -1") as err:
        check_q_learning_target(q_zeroes_the_mask)
    assert "Turning it into 0" in str(err.value)
    spec = EXERCISES["q_learning_target"]
    assert any(spec.compare(q_learning_target(*c.args), q_zeroes_the_mask(*c.args)) is not None
               for c in spec.hidden_cases())


# ---- spot the bug: name it, then fix it ---------------------------------------------------


def buggy_step(Q, s, a, r, s2, terminated, truncated, alpha, gamma):
    done = terminated or truncated
    target = r + gamma * np.max(Q[s2]) * (1 - done)
    Q[s, a] += alpha * (target - Q[s, a])


def step_ignores_terminated(Q, s, a, r, s2, terminated, truncated, alpha, gamma):
    Q[s, a] += alpha * (r + gamma * np.max(Q[s2]) - Q[s, a])


def step_returns_a_copy(Q, s, a, r, s2, terminated, truncated, alpha, gamma):
    Q = Q.copy()
    q_learning_step(Q, s, a, r, s2, terminated, truncated, alpha, gamma)
    return Q


def test_the_fixed_step_passes_and_the_buggy_one_fails_on_truncation():
    assert check_q_learning_step(q_learning_step).status == "pass"
    with pytest.raises(CheckFailed, match=r"case 3 of 5 \(the time limit cuts the episode \(truncated, not "
                                          r"terminated\).*first mismatch at index \[2, 3\]") as err:
        check_q_learning_step(buggy_step)
    assert "a truncated step still bootstraps" in str(err.value)
    with pytest.raises(CheckFailed, match=r"case 2 of 5 \(the step reaches the cheese"):
        check_q_learning_step(step_ignores_terminated)
    with pytest.raises(CheckFailed, match=r"raised TypeError: q_learning_step should update Q in place"):
        check_q_learning_step(step_returns_a_copy)


@pytest.mark.parametrize("letter", ["A", "c", " D "])
def test_naming_a_wrong_bug_explains_why_without_naming_the_right_one(letter):
    with pytest.raises(CheckFailed, match=r"your answer .* is not the right one yet: ") as err:
        check_the_bug(letter)
    assert "'B'" not in str(err.value) and "option b" not in str(err.value).lower()
    assert check_the_bug("b").status == "pass"


# ---- the whole agent, checked by its behaviour ----------------------------------------------


def _agent(*, done_in_target=False, bootstrap_terminal=False, never_explores=False, ignores_q_init=False,
           own_epsilon_greedy=False):
    """Q-learning with one switch per plausible mistake (or an equally correct variant)."""

    def agent(env, episodes, alpha, gamma, epsilon, seed=0, q_init=0.0):
        rng = np.random.default_rng(seed)
        Q = np.full((env.observation_space.n, env.action_space.n), 0.0 if ignores_q_init else float(q_init))
        for episode in range(episodes):
            s, _ = env.reset(seed=seed if episode == 0 else None)
            done = False
            while not done:
                if own_epsilon_greedy:  # a learner's own version, with other random draws: still correct
                    best = np.flatnonzero(Q[s] == Q[s].max())
                    a = int(rng.integers(4)) if rng.random() < epsilon else int(rng.choice(best))
                elif never_explores:
                    a = int(np.argmax(Q[s]))
                else:
                    a = epsilon_greedy(Q[s], np.ones(4, dtype=bool), epsilon, rng)
                s2, r, terminated, truncated, _ = env.step(a)
                stop = terminated or truncated if done_in_target else terminated and not bootstrap_terminal
                Q[s, a] += alpha * (r + (0.0 if stop else gamma * Q[s2].max()) - Q[s, a])
                s, done = s2, terminated or truncated
        return Q

    return agent


def test_a_correct_agent_with_its_own_random_draws_passes():
    assert check_q_learning_agent(_agent(own_epsilon_greedy=True)).status == "pass"
    assert check_q_learning_agent(q_learning_agent).status == "pass"


@pytest.mark.parametrize("wrong, message", [
    (_agent(done_in_target=True), r"case 4 of 4 \(a 1-step time limit.*result: expected 3.5, got -1"),
    (_agent(bootstrap_terminal=True), r"case 3 of 4 \(alpha 1, Q starting at 5.*result: expected 10, got 14.5"),
    (_agent(ignores_q_init=True), r"case 4 of 4 \(a 1-step time limit.*result: expected 3.5, got -1"),
])
def test_wrong_agents_fail_on_the_property_they_break(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_q_learning_agent(wrong)
    assert "Hint:" in str(err.value)


def test_the_hidden_mazes_catch_the_same_mistakes():
    spec = EXERCISES["q_learning_agent"]
    right = spec.call(q_learning_agent)
    for wrong in (_agent(done_in_target=True), _agent(bootstrap_terminal=True)):
        run = spec.call(wrong)
        assert any(spec.compare(right(*c.args), run(*c.args)) is not None for c in spec.hidden_cases())
    good = spec.call(_agent(own_epsilon_greedy=True))
    assert all(spec.compare(right(*c.args), good(*c.args)) is None for c in spec.hidden_cases())


def test_the_path_cases_expect_the_shortest_path():
    from collections import deque

    for case in [c for c in EXERCISES["q_learning_agent"].cases() + EXERCISES["q_learning_agent"].hidden_cases()
                 if c.args[0].measure == "path"]:
        maze = case.args[0].env().unwrapped
        dist, todo = {maze.start_state: 0}, deque([maze.start_state])
        while todo:
            s = todo.popleft()
            for a in range(4):
                t = maze.model.transitions[s][a][0]
                if t.next_state not in dist:
                    dist[t.next_state] = dist[s] + 1
                    if not t.terminated:
                        todo.append(t.next_state)
        cheese = [s for s in maze.model.terminal_states if maze.grid[maze.cell_of(s)] == "C"][0]
        assert EXERCISES["q_learning_agent"].call(q_learning_agent)(*case.args) == dist[cheese], case.about


def test_the_cliff_prediction_feedback_never_names_the_answer():
    for letter in "ABD":
        with pytest.raises(CheckFailed) as err:
            check_cliff_prediction(letter)
        assert "'C'" not in str(err.value) and "15 steps" not in str(err.value)
    assert check_cliff_prediction("c").status == "pass"
