"""Checks for lesson 3's exercises: a Bellman backup, then value iteration built on it (values and greedy policy).

Every case is a small MDP given as dense arrays, the same form as
``MazeModel.arrays()``: P (S, A, S') transition probabilities, R (S, A)
expected rewards, done (S, A, S') termination flags, and V (S,) values.
The random MDPs come from seeded generators; the last case of each check
uses the real maze's exact model.
"""

from __future__ import annotations

import numpy as np

from course_lib.checks.core import Case, Exercise, check_functions
from course_lib.envs.maze import MazeRobotEnv
from course_lib.harness.lesson03 import greedy_outcome
from course_lib.tabular.dp import bellman_backup, value_iteration


def value_iteration_sweep(P: np.ndarray, R: np.ndarray, done: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """One sweep of value iteration, V_new(s) = max_a Q(s, a). Returns (S,). (A helper of the reference below.)"""
    return bellman_backup(P, R, done, V, gamma).max(axis=1)  # (S, A) -> (S,)


def run_value_iteration(P: np.ndarray, R: np.ndarray, done: np.ndarray, gamma: float,
                        theta: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Reference for exercise 2: value iteration on dense arrays from V = 0; returns (V (S,), greedy policy (S,) int)."""
    V = np.zeros(R.shape[0])  # (S,)
    for _ in range(100_000):
        V_new = value_iteration_sweep(P, R, done, V, gamma)
        delta = np.abs(V_new - V).max()
        V = V_new
        if delta < theta:
            break
    return V, np.argmax(bellman_backup(P, R, done, V, gamma), axis=1)


BUILDS = ("value_iteration",)
"""The library's ``value_iteration`` is what ``run_value_iteration`` asks for: lesson 3 must not print it."""

VI_NAMES = ("V", "policy is greedy")


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


def run_value_iteration_cases() -> list[Case]:
    """Cases for ``run_value_iteration(P, R, done, gamma, theta) -> (V, policy)``; each probes one property."""
    _, P0, R0, done0 = _maze_arrays(0.0)
    _, P2, R2, done2 = _maze_arrays(0.2)
    return [
        Case((*random_mdp(10, 3, 2, p_done=0.0, sign="positive")[:3], 0.9), {"theta": 1e-8},
             "3 states, 2 actions, no terminal transitions, gamma 0.9",
             "repeat sweeps from V = 0 (each sweep: the backup, then the best action per state) until the largest "
             "change of a sweep is below theta; then the greedy policy of the final values."),
        Case((*random_mdp(11, 5, 3, p_done=0.3, sign="positive")[:3], 0.9), {"theta": 1e-8},
             "terminal transitions (done True): no bootstrapping from V(s') on them",
             "use your bellman_backup for every sweep: it already drops the future value of terminating moves."),
        Case((*random_mdp(12, 4, 3, sign="negative")[:3], 0.9), {"theta": 1e-8},
             "all rewards negative (like -1 per step in the maze)",
             "the best action per state is the LARGEST Q, even when all are negative; V starts at zeros."),
        Case((*random_mdp(13, 4, 4)[:3], 0.8), {"theta": 1e-8}, "as many actions as states (S = A = 4)",
             "Q has shape (S, A): both the max (for V) and the argmax (for the policy) run over the action axis."),
        Case((*random_mdp(14, 4, 2)[:3], 0.0), {"theta": 1e-8}, "gamma 0: V(s) = max_a R(s, a)",
             "with gamma 0 the second sweep changes nothing: stop there."),
        Case((P0, R0, done0, 0.9), {"theta": 1e-8}, "the small maze without slip, gamma 0.9",
             "the cheese is terminal: its value stays 0, and the move into it is worth +10 alone."),
        Case((P2, R2, done2, 0.99), {"theta": 1e-8}, "the small maze with slip 0.2, gamma 0.99 (hundreds of sweeps)",
             "keep sweeping until the LARGEST change over all states is below theta, not the change of one state."),
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


def run_value_iteration_hidden_cases() -> list[Case]:
    """Grader-only cases for ``run_value_iteration``: other MDPs, discounts, the large and the cliff maze."""
    P, R, done = MazeRobotEnv("large", slip=0.1).model.arrays()
    Pc, Rc, donec = MazeRobotEnv("cliff", slip=0.2).model.arrays()
    return [
        Case((*random_mdp(40, 6, 3, p_done=0.2, sign="negative")[:3], 0.95), {"theta": 1e-9},
             "6 states, 3 actions, negative rewards, gamma 0.95",
             "V(s) = max over a of Q(s, a) at convergence, even when every Q value is negative."),
        Case((*random_mdp(41, 3, 5, p_done=0.5)[:3], 0.9), {"theta": 1e-8},
             "more actions than states (S = 3, A = 5), half the transitions terminal",
             "the max and the argmax run over the action axis."),
        Case((P, R, done, 0.95), {"theta": 1e-8}, "the large maze with slip 0.1, gamma 0.95",
             "the same algorithm on a bigger model: sweeps until the largest change is below theta."),
        Case((Pc, Rc, donec, 0.9), {"theta": 1e-8}, "the cliff maze with slip 0.2, gamma 0.9",
             "falling off the cliff is not terminal: it bootstraps from the start state's value."),
    ]


HINTS = {
    "bellman_backup": (
        "Three arrays meet: P (S, A, S'), done (S, A, S') and V (S'). First remove the terminating outcomes: "
        "where done is True, the probability must not carry V(s') along (multiply by the negation of done, or "
        "use numpy's where). Then the expected next value is a sum over the LAST axis s' of prob * V(s'): "
        "matrix-multiplying an (S, A, S') array by an (S',) vector does exactly that and gives (S, A). Scale "
        "it by gamma and add R outside. Worked example: from s, action a reaches s1 (p 0.5, ends the episode) "
        "or s2 (p 0.5); V = [., 4, 8], R = 1, gamma 0.5: Q = 1 + 0.5 * (0.5 * 8) = 3, the 4 never counts."
    ),
    "run_value_iteration": (
        "A loop around your bellman_backup. Start from V = zeros(S). Each sweep: Q = the backup of the current "
        "V, V_new = the best action value per state (max over axis 1 of Q: one number per state). The change "
        "of the sweep is the LARGEST absolute difference between V_new and V over all states; keep V_new, and "
        "stop once that change is below theta. After the loop, back up the final V once more and take, per "
        "state, the index of the best action (argmax over the action axis) as an int array. Example: one "
        "state, two actions that stay put with rewards -1 and -3, gamma 0.5: the sweeps give V = -1, -1.5, "
        "-1.75, ... -> -2, and the policy picks action 0. Traps: max over axis 0 (states) instead of actions; "
        "stopping on the change of a single state; returning Q instead of V."
    ),
}


EXERCISES = {
    "bellman_backup": Exercise("bellman_backup", bellman_backup, bellman_backup_cases, bellman_backup_hidden_cases,
                               twins=("course_lib.tabular.dp.bellman_backup",)),
    "run_value_iteration": Exercise("run_value_iteration", run_value_iteration, run_value_iteration_cases,
                                    run_value_iteration_hidden_cases, adapt=greedy_outcome, names=VI_NAMES,
                                    atol=1e-5, twins=("course_lib.tabular.dp.value_iteration",)),
}


__getattr__ = check_functions(EXERCISES)
