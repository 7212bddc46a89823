"""Feedback that works offline: a simulated human annotator, and converters from other kinds of feedback.

Lesson 10 needs thousands of human judgements and has no humans. :class:`SimulatedAnnotator`
stands in for them with a transparent rule: the VADER sentiment of a response (Hutto &
Gilbert 2014, the ``vaderSentiment`` package: a lexicon of rated words plus rules for
negation, intensifiers, punctuation), so "the annotator prefers the more positive reply".
It judges pairs the way the Bradley-Terry model assumes people do (Bradley & Terry 1952;
the model behind reward-model training, Ouyang et al. 2022, Eq. 1):

    P(a preferred to b) = sigmoid((s(a) - s(b)) / temperature)

``temperature = 0`` is a perfectly consistent annotator; larger values make it noisier,
like real labellers who disagree with themselves. Because the rule is known, lessons can
score a policy with it directly: it is the "gold" reward that a learned reward model
only approximates (lesson 15 shows what happens when the two part ways).

Other kinds of feedback become the same training signal, preference pairs:
:func:`pairs_from_ratings` (Likert scores per response), :func:`pairs_from_attributes`
(several scored attributes, weighted), :func:`pairs_from_comments` (free-form comments,
read by the annotator's own sentiment rule).
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import numpy as np

from course_lib.data.preferences import PreferencePair


class SimulatedAnnotator:
    """A stand-in human who likes positive replies: VADER's compound sentiment in [-1, 1], judged noisily.

    Args:
        temperature: >= 0; 0 always picks the higher score (ties: the first response), larger is noisier.
        seed: seeds the annotator's own generator (its noisy choices), independent of the global seeds.
    """

    VERSION = "vader-compound-1"
    """The gold judge's version: part of the key of every cache built from its labels (preference pairs,
    reward models), so a changed rule never silently reuses data labelled by the old one. Change it with the rule."""

    def __init__(self, temperature: float = 0.1, seed: int = 0):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0 \
                or not math.isfinite(temperature):
            raise ValueError(f"temperature: expected a finite float >= 0, got {temperature!r}")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        self.temperature = float(temperature)
        self.rng = np.random.default_rng(seed)

    def score(self, text: str) -> float:
        """The gold score of one response: VADER's compound sentiment, in [-1, 1] (0 for empty text)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        return float(self._vader.polarity_scores(text)["compound"])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(B,) float64 scores of B responses."""
        return np.array([self.score(t) for t in texts], dtype=np.float64)

    def prob_first(self, a: str, b: str) -> float:
        """P(a preferred to b) = sigmoid((s(a) - s(b)) / temperature); 1, 0.5 or 0 at temperature 0."""
        diff = self.score(a) - self.score(b)
        if self.temperature == 0:
            return 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
        return float(1 / (1 + math.exp(-diff / self.temperature)))

    def prefer(self, a: str, b: str) -> int:
        """0 when ``a`` is preferred, 1 when ``b`` is, drawn from :meth:`prob_first` (ties at temperature 0: 0)."""
        p = self.prob_first(a, b)
        if self.temperature == 0:
            return 0 if p >= 0.5 else 1
        return 0 if self.rng.random() < p else 1

    def rank(self, texts: Sequence[str]) -> list[int]:
        """Indices of ``texts``, most preferred first: one noisy ranking, as a labeller ranks K responses.

        Sorts ``score / temperature + Gumbel noise`` (the Plackett-Luce model; Luce 1959): for any two
        texts the chance that ``a`` ranks above ``b`` is exactly :meth:`prob_first` (the difference of
        two Gumbel draws is logistic), so a ranking is consistent with the pairwise judgements.
        Temperature 0 sorts by score (ties keep their order).
        """
        scores = self.scores(texts)
        if len(scores) == 0:
            raise ValueError("texts: expected at least one response to rank, got none")
        if self.temperature > 0:
            scores = scores / self.temperature + self.rng.gumbel(size=len(scores))
        return sorted(range(len(scores)), key=lambda i: -scores[i])

    def label(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str],
              skip_ties: bool = True) -> list[PreferencePair]:
        """Judge B pairs of responses to B prompts; returns the pairs as (prompt, chosen, rejected).

        Args:
            prompts, first, second: B strings each (e.g. two samples of the policy per prompt).
            skip_ties: drop pairs whose two responses are identical or score exactly the same
                (nothing to learn from them); otherwise the noisy choice decides.
        """
        if not len(prompts) == len(first) == len(second):
            raise ValueError(f"prompts, first, second: expected equal lengths, got {len(prompts)}, {len(first)}, "
                             f"{len(second)}")
        pairs = []
        for prompt, a, b in zip(prompts, first, second):
            if skip_ties and (a == b or self.score(a) == self.score(b)):
                continue
            chosen, rejected = (a, b) if self.prefer(a, b) == 0 else (b, a)
            pairs.append(PreferencePair(prompt, chosen, rejected))
        return pairs

    def __repr__(self) -> str:
        return f"SimulatedAnnotator(temperature={self.temperature})"


def _check_responses(responses: Sequence[str], values: Sequence, name: str) -> None:
    if len(responses) != len(values):
        raise ValueError(f"{name}: expected one per response ({len(responses)}), got {len(values)}")


def pairs_from_ratings(prompt: str, responses: Sequence[str], ratings: Sequence[float],
                       min_gap: float = 1.0) -> list[PreferencePair]:
    """Likert ratings (e.g. 1-5 stars per response) -> every pair whose ratings differ by at least ``min_gap``.

    The better-rated response is chosen. Equal ratings say nothing about the order, so they make no pair.
    n responses give up to n (n - 1) / 2 pairs (InstructGPT ranked 4-9 responses per prompt this way,
    Ouyang et al. 2022, Section 3.5).
    """
    _check_responses(responses, ratings, "ratings")
    if not min_gap > 0:
        raise ValueError(f"min_gap: expected a float > 0, got {min_gap!r}")
    pairs = []
    for i, j in itertools.combinations(range(len(responses)), 2):
        if abs(ratings[i] - ratings[j]) >= min_gap:
            hi, lo = (i, j) if ratings[i] > ratings[j] else (j, i)
            pairs.append(PreferencePair(prompt, responses[hi], responses[lo]))
    return pairs


def pairs_from_ranking(prompt: str, responses: Sequence[str], order: Sequence[int], keep: str = "best_vs_worst"
                       ) -> list[PreferencePair]:
    """A ranking of K responses (``order``: indices, best first) -> preference pairs.

    ``keep="best_vs_worst"``: one pair, the top against the bottom response (the clearest judgement
    of the group, as UltraFeedback's binarised pairs keep the top-rated response; Cui et al. 2023).
    ``keep="all"``: all K (K - 1) / 2 pairs, each ordered by the ranking (InstructGPT trains on every
    pair of a ranking; Ouyang et al. 2022, Section 3.5). Identical texts make no pair.
    """
    if sorted(order) != list(range(len(responses))):
        raise ValueError(f"order: expected a permutation of range({len(responses)}), got {list(order)}")
    if keep not in ("best_vs_worst", "all"):
        raise ValueError(f"keep: expected 'best_vs_worst' or 'all', got {keep!r}")
    chosen_rejected = [(order[0], order[-1])] if keep == "best_vs_worst" else itertools.combinations(order, 2)
    return [PreferencePair(prompt, responses[i], responses[j]) for i, j in chosen_rejected
            if responses[i] != responses[j]]


def pairs_from_attributes(prompt: str, responses: Sequence[str], attributes: Sequence[Mapping[str, float]],
                          weights: Mapping[str, float], min_gap: float = 1e-9) -> list[PreferencePair]:
    """Multi-attribute scores (e.g. helpfulness, correctness, tone per response) -> pairs by a weighted sum.

    Every response must score every weighted attribute; the weights say what matters how much
    (the choice a reward designer makes, made explicit). Then as :func:`pairs_from_ratings`.
    """
    _check_responses(responses, attributes, "attributes")
    if not weights:
        raise ValueError("weights: expected at least one attribute -> weight, got none")
    totals = []
    for k, scores in enumerate(attributes):
        missing = [a for a in weights if a not in scores]
        if missing:
            raise ValueError(f"attributes[{k}]: expected scores for {sorted(weights)}, missing {missing}")
        totals.append(sum(w * float(scores[a]) for a, w in weights.items()))
    return pairs_from_ratings(prompt, responses, totals, min_gap=min_gap)


def pairs_from_comments(prompt: str, responses: Sequence[str], comments: Sequence[str],
                        annotator: SimulatedAnnotator, min_gap: float = 0.05) -> list[PreferencePair]:
    """Free-form comments on each response -> pairs, reading each comment's sentiment as its rating.

    "Clear and kind, thanks!" beats "Rude and off topic." The comment is scored, not the
    response: the comment carries the person's judgement. A crude reader (real systems ask an
    LLM to extract the judgement); gaps under ``min_gap`` count as ties.
    """
    _check_responses(responses, comments, "comments")
    return pairs_from_ratings(prompt, responses, annotator.scores(comments).tolist(), min_gap=min_gap)
