"""Preference data from the policy's own samples: K responses per prompt, ranked, turned into pairs."""

from __future__ import annotations

import pytest
import torch

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


def test_the_course_reward_model_is_built_once_then_loaded(tmp_path, monkeypatch):
    from course_lib.llm.feedback import prepare_reward_model, reward_model_path
    from course_lib.llm.reward_model import score_responses

    lm, tok = tiny_model(seed=0)
    assert reward_model_path(lm, "ci").name == "reward_model_ci_2x8.pt"
    path = tmp_path / "rm.pt"
    built = prepare_reward_model(lm, tok, "ci", progress=False, path=path)
    assert path.is_file() and not any(p.requires_grad for p in built.parameters())
    def no_training(*args, **kwargs):
        raise AssertionError("a saved reward model must be loaded, not trained again")

    monkeypatch.setattr("course_lib.llm.reward_model.train_reward_model", no_training)
    loaded = prepare_reward_model(lm, tok, "ci", progress=False, path=path)
    prompts, responses = ["Q:", "Q:"], ["Lovely!", "No."]
    assert torch.equal(score_responses(built, tok, prompts, responses), score_responses(loaded, tok, prompts, responses))
