"""Lesson 11's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson11 import (
    EXERCISES,
    adaptive_kl_coef,
    check_adaptive_kl_coef,
    check_kl_estimates,
    check_whiten,
    kl_estimates,
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
        (kl_k2_instead_of_k3, r"(?s)case 2 of 5 .*result\[1\] \(k3\).*\(exp\(r\) - 1\) - r"),
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
