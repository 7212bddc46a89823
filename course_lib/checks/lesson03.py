"""Checks for lesson 3's exercises: a Bellman backup, one sweep of value iteration, the greedy policy.

Every case is a small MDP given as dense arrays, the same form as
``MazeModel.arrays()``: P (S, A, S') transition probabilities, R (S, A)
expected rewards, done (S, A, S') termination flags, and V (S,) values.
The random MDPs come from seeded generators; the last case of each check
uses the real maze's exact model.
"""

from __future__ import annotations

import numpy as np

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.envs.maze import MazeRobotEnv
from course_lib.tabular.dp import bellman_backup, value_iteration


def value_iteration_sweep(P: np.ndarray, R: np.ndarray, done: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """Reference for exercise 2: one sweep of value iteration, V_new(s) = max_a Q(s, a). Returns (S,)."""
    return bellman_backup(P, R, done, V, gamma).max(axis=1)  # (S, A) -> (S,)


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """Reference for exercise 3: the greedy action per state, first index on ties. (S, A) -> (S,) int."""
    return np.argmax(Q, axis=1)


def random_mdp(seed: int, S: int, A: int, p_done: float = 0.3, sign: str = "mixed"):
    """A random MDP as (P, R, done, V): P rows normalised, about half the next states impossible.

    Args:
        p_done: probability that a transition (s, a, s') terminates; 0 for none, 1 for all.
        sign: ``"mixed"``, ``"positive"`` (rewards and values above zero) or ``"negative"``
            (all below zero, like the maze's -1 per step).
    """
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < 0.6)  # (S, A, S'), some outcomes impossible
    P[..., 0] += P.sum(axis=-1) == 0  # every (s, a) needs at least one outcome
    P /= P.sum(axis=-1, keepdims=True)
    R = rng.normal(0.0, 2.0, size=(S, A))  # (S, A)
    done = rng.random((S, A, S)) < p_done  # (S, A, S') bool
    V = rng.normal(0.0, 5.0, size=S)  # (S,)
    if sign != "mixed":
        flip = 1.0 if sign == "positive" else -1.0
        R, V = flip * (np.abs(R) + 0.5), flip * (np.abs(V) + 0.5)
    return P, R, done, V


def _maze_arrays(slip: float):
    model = MazeRobotEnv("small", slip=slip).model
    return model, *model.arrays()


def bellman_backup_cases() -> list[Case]:
    """Seeded cases for ``bellman_backup(P, R, done, V, gamma) -> Q``; each probes one property."""
    _, P, R, done = _maze_arrays(0.2)
    maze_V = np.random.default_rng(7).normal(0.0, 5.0, size=R.shape[0])
    return [
        Case((*random_mdp(0, 3, 2, p_done=0.0), 0.9), {}, "3 states, 2 actions, no terminal transitions, gamma 0.9",
             "Q(s, a) = R(s, a) + gamma * sum over s' of P(s, a, s') * V(s'); the sum runs over the last axis of P "
             "and V is indexed by the next state s'."),
        Case((*random_mdp(1, 5, 3, p_done=0.3), 0.9), {},
             "terminal transitions (done True): no bootstrapping from V(s') on them",
             "multiply each term P(s, a, s') * V(s') by (1 - done(s, a, s')), e.g. with ~done: an episode that has "
             "ended collects no future value."),
        Case((*random_mdp(2, 4, 3), 0.0), {}, "gamma 0: Q(s, a) = R(s, a)",
             "gamma multiplies the whole expected next value, and R is added outside it."),
        Case((*random_mdp(3, 4, 2), 1.0), {}, "gamma 1: no discounting",
             "with gamma = 1 the formula is the same; do not special-case it."),
        Case((*random_mdp(4, 3, 3, p_done=1.0), 0.9), {}, "every transition terminates: Q = R",
             "where done is True the next value must not count at all."),
        Case((*random_mdp(5, 4, 4), 0.8), {},
             "as many actions as states (S = A = 4), so mixed-up axes give no shape error",
             "P[s, a, s'] is indexed state, action, next state; sum over s' (axis 2), keep (s, a)."),
        Case((P, R, done, maze_V, 0.99), {}, "the small maze's exact model with slip 0.2 (S = 42, A = 4), random V",
             "model.arrays() gives the same (P, R, done) shapes as the random cases; the same formula applies."),
    ]


def value_iteration_sweep_cases() -> list[Case]:
    """Seeded cases for ``value_iteration_sweep(P, R, done, V, gamma) -> V_new``."""
    model, P, R, done = _maze_arrays(0.2)
    V_mid = np.zeros(R.shape[0])
    for _ in range(5):  # a value function half-way through value iteration
        V_mid = value_iteration_sweep(P, R, done, V_mid, 0.99)
    return [
        Case((*random_mdp(10, 3, 2, p_done=0.0, sign="positive"), 0.9), {},
             "3 states, 2 actions, no terminal transitions, gamma 0.9",
             "compute Q with the Bellman backup, then V_new(s) = max over actions a of Q(s, a): the max runs over "
             "axis 1 and gives one value per state."),
        Case((*random_mdp(11, 5, 3, p_done=0.3, sign="positive"), 0.9), {},
             "terminal transitions (done True): no bootstrapping from V(s') on them",
             "inside the backup, a transition with done True contributes its reward only."),
        Case((*random_mdp(12, 4, 3, sign="negative"), 0.9), {},
             "all rewards and values negative (like -1 per step in the maze)",
             "take the max of the Q values themselves; do not start from 0 or clip at 0."),
        Case((*random_mdp(13, 4, 4), 0.8), {}, "as many actions as states (S = A = 4)",
             "Q has shape (S, A): the max over actions is over axis 1, not axis 0."),
        Case((*random_mdp(14, 4, 2), 0.0), {}, "gamma 0: V_new(s) = max_a R(s, a)",
             "gamma multiplies the expected next value only."),
        Case((P, R, done, V_mid, 0.99), {},
             "the small maze with slip 0.2, V after 5 sweeps of value iteration from 0",
             "the same sweep as on the random MDPs; the terminal cheese state must keep value 0."),
    ]


def greedy_policy_cases() -> list[Case]:
    """Seeded cases for ``greedy_policy(Q) -> policy``."""
    rng = np.random.default_rng(20)
    maze_Q = value_iteration(MazeRobotEnv("small").model, gamma=0.99).Q  # (42, 4); walls and cheese all zeros
    return [
        Case((rng.random((5, 3)) + 0.1,), {}, "5 states, 3 actions, no ties",
             "for each state (row of Q), the index of the largest action value: np.argmax over axis 1."),
        Case((rng.integers(0, 3, size=(8, 4)).astype(float),), {}, "ties: the first best action wins, like np.argmax",
             "when several actions share the best value return the smallest index; np.argmax does that."),
        Case((np.zeros((4, 4)),), {}, "all actions equally good: action 0 everywhere",
             "a row of equal values is a tie: the first index, 0."),
        Case((-np.abs(rng.normal(size=(6, 4))) - 1.0,), {}, "all values negative",
             "the best value may be below 0: compare the values with each other, not with 0."),
        Case((rng.normal(size=(3, 1)),), {}, "a single action", "with A = 1 the only action is 0."),
        Case((maze_Q,), {}, "Q* of the small maze (walls and the cheese have equal values: action 0)",
             "the same rule on the real maze: argmax over actions, first index on ties."),
    ]


def bellman_backup_hidden_cases() -> list[Case]:
    """Grader-only cases for ``bellman_backup``: other MDP sizes, terminal rates, discounts and the cliff maze."""
    P, R, done = MazeRobotEnv("cliff", slip=0.1).model.arrays()
    cliff_V = np.random.default_rng(37).normal(0.0, 5.0, size=R.shape[0])
    return [
        Case((*random_mdp(30, 6, 2, p_done=0.5), 0.95), {},
             "6 states, 2 actions, half the transitions terminal, gamma 0.95",
             "Q(s, a) = R(s, a) + gamma * sum over s' of P(s, a, s') * (1 - done(s, a, s')) * V(s')."),
        Case((*random_mdp(31, 2, 5, p_done=0.0, sign="negative"), 0.5), {},
             "more actions than states (S = 2, A = 5), negative rewards, gamma 0.5",
             "Q has shape (S, A): sum over the next state s' (the last axis of P), keep (s, a)."),
        Case((*random_mdp(32, 1, 3, p_done=0.2), 0.9), {}, "a single state with three actions (S = 1)",
             "the same formula with S = 1: P has shape (1, A, 1) and V shape (1,)."),
        Case((P, R, done, cliff_V, 0.9), {}, "the cliff maze's exact model with slip 0.1, random V, gamma 0.9",
             "falling off the cliff and reaching the goal come from model.arrays() like any other transition."),
    ]


def value_iteration_sweep_hidden_cases() -> list[Case]:
    """Grader-only cases for ``value_iteration_sweep``: other MDPs, discounts and the large maze."""
    P, R, done = MazeRobotEnv("large", slip=0.1).model.arrays()
    V_large = np.zeros(R.shape[0])
    for _ in range(3):  # a value function early in value iteration
        V_large = value_iteration_sweep(P, R, done, V_large, 0.95)
    return [
        Case((*random_mdp(40, 6, 3, p_done=0.2, sign="negative"), 0.95), {},
             "6 states, 3 actions, negative rewards and values, gamma 0.95",
             "V_new(s) = max over a of Q(s, a), even when every Q value is negative."),
        Case((*random_mdp(41, 3, 5, p_done=0.5), 0.9), {}, "more actions than states (S = 3, A = 5), half terminal",
             "the max runs over the action axis (axis 1 of Q), giving one value per state."),
        Case((*random_mdp(42, 4, 2, p_done=0.3, sign="positive"), 1.0), {}, "gamma 1 with positive rewards",
             "with gamma = 1 the next value is not discounted; the same formula applies."),
        Case((P, R, done, V_large, 0.95), {}, "the large maze with slip 0.1, V after 3 sweeps from 0, gamma 0.95",
             "one sweep: the Bellman backup on the maze's exact model, then the max over actions."),
    ]


def greedy_policy_hidden_cases() -> list[Case]:
    """Grader-only cases for ``greedy_policy``: other shapes, ties and the cliff maze's Q*."""
    rng = np.random.default_rng(50)
    last_two = rng.random((6, 4)) * 0.5  # (6, 4) values below 0.5
    last_two[:, 2:] = 1.0  # the best two actions are 2 and 3, tied
    cliff_Q = value_iteration(MazeRobotEnv("cliff").model, gamma=0.9).Q  # (S, 4)
    return [
        Case((rng.integers(-2, 2, size=(10, 5)).astype(float),), {},
             "integer-valued Q with many ties (10 states, 5 actions)",
             "np.argmax(Q, axis=1) returns the first of the tied best actions."),
        Case((last_two,), {}, "the best two actions are the last two (2 and 3): action 2 wins",
             "on a tie return the smallest index among the best actions."),
        Case((rng.normal(0.0, 1e-3, size=(12, 2)),), {}, "12 states, 2 actions whose values differ by about 1e-3",
             "compare the values exactly; no rounding, no threshold."),
        Case((cliff_Q,), {}, "Q* of the cliff maze at gamma 0.9",
             "the greedy action per state of Q*: argmax over actions, first index on ties."),
    ]


def check_bellman_backup(fn) -> CheckResult:
    """Check a student's ``bellman_backup(P, R, done, V, gamma) -> Q`` of shape (S, A)."""
    __tracebackhide__ = True
    return EXERCISES["bellman_backup"].check(fn)


def check_value_iteration_sweep(fn) -> CheckResult:
    """Check a student's ``value_iteration_sweep(P, R, done, V, gamma) -> V_new`` of shape (S,)."""
    __tracebackhide__ = True
    return EXERCISES["value_iteration_sweep"].check(fn)


def check_greedy_policy(fn) -> CheckResult:
    """Check a student's ``greedy_policy(Q) -> policy``: (S, A) floats to (S,) ints."""
    __tracebackhide__ = True
    return EXERCISES["greedy_policy"].check(fn)


EXERCISES = {
    "bellman_backup": Exercise("bellman_backup", bellman_backup, bellman_backup_cases, bellman_backup_hidden_cases),
    "value_iteration_sweep": Exercise("value_iteration_sweep", value_iteration_sweep, value_iteration_sweep_cases,
                                      value_iteration_sweep_hidden_cases),
    "greedy_policy": Exercise("greedy_policy", greedy_policy, greedy_policy_cases, greedy_policy_hidden_cases),
}
