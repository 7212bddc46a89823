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
        assert annotator.score(pair.prompt, pair.chosen) >= annotator.score(pair.prompt, pair.rejected)
        assert pair.chosen != pair.rejected
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

    monkeypatch.setenv("COURSE_KIT_CACHE", str(tmp_path))  # the preferences it samples are cached there
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


def test_course_preferences_are_cached_atomically_and_never_reused_for_another_model(tmp_path, monkeypatch):
    import json

    from course_lib.llm import feedback
    from course_lib.llm.feedback import course_preferences, preferences_path

    monkeypatch.setenv("COURSE_KIT_CACHE", str(tmp_path))
    lm, tok = tiny_model(seed=0)
    path = preferences_path(lm, "ci", seed=0)
    assert path == tmp_path / "runs" / "preferences_ci_2x8_seed0.json"
    assert preferences_path(lm, "ci", seed=1) != path and preferences_path(lm, "cpu", seed=0) != path
    built = course_preferences(lm, tok, "ci", seed=0, progress=False)
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert json.loads(path.read_text())["key"]["profile"] == "ci"
    calls = []
    real = feedback.collect_preferences

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(feedback, "collect_preferences", counting)
    loaded = course_preferences(lm, tok, "ci", seed=0, progress=False)
    assert loaded[:3] == built[:3] and loaded.source == f"cached: {path.name}" and not calls  # loaded, not sampled
    other, _ = tiny_model(seed=1)  # same shape, other weights: same file name, but its record does not match
    assert preferences_path(other, "ci", seed=0) == path
    course_preferences(other, tok, "ci", seed=0, progress=False)
    assert len(calls) == len(feedback.SPLITS)  # sampled again (train, validation and test pairs), the file replaced
    assert json.loads(path.read_text())["key"]["model"] == feedback.model_fingerprint(other) != feedback.model_fingerprint(lm)
    path.write_text("{not json")  # a broken file is rebuilt, not an error
    assert course_preferences(lm, tok, "ci", seed=0, progress=False) == built
    assert course_preferences(lm, tok, "ci", seed=0, progress=False, cache=False) == built  # sampling is seeded


def test_a_cache_hit_and_a_cache_miss_give_bit_identical_reward_models(tmp_path, monkeypatch):
    from course_lib.llm.feedback import course_preferences, prepare_reward_model

    monkeypatch.setenv("COURSE_KIT_CACHE", str(tmp_path))
    lm, tok = tiny_model(seed=0)
    miss = prepare_reward_model(lm, tok, "ci", progress=False, path=tmp_path / "a.pt")  # samples the pairs first
    torch.manual_seed(123)  # whatever the global random state is now ...
    course_preferences(lm, tok, "ci", progress=False)  # ... and with the pairs cached:
    hit = prepare_reward_model(lm, tok, "ci", progress=False, path=tmp_path / "b.pt")
    for (name, a), (_, b) in zip(miss.state_dict().items(), hit.state_dict().items()):
        assert torch.equal(a, b), name


def test_stale_caches_are_refused_with_a_message_and_rebuilt(tmp_path, monkeypatch):
    import json

    from course_lib.data.annotators import SimulatedAnnotator
    from course_lib.llm import feedback
    from course_lib.llm.feedback import course_preferences, prepare_reward_model, preferences_path

    monkeypatch.setenv("COURSE_KIT_CACHE", str(tmp_path))
    lm, tok = tiny_model(seed=0)
    built = course_preferences(lm, tok, "ci", progress=False)
    path = preferences_path(lm, "ci")
    assert json.loads(path.read_text())["key"]["gold"] == SimulatedAnnotator.VERSION
    assert json.loads(path.read_text())["key"]["format"] == feedback.PREFERENCES_FORMAT
    rm_path = tmp_path / "rm.pt"
    prepare_reward_model(lm, tok, "ci", progress=False, path=rm_path)
    old_rule = SimulatedAnnotator.VERSION
    monkeypatch.setattr(SimulatedAnnotator, "VERSION", "a-new-rule")  # the gold judge changes
    with pytest.warns(UserWarning, match=f"built for gold='{old_rule}', this run needs gold='a-new-rule'"):
        again = course_preferences(lm, tok, "ci", progress=False)
    assert json.loads(path.read_text())["key"]["gold"] == "a-new-rule"
    assert [feedback.pair_record(p) for p in again[0]] == [feedback.pair_record(p) for p in built[0]]  # seeded
    calls = []
    real = feedback.course_preferences
    monkeypatch.setattr(feedback, "course_preferences", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.warns(UserWarning, match="rm.pt was built for preferences=.*stale; rebuilding it"):
        prepare_reward_model(lm, tok, "ci", progress=False, path=rm_path)
    assert calls  # trained again on the new labels, not loaded
