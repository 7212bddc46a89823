"""Supervised fine-tuning on the tiny model: the loss counts response tokens only, it falls, bad input is named;
and (slow) the SFT-then-RL pipeline in miniature: RLHF on a toy scorer raises the score of an SFT'd tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.llm.models import tiny_model
from course_lib.llm.ppo import RLHFConfig, rlhf_ppo
from course_lib.llm.rollout import PolicyWithValue, sample_responses
from course_lib.llm.sft import SFT_PRESETS, SFTConfig, sft, sft_loss

WORDS = [" cheese", " robot", " maze", " wall", " cat", " door", " lamp", " tree"]  # one token each


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


def word_stories(n: int, seed: int = 0, start: int = 0) -> tuple[list[str], list[str]]:
    """n prompts "Story i:" and n demonstrations of 6 words drawn uniformly from WORDS."""
    rng = np.random.default_rng(seed)
    return [f"Story {i}:" for i in range(start, start + n)], ["".join(rng.choice(WORDS, size=6)) for _ in range(n)]


def test_the_loss_is_the_mean_nll_of_the_response_tokens_only(tiny):
    model, tok = tiny
    prompts, responses = ["The robot", "A much longer prompt about a cat"], [" found cheese", " sat"]
    loss, n_tokens = sft_loss(model, tok, prompts, responses)
    # independent reference: score each (prompt + response) alone, unpadded, and keep the response's tokens
    nll, count = 0.0, 0
    with torch.no_grad():
        for p, r in zip(prompts, responses):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            r_ids = tok(r, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p_ids + r_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)  # (T-1, V)
            targets = ids[0, 1:]
            token_logp = logp[torch.arange(len(targets)), targets]
            nll -= float(token_logp[len(p_ids) - 1:].sum())
            count += len(r_ids)
    assert n_tokens == count
    assert loss.item() == pytest.approx(nll / count, rel=1e-5)


def test_sft_lowers_the_loss_and_learns_the_words(tiny):
    model, tok = tiny_model(seed=1)
    prompts, demos = word_stories(32)
    with torch.no_grad():
        before, _ = sft_loss(model, tok, prompts, [d + tok.eos_token for d in demos])
    logger = sft(model, tok, prompts, demos, SFTConfig(epochs=10, batch_size=16, learning_rate=3e-2), progress=False)
    steps, losses = logger.as_arrays("sft/loss")
    assert len(steps) == 10 * 2 and np.isfinite(losses).all()
    with torch.no_grad():
        after, _ = sft_loss(model, tok, prompts, [d + tok.eos_token for d in demos])
    # uniform over 8 words is ln 8 = 2.08 nats per word token; the untrained model is near ln(49k) = 10.8
    assert before.item() > 9 and after.item() < 3.5
    torch.manual_seed(0)
    texts = sample_responses(model, tok, word_stories(8, start=100)[0], max_new_tokens=6).texts
    words = [w for t in texts for w in t.split()]
    assert sum(f" {w}" in WORDS for w in words) / len(words) > 0.8, texts


def test_only_the_chosen_layers_train():
    model, tok = tiny_model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sft(model, tok, *word_stories(4), SFTConfig(epochs=1, batch_size=4, learning_rate=1e-2, trainable="top:1"),
        progress=False)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {k for k in before if k.startswith("model.layers.1.") or k == "model.norm.weight"}, moved


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs: expected an int >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size: expected an int >= 1, got 2.5"),
    ({"learning_rate": 2.0}, r"learning_rate: expected a float in \(0, 1\), got 2.0"),
    ({"trainable": "top"}, "trainable: expected 'all', 'top:N' or 'lora:R'"),
])
def test_config_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SFTConfig(**kwargs)


def test_bad_arguments_are_named(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match=r"demonstrations: expected one per prompt \(2 prompts, at least 1\), got 1"):
        sft(model, tok, ["a", "b"], ["x"], SFT_PRESETS["ci"], progress=False)
    with pytest.raises(ValueError, match="prompts, demonstrations: expected lists of strings, got a single string"):
        sft(model, tok, "a", "x", SFT_PRESETS["ci"], progress=False)
    with pytest.raises(ValueError, match="demonstrations: expected non-empty strings"):
        sft(model, tok, ["a"], ["  "], SFT_PRESETS["ci"], progress=False)
    with pytest.raises(ValueError, match="config: expected an SFTConfig"):
        sft(model, tok, ["a"], ["x"], {"epochs": 1}, progress=False)


def test_a_non_finite_loss_stops_training_and_names_the_step():
    model, tok = tiny_model(seed=3)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"epoch 0, step 0: the loss is nan"):
        sft(model, tok, *word_stories(4), SFT_PRESETS["ci"], progress=False)


def cheese_share(prompts, texts):
    """The toy scorer: the share of a response's words that are "cheese"."""
    return [t.split().count("cheese") / max(1, len(t.split())) for t in texts]


def held_out_score(model, tok, seed: int) -> float:
    torch.manual_seed(seed)
    texts = sample_responses(model, tok, word_stories(32, start=1000)[0], max_new_tokens=8).texts
    return float(np.mean(cheese_share(None, texts)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_rlhf_on_a_toy_scorer_raises_the_score_of_an_sft_tiny_model(seed):
    """The pipeline in miniature. SFT teaches the tiny model to write words from WORDS, about uniformly, so
    "cheese" is 1/8 of the words; PPO with the toy scorer then makes it the policy's favourite. Measured
    (seed 0): held-out share 0.13 before, 0.99 after 30 steps; about 25 s on 2 cores."""
    model, tok = tiny_model(seed=seed)
    prompts, demos = word_stories(64, seed=seed)
    sft(model, tok, prompts, demos, SFTConfig(epochs=20, batch_size=16, learning_rate=3e-2), seed=seed,
        progress=False)
    before = held_out_score(model, tok, seed)
    assert 0.05 < before < 0.25, before  # SFT learned the words about uniformly: 1/8 = 0.125
    config = RLHFConfig(steps=30, batch_size=8, max_new_tokens=8, learning_rate=1e-2, kl_coef=0.01)
    result = rlhf_ppo(PolicyWithValue(model), tok, prompts, cheese_share, config, seed=seed, progress=False)
    after = held_out_score(model, tok, seed)
    _, rewards = result.logger.as_arrays("rlhf/reward")
    _, kl = result.logger.as_arrays("rlhf/kl")
    assert after > before + 0.4 and after > 0.6, (before, after)
    assert rewards[-5:].mean() > rewards[:5].mean() + 0.3 and kl[-1] > 0, (rewards, kl)
