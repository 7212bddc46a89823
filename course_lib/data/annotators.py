"""Feedback that works offline: a simulated human annotator with a written rubric, and converters from other
kinds of feedback.

Lessons 9-16 need thousands of human judgements and have no humans. :class:`SimulatedAnnotator`
stands in for them with a rule written down before any experiment used it (the rubric, below;
``docs/metrics.md`` has it too). It reads the prompt as well as the reply, scores five visible
attributes, each in [0, 1], and combines them by a stated rule into one gold score in [0, 1]:

==============  ======================================================================================
``on_topic``    the reply names the prompt's topic: the share of the prompt's topic words (its content
                words minus instruction words such as "write" or "sentence", compared by their Snowball
                stems) that the reply uses, out of at most 2; 1 when the prompt has no topic words
``tone``        warm and positive: VADER's compound sentiment (Hutto & Gilbert 2014) mapped to [0, 1]
``substance``   says something beyond the prompt: distinct content words the prompt did not use, out of 6
``finished``    ended with EOS rather than cut at the token limit (a :class:`Reply`'s flag; plain text:
                it ends with closing punctuation)
``clean``       not degenerate: 1 minus the larger of the share of repeated content words and the share
                of repeated word 3-grams, times 1 minus the share of SHOUTED words (when 2 or more)
==============  ======================================================================================

    gold = clean x (0.30 on_topic + 0.25 tone + 0.20 substance + 0.25 finished)   (0 for a reply with no words)

So "a helpful, warm, finished reply on the topic" scores near 1; gushing off topic, a cut-off
reply, "Ok.", an echo of the prompt, six "great"s and shouting each lose a named part
(``tests/test_annotators.py`` holds these cases). Like VADER, it is a transparent rule, not a model
of a person; its exploits are the point of lesson 15.

The annotator judges pairs the way the Bradley-Terry model assumes people do (Bradley & Terry 1952;
the model behind reward-model training, Ouyang et al. 2022, Eq. 1):

    P(a preferred to b) = sigmoid((gold(a) - gold(b)) / temperature)

``temperature = 0`` is a perfectly consistent annotator; larger values make it noisier, like real
labellers who disagree with themselves (:func:`label_consistency` measures how much). Because the
rule is known, lessons can score a policy with it directly: it is the "gold" reward that a learned
reward model only approximates (lesson 15 shows what happens when the two part ways).

Other kinds of feedback become the same training signal, preference pairs:
:func:`pairs_from_ratings` (Likert scores per response), :func:`pairs_from_attributes`
(several scored attributes, weighted), :func:`pairs_from_comments` (free-form comments,
read by the annotator's tone rule).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Mapping, Sequence

import numpy as np

from course_lib.data.preferences import PreferencePair, Reply
from course_lib.utils.validation import check_float

WEIGHTS: dict[str, float] = {"on_topic": 0.30, "tone": 0.25, "substance": 0.20, "finished": 0.25}
"""The rubric's weights: gold = clean x sum(weight x attribute); they sum to 1, so gold is in [0, 1]."""

ATTRIBUTES = ("on_topic", "tone", "substance", "finished", "clean")
"""The five attributes :meth:`SimulatedAnnotator.attributes` returns, in this order."""

TOPIC_WORDS_NEEDED = 2
"""on_topic reaches 1 when the reply uses this many of the prompt's topic words (or all, if it has fewer)."""

NEW_WORDS_NEEDED = 6
"""substance reaches 1 at this many distinct content words that the prompt did not use."""

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each else even ever every few for from further had has have
having he her here hers herself him himself his how however i if in into is it its itself just let like me more
most much must my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those through to too
under until up upon us very was we were what when where which while who whom why will with would yet you your
yours yourself yourselves im ive id ill youre youve its dont doesnt didnt cant wont isnt arent wasnt werent
thats theres whats oh yes ok okay really quite still already maybe perhaps
""".split())
"""Function words: never topic words, never substance (written for this rubric)."""

INSTRUCTION_WORDS = frozenset("""
write writing written tell describe explain give say share sentence sentences word words line lines paragraph
short brief one two three reply respond answer think thought thoughts opinion feel view please something
anything thing things question
""".split())
"""Words that ask for a reply rather than name its topic ("Write one sentence about ..."): not topic words."""

_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
_CHAT_USER = re.compile(r"<\|im_start\|>user\s*(.*?)(?:<\|im_end\|>|$)", re.S)
_CLOSING = re.compile(r"[.!?…)\]\"'”’*]\s*$")


def user_message(prompt: str) -> str:
    """The last user message of a ChatML prompt (SmolLM2's chat template), or the prompt itself when it has none."""
    turns = _CHAT_USER.findall(prompt)
    return turns[-1].strip() if turns else prompt


class SimulatedAnnotator:
    """A stand-in human with a written rubric: five attributes of (prompt, reply), one gold score in [0, 1].

    Args:
        temperature: >= 0; 0 always picks the higher score (ties: the first response), larger is noisier.
            The default 0.05 makes a gap of 0.1 in gold a 0.88 : 0.12 choice.
        seed: seeds the annotator's own generator (its noisy choices), independent of the global seeds.

    Prompts may be plain user messages or chat-formatted (the last user turn is read).
    """

    VERSION = "rubric-1"
    """The gold judge's version: part of the key of every cache built from its labels (preference pairs,
    reward models), so a changed rule never silently reuses data labelled by the old one. Change it with the rule."""

    def __init__(self, temperature: float = 0.05, seed: int = 0):
        check_float("temperature", temperature, "[0, inf)")
        import snowballstemmer
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        self._stemmer = snowballstemmer.stemmer("english")
        self._prompt_cache: dict[str, tuple[frozenset, frozenset]] = {}
        self.temperature = float(temperature)
        self.rng = np.random.default_rng(seed)

    # ---- the rubric --------------------------------------------------------------------------------------------
    def _content_stems(self, words: list[str]) -> list[str]:
        content = [w.replace("’", "'").replace("'", "") for w in words]
        return self._stemmer.stemWords([w for w in content if len(w) >= 3 and w not in STOPWORDS])

    def _prompt_words(self, prompt: str) -> tuple[frozenset, frozenset]:
        """(topic stems, all content stems) of a prompt, cached: a training run asks about the same prompts often."""
        if prompt not in self._prompt_cache:
            words = [w.lower() for w in _WORD.findall(user_message(prompt))]
            stems = self._content_stems(words)
            topic = self._content_stems([w for w in words if w not in INSTRUCTION_WORDS])
            self._prompt_cache[prompt] = (frozenset(topic), frozenset(stems))
        return self._prompt_cache[prompt]

    def tone(self, text: str) -> float:
        """VADER's compound sentiment of ``text`` mapped from [-1, 1] to [0, 1] (0.5: neutral or empty)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        return (float(self._vader.polarity_scores(text)["compound"]) + 1) / 2

    def attributes(self, prompt: str, reply: str) -> dict[str, float]:
        """The rubric's five attributes of one reply to one prompt, each in [0, 1] (see the module's table)."""
        for name, value in (("prompt", prompt), ("reply", reply)):
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
        topic, prompt_stems = self._prompt_words(prompt)
        raw = _WORD.findall(reply)
        stems = self._content_stems([w.lower() for w in raw])
        distinct = set(stems)
        on_topic = 1.0 if not topic else len(topic & distinct) / min(TOPIC_WORDS_NEEDED, len(topic))
        substance = min(1.0, len(distinct - prompt_stems) / NEW_WORDS_NEEDED)
        if isinstance(reply, Reply):
            finished = float(reply.finished)
        else:
            finished = float(bool(_CLOSING.search(reply)))
        repeated = 1 - len(distinct) / len(stems) if stems else 0.0
        lower = [w.lower() for w in raw]
        grams = list(zip(lower, lower[1:], lower[2:]))
        looped = 1 - len(set(grams)) / len(grams) if grams else 0.0
        shouted = [w for w in raw if len(w) >= 2 and w.isupper()]
        shout = len(shouted) / len(raw) if len(shouted) >= 2 else 0.0
        clean = (1 - max(repeated, looped)) * (1 - shout) if raw else 0.0
        return {"on_topic": min(1.0, on_topic), "tone": self.tone(reply), "substance": substance,
                "finished": finished, "clean": clean}

    def score(self, prompt: str, reply: str) -> float:
        """The gold score of one reply to one prompt: clean x (weighted sum of the other four), in [0, 1]."""
        a = self.attributes(prompt, reply)
        return a["clean"] * sum(w * a[name] for name, w in WEIGHTS.items())

    def scores(self, prompts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """(B,) float64 gold scores of B replies to B prompts: ``annotator.scores`` is a gold or reward function
        as the training loops and :func:`~course_lib.llm.evaluation.evaluate_policy` call it."""
        if isinstance(prompts, str) or isinstance(replies, str) or len(prompts) != len(replies):
            raise ValueError(f"prompts, replies: expected two lists of equal length, got "
                             f"{type(prompts).__name__} and {type(replies).__name__}"
                             + (f" of lengths {len(prompts)} and {len(replies)}"
                                if not isinstance(prompts, str) and not isinstance(replies, str) else ""))
        return np.array([self.score(p, r) for p, r in zip(prompts, replies)], dtype=np.float64)

    def attribute_table(self, prompts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """(B, 6) float64: each reply's five :data:`ATTRIBUTES` and its gold score, for plots and tables."""
        rows = [[*self.attributes(p, r).values(), self.score(p, r)] for p, r in zip(prompts, replies)]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(ATTRIBUTES) + 1)

    # ---- judging pairs and groups --------------------------------------------------------------------------------
    def prob_first(self, prompt: str, a: str, b: str) -> float:
        """P(a preferred to b) = sigmoid((gold(a) - gold(b)) / temperature); 1, 0.5 or 0 at temperature 0."""
        return _bradley_terry(self.score(prompt, a) - self.score(prompt, b), self.temperature)

    def prefer(self, prompt: str, a: str, b: str) -> int:
        """0 when ``a`` is preferred, 1 when ``b`` is, drawn from :meth:`prob_first` (ties at temperature 0: 0)."""
        p = self.prob_first(prompt, a, b)
        if self.temperature == 0:
            return 0 if p >= 0.5 else 1
        return 0 if self.rng.random() < p else 1

    def rank(self, prompt: str, texts: Sequence[str]) -> list[int]:
        """Indices of ``texts`` (replies to one prompt), most preferred first: one noisy ranking, as a labeller
        ranks K responses.

        Sorts ``gold / temperature + Gumbel noise`` (the Plackett-Luce model; Luce 1959): for any two
        texts the chance that ``a`` ranks above ``b`` is exactly :meth:`prob_first` (the difference of
        two Gumbel draws is logistic), so a ranking is consistent with the pairwise judgements.
        Temperature 0 sorts by score (ties keep their order).
        """
        scores = self.scores([prompt] * len(texts), texts)
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
            if skip_ties and (a == b or self.score(prompt, a) == self.score(prompt, b)):
                continue
            chosen, rejected = (a, b) if self.prefer(prompt, a, b) == 0 else (b, a)
            pairs.append(PreferencePair(prompt, chosen, rejected))
        return pairs

    def __repr__(self) -> str:
        return f"SimulatedAnnotator({self.VERSION!r}, temperature={self.temperature})"


def _bradley_terry(diff: float, temperature: float) -> float:
    if temperature == 0:
        return 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
    return float(1 / (1 + math.exp(-diff / temperature)))


def label_consistency(annotator: SimulatedAnnotator, pairs: Sequence[PreferencePair]) -> dict[str, float]:
    """How far the annotator's own labels can be predicted: the ceiling for any reward model on its pairs.

    With p = P(chosen preferred) under the annotator's noise, for each pair:
      ``self_agreement``: the chance that two independent labels of the pair agree, p^2 + (1 - p)^2;
      ``ceiling``: the best possible chance of predicting one label, max(p, 1 - p): a reward model that knew
      the gold score exactly would reach it on average, and no model can do better.
    Returns both means over the pairs and their count ``n``.
    """
    if not pairs:
        raise ValueError("pairs: expected at least one preference pair, got none")
    p = np.array([annotator.prob_first(q.prompt, q.chosen, q.rejected) for q in pairs])
    return {"self_agreement": float(np.mean(p ** 2 + (1 - p) ** 2)), "ceiling": float(np.mean(np.maximum(p, 1 - p))),
            "n": len(pairs)}


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
    check_float("min_gap", min_gap, "> 0")
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
                        annotator: SimulatedAnnotator, min_gap: float = 0.025) -> list[PreferencePair]:
    """Free-form comments on each response -> pairs, reading each comment's tone (:meth:`SimulatedAnnotator.tone`,
    in [0, 1]) as its rating.

    "Clear and kind, thanks!" beats "Rude and off topic." The comment is scored, not the
    response: the comment carries the person's judgement. A crude reader (real systems ask an
    LLM to extract the judgement); gaps under ``min_gap`` count as ties.
    """
    _check_responses(responses, comments, "comments")
    return pairs_from_ratings(prompt, responses, [annotator.tone(c) for c in comments], min_gap=min_gap)
