"""Checks for lesson 15's exercises: the win rate, an ensemble's combined reward, the checkpoint early stopping keeps.

* ``win_rate``: how often A's reply beats B's under a judge, ties counted half, and the standard error of
  that mean (:func:`course_lib.llm.overoptimisation.win_rate`);
* ``ensemble_reward``: K reward models' scores of N replies, each model standardised by its mean and std,
  combined by the mean or the minimum (Coste et al. 2024; :func:`course_lib.llm.overoptimisation.ensemble_reward`);
* ``early_stop_index``: the best held-out check up to where patience runs out
  (:func:`course_lib.llm.overoptimisation.early_stop_index`);
* spot the bug: ``selection_bug`` names what is wrong with a report that chooses the checkpoint on the test
  prompts (a graded choice), and ``honest_report`` fixes it over several runs: choose on validation, report the
  test score at that checkpoint, its mean over the runs and the standard error.

Shapes: N replies, K reward models.
"""

from __future__ import annotations

import functools

import numpy as np

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson15 import copied, copied_index
from course_lib.llm.overoptimisation import early_stop_index, ensemble_reward, win_rate

# ---- tier-2 hints: hint(name, 2) ---------------------------------------------------------------

HINTS = {
    "win_rate": (
        "Build the array w of n outcomes first, each one of 1, 0.5 or 0 (a nested choice, or the sum of two boolean "
        "comparisons halved), as floats. The rate is its mean; the standard error of a mean is the SAMPLE standard "
        "deviation (n - 1 in the denominator: numpy's default is n, so say so) over the square root of n. Worked "
        "example: a = (0.0, 0.6, 0.0), b = (0.0, 0.1, 0.2): w = (0.5, 1, 0), rate 0.5, sample std 0.5, se "
        "0.5 / sqrt(3) = 0.289. One pair: no spread to measure, se 0.0. Return two Python floats."),
    "ensemble_reward": (
        "scores is (N, K): rows are replies, columns are models. The mean and std of a model are computed down its "
        "column (over the N replies), so they have shape (K,) and broadcast against (N, K) without a reshape. When "
        "they are given, use them as they are: they come from the starting policy, and this batch's own statistics "
        "would drift with the policy. Then reduce across each row (over the K models): the average for 'mean', the "
        "smallest for 'min'. Worked example: scores [[0, 10], [2, 30]] with their own statistics: column means "
        "(1, 20), population stds (1, 10), z = [[-1, -1], [1, 1]], so 'mean' gives (-1, 1)."),
    "early_stop_index": (
        "One pass over the checks with two variables: the index of the best check so far (start at 0) and the "
        "number of checks since it. A check that is strictly higher than the best becomes the best and resets the "
        "count; any other check, a tie or a rise that stays below the best included, adds one; when the count "
        "reaches the patience, stop and return the best index. Worked example: (0.1, 0.3, 0.2, 0.25, 0.4) with "
        "patience 2: best 1 after check 1, count 1 at check 2, count 2 at check 3: stop, return 1 (check 4 is never "
        "seen)."),
    "honest_report": (
        "Two kinds of prompts, two jobs: the validation curve of a run only CHOOSES the checkpoint (through your "
        "early_stop_index), the test curve only SCORES it. So per run: an index from the validation row, then one "
        "number from the test row at that index. Collect the runs' numbers in an array, then the mean and the "
        "standard error of a mean (sample standard deviation with n - 1, over the square root of the number of "
        "runs; 0.0 for a single run). Worked example: runs with (val, test) = ((0.1, 0.3, 0.2), (0.0, 0.5, 0.1)) "
        "and ((0.2, 0.1, 0.4), (0.3, 0.3, 0.2)), patience 1: indices 1 and 0, test scores 0.5 and 0.3, mean 0.4, "
        "se 0.1."),
}

# ---- win_rate -----------------------------------------------------------------------------------

_WIN_RULE = ("w_i is 1 where A's score is higher, 0.5 where the two are equal, 0 where it is lower; the rate is the mean "
             "of w and the standard error the sample standard deviation of w (n - 1 in the denominator) over the "
             "square root of n; a tuple of two floats (se 0.0 when n == 1).")


def _rubric_like(seed: int, n: int, zero_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Two (n,) score arrays in [0, 1] rounded to 3 digits, a share of them exactly 0 (degenerate replies: the rubric's
    ``clean`` is 0)."""
    rng = np.random.default_rng(seed)
    a = np.round(1 / (1 + np.exp(-rng.normal(0.3, 0.8, n))), 3)
    b = np.round(1 / (1 + np.exp(-rng.normal(0.0, 0.8, n))), 3)
    a[rng.random(n) < zero_share] = 0.0
    b[rng.random(n) < zero_share] = 0.0
    return a, b


def win_rate_cases() -> list[Case]:
    """Seeded cases for ``win_rate``."""
    return [
        Case((np.array([0.5, -0.2, 0.9, 0.1]), np.array([0.1, 0.3, 0.2, -0.4])), {}, "4 pairs, no ties",
             "w_i is 1 where A's score is higher and 0 where it is lower: here w = [1, 0, 1, 1], so the rate is 0.75. "
             "The standard error of a mean of n values is their sample standard deviation (n - 1 in the "
             "denominator) over the square root of n: 0.5 / 2 = 0.25 here."),
        Case((np.array([0.0, 0.0, 0.6, 0.0, -0.3, 0.4]), np.array([0.0, 0.2, 0.1, 0.0, -0.3, 0.0])), {},
             "6 pairs, 3 of them ties (identical replies, or two degenerate replies that both score exactly 0)",
             "a tie counts one half, not a loss and not dropped: w = [0.5, 0, 1, 0.5, 0.5, 1], rate 7/12. Keep all n "
             "pairs in the standard error too."),
        Case((np.array([0.3, 0.0, -0.1]), np.array([0.3, 0.0, -0.1])), {}, "a model against itself: every pair ties",
             "identical replies must give a win rate of exactly 0.5 (every w_i = 0.5) and a standard error of 0."),
        Case(_rubric_like(10, 40, 0.3), {}, "40 pairs of rubric-like scores in [0, 1], about a third of them 0", _WIN_RULE),
        Case((np.array([0.2]), np.array([0.7])), {}, "a single pair",
             "with n = 1 the sample std (ddof=1) is undefined; return a standard error of 0.0: " + _WIN_RULE),
    ]


def win_rate_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and sizes than the notebook's."""
    return [
        Case(_rubric_like(110, 64, 0.5), {}, "64 pairs, half the scores 0", _WIN_RULE),
        Case(_rubric_like(111, 7, 0.0), {}, "7 pairs, no zeros", _WIN_RULE),
        Case((np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0])), {}, "one win, two ties, one loss",
             _WIN_RULE),
    ]


# ---- ensemble_reward ----------------------------------------------------------------------------

_ENS_RULE = ("standardise each model k (column k) by its mean[k] and std[k] (when mean and std are None, the column's own "
             "mean and population standard deviation over the N replies); then, for each reply (row), the average "
             "of its K standardised scores for how='mean' or their smallest for how='min'.")


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
             "'min' takes, for each reply, the most pessimistic model: the minimum over the K models (across a row) "
             "of the standardised scores, one number per reply."),
        Case((_scores(22, 8, 3), "mean", None, None), {}, "mean and std not given: each column's own",
             "without mean and std, standardise each model (column) over the N replies, with the population standard "
             "deviation (N in the denominator), not over the whole array and not per reply."),
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


# ---- spot the bug: selection_bug and honest_report ---------------------------------------------------------


def honest_report(val_curves, test_curves, patience: int) -> tuple[float, float]:
    """Reference: per run, the checkpoint early stopping keeps on the VALIDATION curve, and the TEST score there;
    return (mean over runs, its standard error: sample std (ddof=1) / sqrt(runs), 0.0 for one run)."""
    picked = np.array([float(test[early_stop_index(val, patience)]) for val, test in zip(val_curves, test_curves)])
    se = float(picked.std(ddof=1) / np.sqrt(len(picked))) if len(picked) > 1 else 0.0
    return float(picked.mean()), se


def selection_bug() -> str:
    """The letter of the statement that names the bug of ``report_buggy`` (exercise 15)."""
    return "D"


SELECTION_FEEDBACK = {
    "A": "a different patience moves the stop, but the reported score would still be read on the same prompts that "
         "chose the checkpoint. Compare the reported score with the true score in the simulation: what makes the "
         "gap?",
    "B": "the last checkpoint is often an over-optimised one (lesson 15's whole point); keeping the best is right. "
         "Ask instead which prompts choose the best, and which report it.",
    "C": "smoothing would reduce the noise but not remove the problem: the same numbers would still both choose and "
         "score the checkpoint. What should be kept apart?",
}


def _curves(seed: int, runs: int, checks: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(val, test)``: (runs, checks) each, a rise-then-fall gold curve per run plus independent noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(checks)
    peak = rng.integers(2, max(3, checks - 1), runs)[:, None]
    true = 0.4 - 0.01 * (t[None, :] - peak) ** 2 + rng.normal(0, 0.02, (runs, 1))
    return (np.round(true + rng.normal(0, noise, (runs, checks)), 4),
            np.round(true + rng.normal(0, noise, (runs, checks)), 4))


_REPORT_RULE = ("for each run: best = your early_stop_index on its validation curve; read its TEST curve at best; then "
                "the mean of those scores over the runs and the standard error (sample std, n - 1, over sqrt(runs); "
                "0.0 for one run), a tuple of two floats.")


def honest_report_cases() -> list[Case]:
    """Cases for ``honest_report``: (val_curves, test_curves, patience), one row per run."""
    return [
        Case(([[0.1, 0.3, 0.2, 0.1]], [[0.1, 0.2, 0.35, 0.1]], 2), {}, "one run where the two curves disagree",
             "the checkpoint is chosen on the VALIDATION curve (index 1 here) and the score reported is the TEST "
             "curve at that checkpoint (0.2), not the test curve's own best (0.35). One run: standard error 0.0."),
        Case(([[0.1, 0.3, 0.2], [0.2, 0.1, 0.4]], [[0.0, 0.5, 0.1], [0.3, 0.3, 0.2]], 1), {}, "two runs, patience 1",
             "one chosen checkpoint per run, each with its own validation curve: run 0 keeps index 1 (test 0.5), run "
             "1 stops at index 0 (test 0.3). Report their mean, 0.4, and the standard error of that mean."),
        Case((*_curves(50, 6, 8), 2), {}, "six simulated runs of 8 checks", _REPORT_RULE),
        Case((*_curves(51, 3, 10, noise=0.1), 3), {}, "noisy curves, patience 3",
             "use patience as given and the sample standard deviation (ddof=1) for the standard error. " + _REPORT_RULE),
    ]


def honest_report_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((*_curves(150, 10, 12), 2), {}, "ten runs of 12 checks", _REPORT_RULE),
        Case((*_curves(151, 4, 6, noise=0.02), 1), {}, "quiet curves, patience 1", _REPORT_RULE),
    ]


def _selection_case() -> list[Case]:
    return [Case((), {}, "your answer", "in the simulation, the buggy report is above the truth on average: which "
                                        "numbers are used twice?")]


EXERCISES = {
    "win_rate": Exercise("win_rate", win_rate, win_rate_cases, win_rate_hidden_cases, adapt=copied,
                         names=("rate", "se"), rtol=1e-6, atol=1e-9,
                         twins=("course_lib.llm.overoptimisation.win_rate",)),
    "ensemble_reward": Exercise("ensemble_reward", ensemble_reward, ensemble_reward_cases, ensemble_reward_hidden_cases,
                                adapt=copied, rtol=1e-6, atol=1e-9,
                                twins=("course_lib.llm.overoptimisation.ensemble_reward",)),
    "early_stop_index": Exercise("early_stop_index", early_stop_index, early_stop_index_cases,
                                 early_stop_index_hidden_cases, adapt=copied_index,
                                 twins=("course_lib.llm.overoptimisation.early_stop_index",)),
    "selection_bug": Exercise("selection_bug", selection_bug, _selection_case, list, kind="answer",
                              comparer=functools.partial(compare_answers, feedback=SELECTION_FEEDBACK),
                              explanation="each check's test score is its true score plus noise, and the best of "
                                          "several noisy scores is most often one whose noise happened to be high; "
                                          "reading the report off the same numbers keeps that lucky noise, so it is "
                                          "too high on average (by about 0.056 in the simulation, in 95% of the "
                                          "runs). Choose on one set of prompts and score on another: the "
                                          "validation noise then makes the choice, and the independent test noise "
                                          "averages out. This is the winner's curse, and the reason a test set must "
                                          "never take part in a choice, early stopping included."),
    "honest_report": Exercise("honest_report", honest_report, honest_report_cases, honest_report_hidden_cases,
                              adapt=copied, names=("mean", "se"), rtol=1e-6, atol=1e-9),
}

__getattr__ = check_functions(EXERCISES)
