"""Checks for lesson 13's exercises: reading an AI judge's answers.

* ``parse_verdict``: a pairwise verdict from free text, "A", "B" or None when it cannot be read
  (:func:`course_lib.llm.judge.parse_verdict`);
* ``judge_margin``: the judge's preference from next-token logits, log p(A) - log p(B), asked in both
  orders and symmetrised so that a constant position bias cancels (:func:`course_lib.llm.judge.option_margins`,
  :func:`course_lib.llm.judge.symmetric_margin`);
* ``agreement_rate``: how often the judge agrees with the human labels, over the pairs the judge
  labelled, and how many it left unlabelled (:func:`course_lib.llm.judge.agreement`);
* spot the bug: ``position_bug`` names what is wrong with labels read from one order only (a graded choice),
  and ``consistent_labels`` fixes it: a label only when both orders agree (the swap-consistency rule of
  LLM-as-a-judge evaluations, Zheng et al. 2023), None when the position decided.

Shapes: N judged pairs, V vocabulary.
"""

from __future__ import annotations

import torch

import functools

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.tensors import cloned, generator
from course_lib.llm.judge import agreement, option_margins, symmetric_margin
from course_lib.llm.judge import parse_verdict as _parse_verdict

# ---- references ----------------------------------------------------------------------------


def parse_verdict(text: str) -> str | None:
    """Reference: "A", "B" or None (see :func:`course_lib.llm.judge.parse_verdict`)."""
    return _parse_verdict(text)


def judge_margin(logits_ab: torch.Tensor, logits_ba: torch.Tensor, a_id: int, b_id: int) -> torch.Tensor:
    """Reference: (N,) ((log p_ab(A) - log p_ab(B)) - (log p_ba(A) - log p_ba(B))) / 2.

    Args:
        logits_ab: (N, V) next-token logits with the first reply shown as A.
        logits_ba: (N, V) the same with the replies swapped (the first reply shown as B).
        a_id, b_id: the token ids of the answers "A" and "B".
    """
    return symmetric_margin(option_margins(logits_ab, a_id, b_id), option_margins(logits_ba, a_id, b_id))


def agreement_rate(judge_labels: list, human_labels: list) -> tuple[float, int, int]:
    """Reference: ``(rate, n_labelled, n_unparseable)`` over the pairs whose judge label is not None."""
    out = agreement(judge_labels, human_labels)
    return float(out["rate"]), int(out["n"]), int(out["unlabelled"])


# ---- tier-2 hints: hint(name, 2) ---------------------------------------------------------------

HINTS = {
    "parse_verdict": (
        "Work on words, not characters: lower-case the text and extract the runs of letters (one regular "
        "expression), so '**A**', '(B)' and 'Answer: b.' all become plain words. Collect the distinct letters among "
        "'a' and 'b': one distinct letter is a candidate verdict ('b', 'b' still counts as one), zero or two is None. "
        "Then every word that is neither that letter nor in FILLER makes the answer unreadable: 'A cat sat' has 'cat' "
        "and 'sat', so None. Upper-case the letter you return."),
    "judge_margin": (
        "Three steps per order: a log-softmax over the vocabulary (the last axis, V), then pick the two columns a_id "
        "and b_id, then subtract: a margin of shape (N,). Worked example: a judge whose logits for A and B are 2 and 0 "
        "in the first order (margin about +2) and 3 and 1 in the swapped order (margin about +2 as well) always says "
        "A whatever it reads: pure position bias, and the symmetric margin must be 0. A margin of +2 then -2 would "
        "mean a real preference for the first reply, symmetric margin +2. A shift added to every logit of one row "
        "must change nothing (the log-softmax removes it)."),
    "agreement_rate": (
        "Pair each judge label with its human label and keep the pairs whose judge label is not None. The rate is "
        "the number of kept pairs with equal labels over the number kept; the unparseable count is how many were "
        "dropped. Worked example: judge ['A', None, 'B', 'B'], human ['A', 'A', 'A', 'B']: 3 kept, 2 agree, rate "
        "2/3, result (0.667, 3, 1). Return a tuple (float, int, int)."),
    "consistent_labels": (
        "Go through the pairs two margins at a time. Decide what each order says about the FIRST reply: in order "
        "ab, a preference for it is a margin above +tol; in order ba the letters are swapped, so a preference for "
        "the first reply is a margin below -tol. 'A' needs both, 'B' needs the mirror image of both, anything else "
        "(one order for each reply, or a margin inside [-tol, tol]) is None. Worked example with tol 0.5: (m_ab, "
        "m_ba) = (2, -1.5) -> 'A'; (-1, 2) -> 'B'; (3, 2.5) -> None (it said A both times: the position decided); "
        "(0.3, -2) -> None (too weak in the first order)."),
}

# ---- parse_verdict ----------------------------------------------------------------------------

_PARSE_RULE = ("lower-case the text and keep its words made of letters only (markdown and punctuation go); the verdict "
               "is the one letter 'a' or 'b' among them, upper-cased, when exactly one of the two letters occurs and "
               "every other word is filler ('reply', 'answer', 'the', 'is', 'better', ...); otherwise None.")


def parse_verdict_cases() -> list[Case]:
    """Public cases for ``parse_verdict``: one answer text each."""
    return [
        Case(("A",), {}, "the bare letter", "a plain 'A' is the verdict 'A' (a str, upper case)."),
        Case(("b",), {}, "a lower-case letter", "case does not matter: 'b' means 'B'. Return the upper-case letter."),
        Case(("Reply B",), {}, "the letter after the word Reply",
             "'Reply B' names reply B; the word 'Reply' around the letter is filler, not part of the answer."),
        Case(("**A**",), {}, "markdown bold", "ignore markdown and punctuation: read only the words."),
        Case(("Answer: b.",), {}, "a label, a colon and a full stop", _PARSE_RULE),
        Case(("A and B",), {}, "both letters", "an answer that names both replies is no verdict: return None."),
        Case(("Neither",), {}, "no letter at all", "no letter, no verdict: return None, never a default 'A'."),
        Case(("",), {}, "empty text", "an empty answer is unparseable: None."),
        Case(("A cat sat on the mat.",), {}, "a sentence that starts with the letter A",
             "the article 'A' is not a verdict: words other than the letter and filler make the answer unreadable, "
             "so None. Checking only the first character is not enough."),
        Case(("Reply A is better",), {}, "a short sentence with filler words", _PARSE_RULE),
    ]


def parse_verdict_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case(("(B)",), {}, "the letter in brackets", _PARSE_RULE),
        Case(("  a  ",), {}, "spaces around", _PARSE_RULE),
        Case(("B or A",), {}, "both letters, the other way round", _PARSE_RULE),
        Case(("Both",), {}, "the word both", _PARSE_RULE),
        Case(("The better reply is Reply A.",), {}, "the judge's own answer prefix", _PARSE_RULE),
        Case(("Bananas",), {}, "a word starting with B", _PARSE_RULE),
    ]


# ---- judge_margin -------------------------------------------------------------------------------

_MARGIN_RULE = ("in each order, the margin is the log-probability of the token of A minus that of the token of B, "
                "after a log-softmax over the vocabulary; the symmetric margin is half of (the first order's margin "
                "minus the swapped order's), one number per pair, shape (N,).")


def _logits(seed: int, N: int, V: int = 12, scale: float = 2.0, bias: float = 0.0, a_id: int = 3, b_id: int = 7,
            offset: float = 0.0) -> tuple:
    """``(logits_ab, logits_ba, a_id, b_id)``: (N, V) each; ``bias`` is added to the "A" logit in both orders
    (a judge that favours the first position); ``offset`` is added to every logit of logits_ab."""
    g = generator(seed)
    ab = scale * torch.randn((N, V), generator=g) + offset
    ba = scale * torch.randn((N, V), generator=g)
    ab[:, a_id] += bias
    ba[:, a_id] += bias
    return ab, ba, a_id, b_id


def judge_margin_cases() -> list[Case]:
    """Seeded cases for ``judge_margin``."""
    return [
        Case(_logits(80, 1), {}, "one pair",
             "for each order, the margin is log p(A) - log p(B) from that order's logits; with the replies swapped, "
             "A names the OTHER reply, so the swapped margin counts against the first reply: halve the difference "
             "of the two margins, not their sum."),
        Case(_logits(81, 4, bias=5.0), {}, "a judge that adds 5 to the logit of A in both orders",
             "a constant preference for the letter A is position bias, not judgement: it appears in m_ab and in m_ba "
             "with the same sign and must cancel. Half the difference cancels it; half the sum keeps it."),
        Case(_logits(82, 3, offset=4.0), {}, "logits_ab shifted by a constant",
             "log-probabilities, not probabilities: log_softmax, then the difference. A constant added to every "
             "logit changes neither."),
        Case(_logits(83, 5, scale=6.0, a_id=0, b_id=11), {}, "sharp distributions, the answer tokens at the ends",
             "one margin per pair, shape (N,): " + _MARGIN_RULE),
    ]


def judge_margin_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case(_logits(180, 6, V=20, a_id=5, b_id=2), {}, "B's id below A's", _MARGIN_RULE),
        Case(_logits(181, 2, bias=-3.0, offset=-2.0), {}, "a bias towards B", _MARGIN_RULE),
        Case(_logits(182, 8, scale=0.5), {}, "flat distributions", _MARGIN_RULE),
    ]


# ---- agreement_rate -----------------------------------------------------------------------------

_AGREE_RULE = ("keep the pairs whose judge label is not None; rate = (kept pairs where judge == human) / (kept pairs), "
               "a fraction in [0, 1]; return (rate, number kept, number of None).")


def agreement_rate_cases() -> list[Case]:
    """Public cases for ``agreement_rate``."""
    return [
        Case((["A", "B", "B", "A"], ["A", "B", "A", "A"]), {}, "every pair labelled, 3 of 4 agree",
             "the rate is a fraction in [0, 1] (0.75 here), not a percentage; return a tuple (rate, n, unparseable)."),
        Case((["A", None, "B", None], ["A", "B", "B", "A"]), {}, "two unparseable answers",
             "an unparseable answer (None) is neither agreement nor disagreement: leave it out of the rate and count "
             "it separately. Here 2 labelled pairs, both agree: rate 1.0, n 2, unparseable 2."),
        Case(([None, "B", "A", "B", "A"], ["B", "A", "A", "A", "B"]), {}, "one None, 1 of 4 labelled agree",
             "n counts the labelled pairs only (4 here), not all pairs. " + _AGREE_RULE),
        Case((["B"] * 3 + [None] * 3, ["A"] * 6), {}, "the judge always disagrees when it answers",
             "0 of 3 labelled pairs agree: rate 0.0. " + _AGREE_RULE),
    ]


def agreement_rate_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((["A"], ["A"]), {}, "one pair", _AGREE_RULE),
        Case((["A", "A", None, "B", "B", None, None, "A"], ["B", "A", "A", "B", "A", "A", "B", "A"]), {},
             "8 pairs, 3 None", _AGREE_RULE),
        Case(([None, None, "B"], ["B", "B", "B"]), {}, "only one labelled", _AGREE_RULE),
    ]


# ---- spot the bug: position_bug and consistent_labels ---------------------------------------------


def consistent_labels(margins_ab: torch.Tensor, margins_ba: torch.Tensor, tol: float = 0.5) -> list:
    """Reference: per pair, "A" when the judge prefers the first reply in both orders (m_ab > tol and m_ba < -tol),
    "B" when it prefers the second in both (m_ab < -tol and m_ba > tol), None otherwise."""
    out = []
    for ab, ba in zip(margins_ab.tolist(), margins_ba.tolist()):
        if ab > tol and ba < -tol:
            out.append("A")
        elif ab < -tol and ba > tol:
            out.append("B")
        else:
            out.append(None)
    return out


def position_bug() -> str:
    """The letter of the statement that names the bug of ``judge_labels_buggy`` (exercise 13)."""
    return "C"


POSITION_FEEDBACK = {
    "A": "a larger tol makes the labels rarer, not fairer: a judge that adds +3 to the letter A still clears any "
         "reasonable tol in the first order. Which input does the buggy function never read?",
    "B": "probabilities and log-probabilities rank the two letters the same way, so the labels would not change. "
         "Which input does the buggy function never read?",
    "D": "a default label is exactly what hides a judge's failures and adds bias; the buggy function's None is the "
         "one part that is right. Which input does it never read?",
}


def _margins(seed: int, N: int, bias: float = 0.0, scale: float = 1.5) -> tuple:
    """``(margins_ab, margins_ba)``: (N,) each; a judge with true preference s and a constant ``bias`` towards the
    letter A: m_ab = s + bias + noise, m_ba = -s + bias + noise (in the swapped order A names the other reply)."""
    g = generator(seed)
    s = scale * torch.randn(N, generator=g)
    return (s + bias + 0.3 * torch.randn(N, generator=g), -s + bias + 0.3 * torch.randn(N, generator=g))


_CONSISTENT_RULE = ("'A' when the first order's margin is above tol AND the swapped order's is below minus tol (the first "
                    "reply preferred in both orders), 'B' for the mirror image, None otherwise; one label per pair, a "
                    "list.")


def consistent_labels_cases() -> list[Case]:
    """Cases for ``consistent_labels``."""
    return [
        Case((torch.tensor([2.0, -2.0]), torch.tensor([-2.0, 2.0])), {}, "two clear, consistent judgements",
             "in the swapped order the letter A names the SECOND reply: a judge that prefers the first reply has "
             "m_ab > 0 and m_ba < 0. Here pair 0 is 'A' and pair 1 is 'B'; return a list of labels."),
        Case((torch.tensor([3.0, 2.5]), torch.tensor([2.0, 3.0])), {}, "a judge that says A in both orders",
             "'A' in both orders means the first reply once and the second reply once: the position decided, not the "
             "replies. Such a pair gets None, not 'A'."),
        Case((torch.tensor([0.3, 1.0, -0.2, 0.8]), torch.tensor([-1.0, -0.2, 0.1, -0.9])), {},
             "margins inside the tolerance",
             "a pair is labelled only when BOTH margins clear tol (0.5 by default) in the right directions; a margin "
             "of 0.3 or -0.2 is too weak to count."),
        Case((*_margins(40, 12, bias=2.0), 0.5), {}, "12 pairs from a judge with a bias of +2 towards A",
             _CONSISTENT_RULE),
        Case((*_margins(41, 8), 1.0), {}, "an unbiased judge, tol 1.0",
             "tol is an argument: use the one you are given. " + _CONSISTENT_RULE),
    ]


def consistent_labels_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((*_margins(140, 16, bias=-1.5), 0.5), {}, "a judge biased towards B", _CONSISTENT_RULE),
        Case((*_margins(141, 10, bias=0.5, scale=3.0), 0.2), {}, "strong preferences, a small tol", _CONSISTENT_RULE),
        Case((torch.tensor([-3.0]), torch.tensor([3.0])), {}, "one pair for the second reply", _CONSISTENT_RULE),
    ]


def _position_case() -> list[Case]:
    return [Case((), {}, "your answer", "run the buggy function on a judge that always favours the letter A: what "
                                        "share of pairs gets 'A', and which argument could have told it otherwise?")]


EXERCISES = {
    "parse_verdict": Exercise("parse_verdict", parse_verdict, parse_verdict_cases, parse_verdict_hidden_cases,
                              twins=("course_lib.llm.judge.parse_verdict",)),
    "judge_margin": Exercise("judge_margin", judge_margin, judge_margin_cases, judge_margin_hidden_cases,
                             adapt=cloned, rtol=1e-4, atol=1e-5,
                             twins=("course_lib.llm.judge.option_margins", "course_lib.llm.judge.symmetric_margin")),
    "agreement_rate": Exercise("agreement_rate", agreement_rate, agreement_rate_cases, agreement_rate_hidden_cases,
                               names=("rate", "n_labelled", "n_unparseable"),
                               twins=("course_lib.llm.judge.agreement",)),
    "position_bug": Exercise("position_bug", position_bug, _position_case, list, kind="answer",
                             comparer=functools.partial(compare_answers, feedback=POSITION_FEEDBACK),
                             explanation="the buggy function reads only margins_ab, so a judge that adds a constant "
                                         "to the letter A labels most pairs 'A' whatever the replies say: 171 of the "
                                         "200 simulated pairs, where 93 truly favour the first reply. Position bias "
                                         "is a property of the judge, not noise, so no threshold removes it; only "
                                         "the swapped order separates a preference for a reply (its margin flips "
                                         "sign when the replies swap) from a preference for a letter (it does not). "
                                         "Ask every LLM judge in both orders, and average the two margins or keep "
                                         "only the verdicts that survive the swap."),
    "consistent_labels": Exercise("consistent_labels", consistent_labels, consistent_labels_cases,
                                  consistent_labels_hidden_cases, adapt=cloned),
}

__getattr__ = check_functions(EXERCISES)
