"""Lesson 11's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.checks import lesson11
from course_lib.checks.core import CheckFailed, compare
from course_lib.checks.lesson11 import (
    EXERCISES,
    adaptive_kl_coef,
    beta_prediction,
    check_adaptive_kl_coef,
    check_kl_estimates,
    check_kl_penalty_rewards,
    check_rlhf_policy_loss,
    check_rlhf_ppo_step,
    check_whiten,
    kl_estimates,
    kl_penalty_rewards,
    rlhf_policy_loss,
    rlhf_ppo_step,
    tiny_rlhf_run,
    whiten,
)
from course_lib.rl import masked_whiten

# ---- the references agree with independent computations ---------------------------------------


def test_whiten_reference_has_mean_0_and_std_1_on_the_real_tokens_and_0_on_padding():
    for case in EXERCISES["whiten"].cases() + EXERCISES["whiten"].hidden_cases():
        advantages, mask = case.args
        out = whiten(advantages, mask)
        real = out[mask].double()
        assert abs(real.mean().item()) < 1e-5
        assert real.std(unbiased=True).item() == pytest.approx(1.0, rel=1e-4)
        assert torch.all(out[~mask] == 0)
        values = [float(advantages[b, t]) for b in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[b, t]]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        for b in range(mask.shape[0]):
            for t in range(mask.shape[1]):
                if mask[b, t]:
                    assert out[b, t].item() == pytest.approx((float(advantages[b, t]) - mean) / std, rel=1e-4, abs=1e-5)


def test_kl_estimates_reference_matches_loops():
    for case in EXERCISES["kl_estimates"].cases() + EXERCISES["kl_estimates"].hidden_cases():
        logp, ref_logp, mask = case.args
        k1, k3 = kl_estimates(logp, ref_logp, mask)
        assert k1.shape == k3.shape == (logp.shape[0],)
        for b in range(logp.shape[0]):
            rs = [float(ref_logp[b, t] - logp[b, t]) for t in range(logp.shape[1]) if mask[b, t]]
            assert k1[b].item() == pytest.approx(sum(-r for r in rs), rel=1e-5, abs=1e-5)
            assert k3[b].item() == pytest.approx(sum(math.expm1(r) - r for r in rs), rel=1e-5, abs=1e-5)


def test_k3_is_never_negative_per_token_and_both_estimators_agree_on_policy_samples():
    """Schulman (2020): for tokens sampled from pi, E[k1] = E[k3] = KL(pi || pi_ref); k3 >= 0 always."""
    g = torch.Generator().manual_seed(0)
    V, N = 6, 200_000
    pi = torch.softmax(torch.randn(V, generator=g), dim=-1)
    ref = torch.softmax(torch.randn(V, generator=g), dim=-1)
    tokens = torch.multinomial(pi, N, replacement=True, generator=g)  # (N,) samples from the policy
    logp, ref_logp = pi.log()[tokens][:, None], ref.log()[tokens][:, None]  # (N, 1): N one-token responses
    k1, k3 = kl_estimates(logp, ref_logp, torch.ones_like(logp, dtype=torch.bool))
    exact = float((pi * (pi.log() - ref.log())).sum())
    assert torch.all(k3 >= 0) and torch.any(k1 < 0)
    assert k1.mean().item() == pytest.approx(exact, rel=0.03)
    assert k3.mean().item() == pytest.approx(exact, rel=0.03)
    assert k3.std() < k1.std()  # the point of k3: lower variance


def test_adaptive_kl_coef_reference_by_hand_and_moves_towards_the_target():
    assert adaptive_kl_coef(0.05, 6.0, 6.0, 8, 80) == 0.05
    assert adaptive_kl_coef(0.05, 6.3, 6.0, 8, 80) == pytest.approx(0.05 * 1.005)
    assert adaptive_kl_coef(0.05, 60.0, 6.0, 8, 80) == pytest.approx(0.05 * 1.02)  # clipped at +0.2
    assert adaptive_kl_coef(0.05, 0.0, 6.0, 8, 80) == pytest.approx(0.05 * 0.98)  # clipped at -0.2
    beta = 0.05
    for _ in range(200):  # a KL that follows beta: too large at first; the controller raises beta
        kl = 1.0 / beta ** 0.5
        beta = adaptive_kl_coef(beta, kl, 3.0, 8, 80)
    assert 1.0 / beta ** 0.5 == pytest.approx(3.0, rel=0.02)


def test_cases_probe_what_they_say():
    for name in ("whiten", "kl_estimates"):
        for case in EXERCISES[name].cases() + EXERCISES[name].hidden_cases():
            assert torch.isinf(case.args[0]).any() == ("-inf" in case.about), (name, case.about)
    whiten_cases = EXERCISES["whiten"].cases()
    assert whiten_cases[0].args[1].sum() == 5  # few tokens: the biased and unbiased std differ by 12%
    assert torch.all(whiten_cases[2].args[0][~whiten_cases[2].args[1]] == 0)  # GAE's zeros on padding
    k1, k3 = kl_estimates(*EXERCISES["kl_estimates"].cases()[0].args)
    assert torch.all(k1 == 0) and torch.all(k3 == 0)
    k1, _ = kl_estimates(*EXERCISES["kl_estimates"].cases()[4].args)
    assert torch.any(k1 < 0)  # the batch holds a response whose k1 sum is negative
    controller = [c.args for c in EXERCISES["adaptive_kl_coef"].cases()]
    assert controller[2][1] / controller[2][2] - 1 > 0.2 and controller[3][1] / controller[3][2] - 1 < -0.2
    assert controller[4][3] == controller[4][4]


# ---- whiten: wrong versions --------------------------------------------------------------------


def whiten_biased_std(advantages, mask):
    real = advantages[mask]
    return torch.where(mask, (advantages - real.mean()) / real.std(unbiased=False), torch.zeros_like(advantages))


def whiten_counts_padding(advantages, mask):
    return torch.where(mask, (advantages - advantages.mean()) / advantages.std(), torch.zeros_like(advantages))


def whiten_per_row(advantages, mask):
    out = torch.zeros_like(advantages)
    for b in range(advantages.shape[0]):
        real = advantages[b][mask[b]]
        out[b][mask[b]] = (real - real.mean()) / real.std()
    return out


def whiten_keeps_padding(advantages, mask):
    real = advantages[mask]
    return torch.where(mask, (advantages - real.mean()) / real.std(), advantages)


def whiten_scale_only(advantages, mask):
    real = advantages[mask]
    return torch.where(mask, advantages / real.std(), torch.zeros_like(advantages))


def whiten_padding_values_garbled(advantages, mask):
    """Right statistics, but the padding is whitened too instead of set to 0."""
    real = advantages[mask]
    return (advantages - real.mean()) / real.std()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (whiten_biased_std, r"(?s)case 1 of 5 \(one response of 5 tokens.*unbiased variance, divided by n - 1"),
        (whiten_counts_padding, r"(?s)case 3 of 5 \(padding after short responses.*over the real tokens only"),
        (whiten_per_row, r"(?s)case 2 of 5 \(one response much better than expected.*not one per row"),
        (whiten_keeps_padding, r"(?s)case 4 of 5 \(padding that holds a meaningless number.*put 0 on padding"),
        (whiten_scale_only, r"(?s)case 1 of 5 .*subtract the mean"),
        (whiten_padding_values_garbled, r"(?s)case 3 of 5 .*Padding positions must come out 0"),
    ],
)
def test_whiten_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_whiten(wrong)
    assert "Hint:" in str(err.value)


def test_whiten_equivalent_forms_pass():
    def with_var(advantages, mask):
        real = advantages[mask]
        white = (advantages - real.mean()) / torch.sqrt(real.var() + 1e-8)
        return torch.where(mask, white, torch.zeros_like(white))

    assert check_whiten(with_var).status == "pass"
    assert check_whiten(lambda a, m: masked_whiten(a, m)).status == "pass"


def test_whiten_in_place_edits_do_not_leak_into_later_cases():
    def in_place(advantages, mask):
        advantages[~mask] = 0.0
        real = advantages[mask]
        advantages[mask] = (real - real.mean()) / real.std()
        return advantages

    assert check_whiten(in_place).status == "pass"


# ---- kl_estimates: wrong versions ------------------------------------------------------------------


def _where(mask, x):
    return torch.where(mask, x, torch.zeros_like(x))


def kl_k3_wrong_direction(logp, ref_logp, mask):
    r = logp - ref_logp  # the log-ratio of the other direction
    return _where(mask, logp - ref_logp).sum(-1), _where(mask, torch.expm1(r) - r).sum(-1)


def kl_k2_instead_of_k3(logp, ref_logp, mask):
    r = ref_logp - logp
    return _where(mask, -r).sum(-1), _where(mask, 0.5 * r ** 2).sum(-1)


def kl_means(logp, ref_logp, mask):
    k1, k3 = kl_estimates(logp, ref_logp, mask)
    n = mask.sum(-1)
    return k1 / n, k3 / n


def kl_whole_rows(logp, ref_logp, mask):
    r = ref_logp - logp
    return (-r).sum(-1), (torch.expm1(r) - r).sum(-1)


def kl_multiplies_by_mask(logp, ref_logp, mask):
    r = ref_logp - logp
    return (-r * mask).sum(-1), ((torch.expm1(r) - r) * mask).sum(-1)


def kl_swapped(logp, ref_logp, mask):
    k1, k3 = kl_estimates(logp, ref_logp, mask)
    return k3, k1


def kl_k1_sign_flipped(logp, ref_logp, mask):
    k1, k3 = kl_estimates(logp, ref_logp, mask)
    return -k1, k3


def kl_batch_totals(logp, ref_logp, mask):
    k1, k3 = kl_estimates(logp, ref_logp, mask)
    return k1.sum(), k3.sum()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (kl_k3_wrong_direction, r"(?s)case 2 of 5 \(one response, no padding.*result\[1\] \(k3\).*reference minus policy"),
        (kl_k2_instead_of_k3, r"(?s)case 2 of 5 .*result\[1\] \(k3\).*e\^r - 1 - r"),
        (kl_means, r"(?s)case 2 of 5 .*Sums over the tokens, not means"),
        (kl_whole_rows, r"(?s)case 3 of 5 \(responses of different lengths.*only the response tokens count"),
        (kl_multiplies_by_mask, r"(?s)case 4 of 5 \(padding whose log-probs are -inf.*non-finite value nan.*instead of "
                                r"multiplying by the mask"),
        (kl_swapped, r"(?s)case 2 of 5 .*result\[0\] \(k1\)"),
        (kl_k1_sign_flipped, r"(?s)case 2 of 5 .*result\[0\] \(k1\).*policy minus reference"),
        (kl_batch_totals, r"(?s)case 1 of 5 .*expected shape \(2,\), got shape \(\).*one number per response"),
    ],
)
def test_kl_estimates_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_kl_estimates(wrong)
    assert "Hint:" in str(err.value)


def test_kl_estimates_naive_exp_form_passes():
    def naive(logp, ref_logp, mask):
        r = torch.where(mask, ref_logp - logp, torch.zeros_like(logp))
        return (-r).sum(-1), (torch.exp(r) - 1 - r).sum(-1)

    assert check_kl_estimates(naive).status == "pass"


# ---- adaptive_kl_coef: wrong versions --------------------------------------------------------------


def controller_absolute_error(beta, kl, target, n_steps, horizon):
    error = min(max(kl - target, -0.2), 0.2)
    return beta * (1 + error * n_steps / horizon)


def controller_no_clip(beta, kl, target, n_steps, horizon):
    return beta * (1 + (kl / target - 1) * n_steps / horizon)


def controller_upper_clip_only(beta, kl, target, n_steps, horizon):
    return beta * (1 + min(kl / target - 1, 0.2) * n_steps / horizon)


def controller_wrong_sign(beta, kl, target, n_steps, horizon):
    error = min(max(kl / target - 1, -0.2), 0.2)
    return beta * (1 - error * n_steps / horizon)


def controller_forgets_the_horizon(beta, kl, target, n_steps, horizon):
    error = min(max(kl / target - 1, -0.2), 0.2)
    return beta * (1 + error)


def controller_additive(beta, kl, target, n_steps, horizon):
    error = min(max(kl / target - 1, -0.2), 0.2)
    return beta + error * n_steps / horizon


def controller_clips_after_scaling(beta, kl, target, n_steps, horizon):
    return beta * (1 + min(max((kl / target - 1) * n_steps / horizon, -0.2), 0.2))


def controller_returns_the_error(beta, kl, target, n_steps, horizon):
    return min(max(kl / target - 1, -0.2), 0.2)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (controller_absolute_error, r"(?s)case 2 of 5 \(the KL is 5% above target.*relative to the target"),
        (controller_no_clip, r"(?s)case 3 of 5 \(the KL is 2\.5 times the target.*clip the relative error"),
        (controller_upper_clip_only, r"(?s)case 4 of 5 \(the KL is far below target.*the clip works on both sides"),
        (controller_wrong_sign, r"(?s)case 2 of 5 .*above target the penalty must get stronger"),
        (controller_forgets_the_horizon, r"(?s)case 2 of 5 .*1 \+ e \* n_steps / horizon"),
        (controller_additive, r"(?s)case 2 of 5 .*grows by the factor"),
        (controller_clips_after_scaling, r"(?s)case 3 of 5 \(the KL is 2\.5 times the target.*clip the relative error"),
        (controller_returns_the_error, r"(?s)case 1 of 5 \(the KL is on target.*beta is returned unchanged"),
    ],
)
def test_adaptive_kl_coef_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_adaptive_kl_coef(wrong)
    assert "Hint:" in str(err.value)


# ---- spot the bug 1: the KL anchor ---------------------------------------------------------------


def _independent_rewards(scores, old_logp, ref_logp, mask, beta):
    """Per-token rewards by a loop over the tokens."""
    B, R = mask.shape
    out = torch.zeros(B, R)
    for b in range(B):
        last = max(t for t in range(R) if mask[b, t])
        for t in range(R):
            if mask[b, t]:
                out[b, t] = -beta * (old_logp[b, t] - ref_logp[b, t]) + (scores[b] if t == last else 0.0)
    return out


def test_kl_penalty_rewards_reference_matches_a_loop():
    for case in EXERCISES["kl_penalty_rewards"].cases() + EXERCISES["kl_penalty_rewards"].hidden_cases():
        scores, logp, old_logp, ref_logp, mask, beta = case.args
        torch.testing.assert_close(kl_penalty_rewards(*case.args), _independent_rewards(scores, old_logp, ref_logp,
                                                                                         mask, beta))


def rewards_buggy(scores, logp, old_logp, ref_logp, mask, beta):  # the bug shown in the notebook
    kl = torch.where(mask, logp - old_logp, torch.zeros_like(logp))
    rewards = -beta * kl
    rewards[torch.arange(len(scores)), mask.long().cumsum(1).argmax(1)] += scores
    return rewards


def rewards_current_policy(scores, logp, old_logp, ref_logp, mask, beta):
    return kl_penalty_rewards(scores, old_logp, logp, ref_logp, mask, beta)


def rewards_last_column(scores, logp, old_logp, ref_logp, mask, beta):
    rewards = torch.where(mask, -beta * (old_logp - ref_logp), torch.zeros_like(logp))
    rewards[:, -1] += scores
    return rewards


def rewards_reference_minus_policy(scores, logp, old_logp, ref_logp, mask, beta):
    return kl_penalty_rewards(scores, logp, ref_logp, old_logp, mask, beta)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (rewards_buggy, r"(?s)case 1 of 4 \(the first epoch.*The anchor is the frozen reference"),
        (rewards_current_policy, r"(?s)case 2 of 4 \(a later epoch.*not the ones of the policy after"),
        (rewards_last_column, r"(?s)case 3 of 4 \(replies of different lengths.*LAST REAL token"),
        (rewards_reference_minus_policy, r"(?s)case 1 of 4 .*sampling-time log-prob minus the reference's"),
    ],
)
def test_kl_penalty_rewards_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_kl_penalty_rewards(wrong)
    assert "Hint:" in str(err.value)


@pytest.mark.parametrize("check, right, wrongs", [
    ("kl_anchor_bug", "c", ("A", "B", "D")),
    ("update_bug", "d", ("A", "B", "C")),
    ("beta_prediction", "b", ("A", "C", "D")),
])
def test_answers_pass_and_wrong_options_get_feedback_that_hides_the_right_one(check, right, wrongs):
    fn = getattr(lesson11, f"check_{check}")
    assert fn(right).status == "pass"
    for wrong in wrongs:
        with pytest.raises(CheckFailed, match=r"is not the right one yet: \w") as err:
            fn(wrong)
        why = str(err.value).split("yet:")[1].split("\n")[0]
        assert f" {right.upper()} " not in why and f"option {right}" not in why.lower()


# ---- spot the bug 2: no clip, no baseline ------------------------------------------------------------


def _independent_policy_loss(logp, old_logp, returns, values, mask, clip_eps):
    total, n = 0.0, 0
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if mask[b, t]:
                ratio = math.exp(float(logp[b, t] - old_logp[b, t]))
                adv = float(returns[b, t] - values[b, t])
                total += min(ratio * adv, min(max(ratio, 1 - clip_eps), 1 + clip_eps) * adv)
                n += 1
    return -total / n


def test_rlhf_policy_loss_reference_matches_a_loop():
    for case in EXERCISES["rlhf_policy_loss"].cases() + EXERCISES["rlhf_policy_loss"].hidden_cases():
        assert rlhf_policy_loss(*case.args).item() == pytest.approx(_independent_policy_loss(*case.args), rel=1e-5,
                                                                    abs=1e-6)


def loss_buggy(logp, old_logp, returns, values, mask, clip_eps):  # the bug shown in the notebook
    ratio = torch.exp(logp - old_logp)
    return -(ratio * returns)[mask].mean()


def loss_clip_but_no_baseline(logp, old_logp, returns, values, mask, clip_eps):
    return rlhf_policy_loss(logp, old_logp, returns, torch.zeros_like(values), mask, clip_eps)


def loss_baseline_but_no_clip(logp, old_logp, returns, values, mask, clip_eps):
    ratio = torch.exp(logp - old_logp)
    return -(ratio * (returns - values))[mask].mean()


def loss_max_instead_of_min(logp, old_logp, returns, values, mask, clip_eps):
    ratio = torch.exp(logp - old_logp)
    adv = returns - values
    per = torch.maximum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -per[mask].mean()


def loss_over_padding(logp, old_logp, returns, values, mask, clip_eps):
    return rlhf_policy_loss(logp, old_logp, returns, values, torch.ones_like(mask), clip_eps)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (loss_buggy, r"(?s)case 1 of 4 \(the first epoch \(ratio 1\).*ADVANTAGE, return minus value"),
        (loss_clip_but_no_baseline, r"(?s)case 1 of 4 .*ADVANTAGE"),
        (loss_baseline_but_no_clip, r"(?s)case 2 of 4 \(a policy that moved far.*clip the ratio"),
        (loss_max_instead_of_min, r"(?s)case 2 of 4 .*the SMALLER of the clipped and the unclipped"),
        (loss_over_padding, r"(?s)case 3 of 4 \(replies of different lengths.*real tokens only"),
    ],
)
def test_rlhf_policy_loss_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_rlhf_policy_loss(wrong)
    assert "Hint:" in str(err.value)


# ---- the build: rlhf_ppo_step ---------------------------------------------------------------------------


def independent_step(policy, reference, optimizer, response_ids, scores, eos_id, beta, gamma=1.0, lam=0.95,
                     clip_eps=0.2, vf_coef=0.5, epochs=4):
    """The same step written without the library: loops over tokens, no masked helpers."""
    B, R = response_ids.shape
    mask = torch.zeros(B, R, dtype=torch.bool)
    for b in range(B):
        for t in range(R):
            mask[b, t] = True
            if response_ids[b, t] == eos_id:
                break
    with torch.no_grad():
        logits, values = policy(response_ids)
        old = torch.log_softmax(logits, -1).gather(-1, response_ids[..., None]).squeeze(-1)
        ref = torch.log_softmax(reference(response_ids)[0], -1).gather(-1, response_ids[..., None]).squeeze(-1)
    rewards = torch.zeros(B, R)
    adv = torch.zeros(B, R)
    for b in range(B):
        n = int(mask[b].sum())
        for t in range(n):
            rewards[b, t] = -beta * (old[b, t] - ref[b, t]) + (scores[b] if t == n - 1 else 0.0)
        running = 0.0
        for t in reversed(range(n)):
            next_value = values[b, t + 1] if t + 1 < n else 0.0
            running = rewards[b, t] + gamma * next_value - values[b, t] + gamma * lam * running
            adv[b, t] = running
    returns = adv + values
    real = adv[mask]
    white = torch.where(mask, (adv - real.mean()) / (real.var() + 1e-8).sqrt(), torch.zeros_like(adv))
    losses = []
    for _ in range(epochs):
        logits, v = policy(response_ids)
        logp = torch.log_softmax(logits, -1).gather(-1, response_ids[..., None]).squeeze(-1)
        ratio = (logp - old).exp()
        surrogate = torch.minimum(ratio * white, ratio.clamp(1 - clip_eps, 1 + clip_eps) * white)
        loss = -surrogate[mask].mean() + vf_coef * 0.5 * ((v - returns) ** 2)[mask].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return mask, rewards, white, losses


def test_an_independent_step_passes_every_case_public_and_hidden():
    ex = EXERCISES["rlhf_ppo_step"]
    ours, theirs = ex.call(ex.reference), ex.call(independent_step)
    for case in ex.cases() + ex.hidden_cases():
        assert compare(ours(*case.args, **case.kwargs), theirs(*case.args, **case.kwargs), rtol=ex.rtol,
                       atol=ex.atol, names=ex.names) is None, case.about


def test_the_first_step_has_zero_kl_and_rewards_only_on_the_last_real_token():
    out = tiny_rlhf_run(rlhf_ppo_step, seed=0, steps=1)
    mask, rewards, _, _ = out["first"]
    last = torch.zeros_like(mask)
    last[torch.arange(mask.shape[0]), mask.long().cumsum(1).argmax(1)] = True
    assert torch.all(rewards[~last] == 0) and torch.all(rewards[last] == tiny_scores_of(out))
    assert out["kl"][0] == 0.0


def tiny_scores_of(out):
    """The scores of the first batch, recomputed: the run is seeded, so the same batch comes back."""
    reference = lesson11.TinyPolicy(0)
    return lesson11.tiny_scores(lesson11.tiny_sample(reference, 16, lesson11.generator(0)))


def step_kl_to_old_policy(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw):
    """The bug of buggy_kl_rewards inside a whole step: the policy as its own anchor."""
    return rlhf_ppo_step(policy, policy, optimizer, response_ids, scores, eos_id, beta, **kw)


def step_mask_every_eos(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw):
    out = list(rlhf_ppo_step(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw))
    out[0] = response_ids != eos_id
    return tuple(out)


def step_no_update(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw):
    frozen = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    return rlhf_ppo_step(policy, reference, frozen, response_ids, scores, eos_id, beta, **kw)


def step_ignores_lambda(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw):
    kw.pop("lam", None)
    kw.pop("gamma", None)
    return rlhf_ppo_step(policy, reference, optimizer, response_ids, scores, eos_id, beta, **kw)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (step_kl_to_old_policy, r"(?s)case 2 of 5 \(a policy that has already moved.*result\[1\] \(rewards\).*FROZEN "
                                r"REFERENCE"),
        (step_mask_every_eos, r"(?s)case 1 of 5 \(the first step.*result\[0\] \(mask\).*FIRST EOS"),
        (step_no_update, r"(?s)case 1 of 5 .*result\[4\] \(loss fell over the epochs\)"),
        (step_ignores_lambda, r"(?s)case 3 of 5 \(GAE with gamma 0.9 and lambda 0.8.*result\[2\] \(advantages\)"),
    ],
)
def test_rlhf_ppo_step_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_rlhf_ppo_step(wrong)
    assert "Hint:" in str(err.value)


def test_the_prediction_holds_on_the_tiny_task():
    """beta 0.03 drifts further from the reference than beta 0.3 (the predict-then-run cell of exercise 11)."""
    small, large = (tiny_rlhf_run(rlhf_ppo_step, seed=0, steps=30, beta=b) for b in (0.03, 0.3))
    assert sum(small["kl"][-5:]) > 4 * sum(large["kl"][-5:])
    assert beta_prediction() == "B"


# ---- the lesson's quiz: the ratio is 1 only before the step's first optimiser step --------------------------


def test_the_ratio_is_1_in_the_first_minibatch_only_and_the_quiz_says_so():
    """Lesson 11's quiz claimed "in the first PPO epoch the ratio is exactly 1 on every token": false with more than
    one minibatch, since each minibatch's optimiser step moves the policy the next minibatch is scored by."""
    import nbformat

    from conftest import ROOT

    policy = lesson11.TinyPolicy(0)
    ids = lesson11.tiny_sample(policy, 8, lesson11.generator(0))
    mask = lesson11.response_mask_from(ids, lesson11.TINY_EOS)

    def logp_of():
        return torch.log_softmax(policy(ids)[0], -1).gather(-1, ids[..., None]).squeeze(-1)

    with torch.no_grad():
        old = logp_of()
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.05)
    advantages = torch.randn(ids.shape, generator=lesson11.generator(1))
    first, second = slice(0, 4), slice(4, 8)  # two minibatches of one epoch
    ratio_first = torch.exp(logp_of()[first] - old[first])[mask[first]]
    loss = -(ratio_first * advantages[first][mask[first]]).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ratio_second = torch.exp(logp_of()[second] - old[second])[mask[second]].detach()
    assert torch.all(ratio_first == 1)  # right: before the first step, the ratio is exactly 1
    assert (ratio_second - 1).abs().max() > 1e-3  # the statement's "every token of the first epoch": wrong
    lesson = nbformat.read(ROOT / "notebooks" / "11_rlhf_ppo.ipynb", as_version=4)
    quiz = next(c.source for c in lesson.cells if "probability ratio is exactly 1" in c.source)
    assert "In the first minibatch of the first PPO epoch" in quiz and "later minibatches" in quiz
    assert "In the first PPO epoch of every step, the probability ratio is exactly 1 on every token. Why?" not in quiz
