"""Checks for lesson 4's exercises: the one-step TD targets of SARSA, Q-learning, expected SARSA and Double Q.

Every target is a plain Python ``float``; a student's ``numpy.float64`` (or
an int where the reward is one) passes too, since :func:`compare` accepts any
real number and compares values.
"""

from __future__ import annotations

import numpy as np

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.tabular.td import double_q_target, expected_sarsa_target, q_learning_target, sarsa_target

_TERMINAL_HINT = ("terminated=True means s' is terminal: its value is 0 by definition, so the target is the reward "
                  "alone (no gamma * ... term).")
_GAMMA_HINT = "the bootstrapped term is discounted: multiply the next value by gamma."


def _reward(seed: int) -> float:
    return float(np.round(np.random.default_rng(seed).uniform(-2.0, 2.0), 3))


def _values(seed: int, n: int, scale: float = 3.0, shift: float = 0.0) -> np.ndarray:
    """(n,) float64 action values, rounded so that messages stay readable."""
    return np.round(np.random.default_rng(seed).normal(shift, scale, size=n), 3)


def _eps_greedy_probs(q: np.ndarray, epsilon: float) -> np.ndarray:
    """(A,) epsilon-greedy probabilities over the finite entries of ``q`` (ties share the greedy mass)."""
    valid = np.isfinite(q)
    best = valid & (q == q[valid].max())
    return valid * (epsilon / valid.sum()) + best * ((1 - epsilon) / best.sum())


# ---- Q-learning ---------------------------------------------------------------------------


def q_learning_target_cases() -> list[Case]:
    """Seeded cases for :func:`q_learning_target(reward, q_next, gamma, terminated)`."""
    tie = np.array([1.5, -0.2, 1.5, 0.3])
    masked = _values(14, 10)
    masked[2:] = -np.inf  # only actions 0 and 1 are valid in that state
    return [
        Case((_reward(10), _values(10, 4), 0.9, False), {}, "a non-terminal step, gamma 0.9",
             "target = r + gamma * max_a' Q(s', a'): the best next value, not the mean or the first one."),
        Case((_reward(11), _values(11, 4, shift=5.0), 0.9, True), {}, "s' is terminal (terminated=True)",
             _TERMINAL_HINT),
        Case((-1.0, _values(12, 4), 1.0, False), {}, "gamma 1 (undiscounted, as on the cliff), reward -1",
             "with gamma = 1 the target is r + max_a' Q(s', a')."),
        Case((_reward(13), -np.abs(_values(13, 4)) - 0.5, 0.99, False), {}, "every next value is negative",
             "the max of negative numbers is negative: start from the values themselves (np.max), not from 0."),
        Case((0.5, tie, 0.9, False), {}, "two next actions tie for the best value",
             "a tie does not change the max: r + gamma * max_a' Q(s', a')."),
        Case((_reward(14), masked, 0.95, False), {}, "invalid next actions are masked with -inf",
             "np.max ignores the -inf entries as long as one action is valid; do not average them."),
        Case((10.0, _values(15, 4, shift=8.0), 0.99, True), {}, "reaching the cheese: terminal, reward +10",
             _TERMINAL_HINT),
        Case((_reward(16), _values(16, 4), 0.0, False), {}, "gamma 0: only the immediate reward counts",
             "with gamma = 0 the target is r whatever Q(s', .) holds."),
        Case((_reward(17), _values(17, 2), 0.5, False), {}, "two actions, gamma 0.5",
             _GAMMA_HINT),
        Case((_reward(18), _values(18, 10, scale=1.0, shift=-0.1), 1.0, False), {},
             "ten next actions (state B of the max-bias MDP)", "r + gamma * max over all next actions."),
    ]


def q_learning_target_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and discounts than the notebook's."""
    return [
        Case((_reward(110), _values(110, 6), 0.8, False), {}, "six next actions, gamma 0.8",
             "target = r + gamma * max_a' Q(s', a'): the best next value, discounted."),
        Case((_reward(111), _values(111, 5, shift=-4.0), 0.95, True), {},
             "a terminal step with five stale next values", _TERMINAL_HINT),
        Case((_reward(112), np.array([-0.7, -2.1, -0.7]), 0.9, False), {},
             "a tie for the best among negative next values",
             "the max of [-0.7, -2.1, -0.7] is -0.7: use np.max on the values, starting from none of your own."),
        Case((0.0, _values(113, 4, shift=2.0), 0.97, False), {}, "reward 0 on a non-terminal step",
             "with r = 0 the target is gamma * max_a' Q(s', a'), not 0."),
    ]


def check_q_learning_target(fn) -> CheckResult:
    """Check a student's ``q_learning_target(reward, q_next, gamma, terminated) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["q_learning_target"].check(fn)


# ---- SARSA --------------------------------------------------------------------------------


def sarsa_target_cases() -> list[Case]:
    """Seeded cases for :func:`sarsa_target(reward, q_next_action, gamma, terminated)`."""
    table = _values(23, 12).reshape(3, 4)  # a small Q table, (S, A)
    return [
        Case((_reward(20), float(_values(20, 1)[0]), 0.9, False), {}, "a non-terminal step, gamma 0.9",
             "target = r + gamma * Q(s', a') with a' the action the policy actually chose next."),
        Case((_reward(21), 4.2, 0.9, True), {}, "s' is terminal (terminated=True)", _TERMINAL_HINT),
        Case((-1.0, float(_values(22, 1)[0]), 1.0, False), {}, "gamma 1 (undiscounted, as on the cliff), reward -1",
             "with gamma = 1 the target is r + Q(s', a')."),
        Case((_reward(23), table[1, 2], 0.95, False), {},
             "q_next_action read from a table: a numpy float64 Q[s', a']",
             "treat the numpy scalar like any number; return a float."),
        Case((_reward(24), -abs(float(_values(24, 1)[0])) - 2.0, 0.99, False), {}, "a negative next value",
             "a negative Q(s', a') lowers the target: r + gamma * Q(s', a')."),
        Case((_reward(25), float(_values(25, 1)[0]), 0.0, False), {}, "gamma 0: only the immediate reward counts",
             "with gamma = 0 the target is r."),
        Case((10.0, 7.5, 0.99, True), {}, "reaching the cheese: terminal, reward +10", _TERMINAL_HINT),
        Case((_reward(26), float(_values(26, 1)[0]), 0.5, False), {}, "gamma 0.5", _GAMMA_HINT),
    ]


def sarsa_target_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, tables and discounts than the notebook's."""
    table = _values(122, 20).reshape(5, 4)
    return [
        Case((_reward(120), float(_values(120, 1)[0]), 0.8, False), {}, "a non-terminal step, gamma 0.8",
             "target = r + gamma * Q(s', a')."),
        Case((_reward(121), float(_values(121, 1, shift=6.0)[0]), 0.99, True), {},
             "a terminal step with a large stale next value", _TERMINAL_HINT),
        Case((_reward(123), table[3, 0], 1.0, False), {}, "gamma 1 with Q[s', a'] read from a (5, 4) table",
             "with gamma = 1 the target is r + Q(s', a'); a numpy float64 is a number like any other."),
        Case((0.0, float(_values(124, 1, shift=1.0)[0]), 0.9, False), {}, "reward 0 on a non-terminal step",
             "with r = 0 the target is gamma * Q(s', a'), not 0."),
    ]


def check_sarsa_target(fn) -> CheckResult:
    """Check a student's ``sarsa_target(reward, q_next_action, gamma, terminated) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["sarsa_target"].check(fn)


# ---- expected SARSA -----------------------------------------------------------------------


def expected_sarsa_target_cases() -> list[Case]:
    """Seeded cases for :func:`expected_sarsa_target(reward, q_next, probs_next, gamma, terminated)`."""
    q1 = _values(30, 4)
    q_tie = np.array([2.0, -1.0, 2.0, 0.5])
    q_masked = _values(35, 10)
    q_masked[2:] = -np.inf
    q_uniform = _values(32, 4)
    return [
        Case((_reward(30), q1, _eps_greedy_probs(q1, 0.1), 0.9, False), {},
             "a non-terminal step, epsilon-greedy probabilities (epsilon 0.1), gamma 0.9",
             "target = r + gamma * sum_a' pi(a'|s') Q(s', a'): weight every next value by its probability."),
        Case((_reward(31), _values(31, 4, shift=5.0), np.full(4, 0.25), 0.9, True), {},
             "s' is terminal (terminated=True)", _TERMINAL_HINT),
        Case((-1.0, q_uniform, np.full(4, 0.25), 1.0, False), {}, "a uniform policy (epsilon 1): the mean",
             "with equal probabilities the expectation is the mean of Q(s', .)."),
        Case((_reward(33), _values(33, 4), np.array([0.0, 0.0, 1.0, 0.0]), 0.99, False), {},
             "a deterministic policy: all probability on action 2",
             "the expectation puts weight 1 on the chosen action only, whatever the other values are."),
        Case((0.5, q_tie, _eps_greedy_probs(q_tie, 0.2), 0.9, False), {},
             "two greedy actions tie and share the greedy probability",
             "use the probabilities as given: sum_a' pi(a'|s') Q(s', a')."),
        Case((_reward(35), q_masked, _eps_greedy_probs(q_masked, 0.1), 1.0, False), {},
             "invalid next actions: value -inf with probability 0",
             "0 * -inf is nan: sum only over actions with probability > 0."),
        Case((_reward(36), _values(36, 4), _eps_greedy_probs(_values(36, 4), 0.1), 0.5, False), {}, "gamma 0.5",
             _GAMMA_HINT),
    ]


def expected_sarsa_target_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, policies and discounts than the notebook's."""
    q5 = _values(130, 5)
    q_term = _values(131, 3, shift=-5.0)
    q_soft = _values(132, 4)
    soft = np.exp(_values(133, 4, scale=1.0))
    soft = soft / soft.sum()
    q_tie_masked = np.array([1.2, -np.inf, 1.2, -0.4, -np.inf])
    return [
        Case((_reward(130), q5, _eps_greedy_probs(q5, 0.3), 0.85, False), {},
             "five actions, epsilon-greedy with epsilon 0.3, gamma 0.85",
             "target = r + gamma * sum_a' pi(a'|s') Q(s', a')."),
        Case((_reward(131), q_term, _eps_greedy_probs(q_term, 0.5), 0.9, True), {},
             "a terminal step under a non-uniform policy", _TERMINAL_HINT),
        Case((_reward(132), q_soft, soft, 0.95, False), {}, "an arbitrary (softmax) policy, not epsilon-greedy",
             "weight each next value by the probability you were given; do not rebuild the policy."),
        Case((-1.0, q_tie_masked, _eps_greedy_probs(q_tie_masked, 0.1), 1.0, False), {},
             "a tie for the greedy action beside masked -inf actions",
             "0 * -inf is nan: sum only over actions with probability > 0; the tied actions share the greedy mass."),
    ]


def check_expected_sarsa_target(fn) -> CheckResult:
    """Check a student's ``expected_sarsa_target(reward, q_next, probs_next, gamma, terminated) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["expected_sarsa_target"].check(fn)


# ---- Double Q-learning --------------------------------------------------------------------


def double_q_target_cases() -> list[Case]:
    """Seeded cases for :func:`double_q_target(reward, q_select_next, q_eval_next, gamma, terminated)`."""
    # The tables disagree: Q1's best action is Q2's worst, and each table's max differs from the target.
    select = np.array([0.4, 2.5, -0.3, 1.1])
    evaluate = np.array([1.8, -1.2, 0.9, 0.2])
    tie_select = np.array([1.0, 3.0, -2.0, 3.0])  # actions 1 and 3 tie: np.argmax takes 1
    tie_eval = np.array([0.5, -0.7, 2.0, 1.6])
    masked_select = _values(45, 10)
    masked_select[2:] = -np.inf  # invalid actions in the learning table are masked
    masked_eval = _values(46, 10)  # the other table is not masked: here its best action (5) is invalid in s'
    masked_eval[5] = 9.0
    return [
        Case((_reward(40), select, evaluate, 0.9, False), {},
             "a non-terminal step, gamma 0.9, the two tables disagree",
             "a' = argmax_a Q1(s', a) from the first table, then the target is r + gamma * Q2(s', a') "
             "from the second."),
        Case((_reward(41), _values(41, 4, shift=5.0), _values(42, 4, shift=5.0), 0.9, True), {},
             "s' is terminal (terminated=True)", _TERMINAL_HINT),
        Case((-1.0, _values(43, 4), _values(44, 4), 1.0, False), {}, "gamma 1, reward -1, random tables",
             "pick with q_select_next, value with q_eval_next: r + Q2(s', argmax_a Q1(s', a))."),
        Case((0.5, tie_select, tie_eval, 0.9, False), {}, "two actions tie in the selecting table",
             "break ties like np.argmax: the first (lowest-index) best action."),
        Case((_reward(45), masked_select, masked_eval, 0.95, False), {},
             "invalid actions masked with -inf in the selecting table only",
             "choose a' in q_select_next (where invalid actions are -inf), not in q_eval_next."),
        Case((_reward(47), -np.abs(_values(47, 4)) - 0.5, -np.abs(_values(48, 4)) - 0.5, 0.99, False), {},
             "every next value is negative", "argmax and indexing work the same on negative values."),
        Case((_reward(49), _values(49, 4), _values(50, 4), 0.0, False), {}, "gamma 0: only the immediate reward counts",
             "with gamma = 0 the target is r."),
        Case((10.0, _values(51, 4), _values(52, 4), 0.99, True), {}, "reaching the cheese: terminal, reward +10",
             _TERMINAL_HINT),
    ]


def double_q_target_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes, ties and masks than the notebook's."""
    # Seeds 140/141: Q1's best action (3) differs from Q2's (1).
    masked_select = _values(145, 8)
    masked_select[3:] = -np.inf  # only actions 0, 1 and 2 are valid in s'
    masked_eval = _values(146, 8)  # its best action (4) is invalid in s'
    return [
        Case((_reward(140), _values(140, 6), _values(141, 6), 0.9, False), {},
             "six actions, the tables' best actions differ, gamma 0.9",
             "a' = argmax_a Q1(s', a) from q_select_next, then r + gamma * Q2(s', a') from q_eval_next."),
        Case((_reward(142), _values(142, 5, shift=7.0), _values(143, 5, shift=7.0), 0.8, True), {},
             "a terminal step with large values in both tables", _TERMINAL_HINT),
        Case((_reward(144), np.array([2.0, 2.0, -1.0, 2.0]), np.array([-0.5, 1.4, 0.3, 2.2]), 0.95, False), {},
             "three actions tie in the selecting table",
             "break ties like np.argmax: the first (lowest-index) best action."),
        Case((_reward(147), masked_select, masked_eval, 0.5, False), {},
             "masked actions in the selecting table, gamma 0.5",
             "choose a' in q_select_next (where invalid actions are -inf), not in q_eval_next."),
    ]


def check_double_q_target(fn) -> CheckResult:
    """Check a student's ``double_q_target(reward, q_select_next, q_eval_next, gamma, terminated) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["double_q_target"].check(fn)


EXERCISES = {
    "q_learning_target": Exercise("q_learning_target", q_learning_target, q_learning_target_cases,
                                  q_learning_target_hidden_cases),
    "sarsa_target": Exercise("sarsa_target", sarsa_target, sarsa_target_cases, sarsa_target_hidden_cases),
    "expected_sarsa_target": Exercise("expected_sarsa_target", expected_sarsa_target, expected_sarsa_target_cases,
                                      expected_sarsa_target_hidden_cases),
    "double_q_target": Exercise("double_q_target", double_q_target, double_q_target_cases,
                                double_q_target_hidden_cases),
}
