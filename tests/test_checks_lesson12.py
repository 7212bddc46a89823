"""Lesson 12's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson12 import (
    EXERCISES,
    check_dpo_gradient_weight,
    check_dpo_loss_fn,
    check_sequence_logps,
    dpo_gradient_weight,
    dpo_loss_fn,
    sequence_logps,
)

# ---- the references agree with independent computations ---------------------------------------


def test_sequence_logps_reference_matches_a_loop():
    for case in EXERCISES["sequence_logps"].cases() + EXERCISES["sequence_logps"].hidden_cases():
        logits, ids, mask = case.args
        out = sequence_logps(logits, ids, mask)
        assert out.shape == (ids.shape[0],) and torch.isfinite(out).all()
        for b in range(ids.shape[0]):
            total = 0.0
            for t in range(1, ids.shape[1]):
                if mask[b, t]:
                    row = logits[b, t - 1].double()
                    total += float(row[ids[b, t]] - torch.logsumexp(row, dim=0))
            assert out[b].item() == pytest.approx(total, rel=1e-5, abs=1e-4)


def test_dpo_loss_fn_reference_matches_the_formula_and_its_gradient_weight():
    for case in EXERCISES["dpo_loss_fn"].cases() + EXERCISES["dpo_loss_fn"].hidden_cases():
        w, l, rw, rl, beta = case.args
        z = [beta * ((float(a) - float(b)) - (float(c) - float(d))) for a, b, c, d in zip(w, rw, l, rl)]
        by_hand = sum(max(-x, 0) + math.log1p(math.exp(-abs(x))) for x in z) / len(z)  # stable -log sigmoid
        assert dpo_loss_fn(w, l, rw, rl, beta).item() == pytest.approx(by_hand, rel=1e-5, abs=1e-5)
    # the gradient of the loss is -beta / B * weight on each chosen log-prob, +beta / B * weight on each rejected one
    w, l, rw, rl, beta = EXERCISES["dpo_gradient_weight"].cases()[1].args
    w, l = w.clone().requires_grad_(True), l.clone().requires_grad_(True)
    dpo_loss_fn(w, l, rw, rl, beta).backward()
    weight = dpo_gradient_weight(w.detach(), l.detach(), rw, rl, beta)
    assert torch.allclose(w.grad, -beta * weight / len(weight), atol=1e-6)
    assert torch.allclose(l.grad, beta * weight / len(weight), atol=1e-6)


def test_cases_probe_what_they_say():
    seq = EXERCISES["sequence_logps"].cases()
    assert seq[0].args[2].shape == (1, 7) and not seq[0].args[1].eq(0).any()  # no padding
    assert torch.isnan(seq[3].args[0]).any() and not torch.isnan(seq[2].args[0]).any()
    loss_cases = EXERCISES["dpo_loss_fn"].cases()
    assert dpo_loss_fn(*loss_cases[0].args).item() == pytest.approx(math.log(2))
    w, l, rw, rl, beta = loss_cases[3].args
    margins = beta * ((w - rw) - (l - rl))
    assert (margins < -110).any()  # naive log(sigmoid) underflows here
    weights = dpo_gradient_weight(*EXERCISES["dpo_gradient_weight"].cases()[1].args)
    assert weights.min() < 0.3 and weights.max() > 0.7  # some pairs ordered well, some badly


def test_the_library_passes():
    from course_lib.rl import dpo_loss, masked_sum, token_logprobs

    assert check_sequence_logps(
        lambda lg, ids, m: masked_sum(token_logprobs(lg[:, :-1], ids[:, 1:]), m[:, 1:], dim=-1)).status == "pass"
    assert check_dpo_loss_fn(lambda *a: dpo_loss(*a)[0]).status == "pass"
    assert check_dpo_gradient_weight(dpo_gradient_weight).status == "pass"


# ---- sequence_logps: wrong versions -------------------------------------------------------------


def _gather(logits, ids):
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)


def seq_no_shift(logits, ids, mask):
    return torch.where(mask, _gather(logits, ids), torch.zeros(())).sum(-1)


def seq_raw_logits(logits, ids, mask):
    raw = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.where(mask[:, 1:], raw, torch.zeros(())).sum(-1)


def seq_counts_prompt(logits, ids, mask):
    real = ids[:, 1:] != 0  # every non-padding token, the prompt's included
    return torch.where(real, _gather(logits[:, :-1], ids[:, 1:]), torch.zeros(())).sum(-1)


def seq_mean(logits, ids, mask):
    logp = torch.where(mask[:, 1:], _gather(logits[:, :-1], ids[:, 1:]), torch.zeros(()))
    return logp.sum(-1) / mask[:, 1:].sum(-1)


def seq_multiplies_by_mask(logits, ids, mask):
    return (_gather(logits[:, :-1], ids[:, 1:]) * mask[:, 1:]).sum(-1)


def seq_mask_not_shifted(logits, ids, mask):
    return torch.where(mask[:, :-1], _gather(logits[:, :-1], ids[:, 1:]), torch.zeros(())).sum(-1)


def seq_probabilities(logits, ids, mask):
    p = torch.softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.where(mask[:, 1:], p, torch.zeros(())).sum(-1)


def seq_batch_total(logits, ids, mask):
    return sequence_logps(logits, ids, mask).sum()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (seq_no_shift, r"(?s)case 1 of 5 \(one sequence.*predict the token at t \+ 1"),
        (seq_mask_not_shifted, r"(?s)case 1 of 5 .*Shift: logits\[:, :-1\] against input_ids\[:, 1:\] and "
                               r"response_mask\[:, 1:\]"),
        (seq_raw_logits, r"(?s)case 1 of 5 .*predict the token"),
        (seq_probabilities, r"(?s)case 1 of 5 .*"),
        (seq_counts_prompt, r"(?s)case 1 of 5 .*"),
        (seq_mean, r"(?s)case 1 of 5 .*"),
        (seq_multiplies_by_mask, r"(?s)case 4 of 5 \(padding whose logits are nan.*non-finite value nan.*torch.where"),
        (seq_batch_total, r"(?s)case 1 of 5 .*expected shape \(1,\), got shape \(\)"),
    ],
)
def test_sequence_logps_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_sequence_logps(wrong)
    assert "Hint:" in str(err.value)


# ---- dpo_loss_fn: wrong versions ------------------------------------------------------------------


def loss_no_reference(w, l, rw, rl, beta):
    return -F.logsigmoid(beta * (w - l)).mean()


def loss_swapped(w, l, rw, rl, beta):
    return -F.logsigmoid(beta * ((l - rl) - (w - rw))).mean()


def loss_no_beta(w, l, rw, rl, beta):
    return -F.logsigmoid((w - rw) - (l - rl)).mean()


def loss_beta_outside(w, l, rw, rl, beta):
    return -beta * F.logsigmoid((w - rw) - (l - rl)).mean()


def loss_sum(w, l, rw, rl, beta):
    return -F.logsigmoid(beta * ((w - rw) - (l - rl))).sum()


def loss_naive_log_sigmoid(w, l, rw, rl, beta):
    return -torch.log(torch.sigmoid(beta * ((w - rw) - (l - rl)))).mean()


def loss_per_pair(w, l, rw, rl, beta):
    return -F.logsigmoid(beta * ((w - rw) - (l - rl)))


def loss_reference_added(w, l, rw, rl, beta):
    return -F.logsigmoid(beta * ((w + rw) - (l + rl))).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (loss_no_reference, r"(?s)case 1 of 5 \(the policy equals the reference.*log-RATIO to the reference"),
        (loss_reference_added, r"(?s)case 1 of 5 .*log-RATIO"),
        (loss_swapped, r"(?s)case 2 of 5 \(4 pairs, beta = 0.1;.*chosen minus rejected"),
        (loss_no_beta, r"(?s)case 2 of 5 .*"),
        (loss_beta_outside, r"(?s)case 1 of 5 .*ln 2"),
        (loss_sum, r"(?s)case 1 of 5 .*Return the mean"),
        (loss_per_pair, r"(?s)case 1 of 5 .*expected shape \(\), got shape \(4,\)"),
        (loss_naive_log_sigmoid, r"(?s)case 4 of 5 \(log-ratios of hundreds of nats.*non-finite value inf.*F.logsigmoid"),
    ],
)
def test_dpo_loss_fn_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_dpo_loss_fn(wrong)
    assert "Hint:" in str(err.value)


# ---- dpo_gradient_weight: wrong versions ------------------------------------------------------------


def weight_wrong_sign(w, l, rw, rl, beta):
    return torch.sigmoid(beta * ((w - rw) - (l - rl)))


def weight_no_beta(w, l, rw, rl, beta):
    return torch.sigmoid((l - rl) - (w - rw))


def weight_times_beta(w, l, rw, rl, beta):
    return beta * torch.sigmoid(beta * ((l - rl) - (w - rw)))


def weight_no_reference(w, l, rw, rl, beta):
    return torch.sigmoid(beta * (l - w))


def weight_mean(w, l, rw, rl, beta):
    return dpo_gradient_weight(w, l, rw, rl, beta).mean()


def weight_one_minus(w, l, rw, rl, beta):
    return 1 - torch.sigmoid(beta * ((w - rw) + (l - rl)))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (weight_wrong_sign, r"(?s)case 2 of 4 \(pairs ordered well and badly.*rejected minus chosen"),
        (weight_no_beta, r"(?s)case 2 of 4 .*"),
        (weight_times_beta, r"(?s)case 1 of 4 \(the policy equals the reference.*sigmoid\(0\) = 0.5"),
        (weight_no_reference, r"(?s)case 1 of 4 .*"),
        (weight_mean, r"(?s)case 1 of 4 .*expected shape \(3,\), got shape \(\).*not their mean"),
        (weight_one_minus, r"(?s)case 2 of 4 .*"),
    ],
)
def test_dpo_gradient_weight_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_dpo_gradient_weight(wrong)
    assert "Hint:" in str(err.value)


def test_in_place_edits_do_not_leak_into_later_cases():
    def in_place(w, l, rw, rl, beta):
        w -= rw
        l -= rl
        return torch.sigmoid(beta * (l - w))

    assert check_dpo_gradient_weight(in_place).status == "pass"
