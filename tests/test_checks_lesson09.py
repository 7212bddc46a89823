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
from course_lib.data.prompts import TEST_PROMPTS, TRAIN_PROMPTS, VALIDATION_PROMPTS
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
        mean = float(rewards.detach().mean())
        expected = -sum((float(r) - mean) * s for r, s in zip(rewards.detach(), seq)) / len(seq)
        assert pg_loss(*case.args).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_cases_probe_what_they_say():
    sft_cases = EXERCISES["sft_loss"].cases()
    for name in ("sft_loss", "kl_to_reference", "pg_loss"):  # every case said to have -inf padding has some
        for case in EXERCISES[name].cases() + EXERCISES[name].hidden_cases():
            assert torch.isinf(case.args[0]).any() == ("-inf" in case.about), (name, case.about)
    lengths = sft_cases[3].args[1].sum(dim=1)
    assert len(set(lengths.tolist())) == 3  # token mean and row mean differ
    kl_cases = EXERCISES["kl_to_reference"].cases()
    assert torch.all(kl_to_reference(*kl_cases[0].args) == 0)
    assert torch.all(kl_to_reference(*kl_cases[1].args) > 0)  # the policy samples what it likes
    run = EXERCISES["pg_loss"].call(pg_loss)
    loss, grad, _ = run(*EXERCISES["pg_loss"].cases()[0].args)
    assert loss == 0 and torch.all(grad == 0)  # equal rewards: nothing to learn
    _, grad, _ = run(*EXERCISES["pg_loss"].cases()[1].args)
    assert torch.all(grad[0] < 0) and torch.all(grad[1] > 0)  # minimising raises the better response
    scored = EXERCISES["pg_loss"].cases()[5].args[2]
    assert scored.requires_grad and all(not c.args[2].requires_grad for c in EXERCISES["pg_loss"].cases()[:5])


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


def sft_sums_everything_finite(logp, mask):
    """The right denominator, the wrong numerator: every finite entry, prompt included."""
    return -torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp)).sum() / mask.sum()


def sft_counts_the_prompt_value(logp, mask):
    """The prompt's log-probs in the value, but no gradient through them: only case 3 can see it."""
    outside = torch.where(mask | torch.isinf(logp), torch.zeros_like(logp), logp).detach()
    return -(logp[mask].sum() + outside.sum()) / mask.sum()


def sft_divides_by_batch_size(logp, mask):
    return -logp[mask].sum() / logp.shape[0]


def sft_divides_by_row_length(logp, mask):
    return -logp[mask].sum() / logp.shape[1]


@pytest.mark.parametrize("wrong", [sft_divides_by_row_length, sft_mean_of_all_entries])
def test_sft_wrong_denominator_is_named_as_such_not_blamed_on_the_mask(wrong):
    """Issue 19: a wrong denominator used to fail on a case whose hint blamed the mask."""
    with pytest.raises(CheckFailed) as err:
        check_sft_loss(wrong)
    message = str(err.value)
    assert "case 2 of 6 (prompt tokens whose log-prob is exactly 0" in message and "DENOMINATOR" in message
    assert "only the response tokens count" not in message


def test_sft_dividing_by_the_batch_size_is_caught_on_the_one_row_case():
    with pytest.raises(CheckFailed, match=r"(?s)case 1 of 6 .*nor a sum divided by the number of rows"):
        check_sft_loss(sft_divides_by_batch_size)


def test_sft_denominator_case_isolates_the_denominator():
    """The prompt's log-probs are 0 in case 2: a sum over the wrong entries passes it, a wrong divisor does not."""
    case = EXERCISES["sft_loss"].cases()[1]
    logp, mask = case.args
    assert torch.all(logp[~mask] == 0) and (~mask).any()
    assert sft_sums_everything_finite(*case.args).item() == pytest.approx(sft_loss(*case.args).item())


def sft_returns_float(logp, mask):
    return sft_loss(logp, mask).item()


def sft_detached(logp, mask):
    return sft_loss(logp.detach(), mask)


def sft_per_row(logp, mask):
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=1) / mask.sum()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (sft_no_minus, r"(?s)case 1 of 6 \(one response, no prompt tokens.*result\[0\] \(loss\).*Check the sign"),
        (sft_counts_the_prompt, r"(?s)case 2 of 6 \(prompt tokens whose log-prob is exactly 0.*DENOMINATOR"),
        (sft_mean_of_all_entries, r"(?s)case 2 of 6 \(prompt tokens whose log-prob is exactly 0.*DENOMINATOR"),
        (sft_sums_everything_finite, r"(?s)case 2 of 6 \(prompt tokens whose log-prob is exactly 0.*result\[1\] "
                                     r"\(d loss / d logp\).*your sum takes entries outside the mask"),
        (sft_counts_the_prompt_value, r"(?s)case 3 of 6 \(two rows, prompt tokens.*the NUMERATOR is not"),
        (sft_per_sequence_mean, r"(?s)case 4 of 6 \(responses of different lengths.*average over tokens, not over "
                                r"sequences"),
        (sft_sums, r"(?s)case 1 of 6 .*result\[0\] \(loss\).*a mean over its tokens, not a sum"),
        (sft_multiplies_by_mask, r"(?s)case 5 of 6 \(left padding whose log-prob is -inf.*non-finite value nan.*"
                                 r"-inf \* 0 is nan"),
        (sft_returns_float, r"case 1 of 6 .* raised TypeError: sft_loss should return a 0-d torch tensor"),
        (sft_detached, r"case 1 of 6 .* raised RuntimeError: sft_loss's loss has no gradient w\.r\.t\. `logp`"),
        (sft_per_row, r"case 1 of 6 .* raised ValueError: sft_loss should return one number for the whole batch"),
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
        (pg_no_baseline, r"(?s)case 1 of 6 \(every response has the same reward.*Subtract rewards\.mean\(\)"),
        (pg_no_minus, r"(?s)case 2 of 6 \(two responses, rewards \+1 and -1.*The minus sign"),
        (pg_token_mean, r"(?s)case 2 of 6 \(two responses.*the sum of the row's log-probs"),
        (pg_counts_the_prompt, r"(?s)case 3 of 6 \(prompt tokens and responses of different lengths.*no prompt tokens"),
        (pg_whitened, r"(?s)case 2 of 6 \(two responses.*no division by their standard deviation"),
        (pg_sums_over_batch, r"(?s)case 2 of 6 \(two responses.*the mean over responses, not the sum"),
        (pg_multiplies_by_mask, r"(?s)case 4 of 6 \(left padding whose log-prob is -inf.*multiplying by the mask gives "
                                r"nan"),
    ],
)
def test_pg_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_pg_loss(wrong)
    assert "Hint:" in str(err.value)


def pg_rewards_not_detached(logp, mask, rewards):
    return -((rewards - rewards.mean()) * _seq(logp, mask)).mean()


def test_pg_rewards_that_carry_a_gradient_must_be_detached():
    """Issue 19: the check used to accept a loss that back-propagates into the rewards (a reward model's scores)."""
    with pytest.raises(CheckFailed) as err:
        check_pg_loss(pg_rewards_not_detached)
    message = str(err.value)
    assert "case 6 of 6 (rewards straight from a reward model" in message
    assert "result[2] (d loss / d rewards)" in message and "detach them" in message
    detached = lambda logp, mask, rewards: pg_rewards_not_detached(logp, mask, rewards.detach())  # noqa: E731
    assert check_pg_loss(detached).status == "pass"


def test_pg_loss_value_and_logp_gradient_do_not_depend_on_detaching():
    """Only d loss / d rewards tells the two apart: the case compares exactly that."""
    case = EXERCISES["pg_loss"].cases()[5]
    run = EXERCISES["pg_loss"].call
    right, wrong = run(pg_loss)(*case.args), run(pg_rewards_not_detached)(*case.args)
    assert compare(right[:2], wrong[:2]) is None and compare(right[2], wrong[2]) is not None
    assert torch.all(right[2] == 0)


# ---- pg_kl_step: the build ---------------------------------------------------------------------------


from course_lib.checks.lesson09 import check_pg_kl_step, pg_kl_demo, pg_kl_step, tiny_batch  # noqa: E402


def _logp_of(model, ids, attn, P, shift=True):
    logits = model(input_ids=ids, attention_mask=attn).logits
    logits = logits[:, P - 1:-1] if shift else logits[:, P:]
    return torch.log_softmax(logits, -1).gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)


def _step(policy, reference, optimizer, ids, attn, P, rmask, rewards, beta, *, shift=True, use_mask=True,
          detach_kl=True, step=True, kl_sign=1.0):
    logp = _logp_of(policy, ids, attn, P, shift)
    with torch.no_grad():
        ref = _logp_of(reference, ids, attn, P, shift)
    m = rmask if use_mask else torch.ones_like(rmask)
    kl = kl_sign * torch.where(m, (logp.detach() if detach_kl else logp) - ref, torch.zeros_like(logp)).sum(-1)
    shaped = rewards - beta * kl
    adv = shaped - shaped.detach().mean()
    loss = -(adv * torch.where(m, logp, torch.zeros_like(logp)).sum(-1)).mean()
    optimizer.zero_grad()
    loss.backward()
    if step:
        optimizer.step()
    return loss.item(), kl.mean().item()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"shift": False}, r"(?s)case 1 of 5 \(one step from the start.*look at the shift"),
        ({"use_mask": False}, r"(?s)case 3 of 5 \(responses of 6, 2 and 4 tokens.*only the positions where "
                              r"response_mask is True count"),
        ({"detach_kl": False}, r"(?s)case 1 of 5 .*result\[2\] \(log pi\(y \| x\) of each response after the "
                               r"steps\).*must enter as data \(detached"),
        ({"step": False}, r"(?s)case 1 of 5 .*result\[2\].*exactly one zero_grad, backward and optimizer step"),
        ({"kl_sign": -1.0}, r"(?s)case 2 of 5 .*result\[1\] \(mean KL at each step\).*policy's log-prob minus the "
                            r"reference's"),
    ],
)
def test_pg_kl_step_wrong_builds_fail_where_their_mistake_shows(options, message):
    def wrong(*args):
        return _step(*args, **options)

    with pytest.raises(CheckFailed, match=message) as err:
        check_pg_kl_step(wrong)
    assert "Hint:" in str(err.value)


def test_pg_kl_step_an_independent_build_passes_and_the_behaviour_holds():
    assert check_pg_kl_step(lambda *args: _step(*args)).status == "pass"
    run = EXERCISES["pg_kl_step"].call(pg_kl_step)
    cases = EXERCISES["pg_kl_step"].cases()
    losses, kls, _ = run(*cases[0].args, **cases[0].kwargs)
    assert kls[0] == 0  # the policy is the reference before the first step
    losses, kls, _ = run(*cases[4].args, **cases[4].kwargs)
    assert torch.all(losses[1:] < losses[:-1])  # the loss falls on the tiny task
    ids, attn, rmask, _ = tiny_batch(3, [6, 2, 4])
    assert not rmask.all() and (attn[:, 3:].bool() == rmask).all()  # padding after EOS is masked out
    _, kls, preferred = pg_kl_demo(pg_kl_step, steps=8)
    assert kls[0] == 0 and kls[-1] > 0 and preferred[-1] > preferred[0]


# ---- the demonstrations ---------------------------------------------------------------------------


def test_demonstrations_are_training_prompts_one_per_topic_and_short():
    prompts = [p for p, _ in DEMONSTRATIONS]
    assert 24 <= len(DEMONSTRATIONS) <= 32 and len(set(prompts)) == len(prompts)
    assert all(p in TRAIN_PROMPTS and p not in VALIDATION_PROMPTS and p not in TEST_PROMPTS for p in prompts)
    topics = {p.split(" about ", 1)[1].rstrip(".?") for p in prompts}
    assert len(topics) == len(prompts)  # one phrasing per topic
    assert all(5 <= len(reply.split()) <= 25 and reply.strip() == reply for _, reply in DEMONSTRATIONS)


def test_demonstrations_are_positive_for_the_annotator():
    from course_lib.data.annotators import SimulatedAnnotator

    annotator = SimulatedAnnotator()
    replies = [reply for _, reply in DEMONSTRATIONS]
    assert min(annotator.tone(reply) for reply in replies) > 0.5  # every one warm: sentiment above neutral
    scores = annotator.scores([prompt for prompt, _ in DEMONSTRATIONS], replies)  # the rubric's gold, in [0, 1]
    assert scores.min() > 0.7 and scores.mean() > 0.9
