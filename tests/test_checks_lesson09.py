"""Lesson 9's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint; the demonstrations are what the lesson says they are."""

from __future__ import annotations

import pytest
import torch

from course_lib.checks.core import CheckFailed, compare
from course_lib.checks.lesson09 import (
    EXERCISES,
    check_kl_to_reference,
    check_pg_loss,
    check_sft_loss,
    kl_to_reference,
    pg_loss,
    sft_loss,
)
from course_lib.data.demonstrations import DEMONSTRATIONS
from course_lib.data.prompts import HELD_OUT_PROMPTS, TRAIN_PROMPTS
from course_lib.llm.rollout import sequence_kl


# ---- the references agree with independent computations ---------------------------------------


def _loop_sft(logp, mask):
    """The SFT loss with explicit loops: every response token of every row, once."""
    total, count = 0.0, 0
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[b, t]:
                total -= float(logp[b, t])
                count += 1
    return total / count


def test_references_match_loops_and_the_library():
    for case in EXERCISES["sft_loss"].cases() + EXERCISES["sft_loss"].hidden_cases():
        assert sft_loss(*case.args).item() == pytest.approx(_loop_sft(*case.args), rel=1e-5)
    for case in EXERCISES["kl_to_reference"].cases():
        logp, ref_logp, mask = case.args
        assert torch.allclose(kl_to_reference(*case.args), sequence_kl(logp - ref_logp, mask))
        for b in range(logp.shape[0]):
            expected = sum(float(logp[b, t] - ref_logp[b, t]) for t in range(logp.shape[1]) if mask[b, t])
            assert kl_to_reference(*case.args)[b].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    for case in EXERCISES["pg_loss"].cases():
        logp, mask, rewards = case.args
        seq = [sum(float(logp[b, t]) for t in range(logp.shape[1]) if mask[b, t]) for b in range(logp.shape[0])]
        mean = float(rewards.mean())
        expected = -sum((float(r) - mean) * s for r, s in zip(rewards, seq)) / len(seq)
        assert pg_loss(*case.args).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_cases_probe_what_they_say():
    sft_cases = EXERCISES["sft_loss"].cases()
    for name in EXERCISES:  # every case said to have -inf padding has some
        for case in EXERCISES[name].cases() + EXERCISES[name].hidden_cases():
            assert torch.isinf(case.args[0]).any() == ("-inf" in case.about), (name, case.about)
    lengths = sft_cases[2].args[1].sum(dim=1)
    assert len(set(lengths.tolist())) == 3  # token mean and row mean differ
    kl_cases = EXERCISES["kl_to_reference"].cases()
    assert torch.all(kl_to_reference(*kl_cases[0].args) == 0)
    assert torch.all(kl_to_reference(*kl_cases[1].args) > 0)  # the policy samples what it likes
    run = EXERCISES["pg_loss"].call(pg_loss)
    loss, grad = run(*EXERCISES["pg_loss"].cases()[0].args)
    assert loss == 0 and torch.all(grad == 0)  # equal rewards: nothing to learn
    _, grad = run(*EXERCISES["pg_loss"].cases()[1].args)
    assert torch.all(grad[0] < 0) and torch.all(grad[1] > 0)  # minimising raises the better response


# ---- sft_loss: wrong versions ------------------------------------------------------------------


def sft_no_minus(logp, mask):
    return sft_loss(logp, mask) * -1


def sft_counts_the_prompt(logp, mask):
    """Every non-padding token: prompt and response (the classic 'forgot the labels mask' bug)."""
    real = torch.isfinite(logp) & (logp > -12)
    return -torch.where(real, logp, torch.zeros_like(logp)).sum() / real.sum()


def sft_mean_of_all_entries(logp, mask):
    return -logp.mean()


def sft_per_sequence_mean(logp, mask):
    m = mask.float()
    per_row = torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=1) / m.sum(dim=1)
    return -per_row.mean()


def sft_sums(logp, mask):
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum()


def sft_multiplies_by_mask(logp, mask):
    return -(logp * mask).sum() / mask.sum()


def sft_returns_float(logp, mask):
    return sft_loss(logp, mask).item()


def sft_detached(logp, mask):
    return sft_loss(logp.detach(), mask)


def sft_per_row(logp, mask):
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=1) / mask.sum()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (sft_no_minus, r"(?s)case 1 of 5 \(one response, no prompt tokens.*result\[0\] \(loss\).*Check the sign"),
        (sft_counts_the_prompt, r"(?s)case 2 of 5 \(two rows, prompt tokens.*only the response tokens count"),
        (sft_mean_of_all_entries, r"(?s)case 2 of 5 \(two rows, prompt tokens.*only the response tokens count"),
        (sft_per_sequence_mean, r"(?s)case 3 of 5 \(responses of different lengths.*average over tokens, not over "
                                r"sequences"),
        (sft_sums, r"(?s)case 1 of 5 .*result\[0\] \(loss\).*a mean, not a sum"),
        (sft_multiplies_by_mask, r"(?s)case 4 of 5 \(left padding whose log-prob is -inf.*non-finite value nan.*"
                                 r"-inf \* 0 is nan"),
        (sft_returns_float, r"case 1 of 5 .* raised TypeError: sft_loss should return a 0-d torch tensor"),
        (sft_detached, r"case 1 of 5 .* raised RuntimeError: sft_loss's loss has no gradient w\.r\.t\. `logp`"),
        (sft_per_row, r"case 1 of 5 .* raised ValueError: sft_loss should return one number for the whole batch"),
    ],
)
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")


def test_sft_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_sft_loss(wrong)
    assert "Hint:" in str(err.value)


def test_sft_equivalent_forms_pass():
    assert check_sft_loss(lambda logp, mask: -logp[mask].mean()).status == "pass"
    assert check_sft_loss(lambda logp, mask: -logp[mask].sum() / mask.sum()).status == "pass"


# ---- kl_to_reference: wrong versions ------------------------------------------------------------


def kl_sign_flipped(logp, ref_logp, mask):
    return kl_to_reference(ref_logp, logp, mask)


def kl_mean_over_tokens(logp, ref_logp, mask):
    return kl_to_reference(logp, ref_logp, mask) / mask.sum(dim=1)


def kl_whole_row(logp, ref_logp, mask):
    return (logp - ref_logp).sum(dim=1)


def kl_batch_total(logp, ref_logp, mask):
    return kl_to_reference(logp, ref_logp, mask).sum()


def kl_multiplies_by_mask(logp, ref_logp, mask):
    return ((logp - ref_logp) * mask).sum(dim=1)


def kl_k3(logp, ref_logp, mask):
    r = ref_logp - logp
    return torch.where(mask, torch.expm1(r) - r, torch.zeros_like(r)).sum(dim=1)


def kl_absolute(logp, ref_logp, mask):
    return torch.where(mask, (logp - ref_logp).abs(), torch.zeros_like(logp)).sum(dim=1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (kl_sign_flipped, r"(?s)case 2 of 5 \(one response, no prompt tokens.*policy minus reference"),
        (kl_mean_over_tokens, r"(?s)case 2 of 5 .*A sum, not a mean"),
        (kl_whole_row, r"(?s)case 3 of 5 \(prompt tokens in front.*only the response tokens count"),
        (kl_batch_total, r"(?s)case 1 of 5 .*expected shape \(2,\), got shape \(\).*one number per response"),
        (kl_multiplies_by_mask, r"(?s)case 4 of 5 \(left padding.*non-finite value nan.*do not multiply by the mask"),
        (kl_k3, r"(?s)case 2 of 5 \(one response"),
    ],
)
def test_kl_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_kl_to_reference(wrong)
    assert "Hint:" in str(err.value)


def test_kl_abs_fails_where_the_policy_lowered_a_token():
    """|log-ratio| agrees wherever the policy raised every token; the drift of the last case lowers some."""
    with pytest.raises(CheckFailed):
        check_kl_to_reference(kl_absolute)


# ---- pg_loss: wrong versions ---------------------------------------------------------------------


def _seq(logp, mask):
    return torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=1)


def pg_no_baseline(logp, mask, rewards):
    return -(rewards * _seq(logp, mask)).mean()


def pg_no_minus(logp, mask, rewards):
    return (rewards - rewards.mean()) @ _seq(logp, mask) / len(rewards)


def pg_token_mean(logp, mask, rewards):
    return -((rewards - rewards.mean()) * _seq(logp, mask) / mask.sum(dim=1)).mean()


def pg_counts_the_prompt(logp, mask, rewards):
    real = torch.isfinite(logp)
    return -((rewards - rewards.mean()) * torch.where(real, logp, torch.zeros_like(logp)).sum(dim=1)).mean()


def pg_whitened(logp, mask, rewards):
    adv = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
    return -(adv * _seq(logp, mask)).mean()


def pg_sums_over_batch(logp, mask, rewards):
    return -((rewards - rewards.mean()) * _seq(logp, mask)).sum()


def pg_multiplies_by_mask(logp, mask, rewards):
    return -((rewards - rewards.mean()) * (logp * mask).sum(dim=1)).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (pg_no_baseline, r"(?s)case 1 of 5 \(every response has the same reward.*Subtract rewards\.mean\(\)"),
        (pg_no_minus, r"(?s)case 2 of 5 \(two responses, rewards \+1 and -1.*The minus sign"),
        (pg_token_mean, r"(?s)case 2 of 5 \(two responses.*the sum of the row's log-probs"),
        (pg_counts_the_prompt, r"(?s)case 3 of 5 \(prompt tokens and responses of different lengths.*no prompt tokens"),
        (pg_whitened, r"(?s)case 2 of 5 \(two responses.*no division by their standard deviation"),
        (pg_sums_over_batch, r"(?s)case 2 of 5 \(two responses.*the mean over responses, not the sum"),
        (pg_multiplies_by_mask, r"(?s)case 4 of 5 \(left padding whose log-prob is -inf.*multiplying by the mask gives "
                                r"nan"),
    ],
)
def test_pg_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_pg_loss(wrong)
    assert "Hint:" in str(err.value)


# ---- the demonstrations ---------------------------------------------------------------------------


def test_demonstrations_are_training_prompts_one_per_topic_and_short():
    prompts = [p for p, _ in DEMONSTRATIONS]
    assert 24 <= len(DEMONSTRATIONS) <= 32 and len(set(prompts)) == len(prompts)
    assert all(p in TRAIN_PROMPTS and p not in HELD_OUT_PROMPTS for p in prompts)
    topics = {p.split(" about ", 1)[1].rstrip(".?") for p in prompts}
    assert len(topics) == len(prompts)  # one phrasing per topic
    assert all(5 <= len(reply.split()) <= 25 and reply.strip() == reply for _, reply in DEMONSTRATIONS)


def test_demonstrations_are_positive_for_the_annotator():
    from course_lib.data.annotators import SimulatedAnnotator

    scores = SimulatedAnnotator().scores([reply for _, reply in DEMONSTRATIONS])
    assert scores.min() > 0 and scores.mean() > 0.7
