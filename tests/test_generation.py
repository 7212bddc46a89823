"""Chat formatting, batched generation and per-token log-probs, on the tiny model."""

from __future__ import annotations

import pytest
import torch

from course_lib.llm.generation import (
    chat_prompt,
    completion_logprobs,
    encode_completions,
    generate,
    next_token_distribution,
    shared_prompt_logprobs,
    top_k_next_tokens,
)
from course_lib.llm.models import tiny_model
from course_lib.rl import masked_sum

PROMPTS = ["Hello there, how are", "A much longer prompt about a robot looking for cheese in a maze:"]
COMPLETIONS = [" you today?", " it turns left."]


def test_chat_prompt_uses_the_template(tokenizer):
    text = chat_prompt(tokenizer, "Hi!")
    assert text.startswith("<|im_start|>system") and "<|im_start|>user\nHi!<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    custom = chat_prompt(tokenizer, "Hi!", system="Be brief.")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in custom
    with pytest.raises(ValueError, match="message: expected a str or a list"):
        chat_prompt(tokenizer, 42)


def test_encode_completions_masks_exactly_the_completion(tokenizer):
    enc = encode_completions(tokenizer, PROMPTS, COMPLETIONS)
    B, T = enc.input_ids.shape
    assert enc.attention_mask.shape == enc.completion_mask.shape == (B, T)
    for b, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS)):
        n_c = len(tokenizer(c, add_special_tokens=False)["input_ids"])
        assert enc.completion_mask[b].sum() == n_c
        assert enc.completion_mask[b, -n_c:].all()  # completion at the right end
        assert tokenizer.decode(enc.input_ids[b][enc.completion_mask[b]]) == c
        assert tokenizer.decode(enc.input_ids[b][enc.attention_mask[b].bool()]) == p + c
    assert enc.attention_mask[0, 0] == 0  # the shorter row is padded on the left


def naive_completion_logprob(model, tokenizer, prompt, completion) -> float:
    """One sequence, no padding, an explicit loop over completion tokens."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + c_ids])
    logits = model(input_ids=ids).logits[0]  # (T, V)
    total = 0.0
    for i, tok in enumerate(c_ids):
        t = len(p_ids) + i  # position of this completion token
        total += torch.log_softmax(logits[t - 1].double(), dim=-1)[tok].item()
    return total


def test_completion_logprobs_match_the_naive_loop(tiny):
    model, tok = tiny
    logp, mask = completion_logprobs(model, tok, PROMPTS, COMPLETIONS)
    assert logp.shape == mask.shape and logp.dim() == 2
    per_seq = masked_sum(logp, mask, dim=-1)
    for b in range(len(PROMPTS)):
        assert per_seq[b].item() == pytest.approx(naive_completion_logprob(model, tok, PROMPTS[b], COMPLETIONS[b]),
                                                  abs=1e-4)


def test_left_padding_does_not_change_logprobs(tiny):
    model, tok = tiny
    logp, mask = completion_logprobs(model, tok, PROMPTS, COMPLETIONS)
    for b in range(len(PROMPTS)):
        alone, alone_mask = completion_logprobs(model, tok, [PROMPTS[b]], [COMPLETIONS[b]])
        torch.testing.assert_close(logp[b][mask[b]], alone[0][alone_mask[0]], atol=1e-5, rtol=1e-5)


def test_generate_greedy_is_deterministic_and_batched(tiny):
    model, tok = tiny
    one = generate(model, tok, PROMPTS, max_new_tokens=5)
    assert len(one) == 2 and all(isinstance(t, str) for t in one)
    assert generate(model, tok, PROMPTS, max_new_tokens=5) == one
    assert generate(model, tok, PROMPTS[1:], max_new_tokens=5) == one[1:]  # padding does not matter
    sampled = generate(model, tok, PROMPTS, max_new_tokens=5, temperature=1.0, seed=3)
    assert generate(model, tok, PROMPTS, max_new_tokens=5, temperature=1.0, seed=3) == sampled


@pytest.mark.parametrize(
    "kwargs, message",
    [({"prompts": "just a string"}, "prompts: expected a non-empty list of str"),
     ({"prompts": []}, "prompts: expected a non-empty list of str"),
     ({"max_new_tokens": 0}, "max_new_tokens: expected an int >= 1, got 0"),
     ({"temperature": -1.0}, r"temperature: expected a float in \[0, inf\) \(0 decodes greedily\), got -1.0"),
     ({"temperature": float("nan")}, r"temperature: expected a float in \[0, inf\) \(0 decodes greedily\), got nan")],
)
def test_generate_rejects_bad_input(tiny, kwargs, message):
    model, tok = tiny
    args = {"prompts": PROMPTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, tok, **args)


def test_completion_count_must_match(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="completions: expected 2 .one per prompt., got 1"):
        completion_logprobs(model, tok, PROMPTS, COMPLETIONS[:1])


def test_top_k_next_tokens_and_distribution(tiny):
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0])
    probs, ids = top_k_next_tokens(logits, 2)
    assert ids.tolist() == [1, 3]
    torch.testing.assert_close(probs, torch.softmax(logits, -1)[[1, 3]])
    with pytest.raises(ValueError, match=r"k: expected an int in \[1, 4\], got 5"):
        top_k_next_tokens(logits, 5)
    with pytest.raises(ValueError, match="temperature: expected a float > 0, got 0"):
        top_k_next_tokens(logits, 2, temperature=0)
    model, tok = tiny
    pairs = next_token_distribution(model, tok, "Hello", k=4)
    assert len(pairs) == 4 and all(isinstance(t, str) for t, _ in pairs)
    assert [p for _, p in pairs] == sorted((p for _, p in pairs), reverse=True)


def test_shared_prompt_logprobs_equal_the_plain_encoding_values_and_gradients():
    model, tok = tiny_model(seed=3)
    prompts = ["Tell me a story.", "Hi", "Tell me a story.", "Hi", "A much longer prompt than the others here."]
    completions = ["Once upon a time.", "Hello there, friend!", "No.", "Hey", "Fine"]  # shared and distinct prompts

    def sums(fn):
        model.zero_grad()
        logp, mask = fn(model, tok, prompts, completions)
        seq = masked_sum(logp, mask, dim=-1)  # (N,)
        (seq * torch.arange(1.0, 6.0)).sum().backward()
        return seq.detach(), [p.grad.clone() for p in model.parameters()]

    plain, plain_grads = sums(completion_logprobs)
    shared, shared_grads = sums(shared_prompt_logprobs)
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(shared_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    logp, mask = shared_prompt_logprobs(model, tok, prompts, completions)
    assert mask.sum(-1).tolist() == [len(tok(c, add_special_tokens=False)["input_ids"]) for c in completions]
    assert logp.shape == mask.shape


def test_shared_prompt_logprobs_reject_empty_texts_and_mismatched_lengths():
    model, tok = tiny_model()
    with pytest.raises(ValueError, match="at least one token"):
        shared_prompt_logprobs(model, tok, ["Hi"], [""])
    with pytest.raises(ValueError, match="completions: expected 2"):
        shared_prompt_logprobs(model, tok, ["Hi", "Yo"], ["a"])
