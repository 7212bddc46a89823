"""Lesson 8's checks pass the library's references and fail plausible wrong versions with the right hint."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.checks.core import CheckFailed, compare
from course_lib.checks.lesson08 import (
    EXERCISES,
    check_per_token_rewards,
    check_sequence_logprob,
    check_temperature_entropy,
    per_token_rewards,
    sequence_logprob,
    temperature_entropy,
)


# ---- the references agree with independent computations ---------------------------------------


def test_sequence_logprob_is_the_sum_of_the_chosen_tokens_log_probs_by_loops():
    """A double loop over rows and positions, straight from log pi(y | x) = sum_t log pi(y_t | y_<t)."""
    for case in EXERCISES["sequence_logprob"].cases():
        logits, tokens, mask = case.args
        got = sequence_logprob(logits, tokens, mask)
        for b in range(tokens.shape[0]):
            total = 0.0
            for t in range(1, tokens.shape[1]):
                if mask[b, t]:
                    total += torch.log_softmax(logits[b, t - 1].double(), dim=-1)[tokens[b, t]].item()
            assert got[b].item() == pytest.approx(total, rel=1e-5, abs=1e-4)


def test_sequence_logprob_equals_completion_logprobs_on_a_tiny_model():
    """On a real (tiny, random) causal LM, the reference scores a completion as the library's scorer does."""
    from course_lib.llm.generation import completion_logprobs, encode_completions
    from course_lib.llm.models import tiny_model
    from course_lib.rl import masked_sum

    model, tok = tiny_model()
    prompts, completions = ["The robot", "A cat that presses the lever"], [" found the cheese.", " eats."]
    logp, mask = completion_logprobs(model, tok, prompts, completions)  # (B, T - 1) each
    enc = encode_completions(tok, prompts, completions)
    position_ids = (enc.attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, position_ids=position_ids).logits
    ours = sequence_logprob(logits, enc.input_ids, enc.completion_mask)
    assert torch.allclose(ours, masked_sum(logp, mask, dim=-1).detach(), atol=1e-5)


def test_entropy_limits():
    """Uniform logits: ln V at every temperature; a very low temperature: nearly 0 (the argmax)."""
    for temperature in (0.3, 1.0, 4.0):
        assert temperature_entropy(torch.zeros(12), temperature).item() == pytest.approx(math.log(12), rel=1e-6)
    logits = torch.tensor([3.0, 1.0, 0.5, -2.0])
    h = [temperature_entropy(logits, tau).item() for tau in (0.05, 0.5, 1.0, 2.0, 50.0)]
    assert h[0] < 1e-6 and h == sorted(h) and h[-1] == pytest.approx(math.log(4), abs=1e-2)


def test_per_token_rewards_puts_the_score_on_the_last_real_token_only():
    score, logp, ref_logp, mask, beta = EXERCISES["per_token_rewards"].cases()[3].args  # rows of 5, 2, 3 tokens
    rewards = per_token_rewards(score, logp, ref_logp, mask, beta)
    assert beta == 0.0
    expected = torch.zeros_like(rewards)
    for b, n in enumerate(mask.sum(dim=1).tolist()):
        expected[b, n - 1] = score[b]
    assert torch.equal(rewards, expected)
    rewards = per_token_rewards(torch.zeros(3), logp, ref_logp, mask, 0.5)
    assert torch.allclose(rewards, torch.where(mask, -0.5 * (logp - ref_logp), torch.zeros_like(logp)))


def test_cases_probe_what_they_say():
    seq = EXERCISES["sequence_logprob"].cases()
    assert seq[0].args[2][0, 1:].all() and not seq[0].args[2][0, 0]  # every token after the first
    assert (seq[2].args[1] == 0).any()  # left padding
    logits, tokens, mask = seq[3].args
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    assert (logp[mask[:, 1:]] < math.log(1e-40)).any()  # some chosen token is that unlikely
    ent = EXERCISES["temperature_entropy"].cases()
    logits, tau = ent[-1].args
    assert (torch.softmax(logits / tau, -1) == 0).any()  # probabilities that underflow to exactly 0
    rew = EXERCISES["per_token_rewards"].cases()
    assert not rew[3].args[3].all() and rew[0].args[3].all()


# ---- sequence_logprob: wrong versions ----------------------------------------------------------


def _gather(logits, tokens):
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def seq_no_shift(logits, tokens, mask):
    return torch.where(mask, _gather(logits, tokens), torch.zeros(())).sum(-1)


def seq_shift_the_wrong_way(logits, tokens, mask):
    return torch.where(mask[:, 1:], _gather(logits[:, 1:], tokens[:, :-1]), torch.zeros(())).sum(-1)


def seq_mask_ignored(logits, tokens, mask):
    return _gather(logits[:, :-1], tokens[:, 1:]).sum(-1)


def seq_mask_not_shifted(logits, tokens, mask):
    return torch.where(mask[:, :-1], _gather(logits[:, :-1], tokens[:, 1:]), torch.zeros(())).sum(-1)


def seq_mean(logits, tokens, mask):
    m = mask[:, 1:]
    return torch.where(m, _gather(logits[:, :-1], tokens[:, 1:]), torch.zeros(())).sum(-1) / m.sum(-1)


def seq_raw_logits(logits, tokens, mask):
    chosen = logits[:, :-1].gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.where(mask[:, 1:], chosen, torch.zeros(())).sum(-1)


def seq_log_of_softmax(logits, tokens, mask):
    logp = torch.log(torch.softmax(logits[:, :-1], -1)).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.where(mask[:, 1:], logp, torch.zeros(())).sum(-1)


def seq_sums_the_batch(logits, tokens, mask):
    total = torch.where(mask[:, 1:], _gather(logits[:, :-1], tokens[:, 1:]), torch.zeros(())).sum()
    return total.expand(tokens.shape[0])


def seq_probability_not_log(logits, tokens, mask):
    return torch.exp(sequence_logprob(logits, tokens, mask))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (seq_no_shift, r"(?s)case 1 of 5 \(one sequence.*The logits at position t predict token t \+ 1"),
        (seq_shift_the_wrong_way, r"(?s)case 1 of 5 \(one sequence.*predict token t \+ 1"),
        (seq_mask_ignored, r"(?s)case 2 of 5 \(a prompt of 4 tokens.*the prompt's log-probs must not enter the sum"),
        (seq_mask_not_shifted, r"(?s)case 1 of 5 .*masked with mask\[:, 1:\]"),
        (seq_mean, r"(?s)case 1 of 5 .*summed \(not averaged\)"),
        (seq_raw_logits, r"(?s)case 1 of 5 .*log_softmax, not the raw logits"),
        (seq_log_of_softmax, r"(?s)case 4 of 5 \(a very confident model.*non-finite value.*torch\.log_softmax computes"),
        (seq_sums_the_batch, r"(?s)case 3 of 5 \(3 left-padded rows.*each row is summed on its own"),
        (seq_probability_not_log, r"case 1 of 5 \(one sequence"),
    ],
)
def test_sequence_logprob_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_sequence_logprob(wrong)
    assert "Hint:" in str(err.value)


# ---- temperature_entropy: wrong versions --------------------------------------------------------


def ent_naive(logits, temperature):
    p = torch.softmax(logits / temperature, dim=-1)
    return -(p * torch.log(p)).sum(-1)


def ent_bits(logits, temperature):
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(2)


def ent_no_minus(logits, temperature):
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return (logp.exp() * logp).sum(-1)


def ent_times_temperature(logits, temperature):
    logp = torch.log_softmax(logits * temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def ent_ignores_temperature(logits, temperature):
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def ent_sums_everything(logits, temperature):
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return -(logp.exp() * logp).sum()


def ent_wrong_axis(logits, temperature):
    logp = torch.log_softmax(logits / temperature, dim=0)
    return -(logp.exp() * logp).sum(0)


def ent_temperature_after_softmax(logits, temperature):
    """Sharpens the probabilities p^(1/T) without renormalising them."""
    logp = torch.log_softmax(logits, dim=-1) / temperature
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (ent_naive, r"(?s)case 6 of 6 \(very sharp distributions.*non-finite value nan.*0 \* \(-inf\) = nan"),
        (ent_bits, r"(?s)case 1 of 6 \(equal logits.*expected 2\.07944, got 3\b.*natural log"),
        (ent_no_minus, r"(?s)case 1 of 6 \(equal logits.*Check the minus sign"),
        (ent_times_temperature, r"(?s)case 3 of 6 \(temperature 0\.5 sharpens.*divide the logits by the temperature"),
        (ent_ignores_temperature, r"(?s)case 3 of 6 \(temperature 0\.5.*softmax\(logits / temperature\)"),
        (ent_sums_everything, r"(?s)case 5 of 6 \(a \(B, T, V\) batch.*expected shape \(2, 3\), got shape \(\).*dim=-1"),
        (ent_wrong_axis, r"(?s)case 2 of 6 \(one distribution \(V = 10\)|case 5 of 6 \(a \(B, T, V\) batch"),
        (ent_temperature_after_softmax, r"(?s)case 3 of 6 \(temperature 0\.5"),
    ],
)
def test_temperature_entropy_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_temperature_entropy(wrong)
    assert "Hint:" in str(err.value)


# ---- per_token_rewards: wrong versions ----------------------------------------------------------


def _kl_penalty(logp, ref_logp, mask, beta):
    return torch.where(mask, -beta * (logp - ref_logp), torch.zeros_like(logp))


def _last_index(mask):
    return mask.long().cumsum(1).argmax(1)  # (B,) last True


def rew_score_on_every_token(score, logp, ref_logp, mask, beta):
    return _kl_penalty(logp, ref_logp, mask, beta) + torch.where(mask, score[:, None], torch.zeros(()))


def rew_score_on_first_token(score, logp, ref_logp, mask, beta):
    r = _kl_penalty(logp, ref_logp, mask, beta)
    r[:, 0] += score
    return r


def rew_score_on_last_column(score, logp, ref_logp, mask, beta):
    r = _kl_penalty(logp, ref_logp, mask, beta)
    r[:, -1] += score
    return r


def rew_kl_on_padding(score, logp, ref_logp, mask, beta):
    r = -beta * (logp - ref_logp)
    r[torch.arange(len(score)), _last_index(mask)] += score
    return r


def rew_kl_sign_flipped(score, logp, ref_logp, mask, beta):
    r = _kl_penalty(ref_logp, logp, mask, beta)
    r[torch.arange(len(score)), _last_index(mask)] += score
    return r


def rew_k3_penalty(score, logp, ref_logp, mask, beta):
    log_ratio = ref_logp - logp
    r = torch.where(mask, -beta * (torch.expm1(log_ratio) - log_ratio), torch.zeros_like(logp))
    r[torch.arange(len(score)), _last_index(mask)] += score
    return r


def rew_kl_summed_onto_the_last_token(score, logp, ref_logp, mask, beta):
    """The sequence KL as one penalty at the end: the right total, no per-token shaping."""
    total = _kl_penalty(logp, ref_logp, mask, beta).sum(1)
    r = torch.zeros_like(logp)
    r[torch.arange(len(score)), _last_index(mask)] = score + total
    return r


def rew_score_at_first_false(score, logp, ref_logp, mask, beta):
    """Off by one: the score lands after the last token (and wraps to column 0 for full rows)."""
    r = _kl_penalty(logp, ref_logp, mask, beta)
    r[torch.arange(len(score)), mask.sum(1) % mask.shape[1]] += score
    return r


@pytest.mark.parametrize(
    "wrong, message",
    [
        (rew_score_on_every_token, r"(?s)case 1 of 6 \(beta = 0, no padding.*not the score on every token"),
        (rew_score_on_first_token, r"(?s)case 1 of 6 \(beta = 0.*score\[b\] goes on the last response token"),
        (rew_score_on_last_column, r"(?s)case 4 of 6 \(rows of different lengths.*not the last column"),
        (rew_kl_on_padding, r"(?s)case 5 of 6 \(padding after EOS holds meaningless.*get reward 0"),
        (rew_kl_sign_flipped, r"(?s)case 2 of 6 \(score 0: only the per-token KL penalty.*logp - ref_logp"),
        (rew_k3_penalty, r"(?s)case 2 of 6 \(score 0.*\(k1\)"),
        (rew_kl_summed_onto_the_last_token, r"(?s)case 2 of 6 \(score 0: only the per-token KL penalty"),
        (rew_score_at_first_false, r"(?s)case 1 of 6 \(beta = 0"),
    ],
)
def test_per_token_rewards_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_per_token_rewards(wrong)
    assert "Hint:" in str(err.value)


def test_per_token_rewards_in_place_edits_do_not_leak_between_cases():
    """A student function that edits its inputs in place is judged on its result, not on what it did to them."""

    def editing(score, logp, ref_logp, mask, beta):
        r = torch.where(mask, -beta * (logp.sub_(ref_logp)), torch.zeros_like(logp))  # edits logp in place
        r[torch.arange(len(score)), _last_index(mask)] += score
        return r

    assert check_per_token_rewards(editing).status == "pass"


# ---- graded concept check and prediction ---------------------------------------------------------

from course_lib.checks.core import CheckFailed as _CheckFailed  # noqa: E402
from course_lib.checks.lesson08 import (  # noqa: E402
    CREDIT_SETTINGS,
    check_credit_assignment,
    check_entropy_prediction,
    credit_assignment,
)


def test_credit_assignment_right_answer_passes_and_wrong_ones_are_explained_without_the_answer():
    right = credit_assignment()
    assert set(right) == set(CREDIT_SETTINGS) and check_credit_assignment(dict(right)).status == "pass"
    for setting in CREDIT_SETTINGS:
        for letter in "ABCDE":
            if letter == right[setting]:
                continue
            wrong = dict(right, **{setting: letter.lower()})
            with pytest.raises(_CheckFailed) as err:
                check_credit_assignment(wrong)
            message = str(err.value)
            assert f"'{setting}' (you chose '{letter.lower()}'): " in message  # an explanation, not the generic line
            assert f"'{right[setting]}'" not in message


def test_entropy_prediction_feedback():
    assert check_entropy_prediction(" b ").status == "pass"
    for letter in "ACD":
        with pytest.raises(_CheckFailed, match=r"is not the right one yet: ") as err:
            check_entropy_prediction(letter)
        assert "'B'" not in str(err.value)


def test_entropy_rises_with_temperature_at_every_position_as_the_prediction_says():
    """The claim behind the right prediction, on random logits of several scales."""
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 20, 64)[:, None]
    h = torch.stack([temperature_entropy(logits, tau) for tau in (0.5, 1.0, 2.0)])  # (3, 64)
    assert torch.all(h[0] <= h[1] + 1e-6) and torch.all(h[1] <= h[2] + 1e-6) and torch.all(h[2] <= math.log(50) + 1e-5)


def test_the_reward_bug_is_named_with_feedback_that_does_not_give_it_away(capsys):
    import torch

    from course_lib.checks.core import CheckFailed
    from course_lib.checks.lesson08 import REWARD_BUG_FEEDBACK, check_reward_bug, per_token_rewards_cases

    check_reward_bug(" b ")
    assert "Why: a response that stopped early" in capsys.readouterr().out
    for wrong in "ACD":
        with pytest.raises(CheckFailed) as err:
            check_reward_bug(wrong)
        assert REWARD_BUG_FEEDBACK[wrong][:40] in str(err.value) and "padding column" not in str(err.value)
    assert per_token_rewards_cases  # the fix is exercise 3, checked by check_per_token_rewards


def test_the_buggy_version_fails_the_fix_check_where_a_response_stopped_early():
    """The demo's buggy function, as the learner would submit it unfixed, fails exercise 3's check."""
    import torch

    from course_lib.checks.core import CheckFailed
    from course_lib.checks.lesson08 import check_per_token_rewards

    def buggy(score, logp, ref_logp, mask, beta):
        B, R = logp.shape
        out = torch.zeros(B, R, dtype=logp.dtype)
        for b in range(B):
            for t in range(R):
                if mask[b, t]:
                    out[b, t] = -beta * (logp[b, t] - ref_logp[b, t])
            out[b, R - 1] = out[b, R - 1] + score[b]
        return out

    with pytest.raises(CheckFailed, match="last"):
        check_per_token_rewards(buggy)
