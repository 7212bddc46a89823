"""Checks for lesson 5's exercises: Dyna-Q's model and its planning step.

Both exercises change their first argument in place and return None, so each
check wraps the student's function and the reference alike: it hands each of
them its own copy of the input (and, for planning, its own identically
seeded generator) and compares what the copy holds afterwards.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.tabular.td import dyna_planning


def update_model(model: dict, s: int, a: int, r: float, s2: int, terminated: bool) -> None:
    """Reference for Dyna-Q's model learning (Sutton & Barto 2018, Section 8.2, step (e)).

    The maze is deterministic, so the model remembers the latest outcome of
    each (s, a): ``model[(s, a)] = (r, s2, terminated)``, exactly the line in
    :func:`course_lib.tabular.td.dyna_q`.
    """
    model[(s, a)] = (r, s2, terminated)


# ---- seeded inputs ---------------------------------------------------------------------


def _random_model(seed: int, n_states: int, n_actions: int, size: int, p_terminal: float = 0.0) -> dict:
    """``size`` remembered pairs ``(s, a) -> (r, s2, terminated)`` with plain Python types, in a seeded order."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_states * n_actions, size=size, replace=False)
    model = {}
    for p in pairs:
        s, a = divmod(int(p), n_actions)
        terminated = bool(rng.random() < p_terminal)
        r = float(rng.choice([10.0, -10.0])) if terminated else -1.0
        model[(s, a)] = (r, int(rng.integers(n_states)), terminated)
    return model


def _random_q(seed: int, n_states: int, n_actions: int, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, size=(n_states, n_actions))


def _sorted_keys(model: dict) -> list:
    try:
        return sorted(model)
    except TypeError:  # keys of mixed types (e.g. an int key beside the tuples): still a fixed order
        return sorted(model, key=repr)


# ---- update_model ----------------------------------------------------------------------


def _model_after(fn: Callable) -> Callable:
    """Call ``fn`` on a copy of the model; return what the copy holds afterwards."""

    def run(model, s, a, r, s2, terminated):
        model = dict(model)  # the student and the reference each get their own copy
        returned = fn(model, s, a, r, s2, terminated)
        if returned is not None and returned is not model:
            raise TypeError(f"update_model should change `model` in place and return None; "
                            f"it returned a value of type {type(returned).__name__}")
        keys = _sorted_keys(model)
        return model.get((s, a)), tuple(keys), tuple(model[k] for k in keys)

    return run


def update_model_cases() -> list[Case]:
    """Seeded cases for ``update_model``; each probes one property."""
    known = _random_model(1, 20, 4, 6)
    s_old, a_old = next(iter(known))
    r_old, s2_old, _ = known[(s_old, a_old)]
    s2_new = (s2_old + 1) % 20
    return [
        Case(({}, 12, 1, -1.0, 13, False), {}, "an empty model learns its first transition",
             "store the outcome under the key (s, a): model[(s, a)] = (r, s2, terminated)."),
        Case((_random_model(0, 20, 4, 5), 3, 2, -1.0, 8, False), {},
             "a new pair joins a model that already holds 5; the others stay as they were",
             "add one entry to the dict you were given; do not rebuild or clear it."),
        Case((known, s_old, a_old, r_old - 1.0, s2_new, False), {},
             "the same (s, a) again with a different outcome: keep only the latest",
             "assign model[(s, a)] = ... every time; the newest outcome replaces the old one."),
        Case((_random_model(2, 30, 4, 8, p_terminal=0.3), 28, 1, 10.0, 29, True), {},
             "a step into the cheese: terminated=True is part of the outcome",
             "store the tuple (r, s2, terminated), in that order: planning needs the flag to stop bootstrapping."),
        Case((_random_model(3, 30, 4, 8), 16, 0, -1.0, 16, False), {},
             "bumping into a wall: the robot stays put, s2 == s",
             "store what you were given; s2 may equal s."),
    ]


def update_model_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and outcomes than the notebook's."""
    overwritten = _random_model(11, 15, 4, 7, p_terminal=1.0)  # every remembered step ended the episode
    s_old, a_old = next(iter(overwritten))
    _, s2_old, _ = overwritten[(s_old, a_old)]
    return [
        Case((_random_model(10, 40, 4, 12, p_terminal=0.3), 34, 0, -10.0, 0, True), {},
             "a terminal step with reward -10 joins a model of 12 pairs",
             "store (r, s2, terminated) under (s, a) and leave the other 12 entries as they were."),
        Case((overwritten, s_old, a_old, -1.0, (s2_old + 1) % 15, False), {},
             "a remembered terminal outcome is replaced by a non-terminal one",
             "the newest outcome replaces the old one, terminated flag included."),
        Case((_random_model(12, 10, 4, 1), 6, 3, -1.0, 7, False), {},
             "a second action of an already remembered state gets its own entry",
             "key the model by the pair (s, a), not by s alone."),
        Case((_random_model(13, 10, 4, 4), 0, 0, -1.0, 1, False), {},
             "state 0 and action 0: a key made of zeros",
             "(0, 0) is a key like any other: store model[(s, a)] = (r, s2, terminated) without testing s or a."),
    ]


def check_update_model(fn) -> CheckResult:
    """Check a student's ``update_model(model, s, a, r, s2, terminated) -> None`` (in place)."""
    __tracebackhide__ = True
    return EXERCISES["update_model"].check(fn)


# ---- dyna_planning ---------------------------------------------------------------------


def _q_after_planning(fn: Callable) -> Callable:
    """Call ``fn`` on a copy of Q with a fresh ``default_rng(seed)``; return the updated copy."""

    def run(Q, model, n, alpha, gamma, seed):
        Q = Q.copy()  # the student and the reference each get their own copy and their own generator
        returned = fn(Q, dict(model), n, alpha, gamma, np.random.default_rng(seed))
        if returned is not None and returned is not Q:
            raise TypeError(f"dyna_planning should update Q in place and return None; "
                            f"it returned a value of type {type(returned).__name__}")
        return Q

    return run


def _corridor() -> dict:
    """0 -> 1 -> 2 -> 3 (cheese): three remembered steps of a corridor, inserted in walking order."""
    return {(0, 1): (-1.0, 1, False), (1, 1): (-1.0, 2, False), (2, 1): (10.0, 3, True)}


def dyna_planning_cases() -> list[Case]:
    """Seeded cases for ``dyna_planning``; each probes one property."""
    sample_hint = ("keys = list(model); each step s, a = keys[rng.integers(len(keys))], one draw per step "
                   "and no other use of rng.")
    target_hint = "target = r if terminated else r + gamma * max(Q[s2]); Q[s, a] += alpha * (target - Q[s, a])."
    return [
        Case((_random_q(0, 6, 4), _random_model(0, 6, 4, 5), 1, 0.5, 0.9), {"seed": 0},
             "one planning step, only non-terminal transitions in the model",
             target_hint + " " + sample_hint),
        Case((_random_q(1, 6, 4), _random_model(1, 6, 4, 5), 0, 0.5, 0.9), {"seed": 1},
             "n = 0 planning steps: Q must not change", "loop exactly n times."),
        Case((_random_q(2, 8, 4, scale=20.0), _random_model(2, 8, 4, 6, p_terminal=1.0), 5, 0.5, 0.9), {"seed": 2},
             "every remembered transition ends the episode: the target is r alone",
             "when the stored terminated flag is True do not bootstrap: target = r, not r + gamma * max(Q[s2])."),
        Case((_random_q(3, 10, 4), _random_model(3, 10, 4, 3), 20, 0.5, 0.9), {"seed": 3},
             "the model knows only 3 of the 40 (s, a) pairs",
             "plan only from pairs the model remembers: " + sample_hint),
        Case((np.zeros((4, 4)), _corridor(), 50, 0.5, 0.9), {"seed": 4},
             "a corridor 0 -> 1 -> 2 -> cheese: 50 steps carry the reward back",
             "update Q[s, a] in place, one sample after the other, so later steps see earlier updates."),
        Case((_random_q(5, 12, 4), _random_model(5, 12, 4, 20, p_terminal=0.2), 30, 0.1, 0.95), {"seed": 5},
             "30 steps from a mixed model, alpha 0.1",
             "move Q[s, a] only a fraction alpha of the way to the target."),
        Case((_random_q(6, 5, 4), _random_model(6, 5, 4, 8, p_terminal=0.25), 10, 1.0, 1.0), {"seed": 6},
             "alpha = 1 and gamma = 1: Q[s, a] becomes the target itself",
             target_hint),
    ]


def dyna_planning_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, table shapes and parameters than the notebook's."""
    target_hint = "target = r if terminated else r + gamma * max(Q[s2]); Q[s, a] += alpha * (target - Q[s, a])."
    return [
        Case((_random_q(10, 7, 3), _random_model(10, 7, 3, 6, p_terminal=0.3), 15, 0.3, 0.8), {"seed": 10},
             "15 steps on a 7 x 3 table, alpha 0.3, gamma 0.8", target_hint),
        Case((_random_q(11, 6, 4), _random_model(11, 6, 4, 6), 8, 0.5, 0.0), {"seed": 11},
             "gamma 0: planning pulls Q[s, a] toward r alone",
             "with gamma = 0 the target is r: Q[s, a] += alpha * (r - Q[s, a])."),
        Case((_random_q(12, 5, 4), _random_model(12, 5, 4, 1), 4, 0.5, 0.9), {"seed": 12},
             "a model with a single remembered pair, 4 steps",
             "every step samples the same pair and updates it again from its new value."),
        Case((np.zeros((6, 4)), _random_model(13, 6, 4, 10, p_terminal=0.3), 40, 0.5, 0.95), {"seed": 13},
             "a zero Q table and a model with terminal rewards, 40 steps",
             "update Q[s, a] in place, one sample after the other; stop bootstrapping where terminated is True."),
    ]


def check_dyna_planning(fn) -> CheckResult:
    """Check a student's ``dyna_planning(Q, model, n, alpha, gamma, rng) -> None`` (updates Q in place)."""
    __tracebackhide__ = True
    return EXERCISES["dyna_planning"].check(fn)


EXERCISES = {
    "update_model": Exercise("update_model", update_model, update_model_cases, update_model_hidden_cases,
                             adapt=_model_after,
                             names=("the outcome stored for (s, a)", "the model's keys", "the model's outcomes")),
    "dyna_planning": Exercise("dyna_planning", dyna_planning, dyna_planning_cases, dyna_planning_hidden_cases,
                              adapt=_q_after_planning),
}
