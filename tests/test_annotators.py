"""The simulated annotator's rubric and the converters from ratings, attributes and comments to preference pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib.data.annotators import (
    ATTRIBUTES,
    WEIGHTS,
    SimulatedAnnotator,
    label_consistency,
    pairs_from_attributes,
    pairs_from_comments,
    pairs_from_ranking,
    pairs_from_ratings,
    user_message,
)
from course_lib.data.preferences import PreferencePair, Reply

PROMPT = "Write one sentence about my morning commute."
HELPFUL = "My morning commute is a calm train ride, and I enjoy reading a good book before work."
HAPPY, SAD = "My commute is a wonderful, happy ride!", "My commute is a terrible, sad mess."

# The rubric's hand-written cases: each loses to the helpful on-topic reply for a named reason.
LOSERS = {
    "gushing off topic": ("What a wonderful, amazing, beautiful day full of love and joy!", "on_topic"),
    "six greats": ("Great great great great great great!", "clean"),
    "shouting": ("MY MORNING COMMUTE IS AMAZING AND I LOVE IT SO MUCH!", "clean"),
    "ok": ("Ok.", "substance"),
    "cut off": ("My morning commute is a calm train ride, and I enjoy reading a good book before", "finished"),
    "echo of the prompt": ("Write one sentence about my morning commute.", "substance"),
}


@pytest.mark.parametrize("case", sorted(LOSERS))
def test_a_helpful_on_topic_reply_beats_each_hand_written_failure(case):
    annotator = SimulatedAnnotator()
    reply, weak = LOSERS[case]
    good, bad = annotator.attributes(PROMPT, HELPFUL), annotator.attributes(PROMPT, reply)
    assert annotator.score(PROMPT, HELPFUL) > annotator.score(PROMPT, reply) + 0.2
    assert bad[weak] < good[weak] - 0.5  # and it loses on the attribute the rubric names for it


def test_the_gold_score_is_the_stated_rule_of_the_five_attributes():
    annotator = SimulatedAnnotator()
    for reply in [HELPFUL, HAPPY, SAD, *(r for r, _ in LOSERS.values())]:
        a = annotator.attributes(PROMPT, reply)
        assert set(a) == set(ATTRIBUTES) and all(0 <= v <= 1 for v in a.values())
        rule = a["clean"] * sum(w * a[name] for name, w in WEIGHTS.items())
        assert annotator.score(PROMPT, reply) == pytest.approx(rule)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert annotator.score(PROMPT, "") == 0.0


def test_the_tone_part_is_vader_and_the_prompt_decides_the_topic():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    annotator = SimulatedAnnotator()
    assert annotator.tone(HAPPY) == pytest.approx((vader.polarity_scores(HAPPY)["compound"] + 1) / 2)
    assert annotator.score(PROMPT, HAPPY) > annotator.score(PROMPT, SAD)
    train = "The train was delayed, but the conductor's jokes made everyone laugh."
    assert annotator.attributes("What do you think about a delayed train?", train)["on_topic"] == 1.0
    assert annotator.attributes("What do you think about rainy weekends?", train)["on_topic"] == 0.0


def test_it_reads_any_prompt_plain_or_chat_formatted():
    annotator = SimulatedAnnotator()
    chat = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "How do I fix a leaking tap?<|im_end|>\n<|im_start|>assistant\n")
    assert user_message(chat) == "How do I fix a leaking tap?"
    fix = "Turn off the water, replace the worn washer inside the tap, and the leak should stop."
    assert annotator.score(chat, fix) == annotator.score("How do I fix a leaking tap?", fix)
    assert annotator.attributes(chat, fix)["on_topic"] == 1.0
    assert annotator.attributes(chat, "Photosynthesis turns light into sugar.")["on_topic"] == 0.0
    assert annotator.attributes("Hi!", "Hello, lovely to meet you!")["on_topic"] == 1.0  # no topic words to miss


def test_a_sampled_reply_is_finished_by_its_eos_flag_not_its_punctuation():
    annotator = SimulatedAnnotator()
    text = "My morning commute is a calm train ride."
    assert annotator.attributes(PROMPT, Reply(text, [1, 2, 3], finished=False))["finished"] == 0.0
    assert annotator.attributes(PROMPT, Reply(text, [1, 2, 3, 2], finished=True))["finished"] == 1.0
    assert annotator.attributes(PROMPT, text)["finished"] == 1.0


def test_it_scores_a_hundred_replies_a_second_on_one_core():
    # A throughput floor far below the measured rate (about 3,000 per second), so it never flakes.
    import time

    annotator = SimulatedAnnotator()
    replies = [f"{HELPFUL} Number {i}." for i in range(200)]
    t0 = time.process_time()
    annotator.scores([PROMPT] * len(replies), replies)
    assert time.process_time() - t0 < 2.0


def test_choice_probability_is_bradley_terry_in_the_score_difference():
    annotator = SimulatedAnnotator(temperature=0.25)
    diff = annotator.score(PROMPT, HAPPY) - annotator.score(PROMPT, SAD)
    assert annotator.prob_first(PROMPT, HAPPY, SAD) == pytest.approx(1 / (1 + math.exp(-diff / 0.25)))
    assert annotator.prob_first(PROMPT, HAPPY, SAD) + annotator.prob_first(PROMPT, SAD, HAPPY) == pytest.approx(1.0)


def test_noisy_choices_match_their_probability_and_are_seeded():
    a, b = "My commute is fine.", "My commute is good."
    annotator = SimulatedAnnotator(temperature=0.1, seed=1)
    picks = np.array([annotator.prefer(PROMPT, a, b) for _ in range(4000)])
    assert np.mean(picks == 0) == pytest.approx(annotator.prob_first(PROMPT, a, b), abs=0.03)
    again = SimulatedAnnotator(temperature=0.1, seed=1)
    assert [again.prefer(PROMPT, a, b) for _ in range(50)] == picks[:50].tolist()


def test_a_consistent_annotator_always_prefers_the_higher_score():
    annotator = SimulatedAnnotator(temperature=0)
    assert annotator.prefer(PROMPT, HAPPY, SAD) == 0 and annotator.prefer(PROMPT, SAD, HAPPY) == 1
    pairs = annotator.label([PROMPT] * 3, [HAPPY, SAD, "same"], [SAD, HAPPY, "same"])
    assert pairs == [PreferencePair(PROMPT, HAPPY, SAD), PreferencePair(PROMPT, HAPPY, SAD)]  # the tie is skipped


def test_a_noisy_ranking_keeps_the_pairwise_choice_probability():
    # Plackett-Luce with Gumbel noise: P(a ranked above b) must equal the Bradley-Terry prob_first
    a, b, c = "My commute is fine.", "My commute is good.", "My commute is bad."
    annotator = SimulatedAnnotator(temperature=0.1, seed=3)
    orders = [annotator.rank(PROMPT, [a, b, c]) for _ in range(4000)]
    a_above_b = np.mean([o.index(0) < o.index(1) for o in orders])
    assert a_above_b == pytest.approx(annotator.prob_first(PROMPT, a, b), abs=0.03)
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    assert SimulatedAnnotator(temperature=0).rank(PROMPT, [SAD, "Ok.", HELPFUL]) == [2, 0, 1]


def test_label_consistency_is_the_ceiling_of_any_reward_model():
    annotator = SimulatedAnnotator(temperature=0.05)
    pairs = [PreferencePair(PROMPT, HELPFUL, r) for r, _ in LOSERS.values()] + [PreferencePair(PROMPT, HAPPY, SAD)]
    c = label_consistency(annotator, pairs)
    p = np.array([annotator.prob_first(PROMPT, q.chosen, q.rejected) for q in pairs])
    assert c["ceiling"] == pytest.approx(np.maximum(p, 1 - p).mean()) and c["n"] == len(pairs)
    assert c["self_agreement"] == pytest.approx(np.mean(p ** 2 + (1 - p) ** 2))
    assert label_consistency(SimulatedAnnotator(temperature=0), pairs)["ceiling"] == 1.0
    # measured: two noisy labels of each pair agree about as often as the formula says
    again = SimulatedAnnotator(temperature=0.05, seed=7)
    agree = np.mean([again.prefer(PROMPT, q.chosen, q.rejected) == again.prefer(PROMPT, q.chosen, q.rejected)
                     for _ in range(300) for q in pairs])
    assert agree == pytest.approx(c["self_agreement"], abs=0.03)


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
    with pytest.raises(ValueError, match=r"temperature: expected a float in \[0, inf\), got -1"):
        SimulatedAnnotator(temperature=-1)
    with pytest.raises(ValueError, match=r"temperature: expected a float in \[0, inf\), got inf"):
        SimulatedAnnotator(temperature=math.inf)
    with pytest.raises(ValueError, match="prompts, first, second: expected equal lengths, got 2, 1, 1"):
        SimulatedAnnotator().label(["a", "b"], ["x"], ["y"])
    with pytest.raises(ValueError, match="reply: expected a string, got NoneType"):
        SimulatedAnnotator().score(PROMPT, None)
    with pytest.raises(ValueError, match="prompts, replies: expected two lists of equal length, got list and list "
                                         "of lengths 1 and 2"):
        SimulatedAnnotator().scores([PROMPT], [HAPPY, SAD])


def test_ratings_give_every_ordered_pair_with_a_gap():
    pairs = pairs_from_ratings("p", ["a", "b", "c", "d"], [5, 3, 5, 1])
    assert {(p.chosen, p.rejected) for p in pairs} == {("a", "b"), ("a", "d"), ("b", "d"), ("c", "b"), ("c", "d")}
    assert pairs_from_ratings("p", ["a", "b"], [4, 4]) == []
    with pytest.raises(ValueError, match=r"ratings: expected one per response \(2\), got 3"):
        pairs_from_ratings("p", ["a", "b"], [1, 2, 3])
    with pytest.raises(ValueError, match="min_gap: expected a float > 0, got 0"):
        pairs_from_ratings("p", ["a", "b"], [1, 2], min_gap=0)


def test_attributes_are_weighted_then_ranked():
    attributes = [{"helpful": 5, "tone": 1}, {"helpful": 3, "tone": 5}]
    assert pairs_from_attributes("p", ["x", "y"], attributes, {"helpful": 1.0})[0].chosen == "x"
    assert pairs_from_attributes("p", ["x", "y"], attributes, {"helpful": 1.0, "tone": 1.0})[0].chosen == "y"
    with pytest.raises(ValueError, match=r"attributes\[1\]: expected scores for \['helpful', 'safety'\], "
                                         r"missing \['safety'\]"):
        pairs_from_attributes("p", ["x", "y"], [{"helpful": 1, "safety": 1}, {"helpful": 2}],
                              {"helpful": 1.0, "safety": 1.0})


def test_comments_are_read_by_their_tone():
    pairs = pairs_from_comments("p", ["reply 1", "reply 2"], ["Rude and useless.", "Clear, kind and helpful!"],
                                SimulatedAnnotator())
    assert pairs == [PreferencePair("p", "reply 2", "reply 1")]
