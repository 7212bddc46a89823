"""Checks for lesson 13's exercises: reading an AI judge's answers.

* ``parse_verdict``: a pairwise verdict from free text, "A", "B" or None when it cannot be read
  (:func:`course_lib.llm.judge.parse_verdict`);
* ``judge_margin``: the judge's preference from next-token logits, log p(A) - log p(B), asked in both
  orders and symmetrised so that a constant position bias cancels (:func:`course_lib.llm.judge.option_margins`,
  :func:`course_lib.llm.judge.symmetric_margin`);
* ``agreement_rate``: how often the judge agrees with the human labels, over the pairs the judge
  labelled, and how many it left unlabelled (:func:`course_lib.llm.judge.agreement`).

Shapes: N judged pairs, V vocabulary.
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator
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


# ---- parse_verdict ----------------------------------------------------------------------------

_PARSE_RULE = ("lower-case the text, keep its words (letters only: re.findall(r'[a-z]+', text.lower())); the verdict "
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


def check_parse_verdict(fn) -> CheckResult:
    """Check a student's ``parse_verdict(text) -> "A" | "B" | None``."""
    __tracebackhide__ = True
    return EXERCISES["parse_verdict"].check(fn)


# ---- judge_margin -------------------------------------------------------------------------------

_MARGIN_RULE = ("m_ab = log_softmax(logits_ab)[:, a_id] - log_softmax(logits_ab)[:, b_id], m_ba the same from "
                "logits_ba; return (m_ab - m_ba) / 2, shape (N,).")


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
             "A names the OTHER reply, so subtract the swapped margin: (m_ab - m_ba) / 2."),
        Case(_logits(81, 4, bias=5.0), {}, "a judge that adds 5 to the logit of A in both orders",
             "a constant preference for the letter A is position bias, not judgement: it appears in m_ab and in m_ba "
             "and must cancel. (m_ab - m_ba) / 2 cancels it; (m_ab + m_ba) / 2 doubles it."),
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


def check_judge_margin(fn) -> CheckResult:
    """Check a student's ``judge_margin(logits_ab, logits_ba, a_id, b_id) -> (N,)``."""
    __tracebackhide__ = True
    return EXERCISES["judge_margin"].check(fn)


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


def check_agreement_rate(fn) -> CheckResult:
    """Check a student's ``agreement_rate(judge_labels, human_labels) -> (rate, n_labelled, n_unparseable)``."""
    __tracebackhide__ = True
    return EXERCISES["agreement_rate"].check(fn)


EXERCISES = {
    "parse_verdict": Exercise("parse_verdict", parse_verdict, parse_verdict_cases, parse_verdict_hidden_cases),
    "judge_margin": Exercise("judge_margin", judge_margin, judge_margin_cases, judge_margin_hidden_cases,
                             adapt=cloned, rtol=1e-4, atol=1e-5),
    "agreement_rate": Exercise("agreement_rate", agreement_rate, agreement_rate_cases, agreement_rate_hidden_cases,
                               names=("rate", "n_labelled", "n_unparseable")),
}
