"""The AI judge of lesson 13 (course_lib.llm.judge) on the tiny model: parsing, margins, agreement, revise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.llm.judge import (
    ANSWER_PREFIX,
    REVISE_PRESETS,
    JudgeResult,
    Principle,
    ReviseConfig,
    agreement,
    ai_preference_pairs,
    clean_revision,
    critique_and_revise,
    critique_message,
    format_principles,
    generated_verdicts,
    judge_pairs,
    load_constitution,
    next_token_logits,
    option_margins,
    pairwise_message,
    pairwise_prompt,
    parse_verdict,
    parse_yes_no,
    principle_margins,
    symmetric_margin,
    user_message,
)
from course_lib.llm.models import tiny_model


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


PRINCIPLES = [Principle("Kind", "Be kind."), Principle("Calm", "Avoid angry words.")]


# ---- the constitution -------------------------------------------------------------------------------


def test_the_shipped_constitution_loads_with_its_principles():
    principles = load_constitution()
    assert 4 <= len(principles) <= 8
    names = [p.name for p in principles]
    assert "Harmless" in names and "Honest" in names
    assert all(p.text.endswith(".") and "**" not in p.text for p in principles)
    assert format_principles(principles).splitlines()[0].startswith("1. Kind: ")


def test_load_constitution_reads_numbered_lines_only_and_rejects_a_file_without_any(tmp_path):
    path = tmp_path / "c.md"
    path.write_text("# title\n\nsome prose\n1. **Short.** Be brief.\n2. **Polite.** Say please.\n", encoding="utf-8")
    assert load_constitution(path) == [Principle("Short", "Be brief."), Principle("Polite", "Say please.")]
    path.write_text("no principles here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"path: expected lines like"):
        load_constitution(path)


def test_user_message_recovers_the_message_from_a_chat_prompt(tiny):
    _, tok = tiny
    from course_lib.llm.generation import chat_prompt

    assert user_message(chat_prompt(tok, "What about rain?")) == "What about rain?"
    assert user_message("  plain text ") == "plain text"


def test_prompts_hold_the_principles_the_message_and_both_replies(tiny):
    _, tok = tiny
    text = pairwise_prompt(tok, PRINCIPLES, "Hi there", "first reply", "second reply", ANSWER_PREFIX)
    assert text.endswith(ANSWER_PREFIX)
    assert "1. Kind: Be kind." in text and "Reply A: first reply" in text and "Reply B: second reply" in text
    assert text.index("Reply A:") < text.index("Reply B:")
    assert "Answer A or B" in pairwise_message(PRINCIPLES, "m", "a", "b")
    assert "Principle: Be kind." in critique_message(PRINCIPLES[0], "m", "r")
    with pytest.raises(ValueError, match="principle: expected a Principle"):
        critique_message("Be kind.", "m", "r")


# ---- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, verdict", [
    ("A", "A"), ("b", "B"), ("Reply A", "A"), ("**B**", "B"), ("Answer: b", "B"), ("Reply B is better.", "B"),
    ("(A)", "A"), ("A: Answer A is better", "A"), ("The better reply is Reply B", "B"),
    ("A and B", None), ("neither", None), ("", None), ("Both", None), ("A cat sat on the mat", None),
    ("A: Sentence A: \"", None), ("Bananas", None), (None, None), (3, None),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text, answer", [("Yes", "Yes"), ("**No.** The reply is rude", "No"), ("yes, it does", "Yes"),
                                          ("The reply is fine", None), ("", None)])
def test_parse_yes_no(text, answer):
    assert parse_yes_no(text) == answer


def test_clean_revision_removes_labels_and_quotes():
    assert clean_revision('  Revised reply: "What a lovely day."  ') == "What a lovely day."
    assert clean_revision("**Reply:** Sunny.") == "Sunny."
    assert clean_revision("Plain text.") == "Plain text."


# ---- margins ---------------------------------------------------------------------------------------------


def test_next_token_logits_match_an_unbatched_forward_pass_despite_left_padding(tiny):
    model, tok = tiny
    prompts = ["short", "a much longer prompt with many more tokens in it"]
    batched = next_token_logits(model, tok, prompts, batch_size=2)
    for i, p in enumerate(prompts):
        ids = tok(p, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            alone = model(input_ids=ids).logits[0, -1]
        assert torch.allclose(batched[i], alone, atol=1e-4)


def test_option_margin_equals_a_manual_log_softmax_difference():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(5, 20, generator=g)
    margin = option_margins(logits, 4, 9)
    manual = [math.log(torch.softmax(row.double(), -1)[4].item()) - math.log(torch.softmax(row.double(), -1)[9].item())
              for row in logits]
    assert np.allclose(margin.numpy(), manual, atol=1e-5)
    with pytest.raises(ValueError, match=r"logits: expected shape \(N, V\)"):
        option_margins(logits[0], 4, 9)


def test_judge_pairs_reads_the_margins_of_both_orders_and_swapping_negates_the_symmetric_margin(tiny):
    model, tok = tiny
    prompts, a, b = ["m1", "m2", "m3"], ["good day", "ok", "fine"], ["bad day", "meh", "sad"]
    result = judge_pairs(model, tok, PRINCIPLES, prompts, a, b, batch_size=2, progress=False)
    # margin_ab is exactly the option margin of the first-as-A prompt
    texts = [pairwise_prompt(tok, PRINCIPLES, p, x, y, ANSWER_PREFIX) for p, x, y in zip(prompts, a, b)]
    a_id = tok(" A", add_special_tokens=False)["input_ids"][0]
    b_id = tok(" B", add_special_tokens=False)["input_ids"][0]
    manual = option_margins(next_token_logits(model, tok, texts), a_id, b_id).numpy()
    assert np.allclose(result.margin_ab, manual, atol=1e-5)
    swapped = judge_pairs(model, tok, PRINCIPLES, prompts, b, a, batch_size=3, progress=False)
    assert np.allclose(swapped.margin, -result.margin, atol=1e-5)
    assert np.allclose(swapped.margin_ab, result.margin_ba, atol=1e-5)


def test_symmetric_margin_cancels_a_constant_position_bias():
    s = torch.tensor([1.0, -2.0, 0.5])
    bias = 4.0
    assert torch.allclose(symmetric_margin(s + bias, -s + bias), s)


def test_judge_result_labels_consistency_and_first_rate():
    r = JudgeResult(np.array([2.0, 1.0, -1.0, 3.0]), np.array([-1.0, 0.5, 2.0, 1.0]))
    assert r.consistent.tolist() == [True, False, True, False]
    assert r.labels.tolist() == [0, -1, 1, -1]
    assert r.first_rate == pytest.approx(6 / 8)
    assert np.allclose(r.margin, [1.5, 0.25, -1.5, 1.0])
    pairs = ai_preference_pairs(["p1", "p2", "p3", "p4"], ["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"], r)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p1", "a1", "b1"), ("p3", "b3", "a3")]


# ---- agreement ---------------------------------------------------------------------------------------------


def test_agreement_leaves_out_and_counts_unlabelled_pairs():
    out = agreement(["A", None, "B", -1, 0], [0, 1, 0, 1, 0])
    assert out["n"] == 3 and out["unlabelled"] == 2
    assert out["rate"] == pytest.approx(2 / 3)
    assert out["se"] == pytest.approx(math.sqrt(2 / 3 * 1 / 3 / 3))
    none = agreement([None, None], [0, 1])
    assert none["n"] == 0 and math.isnan(none["rate"])
    with pytest.raises(ValueError, match="human_labels: expected one per judge label"):
        agreement([0, 1], [0])
    with pytest.raises(ValueError, match="labels: expected 0, 1"):
        agreement([2], [0])


def test_generated_verdicts_counts_unparseable_answers(tiny, monkeypatch):
    model, tok = tiny
    import course_lib.llm.judge as judge

    canned = iter([["A", "Reply B", "A and B"], ["neither"]])
    monkeypatch.setattr(judge, "generate", lambda *args, **kwargs: next(canned))
    texts, verdicts = generated_verdicts(model, tok, PRINCIPLES, ["m"] * 4, ["a"] * 4, ["b"] * 4, batch_size=3,
                                         progress=False)
    assert texts == ["A", "Reply B", "A and B", "neither"]
    assert verdicts == ["A", "B", None, None]
    assert agreement([None if v is None else "AB".index(v) for v in verdicts], [0, 1, 0, 0])["unlabelled"] == 2


def test_principle_margins_read_yes_minus_no(tiny):
    model, tok = tiny
    m = principle_margins(model, tok, PRINCIPLES[0], ["m1", "m2"], ["r1", "r2"])
    assert m.shape == (2,) and np.isfinite(m).all()
    from course_lib.llm.generation import chat_prompt

    logits = next_token_logits(model, tok, [chat_prompt(tok, critique_message(PRINCIPLES[0], "m1", "r1"))])
    yes, no = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("Yes", "No"))
    assert m[0] == pytest.approx(float(logits[0, yes] - logits[0, no]), abs=1e-4)


# ---- critique and revise -------------------------------------------------------------------------------------


def test_revise_config_validates_and_presets_exist():
    assert set(REVISE_PRESETS) == {"ci", "cpu", "gpu"}
    with pytest.raises(ValueError, match=r"critique_tokens: expected an int >= 1, got 0"):
        ReviseConfig(critique_tokens=0)
    with pytest.raises(ValueError, match=r"temperature: expected a float in \[0, inf\) \(0 decodes greedily\)"):
        ReviseConfig(temperature=-1.0)


def test_critique_and_revise_uses_principles_in_turn_and_feeds_the_critique_to_the_revision(tiny, monkeypatch):
    model, tok = tiny
    import course_lib.llm.judge as judge

    seen = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens, temperature, seed):
        seen.append(list(prompts))
        if len(seen) == 1:
            return [f"critique {i}" for i in range(len(prompts))]
        return ['Revised reply: "new"' for _ in prompts]

    monkeypatch.setattr(judge, "generate", fake_generate)
    out = critique_and_revise(model, tok, ["m1", "m2", "m3"], ["r1", "r2", "r3"], PRINCIPLES,
                              ReviseConfig(batch_size=8), progress=False)
    assert [p.name for p in out.principles] == ["Kind", "Calm", "Kind"]
    assert out.critiques == ["critique 0", "critique 1", "critique 2"]
    assert out.revisions == ["new", "new", "new"]
    assert "Critique: critique 1" in seen[1][1] and "Avoid angry words." in seen[1][1]
    with pytest.raises(ValueError, match="replies: expected one per prompt"):
        critique_and_revise(model, tok, ["m1"], ["r1", "r2"], PRINCIPLES, progress=False)


def test_critique_and_revise_runs_on_the_tiny_model(tiny):
    model, tok = tiny
    out = critique_and_revise(model, tok, ["m1", "m2"], ["r1", "r2"], PRINCIPLES, REVISE_PRESETS["ci"],
                              progress=False)
    assert len(out.revisions) == 2 and set(out.seconds) == {"critique", "revise"}
