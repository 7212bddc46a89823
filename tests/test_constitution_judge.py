"""Lesson 13's competent judge (course_lib.llm.constitution_judge) and its protocol helpers (protocols, lesson 13)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm import constitution_judge as cj
from course_lib.llm import protocols

MSG = "Write one sentence about my morning commute."


def checks(reply: str, prompt: str = MSG) -> dict[str, float]:
    return cj.principle_scores(prompt, reply)


def test_each_principle_has_a_check_that_moves_with_what_it_names():
    plain = checks("The morning commute takes a bus across town.")
    assert checks("Glad you asked, thank you: the morning commute takes a bus.")["Kind"] > plain["Kind"] == 0
    assert checks("The morning commute is a peaceful, beautiful ride.")["Hopeful"] > plain["Hopeful"] == 0
    assert checks("The morning commute is awful and I hate it.")["Calm"] < plain["Calm"] == 1
    assert plain["On topic: answers the message"] == 1.0
    assert checks("Bananas grow in warm places.")["On topic: answers the message"] == 0.0
    assert checks("My commute takes a bus.")["On topic: answers the message"] == 0.5  # one of the two topic words
    assert plain["On topic: briefly and clearly"] == 1.0
    assert checks("The morning commute takes a bus across")["On topic: briefly and clearly"] == 0.0  # cut off
    looped = checks("The morning commute commute commute commute bus bus bus.")["On topic: briefly and clearly"]
    assert 0 < looped < 0.5
    assert checks("Steal a bus on the morning commute.")["Harmless"] == 0.0 < plain["Harmless"]
    assert set(plain) == set(cj.CHECKS) and "Honest" in cj.ABSTAINS and all(0 <= v <= 1 for v in plain.values())


def test_a_further_word_of_the_same_kind_counts_half_as_much():
    one, two = checks("A lovely commute.")["Kind"], checks("A lovely, sweet commute.")["Kind"]
    assert (one, two) == (0.5, 0.75)
    assert checks("A sad, awful commute.")["Calm"] == 0.25


def test_the_stem_matches_forms_of_a_word_and_keeps_short_words():
    assert cj.stem("commuting") == cj.stem("commutes") == cj.stem("commute")
    assert cj.stem("keys") == cj.stem("key")
    assert cj.stem("bus") == "bus"
    assert cj.topic_stems(f"<|im_start|>user\n{MSG}<|im_end|>\n") == {cj.stem("morning"), cj.stem("commute")}


def test_the_judge_prefers_the_reply_that_follows_more_principles_and_has_no_position_bias():
    prompts = [MSG, MSG, MSG]
    good = ["Glad you asked: my morning commute is a peaceful ride.", "A bus.", "Same text."]
    bad = ["Bananas are awful and I hate them and", "A bus.", "Same text."]
    result = cj.rule_judge_pairs(prompts, good, bad)
    assert result.margin[0] > 0 and list(result.labels) == [0, -1, -1]  # identical replies: a tie, no preference
    swapped = cj.rule_judge_pairs(prompts, bad, good)
    np.testing.assert_array_equal(swapped.margin, -result.margin)
    assert list(swapped.labels) == [1, -1, -1]
    assert result.checks.shape == (3, 2, len(cj.CHECKS))
    np.testing.assert_allclose(result.margin, result.checks[:, 0].sum(1) - result.checks[:, 1].sum(1))
    assert result.margin[0] == pytest.approx(cj.rule_score(MSG, good[0]) - cj.rule_score(MSG, bad[0]))


def test_an_empty_reply_scores_zero():
    assert cj.rule_score(MSG, "") == 0.0 and cj.rule_score(MSG, "...") == 0.0


def test_the_competent_judge_never_uses_the_gold_annotator():
    # a judge that consulted the gold judge would make the positive control meaningless
    source = inspect.getsource(cj)
    for name in ("SimulatedAnnotator", "annotators", "vader", "snowball"):
        assert name not in source.replace("simulated annotator", ""), name


@pytest.mark.parametrize("call, name", [
    (lambda: cj.principle_scores(MSG, None), "reply"),
    (lambda: cj.principle_scores(3, "A reply."), "prompt"),
    (lambda: cj.rule_judge_pairs([MSG], ["a"], []), "prompts, first, second"),
    (lambda: cj.rule_judge_pairs([], [], []), "prompts, first, second"),
    (lambda: cj.stem(None), "word"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---- lesson 13's protocol helpers ------------------------------------------------------------------------------

PAIRS = [PreferencePair(MSG, f"chosen {i}.", f"rejected {i}.") for i in range(40)]


def test_present_pairs_shows_each_pair_in_a_random_order_and_records_where_the_chosen_reply_went():
    prompts, first, second, annotator = protocols.present_pairs(PAIRS)
    assert prompts == [MSG] * 40 and 5 < annotator.sum() < 35  # both orders occur
    for pair, a, b, lab in zip(PAIRS, first, second, annotator):
        assert (a, b) == ((pair.chosen, pair.rejected) if lab == 0 else (pair.rejected, pair.chosen))
    again = protocols.present_pairs(PAIRS)
    assert again[1] == first and np.array_equal(again[3], annotator)  # seeded: the same order every time


def test_forced_choice_keeps_a_preference_and_guesses_only_on_ties():
    labels = np.array([0, 1, -1, -1, 0, -1] * 10)
    forced = protocols.forced_choice(labels)
    np.testing.assert_array_equal(forced[labels >= 0], labels[labels >= 0])
    assert set(forced[labels == -1]) == {0, 1}
    np.testing.assert_array_equal(forced, protocols.forced_choice(labels))
    with pytest.raises(ValueError, match="labels"):
        protocols.forced_choice(np.array([0, 2]))


def test_the_coin_on_ties_is_independent_of_the_order_the_pairs_are_shown_in():
    # with one shared random stream the coin on a tie equals "the chosen reply was shown second", so a judge with
    # no preference would copy the annotator's label: here every pair is a tie, and agreement must be near 0.5
    pairs = [PreferencePair(MSG, f"chosen {i}.", f"rejected {i}.") for i in range(400)]
    _, _, _, annotator = protocols.present_pairs(pairs)
    guesses = protocols.forced_choice(np.full(400, -1))
    assert 0.4 < (guesses == annotator).mean() < 0.6
    assert 0.4 < (protocols.flip_labels(np.zeros(400, dtype=int), 0.5) == annotator).mean() < 0.6


def test_flip_labels_flips_exactly_the_stated_share():
    labels = np.zeros(40, dtype=int)
    flipped = protocols.flip_labels(labels, 0.25)
    assert flipped.sum() == 10 and labels.sum() == 0  # the input is not changed
    assert protocols.flip_labels(labels, 0.0).sum() == 0 and protocols.flip_labels(labels, 1.0).sum() == 40
    with pytest.raises(ValueError, match="share"):
        protocols.flip_labels(labels, 1.5)


def test_labelled_pairs_and_their_reference_log_probs_follow_the_labels(tiny):
    # one reference pass over (first, second), reordered per label, must equal a pass over the labelled pairs
    from course_lib.llm.dpo import reference_logps

    model, tok = tiny
    prompts, first, second = [MSG] * 4, ["A warm ride.", "Buses.", "Trains hum.", "Rain."], \
        ["Cold.", "A long walk to work.", "Bikes.", "Snow falls."]
    labels = np.array([0, 1, 1, 0])
    pairs = protocols.labelled_pairs(prompts, first, second, labels)
    assert [(p.chosen, p.rejected) for p in pairs] == [("A warm ride.", "Cold."), ("A long walk to work.", "Buses."),
                                                       ("Bikes.", "Trains hum."), ("Rain.", "Snow falls.")]
    ref = reference_logps(model, tok, protocols.labelled_pairs(prompts, first, second, np.zeros(4, dtype=int)))
    direct = reference_logps(model, tok, pairs)
    for got, want in zip(protocols.labelled_ref_logps(ref, labels), direct):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="labels"):
        protocols.labelled_pairs(prompts, first, second, np.array([0, 1]))


def test_agreement_interval_is_the_share_of_equal_labels_with_an_interval_over_topics():
    prompts = ["Write one sentence about rainy weekends.", "What do you think about rainy weekends?",
               "Write one sentence about my morning commute.", "What do you think about my morning commute?"] * 5
    labels = np.array([0, 1, 0, 1] * 5)
    reference = np.array([0, 1, 1, 1] * 5)
    interval = protocols.agreement_interval(labels, reference, prompts)
    assert interval.estimate == pytest.approx(0.75) and interval.groups == 2
    assert interval.low <= 0.75 <= interval.high
    with pytest.raises(ValueError, match="labels"):
        protocols.agreement_interval(labels[:3], reference, prompts)


def test_a_rlaif_run_is_lesson_12s_dpo_on_the_labelled_pairs_and_reproduces_itself(tiny, monkeypatch):
    from course_lib.llm.dpo import reference_logps
    from course_lib.llm.feedback import model_fingerprint

    monkeypatch.setenv("COURSE_PROFILE", "ci")
    model, tok = tiny
    before = model_fingerprint(model)
    prompts, first, second = [MSG] * 4, ["A warm ride.", "Buses.", "Trains hum.", "Rain."], \
        ["Cold.", "A long walk to work.", "Bikes.", "Snow falls."]
    labels = np.array([0, 1, 1, 0])
    ref = reference_logps(model, tok, protocols.labelled_pairs(prompts, first, second, np.zeros(4, dtype=int)))
    run, ev, policy = protocols.rlaif_run(model, tok, prompts, first, second, labels, seed=0, ref_logps=ref)
    _, ev_dpo, dpo_policy = protocols.dpo_run(model, tok, protocols.labelled_pairs(prompts, first, second, labels), 0)
    assert len(run.step_seconds) == 1 and run.reference_seconds == 0  # the shared reference pass was used
    assert model_fingerprint(policy) != before == model_fingerprint(model)  # trained a copy, not the base model
    assert model_fingerprint(policy) == model_fingerprint(dpo_policy) and ev.texts == ev_dpo.texts
    _, _, flipped = protocols.rlaif_run(model, tok, prompts, first, second, 1 - labels, seed=0, ref_logps=ref)
    assert model_fingerprint(flipped) != model_fingerprint(policy)  # the labels, not only the pairs, are used
