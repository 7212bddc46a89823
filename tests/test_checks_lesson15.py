"""Lesson 15's checks pass the references and fail plausible wrong versions with the right hint."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson15 import (
    EXERCISES,
    check_early_stop_index,
    check_ensemble_reward,
    check_win_rate,
    early_stop_index,
    ensemble_reward,
    win_rate,
)

# ---- the references agree with independent computations ---------------------------------------


def test_win_rate_reference_matches_a_loop():
    for case in EXERCISES["win_rate"].cases() + EXERCISES["win_rate"].hidden_cases():
        a, b = case.args
        w = [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b)]
        mean = sum(w) / len(w)
        se = math.sqrt(sum((v - mean) ** 2 for v in w) / (len(w) - 1) / len(w)) if len(w) > 1 else 0.0
        rate, got_se = win_rate(a, b)
        assert rate == pytest.approx(mean) and got_se == pytest.approx(se, abs=1e-12)


def test_ensemble_reward_reference_matches_a_loop():
    for case in EXERCISES["ensemble_reward"].cases() + EXERCISES["ensemble_reward"].hidden_cases():
        s, how, mean, std = case.args
        N, K = s.shape
        mu = [s[:, k].mean() for k in range(K)] if mean is None else mean
        sd = [math.sqrt(((s[:, k] - s[:, k].mean()) ** 2).mean()) for k in range(K)] if std is None else std
        for n in range(N):
            z = [(s[n, k] - mu[k]) / sd[k] for k in range(K)]
            expected = sum(z) / K if how == "mean" else min(z)
            assert ensemble_reward(s, how, mean, std)[n] == pytest.approx(expected)


def test_early_stop_index_reference_on_the_cases_by_hand():
    expected = [4, 1, 4, 1, 1, 1]
    got = [early_stop_index(*c.args) for c in EXERCISES["early_stop_index"].cases()]
    assert got == expected
    hidden = [early_stop_index(*c.args) for c in EXERCISES["early_stop_index"].hidden_cases()]
    assert hidden == [0, 4, 7, 0]


def test_cases_probe_what_they_say():
    cases = EXERCISES["win_rate"].cases()
    a, b = cases[1].args
    assert (a == b).sum() == 3
    a, b = cases[3].args
    assert (a == b).sum() >= 3  # the VADER-like case has ties
    ens = EXERCISES["ensemble_reward"].cases()
    s, _, mean, std = ens[4].args
    assert not np.allclose(mean, s.mean(axis=0))  # given statistics differ from the batch's own


def test_the_library_passes():
    assert check_win_rate(win_rate).status == "pass"
    assert check_ensemble_reward(ensemble_reward).status == "pass"
    assert check_early_stop_index(early_stop_index).status == "pass"
    assert check_early_stop_index(lambda h, p: np.int64(early_stop_index(h, p))).status == "pass"


def test_hidden_cases_pass_the_reference_and_defeat_trivial_answers():
    for name, ex in EXERCISES.items():
        for case in ex.hidden_cases():
            expected = ex.call(ex.reference)(*case.args)
            assert ex.compare(expected, ex.call(ex.reference)(*case.args)) is None
    trivial = {"win_rate": lambda a, b: (0.5, 0.0), "ensemble_reward": lambda s, *r: np.zeros(len(s)),
               "early_stop_index": lambda h, p: len(h) - 1}
    for name, fn in trivial.items():
        ex = EXERCISES[name]
        assert any(ex.compare(ex.call(ex.reference)(*c.args), ex.call(fn)(*c.args)) for c in ex.hidden_cases()), name


# ---- win_rate: wrong versions ---------------------------------------------------------------------


def _w(a, b, tie):
    return np.where(a > b, 1.0, np.where(a == b, tie, 0.0))


def wr_ties_lose(a, b):
    w = _w(a, b, 0.0)
    return float(w.mean()), float(w.std(ddof=1) / math.sqrt(len(w))) if len(w) > 1 else 0.0


def wr_ties_dropped(a, b):
    keep = a != b
    w = _w(a[keep], b[keep], 0.5) if keep.any() else np.array([0.5])
    return float(w.mean()), float(w.std(ddof=1) / math.sqrt(len(w))) if len(w) > 1 else 0.0


def wr_ddof0(a, b):
    w = _w(a, b, 0.5)
    return float(w.mean()), float(w.std() / math.sqrt(len(w)))


def wr_binomial_se(a, b):
    w = _w(a, b, 0.5)
    p = float(w.mean())
    return p, math.sqrt(p * (1 - p) / len(w))


def wr_reversed(a, b):
    return win_rate(b, a)


def wr_rate_only(a, b):
    return win_rate(a, b)[0]


def wr_no_sqrt_n(a, b):
    w = _w(a, b, 0.5)
    return float(w.mean()), float(w.std(ddof=1)) if len(w) > 1 else 0.0


def wr_nan_for_one(a, b):
    w = _w(a, b, 0.5)
    return float(w.mean()), float(w.std(ddof=1) / math.sqrt(len(w)))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (wr_ties_lose, r"(?s)case 2 of 5 \(6 pairs, 3 of them ties.*a tie counts one half"),
        (wr_ties_dropped, r"(?s)case 2 of 5 .*not a loss and not dropped"),
        (wr_ddof0, r"(?s)case 1 of 5 \(4 pairs, no ties.*result\[1\] \(se\).*sample standard deviation \(n - 1 in the\s+denominator\)"),
        (wr_binomial_se, r"(?s)case 1 of 5 .*result\[1\] \(se\)"),
        (wr_reversed, r"(?s)case 1 of 5 .*result\[0\] \(rate\): expected 0.75, got 0.25"),
        (wr_rate_only, r"(?s)case 1 of 5 .*expected a tuple of 2 items, got float"),
        (wr_no_sqrt_n, r"(?s)case 1 of 5 .*result\[1\] \(se\)"),
        (wr_nan_for_one, r"(?s)case 5 of 5 \(a single pair.*expected a finite number, got nan.*0\.0"),
    ],
)
def test_win_rate_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err, np.errstate(all="ignore"), _nowarn():
        check_win_rate(wrong)
    assert "Hint:" in str(err.value)


class _nowarn:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ---- ensemble_reward: wrong versions -----------------------------------------------------------------


def _stats(s, mean, std, ddof=0):
    return (s.mean(axis=0) if mean is None else mean), (s.std(axis=0, ddof=ddof) if std is None else std)


def ens_raw(s, how, mean=None, std=None):
    return s.mean(axis=1) if how == "mean" else s.min(axis=1)


def ens_rows(s, how, mean=None, std=None):
    z = (s - s.mean(axis=1, keepdims=True)) / s.std(axis=1, keepdims=True)
    return z.mean(axis=1) if how == "mean" else z.min(axis=1)


def ens_min_over_replies(s, how, mean=None, std=None):
    mu, sd = _stats(s, mean, std)
    z = (s - mu) / sd
    return z.mean(axis=1) if how == "mean" else np.broadcast_to(z.min(axis=0).mean(), (len(s),)).copy()


def ens_ignores_given(s, how, mean=None, std=None):
    return ensemble_reward(s, how)


def ens_ddof1(s, how, mean=None, std=None):
    mu, sd = _stats(s, mean, std, ddof=1)
    z = (s - mu) / sd
    return z.mean(axis=1) if how == "mean" else z.min(axis=1)


def ens_how_ignored(s, how, mean=None, std=None):
    return ensemble_reward(s, "mean", mean, std)


def ens_no_divide(s, how, mean=None, std=None):
    mu, _ = _stats(s, mean, std)
    z = s - mu
    return z.mean(axis=1) if how == "mean" else z.min(axis=1)


def ens_whole_array(s, how, mean=None, std=None):
    if mean is None:
        z = (s - s.mean()) / s.std()
    else:
        z = (s - mean) / std
    return z.mean(axis=1) if how == "mean" else z.min(axis=1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (ens_raw, r"(?s)case 1 of 5 \(2 models, the second on a 10 times larger scale.*standardise before combining"),
        (ens_no_divide, r"(?s)case 1 of 5 .*standardise before combining"),
        (ens_rows, r"(?s)case 1 of 5 .*"),
        (ens_how_ignored, r"(?s)case 2 of 5 \(3 models combined by the minimum.*most pessimistic"),
        (ens_min_over_replies, r"(?s)case 2 of 5 .*across a row"),
        (ens_whole_array, r"(?s)case 3 of 5 \(mean and std not given.*not over the whole array"),
        (ens_ddof1, r"(?s)case 3 of 5 .*population standard\s+deviation"),
        (ens_ignores_given, r"(?s)case 1 of 5 .*"),
    ],
)
def test_ensemble_reward_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_ensemble_reward(wrong)
    assert "Hint:" in str(err.value)


def test_ensemble_reward_ignoring_the_given_statistics_fails_where_they_differ():
    s, how, mean, std = EXERCISES["ensemble_reward"].cases()[4].args
    assert not np.allclose(ens_ignores_given(s, how, mean, std), ensemble_reward(s, how, mean, std))


# ---- early_stop_index: wrong versions -------------------------------------------------------------------


def es_argmax(h, p):
    return int(np.argmax(h))


def es_stop_index(h, p):
    best, waited = 0, 0
    for i in range(1, len(h)):
        if h[i] > h[best]:
            best, waited = i, 0
        else:
            waited += 1
            if waited >= p:
                return i
    return best


def es_ties_later(h, p):
    best, waited = 0, 0
    for i in range(1, len(h)):
        if h[i] >= h[best]:
            best, waited = i, 0
        else:
            waited += 1
            if waited >= p:
                break
    return best


def es_patience_plus_one(h, p):
    return early_stop_index(h, p + 1)


def es_patience_minus_one(h, p):
    return early_stop_index(h, p - 1) if p > 1 else 0


def es_resets_on_any_rise(h, p):
    best, waited = 0, 0
    for i in range(1, len(h)):
        if h[i] > h[best]:
            best, waited = i, 0
        elif h[i] > h[i - 1]:
            waited = 0
        else:
            waited += 1
            if waited >= p:
                break
    return best


def es_returns_score(h, p):
    return float(h[early_stop_index(h, p)])


def es_last(h, p):
    return len(h) - 1


@pytest.mark.parametrize(
    "wrong, message",
    [
        (es_argmax, r"(?s)case 4 of 6 \(the same history with patience 2.*not the best of the whole history"),
        (es_stop_index, r"(?s)case 2 of 6 \(a peak at check 1.*not the check where training stopped"),
        (es_ties_later, r"(?s)case 6 of 6 \(a tie with the best.*first check"),
        (es_patience_plus_one, r"(?s)case 4 of 6 .*"),
        (es_patience_minus_one, r"(?s)case 3 of 6 \(a dip, then a new best within the patience.*patience 3 allows 3"),
        (es_resets_on_any_rise, r"(?s)case 4 of 6 \(the same history with patience 2.*does not reset the count"),
        (es_returns_score, r"(?s)case 1 of 6 .*Return an index into history"),
        (es_last, r"(?s)case 2 of 6 .*"),
    ],
)
def test_early_stop_index_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_early_stop_index(wrong)
    assert "Hint:" in str(err.value)


def test_in_place_edits_do_not_leak_into_later_cases():
    def sorts_in_place(a, b):
        a.sort()
        b.sort()
        return (0.5, 0.0)

    check = EXERCISES["win_rate"]
    before = [c.args[0].copy() for c in check.cases()]
    with pytest.raises(CheckFailed):
        check_win_rate(sorts_in_place)
    assert all(np.array_equal(x, c.args[0]) for x, c in zip(before, check.cases()))


# ---- spot the bug: selection_bug and honest_report (issue 19) -------------------------------------------

from course_lib.checks.lesson15 import (  # noqa: E402
    SELECTION_FEEDBACK,
    check_honest_report,
    check_selection_bug,
    honest_report,
)


def test_selection_bug_feedback_explains_without_the_answer():
    assert check_selection_bug("D").status == "pass"
    for wrong, why in SELECTION_FEEDBACK.items():
        with pytest.raises(CheckFailed) as err:
            check_selection_bug(wrong)
        assert why[:40] in str(err.value) and "'D'" not in str(err.value)


def test_honest_report_by_hand():
    assert honest_report([[0.1, 0.3, 0.2, 0.1]], [[0.1, 0.2, 0.35, 0.1]], 2) == (0.2, 0.0)
    mean, se = honest_report([[0.1, 0.3, 0.2], [0.2, 0.1, 0.4]], [[0.0, 0.5, 0.1], [0.3, 0.3, 0.2]], 1)
    assert mean == pytest.approx(0.4) and se == pytest.approx(0.1)


def report_on_test(val, test, patience):
    """The buggy selection: the test curves choose and score."""
    return honest_report(test, test, patience)


def report_test_best(val, test, patience):
    """Chooses on validation but reports the test curve's own best."""
    scores = np.array([max(t) for t in test], dtype=float)
    return float(scores.mean()), float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0


def report_population_se(val, test, patience):
    from course_lib.llm.overoptimisation import early_stop_index as esi

    scores = np.array([t[esi(v, patience)] for v, t in zip(val, test)], dtype=float)
    return float(scores.mean()), float(scores.std() / np.sqrt(len(scores)))


def report_nan_for_one(val, test, patience):
    from course_lib.llm.overoptimisation import early_stop_index as esi

    scores = np.array([t[esi(v, patience)] for v, t in zip(val, test)], dtype=float)
    return float(scores.mean()), float(scores.std(ddof=1) / np.sqrt(len(scores)))


@pytest.mark.parametrize("wrong, message", [
    (report_on_test, r"(?s)case 1 of 4 \(one run where the two curves disagree.*chosen on the VALIDATION curve"),
    (report_test_best, r"(?s)case 1 of 4 .*not the test curve's own best"),
    (report_population_se, r"(?s)case 2 of 4 \(two runs, patience 1.*result\[1\] \(se\)"),
    (report_nan_for_one, r"(?s)case 1 of 4 .*expected a finite number, got nan.*standard error 0.0"),
])
def test_honest_report_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_honest_report(wrong)
    assert "Hint:" in str(err.value)
