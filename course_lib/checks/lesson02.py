"""Checks for lesson 2's exercises: the bandit math (the shared update, epsilon-greedy, UCB scores).

Randomness: ``epsilon_greedy_action`` takes a generator. Each case gives the
student's function and the reference their own fresh
``np.random.default_rng(seed)`` with the same seed, so both see the same
random numbers and must return the same arm.

Infinities: ``ucb_scores`` returns ``+inf`` for arms never pulled, and
:func:`~course_lib.checks.core.compare` rejects non-finite floats. The case
wrapper therefore splits a score vector into ``(is_inf, finite)``: where the
``+inf`` entries are, and the scores with those entries set to 0. A NaN or
``-inf`` stays in ``finite`` and is reported as non-finite.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from course_lib.checks.core import Case, Exercise, check_functions
from course_lib.harness.lesson02 import seeded, split, split_inf, watch_inputs  # noqa: F401  (split_inf: public here)
from course_lib.tabular.bandits import epsilon_greedy_action, incremental_mean, ucb_scores

BUILDS = ("update",)
"""The agents' shared ``BanditAgent.update`` is what ``bandit_update`` asks for: the lesson must not print it."""

# ----------------------------------------------------------------------------
# bandit_update(q, counts, arm, reward) -> (q, counts): the learning step every agent shares
# ----------------------------------------------------------------------------


def bandit_update(q: np.ndarray, counts: np.ndarray, arm: int, reward: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: new (q, counts) after pressing ``arm`` and receiving ``reward``; the inputs stay unchanged."""
    q, counts = q.copy(), counts.copy()  # (K,) float, (K,) int
    counts[arm] += 1
    q[arm] = incremental_mean(float(q[arm]), int(counts[arm]), float(reward))
    return q, counts


BANDIT_UPDATE_NAMES = ("q", "counts", "inputs left unchanged")


def _stream(seed: int, n: int, k: int, arm: int, pays: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(q, counts, next reward) of a K-lever agent whose ``arm`` has been pressed n - 1 times (seeded Bernoulli rewards)."""
    rng = np.random.default_rng(seed)
    rewards = (rng.random(n) < pays).astype(float)  # (n,)
    q = np.round(rng.random(k), 3)  # (K,) the other levers' estimates
    counts = rng.integers(1, 20, size=k)  # (K,) int64
    q[arm], counts[arm] = float(rewards[:-1].mean()) if n > 1 else 0.0, n - 1
    return q, counts, float(rewards[-1])


def bandit_update_cases() -> list[Case]:
    """Seeded cases for :func:`bandit_update`; each probes one property."""
    q30, n30, r30 = _stream(20, 30, 5, 3, 0.7)
    gauss = np.random.default_rng(21).normal(0.4, 1.0, size=8)  # (8,) Gaussian rewards
    qg, ng = np.array([0.2, float(gauss[:7].mean()), -0.3]), np.array([4, 7, 2])
    return [
        Case((np.zeros(4), np.zeros(4, dtype=np.int64), 2, 1.0), {}, "the first press of lever 2, estimates start at 0",
             "the count of the pressed lever goes from 0 to 1, and with one reward its mean IS that reward."),
        Case((np.array([0.0, 7.0, 0.0]), np.array([3, 0, 5]), 1, 0.0), {},
             "the first press of lever 1, whose estimate starts at 7.0: the old value must not matter",
             "count this reward before you divide: the first reward has weight 1/1, so the old estimate is replaced."),
        Case((np.array([1.0, 0.5]), np.array([1, 2]), 0, 0.0), {}, "the second reward of lever 0: the mean of 1 and 0",
             "the estimate moves a fraction 1/n of the way towards the reward, n counting this reward (here 1/2)."),
        Case((np.array([0.5, 0.2, 0.9]), np.array([3, 8, 1]), 0, 1.0), {},
             "the fourth reward of lever 0 moves its estimate a quarter of the way",
             "n = 4 after this press: the step is 1/4 of (reward - estimate)."),
        Case((q30, n30, 3, r30), {}, "the 30th Bernoulli reward of lever 3 of 5; the other levers must not move",
             "change only the pressed lever's entry, in both arrays."),
        Case((qg, ng, 1, float(gauss[7])), {}, "a Gaussian reward, which can be negative",
             "nothing special for negative rewards or estimates."),
        Case((np.array([0.25, 0.6]), np.array([999, 10]), 0, 1.0), {}, "a lever pressed 1,000 times barely moves",
             "the step 1/n shrinks as n grows: the 1000th reward moves the estimate by (reward - estimate) / 1000."),
        Case((np.array([0.4, 0.1, 0.3]), np.array([2, 2, 2]), 2, 1.0), {},
             "the arrays you are given stay as they were (the third item of the check)",
             "work on copies: an agent that keeps its history, or a test that reuses its arrays, must not see them change."),
    ]


def bandit_update_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`bandit_update`: other streams, counts and signs than the notebook's."""
    q12, n12, _ = _stream(120, 12, 6, 0, 0.3)
    gauss = np.random.default_rng(121).normal(-0.5, 2.0, size=250)  # (250,)
    return [
        Case((q12, n12, 0, 1.0), {}, "the 12th reward of lever 0 of 6, a lever that pays 30 %",
             "n = 12 counts this reward; only lever 0 moves."),
        Case((np.array([-3.0, 0.0]), np.array([1, 0]), 0, 5.0), {}, "the second reward: -3 and 5 average to 1",
             "the step is 1/n with n = 2 after this press."),
        Case((np.array([0.0, float(gauss[:249].mean()), 2.0]), np.array([0, 249, 6]), 1, float(gauss[249])), {},
             "the 250th reward of a seeded Gaussian lever", "n = 250 after this press."),
        Case((np.array([-4.0, 1.0, 1.0, 1.0]), np.array([0, 3, 3, 3]), 0, 2.5), {},
             "the first press of lever 0 with a negative old estimate: the result is the reward 2.5",
             "with n = 1 the new estimate is the reward, whatever the old one was."),
    ]


# ----------------------------------------------------------------------------
# epsilon_greedy_action(q, epsilon, rng) -> int
# ----------------------------------------------------------------------------


def _first_seed(q: np.ndarray, epsilon: float, want: Callable[[int], bool], explores: bool | None = None) -> int:
    """The smallest seed for which the reference's arm satisfies ``want`` (and its coin explores, if given).

    So each case probes what its ``about`` says, whatever numpy's streams are.
    """
    for seed in range(1000):
        if explores is not None and (np.random.default_rng(seed).random() < epsilon) != explores:
            continue
        if want(epsilon_greedy_action(q, epsilon, np.random.default_rng(seed))):
            return seed
    raise RuntimeError("no seed found")  # pragma: no cover: 1000 seeds always suffice for these cases


def epsilon_greedy_cases() -> list[Case]:
    """Seeded cases for :func:`epsilon_greedy_action`; ``seed`` gives both functions ``np.random.default_rng(seed)``."""
    clear = np.array([0.1, 0.7, 0.3, 0.2])  # (4,) arm 1 is best
    tie = np.array([0.2, 0.9, 0.1, 0.9])  # (4,) arms 1 and 3 tie
    zeros = np.zeros(6)  # (6,) before any pull: every arm ties
    negative = np.array([-1.0, -0.5, -2.0])  # (3,) Gaussian levers can all be negative
    rng = np.random.default_rng(21)
    randoms = [rng.normal(0.0, 1.0, size=k) for k in (5, 8, 10)]
    cases = [
        Case((clear, 0.0), {"seed": 0}, "epsilon 0: pure greedy, q = [0.1, 0.7, 0.3, 0.2]",
             "with epsilon 0 return the arm with the largest q (here arm 1). Still draw rng.random() first."),
        Case((negative, 0.0), {"seed": 0}, "epsilon 0, all values negative: q = [-1.0, -0.5, -2.0]",
             "the greedy arm is argmax q even when every value is negative (here arm 1)."),
        Case((tie, 0.0), {"seed": _first_seed(tie, 0.0, lambda a: a == 3)},
             "epsilon 0, arms 1 and 3 tie at 0.9; the seeded tie-break picks arm 3",
             "ties must be broken at random among ALL the levers with the largest value (np.argmax always takes "
             "the first); with one best lever, draw nothing more."),
        Case((zeros, 0.0), {"seed": _first_seed(zeros, 0.0, lambda a: a == 4)},
             "epsilon 0 before any pull: all 6 estimates are 0, so all 6 arms tie",
             "the coin first, then the tie-break draw among the 6 tied levers."),
        Case((clear, 1.0), {"seed": _first_seed(clear, 1.0, lambda a: a == 3)},
             "epsilon 1: always explore, a uniformly random arm",
             "when the coin is below epsilon, draw a lever uniformly among all K (as an int)."),
        Case((clear, 1.0), {"seed": _first_seed(clear, 1.0, lambda a: a == 1)},
             "epsilon 1: exploring may pick the greedy arm too",
             "exploring draws among all K levers, the greedy one included, not only the others."),
        Case((tie, 0.5), {"seed": _first_seed(tie, 0.5, lambda a: a == 3, explores=False)},
             "epsilon 0.5 with a tie: the coin says exploit, the tie-break says arm 3",
             "the order of the draws: the coin first, then (when it says exploit) the tie-break."),
        Case((tie, 0.5), {"seed": _first_seed(tie, 0.5, lambda a: a in (0, 2), explores=True)},
             "epsilon 0.5: the coin says explore",
             "explore when the coin is strictly below epsilon (not above)."),
    ]
    for q in randoms:  # one seed whose coin explores (off the greedy arm), one whose coin exploits
        greedy = int(np.argmax(q))
        explore = _first_seed(q, 0.2, lambda a: a != greedy, explores=True)
        exploit = _first_seed(q, 0.2, lambda a: True, explores=False)
        for seed, what in ((explore, "explores"), (exploit, "exploits")):
            cases.append(Case((q, 0.2), {"seed": seed}, f"seeded values for K = {q.shape[0]} arms, epsilon 0.2; "
                              f"the coin {what}", "one coin per call; below epsilon a uniform lever, "
                              "else the best lever with a random tie-break."))
    return cases


def epsilon_greedy_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`epsilon_greedy_action`: other values, ties and epsilons than the notebook's."""
    tie3 = np.array([0.5, 0.2, 0.5, 0.5, 0.1])  # (5,) arms 0, 2 and 3 tie
    q7 = np.random.default_rng(122).normal(0.0, 1.0, size=7)  # (7,)
    greedy7 = int(np.argmax(q7))
    pair = np.array([0.3, 0.8])  # (2,) arm 1 is best
    return [
        Case((tie3, 0.0), {"seed": _first_seed(tie3, 0.0, lambda a: a == 2)},
             "epsilon 0, a three-way tie at 0.5 (arms 0, 2, 3); the seeded tie-break picks arm 2",
             "break ties at random among all the best arms (a three-way tie here)."),
        Case((q7, 0.3), {"seed": _first_seed(q7, 0.3, lambda a: a != greedy7, explores=True)},
             "K = 7 seeded arms, epsilon 0.3: the coin explores to a non-greedy arm",
             "when rng.random() < epsilon, return int(rng.integers(K))."),
        Case((q7, 0.3), {"seed": _first_seed(q7, 0.3, lambda a: True, explores=False)},
             "K = 7 seeded arms, epsilon 0.3: the coin exploits, the greedy arm",
             "when rng.random() >= epsilon, return the arm with the largest q."),
        Case((pair, 0.9), {"seed": _first_seed(pair, 0.9, lambda a: a == 1, explores=True)},
             "two arms, epsilon 0.9: the coin explores and lands on the better arm 1",
             "explore over all K arms with rng.integers(K), the greedy one included, after one coin rng.random()."),
    ]


# ----------------------------------------------------------------------------
# ucb_scores(q, counts, t, c) -> (K,) float array with +inf for unpulled arms
# ----------------------------------------------------------------------------

UCB_NAMES = ("is +inf", "finite scores")
"""Labels of the two parts a score vector is split into for comparison."""


def ucb_cases() -> list[Case]:
    """Seeded cases for :func:`ucb_scores`; each probes one property."""
    rng = np.random.default_rng(22)

    def pulled(k: int, low: int = 1, high: int = 50) -> tuple[np.ndarray, np.ndarray]:
        counts = rng.integers(low, high, size=k)  # (K,) int64
        return rng.random(k), counts  # (K,) Q in [0, 1), (K,)

    q1, n1 = pulled(5)
    q2, n2 = pulled(6)
    n2[[1, 4]] = 0
    q2[[1, 4]] = 0.0
    q3, n3 = pulled(4)
    n3[2] = 0
    q3[2] = 0.0
    q4, n4 = pulled(10, 100, 2000)
    q5 = rng.normal(0.0, 1.0, size=5)  # (5,) Gaussian levers: negative values too
    n5 = rng.integers(1, 30, size=5)
    q6, n6 = np.array([0.5, 0.5]), np.array([1, 99])
    return [
        Case((np.zeros(4), np.zeros(4, dtype=np.int64), 1, 0.5), {},
             "t = 1, no arm pulled yet: every score is +inf",
             "an arm with N(a) = 0 gets U(a) = +inf; with t = 1, ln t = 0 and 0 / 0 would give NaN."),
        Case((q1, n1, int(n1.sum()) + 1, 0.5), {}, "every arm pulled at least once, c = 0.5",
             "U(a) = Q(a) + c * sqrt(ln t / N(a)): the natural log (np.log), under a square root."),
        Case((q2, n2, int(n2.sum()) + 1, 0.5), {}, "arms 1 and 4 never pulled: their scores are +inf",
             "set U(a) = np.inf where counts == 0 (and do not divide by those zeros)."),
        Case((q3, n3, int(n3.sum()) + 1, 0.0), {}, "c = 0: the bonus vanishes, yet an unpulled arm is still +inf",
             "with c = 0 pulled arms score Q(a); arms with N(a) = 0 stay +inf (0 * inf would be NaN)."),
        Case((q1, n1, int(n1.sum()) + 1, 2.0), {}, "c = 2 (Sutton & Barto's Fig. 2.4) scales the bonus",
             "multiply the square root by c."),
        Case((q6, n6, 101, 0.5), {}, "two arms with the same Q: the rarely pulled one (N = 1) scores higher",
             "the bonus grows with ln t and shrinks with N(a)."),
        Case((q4, n4, int(n4.sum()) + 1, 0.5), {}, "10 arms after many pulls (t around 10,000)",
             "U(a) = Q(a) + c * sqrt(ln t / N(a)) with the natural log of t."),
        Case((q5, n5, int(n5.sum()) + 1, 1.0), {}, "negative estimates (Gaussian levers), c = 1",
             "add the bonus to Q(a) as it is; nothing special for negative values."),
    ]


def ucb_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`ucb_scores`: other counts, times and exploration weights than the notebook's."""
    rng = np.random.default_rng(123)
    q1, n1 = rng.random(7), rng.integers(1, 40, size=7)  # (7,), (7,) int64
    n1[0], q1[0] = 0, 0.0
    q2 = rng.normal(0.5, 1.0, size=3)  # (3,)
    n2 = np.ones(3, dtype=np.int64)
    q3, n3 = np.zeros(5), np.array([0, 0, 3, 0, 0])
    q3[2] = 0.6
    q4, n4 = rng.normal(0.0, 1.0, size=6), rng.integers(5, 500, size=6)
    return [
        Case((q1, n1, int(n1.sum()) + 1, 1.5), {}, "7 arms, arm 0 never pulled, c = 1.5",
             "U(a) = +inf where N(a) = 0, else Q(a) + c * sqrt(ln t / N(a))."),
        Case((q2, n2, 4, 0.5), {}, "every arm pulled once, t = 4: the same bonus for all",
             "with equal counts the bonus c * sqrt(ln t / N(a)) is equal for every arm."),
        Case((q3, n3, 4, 1.0), {}, "only arm 2 pulled (3 times): the other four are +inf",
             "compute the bonus only where counts > 0; every other arm is +inf."),
        Case((q4, n4, 5000, 0.25), {}, "6 Gaussian arms at t = 5000, c = 0.25",
             "use the natural log of t, np.log(t), and the square root of ln t / N(a)."),
    ]


# ----------------------------------------------------------------------------
# The exercises, for the notebook checks and the grader
# ----------------------------------------------------------------------------

HINTS = {
    "bandit_update": (
        "Two entries change, both at index arm: the count goes up by one FIRST, then the estimate moves towards "
        "the reward by a fraction 1/n, where n is the NEW count (the incremental mean of the markdown). "
        "Worked example: q = [0.5, 0.2], counts = [3, 8], arm 0, reward 1.0 -> counts [4, 8], and q[0] moves "
        "a quarter of the way from 0.5 to 1.0: q = [0.625, 0.2]. Traps: dividing by the OLD count (a first "
        "press would divide by zero); changing the arrays you were given (copy them first; numpy's copy "
        "method does it); integer arrays: the counts are ints, the estimates floats."
    ),
    "epsilon_greedy_action": (
        "The check replays your random draws, so their order matters: ONE coin from rng.random() on every call, "
        "even when epsilon is 0 or 1. Coin below epsilon: a lever drawn uniformly among all K with the "
        "generator's integer method. Otherwise: find every lever whose estimate equals the maximum (compare the "
        "array with its max: a boolean array; numpy can list the positions where it is True). One such lever: "
        "return it with no further draw. Several: let the generator's choice method pick among them. Example: "
        "q = [0.2, 0.9, 0.1, 0.9], epsilon 0, the tied levers are [1, 3], and the draw picks one of the two."
    ),
    "ucb_scores": (
        "Start from a score of +inf for every lever; then overwrite only the levers with a count above zero, "
        "selected by a boolean mask, so you never divide by a zero count. The bonus of a pressed lever is "
        "c times the square root of (natural log of t) / N(a). Worked example: Q = 0.5, N = 4, t = 6, c = 0.5: "
        "ln 6 = 1.792, / 4 = 0.448, sqrt = 0.669, times 0.5 = 0.335, score 0.835. Traps: log base 10 or base 2; "
        "computing every lever and patching the NaNs afterwards (t = 1 gives 0 / 0); c = 0 must still leave "
        "unpressed levers at +inf; return float64 even when q is all zeros."
    ),
}

EXERCISES = {
    "bandit_update": Exercise("bandit_update", bandit_update, bandit_update_cases, bandit_update_hidden_cases,
                              adapt=watch_inputs, names=BANDIT_UPDATE_NAMES,
                              twins=("course_lib.tabular.bandits.incremental_mean",)),
    "epsilon_greedy_action": Exercise("epsilon_greedy_action", epsilon_greedy_action, epsilon_greedy_cases,
                                      epsilon_greedy_hidden_cases, adapt=seeded,
                                      twins=("course_lib.tabular.bandits.epsilon_greedy_action",)),
    "ucb_scores": Exercise("ucb_scores", ucb_scores, ucb_cases, ucb_hidden_cases, adapt=split, names=UCB_NAMES,
                           twins=("course_lib.tabular.bandits.ucb_scores",)),
}


__getattr__ = check_functions(EXERCISES)
