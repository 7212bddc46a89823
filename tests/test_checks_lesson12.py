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
    check_dpo_bug,
    check_dpo_gradient_weight,
    check_dpo_loss_fn,
    check_dpo_margins,
    check_dpo_step,
    check_sequence_logps,
    dpo_gradient_weight,
    dpo_loss_fn,
    dpo_margins,
    dpo_step,
    sequence_logps,
    tiny_dpo_run,
    tiny_pairs,
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
    def nls(x):  # stable -log sigmoid(x)
        return max(-x, 0) + math.log1p(math.exp(-abs(x)))

    for case in EXERCISES["dpo_loss_fn"].cases() + EXERCISES["dpo_loss_fn"].hidden_cases():
        w, l, rw, rl, beta = case.args
        eps = case.kwargs.get("label_smoothing", 0.0)
        z = [beta * ((float(a) - float(b)) - (float(c) - float(d))) for a, b, c, d in zip(w, rw, l, rl)]
        by_hand = sum((1 - eps) * nls(x) + eps * nls(-x) for x in z) / len(z)
        assert dpo_loss_fn(w, l, rw, rl, beta, **case.kwargs).item() == pytest.approx(by_hand, rel=1e-5, abs=1e-5)
    # the gradient of the loss is -beta / B * weight on each chosen log-prob, +beta / B * weight on each rejected one
    for case in EXERCISES["dpo_gradient_weight"].cases() + EXERCISES["dpo_gradient_weight"].hidden_cases():
        w, l, rw, rl, beta = case.args
        w, l = w.clone().requires_grad_(True), l.clone().requires_grad_(True)
        dpo_loss_fn(w, l, rw, rl, beta, **case.kwargs).backward()
        weight = dpo_gradient_weight(w.detach(), l.detach(), rw, rl, beta, **case.kwargs)
        assert torch.allclose(w.grad, -beta * weight / len(weight), atol=1e-6)
        assert torch.allclose(l.grad, beta * weight / len(weight), atol=1e-6)


def test_cases_probe_what_they_say():
    seq = EXERCISES["sequence_logps"].cases()
    assert seq[0].args[2].shape == (1, 7) and not seq[0].args[1].eq(0).any()  # no padding
    assert torch.isnan(seq[3].args[0]).any() and not torch.isnan(seq[2].args[0]).any()
    loss_cases = EXERCISES["dpo_loss_fn"].cases()
    assert dpo_loss_fn(*loss_cases[0].args, **loss_cases[0].kwargs).item() == pytest.approx(math.log(2))
    assert loss_cases[1].kwargs == {} and all(c.kwargs.get("label_smoothing") for c in loss_cases[2:4])
    w, l, rw, rl, beta = loss_cases[3].args
    margins = beta * ((w - rw) - (l - rl))
    assert (margins < -110).any()  # naive log(sigmoid) underflows here
    weight_cases = EXERCISES["dpo_gradient_weight"].cases()
    weights = dpo_gradient_weight(*weight_cases[1].args)
    assert weights.min() < 0.3 and weights.max() > 0.7  # some pairs ordered well, some badly
    assert dpo_gradient_weight(*weight_cases[2].args, **weight_cases[2].kwargs).min() < 0  # a learned pair pushed back


def test_the_library_passes():
    from course_lib.rl import dpo_loss, masked_sum, token_logprobs

    assert check_sequence_logps(
        lambda lg, ids, m: masked_sum(token_logprobs(lg[:, :-1], ids[:, 1:]), m[:, 1:], dim=-1)).status == "pass"
    def smoothed(w, l, rw, rl, beta, label_smoothing=0.0):  # TRL's form, from the library's dpo_loss
        return ((1 - label_smoothing) * dpo_loss(w, l, rw, rl, beta)[0]
                + label_smoothing * dpo_loss(l, w, rl, rw, beta)[0])

    assert check_dpo_loss_fn(smoothed).status == "pass"
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
        (seq_mask_not_shifted, r"(?s)case 1 of 5 .*the mask is shifted like the targets"),
        (seq_raw_logits, r"(?s)case 1 of 5 .*predict the token"),
        (seq_probabilities, r"(?s)case 1 of 5 .*"),
        (seq_counts_prompt, r"(?s)case 1 of 5 .*"),
        (seq_mean, r"(?s)case 1 of 5 .*"),
        (seq_multiplies_by_mask, r"(?s)case 4 of 5 \(padding whose logits are nan.*non-finite value nan.*"
                                 r"instead of multiplying"),
        (seq_batch_total, r"(?s)case 1 of 5 .*expected shape \(1,\), got shape \(\)"),
    ],
)
def test_sequence_logps_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_sequence_logps(wrong)
    assert "Hint:" in str(err.value)


# ---- dpo_loss_fn: wrong versions ------------------------------------------------------------------


def _z(w, l, rw, rl, beta):
    return beta * ((w - rw) - (l - rl))


def loss_no_reference(w, l, rw, rl, beta, label_smoothing=0.0):
    z = beta * (w - l)
    return (-(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)).mean()


def loss_swapped(w, l, rw, rl, beta, label_smoothing=0.0):
    z = -_z(w, l, rw, rl, beta)
    return (-(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)).mean()


def loss_ignores_smoothing(w, l, rw, rl, beta, label_smoothing=0.0):
    return -F.logsigmoid(_z(w, l, rw, rl, beta)).mean()


def loss_smoothing_same_sign(w, l, rw, rl, beta, label_smoothing=0.0):
    """Weights the same term twice instead of the swapped labels."""
    return (-F.logsigmoid(_z(w, l, rw, rl, beta))).mean()


def loss_beta_outside(w, l, rw, rl, beta, label_smoothing=0.0):
    z = _z(w, l, rw, rl, 1.0)
    return beta * (-(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)).mean()


def loss_sum(w, l, rw, rl, beta, label_smoothing=0.0):
    return dpo_loss_fn(w, l, rw, rl, beta, label_smoothing) * len(w)


def loss_per_pair(w, l, rw, rl, beta, label_smoothing=0.0):
    z = _z(w, l, rw, rl, beta)
    return -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)


def loss_naive_log_sigmoid(w, l, rw, rl, beta, label_smoothing=0.0):
    z = _z(w, l, rw, rl, beta)
    return (-(1 - label_smoothing) * torch.log(torch.sigmoid(z))
            - label_smoothing * torch.log(torch.sigmoid(-z))).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (loss_no_reference, r"(?s)case 1 of 5 \(the policy equals the reference.*log-RATIO to the reference"),
        (loss_swapped, r"(?s)case 2 of 5 \(plain DPO.*chosen log-ratio - rejected log-ratio"),
        (loss_ignores_smoothing, r"(?s)case 3 of 5 \(smoothing 0.2.*labels swapped"),
        (loss_smoothing_same_sign, r"(?s)case 3 of 5 .*weight eps on the labels swapped"),
        (loss_beta_outside, r"(?s)case 1 of 5 .*ln 2"),
        (loss_sum, r"(?s)case 1 of 5 .*Return the mean"),
        (loss_per_pair, r"(?s)case 1 of 5 .*expected shape \(\), got shape \(4,\)"),
        (loss_naive_log_sigmoid, r"(?s)case 4 of 5 \(log-ratios of hundreds of nats.*non-finite value inf.*"
                                 r"never the log of a sigmoid"),
    ],
)
def test_dpo_loss_fn_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_dpo_loss_fn(wrong)
    assert "Hint:" in str(err.value)


# ---- dpo_gradient_weight: wrong versions ------------------------------------------------------------


def weight_wrong_sign(w, l, rw, rl, beta, label_smoothing=0.0):
    return dpo_gradient_weight(l, w, rl, rw, beta, label_smoothing)


def weight_ignores_smoothing(w, l, rw, rl, beta, label_smoothing=0.0):
    return torch.sigmoid(-_z(w, l, rw, rl, beta))


def weight_smoothing_added(w, l, rw, rl, beta, label_smoothing=0.0):
    z = _z(w, l, rw, rl, beta)
    return (1 - label_smoothing) * torch.sigmoid(-z) + label_smoothing * torch.sigmoid(z)


def weight_times_beta(w, l, rw, rl, beta, label_smoothing=0.0):
    return beta * dpo_gradient_weight(w, l, rw, rl, beta, label_smoothing)


def weight_no_reference(w, l, rw, rl, beta, label_smoothing=0.0):
    return dpo_gradient_weight(w, l, torch.zeros_like(rw), torch.zeros_like(rl), beta, label_smoothing)


def weight_mean(w, l, rw, rl, beta, label_smoothing=0.0):
    return dpo_gradient_weight(w, l, rw, rl, beta, label_smoothing).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (weight_wrong_sign, r"(?s)case 2 of 4 \(pairs ordered well and badly.*rejected minus chosen"),
        (weight_ignores_smoothing, r"(?s)case 3 of 4 \(smoothing 0.1.*NEGATIVE weight"),
        (weight_smoothing_added, r"(?s)case 3 of 4 .*-eps sigmoid\(z\)"),
        (weight_times_beta, r"(?s)case 1 of 4 \(the policy equals the reference.*sigmoid\(0\) = 0.5"),
        (weight_no_reference, r"(?s)case 1 of 4 .*"),
        (weight_mean, r"(?s)case 1 of 4 .*expected shape \(3,\), got shape \(\).*not their mean"),
    ],
)
def test_dpo_gradient_weight_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_dpo_gradient_weight(wrong)
    assert "Hint:" in str(err.value)


def test_in_place_edits_do_not_leak_into_later_cases():
    def in_place(w, l, rw, rl, beta, label_smoothing=0.0):
        w -= rw
        l -= rl
        z = beta * (w - l)
        return (1 - label_smoothing) * torch.sigmoid(-z) - label_smoothing * torch.sigmoid(z)

    assert check_dpo_gradient_weight(in_place).status == "pass"


# ---- spot the bug: DPO without a reference ---------------------------------------------------------------


def test_dpo_bug_answer_and_feedback_never_name_the_right_option():
    assert check_dpo_bug("b").status == "pass"
    for wrong in ("A", "C", "D"):
        with pytest.raises(CheckFailed, match=r"your answer .* is not the right one yet: ") as err:
            check_dpo_bug(wrong)
        assert "B" not in str(err.value).split("yet:")[1].replace("Bradley", "")


def test_dpo_margins_reference_by_hand():
    out = dpo_margins(torch.tensor([-50.0]), torch.tensor([-40.0]), torch.tensor([-52.0]), torch.tensor([-39.0]), 0.1)
    assert out.item() == pytest.approx(0.3)  # the worked example of the tier-2 hint


def margins_no_reference(w, l, rw, rl, beta):  # the bug of buggy_dpo_loss
    return beta * (w - l)


def margins_reference_only(w, l, rw, rl, beta):
    return beta * (rw - rl)


def margins_swapped(w, l, rw, rl, beta):
    return beta * ((l - rl) - (w - rw))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (margins_no_reference, r"(?s)case 1 of 3 \(the policy equals the reference.*a long reply is not worse"),
        (margins_reference_only, r"(?s)case 1 of 3 .*every margin"),
        (margins_swapped, r"(?s)case 2 of 3 \(a trained policy.*chosen minus rejected"),
    ],
)
def test_dpo_margins_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_dpo_margins(wrong)


# ---- the build: dpo_step ---------------------------------------------------------------------------


def test_tiny_pairs_are_well_formed():
    c, r, cm, rm = tiny_pairs(0, 16)
    assert torch.equal(c[:, :2], r[:, :2])  # one prompt per pair
    assert not cm[:, :2].any() and not rm[:, :2].any()
    for ids, mask in ((c, cm), (r, rm)):
        last = mask.long().cumsum(1).argmax(1)
        assert torch.all(ids[torch.arange(16), last] == 1)  # every reply ends with EOS
        assert torch.all(ids[~mask][ids[~mask] != 2] >= 0)
    assert all((c[i][cm[i]] == 3).sum() > (r[i][rm[i]] == 3).sum() for i in range(16))


def test_dpo_step_reference_starts_at_ln_2_and_learns():
    out = tiny_dpo_run(dpo_step, seed=0)
    loss, margins = out["first"]
    assert loss == pytest.approx(math.log(2), abs=1e-6) and torch.all(margins == 0)
    assert out["accuracy_after"] > 0.85 and out["reference_unchanged"]


def dpo_step_without_reference(policy, reference, optimizer, c, r, cm, rm, beta):
    """The bug of buggy_dpo_loss in a whole step: the margins of raw log-probs."""
    lc = sequence_logps(policy(c), c, cm)
    lr = sequence_logps(policy(r), r, rm)
    margins = beta * (lc - lr)
    loss = -F.logsigmoid(margins).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach()), margins.detach()


def dpo_step_no_shift(policy, reference, optimizer, c, r, cm, rm, beta):
    def logps(model, ids, mask):
        logp = torch.log_softmax(model(ids), dim=-1).gather(-1, ids[..., None]).squeeze(-1)
        return torch.where(mask, logp, torch.zeros_like(logp)).sum(-1)

    with torch.no_grad():
        rc, rr = logps(reference, c, cm), logps(reference, r, rm)
    lc, lr = logps(policy, c, cm), logps(policy, r, rm)
    margins = beta * ((lc - rc) - (lr - rr))
    loss = -F.logsigmoid(margins).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach()), margins.detach()


def dpo_step_trains_the_reference(policy, reference, optimizer, c, r, cm, rm, beta):
    """Takes the reference's log-probs with gradient and steps it too."""
    for p in reference.parameters():
        p.requires_grad_(True)
    rc, rr = sequence_logps(reference(c), c, cm), sequence_logps(reference(r), r, rm)
    lc, lr = sequence_logps(policy(c), c, cm), sequence_logps(policy(r), r, rm)
    margins = beta * ((lc - rc) - (lr - rr))
    loss = -F.logsigmoid(margins).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for p in reference.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    return float(loss.detach()), margins.detach()


def dpo_step_no_optimiser_step(policy, reference, optimizer, c, r, cm, rm, beta):
    loss, margins = dpo_step(policy, reference, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0),
                             c, r, cm, rm, beta)
    return loss, margins


@pytest.mark.parametrize(
    "wrong, message",
    [
        (dpo_step_without_reference, r"(?s)case 1 of 4 \(the first step.*result\[0\] \(loss\).*every margin is "
                                     r"exactly 0"),
        (dpo_step_no_shift, r"(?s)case 1 of 4 .*the model's logits at position t score the token at t \+ 1"),
        (dpo_step_no_optimiser_step, r"(?s)case 1 of 4 .*result\[2\] \(loss fell over the run\)"),
    ],
)
def test_dpo_step_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_dpo_step(wrong)
    assert "Hint:" in str(err.value)


def test_dpo_step_that_moves_the_reference_fails():
    with pytest.raises(CheckFailed, match=r"(?s)case 1 of 4 .*result\[4\] \(reference unchanged\): expected True"):
        check_dpo_step(dpo_step_trains_the_reference)
