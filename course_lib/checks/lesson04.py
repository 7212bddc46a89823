"""Checks for lesson 4's exercises: the one-step TD targets of SARSA, Q-learning, expected SARSA and Double Q,
a spot-the-bug (a Q-learning step that treats truncation as termination), a whole Q-learning agent checked by
its behaviour, and a predict-then-run question about the cliff.

Every target is a plain Python ``float``; a student's ``numpy.float64`` (or
an int where the reward is one) passes too, since :func:`compare` accepts any
real number and compares values.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson04 import Scenario, behaviour, table_after
from course_lib.tabular.td import (
    double_q_target,
    epsilon_greedy,
    expected_sarsa_target,
    q_learning_target,
    sarsa_target,
)

BUILDS = ("td_control",)
"""The library's ``td_control`` holds the Q-learning loop that ``q_learning_agent`` asks for: lesson 4 must not print it."""

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
        Case((-1.0, np.array([-2.5, -np.inf, -0.75, -np.inf]), 0.9, False), {},
             "invalid actions (-inf) beside valid ones that are all negative",
             "-inf marks an action that does not exist: it must not take part in the max at all. Turning it into 0 "
             "(or any other number) invents an action worth 0, better than every real one here."),
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
        Case((0.5, np.array([-np.inf, -4.0, -np.inf, -np.inf, -1.5]), 0.95, False), {},
             "two valid actions, both negative, among three masked with -inf",
             "an action masked with -inf does not exist: leave it out of the max; never replace it by 0."),
    ]


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


# ---- spot the bug: a Q-learning step that treats truncation as termination ---------------

BUG_OPTIONS = {
    "A": "The target bootstraps from the best next action instead of the action the policy will take next.",
    "B": "A step cut off by the time limit (truncated) stops the bootstrap, as if the robot had reached the cheese.",
    "C": "The update should set Q[s, a] to alpha * target instead of moving it by alpha * (target - Q[s, a]).",
    "D": "Q is changed in place; the function should return a new table.",
}
"""The choices of the spot-the-bug question (exercise 4): one names the real bug."""

BUG_FEEDBACK = {
    "A": "bootstrapping from the best next action is what makes it Q-learning (off-policy); bootstrapping from the "
         "action actually taken is SARSA, a different algorithm, not a fix.",
    "C": "setting Q[s, a] to alpha * target throws away what was learned so far; moving a fraction alpha of the way "
         "towards the target is the TD update, and the buggy code does that correctly.",
    "D": "an in-place update is how tabular learners work (the docstring asks for it); it changes nothing in what "
         "is learned; look at which transitions are allowed to bootstrap.",
}


def the_bug() -> str:
    """The letter of the option that names the bug of ``buggy_q_learning_step``."""
    return "B"


def q_learning_step(Q: np.ndarray, s: int, a: int, r: float, s2: int, terminated: bool, truncated: bool,
                    alpha: float, gamma: float) -> None:
    """Reference: one Q-learning update of Q[s, a], in place; only termination stops the bootstrap."""
    Q[s, a] += alpha * (q_learning_target(r, Q[s2], gamma, terminated) - Q[s, a])


def _q_table(seed: int, S: int = 5, A: int = 4, shift: float = 0.0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).normal(shift, 3.0, size=(S, A)), 3)  # (S, A)


def q_learning_step_cases() -> list[Case]:
    """Cases for the fixed ``q_learning_step``; each probes one property."""
    return [
        Case((_q_table(30), 1, 2, -1.0, 3, False, False, 0.5, 0.9), {}, "an ordinary step: neither flag set",
             "the target is r + gamma * the best value of s2; Q[s, a] moves a fraction alpha towards it."),
        Case((_q_table(31), 0, 1, 10.0, 4, True, False, 0.5, 0.9), {}, "the step reaches the cheese (terminated)",
             "terminated: s2 has no future, so the target is the reward alone."),
        Case((_q_table(32, shift=-5.0), 2, 3, -1.0, 1, False, True, 0.5, 0.9), {},
             "the time limit cuts the episode (truncated, not terminated)",
             "the bug is here: a truncated step still bootstraps. The robot was stopped by the clock, s2 still "
             "has a future, and its value counts in the target."),
        Case((_q_table(33), 3, 0, 10.0, 2, True, True, 1.0, 0.9), {},
             "both flags on the same step: the cheese on the very last allowed step",
             "terminated decides: no bootstrap, whatever truncated says."),
        Case((_q_table(34, shift=2.0), 4, 2, -1.0, 0, False, True, 1.0, 1.0), {},
             "truncated with alpha 1 and gamma 1",
             "with alpha = 1, Q[s, a] becomes the target itself: r + the best value of s2 (it was truncated, not "
             "terminated)."),
    ]


def q_learning_step_hidden_cases() -> list[Case]:
    """Grader-only cases for ``q_learning_step``."""
    return [
        Case((_q_table(130, 6, 3, shift=-2.0), 5, 1, -1.0, 2, False, True, 0.3, 0.95), {},
             "a truncated step on a 6 x 3 table, alpha 0.3",
             "truncation is not termination: bootstrap from the best value of s2."),
        Case((_q_table(131, 4, 4), 2, 2, -10.0, 3, True, False, 0.5, 0.99), {}, "a trap (terminated, reward -10)",
             "terminated: the target is the reward alone."),
        Case((_q_table(132, 5, 2, shift=1.0), 0, 1, 0.0, 0, False, False, 0.25, 0.8), {},
             "a bump into a wall: s2 is s itself", "read the best value of s2 before you change Q[s, a]."),
    ]


# ---- the whole agent: Q-learning, checked by its behaviour --------------------------------


def q_learning_agent(env, episodes: int, alpha: float, gamma: float, epsilon: float, seed: int = 0,
                     q_init: float = 0.0) -> np.ndarray:
    """Reference: tabular Q-learning with an epsilon-greedy behaviour policy; returns Q (S, A)."""
    rng = np.random.default_rng(seed)
    Q = np.full((env.observation_space.n, env.action_space.n), float(q_init))  # (S, A)
    valid = np.ones(env.action_space.n, dtype=bool)  # (A,)
    for episode in range(episodes):
        s, _ = env.reset(seed=seed if episode == 0 else None)
        done = False
        while not done:
            a = epsilon_greedy(Q[s], valid, epsilon, rng)
            s2, r, terminated, truncated, _ = env.step(a)
            q_learning_step(Q, s, a, r, s2, terminated, truncated, alpha, gamma)
            s, done = s2, terminated or truncated
    return Q


SMALL = ("#######", "#S..#.#", "#.#...#", "#.#.#.#", "#...#C#", "#######")
TWO_ROUTES = ("########", "#S.....#", "#.####.#", "#......#", "####.#.#", "#C...#.#", "########")
TRAP_ROOM = ("#######", "#T...C#", "#.#.#.#", "#..S..#", "#######")
SPIRAL = ("#########", "#S......#", "#######.#", "#C......#", "#########")
OPEN = ("#######", "#.....#", "#.S...#", "#.....#", "#....C#", "#######")


def q_learning_agent_cases() -> list[Case]:
    """Cases for ``q_learning_agent``: behaviour on mazes the check builds, and the two rules of the target."""
    return [
        Case((Scenario("small", SMALL, "path", episodes=150), 0), {},
             "the small maze: after 150 episodes the greedy path is the shortest (7 steps)",
             "each step: an epsilon-greedy action from the CURRENT Q, env.step, your q_learning_step, and the next "
             "state becomes the current one. A longer path or -1 (no path) means the learning does not work yet."),
        Case((Scenario("two routes", TWO_ROUTES, "path", episodes=200), 1), {},
             "two routes to the cheese: the greedy path must take the shorter one",
             "the max in the target makes Q prefer the shorter route; explore with epsilon, but keep updating "
             "from every step, exploratory ones included."),
        Case((Scenario("small", SMALL, "terminal", episodes=60, alpha=1.0, gamma=0.9, q_init=5.0), 2), {},
             "alpha 1, Q starting at 5 everywhere: a move into the cheese is worth its reward alone",
             "Q starts at q_init everywhere, the cheese's row too; a move that terminates must not bootstrap "
             "from it (with alpha 1 that move's Q becomes exactly 10)."),
        Case((Scenario("small", SMALL, "start", limit=1, episodes=30, alpha=1.0, gamma=0.9, q_init=5.0), 3), {},
             "a 1-step time limit: every step is truncated, none terminates",
             "a truncated step bootstraps: with alpha 1, a move from the start to a new cell becomes "
             "-1 + 0.9 * 5 = 3.5. If you got -1, truncation stopped the bootstrap."),
    ]


def q_learning_agent_hidden_cases() -> list[Case]:
    """Grader-only cases: other mazes, seeds and budgets than the notebook's."""
    return [
        Case((Scenario("spiral", SPIRAL, "path", episodes=150), 11), {}, "a corridor that turns back (14 steps)",
             "the greedy path after training must be the shortest."),
        Case((Scenario("trap room", TRAP_ROOM, "path", episodes=200, epsilon=0.2), 12), {},
             "a trap two steps from the start, the cheese four steps away",
             "a trap terminates with -10; the greedy path must lead to the cheese."),
        Case((Scenario("open room", OPEN, "terminal", episodes=80, alpha=1.0, gamma=0.8, q_init=4.0), 13), {},
             "an open room, alpha 1, Q starting at 4: no bootstrap through the cheese",
             "a move that terminates has the reward alone as its target."),
        Case((Scenario("two routes", TWO_ROUTES, "start", limit=1, episodes=20, alpha=1.0, gamma=0.5,
                       q_init=2.0), 14), {},
             "a 1-step time limit in another maze, gamma 0.5, Q starting at 2",
             "a truncated step still bootstraps: -1 + 0.5 * 2 = 0 for a move to a new cell."),
    ]


# ---- predict, then run: expected SARSA on the cliff --------------------------------------

CLIFF_OPTIONS = {
    "A": "Q-learning's path: along the cliff edge, 13 steps.",
    "B": "SARSA's path: along the top wall, as far from the edge as the maze allows, 17 steps.",
    "C": "A path in between: one row away from the edge, 15 steps.",
    "D": "No path: the -100 of the cliff keeps its greedy policy from ever reaching the goal.",
}
"""The choices of the predict-then-run question (exercise 4)."""

CLIFF_FEEDBACK = {
    "A": "Q-learning walks the edge because its target assumes the greedy action from s' on, ignoring exploration. "
         "Expected SARSA's target averages over the epsilon-greedy policy, exploratory moves included: next to "
         "the edge, one move in 40 falls.",
    "B": "SARSA's target is a single sampled next action, and with alpha = 0.5 one unlucky exploratory sample "
         "next to the edge drags its values down at once; expected SARSA averages over every next action instead. "
         "Estimate the expected cost of falling along each row: on which rows can one exploratory move reach "
         "the cliff at all?",
    "D": "every learner here reaches the goal: the cliff is not terminal, it only sends the robot back, and -1 per "
         "step makes wandering costly too.",
}


def cliff_prediction() -> str:
    """The letter of the path expected SARSA's greedy policy takes on the cliff (epsilon 0.1, 500 episodes)."""
    return "C"


def _one(about: str, hint: str) -> Callable[[], list[Case]]:
    return lambda: [Case((), {}, about, hint)]


HINTS = {
    "q_learning_target": (
        "Two branches on terminated. Terminal s': the target is the reward alone (the next state has value 0 by "
        "definition, whatever the table holds). Otherwise: reward + gamma * the LARGEST entry of q_next. numpy's "
        "max skips nothing by itself, but -inf can never win a max as long as one action is finite, so leave the "
        "-inf entries as they are. Worked example: r = -1, q_next = [-2.5, -inf, -0.75, -inf], gamma 0.9: "
        "-1 + 0.9 * (-0.75) = -1.675. Traps: replacing -inf by 0 (invents a better action: -1 instead of "
        "-1.675); starting a running max at 0; the mean instead of the max; returning an array."
    ),
    "sarsa_target": (
        "The same two branches as Q-learning; the only change is which next value bootstraps: the single "
        "number q_next_action, the value of the action the policy actually picked in s' (exploration "
        "included). Worked example: r = -1, Q(s', a') = 4, gamma 0.5: -1 + 0.5 * 4 = 1.0; terminated: -1. "
        "Return a Python float (wrap a numpy scalar with float)."
    ),
    "double_q_target": (
        "Two tables, two roles: the first (q_select_next) only CHOOSES the next action, as the index of its "
        "largest entry, first index on ties (numpy's argmax); the second (q_eval_next) only VALUES it: read "
        "its entry at that index. Worked example: select [0, 5, 1], eval [9, -2, 7], r = 1, gamma 0.5: the "
        "choice is index 1, its value in eval is -2, target 1 + 0.5 * (-2) = 0. Taking the max of the eval "
        "table instead would give 1 + 0.5 * 9 = 5.5: the maximisation bias Double Q removes."
    ),
    "expected_sarsa_target": (
        "The next value is an average: each next action's value weighted by its probability under the policy. "
        "Only actions with a positive probability may take part: 0 * (-inf) is nan in floating point. So "
        "select the actions whose probability is above 0 (a boolean mask), then the weighted sum over them "
        "(numpy's dot product of the two masked arrays). Worked example: q = [2, 4], probs = [0.5, 0.5], r = 1, "
        "gamma 0.5: 1 + 0.5 * 3 = 2.5."
    ),
    "q_learning_step": (
        "The target of a real Q-learning step depends on one flag only: terminated. A truncated step (the clock "
        "ran out) ends the EPISODE but not the task: the next state still has a future, so the target still "
        "bootstraps from its best value. Your q_learning_target already does the right thing when you pass it "
        "the right flag. Worked example: Q[s2] = [-2, -1], r = -1, gamma 0.9, alpha 0.5, Q[s, a] = -4, "
        "truncated: target -1 + 0.9 * (-1) = -1.9, so Q[s, a] becomes -4 + 0.5 * (2.1) = -2.95 (the buggy "
        "version gives -2.5)."
    ),
    "q_learning_agent": (
        "Compose what you wrote: a generator from the seed (once); Q filled with q_init, shape (number of "
        "states, number of actions) from the env's spaces; per episode a reset (the seed on the first one "
        "only); then, until terminated OR truncated: choose epsilon-greedily from the current row of Q ("
        "the library's epsilon_greedy with an all-True valid mask), step the env, update with "
        "your fixed q_learning_step, and move on to the next state. The check trains your agent on mazes it "
        "builds and looks at the behaviour: the greedy path's length, the value of moves into the cheese "
        "(alpha 1, Q starting at q_init: exactly the reward), and the start's value under a 1-step time limit "
        "(every step truncated, so every step bootstraps)."
    ),
}


EXERCISES = {
    "q_learning_target": Exercise("q_learning_target", q_learning_target, q_learning_target_cases,
                                  q_learning_target_hidden_cases, twins=("course_lib.tabular.td.q_learning_target",)),
    "sarsa_target": Exercise("sarsa_target", sarsa_target, sarsa_target_cases, sarsa_target_hidden_cases,
                             twins=("course_lib.tabular.td.sarsa_target",)),
    "expected_sarsa_target": Exercise("expected_sarsa_target", expected_sarsa_target, expected_sarsa_target_cases,
                                      expected_sarsa_target_hidden_cases,
                                      twins=("course_lib.tabular.td.expected_sarsa_target",)),
    "double_q_target": Exercise("double_q_target", double_q_target, double_q_target_cases,
                                double_q_target_hidden_cases, twins=("course_lib.tabular.td.double_q_target",)),
    "the_bug": Exercise("the_bug", the_bug, _one("your answer", "which transitions may bootstrap, and which may "
                                                 "not? Compare the code with the two rules at the top."), list,
                        kind="answer", comparer=functools.partial(compare_answers, feedback=BUG_FEEDBACK),
                        explanation="a time limit stops the clock, not the task: the state after a truncated step "
                                    "still has a future worth r + gamma * max Q(s'), so only terminated may end the "
                                    "bootstrap. Treating truncation as an end teaches the robot that the last "
                                    "cells before the limit are worth nothing."),
    "q_learning_step": Exercise("q_learning_step", q_learning_step, q_learning_step_cases,
                                q_learning_step_hidden_cases, adapt=table_after),
    "q_learning_agent": Exercise("q_learning_agent", q_learning_agent, q_learning_agent_cases,
                                 q_learning_agent_hidden_cases, adapt=behaviour,
                                 twins=("course_lib.tabular.td.td_control",)),
    "cliff_prediction": Exercise("cliff_prediction", cliff_prediction,
                                 _one("your prediction", "compare what each target assumes about the next action "
                                      "with what the exploring robot really does next to the edge."), list,
                                 kind="answer", comparer=functools.partial(compare_answers, feedback=CLIFF_FEEDBACK),
                                 explanation="expected SARSA pays for exploration on average: along the edge row "
                                             "one move in 40 falls (about 2.5 per step over some 11 cells), while "
                                             "from the row above an exploratory move only reaches the edge row; two "
                                             "extra steps are the cheaper price. SARSA aims at the same target in "
                                             "expectation, but its single-sample targets with alpha = 0.5 are noisy, "
                                             "so it ends further away than it needs to."),
}


__getattr__ = check_functions(EXERCISES)
