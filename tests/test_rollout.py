"""The LLM in the token-level MDP: response masks, the log-prob shift, re-scoring, token rewards, the value head."""

from __future__ import annotations

import pytest
import torch

from course_lib.llm.models import tiny_model
from course_lib.llm.rollout import (
    PolicyWithValue,
    Samples,
    group_response_logprobs,
    response_outputs,
    sample_responses,
    sequence_kl,
    token_rewards,
)
from course_lib.llm.tokens import response_mask_from
from course_lib.rl import masked_sum

PROMPTS = ["The robot", "Once upon a time, in a maze far away,", "Cheese"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


def test_response_mask_stops_after_the_first_eos():
    eos = 2
    tokens = torch.tensor([[5, 6, 2, 2, 2], [2, 7, 8, 2, 9], [5, 6, 7, 8, 9]])
    expected = [[t <= (row.index(eos) if eos in row else 4) for t in range(5)] for row in tokens.tolist()]
    assert response_mask_from(tokens, eos).tolist() == expected
    assert expected[1] == [True, False, False, False, False]


def test_a_response_ended_when_an_eos_is_among_its_real_tokens():
    eos = 2
    responses = torch.tensor([[5, 6, 2, 2], [2, 7, 8, 9], [5, 6, 7, 8]])  # (B, R) after a prompt of P = 1
    samples = Samples(torch.cat([torch.ones(3, 1, dtype=torch.long), responses], dim=1), torch.ones(3, 5),
                      response_mask_from(responses, eos), 1, ["", "", ""])
    assert samples.ended(eos).tolist() == [True, True, False]


def test_sampled_log_probs_equal_a_rescoring_of_each_sequence_alone(tiny):
    """The batched, left-padded read-out at positions P-1..P+R-2 equals scoring prompt+response unpadded,
    token by token, at temperature 0.7: the shift and the padding are right."""
    model, tok = tiny
    torch.manual_seed(0)
    samples = sample_responses(model, tok, PROMPTS, max_new_tokens=6, temperature=0.7)
    logp, values, _ = response_outputs(model, samples, temperature=0.7, with_values=False)
    assert values is None and logp.shape == samples.response_mask.shape
    for b in range(len(PROMPTS)):
        real = samples.attention_mask[b].bool()
        ids = samples.input_ids[b][real].unsqueeze(0)  # (1, L) without padding
        n_resp = int(samples.response_mask[b].sum())
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0] / 0.7  # (L, V)
        by_hand = torch.log_softmax(logits[:-1], dim=-1).gather(-1, ids[0, 1:, None]).squeeze(-1)  # (L-1,)
        expected = by_hand[-n_resp:].sum()
        got = masked_sum(logp[b], samples.response_mask[b])
        assert got.item() == pytest.approx(expected.item(), abs=1e-4)


def test_samples_texts_and_masks_are_consistent(tiny):
    model, tok = tiny
    torch.manual_seed(1)
    samples = sample_responses(model, tok, PROMPTS, max_new_tokens=5, temperature=1.0)
    P = samples.prompt_length
    assert samples.input_ids.shape[0] == 3 and samples.responses.shape[1] <= 5
    assert torch.equal(samples.attention_mask[:, P:].bool(), samples.response_mask)
    assert len(samples.texts) == 3 and all(isinstance(t, str) for t in samples.texts)


def test_token_rewards_score_the_last_token_and_kl_every_response_token_only():
    scores = torch.tensor([1.5, -2.0])
    logp = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.2, -0.1, -9.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -1.0], [-0.4, -0.4, -1.0, -1.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    rewards, kl = token_rewards(scores, logp, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.2, 0.3, 0.0, 0.0]]))
    expected = torch.tensor([[-0.05, 0.1, 0.0 + 1.5, 0.0], [-0.02, -0.03 - 2.0, 0.0, 0.0]])
    assert torch.allclose(rewards, expected)
    assert torch.all(rewards[~mask] == 0)
    assert torch.allclose(sequence_kl(kl, mask), torch.tensor([-0.5, 0.5]))
    with pytest.raises(ValueError, match="kl_coef: expected a float >= 0, got -1"):
        token_rewards(scores, logp, ref, mask, kl_coef=-1)


def test_policy_with_value_gives_logits_and_values_in_one_forward(tiny):
    model, tok = tiny
    policy = PolicyWithValue(model)
    torch.manual_seed(2)
    samples = sample_responses(policy, tok, PROMPTS, max_new_tokens=4)
    logp, values, entropy = response_outputs(policy, samples, with_entropy=True)
    ref_logp, _, _ = response_outputs(model, samples, with_values=False)
    assert values.shape == logp.shape and torch.all(values == 0)  # the value head starts at zero
    assert torch.allclose(logp, ref_logp)  # same LM, same log-probs
    assert entropy.shape == logp.shape and torch.all(entropy > 0)


def test_bad_arguments_name_the_argument(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="temperature: expected a float > 0"):
        sample_responses(model, tok, PROMPTS, 4, temperature=0)
    with pytest.raises(ValueError, match="max_new_tokens: expected an int >= 1, got 0"):
        sample_responses(model, tok, PROMPTS, 0)
    with pytest.raises(ValueError, match="prompts: expected a non-empty list of str"):
        sample_responses(model, tok, "one prompt", 4)


def test_group_response_logprobs_equal_response_outputs_values_and_gradients():
    """Each prompt once on the KV cache for its G responses: the same log-probs and gradients as the full forward."""
    model, tok = tiny_model(seed=4)
    prompts = ["Short prompt", "A much longer prompt about a robot and some cheese"]
    G = 3
    torch.manual_seed(1)
    samples = sample_responses(model, tok, [p for p in prompts for _ in range(G)], max_new_tokens=7, temperature=0.8)
    mask = samples.response_mask
    weights = torch.arange(1.0, 7.0)[:, None]  # (N, 1): a different weight per response

    def run(fn):
        model.zero_grad()
        logp = fn()
        (masked_sum(logp * weights, mask)).backward()
        return logp.detach()[mask], [p.grad.clone() for p in model.parameters()]

    full, full_grads = run(lambda: response_outputs(model, samples, 0.8, with_values=False).logp)
    grouped, grouped_grads = run(lambda: group_response_logprobs(model, samples, G, 0.8))
    torch.testing.assert_close(grouped, full, rtol=1e-5, atol=1e-5)
    for a, b in zip(grouped_grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="group_size: expected an int >= 1 dividing the 6 responses, got 4"):
        group_response_logprobs(model, samples, 4)
    with pytest.raises(ValueError, match="share one prompt"):
        group_response_logprobs(model, samples, 6)
