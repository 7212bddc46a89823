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

The two losses are checked on their value *and* on their gradient w.r.t. ``logp`` (as in lesson 7),
because a loss with the right value and the wrong slope trains the wrong thing. Masked-out entries
of the inputs hold values a real batch could hold there: prompt tokens with their own log-probs,
and padding whose log-prob may be -inf.
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import generator
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
    """Reference: -mean_b((R_b - mean(R)) * sum_t logp_bt over the mask), a 0-d tensor."""
    advantages = rewards - rewards.mean()  # (B,) the batch-mean baseline
    return -(advantages * masked_sum(logp, mask, dim=-1)).mean()


# ---- gradients through the student's loss --------------------------------------------------


def _with_grad(exercise: str):
    """An ``adapt`` for a loss: call ``fn`` with a fresh leaf ``logp`` as its first argument; return
    ``(loss, d loss / d logp)``.

    Raises (inside the check, so the student sees it as their function's error) when the result is not a
    0-d tensor with a gradient: a float, a per-response vector, or a detached loss.
    """

    def adapt(fn):
        def run(logp, *rest):
            logp = logp.detach().clone().requires_grad_(True)  # the student and the reference each get their own
            loss = fn(logp, *(r.clone() if isinstance(r, torch.Tensor) else r for r in rest))
            if not isinstance(loss, torch.Tensor):
                raise TypeError(f"{exercise} should return a 0-d torch tensor that can be back-propagated, got "
                                f"{type(loss).__name__}; keep to torch operations (no .item(), float() or numpy)")
            if loss.dim() != 0:
                raise ValueError(f"{exercise} should return one number for the whole batch, a 0-d tensor, got shape "
                                 f"{tuple(loss.shape)}")
            if not loss.requires_grad:
                raise RuntimeError(f"{exercise}'s loss has no gradient w.r.t. `logp`: it was detached somewhere "
                                   "(.detach(), torch.no_grad(), .item() or numpy); the optimiser could not use it")
            (grad,) = torch.autograd.grad(loss, logp, allow_unused=True)
            return loss.detach(), torch.zeros_like(logp) if grad is None else grad

        return run

    return adapt


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

_SFT_RULE = ("loss = -(sum of logp where mask is True) / (number of True entries in mask): one mean over every "
             "response token of the whole batch, a 0-d tensor, differentiable w.r.t. logp.")


def sft_loss_cases() -> list[Case]:
    """Seeded cases for ``sft_loss``; the adapter returns ``(loss, d loss / d logp)``."""
    return [
        Case(_batch(0, [0], [5]), {}, "one response, no prompt tokens",
             "the loss is the negative mean of the response's log-probs, -logp.mean() here: a mean, not a sum. "
             "Check the sign: log-probs are <= 0 and the loss must be >= 0 (we minimise the negative "
             "log-likelihood)."),
        Case(_batch(1, [4, 4], [3, 3]), {}, "two rows, prompt tokens in front of each response",
             "only the response tokens count: the prompt is given to the model, not learned. Keep the entries "
             "where mask is True (e.g. logp[mask], or torch.where(mask, logp, 0)), not the whole row."),
        Case(_batch(2, [2, 3, 2], [6, 2, 4]), {}, "responses of different lengths (6, 2 and 4 tokens)",
             "average over tokens, not over sequences: divide the sum over all masked-in tokens by their count "
             "(12 here), do not take each row's mean and then the mean of the rows (that gives a 2-token "
             "response as much weight as a 6-token one)."),
        Case(_batch(3, [3, 5, 2, 4], [4, 3, 5, 2], padding="-inf"), {},
             "left padding whose log-prob is -inf",
             "entries outside the mask can hold anything, even -inf, and must not reach the result: -inf * 0 is "
             "nan, so select (logp[mask] or torch.where(mask, logp, torch.zeros_like(logp))) instead of "
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


def check_sft_loss(fn) -> CheckResult:
    """Check a student's ``sft_loss(logp, mask) -> 0-d tensor`` (value and gradient)."""
    __tracebackhide__ = True
    return EXERCISES["sft_loss"].check(fn)


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


_KL_RULE = ("kl[b] = sum over t where mask[b, t] of (logp[b, t] - ref_logp[b, t]): one number per response, "
            "shape (B,), policy minus reference.")


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
             "outside the mask logp - ref_logp can be -inf - (-inf) = nan: select the masked-in entries "
             "(torch.where(mask, logp - ref_logp, 0)) before summing, do not multiply by the mask."),
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


def check_kl_to_reference(fn) -> CheckResult:
    """Check a student's ``kl_to_reference(logp, ref_logp, mask) -> (B,)``."""
    __tracebackhide__ = True
    return EXERCISES["kl_to_reference"].check(fn)


# ---- pg_loss -------------------------------------------------------------------------------


def _pg_args(seed: int, prompt_lengths, response_lengths, rewards=None, padding: str = "finite") -> tuple:
    """``(logp, mask, rewards)``: the policy's log-probs of its own samples and one annotator score per response."""
    logp, mask = _batch(seed, prompt_lengths, response_lengths, padding)
    if rewards is None:
        rewards = torch.round(torch.rand(len(prompt_lengths), generator=generator(seed + 2_000)) * 2 - 1, decimals=3)
    return logp, mask, torch.as_tensor(rewards, dtype=torch.float32)


_PG_RULE = ("loss = -mean over b of (rewards[b] - rewards.mean()) * (sum of logp[b, t] where mask[b, t]): "
            "a 0-d tensor, differentiable w.r.t. logp; rewards are data.")


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
             "entries outside the mask can hold -inf: select with torch.where(mask, logp, 0) before summing; "
             "multiplying by the mask gives nan."),
        Case(_pg_args(24, [6, 9, 7, 3, 8, 5, 4, 6], [8, 3, 5, 7, 2, 6, 4, 5]), {},
             "a batch of 8 with annotator-like scores in [-1, 1]",
             _PG_RULE + " The baseline is the plain mean of the rewards: do not divide by their standard deviation."),
    ]


def pg_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and rewards than the notebook's."""
    return [
        Case(_pg_args(120, [4, 1, 6, 2, 3], [1, 7, 3, 12, 5]), {}, "5 responses of 1 to 12 tokens", _PG_RULE),
        Case(_pg_args(121, [5, 3], [8, 8], rewards=[3.0, 1.0], padding="-inf"), {},
             "two rows, rewards 3 and 1, -inf padding", _PG_RULE),
        Case(_pg_args(122, [3, 8, 2, 6, 4, 7], [10, 2, 6, 4, 9, 3]), {}, "a batch of 6", _PG_RULE),
    ]


def check_pg_loss(fn) -> CheckResult:
    """Check a student's ``pg_loss(logp, mask, rewards) -> 0-d tensor`` (value and gradient)."""
    __tracebackhide__ = True
    return EXERCISES["pg_loss"].check(fn)


EXERCISES = {
    "sft_loss": Exercise("sft_loss", sft_loss, sft_loss_cases, sft_loss_hidden_cases,
                         adapt=_with_grad("sft_loss"), names=("loss", "d loss / d logp"),
                         rtol=1e-4, atol=1e-6),
    "kl_to_reference": Exercise("kl_to_reference", kl_to_reference, kl_to_reference_cases,
                                kl_to_reference_hidden_cases, rtol=1e-4, atol=1e-5),
    "pg_loss": Exercise("pg_loss", pg_loss, pg_loss_cases, pg_loss_hidden_cases,
                        adapt=_with_grad("pg_loss"), names=("loss", "d loss / d logp"),
                        rtol=1e-4, atol=1e-6),
}
