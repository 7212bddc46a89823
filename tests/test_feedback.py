"""Preference data from the policy's own samples: K responses per prompt, ranked, turned into pairs."""

from __future__ import annotations

import pytest

from course_lib.data.annotators import SimulatedAnnotator
from course_lib.llm.feedback import collect_preferences
from course_lib.llm.models import tiny_model


def test_groups_hold_k_samples_per_prompt_and_pairs_follow_the_annotator():
    lm, tok = tiny_model(seed=0)
    prompts = ["Say something:", "Tell me more:"]
    annotator = SimulatedAnnotator(temperature=0)
    pairs, groups = collect_preferences(lm, tok, prompts, annotator, responses_per_prompt=3, rounds=2,
                                        max_new_tokens=5, batch_size=4, progress=False)
    assert len(groups) == 4 and all(len(g) == 3 for g in groups)  # prompts x rounds groups of K
    assert 1 <= len(pairs) <= 4  # best vs worst: at most one pair per group (none when both texts are equal)
    for pair in pairs:  # both texts come from one group of that pair's prompt (groups run prompts x rounds)
        assert any(pair.chosen in g and pair.rejected in g and prompts[i % 2] == pair.prompt
                   for i, g in enumerate(groups))
        assert annotator.score(pair.chosen) >= annotator.score(pair.rejected) and pair.chosen != pair.rejected
    every, _ = collect_preferences(lm, tok, prompts, annotator, responses_per_prompt=3, max_new_tokens=5,
                                   keep="all", progress=False)
    assert len(every) <= 2 * 3 and len(every) > 0  # up to 3 pairs per group of 3


def test_bad_arguments_name_the_argument():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(ValueError, match="responses_per_prompt: expected an int >= 2, got 1"):
        collect_preferences(lm, tok, ["p"], SimulatedAnnotator(), responses_per_prompt=1)
    with pytest.raises(ValueError, match="prompts: expected a non-empty list"):
        collect_preferences(lm, tok, [], SimulatedAnnotator())
