"""DPO's training loop on the tiny model: ln 2 at the start, a hand computation, only response tokens counted,
the margin grows on a separable toy set, bad config values are named, NaN stops the run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm.dpo import (
    DPO_PRESETS,
    DPOConfig,
    pair_logps,
    preference_metrics,
    reference_logps,
    train_dpo,
)
from course_lib.llm.generation import sequence_token_logprobs
from course_lib.llm.models import tiny_model

PAIRS = [PreferencePair("Tell me about the robot.", " It found the cheese.", " No."),
         PreferencePair("A much longer prompt about a cat and a lever", " Food!", " The cat sat on the mat all day."),
         PreferencePair("Hi", " Hello there, friend", " Go away")]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


def unpadded_response_logp(model, tok, prompt: str, response: str) -> float:
    """Independent reference: prompt + response alone (no padding), log-probs of the response's tokens summed.

    A response given as text is a finished reply: its tokens, then EOS (as TRL's DPOTrainer treats text)."""
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p_ids + r_ids])  # (1, T)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)  # (T-1, V)
    targets = ids[0, 1:]  # (T-1,)
    token_logp = logp[torch.arange(len(targets)), targets]  # (T-1,): entry t scores token t + 1
    return float(token_logp[len(p_ids) - 1:].sum())  # the response's tokens: positions len(p_ids) .. T-1


def test_pair_logps_sum_the_response_tokens_only_and_ignore_padding(tiny):
    model, tok = tiny
    with torch.no_grad():
        chosen, rejected = pair_logps(model, tok, PAIRS)  # (3,) each, batched with left padding
    for i, pair in enumerate(PAIRS):
        assert chosen[i].item() == pytest.approx(unpadded_response_logp(model, tok, pair.prompt, pair.chosen), abs=1e-4)
        assert rejected[i].item() == pytest.approx(unpadded_response_logp(model, tok, pair.prompt, pair.rejected),
                                                   abs=1e-4)
    # the prompt's own tokens do not enter: the whole text's log-prob is lower by the prompt's part, which is large
    pair = PAIRS[1]
    ids = torch.tensor([tok(pair.prompt + pair.chosen, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        whole = float(sequence_token_logprobs(model, ids, torch.ones_like(ids)).sum())  # every token after the first
    assert whole < chosen[1].item() - 5.0


def test_the_pad_token_id_and_right_padding_change_nothing(tiny):
    model, tok = tiny
    with torch.no_grad():
        left = torch.stack(pair_logps(model, tok, PAIRS))  # (2, 3)
    # another pad token id: padded positions are masked, so nothing changes
    original = tok.pad_token_id
    try:
        tok.pad_token_id = 7
        with torch.no_grad():
            other_pad = torch.stack(pair_logps(model, tok, PAIRS))
    finally:
        tok.pad_token_id = original
    assert torch.allclose(left, other_pad, atol=1e-5)
    # right padding, built by hand: prompt + response first, padding after, the same masked sum
    p_ids = [tok(p.prompt, add_special_tokens=False)["input_ids"] for p in PAIRS]
    r_ids = [tok(p.chosen, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for p in PAIRS]  # finished
    T = max(len(a) + len(b) for a, b in zip(p_ids, r_ids))
    ids = torch.full((3, T), 5, dtype=torch.long)
    attn = torch.zeros((3, T), dtype=torch.long)
    resp = torch.zeros((3, T), dtype=torch.bool)
    for b, (a, r) in enumerate(zip(p_ids, r_ids)):
        ids[b, :len(a) + len(r)] = torch.tensor(a + r)
        attn[b, :len(a) + len(r)] = 1
        resp[b, len(a):len(a) + len(r)] = True
    with torch.no_grad():
        logp = sequence_token_logprobs(model, ids, attn)  # (3, T-1)
    right = (logp * resp[:, 1:]).sum(-1)  # (3,)
    assert torch.allclose(right, left[0], atol=1e-4)


def test_the_loss_is_log_2_at_the_first_step_and_matches_a_hand_computation(tiny):
    model, tok = tiny
    ref = reference_logps(model, tok, PAIRS, batch_size=2)  # (3,) each
    start = preference_metrics(model, tok, PAIRS, ref, beta=0.1)
    assert start["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert start["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    # the same pairs with made-up reference log-probs: the loss by hand from the policy's own log-probs
    with torch.no_grad():
        pol_c, pol_r = pair_logps(model, tok, PAIRS)
    fake_ref = (pol_c - torch.tensor([1.0, -2.0, 0.5]), pol_r + torch.tensor([0.5, 0.0, -1.0]))
    beta = 0.3
    z = [beta * (1.0 - (-0.5)), beta * (-2.0 - 0.0), beta * (0.5 - 1.0)]  # beta * (chosen - rejected log-ratio)
    by_hand = float(np.mean([math.log1p(math.exp(-x)) for x in z]))  # -log sigmoid(x)
    got = preference_metrics(model, tok, PAIRS, fake_ref, beta=beta)
    assert got["loss"] == pytest.approx(by_hand, abs=1e-4)
    assert got["accuracy"] == pytest.approx(1 / 3)
    assert got["reward_chosen"] == pytest.approx(beta * (1.0 - 2.0 + 0.5) / 3, abs=1e-4)
    # the training loop's first logged loss is ln 2 too (logged before the step changes anything)
    m, t = tiny_model(seed=0)
    result = train_dpo(m, t, PAIRS, DPOConfig(batch_size=3, learning_rate=1e-3), progress=False)
    assert result.logger.as_arrays("dpo/loss")[1][0] == pytest.approx(math.log(2), abs=1e-5)


def toy_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """A separable toy set: chosen responses say " cheese" words, rejected ones " wall" words."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        k = int(rng.integers(2, 5))
        pairs.append(PreferencePair(f"Story {i}:", " cheese" * k, " wall" * k))
    return pairs


def test_training_raises_the_margin_on_a_separable_toy_set():
    model, tok = tiny_model(seed=1)
    train, held = toy_pairs(16, seed=0), toy_pairs(8, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    held_ref = reference_logps(model, tok, held)
    config = DPOConfig(beta=0.5, epochs=4, batch_size=8, learning_rate=1e-2)
    result = train_dpo(model, tok, train, config, seed=0, progress=False)
    assert result.reference_seconds > 0 and len(result.step_seconds) == 8
    _, margins = result.logger.as_arrays("dpo/reward_margin")
    _, losses = result.logger.as_arrays("dpo/loss")
    assert margins[0] == pytest.approx(0.0, abs=1e-5) and margins[-1] > 1.0, margins
    assert losses[-1] < 0.3 < math.log(2), losses
    after = preference_metrics(model, tok, held, held_ref, beta=0.5)  # held-out pairs never trained on
    assert after["accuracy"] == 1.0 and after["reward_margin"] > 1.0, after
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the stored reference log-probs are reusable: phase 0 is skipped
    again = train_dpo(tiny_model(seed=1)[0], tok, train, config, seed=0, ref_logps=result.ref_logps, progress=False)
    assert again.reference_seconds == 0.0
    assert torch.allclose(torch.tensor(again.logger.as_arrays("dpo/loss")[1]), torch.tensor(losses), atol=1e-4)


def test_only_the_chosen_layers_train():
    model, tok = tiny_model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_dpo(model, tok, toy_pairs(4), DPOConfig(batch_size=4, learning_rate=1e-2, trainable="top:1"),
              progress=False)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {k for k in before if k.startswith("model.layers.1.") or k == "model.norm.weight"}, moved


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": 0.0}, "beta: expected a float > 0, got 0.0"),
    ({"beta": -1}, "beta: expected a float > 0, got -1"),
    ({"epochs": 0}, "epochs: expected an int >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size: expected an int >= 1, got 2.5"),
    ({"reference_batch_size": 0}, "reference_batch_size: expected an int >= 1, got 0"),
    ({"learning_rate": 1.5}, r"learning_rate: expected a float in \(0, 1\), got 1.5"),
    ({"max_grad_norm": 0}, "max_grad_norm: expected a float > 0, got 0"),
    ({"trainable": "top"}, "trainable: expected 'all', 'top:N' or 'lora:R'"),
])
def test_config_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPOConfig(**kwargs)


def test_presets_are_valid_and_bad_arguments_are_named(tiny):
    assert set(DPO_PRESETS) == {"ci", "cpu", "gpu"}
    model, tok = tiny
    with pytest.raises(ValueError, match="pairs: expected a non-empty list of PreferencePair"):
        train_dpo(model, tok, [], DPO_PRESETS["ci"], progress=False)
    with pytest.raises(ValueError, match=r"pairs\[1\]: expected a PreferencePair"):
        train_dpo(model, tok, [PAIRS[0], ("p", "c", "r")], DPO_PRESETS["ci"], progress=False)
    with pytest.raises(ValueError, match="config: expected a DPOConfig"):
        train_dpo(model, tok, PAIRS, {"beta": 0.1}, progress=False)
    with pytest.raises(ValueError, match=r"ref_logps: expected two tensors of shape \(3,\)"):
        train_dpo(model, tok, PAIRS, DPO_PRESETS["ci"], ref_logps=(torch.zeros(2), torch.zeros(2)), progress=False)


def test_a_non_finite_loss_stops_training_and_names_the_step():
    model, tok = tiny_model(seed=3)
    ref = reference_logps(model, tok, PAIRS)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"epoch 0, step 0: the loss is nan"):
        train_dpo(model, tok, PAIRS, DPO_PRESETS["ci"], ref_logps=ref, progress=False)
