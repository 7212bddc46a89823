"""Lesson 13's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import re

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson13 import (
    EXERCISES,
    agreement_rate,
    check_agreement_rate,
    check_judge_margin,
    check_parse_verdict,
    judge_margin,
    parse_verdict,
)

# ---- the references agree with independent computations ---------------------------------------


def test_judge_margin_reference_matches_a_loop_and_cancels_position_bias():
    for case in EXERCISES["judge_margin"].cases() + EXERCISES["judge_margin"].hidden_cases():
        ab, ba, a, b = case.args
        out = judge_margin(ab, ba, a, b)
        for n in range(ab.shape[0]):
            m_ab = torch.log_softmax(ab[n].double(), 0)[a] - torch.log_softmax(ab[n].double(), 0)[b]
            m_ba = torch.log_softmax(ba[n].double(), 0)[a] - torch.log_softmax(ba[n].double(), 0)[b]
            assert out[n].item() == pytest.approx(float(m_ab - m_ba) / 2, abs=1e-5)
    biased = EXERCISES["judge_margin"].cases()[1].args
    ab, ba, a, b = biased
    unbiased = judge_margin(ab.clone().index_add_(1, torch.tensor([a]), torch.full((ab.shape[0], 1), -5.0)),
                            ba.clone().index_add_(1, torch.tensor([a]), torch.full((ba.shape[0], 1), -5.0)), a, b)
    assert torch.allclose(judge_margin(*biased), unbiased, atol=1e-5)  # the +5 on "A" cancels


def test_agreement_rate_reference_by_hand():
    assert agreement_rate(["A", None, "B", None], ["A", "B", "B", "A"]) == (1.0, 2, 2)
    assert agreement_rate(["A", "B", "B", "A"], ["A", "B", "A", "A"]) == (0.75, 4, 0)
    for case in EXERCISES["agreement_rate"].cases() + EXERCISES["agreement_rate"].hidden_cases():
        judge, human = case.args
        kept = [(j, h) for j, h in zip(judge, human) if j is not None]
        assert agreement_rate(judge, human) == (sum(j == h for j, h in kept) / len(kept), len(kept),
                                                len(judge) - len(kept))


def test_cases_probe_what_they_say():
    verdicts = [parse_verdict(*c.args) for c in EXERCISES["parse_verdict"].cases()]
    assert verdicts == ["A", "B", "B", "A", "B", None, None, None, None, "A"]
    hidden = [parse_verdict(*c.args) for c in EXERCISES["parse_verdict"].hidden_cases()]
    assert None in hidden and "A" in hidden and "B" in hidden
    margins = judge_margin(*EXERCISES["judge_margin"].cases()[1].args)
    assert (margins > 0).any() and (margins < 0).any()  # the bias does not decide the sign once cancelled


def test_the_library_passes():
    from course_lib.llm.judge import agreement, option_margins, parse_verdict as lib_parse, symmetric_margin

    assert check_parse_verdict(lib_parse).status == "pass"
    assert check_judge_margin(lambda ab, ba, a, b: symmetric_margin(option_margins(ab, a, b),
                                                                    option_margins(ba, a, b))).status == "pass"
    assert check_agreement_rate(lambda j, h: (agreement(j, h)["rate"], agreement(j, h)["n"],
                                              agreement(j, h)["unlabelled"])).status == "pass"


# ---- parse_verdict: wrong versions ----------------------------------------------------------------


def parse_first_char(text):
    return text.strip()[:1].upper() or None


def parse_exact_only(text):
    return text if text in ("A", "B") else None


def parse_contains_a_first(text):
    t = text.upper()
    return "A" if "A" in t else "B" if "B" in t else None


def parse_default_a(text):
    return parse_verdict(text) or "A"


def parse_lower(text):
    v = parse_verdict(text)
    return v.lower() if v else v


def parse_letters_anywhere(text):
    letters = set(re.findall(r"\b[ab]\b", text.lower()))
    return letters.pop().upper() if len(letters) == 1 else None


def parse_strip_case_only(text):
    t = text.strip().upper()
    return t if t in ("A", "B") else None


@pytest.mark.parametrize(
    "wrong, message",
    [
        (parse_first_char, r"(?s)case 3 of 10 \(the letter after the word Reply.*expected 'B', got 'R'.*filler"),
        (parse_exact_only, r"(?s)case 2 of 10 \(a lower-case letter.*expected 'B', got None.*upper-case"),
        (parse_contains_a_first, r"(?s)case 5 of 10 \(a label, a colon.*expected 'B', got 'A'"),
        (parse_default_a, r"(?s)case 6 of 10 \(both letters.*expected None, got 'A'"),
        (parse_lower, r"(?s)case 1 of 10 \(the bare letter.*expected 'A', got 'a'"),
        (parse_letters_anywhere, r"(?s)case 9 of 10 \(a sentence that starts with the letter A.*expected None, got 'A'"),
        (parse_strip_case_only, r"(?s)case 3 of 10 .*expected 'B', got None"),
    ],
)
def test_parse_verdict_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_parse_verdict(wrong)
    assert "Hint:" in str(err.value)


# ---- judge_margin: wrong versions ----------------------------------------------------------------------


def _m(logits, a, b):
    logp = torch.log_softmax(logits, dim=-1)
    return logp[:, a] - logp[:, b]


def margin_one_order(ab, ba, a, b):
    return _m(ab, a, b)


def margin_plus(ab, ba, a, b):
    return (_m(ab, a, b) + _m(ba, a, b)) / 2


def margin_no_half(ab, ba, a, b):
    return _m(ab, a, b) - _m(ba, a, b)


def margin_probabilities(ab, ba, a, b):
    pab, pba = torch.softmax(ab, -1), torch.softmax(ba, -1)
    return ((pab[:, a] - pab[:, b]) - (pba[:, a] - pba[:, b])) / 2


def margin_only_a(ab, ba, a, b):
    return (torch.log_softmax(ab, -1)[:, a] - torch.log_softmax(ba, -1)[:, a]) / 2


def margin_mean(ab, ba, a, b):
    return ((_m(ab, a, b) - _m(ba, a, b)) / 2).mean()


def margin_softmax_wrong_dim(ab, ba, a, b):
    la, lb = torch.log_softmax(ab, dim=0), torch.log_softmax(ba, dim=0)
    return ((la[:, a] - la[:, b]) - (lb[:, a] - lb[:, b])) / 2


def margin_swapped_ids(ab, ba, a, b):
    return (_m(ab, b, a) - _m(ba, b, a)) / 2


@pytest.mark.parametrize(
    "wrong, message",
    [
        (margin_one_order, r"(?s)case 1 of 4 \(one pair.*the swapped margin counts against the first reply"),
        (margin_plus, r"(?s)case 1 of 4 .*halve the difference of the two margins, not their sum"),
        (margin_no_half, r"(?s)case 1 of 4 .*"),
        (margin_probabilities, r"(?s)case 1 of 4 .*"),
        (margin_only_a, r"(?s)case 1 of 4 .*"),
        (margin_mean, r"(?s)case 1 of 4 .*expected shape \(1,\), got shape \(\)"),
        (margin_softmax_wrong_dim, r"(?s)case 1 of 4 .*expected -2.06143, got 0"),
        (margin_swapped_ids, r"(?s)case 1 of 4 .*"),
    ],
)
def test_judge_margin_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_judge_margin(wrong)
    assert "Hint:" in str(err.value)


# ---- agreement_rate: wrong versions ----------------------------------------------------------------------


def agree_none_as_disagreement(judge, human):
    n_none = sum(j is None for j in judge)
    return sum(j == h for j, h in zip(judge, human)) / len(judge), len(judge) - n_none, n_none


def agree_none_as_agreement(judge, human):
    kept = [(j, h) for j, h in zip(judge, human) if j is not None]
    return (sum(j == h for j, h in kept) + len(judge) - len(kept)) / len(judge), len(kept), len(judge) - len(kept)


def agree_percent(judge, human):
    rate, n, u = agreement_rate(judge, human)
    return 100 * rate, n, u


def agree_n_all(judge, human):
    rate, n, u = agreement_rate(judge, human)
    return rate, len(judge), u


def agree_list(judge, human):
    return list(agreement_rate(judge, human))


def agree_disagreement_rate(judge, human):
    rate, n, u = agreement_rate(judge, human)
    return 1 - rate, n, u


def agree_no_unparseable(judge, human):
    rate, n, u = agreement_rate(judge, human)
    return rate, n, 0


@pytest.mark.parametrize(
    "wrong, message",
    [
        (agree_none_as_disagreement, r"(?s)case 2 of 4 \(two unparseable answers.*\(rate\): expected 1, got 0.5.*neither "
                                     r"agreement nor disagreement"),
        (agree_none_as_agreement, r"(?s)case 3 of 4 .*\(rate\): expected 0.25, got 0.4"),
        (agree_percent, r"(?s)case 1 of 4 \(every pair labelled.*expected 0.75, got 75.*not a percentage"),
        (agree_n_all, r"(?s)case 2 of 4 .*\(n_labelled\): expected 2, got 4"),
        (agree_list, r"(?s)case 1 of 4 .*expected a tuple of 3 items, got list"),
        (agree_disagreement_rate, r"(?s)case 1 of 4 .*expected 0.75, got 0.25"),
        (agree_no_unparseable, r"(?s)case 2 of 4 .*\(n_unparseable\): expected 2, got 0"),
    ],
)
def test_agreement_rate_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_agreement_rate(wrong)
    assert "Hint:" in str(err.value)


# ---- spot the bug: position_bug and consistent_labels (issue 19) ---------------------------------------

from course_lib.checks.lesson13 import (  # noqa: E402
    POSITION_FEEDBACK,
    check_consistent_labels,
    check_position_bug,
    consistent_labels,
)


def test_position_bug_feedback_explains_without_the_answer():
    assert check_position_bug("c").status == "pass"
    for wrong, why in POSITION_FEEDBACK.items():
        with pytest.raises(CheckFailed) as err:
            check_position_bug(wrong)
        assert why[:40] in str(err.value) and "'C'" not in str(err.value)


def test_consistent_labels_reference_by_hand():
    assert consistent_labels(torch.tensor([2.0, -2.0, 3.0, 0.3]), torch.tensor([-2.0, 2.0, 2.0, -2.0])) == [
        "A", "B", None, None]
    assert consistent_labels(torch.tensor([0.8]), torch.tensor([-0.8]), tol=1.0) == [None]


def labels_one_order(ab, ba, tol=0.5):
    """The buggy version: the first order only."""
    return ["A" if m > tol else "B" if m < -tol else None for m in ab.tolist()]


def labels_same_sign(ab, ba, tol=0.5):
    """Forgets that A names the other reply in the swapped order: asks both margins to have the same sign."""
    return ["A" if a > tol and b > tol else "B" if a < -tol and b < -tol else None for a, b in zip(ab.tolist(), ba.tolist())]


def labels_symmetric(ab, ba, tol=0.5):
    """Exercise 2's symmetric margin: cancels the bias but labels pairs where the orders disagree."""
    return ["A" if (a - b) / 2 > tol else "B" if (a - b) / 2 < -tol else None for a, b in zip(ab.tolist(), ba.tolist())]


def labels_fixed_tol(ab, ba, tol=0.5):
    return consistent_labels(ab, ba, 0.5)


@pytest.mark.parametrize("wrong, message", [
    (labels_one_order, r"(?s)case 2 of 5 \(a judge that says A in both orders.*the position decided"),
    (labels_same_sign, r"(?s)case 1 of 5 \(two clear, consistent judgements.*A names the SECOND reply"),
    (labels_symmetric, r"(?s)case 3 of 5 \(margins inside the tolerance.*BOTH margins clear tol"),
    (labels_fixed_tol, r"(?s)case 5 of 5 \(an unbiased judge, tol 1.0.*use the one you are given"),
])
def test_consistent_labels_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_consistent_labels(wrong)
    assert "Hint:" in str(err.value)
