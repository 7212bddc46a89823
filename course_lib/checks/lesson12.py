"""Checks for lesson 12's exercises: sequence log-probs of responses, the DPO loss, DPO's per-pair gradient weight.

* ``sequence_logps``: log pi(y|x) of each response from the model's logits, the sum over the response's
  tokens only, with next-token prediction's shift by one (what :func:`course_lib.llm.dpo.pair_logps`
  computes through :func:`course_lib.llm.generation.completion_logprobs` and :func:`course_lib.rl.masked_sum`);
* ``dpo_loss_fn``: Rafailov et al. (2023), Eq. 7 (:func:`course_lib.rl.dpo_loss`);
* ``dpo_gradient_weight``: the weight sigmoid(r_l - r_w) each pair gets in the DPO gradient (Rafailov et
  al. 2023, Section 4): pairs that the implicit reward already orders well get little.

Shapes: B sequences (or pairs), T tokens, V vocabulary. A sequence is left padding, then the prompt,
then the response, as :func:`course_lib.llm.generation.encode_completions` lays it out.
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator
from course_lib.rl import dpo_loss, masked_sum, token_logprobs

# ---- references ----------------------------------------------------------------------------


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Reference: (B,) sum over the response tokens t of log softmax(logits[b, t - 1])[input_ids[b, t]].

    Args:
        logits: (B, T, V): ``logits[b, t]`` scores the token at position t + 1.
        input_ids: (B, T) token ids (left padding, prompt, response).
        response_mask: (B, T) bool, True on the response's tokens (never at position 0).
    """
    logp = token_logprobs(logits[:, :-1, :], input_ids[:, 1:])  # (B, T-1): entry t scores token t + 1
    return masked_sum(logp, response_mask[:, 1:], dim=-1)  # (B,)


def dpo_loss_fn(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Reference: -mean log sigmoid(beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))), a 0-d tensor."""
    loss, _ = dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta)
    return loss


def dpo_gradient_weight(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                        ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Reference: (B,) sigmoid(r_l - r_w) with the implicit rewards r = beta * (logp - ref_logp)."""
    reward_chosen = beta * (logp_chosen - ref_chosen)  # (B,)
    reward_rejected = beta * (logp_rejected - ref_rejected)  # (B,)
    return torch.sigmoid(reward_rejected - reward_chosen)


# ---- seeded inputs -------------------------------------------------------------------------


def _sequences(seed: int, prompt_lengths, response_lengths, V: int = 11, scale: float = 2.0, offset: float = 0.0,
               padding_logits: float | None = None) -> tuple:
    """``(logits, input_ids, response_mask)`` for B left-padded sequences of a prompt and a response.

    ``offset`` is added to every logit (log-probs do not change, raw logits do); ``padding_logits`` fills the
    padded positions' logits (e.g. nan: what a model may compute there is meaningless).
    """
    g = generator(seed)
    B = len(prompt_lengths)
    T = max(p + r for p, r in zip(prompt_lengths, response_lengths))
    logits = scale * torch.randn((B, T, V), generator=g) + offset  # (B, T, V)
    input_ids = torch.randint(1, V, (B, T), generator=g)  # (B, T); id 0 is the pad token
    response_mask = torch.zeros((B, T), dtype=torch.bool)
    for b, (p, r) in enumerate(zip(prompt_lengths, response_lengths)):
        input_ids[b, :T - p - r] = 0
        response_mask[b, T - r:] = True
        if padding_logits is not None:
            logits[b, :T - p - r] = padding_logits
    return logits, input_ids, response_mask


def _pair_logps(seed: int, B: int, drift: float = 1.0, same: bool = False, scale: float = 1.0) -> tuple:
    """``(logp_chosen, logp_rejected, ref_chosen, ref_rejected)``, each (B,): sequence log-probs of a few tens of
    nats; the policy's are the reference's plus N(0, drift^2) (or equal with ``same``), all times ``scale``."""
    g = generator(seed)
    ref_chosen = -scale * (5 + 30 * torch.rand(B, generator=g))
    ref_rejected = -scale * (5 + 30 * torch.rand(B, generator=g))
    if same:
        return ref_chosen.clone(), ref_rejected.clone(), ref_chosen, ref_rejected
    logp_chosen = ref_chosen + scale * drift * torch.randn(B, generator=g)
    logp_rejected = ref_rejected + scale * drift * torch.randn(B, generator=g)
    return logp_chosen, logp_rejected, ref_chosen, ref_rejected


# ---- sequence_logps -------------------------------------------------------------------------

_SEQ_RULE = ("logp = log_softmax(logits[:, :-1], dim=-1) gathered at input_ids[:, 1:] (shape (B, T-1)); keep the "
             "entries where response_mask[:, 1:] is True (torch.where), sum over the tokens: shape (B,).")


def sequence_logps_cases() -> list[Case]:
    """Seeded cases for ``sequence_logps``."""
    return [
        Case(_sequences(50, [3], [4]), {}, "one sequence, a 3-token prompt and a 4-token response, no padding",
             "the logits at position t predict the token at t + 1: the response token at position t is scored by "
             "logits[:, t - 1]. Shift: logits[:, :-1] against input_ids[:, 1:] and response_mask[:, 1:]."),
        Case(_sequences(51, [2, 4], [3, 3], offset=5.0), {}, "logits with a large constant added",
             "a log-prob is log_softmax(logits)[token], not the raw logit: adding a constant to every logit "
             "changes the raw values but not the probabilities."),
        Case(_sequences(52, [5, 2, 3], [2, 4, 3]), {}, "prompts and responses of different lengths, left padding",
             "sum over the response's tokens only: the prompt's tokens are given, not generated, and the padding "
             "is not text. Use response_mask (shifted by one, like the targets)."),
        Case(_sequences(53, [2, 3], [4, 1], padding_logits=float("nan")), {},
             "padding whose logits are nan",
             "outside the response anything can sit in the logits, even nan; nan * 0 is nan, so select with "
             "torch.where(mask, logp, 0) before summing instead of multiplying by the mask."),
        Case(_sequences(54, [3, 4, 3, 4], [5, 2, 3, 6]), {}, "a batch of 2 pairs: 2 chosen rows, then 2 rejected",
             "one number per sequence, the sum (not the mean) of its response tokens' log-probs: " + _SEQ_RULE),
    ]


def sequence_logps_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and shapes than the notebook's."""
    return [
        Case(_sequences(150, [1, 6], [7, 2], V=17), {}, "a one-token prompt, 17-token vocabulary", _SEQ_RULE),
        Case(_sequences(151, [4, 2, 5], [1, 5, 3], offset=-3.0, padding_logits=float("nan")), {},
             "nan padding and shifted logits", _SEQ_RULE),
        Case(_sequences(152, [3] * 6, [2, 3, 4, 5, 6, 7], scale=4.0), {}, "6 sequences, sharp distributions", _SEQ_RULE),
    ]


def check_sequence_logps(fn) -> CheckResult:
    """Check a student's ``sequence_logps(logits, input_ids, response_mask) -> (B,)``."""
    __tracebackhide__ = True
    return EXERCISES["sequence_logps"].check(fn)


# ---- dpo_loss_fn ------------------------------------------------------------------------------

_LOSS_RULE = ("with the implicit rewards r_w = beta * (logp_chosen - ref_chosen) and r_l = beta * (logp_rejected - "
              "ref_rejected): loss = mean over pairs of -F.logsigmoid(r_w - r_l), a 0-d tensor.")


def dpo_loss_fn_cases() -> list[Case]:
    """Seeded cases for ``dpo_loss_fn``."""
    return [
        Case((*_pair_logps(60, 4, same=True), 0.1), {}, "the policy equals the reference: the loss is ln 2",
             "the implicit reward is a log-RATIO to the reference, beta * (logp - ref_logp), which is 0 here for "
             "both responses, so every pair's loss is -log sigmoid(0) = ln 2 = 0.693. Return the mean, a 0-d tensor."),
        Case((*_pair_logps(61, 4), 0.1), {}, "4 pairs, beta = 0.1",
             "the argument of the sigmoid is beta * (chosen log-ratio - rejected log-ratio): chosen minus rejected, "
             "each log-ratio policy minus reference. The loss is -log sigmoid of it, averaged over the pairs."),
        Case((*_pair_logps(62, 4), 0.5), {}, "the same kind of pairs with beta = 0.5",
             "beta multiplies the log-ratios INSIDE the sigmoid; it is the scale of the implicit reward, not a weight "
             "on the loss."),
        Case((*_pair_logps(63, 3, drift=400.0, scale=1.0), 1.0), {}, "log-ratios of hundreds of nats",
             "for a margin below about -104, sigmoid underflows to 0 in float32 and log(0) = -inf: use "
             "F.logsigmoid(x), never torch.log(torch.sigmoid(x))."),
        Case((*_pair_logps(64, 8, drift=3.0), 0.2), {}, "a batch of 8 pairs", _LOSS_RULE),
    ]


def dpo_loss_fn_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and betas than the notebook's."""
    return [
        Case((*_pair_logps(160, 2), 0.05), {}, "2 pairs, beta = 0.05", _LOSS_RULE),
        Case((*_pair_logps(161, 5, drift=300.0), 2.0), {}, "huge log-ratios, beta = 2", _LOSS_RULE),
        Case((*_pair_logps(162, 16, drift=0.3), 0.1), {}, "16 pairs, small drift", _LOSS_RULE),
    ]


def check_dpo_loss_fn(fn) -> CheckResult:
    """Check a student's ``dpo_loss_fn(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta) -> 0-d tensor``."""
    __tracebackhide__ = True
    return EXERCISES["dpo_loss_fn"].check(fn)


# ---- dpo_gradient_weight ----------------------------------------------------------------------

_WEIGHT_RULE = ("with r_w = beta * (logp_chosen - ref_chosen) and r_l = beta * (logp_rejected - ref_rejected): "
                "return torch.sigmoid(r_l - r_w), one weight per pair, shape (B,).")


def dpo_gradient_weight_cases() -> list[Case]:
    """Seeded cases for ``dpo_gradient_weight``."""
    return [
        Case((*_pair_logps(70, 3, same=True), 0.1), {}, "the policy equals the reference: every weight is 0.5",
             "at the start both implicit rewards are 0, so every pair gets sigmoid(0) = 0.5. Return one weight per "
             "pair, shape (B,), not their mean."),
        Case((*_pair_logps(71, 4, drift=10.0), 0.1), {}, "pairs ordered well and badly by the implicit reward",
             "the weight is large when the implicit reward orders the pair WRONGLY: sigmoid(r_l - r_w), rejected "
             "minus chosen. A pair with r_w >> r_l is already learned and gets a weight near 0."),
        Case((*_pair_logps(72, 4, drift=10.0), 0.5), {}, "the same kind of pairs with beta = 0.5",
             "beta scales the implicit rewards inside the sigmoid; the weight itself is a number in (0, 1) (the beta "
             "in front of the gradient is not part of it)."),
        Case((*_pair_logps(73, 6, drift=20.0), 0.1), {}, "6 pairs, the reference's log-probs differ a lot",
             "the implicit reward is relative to the reference: r = beta * (logp - ref_logp). " + _WEIGHT_RULE),
    ]


def dpo_gradient_weight_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and betas than the notebook's."""
    return [
        Case((*_pair_logps(170, 5, drift=5.0), 0.2), {}, "5 pairs, beta = 0.2", _WEIGHT_RULE),
        Case((*_pair_logps(171, 2, drift=50.0), 1.0), {}, "2 pairs far apart, beta = 1", _WEIGHT_RULE),
        Case((*_pair_logps(172, 10, drift=2.0), 0.05), {}, "10 pairs, beta = 0.05", _WEIGHT_RULE),
    ]


def check_dpo_gradient_weight(fn) -> CheckResult:
    """Check a student's ``dpo_gradient_weight(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta) -> (B,)``."""
    __tracebackhide__ = True
    return EXERCISES["dpo_gradient_weight"].check(fn)


EXERCISES = {
    "sequence_logps": Exercise("sequence_logps", sequence_logps, sequence_logps_cases, sequence_logps_hidden_cases,
                               adapt=cloned, rtol=1e-4, atol=1e-4),
    "dpo_loss_fn": Exercise("dpo_loss_fn", dpo_loss_fn, dpo_loss_fn_cases, dpo_loss_fn_hidden_cases, adapt=cloned,
                            rtol=1e-4, atol=1e-5),
    "dpo_gradient_weight": Exercise("dpo_gradient_weight", dpo_gradient_weight, dpo_gradient_weight_cases,
                                    dpo_gradient_weight_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5),
}

