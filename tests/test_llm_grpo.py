"""GRPO on the tiny model: group advantages, the token loss and its normalisations, gradients, the loop, guards."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from course_lib.llm.grpo import GRPO_PRESETS, LOSS_NORMS, GRPOConfig, grpo, grpo_token_loss
from course_lib.llm.models import tiny_model
from course_lib.llm.rollout import response_outputs, sample_responses
from course_lib.rl import clipped_surrogate, group_advantages
from course_lib.utils.metrics import METRICS
from conftest import changed, lowercase_share, snapshot

PROMPTS = ["The robot", "The cat", "Cheese is", "A maze"]
ONE_STEP = replace(GRPO_PRESETS["ci"], steps=1, prompts_per_step=2, group_size=4, max_new_tokens=4,
                   learning_rate=1e-2)


# ---------------------------------------------------------------- group advantages


@pytest.mark.parametrize("scale", [True, False])
def test_group_advantages_have_zero_mean_per_group(scale):
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 1.5, 0.0, 0.0], [3.0, -1.0, 2.0, 0.5]])  # (B=3, G=4)
    adv = group_advantages(rewards, scale=scale)
    assert adv.shape == (3, 4)
    torch.testing.assert_close(adv.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
    if scale:  # unit (Bessel-corrected, as TRL) std per group, up to eps
        torch.testing.assert_close(adv.std(dim=1), torch.ones(3), atol=1e-3, rtol=0)
        torch.testing.assert_close(adv[0], torch.tensor([1.0, -1.0, -1.0, 1.0]) * math.sqrt(3 / 4), atol=1e-3, rtol=0)
    else:
        torch.testing.assert_close(adv[1], torch.tensor([0.0, 1.0, -0.5, -0.5]))


def test_group_advantages_divide_by_the_bessel_corrected_std():
    """(r - mean) / (std + 1e-4) with the std divided by G - 1, written as a loop over groups and completions."""
    g = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 3, (5, 6), generator=g).float() / 2  # (B=5, G=6) in {0, 0.5, 1}
    adv = group_advantages(rewards)
    for b, row in enumerate(rewards.tolist()):
        G = len(row)
        mean = sum(row) / G
        std = (sum((r - mean) ** 2 for r in row) / (G - 1)) ** 0.5
        for i, r in enumerate(row):
            assert adv[b, i].item() == pytest.approx((r - mean) / (std + 1e-4), abs=1e-5)


def test_group_advantages_equal_trls_grpo_trainer():
    """TRL's GRPOTrainer (lesson 16) scales by ``nanstd`` (Bessel-corrected) of each group plus 1e-4."""
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd
    B, G = 3, 4
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])  # (B, G)
    flat = rewards.reshape(B * G)  # TRL's layout: group by group
    mean = flat.view(-1, G).mean(dim=1).repeat_interleave(G)  # (B*G,)
    std = nanstd(flat.view(-1, G), dim=1).repeat_interleave(G)  # (B*G,)
    trl_advantages = (flat - mean) / (std + 1e-4)  # grpo_trainer.py, scale_rewards="group"
    torch.testing.assert_close(group_advantages(rewards).reshape(B * G), trl_advantages)
    assert group_advantages(rewards)[0, 0].item() == pytest.approx(1.5, abs=1e-3)  # 0.75 / 0.5


def test_a_group_with_identical_rewards_gets_zero_advantages():
    adv = group_advantages(torch.tensor([[0.5, 0.5, 0.5], [0.0, 1.0, 1.0]]))
    assert torch.equal(adv[0], torch.zeros(3)) and adv[1].abs().min() > 0.5


def sampled_batch(tiny, G=4, R=6, seed=0):
    lm, tok = tiny
    torch.manual_seed(seed)
    return sample_responses(lm, tok, [p for p in PROMPTS[:2] for _ in range(G)], R, temperature=1.0)


def grads(lm, samples, advantages, loss_norm="sequence"):
    lm.zero_grad()
    logp = response_outputs(lm, samples, with_values=False).logp  # (N, R)
    loss, _ = grpo_token_loss(logp, logp.detach(), advantages, samples.response_mask, loss_norm=loss_norm)
    loss.backward()
    out = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in lm.named_parameters()}
    lm.zero_grad()
    return out


def test_a_group_with_identical_rewards_contributes_no_gradient(tiny):
    lm, _ = tiny
    samples = sampled_batch(tiny)  # 2 prompts x G = 4 responses
    same = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])  # every group solved by every sample
    g_same = grads(lm, samples, group_advantages(same).reshape(-1))
    assert all(torch.count_nonzero(g) == 0 for g in g_same.values())

    mixed = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])  # group 0 all wrong, group 1 mixed
    g_mixed = grads(lm, samples, group_advantages(mixed).reshape(-1))
    # the same gradient as from group 1 alone: group 0's four responses add nothing
    second = torch.arange(4, 8)
    sub = type(samples)(samples.input_ids[second], samples.attention_mask[second], samples.response_mask[second],
                        samples.prompt_length, samples.texts[4:])
    g_alone = grads(lm, sub, group_advantages(mixed[1:]).reshape(-1))
    assert any(torch.count_nonzero(g) > 0 for g in g_alone.values())
    for name in g_mixed:  # "sequence" averages over all 8 responses, the group alone over 4: a factor 1/2
        torch.testing.assert_close(g_mixed[name], 0.5 * g_alone[name], atol=1e-7, rtol=1e-4)


# ---------------------------------------------------------------- the token loss


def random_batch(seed=0, N=4, R=5):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(N, R, generator=g) * 3
    old = logp + 0.3 * torch.randn(N, R, generator=g)
    adv = torch.randn(N, generator=g)
    mask = torch.ones(N, R, dtype=torch.bool)
    for i, length in enumerate([5, 2, 3, 1][:N]):
        mask[i, length:] = False
    return logp, old, adv, mask


def test_token_normalisation_is_ppos_clipped_surrogate_with_broadcast_advantages():
    logp, old, adv, mask = random_batch()
    loss, info = grpo_token_loss(logp, old, adv, mask, 0.2, "token")
    ref, ref_info = clipped_surrogate(logp, old, adv[:, None].expand_as(logp), 0.2, mask=mask)
    torch.testing.assert_close(loss, ref)
    assert info["clipfrac"] == pytest.approx(ref_info["clipfrac"]) and info["clipfrac"] > 0
    assert info["approx_kl"] == pytest.approx(ref_info["approx_kl"])


def test_the_three_normalisations_against_loops():
    logp, old, adv, mask = random_batch(seed=1)
    N, R = logp.shape
    ratio = torch.exp(logp - old)
    term = torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
    lengths = [int(mask[i].sum()) for i in range(N)]
    per_seq = [sum(float(term[i, t]) for t in range(lengths[i])) for i in range(N)]
    expected = {"sequence": -sum(s / n for s, n in zip(per_seq, lengths)) / N,
                "token": -sum(per_seq) / sum(lengths), "constant": -sum(per_seq) / (N * 8)}
    for norm in LOSS_NORMS:
        loss, _ = grpo_token_loss(logp, old, adv, mask, 0.2, norm, max_new_tokens=8)
        assert float(loss) == pytest.approx(expected[norm], rel=1e-5), norm



def test_the_normalisations_weigh_a_token_by_its_response_length():
    """d loss / d logp_t at ratio 1: -A_i / (N |o_i|) (sequence), -A_i / sum |o| (token), -A_i / (N R) (constant)."""
    N, R = 2, 6
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])  # a long and a short response
    adv = torch.tensor([-1.0, -1.0])  # both wrong
    for norm, weights in (("sequence", [1 / (2 * 6), 1 / (2 * 2)]), ("token", [1 / 8, 1 / 8]),
                          ("constant", [1 / 12, 1 / 12])):
        logp = torch.full((N, R), -1.0, requires_grad=True)
        loss, _ = grpo_token_loss(logp, logp.detach(), adv, mask, loss_norm=norm)
        loss.backward()
        torch.testing.assert_close(logp.grad[0, 0], torch.tensor(weights[0]))  # pushed down by this much per token
        torch.testing.assert_close(logp.grad[1, 0], torch.tensor(weights[1]))
        assert torch.count_nonzero(logp.grad[1, 2:]) == 0  # padding gets no gradient
    # under "sequence" a wrong token of the long response is pushed down 3 times less: GRPO's length bias


def test_the_k3_term_is_zero_at_the_reference_and_positive_away_from_it():
    logp, old, adv, mask = random_batch(seed=2)
    base, _ = grpo_token_loss(logp, old, adv, mask)
    same, info = grpo_token_loss(logp, old, adv, mask, ref_logp=logp.clone(), kl_coef=0.5)
    torch.testing.assert_close(same, base)
    assert info["kl"] == pytest.approx(0.0, abs=1e-7)
    away, info = grpo_token_loss(logp, old, adv, mask, ref_logp=logp - 0.5, kl_coef=0.5)
    assert info["kl"] > 0 and float(away) > float(base)  # the penalty adds to the loss
    with pytest.raises(ValueError, match="ref_logp: expected shape"):
        grpo_token_loss(logp, old, adv, mask, kl_coef=0.1)


def test_the_loss_rejects_bad_shapes_and_names():
    logp, old, adv, mask = random_batch()
    with pytest.raises(ValueError, match=r"advantages: expected shape \(4,\), one per response, got \(4, 5\)"):
        grpo_token_loss(logp, old, adv[:, None].expand_as(logp), mask)
    with pytest.raises(ValueError, match="loss_norm: expected one of"):
        grpo_token_loss(logp, old, adv, mask, loss_norm="mean")


def test_one_update_raises_the_log_prob_of_the_better_response(tiny):
    """A deterministic direction check: after one small step, the above-average response of each group is
    more likely and the below-average one less likely than before."""
    lm, tok = tiny
    lm = __import__("copy").deepcopy(lm)
    samples = sampled_batch((lm, tok), G=2, R=5, seed=3)
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    adv = group_advantages(rewards).reshape(-1)
    mask = samples.response_mask
    with torch.no_grad():
        before = (response_outputs(lm, samples, with_values=False).logp * mask).sum(1)  # (4,)
    opt = torch.optim.SGD(lm.parameters(), lr=1e-2)
    logp = response_outputs(lm, samples, with_values=False).logp
    loss, _ = grpo_token_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = (response_outputs(lm, samples, with_values=False).logp * mask).sum(1)
    delta = after - before
    assert delta[0] > 0 and delta[3] > 0 and delta[1] < 0 and delta[2] < 0, delta


# ---------------------------------------------------------------- the loop


def test_a_step_trains_only_the_top_layers_and_builds_no_reference_without_kl():
    lm, tok = tiny_model(seed=0)
    before = snapshot(lm)
    result = grpo(lm, tok, PROMPTS, lowercase_share, replace(ONE_STEP, trainable="top:1"), progress=False)
    moved = changed(before, lm)
    assert moved and all(k.startswith(("model.layers.1.", "model.norm.")) for k in moved), moved
    assert result.reference is None
    assert len(result.samples) == 8 and result.samples[0][0] == result.samples[3][0]  # G = 4 per prompt


def test_with_kl_the_reference_is_frozen_and_the_kl_is_logged():
    lm, tok = tiny_model(seed=0)
    before = snapshot(lm)
    config = replace(ONE_STEP, steps=2, kl_coef=0.1, update_epochs=2)
    result = grpo(lm, tok, PROMPTS, lowercase_share, config, progress=False)
    assert changed(before, lm)
    assert all(torch.equal(v, before[k]) for k, v in result.reference.state_dict().items())
    assert all(not p.requires_grad for p in result.reference.parameters())
    kl = [v for _, v in result.logger.history["grpo/kl"]]
    assert kl[0] >= 0 and kl[-1] > 0  # the policy moved away from the reference


def test_the_logged_metrics():
    lm, tok = tiny_model(seed=0)
    result = grpo(lm, tok, PROMPTS, lowercase_share, ONE_STEP, progress=False,
                  extra_metrics={"accuracy": lambda p, t: [1.0] * len(t)})
    names = set(result.logger.names())
    assert names == {"grpo/reward_mean", "grpo/reward_std", "grpo/zero_std_share", "grpo/response_length",
                     "grpo/accuracy", "grpo/kl", "losses/policy_loss", "losses/clipfrac", "losses/approx_kl"}
    assert names <= set(METRICS), f"not in the course's glossary: {sorted(names - set(METRICS))}"
    assert result.logger.last("grpo/accuracy") == 1.0
    assert result.logger.last("losses/clipfrac") == 0.0  # one update per batch: the ratio is 1, no clipping
    assert 0 <= result.logger.last("grpo/zero_std_share") <= 1


def test_the_logged_reward_std_is_the_std_the_advantages_divide_by():
    lm, tok = tiny_model(seed=0)
    G = ONE_STEP.group_size

    def one_right_per_group(prompts, texts):
        return [float(i % G == 0) for i in range(len(texts))]  # each group's rewards: 1, 0, 0, 0

    result = grpo(lm, tok, PROMPTS, one_right_per_group, ONE_STEP, progress=False)
    # Bessel-corrected std of (1, 0, 0, 0): sqrt(0.75 / 3) = 0.5 (the population std would be 0.433)
    assert result.logger.last("grpo/reward_std") == pytest.approx(0.5, rel=1e-5)
    assert result.logger.last("grpo/zero_std_share") == 0.0


def test_a_constant_reward_leaves_the_model_unchanged():
    lm, tok = tiny_model(seed=0)
    before = snapshot(lm)
    result = grpo(lm, tok, PROMPTS, lambda p, t: [1.0] * len(t), ONE_STEP, progress=False)
    assert not changed(before, lm)  # every group has zero spread: no advantage, no gradient (Adam moves nothing)
    assert result.logger.last("grpo/zero_std_share") == 1.0


def test_the_reward_rises_on_a_toy_task():
    """Reward 1 when the response starts with a space, which the random tiny model's first token does with
    probability 0.65. Ten GRPO steps on the whole model raise that probability (computed exactly from the
    next-token distribution, not sampled), on average over four training seeds; a run can stall (one of the
    four does), and the sampled numerics differ with the thread count, so no single run is asserted."""
    lm, tok = tiny_model(seed=0)
    space = torch.tensor([tok.decode([i]).startswith(" ") for i in range(len(tok))])  # (V,)
    batch = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)

    def p_space(model) -> float:
        with torch.no_grad():
            logits = model(**batch, position_ids=positions).logits[:, -1]  # (B, V): the first response token
        return float(torch.softmax(logits, dim=-1)[:, space].sum(-1).mean())

    def starts_with_space(prompts, texts):
        return [float(t.startswith(" ")) for t in texts]

    config = replace(GRPO_PRESETS["ci"], steps=10, prompts_per_step=4, group_size=8, max_new_tokens=4,
                     learning_rate=0.3, divergence_kl=None)  # a random model at lr 0.3 moves 1-2 nats per update
    before = p_space(lm)
    after = []
    for seed in range(4):
        model = tiny_model(seed=0)[0]
        grpo(model, tok, PROMPTS, starts_with_space, config, seed=seed, progress=False)
        after.append(p_space(model))
    assert sum(after) / 4 > before + 0.15, (before, after)
    assert sum(a > 0.95 for a in after) >= 2, (before, after)


def test_a_non_finite_reward_stops_training_and_names_the_step():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(FloatingPointError, match=r"step 0: reward_fn returned \[nan"):
        grpo(lm, tok, PROMPTS, lambda p, t: [math.nan] * len(t), ONE_STEP, progress=False)


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "steps: expected an int >= 1, got 0"),
    ("group_size", 1, "group_size: expected an int >= 2, got 1"),
    ("prompts_per_step", 2.0, "prompts_per_step: expected an int >= 1, got 2.0"),
    ("temperature", 0.0, "temperature: expected a float > 0, got 0.0"),
    ("clip_eps", 1.0, "clip_eps: expected a float in (0, 1), got 1.0"),
    ("kl_coef", -0.1, "kl_coef: expected a float >= 0, got -0.1"),
    ("loss_norm", "mean", "loss_norm: expected one of ('sequence', 'token', 'constant'), got 'mean'"),
    ("scale_advantages", 1, "scale_advantages: expected True or False, got 1"),
    ("trainable", "top:0", "trainable: expected 'all', 'top:N' or 'lora:R'"),
])
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ValueError) as err:
        replace(GRPOConfig(), **{field: value})
    assert message in str(err.value)


def test_bad_arguments_are_rejected():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(ValueError, match=r"prompts: expected at least prompts_per_step \(2\) non-empty strings, got 1"):
        grpo(lm, tok, PROMPTS[:1], lowercase_share, ONE_STEP)
    with pytest.raises(ValueError, match="config: expected a GRPOConfig"):
        grpo(lm, tok, PROMPTS, lowercase_share, {"steps": 1})
