"""Checks for lesson 9's exercises: the SFT loss, the KL to the reference per sequence, the policy-gradient loss.

All three read the same thing, per-token log-probabilities ``logp`` (B, T) with a ``mask`` (B, T)
that is True on the response's tokens only (never on the prompt, never on padding), and weigh
them differently:

* ``sft_loss``: the demonstrator's tokens, weight 1 each, averaged over every response token of
  the batch (a token-level mean; Ouyang et al. 2022, Section 3.5);
* ``kl_to_reference``: the policy's own samples, the log-ratio to a frozen reference summed over
  each response (the k1 estimate of KL(pi || pi_ref) per prompt; Schulman 2020);
* ``pg_loss``: the policy's own samples, each response's summed log-prob weighted by its reward
  minus the batch-mean reward (REINFORCE with a baseline; Williams 1992).

* ``pg_kl_step`` (a whole-algorithm build): one REINFORCE step on KL-shaped rewards, from sampled token ids to an
  optimiser step, checked by what it does to a tiny random model (the losses, KLs and log-probs along a few steps).

The two losses are checked on their value *and* on their gradient w.r.t. ``logp`` (as in lesson 7),
because a loss with the right value and the wrong slope trains the wrong thing; ``pg_loss`` also on its gradient
w.r.t. rewards that carry one (a reward model's scores), which must be 0. Masked-out entries
of the inputs hold values a real batch could hold there: prompt tokens with their own log-probs,
and padding whose log-prob may be -inf.
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions
from course_lib.harness.lesson09 import loss_with_grad, pg_kl_run
from course_lib.harness.lesson09 import pg_kl_demo, tiny_batch  # noqa: F401  (imported from here by the lesson, tests)
from course_lib.harness.tensors import generator
from course_lib.rl import masked_mean, masked_sum

# ---- references ----------------------------------------------------------------------------


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reference: -sum(logp over the mask) / (number of masked-in tokens), a 0-d tensor.

    The loss of :func:`course_lib.llm.sft.sft_loss` once the log-probs are computed.
    """
    return -masked_mean(logp, mask)


def kl_to_reference(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reference: (B,) the sum over each response's tokens of logp - ref_logp, as
    :func:`course_lib.llm.rollout.sequence_kl` computes it."""
    return masked_sum(logp - ref_logp, mask, dim=-1)


def pg_loss(logp: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Reference: -mean_b((R_b - mean(R)) * sum_t logp_bt over the mask), a 0-d tensor; the rewards are data
    (detached: a reward model's scores that carry a gradient must not be trained by the policy's loss)."""
    rewards = rewards.detach()
    advantages = rewards - rewards.mean()  # (B,) the batch-mean baseline
    return -(advantages * masked_sum(logp, mask, dim=-1)).mean()


# ---- seeded inputs -------------------------------------------------------------------------


def _batch(seed: int, prompt_lengths, response_lengths, padding: str = "finite") -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, mask)`` of a left-padded batch laid out as :func:`course_lib.llm.generation.completion_logprobs`
    returns it: each row is padding, then prompt, then response, over T = max(prompt + response) positions.

    Response tokens have log-probs in (-4, -0.05); prompt tokens much lower ones, (-12, -6) (a model is
    bad at predicting a user's message), so a loss that counts them is far off; padding holds
    ``padding``: "finite" (log-probs like the prompt's) or "-inf" (an impossible token).
    """
    g = generator(seed)
    B = len(prompt_lengths)
    T = max(p + r for p, r in zip(prompt_lengths, response_lengths))
    logp = -12.0 + 6.0 * torch.rand((B, T), generator=g)  # (B, T) prompt-like values everywhere
    mask = torch.zeros((B, T), dtype=torch.bool)
    for b, (p, r) in enumerate(zip(prompt_lengths, response_lengths)):
        mask[b, T - r:] = True  # the response is the last r positions
        pad = T - p - r
        if pad and padding == "-inf":
            logp[b, :pad] = float("-inf")
    response = -0.05 - 3.95 * torch.rand((B, T), generator=g)  # (B, T)
    logp = torch.where(mask, response, logp)
    return logp, mask


# ---- sft_loss ------------------------------------------------------------------------------


def _prompt_at_zero(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with log-prob 0 on every entry outside the mask: a sum over the wrong entries goes unnoticed, so
    only a wrong denominator fails (the case isolates it)."""
    logp, mask = batch
    return torch.where(mask, logp, torch.zeros_like(logp)), mask

_SFT_RULE = ("loss = minus the sum of the masked-in log-probs divided by how many tokens the mask keeps: one mean "
             "over every response token of the whole batch, a 0-d tensor, differentiable w.r.t. logp.")


def sft_loss_cases() -> list[Case]:
    """Seeded cases for ``sft_loss``; the adapter returns ``(loss, d loss / d logp)``."""
    return [
        Case(_batch(0, [0], [5]), {}, "one response, no prompt tokens",
             "the loss is the negative mean of the response's log-probs (every entry is a response token here): "
             "a mean over its tokens, not a sum (nor a sum divided by the number of rows, 1 here). Check the sign: log-probs are <= 0 and the loss must be >= 0 (we minimise the "
             "negative log-likelihood)."),
        Case(_prompt_at_zero(_batch(5, [4, 4], [3, 3])), {},
             "prompt tokens whose log-prob is exactly 0: only the divisor can go wrong",
             "the prompt's log-probs are 0 here, so the sum is the same whichever entries you add: what differs "
             "is the DENOMINATOR. Divide by the number of response tokens (the mask's True entries, 6 here), not "
             "by the number of entries of logp (B * T = 14), not by the batch size B and not by the row length T. "
             "If the loss (result[0]) is right and only its gradient (result[1]) differs, the divisor is fine but "
             "your sum takes entries outside the mask: they add 0 to the value here, yet still get a gradient."),
        Case(_batch(1, [4, 4], [3, 3]), {}, "two rows, prompt tokens in front of each response",
             "the denominator is right now (the case before passed); the NUMERATOR is not: only the response "
             "tokens count, the prompt is given to the model, not learned. Add the entries where mask is True, "
             "not the whole row."),
        Case(_batch(2, [2, 3, 2], [6, 2, 4]), {}, "responses of different lengths (6, 2 and 4 tokens)",
             "average over tokens, not over sequences: divide the sum over all masked-in tokens by their count "
             "(12 here), do not take each row's mean and then the mean of the rows (that gives a 2-token "
             "response as much weight as a 6-token one)."),
        Case(_batch(3, [3, 5, 2, 4], [4, 3, 5, 2], padding="-inf"), {},
             "left padding whose log-prob is -inf",
             "entries outside the mask can hold anything, even -inf, and must not reach the result: -inf * 0 is "
             "nan, so select the masked-in entries (boolean indexing, or a where with 0 elsewhere) instead of "
             "multiplying by the mask."),
        Case(_batch(4, [6, 9, 7, 3, 8, 5, 4, 6], [8, 3, 5, 7, 2, 6, 4, 5]), {},
             "a batch of 8 as SFT sees it (prompts 3 to 9 tokens, responses 2 to 8)", _SFT_RULE),
    ]


def sft_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and shapes than the notebook's."""
    return [
        Case(_batch(100, [5, 2], [1, 9]), {}, "a 1-token and a 9-token response", _SFT_RULE),
        Case(_batch(101, [4, 2, 6], [3, 3, 3], padding="-inf"), {}, "three 3-token responses, -inf padding",
             _SFT_RULE),
        Case(_batch(102, [10, 3, 7, 12, 5, 8], [16, 4, 9, 2, 12, 7]), {}, "a batch of 6 with responses up to 16 tokens",
             _SFT_RULE),
    ]


# ---- kl_to_reference -----------------------------------------------------------------------


def _kl_args(seed: int, prompt_lengths, response_lengths, drift: float = 0.5, padding: str = "finite",
             same: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logp, ref_logp, mask)``: the policy's log-probs of its own samples and the reference's of the same tokens.

    The policy has drifted: on each response token its log-prob is the reference's plus N(drift, drift^2)
    (mostly higher, as it samples what it now likes, sometimes lower). Outside the mask both hold
    prompt-like or padding values.
    """
    logp, mask = _batch(seed, prompt_lengths, response_lengths, padding)
    if same:
        return logp, logp.clone(), mask
    g = generator(seed + 1_000)
    shift = drift + drift * torch.randn(logp.shape, generator=g)  # (B, T)
    ref_logp = torch.where(mask, logp - shift, logp + torch.randn(logp.shape, generator=g))
    ref_logp = torch.where(torch.isinf(logp), logp, ref_logp)  # padding: -inf in both
    return logp, ref_logp, mask


_KL_RULE = ("one number per response, shape (B,): the per-token log-ratios, policy minus reference, added up "
            "over the positions where that row's mask is True.")


def kl_to_reference_cases() -> list[Case]:
    """Seeded cases for ``kl_to_reference``."""
    return [
        Case(_kl_args(10, [2, 3], [4, 3], same=True), {}, "the policy equals the reference: KL 0 for every response",
             "when logp == ref_logp every log-ratio is 0, so the result is zeros of shape (B,): one number per "
             "response, not one for the batch."),
        Case(_kl_args(11, [0], [6]), {}, "one response, no prompt tokens",
             "sum the per-token log-ratios logp - ref_logp over the response (policy minus reference: the "
             "samples come from the policy, so this is positive on average). A sum, not a mean: the KL of a "
             "sequence adds up over its tokens."),
        Case(_kl_args(12, [3, 2, 4], [5, 2, 3]), {}, "prompt tokens in front of responses of different lengths",
             "only the response tokens count (where mask is True); the prompt is the same for both models. "
             "Return shape (B,): sum over the token axis (dim=-1), not over the batch."),
        Case(_kl_args(13, [2, 4, 3], [6, 3, 2], padding="-inf"), {}, "left padding whose log-prob is -inf in both",
             "outside the mask logp - ref_logp can be -inf - (-inf) = nan: replace what lies outside the mask "
             "by 0 before summing (a selection); do not multiply by the mask, since nan * 0 is still nan."),
        Case(_kl_args(14, [6, 9, 7, 3, 8, 5, 4, 6], [8, 3, 5, 7, 2, 6, 4, 5], drift=1.5), {},
             "a batch of 8 after much drift", _KL_RULE),
    ]


def kl_to_reference_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and amounts of drift than the notebook's."""
    return [
        Case(_kl_args(110, [4, 1, 6, 2], [1, 7, 3, 12], drift=0.2), {}, "4 responses of 1 to 12 tokens, little drift",
             _KL_RULE),
        Case(_kl_args(111, [5, 2], [8, 8], drift=3.0, padding="-inf"), {}, "two rows, much drift, -inf padding",
             _KL_RULE),
        Case(_kl_args(112, [3, 8, 2, 6, 4, 7], [10, 2, 6, 4, 9, 3]), {}, "a batch of 6", _KL_RULE),
    ]


# ---- pg_loss -------------------------------------------------------------------------------


def _pg_args(seed: int, prompt_lengths, response_lengths, rewards=None, padding: str = "finite") -> tuple:
    """``(logp, mask, rewards)``: the policy's log-probs of its own samples and one annotator score per response."""
    logp, mask = _batch(seed, prompt_lengths, response_lengths, padding)
    if rewards is None:
        rewards = torch.round(torch.rand(len(prompt_lengths), generator=generator(seed + 2_000)) * 2 - 1, decimals=3)
    return logp, mask, torch.as_tensor(rewards, dtype=torch.float32)


def _scored(values) -> torch.Tensor:
    """Rewards as a reward model returns them: a float tensor that requires grad (built here as a leaf)."""
    return torch.tensor(values, dtype=torch.float32).requires_grad_(True)


_PG_RULE = ("each response's advantage (its reward minus the batch's mean reward) times its sequence log-prob "
            "(the masked sum of its row); the loss is minus the mean of these products over the batch: a 0-d "
            "tensor, differentiable w.r.t. logp only; rewards are data.")


def pg_loss_cases() -> list[Case]:
    """Seeded cases for ``pg_loss``; the adapter returns ``(loss, d loss / d logp)``."""
    return [
        Case(_pg_args(20, [2, 2, 2], [4, 4, 4], rewards=[0.5, 0.5, 0.5]), {},
             "every response has the same reward: nothing to learn",
             "with the batch-mean baseline, equal rewards give advantages R_b - mean(R) = 0: loss 0 and gradient "
             "0. Subtract rewards.mean() from the rewards before weighting."),
        Case(_pg_args(21, [0, 0], [3, 3], rewards=[1.0, -1.0]), {}, "two responses, rewards +1 and -1, no prompt",
             "advantages are +1 and -1 here; the loss is -mean_b(A_b * log pi(y_b | x_b)) with the sequence "
             "log-prob log pi(y_b | x_b) = the sum of the row's log-probs. The minus sign: minimising it raises "
             "the log-prob of the better response (its gradient entries are -A_b / B). The baseline is the plain mean "
             "of the rewards (no division by their standard deviation), and the mean over responses, not the sum."),
        Case(_pg_args(22, [3, 2, 4, 1], [2, 5, 3, 4], rewards=[0.8, -0.2, 0.1, 0.5]), {},
             "prompt tokens and responses of different lengths",
             "each response's log-prob is the SUM of its response tokens' log-probs (mask True): no prompt "
             "tokens, and no division by the response's length. Then the mean over the B responses."),
        Case(_pg_args(23, [2, 4, 3], [3, 2, 5], rewards=[0.9, 0.3, -0.6], padding="-inf"), {},
             "left padding whose log-prob is -inf",
             "entries outside the mask can hold -inf: replace them by 0 (a selection) before summing; "
             "multiplying by the mask gives nan."),
        Case(_pg_args(24, [6, 9, 7, 3, 8, 5, 4, 6], [8, 3, 5, 7, 2, 6, 4, 5]), {},
             "a batch of 8 with rewards in [-1, 1]",
             _PG_RULE + " The baseline is the plain mean of the rewards: do not divide by their standard deviation."),
        Case(_pg_args(25, [2, 3, 1], [4, 3, 5], rewards=_scored([0.7, -0.4, 0.2])), {},
             "rewards straight from a reward model: they carry a gradient",
             "the rewards here come out of a reward model and still require grad. The policy's loss must not "
             "train the reward model: treat the rewards as constants (detach them) before the baseline and the "
             "product, so d loss / d rewards is 0. Otherwise minimising the loss would also push the scores of "
             "the responses the policy likes."),
    ]


def pg_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and rewards than the notebook's."""
    return [
        Case(_pg_args(120, [4, 1, 6, 2, 3], [1, 7, 3, 12, 5]), {}, "5 responses of 1 to 12 tokens", _PG_RULE),
        Case(_pg_args(121, [5, 3], [8, 8], rewards=[3.0, 1.0], padding="-inf"), {},
             "two rows, rewards 3 and 1, -inf padding", _PG_RULE),
        Case(_pg_args(122, [3, 8, 2, 6, 4, 7], [10, 2, 6, 4, 9, 3]), {}, "a batch of 6", _PG_RULE),
        Case(_pg_args(123, [4, 2, 5, 3], [6, 2, 3, 7], rewards=_scored([1.5, -0.5, 0.0, 0.25])), {},
             "4 responses scored by a reward model whose output requires grad", _PG_RULE),
    ]


EXERCISES = {
    "sft_loss": Exercise("sft_loss", sft_loss, sft_loss_cases, sft_loss_hidden_cases,
                         adapt=functools.partial(loss_with_grad, exercise="sft_loss"),
                         names=("loss", "d loss / d logp"), rtol=1e-4, atol=1e-6,
                         twins=("course_lib.rl.masked.masked_mean",)),
    "kl_to_reference": Exercise("kl_to_reference", kl_to_reference, kl_to_reference_cases,
                                kl_to_reference_hidden_cases, rtol=1e-4, atol=1e-5,
                                twins=("course_lib.rl.masked.masked_sum", "course_lib.llm.rollout.sequence_kl")),
    "pg_loss": Exercise("pg_loss", pg_loss, pg_loss_cases, pg_loss_hidden_cases,
                        adapt=functools.partial(loss_with_grad, exercise="pg_loss", rewards_grad=True),
                        names=("loss", "d loss / d logp", "d loss / d rewards"),
                        rtol=1e-4, atol=1e-6),
}

__getattr__ = check_functions(EXERCISES)


# ---- tier-2 hints ----------------------------------------------------------------------------

HINTS = {
    "sft_loss": (
        "A numerator and a denominator, both over the same tokens: the response tokens of the whole batch. "
        "Numerator: the sum of logp over the entries the mask keeps; pick them out by the boolean mask itself "
        "(indexing gives a flat vector of the kept entries), never by multiplying, since -inf * 0 is nan. "
        "Denominator: how many entries the mask keeps, over ALL rows at once (not per row, not B * T). Then flip "
        "the sign. Worked example: rows [-9, -1, -2] with mask [F, T, T] and [-inf, -8, -3] with mask [F, F, T]: "
        "the kept entries are -1, -2, -3, so the loss is 6 / 3 = 2.0 and the gradient is -1/3 on each of them, "
        "0 elsewhere."),
    "kl_to_reference": (
        "Per token, the log-ratio is the policy's log-prob minus the reference's (the samples came from the "
        "policy). Off the mask replace it by 0 BEFORE adding anything up, because -inf - (-inf) is nan and nan * 0 "
        "stays nan; a where with a zero tensor of the same shape does it. Then add up along the token axis only, "
        "one number per row. Worked example: logp rows [-5, -1, -0.5] and [-inf, -0.2, -0.1], ref_logp rows "
        "[-7, -2, -0.5] and [-inf, -1.2, -0.6], mask [F, T, T] on both rows: the result is [1.0, 1.5] (the first "
        "column, 2.0 and nan, is outside the mask)."),
    "pg_loss": (
        "Build it in three lines of thought. (1) Each response's sequence log-prob: the masked-in entries of its "
        "row, selected (not multiplied: padding may be -inf) and summed along the token axis, shape (B,). "
        "(2) The advantages: the rewards, detached (they are data; a reward model's scores may carry a "
        "gradient), minus their mean; no division by the std. (3) The loss: minus the mean over the batch of "
        "advantage times sequence log-prob. Worked example: sequence log-probs -3 and -1, rewards 0 and 1: "
        "advantages -0.5 and +0.5, loss = -((-0.5)(-3) + (0.5)(-1)) / 2 = -0.5; the gradient is +0.25 on the first "
        "row's response tokens and -0.25 on the second's."),
}


# ---- the whole-algorithm build: one policy-gradient step with a KL penalty ----------------------

BUILDS = ("pg_kl_step",)
"""Whole-algorithm builds of exercise 9 (the lesson may not print their source)."""


def pg_kl_step(policy, reference, optimizer, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int,
               response_mask: torch.Tensor, rewards: torch.Tensor, beta: float) -> tuple[float, float]:
    """Reference: one REINFORCE step on KL-shaped rewards; returns ``(loss, mean KL)`` before the step, as floats.

    logp (B, R) from one forward pass of ``policy`` (logits at P - 1 + t score response token t), ref_logp the same
    under ``reference`` without gradient; kl_b = masked sum of logp - ref_logp (k1); the shaped reward
    R_b - beta * kl_b and its batch-mean baseline are data; loss = -mean_b(A_b * masked sum of logp_b).
    """
    P = prompt_length
    responses = input_ids[:, P:]  # (B, R)
    mask = response_mask.bool()
    logits = policy(input_ids=input_ids, attention_mask=attention_mask).logits[:, P - 1:-1]  # (B, R, V)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)  # (B, R)
    with torch.no_grad():
        ref_logits = reference(input_ids=input_ids, attention_mask=attention_mask).logits[:, P - 1:-1]
        ref_logp = torch.log_softmax(ref_logits.float(), dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    seq_logp = masked_sum(logp, mask, dim=-1)  # (B,)
    kl = masked_sum(logp.detach() - ref_logp, mask, dim=-1)  # (B,) k1 per response, data
    shaped = rewards.detach() - beta * kl  # (B,)
    advantages = shaped - shaped.mean()  # (B,)
    loss = -(advantages * seq_logp).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach()), float(kl.mean())


_BUILD_RULE = ("one forward pass of the policy with gradient, one of the reference without; per-token log-probs of "
               "the response tokens read with the one-token shift; per response the KL (summed log-ratios over the "
               "response mask) and the shaped reward R - beta * KL, both data; advantages against the batch mean; "
               "loss = minus the batch mean of advantage times the response's summed log-prob; then zero_grad, "
               "backward and one optimizer step; return the loss and the mean KL as floats.")


def pg_kl_step_cases() -> list[Case]:
    """Seeded behaviour cases for ``pg_kl_step``: each trains a fresh tiny policy and compares the trajectories."""
    return [
        Case((0, [4, 4, 4]), {"beta": 0.1, "steps": 1}, "one step from the start: the policy IS the reference, KL 0",
             "before any step the policy and the reference are the same model, so every log-ratio is 0 and the "
             "mean KL must be exactly 0 (read both models on the same tokens, at the same positions, at the same "
             "temperature). The loss is then plain REINFORCE with the batch-mean baseline. If the KL is right and "
             "the loss is not, look at the shift: the logits at position P - 1 + t score response token t. If both "
             "are right and only the log-probs after the step (result[2]) differ, the update is not the one "
             "described: the KL and the shaped reward must enter as data (detached; at this step the KL is 0 but "
             "its gradient is not), and one call makes exactly one zero_grad, backward and optimizer step."),
        Case((1, [5, 5, 5, 5]), {"beta": 0.0, "steps": 3}, "beta = 0: three steps of REINFORCE on one batch",
             "the loss at step 2 and 3 is computed AFTER the previous optimizer step: call zero_grad, backward "
             "and step once each per call, and return the loss you back-propagated (as a float) from before the "
             "step. If step 1 passes and step 2 does not, the update itself differs: check the sign of the loss "
             "(minimising it must raise the log-prob of above-average responses) and the mean (not sum) over B. "
             "The KL is the policy's log-prob minus the reference's, summed over each response's mask; after a "
             "step that raised the sampled responses it is positive."),
        Case((2, [6, 2, 4]), {"beta": 0.1, "steps": 2},
             "responses of 6, 2 and 4 tokens: padding after EOS holds random ids",
             "only the positions where response_mask is True count, in the KL and in the summed log-prob: the ids "
             "after a response's EOS are random and their log-probs are meaningless. The EOS itself is a real "
             "token of the response (mask True)."),
        Case((3, [5, 3, 5, 4]), {"beta": 0.5, "steps": 4}, "beta = 0.5 over 4 steps: the KL grows and is charged",
             "the KL enters the loss only through the shaped reward R - beta * KL, which is data: compute it from "
             "detached log-probs (or detach it). A KL that still carries its gradient adds a second term to the "
             "update, and the trajectory drifts from step 2 on. " + _BUILD_RULE),
        Case((4, [4, 6, 5, 6, 3, 6]), {"beta": 0.05, "steps": 6},
             "6 responses, 6 steps on the tiny task: the loss falls", _BUILD_RULE),
    ]


def pg_kl_step_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, batch shapes, coefficients and numbers of steps than the notebook's."""
    return [
        Case((10, [7, 3]), {"beta": 0.2, "steps": 3}, "two responses of 7 and 3 tokens, beta 0.2", _BUILD_RULE),
        Case((11, [5, 5, 2, 5, 4]), {"beta": 1.0, "steps": 5, "P": 5}, "5 responses after a 5-token prompt, beta 1",
             _BUILD_RULE),
        Case((12, [3, 3, 3]), {"beta": 0.0, "steps": 2, "lr": 0.2}, "beta 0 and a larger learning rate", _BUILD_RULE),
    ]


EXERCISES["pg_kl_step"] = Exercise(
    "pg_kl_step", pg_kl_step, pg_kl_step_cases, pg_kl_step_hidden_cases, adapt=pg_kl_run,
    names=("loss at each step", "mean KL at each step", "log pi(y | x) of each response after the steps"),
    rtol=1e-3, atol=1e-4)

HINTS["pg_kl_step"] = (
    "Compose what you wrote. (1) Response log-probs: one forward pass of the policy on input_ids; the logits at "
    "positions P - 1 to P + R - 2 score the R response tokens (exercise 8's shift, here with a known P); normalise "
    "over the vocabulary and pick the sampled token at each position, (B, R). (2) The reference: the same, under "
    "torch.no_grad. (3) Per response: the KL (your kl_to_reference on detached log-probs) and the shaped reward "
    "R - beta * KL. (4) The loss: your pg_loss with the shaped rewards as the rewards (it detaches them and "
    "subtracts their mean). (5) zero_grad, backward, step; return float(loss), float(mean KL). Worked example: "
    "rewards [0.3, -0.1], KLs [2.0, 0.0], beta 0.1: shaped [0.1, -0.1], advantages [0.1, -0.1]; at the first step "
    "the KLs are 0 and the advantages are [0.2, -0.2].")
