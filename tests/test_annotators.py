"""The simulated annotator and the converters from ratings, attributes and comments to preference pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib.data.annotators import (
    SimulatedAnnotator,
    pairs_from_attributes,
    pairs_from_comments,
    pairs_from_ranking,
    pairs_from_ratings,
)
from course_lib.data.preferences import PreferencePair

HAPPY, SAD = "What a wonderful, happy day!", "This is a terrible, sad mess."


def test_scores_are_vader_compound_sentiment():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    annotator = SimulatedAnnotator()
    for text in (HAPPY, SAD, "", "The robot found the cheese."):
        assert annotator.score(text) == vader.polarity_scores(text)["compound"]
    assert annotator.score(HAPPY) > 0.5 and annotator.score(SAD) < -0.5
    assert annotator.scores([HAPPY, SAD]).shape == (2,)


def test_choice_probability_is_bradley_terry_in_the_score_difference():
    annotator = SimulatedAnnotator(temperature=0.25)
    diff = annotator.score(HAPPY) - annotator.score(SAD)
    assert annotator.prob_first(HAPPY, SAD) == pytest.approx(1 / (1 + math.exp(-diff / 0.25)))
    assert annotator.prob_first(HAPPY, SAD) + annotator.prob_first(SAD, HAPPY) == pytest.approx(1.0)


def test_noisy_choices_match_their_probability_and_are_seeded():
    a, b = "It is fine.", "It is good."
    annotator = SimulatedAnnotator(temperature=0.5, seed=1)
    picks = np.array([annotator.prefer(a, b) for _ in range(4000)])
    assert np.mean(picks == 0) == pytest.approx(annotator.prob_first(a, b), abs=0.03)
    again = SimulatedAnnotator(temperature=0.5, seed=1)
    assert [again.prefer(a, b) for _ in range(50)] == picks[:50].tolist()


def test_a_consistent_annotator_always_prefers_the_higher_score():
    annotator = SimulatedAnnotator(temperature=0)
    assert annotator.prefer(HAPPY, SAD) == 0 and annotator.prefer(SAD, HAPPY) == 1
    pairs = annotator.label(["p1", "p2", "p3"], [HAPPY, SAD, "same"], [SAD, HAPPY, "same"])
    assert pairs == [PreferencePair("p1", HAPPY, SAD), PreferencePair("p2", HAPPY, SAD)]  # the tie is skipped


def test_a_noisy_ranking_keeps_the_pairwise_choice_probability():
    # Plackett-Luce with Gumbel noise: P(a ranked above b) must equal the Bradley-Terry prob_first
    a, b, c = "It is fine.", "It is good.", "It is bad."
    annotator = SimulatedAnnotator(temperature=0.5, seed=3)
    orders = [annotator.rank([a, b, c]) for _ in range(4000)]
    a_above_b = np.mean([o.index(0) < o.index(1) for o in orders])
    assert a_above_b == pytest.approx(annotator.prob_first(a, b), abs=0.03)
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    assert SimulatedAnnotator(temperature=0).rank([SAD, "It is.", HAPPY]) == [2, 1, 0]


def test_a_ranking_gives_best_vs_worst_or_every_pair():
    responses = ["ok", "great", "bad", "great"]
    assert pairs_from_ranking("p", responses, [1, 0, 2, 3]) == []  # best and worst are the same text
    assert pairs_from_ranking("p", responses, [1, 0, 3, 2]) == [PreferencePair("p", "great", "bad")]
    every = pairs_from_ranking("p", responses, [1, 0, 3, 2], keep="all")
    assert len(every) == 5  # 6 pairs of 4, less great-vs-great
    assert every[0] == PreferencePair("p", "great", "ok") and every[-1] == PreferencePair("p", "great", "bad")
    with pytest.raises(ValueError, match=r"order: expected a permutation of range\(4\), got \[0, 0, 1, 2\]"):
        pairs_from_ranking("p", responses, [0, 0, 1, 2])
    with pytest.raises(ValueError, match="keep: expected 'best_vs_worst' or 'all', got 'top'"):
        pairs_from_ranking("p", responses, [0, 1, 2, 3], keep="top")


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="temperature: expected a finite float >= 0, got -1"):
        SimulatedAnnotator(temperature=-1)
    with pytest.raises(ValueError, match="prompts, first, second: expected equal lengths, got 2, 1, 1"):
        SimulatedAnnotator().label(["a", "b"], ["x"], ["y"])
    with pytest.raises(ValueError, match="text: expected a string, got NoneType"):
        SimulatedAnnotator().score(None)


def test_ratings_give_every_ordered_pair_with_a_gap():
    pairs = pairs_from_ratings("p", ["a", "b", "c", "d"], [5, 3, 5, 1])
    assert {(p.chosen, p.rejected) for p in pairs} == {("a", "b"), ("a", "d"), ("b", "d"), ("c", "b"), ("c", "d")}
    assert pairs_from_ratings("p", ["a", "b"], [4, 4]) == []
    with pytest.raises(ValueError, match=r"ratings: expected one per response \(2\), got 3"):
        pairs_from_ratings("p", ["a", "b"], [1, 2, 3])


def test_attributes_are_weighted_then_ranked():
    attributes = [{"helpful": 5, "tone": 1}, {"helpful": 3, "tone": 5}]
    assert pairs_from_attributes("p", ["x", "y"], attributes, {"helpful": 1.0})[0].chosen == "x"
    assert pairs_from_attributes("p", ["x", "y"], attributes, {"helpful": 1.0, "tone": 1.0})[0].chosen == "y"
    with pytest.raises(ValueError, match=r"attributes\[1\]: expected scores for \['helpful', 'safety'\], "
                                         r"missing \['safety'\]"):
        pairs_from_attributes("p", ["x", "y"], [{"helpful": 1, "safety": 1}, {"helpful": 2}],
                              {"helpful": 1.0, "safety": 1.0})


def test_comments_are_read_by_their_sentiment():
    pairs = pairs_from_comments("p", ["reply 1", "reply 2"], ["Rude and useless.", "Clear, kind and helpful!"],
                                SimulatedAnnotator())
    assert pairs == [PreferencePair("p", "reply 2", "reply 1")]
