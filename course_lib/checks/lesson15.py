"""Checks for lesson 15's exercises: the win rate, an ensemble's combined reward, the checkpoint early stopping keeps.

* ``win_rate``: how often A's reply beats B's under a judge, ties counted half, and the standard error of
  that mean (:func:`course_lib.llm.overoptimisation.win_rate`);
* ``ensemble_reward``: K reward models' scores of N replies, each model standardised by its mean and std,
  combined by the mean or the minimum (Coste et al. 2024; :func:`course_lib.llm.overoptimisation.ensemble_reward`);
* ``early_stop_index``: the best held-out check up to where patience runs out
  (:func:`course_lib.llm.overoptimisation.early_stop_index`).

Shapes: N replies, K reward models.
"""

from __future__ import annotations

import numpy as np

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.llm.overoptimisation import early_stop_index, ensemble_reward, win_rate


def _copied(fn):
    """Call ``fn`` on copies of its array arguments, so an in-place edit cannot change the case for others."""

    def run(*args):
        return fn(*(a.copy() if isinstance(a, np.ndarray) else list(a) if isinstance(a, list) else a for a in args))

    return run


# ---- win_rate -----------------------------------------------------------------------------------

_WIN_RULE = ("w_i = 1 if scores_a[i] > scores_b[i], 0.5 if equal, 0 if lower; return (w.mean(), w.std(ddof=1) / "
             "sqrt(n)) as a tuple of two floats (se 0.0 when n == 1).")


def _vader_like(seed: int, n: int, zero_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Two (n,) score arrays in [-1, 1] rounded to 4 digits (as VADER reports them), a share of them exactly 0."""
    rng = np.random.default_rng(seed)
    a = np.round(np.tanh(rng.normal(0.3, 0.6, n)), 4)
    b = np.round(np.tanh(rng.normal(0.0, 0.6, n)), 4)
    a[rng.random(n) < zero_share] = 0.0
    b[rng.random(n) < zero_share] = 0.0
    return a, b


def win_rate_cases() -> list[Case]:
    """Seeded cases for ``win_rate``."""
    return [
        Case((np.array([0.5, -0.2, 0.9, 0.1]), np.array([0.1, 0.3, 0.2, -0.4])), {}, "4 pairs, no ties",
             "w_i is 1 where A's score is higher and 0 where it is lower: here w = [1, 0, 1, 1], so the rate is 0.75. "
             "The standard error of a mean of n values is std(w, ddof=1) / sqrt(n)."),
        Case((np.array([0.0, 0.0, 0.6, 0.0, -0.3, 0.4]), np.array([0.0, 0.2, 0.1, 0.0, -0.3, 0.0])), {},
             "6 pairs, 3 of them ties (two replies without a sentiment word score exactly 0)",
             "a tie counts one half, not a loss and not dropped: w = [0.5, 0, 1, 0.5, 0.5, 1], rate 7/12. Keep all n "
             "pairs in the standard error too."),
        Case((np.array([0.3, 0.0, -0.1]), np.array([0.3, 0.0, -0.1])), {}, "a model against itself: every pair ties",
             "identical replies must give a win rate of exactly 0.5 (every w_i = 0.5) and a standard error of 0."),
        Case(_vader_like(10, 40, 0.3), {}, "40 pairs of VADER-like scores, about a third of them 0", _WIN_RULE),
        Case((np.array([0.2]), np.array([0.7])), {}, "a single pair",
             "with n = 1 the sample std (ddof=1) is undefined; return a standard error of 0.0: " + _WIN_RULE),
    ]


def win_rate_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and sizes than the notebook's."""
    return [
        Case(_vader_like(110, 64, 0.5), {}, "64 pairs, half the scores 0", _WIN_RULE),
        Case(_vader_like(111, 7, 0.0), {}, "7 pairs, no zeros", _WIN_RULE),
        Case((np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0])), {}, "one win, two ties, one loss",
             _WIN_RULE),
    ]


def check_win_rate(fn) -> CheckResult:
    """Check a student's ``win_rate(scores_a, scores_b) -> (rate, se)``."""
    __tracebackhide__ = True
    return EXERCISES["win_rate"].check(fn)


# ---- ensemble_reward ----------------------------------------------------------------------------

_ENS_RULE = ("z = (scores - mean) / std, each column k by its own mean[k] and std[k] (the columns' own mean and "
             "std(ddof=0) when mean, std are None); then z.mean(axis=1) for how='mean' or z.min(axis=1) for how='min'.")


def _scores(seed: int, N: int, K: int, scales=None, offsets=None) -> np.ndarray:
    """(N, K) scores of N replies by K reward models on very different scales (like real reward models)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(N, 1))
    s = 0.7 * common + 0.7 * rng.normal(size=(N, K))
    scales = np.asarray(scales if scales is not None else rng.uniform(0.5, 4.0, K))
    offsets = np.asarray(offsets if offsets is not None else rng.uniform(-3, 3, K))
    return s * scales + offsets


def ensemble_reward_cases() -> list[Case]:
    """Seeded cases for ``ensemble_reward``."""
    return [
        Case((_scores(20, 5, 2, scales=[1.0, 10.0], offsets=[0.0, 5.0]), "mean", np.array([0.0, 5.0]),
              np.array([1.0, 10.0])), {}, "2 models, the second on a 10 times larger scale, mean and std given",
             "standardise before combining: (scores[:, k] - mean[k]) / std[k]. Averaging raw scores lets the model "
             "with the widest scale decide alone."),
        Case((_scores(21, 6, 3), "min", np.array([1.0, -2.0, 0.5]), np.array([2.0, 3.0, 0.5])), {},
             "3 models combined by the minimum",
             "'min' takes, for each reply, the most pessimistic model: the minimum over the K models (axis=1) of the "
             "standardised scores, one number per reply."),
        Case((_scores(22, 8, 3), "mean", None, None), {}, "mean and std not given: each column's own",
             "without mean and std, standardise each model (column) over the N replies: scores.mean(axis=0) and "
             "scores.std(axis=0) (ddof=0), not over the whole array or per reply."),
        Case((_scores(23, 7, 4), "min", None, None), {}, "4 models, minimum, columns' own statistics", _ENS_RULE),
        Case((_scores(24, 6, 3), "mean", np.array([0.5, 0.5, 0.5]), np.array([1.0, 2.0, 4.0])), {},
             "given statistics that differ from the columns' own",
             "use the mean and std passed in (measured on the starting policy's replies), not this batch's own: "
             "the batch's statistics move as the policy changes. " + _ENS_RULE),
    ]


def ensemble_reward_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and shapes than the notebook's."""
    return [
        Case((_scores(120, 10, 5), "min", None, None), {}, "5 models, minimum", _ENS_RULE),
        Case((_scores(121, 3, 2), "mean", np.array([0.2, -1.0]), np.array([0.3, 5.0])), {}, "given statistics",
             _ENS_RULE),
        Case((_scores(122, 12, 1), "mean", None, None), {}, "a single model", _ENS_RULE),
    ]


def check_ensemble_reward(fn) -> CheckResult:
    """Check a student's ``ensemble_reward(scores, how, mean, std) -> (N,)``."""
    __tracebackhide__ = True
    return EXERCISES["ensemble_reward"].check(fn)


# ---- early_stop_index ---------------------------------------------------------------------------

_STOP_RULE = ("keep best = the index of the highest score so far (the first on ties) and a count of checks since it; "
              "a check that beats best resets the count, any other adds 1; stop once the count reaches patience; "
              "return best.")


def early_stop_index_cases() -> list[Case]:
    """Cases for ``early_stop_index``."""
    return [
        Case(([0.10, 0.15, 0.22, 0.30, 0.31], 2), {}, "a held-out score that only rises",
             "nothing stops a run that keeps improving: the best check is the last one, index 4. Return an index into "
             "history, not a score."),
        Case(([0.10, 0.30, 0.25, 0.20, 0.15, 0.12], 2), {}, "a peak at check 1, then a steady fall",
             "the check to keep is the best one, index 1, not the check where training stopped (index 3)."),
        Case(([0.10, 0.30, 0.20, 0.25, 0.40], 3), {}, "a dip, then a new best within the patience",
             "patience 3 allows 3 checks in a row without a new best: checks 2 and 3 do not beat 0.30, check 4 does, "
             "so the run goes on and the best is index 4."),
        Case(([0.10, 0.30, 0.20, 0.25, 0.40], 2), {}, "the same history with patience 2",
             "with patience 2, the 2 checks in a row after index 1 that do not beat it (0.20, then 0.25: a rise, but "
             "not a new best, so it does not reset the count) stop the run at check 3; the later 0.40 is never "
             "seen: return 1, not the best of the whole history."),
        Case(([0.0, 0.30, 0.10, 0.20, 0.25, 0.28, 0.50], 2), {}, "small rises that do not beat the best",
             "the count runs from the best check, not from the previous one: 0.20 > 0.10 is a rise but not a new "
             "best, so it does not reset the count. Return 1."),
        Case(([0.10, 0.30, 0.30, 0.20], 5), {}, "a tie with the best",
             "a tie does not beat the best: keep the first check that reached it (index 1), the earlier, cheaper "
             "checkpoint."),
    ]


def early_stop_index_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case(([0.5], 1), {}, "a single check", _STOP_RULE),
        Case(([0.2, 0.1, 0.3, 0.25, 0.35, 0.34, 0.33, 0.9], 2), {}, "two new bests, then patience 2 runs out",
             _STOP_RULE),
        Case(([0.2, 0.1, 0.3, 0.25, 0.35, 0.34, 0.33, 0.9], 3), {}, "the same with patience 3", _STOP_RULE),
        Case(([0.4, 0.3, 0.2, 0.1], 1), {}, "falling from the start, patience 1", _STOP_RULE),
    ]


def check_early_stop_index(fn) -> CheckResult:
    """Check a student's ``early_stop_index(history, patience) -> int``."""
    __tracebackhide__ = True
    return EXERCISES["early_stop_index"].check(fn)


def _int_result(fn):
    """Accept a Python or numpy integer for the index, but not a float (an index is a whole number)."""

    def run(*args):
        out = fn(*args)
        if isinstance(out, np.integer):
            return int(out)
        if isinstance(out, float) or isinstance(out, np.floating):
            return f"a float ({out!r}); return an int index"
        return out

    return run


EXERCISES = {
    "win_rate": Exercise("win_rate", win_rate, win_rate_cases, win_rate_hidden_cases, adapt=_copied,
                         names=("rate", "se"), rtol=1e-6, atol=1e-9),
    "ensemble_reward": Exercise("ensemble_reward", ensemble_reward, ensemble_reward_cases, ensemble_reward_hidden_cases,
                                adapt=_copied, rtol=1e-6, atol=1e-9),
    "early_stop_index": Exercise("early_stop_index", early_stop_index, early_stop_index_cases,
                                 early_stop_index_hidden_cases, adapt=lambda fn: _int_result(_copied(fn))),
}
