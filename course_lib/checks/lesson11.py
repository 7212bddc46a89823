"""Checks for lesson 11's exercises: whitened advantages, the k1 and k3 KL estimates, an adaptive KL coefficient.

Three small pieces of the RLHF loop that lessons 7 to 9 did not write yet:

* ``whiten``: phase 5 of :func:`course_lib.llm.ppo.rlhf_ppo`, the advantages made mean 0 and standard
  deviation 1 over the batch's *real* response tokens (:func:`course_lib.rl.masked_whiten`);
* ``kl_estimates``: the KL of a sampled response to the reference, summed over its tokens, with
  Schulman's k1 (the log-ratio, what ``rlhf/kl`` logs) and k3 (never negative per token)
  (:func:`course_lib.rl.kl_k1`, :func:`course_lib.rl.kl_k3`);
* ``adaptive_kl_coef``: the proportional controller of Ziegler et al. (2019, Section 2.2) that moves
  beta towards a target KL; the course's ``rlhf_ppo`` keeps beta fixed, so this is the "one line away".

Shapes: B responses, R response tokens, right-padded after each response's last token, as
:func:`course_lib.llm.rollout.sample_responses` lays them out (mask True up to and including the EOS).
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator
from course_lib.rl import kl_k1, kl_k3, masked_sum, masked_whiten

# ---- references ----------------------------------------------------------------------------


def whiten(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reference: (A - mean) / sqrt(var + 1e-8) over the masked-in entries of the whole batch, 0 elsewhere.

    The variance is the unbiased one (divided by n - 1), as :func:`course_lib.rl.masked_whiten` computes it.

    Args:
        advantages: (B, R) floats. mask: (B, R) bool, True on the real response tokens.

    Returns:
        (B, R).
    """
    return masked_whiten(advantages, mask)


def kl_estimates(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: ``(k1, k3)``, each (B,): per-token estimates of KL(pi || pi_ref) summed over each response.

    With r_t = log pi_ref(y_t) - log pi(y_t) for tokens sampled from pi: k1_t = -r_t, k3_t = (e^r_t - 1) - r_t
    (Schulman 2020).
    """
    k1 = masked_sum(kl_k1(logp, ref_logp), mask, dim=-1)  # (B,)
    k3 = masked_sum(kl_k3(logp, ref_logp), mask, dim=-1)  # (B,)
    return k1, k3


def adaptive_kl_coef(beta: float, kl: float, target: float, n_steps: int, horizon: float) -> float:
    """Reference: one update of the adaptive KL controller (Ziegler et al. 2019, Section 2.2; as in their
    ``lm-human-preferences`` code and TRL's ``AdaptiveKLController``):

        e = clip(kl / target - 1, -0.2, 0.2)          the proportional error, relative and clipped
        beta_new = beta * (1 + e * n_steps / horizon)
    """
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return float(beta * (1.0 + error * n_steps / horizon))


# ---- seeded inputs -------------------------------------------------------------------------


def _mask(lengths, R: int | None = None) -> torch.Tensor:
    """(B, R) bool: row b is True on its first ``lengths[b]`` positions (the response), False after (padding)."""
    R = R or max(lengths)
    return torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]


def _advantages(seed: int, lengths, R: int | None = None, padding: float = 0.0, row_shift=None) -> tuple:
    """``(advantages, mask)`` as GAE returns them: real tokens hold advantages of a few units, padding ``padding``
    (0 from :func:`course_lib.rl.gae`; other values test that it is left out). ``row_shift`` adds a number per row
    (responses that scored better or worse than the value head expected)."""
    g = generator(seed)
    mask = _mask(lengths, R)
    adv = 0.5 + 1.5 * torch.randn(mask.shape, generator=g)  # (B, R)
    if row_shift is not None:
        adv = adv + torch.tensor(row_shift, dtype=torch.float32)[:, None]
    return torch.where(mask, adv, torch.full_like(adv, padding)), mask


def _logps(seed: int, lengths, R: int | None = None, drift: float = 0.5, padding: str = "finite",
           same: bool = False) -> tuple:
    """``(logp, ref_logp, mask)``: the policy's log-probs of its own sampled tokens and the reference's.

    On each real token log pi = log pi_ref + N(drift, drift^2): mostly raised (the policy samples what it now
    likes), sometimes lowered. Padding holds finite log-probs (a forward pass computes them), or -inf in both.
    """
    g = generator(seed)
    mask = _mask(lengths, R)
    ref_logp = torch.log(0.02 + 0.9 * torch.rand(mask.shape, generator=g))  # (B, R)
    logp = ref_logp.clone() if same else ref_logp + drift + drift * torch.randn(mask.shape, generator=g)
    logp = torch.minimum(logp, torch.full_like(logp, -1e-3))  # log-probs stay below 0
    if padding == "-inf":
        logp = torch.where(mask, logp, torch.full_like(logp, float("-inf")))
        ref_logp = torch.where(mask, ref_logp, torch.full_like(ref_logp, float("-inf")))
    return logp, ref_logp, mask


# ---- whiten --------------------------------------------------------------------------------

_WHITEN_RULE = ("mean and unbiased variance (divide by n - 1) over every entry where mask is True, in the whole "
                "batch; result (A - mean) / sqrt(var + 1e-8) on those entries and 0 on padding, shape (B, R).")


def whiten_cases() -> list[Case]:
    """Seeded cases for ``whiten``."""
    return [
        Case(_advantages(30, [5]), {}, "one response of 5 tokens, no padding",
             "subtract the mean of the advantages and divide by their standard deviation, so the result has mean "
             "0 and standard deviation 1. Use the unbiased variance, divided by n - 1 (torch.var's default), "
             "not by n: with 5 tokens the two differ by 12%."),
        Case(_advantages(32, [4, 4, 4], row_shift=[3.0, 0.0, -3.0]), {},
             "one response much better than expected, one much worse",
             "one mean and one variance for the whole batch, not one per row: whitening each row separately would "
             "erase which response was better (every row would get mean 0)."),
        Case(_advantages(31, [6, 2, 4]), {}, "padding after short responses (GAE put 0 there)",
             "the mean and the variance are taken over the real tokens only (mask True): the zeros on padding are "
             "not advantages, and counting them pulls the mean towards 0. Padding positions must come out 0."),
        Case(_advantages(33, [5, 3], padding=7.5), {}, "padding that holds a meaningless number",
             "outside the mask the input can hold anything; select with the mask (advantages[mask], or "
             "torch.where) for the statistics, and put 0 on padding in the result."),
        Case(_advantages(34, [8, 3, 5, 7, 2, 6, 4, 5]), {}, "a batch of 8 as rlhf_ppo whitens it", _WHITEN_RULE),
    ]


def whiten_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and shapes than the notebook's."""
    return [
        Case(_advantages(130, [3]), {}, "a 3-token response", _WHITEN_RULE),
        Case(_advantages(131, [9, 1, 4, 6], padding=-2.0), {}, "a one-token response among padded rows", _WHITEN_RULE),
        Case(_advantages(132, [5, 5, 5, 5], row_shift=[1.0, -1.0, 2.0, 0.5]), {}, "rows at different levels",
             _WHITEN_RULE),
    ]


def check_whiten(fn) -> CheckResult:
    """Check a student's ``whiten(advantages, mask) -> (B, R)``."""
    __tracebackhide__ = True
    return EXERCISES["whiten"].check(fn)


# ---- kl_estimates --------------------------------------------------------------------------

_KL_RULE = ("with r = ref_logp - logp on the response tokens: k1[b] = sum of -r, k3[b] = sum of (exp(r) - 1) - r, "
            "both over the tokens where mask[b] is True; return (k1, k3), each of shape (B,).")


def kl_estimates_cases() -> list[Case]:
    """Seeded cases for ``kl_estimates``."""
    return [
        Case(_logps(40, [4, 3], same=True), {}, "the policy equals the reference: both estimates are 0",
             "when logp == ref_logp every log-ratio is 0, so k1 and k3 are zeros of shape (B,): one number per "
             "response. Return a tuple (k1, k3)."),
        Case(_logps(41, [6]), {}, "one response, no padding",
             "k1 is the sum over the response of log pi - log pi_ref (policy minus reference). For k3 take "
             "r = log pi_ref - log pi (reference minus policy: the samples come from the policy) and sum "
             "(exp(r) - 1) - r, best written torch.expm1(r) - r. Sums over the tokens, not means."),
        Case(_logps(42, [5, 2, 4], drift=1.0), {}, "responses of different lengths, padding after EOS",
             "only the response tokens count (mask True); the padding after a response that ended early holds "
             "log-probs too. Sum over the token axis (dim=-1), one number per response."),
        Case(_logps(43, [3, 5], padding="-inf"), {}, "padding whose log-probs are -inf in both",
             "outside the mask, -inf - (-inf) is nan, and nan * 0 is nan: select with torch.where(mask, ..., 0) "
             "before summing instead of multiplying by the mask."),
        Case(_logps(44, [8, 3, 5, 7, 2, 6, 4, 5], drift=1.5), {}, "a batch of 8 after much drift", _KL_RULE),
    ]


def kl_estimates_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and amounts of drift than the notebook's."""
    return [
        Case(_logps(140, [1, 7, 3, 12], drift=0.2), {}, "4 responses of 1 to 12 tokens, little drift", _KL_RULE),
        Case(_logps(141, [8, 5], drift=2.0, padding="-inf"), {}, "two rows, much drift, -inf padding", _KL_RULE),
        Case(_logps(142, [10, 2, 6, 4, 9, 3]), {}, "a batch of 6", _KL_RULE),
    ]


def check_kl_estimates(fn) -> CheckResult:
    """Check a student's ``kl_estimates(logp, ref_logp, mask) -> (k1, k3)``, each (B,)."""
    __tracebackhide__ = True
    return EXERCISES["kl_estimates"].check(fn)


# ---- adaptive_kl_coef ----------------------------------------------------------------------

_CONTROLLER_RULE = ("e = clip(kl / target - 1, -0.2, 0.2); return beta * (1 + e * n_steps / horizon) as a float.")


def adaptive_kl_coef_cases() -> list[Case]:
    """Cases for ``adaptive_kl_coef`` (plain numbers: nothing random)."""
    return [
        Case((0.05, 6.0, 6.0, 8, 80), {}, "the KL is on target: beta stays",
             "the error is relative, e = kl / target - 1, which is 0 here, so beta is returned unchanged."),
        Case((0.05, 6.3, 6.0, 8, 80), {}, "the KL is 5% above target: beta grows a little",
             "e = kl / target - 1 = +0.05 (relative to the target, not kl - target = 0.3 nats); beta grows by the "
             "factor 1 + e * n_steps / horizon = 1.005: above target the penalty must get stronger."),
        Case((0.05, 15.0, 6.0, 8, 80), {}, "the KL is 2.5 times the target: the error is clipped at +0.2",
             "clip the relative error to [-0.2, 0.2] before using it: one bad batch must not change beta by much. "
             "Here e = min(15 / 6 - 1, 0.2) = 0.2."),
        Case((0.05, 0.5, 6.0, 8, 80), {}, "the KL is far below target: the error is clipped at -0.2",
             "below target beta shrinks, by at most the factor 1 - 0.2 * n_steps / horizon; the clip works on both "
             "sides."),
        Case((0.1, 5.1, 6.0, 64, 64), {}, "a horizon of one batch: n_steps / horizon = 1", _CONTROLLER_RULE),
    ]


def adaptive_kl_coef_hidden_cases() -> list[Case]:
    """Grader-only cases: other numbers than the notebook's."""
    return [
        Case((0.2, 3.0, 2.0, 16, 10_000), {}, "the lm-human-preferences horizon of 10,000 samples", _CONTROLLER_RULE),
        Case((0.03, 9.0, 10.0, 32, 320), {}, "10% below target", _CONTROLLER_RULE),
        Case((1.0, 100.0, 1.0, 100, 100), {}, "far above target with a horizon of one batch", _CONTROLLER_RULE),
    ]


def check_adaptive_kl_coef(fn) -> CheckResult:
    """Check a student's ``adaptive_kl_coef(beta, kl, target, n_steps, horizon) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["adaptive_kl_coef"].check(fn)


EXERCISES = {
    "whiten": Exercise("whiten", whiten, whiten_cases, whiten_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5),
    "kl_estimates": Exercise("kl_estimates", kl_estimates, kl_estimates_cases, kl_estimates_hidden_cases,
                             adapt=cloned, names=("k1", "k3"), rtol=1e-4, atol=1e-5),
    "adaptive_kl_coef": Exercise("adaptive_kl_coef", adaptive_kl_coef, adaptive_kl_coef_cases,
                                 adaptive_kl_coef_hidden_cases, rtol=1e-9, atol=1e-12),
}
