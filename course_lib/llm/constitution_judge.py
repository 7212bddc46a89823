"""A competent judge for lesson 13's positive control: the course's constitution implemented as written rules.

RLAIF works when the AI labeller is good. SmolLM2-135M is not (lesson 13 measures it near a coin), so
"DPO on SmolLM2's labels did not help" cannot tell a broken pipeline from a weak judge. The control:
the same pipeline with a *competent* labeller, a stand-in for a strong AI model. It reads the user's
message and both replies, checks each reply against the principles of ``course_lib/data/constitution.md``
with written rules, and prefers the reply that follows more of them.

=============  =====================================================================================
principle      rule (each check scores a reply in [0, 1]; words are lower-cased letters, compared by
               a crude stem, :func:`stem`)
=============  =====================================================================================
1. Kind        warm words addressed to the user (:data:`KIND_WORDS`: "glad", "thank", "enjoy", ...):
               ``1 - 0.5 ** count`` (0, 0.5, 0.75, ...: each further word counts half as much)
2. Hopeful     words that see the bright side (:data:`HOPEFUL_WORDS`: "beautiful", "fun", "peaceful", ...):
               ``1 - 0.5 ** count``
3. Calm        no gloomy, angry or complaining words (:data:`GLOOMY_WORDS`): ``0.5 ** count``
4. On topic    two checks. *Answers the message*: the share of the message's topic words (its words
               minus :data:`FUNCTION_WORDS` and :data:`REQUEST_WORDS`) that the reply uses, out of at
               most 2. *Briefly and clearly*: the reply ends a sentence (closing punctuation) and does
               not repeat itself: ``finished x (1 - repeated share of its content words)``. Length itself
               is not scored (the course's replies are at most 24 to 48 tokens)
5. Harmless    no word of :data:`HARMFUL_WORDS` ("weapon", "steal", "poison", ...): 1, else 0
6. Honest      no rule: whether a reply makes things up cannot be checked by word rules (it needs
               knowledge of the facts). The judge abstains on it (the same score for every reply)
=============  =====================================================================================

A reply's score is the sum of its checks (each principle counts once, principle 4's two checks once
each); :func:`rule_judge_pairs` prefers the reply with the higher score, and calls an exact tie a tie
(label -1). It scores each reply on its own, so it has no position bias: swapping the replies negates
its margin.

It never calls the course's simulated annotator (the gold judge): its word lists and rules are its
own, written from the constitution's text. They overlap with the annotator's rubric in spirit (on
topic, warm, finished, not repetitive), as a strong AI labeller's judgement would; how far its labels
agree with the annotator's is measured in lesson 13, not assumed. The rules were written from the
constitution and checked on the validation pairs only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

VERSION = "rules-1"
"""The rule judge's version: part of lesson 13's results key. Change it with any rule or word list."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KIND_WORDS = _words("""
glad happy thank thanks welcome kind kindly friend friends friendly care caring enjoy enjoying enjoyed hope hoping
wish wishing love lovely sweet warm warmly smile smiling appreciate appreciated cheer cheers congratulations
support comfort gentle hug dear pleased delighted
""")
"""Principle 1 (Kind): words of warmth towards the reader."""

HOPEFUL_WORDS = _words("""
good great wonderful beautiful bright brighter best better fun joy joyful delight delightful delicious peaceful
peace relax relaxing relaxed calm pleasant nice amazing awesome fantastic perfect favorite favourite fresh
exciting excited excitement adventure treasure treasured fortunate lucky positive hopeful cozy cosy charming
inspiring inspire magical gorgeous lively cheerful refreshing satisfying success successful thrive proud
""")
"""Principle 2 (Hopeful): words that say what is good, pleasant or hopeful."""

GLOOMY_WORDS = _words("""
sad sadly bad worse worst hate hated hates angry anger annoying annoyed awful terrible horrible boring bored ugh
damn stupid miserable gloomy depressing depressed lonely painful pain hurt cry crying tired exhausting exhausted
stress stressful stressed worry worried afraid scared fear fail failed failure problem problems struggle
struggling frustrating frustrated disappointing disappointed complain complaining ruined brutal dying dead death
nightmare disaster mess hopeless useless unfortunately sick stuck difficult difficulty harm harmful hell crap fuck
shit bitter grim
""")
"""Principle 3 (Calm): gloomy, angry or complaining words."""

HARMFUL_WORDS = _words("""
weapon weapons gun guns bomb bombs kill killing poison steal stealing stolen illegal drugs overdose explosive
explosives attack revenge cruel cruelty abuse torture
""")
"""Principle 5 (Harmless): words of danger, cruelty or crime."""

FUNCTION_WORDS = _words("""
a an the and or but if of to in on at for from by with about as into over under up down out off is are was were be
been being am do does did have has had i me my mine we us our you your yours he she it its they them their this
that these those what which who whom how why when where there here not no so very just too also than then can
could would should will shall may might must let lets im ive id its dont some any all each every more most much
many one
""")
"""Words that carry no topic (articles, pronouns, auxiliaries)."""

REQUEST_WORDS = _words("""
write tell describe explain give say share sentence sentences word words line lines short brief reply answer
think thoughts opinion feel please something thing things make about
""")
"""Words of a message that ask for a reply rather than name its topic ("Write one sentence about ...")."""

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_CHAT_USER = re.compile(r"<\|im_start\|>user\s*(.*?)(?:<\|im_end\|>|$)", re.S)
_ENDS_SENTENCE = re.compile(r"[.!?…][\"')\]”’*]*\s*$")
_SUFFIX = re.compile(r"(ings|ing|edly|ed|ies|es|s|ly|y|e)$")

CHECKS = ("Kind", "Hopeful", "Calm", "On topic: answers the message", "On topic: briefly and clearly", "Harmless")
"""The checks of :func:`principle_scores`, in the order of the constitution; principle 6 (Honest) has none."""

ABSTAINS = ("Honest",)
"""Principles the rule judge cannot check and abstains on."""


def stem(word: str) -> str:
    """A crude stem: the word without one common English ending (-ing, -ed, -es, -s, -ly, -y, -e), kept at 3 or
    more letters, so that "commute", "commutes" and "commuting" match."""
    if not isinstance(word, str):
        raise ValueError(f"word: expected a string, got {type(word).__name__}")
    word = word.lower().replace("'", "")
    short = _SUFFIX.sub("", word)
    return short if len(short) >= 3 else word


def words(text: str) -> list[str]:
    """The lower-case words of ``text`` (letters, with inner apostrophes)."""
    if not isinstance(text, str):
        raise ValueError(f"text: expected a string, got {type(text).__name__}")
    return _WORD.findall(text.lower().replace("’", "'"))


def message_of(prompt: str) -> str:
    """The user's message of a chat-formatted prompt (its last user turn), or the prompt itself."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
    turns = _CHAT_USER.findall(prompt)
    return (turns[-1] if turns else prompt).strip()


def topic_stems(prompt: str) -> frozenset[str]:
    """The stems of the message's topic words: its words minus function and request words."""
    return frozenset(stem(w) for w in words(message_of(prompt)) if w not in FUNCTION_WORDS and w not in REQUEST_WORDS)


def _count(ws: list[str], lexicon: frozenset[str]) -> int:
    return sum(w in lexicon for w in ws)


def principle_scores(prompt: str, reply: str) -> dict[str, float]:
    """The rule judge's checks (:data:`CHECKS`) of one reply to one message, each in [0, 1] (the module's table)."""
    for name, value in (("prompt", prompt), ("reply", reply)):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    ws = words(reply)
    if not ws:
        return {check: 0.0 for check in CHECKS}
    topic = topic_stems(prompt)
    used = {stem(w) for w in ws}
    answers = 1.0 if not topic else min(1.0, len(topic & used) / min(2, len(topic)))
    content = [w for w in ws if w not in FUNCTION_WORDS]
    repeated = 1 - len(set(content)) / len(content) if content else 0.0
    clear = float(bool(_ENDS_SENTENCE.search(reply))) * (1 - repeated)
    return {
        "Kind": 1 - 0.5 ** _count(ws, KIND_WORDS),
        "Hopeful": 1 - 0.5 ** _count(ws, HOPEFUL_WORDS),
        "Calm": 0.5 ** _count(ws, GLOOMY_WORDS),
        "On topic: answers the message": answers,
        "On topic: briefly and clearly": clear,
        "Harmless": 0.0 if _count(ws, HARMFUL_WORDS) else 1.0,
    }


def rule_score(prompt: str, reply: str) -> float:
    """A reply's score under the rules: the sum of its :func:`principle_scores` (0 to 6)."""
    return float(sum(principle_scores(prompt, reply).values()))


@dataclass
class RuleJudgeResult:
    """What :func:`rule_judge_pairs` returns for N pairs (first, second); label 0 means "the first reply is better"."""

    margin: np.ndarray
    """(N,) rule_score(first) - rule_score(second): > 0 prefers the first reply."""
    checks: np.ndarray
    """(N, 2, len(CHECKS)) each check's score of the first and the second reply."""

    @property
    def labels(self) -> np.ndarray:
        """(N,) int: 0 (first better), 1 (second better), -1 for an exact tie (no preference)."""
        return np.where(self.margin > 0, 0, np.where(self.margin < 0, 1, -1))


def rule_judge_pairs(prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> RuleJudgeResult:
    """Judge N pairs by the constitution's rules: each reply scored on its own (:func:`principle_scores`),
    the higher total preferred.

    Args:
        prompts: N user messages (plain or chat-formatted). first, second: N replies each.
    """
    prompts, first, second = list(prompts), list(first), list(second)
    if not prompts or not len(prompts) == len(first) == len(second):
        raise ValueError(f"prompts, first, second: expected equal non-zero lengths, got {len(prompts)}, "
                         f"{len(first)}, {len(second)}")
    checks = np.array([[list(principle_scores(p, r).values()) for r in (a, b)]
                       for p, a, b in zip(prompts, first, second)], dtype=np.float64)  # (N, 2, C)
    totals = checks.sum(axis=2)  # (N, 2)
    return RuleJudgeResult(totals[:, 0] - totals[:, 1], checks)
