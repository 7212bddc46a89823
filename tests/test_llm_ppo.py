"""RLHF with PPO on the tiny model: which parameters move, the frozen reference, guards, logged metrics."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from course_lib.llm.evaluation import distinct_n
from course_lib.llm.finetune import count_parameters
from course_lib.llm.models import tiny_model
from course_lib.llm.ppo import RLHF_PRESETS, RLHFConfig, rlhf_ppo, select_trainable
from course_lib.llm.rollout import PolicyWithValue
from conftest import changed, lowercase_share, snapshot

PROMPTS = ["The robot", "The cat", "Cheese is", "A maze"]
ONE_STEP = replace(RLHF_PRESETS["ci"], steps=1, batch_size=2, max_new_tokens=4, update_epochs=1, learning_rate=1e-2)


def test_a_step_trains_only_the_top_layers_and_leaves_the_reference_untouched():
    lm, tok = tiny_model(seed=0)
    policy = PolicyWithValue(lm)
    before = snapshot(policy)
    result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, replace(ONE_STEP, trainable="top:1"), progress=False)
    moved = changed(before, policy)
    assert any(k.startswith("lm.model.layers.1.") for k in moved) and "value_head.weight" in moved
    assert not any(k.startswith("lm.model.layers.0.") or "embed_tokens" in k for k in moved)
    ref_state = result.reference.state_dict()
    assert all(torch.equal(ref_state[k], before["lm." + k]) for k in ref_state)
    assert all(not p.requires_grad for p in result.reference.parameters())


def test_full_training_moves_the_embeddings_but_never_the_reference():
    lm, tok = tiny_model(seed=0)
    policy = PolicyWithValue(lm)
    before = snapshot(policy)
    result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, ONE_STEP, progress=False)
    assert "lm.model.embed_tokens.weight" in changed(before, policy)
    assert result.skipped_minibatches == 0  # an honest policy's ratios stay far below max_ratio
    assert all(torch.equal(v, before["lm." + k]) for k, v in result.reference.state_dict().items())


def test_lora_trains_only_the_adapters_and_the_value_head_and_starts_as_the_model():
    lm, tok = tiny_model(seed=0)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits_before = lm(input_ids=ids).logits
    policy = PolicyWithValue(lm)
    params = select_trainable(policy, "lora:2")
    trainable, total = count_parameters(policy)
    assert trainable == sum(p.numel() for p in params) and 0 < trainable < total / 10
    names = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n or n.startswith("value_head.") for n in names), names
    with torch.no_grad():  # B starts at zero: the adapted model computes exactly what the base model did
        torch.testing.assert_close(lm(input_ids=ids).logits, logits_before)
    before = snapshot(policy)
    result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, replace(ONE_STEP, trainable="lora:2"), progress=False)
    moved = changed(before, policy)
    assert moved and all("lora_B" in k or "lora_A" in k or k.startswith("value_head.") for k in moved), moved
    assert any("lora_B" in k for k in moved)
    ref_state = result.reference.state_dict()  # copied with the adapters at B = 0: the plain model, untouched
    assert all(torch.equal(v, before["lm." + k]) for k, v in ref_state.items())
    assert all(not v.any() for k, v in ref_state.items() if "lora_B" in k)
    # a second run continues the same adapters; a different rank is refused
    assert select_trainable(policy, "lora:2") == params
    with pytest.raises(ValueError, match=r"trainable: the model already has LoRA adapters of rank \[2\], got 'lora:4'"):
        select_trainable(policy, "lora:4")


def test_the_logged_metrics_are_the_documented_ones():
    from course_lib.utils.metrics import METRICS

    lm, tok = tiny_model(seed=0)
    result = rlhf_ppo(PolicyWithValue(lm), tok, PROMPTS, lowercase_share, ONE_STEP, gold_fn=lowercase_share,
                      progress=False)
    names = set(result.logger.names())
    assert {"rlhf/reward", "rlhf/gold_score", "rlhf/kl", "rlhf/response_length", "rlhf/eos_rate",
            "rlhf/distinct_2", "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
            "losses/clipfrac"} <= names <= set(METRICS)
    assert result.logger.last("rlhf/kl") == pytest.approx(0.0, abs=1e-5)  # sampled before any update
    assert len(result.samples) == 2 and all(isinstance(t, str) for _, t, _ in result.samples)


def test_a_non_finite_score_stops_training_and_names_the_step():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(FloatingPointError, match=r"step 0: reward_fn returned \[nan, nan\]"):
        rlhf_ppo(PolicyWithValue(lm), tok, PROMPTS, lambda p, t: [math.nan] * len(t), ONE_STEP, progress=False)


class StaleOldLogprobs(PolicyWithValue):
    """A policy whose no-training forwards (the old log-probs of step 3) lower every sampled token's logit by
    1000: log pi_old of each response token is then about -2000 nats at temperature 0.5, so the update's ratio
    exp(log pi - log pi_old) overflows to inf on every token. Sampling uses ``.lm`` directly and is unchanged."""

    def forward(self, input_ids, attention_mask, logits_from=0):
        logits, values = super().forward(input_ids, attention_mask, logits_from)  # (B, T - f, V), (B, T)
        if not self.training:
            taken = input_ids[:, logits_from + 1:].unsqueeze(-1)  # (B, T - f - 1, 1): the token each position chose
            logits = logits.clone()
            logits[:, :-1].scatter_add_(2, taken, logits.new_full(taken.shape, -1000.0))
        return logits, values


def test_ratio_outliers_skip_the_minibatch():
    lm, tok = tiny_model(seed=0)
    policy = StaleOldLogprobs(lm)
    before = snapshot(policy)
    config = replace(ONE_STEP, temperature=0.5, num_minibatches=2,  # one epoch of 2 minibatches of one response
                     divergence_kl=None)  # the stale log-probs also look like a huge KL: only the ratio guard here
    with pytest.warns(UserWarning, match="the mean KL to the reference is -"):  # log pi_old - log pi_ref < 0
        result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, config, progress=False)
    assert result.skipped_minibatches == 2
    assert not changed(before, policy)  # no optimiser step at all
    assert "losses/policy_loss" not in result.logger.names()  # nothing was trained on, so nothing logged
    assert result.stopped_early == []


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size: expected an int >= 1, got 0"),
    ("num_minibatches", 3, "num_minibatches: expected a divisor of batch_size (8), got 3"),
    ("temperature", 0.0, "temperature: expected a float > 0, got 0.0"),
    ("kl_coef", -0.1, "kl_coef: expected a float >= 0, got -0.1"),
    ("max_ratio", 1.0, "max_ratio: expected a float > 1, got 1.0"),
    ("trainable", "top:0", "trainable: expected 'all', 'top:N' or 'lora:R' with N, R >= 1"),
    ("trainable", "lora", "trainable: expected 'all', 'top:N' or 'lora:R'"),
])
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ValueError) as err:
        replace(RLHFConfig(), **{field: value})
    assert message in str(err.value)


def test_bad_arguments_are_rejected():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(ValueError, match="policy: expected a PolicyWithValue"):
        rlhf_ppo(lm, tok, PROMPTS, lowercase_share, ONE_STEP)
    with pytest.raises(ValueError, match=r"prompts: expected at least batch_size \(2\) non-empty strings, got 1"):
        rlhf_ppo(PolicyWithValue(lm), tok, PROMPTS[:1], lowercase_share, ONE_STEP)
    with pytest.raises(ValueError, match=r"trainable: expected 'top:N' with 1 <= N <= 2 layers, got 'top:5'"):
        select_trainable(PolicyWithValue(lm), "top:5")


def test_distinct_2_counts_unique_word_pairs():
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert distinct_n(["one"], 2) == 0.0
