"""Checks for lesson 11's exercises: three pieces of the RLHF loop, two spot-the-bugs, one whole step, a prediction.

Three small pieces of the RLHF loop that lessons 7 to 9 did not write yet:

* ``whiten``: phase 5 of :func:`course_lib.llm.ppo.rlhf_ppo`, the advantages made mean 0 and standard
  deviation 1 over the batch's *real* response tokens (:func:`course_lib.rl.masked_whiten`);
* ``kl_estimates``: the KL of a sampled response to the reference, summed over its tokens, with
  Schulman's k1 (the log-ratio, what ``rlhf/kl`` logs) and k3 (never negative per token)
  (:func:`course_lib.rl.kl_k1`, :func:`course_lib.rl.kl_k3`);
* ``adaptive_kl_coef``: the proportional controller of Ziegler et al. (2019, Section 2.2) that moves
  beta towards a target KL; the course's ``rlhf_ppo`` keeps beta fixed, so this is the "one line away".
* spot the bug (``kl_anchor_bug``, then the fix ``kl_penalty_rewards``): a KL penalty taken against the
  policy that sampled the batch instead of the frozen reference;
* spot the bug (``update_bug``, then the fix ``rlhf_policy_loss``): an update with no clip and no baseline;
* the build ``rlhf_ppo_step``: one RLHF-PPO step composed from the pieces (mask from EOS, KL-shaped rewards,
  GAE, the clipped update), checked by behaviour on the tiny task of :mod:`course_lib.harness.lesson11`;
* predict, then run (``beta_prediction``): beta 0.03 against 0.3 on the tiny task.

Stronger hints: ``HINTS`` (``hint(name, 2)``).

Shapes: B responses, R response tokens, right-padded after each response's last token, as
:func:`course_lib.llm.rollout.sample_responses` lays them out (mask True up to and including the EOS).
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson11 import rlhf_run
# the tiny task, imported from here by the lesson (TinyPolicy, tiny_rlhf_run) and by the tests
from course_lib.harness.lesson11 import TINY_EOS, TinyPolicy, tiny_rlhf_run, tiny_sample, tiny_scores  # noqa: F401
from course_lib.harness.tensors import cloned, generator
from course_lib.llm.rollout import token_rewards
from course_lib.llm.tokens import last_token_index, response_mask_from
from course_lib.rl import clipped_surrogate, gae, kl_k1, kl_k3, masked_sum, masked_whiten, token_logprobs, value_loss

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
             "outside the mask the input can hold anything: take the statistics over the entries the mask selects, "
             "and put 0 on padding in the result (not whatever the input held there)."),
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


# ---- kl_estimates --------------------------------------------------------------------------

_KL_RULE = ("with r the log-ratio reference minus policy on each response token: k1 of a reply is the sum of -r, "
            "k3 the sum of (exp(r) - 1) - r, both over its tokens where the mask is True; a pair of (B,) tensors.")


def kl_estimates_cases() -> list[Case]:
    """Seeded cases for ``kl_estimates``."""
    return [
        Case(_logps(40, [4, 3], same=True), {}, "the policy equals the reference: both estimates are 0",
             "when logp == ref_logp every log-ratio is 0, so k1 and k3 are zeros of shape (B,): one number per "
             "response. Return a tuple (k1, k3)."),
        Case(_logps(41, [6]), {}, "one response, no padding",
             "k1 is the sum over the response of log pi - log pi_ref (policy minus reference). For k3 the "
             "log-ratio r goes the other way, reference minus policy (the samples come from the policy), and each "
             "token adds e^r - 1 - r. Sums over the tokens, not means."),
        Case(_logps(42, [5, 2, 4], drift=1.0), {}, "responses of different lengths, padding after EOS",
             "only the response tokens count (mask True); the padding after a response that ended early holds "
             "log-probs too. Sum over the token axis (dim=-1), one number per response."),
        Case(_logps(43, [3, 5], padding="-inf"), {}, "padding whose log-probs are -inf in both",
             "outside the mask, -inf - (-inf) is nan, and nan * 0 is nan: choose 0 on padding before the "
             "arithmetic and the sums, instead of multiplying by the mask afterwards."),
        Case(_logps(44, [8, 3, 5, 7, 2, 6, 4, 5], drift=1.5), {}, "a batch of 8 after much drift", _KL_RULE),
    ]


def kl_estimates_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and amounts of drift than the notebook's."""
    return [
        Case(_logps(140, [1, 7, 3, 12], drift=0.2), {}, "4 responses of 1 to 12 tokens, little drift", _KL_RULE),
        Case(_logps(141, [8, 5], drift=2.0, padding="-inf"), {}, "two rows, much drift, -inf padding", _KL_RULE),
        Case(_logps(142, [10, 2, 6, 4, 9, 3]), {}, "a batch of 6", _KL_RULE),
    ]


# ---- adaptive_kl_coef ----------------------------------------------------------------------

_CONTROLLER_RULE = ("the error is the KL relative to the target (their ratio, minus one), clipped to [-0.2, 0.2]; "
                    "beta is multiplied by one plus the error times the share n_steps / horizon; a Python float.")


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


# ---- the whole-algorithm build: rlhf_ppo_step ----------------------------------------------------


def rlhf_ppo_step(policy, reference, optimizer, response_ids: torch.Tensor, scores: torch.Tensor, eos_id: int,
                  beta: float, gamma: float = 1.0, lam: float = 0.95, clip_eps: float = 0.2, vf_coef: float = 0.5,
                  epochs: int = 4) -> tuple:
    """Reference: one RLHF-PPO step on a batch of sampled replies, from the library's pieces.

    Returns ``(mask, rewards, advantages, losses)``: (B, R) bool, (B, R), (B, R) whitened, and a list of
    ``epochs`` floats (the loss of each epoch, before its optimiser step).
    """
    mask = response_mask_from(response_ids, eos_id)  # (B, R)
    with torch.no_grad():
        logits, old_values = policy(response_ids)
        old_logp = token_logprobs(logits, response_ids)  # (B, R)
        ref_logp = token_logprobs(reference(response_ids)[0], response_ids)  # (B, R)
    rewards, _ = token_rewards(scores, old_logp, ref_logp, mask, beta)  # (B, R)
    last = torch.zeros_like(mask)
    last[torch.arange(mask.shape[0]), last_token_index(mask)] = True  # (B, R)
    next_values = torch.cat([old_values[:, 1:], torch.zeros_like(old_values[:, :1])], dim=1)
    advantages, returns = gae(rewards, old_values, next_values, last, gamma=gamma, lam=lam, mask=mask)
    advantages = masked_whiten(advantages, mask)
    losses = []
    for _ in range(epochs):
        logits, values = policy(response_ids)
        logp = token_logprobs(logits, response_ids)
        pg, _ = clipped_surrogate(logp, old_logp, advantages, clip_eps, mask=mask)
        vl, _ = value_loss(values, returns, mask=mask)
        loss = pg + vf_coef * vl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return mask, rewards, advantages, losses


_STEP_RULE = ("mask: True up to and including each reply's first EOS; rewards: -beta times (log pi_old - log pi_ref) "
              "on every real token, plus the score on the last one, 0 on padding; advantages: GAE over the tokens "
              "with V = 0 after the last real token, whitened over the batch's real tokens; then `epochs` clipped "
              "PPO updates of the whole batch, each loss recorded before its optimiser step.")


def rlhf_ppo_step_cases() -> list[Case]:
    """Seeded runs of the tiny task for ``rlhf_ppo_step``."""
    return [
        Case((0,), {"beta": 0.05}, "the first step: the policy is still the reference",
             "at the first step the policy IS the frozen reference, so every log-ratio is exactly 0: a reply's "
             "rewards are 0 on every token but its last real one, which holds its score. The mask is True up to and "
             "including the FIRST EOS (the sampler writes EOS again after it), and padding gets reward 0."),
        Case((1,), {"beta": 0.1, "moved": True}, "a policy that has already moved away from the reference",
             "the penalty compares the policy that sampled the batch with the FROZEN REFERENCE, the second model "
             "you are given; read both log-probs before any update of this step. Against the policy itself "
             "the log-ratio would be 0 and nothing would hold the policy back."),
        Case((2,), {"beta": 0.05, "lam": 0.8, "gamma": 0.9}, "GAE with gamma 0.9 and lambda 0.8",
             "advantages run backwards over the tokens: delta_t = r_t + gamma V(s_t+1) - V(s_t), with V = 0 after "
             "a reply's last real token (it ended), and A_t = delta_t + gamma lambda A_t+1. Nothing flows in from "
             "padding; whiten over the real tokens of the whole batch at the end."),
        Case((3,), {"beta": 0.05, "epochs": 3}, "three epochs on one batch",
             "each epoch recomputes the policy's log-probs and values WITH gradient and forms the clipped "
             "surrogate (ratio against the log-probs at sampling time) plus vf_coef times half the squared error "
             "of the values against the returns (advantages before whitening plus the old values), both "
             "averaged over the real tokens. Record the loss, then zero the gradients, backward, step."),
        Case((4,), {"beta": 0.05, "steps": 30}, "30 steps of training: the score should rise", _STEP_RULE),
    ]


def rlhf_ppo_step_hidden_cases() -> list[Case]:
    """Grader-only runs: other seeds, coefficients and starting points than the notebook's."""
    return [
        Case((10,), {"beta": 0.2, "moved": True, "lam": 0.9}, "a moved policy, beta 0.2, lambda 0.9", _STEP_RULE),
        Case((11,), {"beta": 0.02, "clip_eps": 0.1, "vf_coef": 1.0}, "clip 0.1, value weight 1", _STEP_RULE),
        Case((12,), {"beta": 0.05, "moved": True, "epochs": 2, "gamma": 0.95}, "a moved policy, 2 epochs, gamma 0.95",
             _STEP_RULE),
    ]


# ---- spot the bug 1: the KL anchor -------------------------------------------------------------


def kl_anchor_bug() -> str:
    """The letter of the statement that names the bug of ``buggy_kl_rewards`` (exercise 11)."""
    return "C"


KL_ANCHOR_FEEDBACK = {
    "A": "the reward model judges a finished reply, so its score arrives once, on the reply's last real token; the "
         "buggy function does that part right.",
    "B": "the sign is right: minus beta times the log-ratio costs reward wherever the policy likes a token more than "
         "the distribution it is compared with.",
    "D": "where() is the safe way to mask (nan times 0 is nan), and padding gets 0 here; look at what the log-ratio "
         "compares.",
}


def kl_penalty_rewards(scores: torch.Tensor, logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor,
                       mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Reference (the fix of ``buggy_kl_rewards``): -beta * (old_logp - ref_logp) on the real tokens, plus each
    reply's score on its last real token, 0 on padding; ``logp`` (the policy during an epoch) is not used: the
    rewards of a batch are fixed at sampling time."""
    return token_rewards(scores, old_logp, ref_logp, mask, beta)[0]


def _reward_inputs(seed: int, lengths, R: int | None = None, beta: float = 0.1, epoch: int = 1,
                   padding: float = 0.0) -> tuple:
    """``(scores, logp, old_logp, ref_logp, mask, beta)``: log-probs of the policy now (after ``epoch`` updates),
    at sampling time and under the reference, all different; padding holds ``padding``."""
    g = generator(seed)
    mask = _mask(lengths, R)
    ref_logp = torch.log(0.05 + 0.9 * torch.rand(mask.shape, generator=g))
    old_logp = torch.minimum(ref_logp + 0.4 + 0.4 * torch.randn(mask.shape, generator=g), torch.tensor(-1e-3))
    logp = old_logp.clone() if epoch == 0 else old_logp + 0.3 * epoch * torch.randn(mask.shape, generator=g)
    logp = torch.minimum(logp, torch.tensor(-1e-3))
    scores = 2.0 * torch.randn(len(lengths), generator=g)
    fill = torch.full_like(ref_logp, padding)
    return (scores, torch.where(mask, logp, fill), torch.where(mask, old_logp, fill), torch.where(mask, ref_logp, fill),
            mask, beta)


_REWARD_RULE = ("rewards are fixed once per batch: -beta times (log-prob at sampling time minus the reference's) on "
                "every real token, the reply's score added on its last real token, 0 on padding; shape (B, R).")


def kl_penalty_rewards_cases() -> list[Case]:
    """Seeded cases for ``kl_penalty_rewards``."""
    return [
        Case(_reward_inputs(80, [4, 4], epoch=0), {}, "the first epoch: the policy has not moved since sampling",
             "in the first epoch the current log-probs equal those at sampling time, so a penalty measured between "
             "them is 0 on every token. The anchor is the frozen reference: -beta times (sampling-time log-prob "
             "minus the reference's) on every real token."),
        Case(_reward_inputs(81, [5, 5]), {}, "a later epoch: policy now, at sampling time and reference all differ",
             "the rewards of a batch are computed once, at sampling time, and stay fixed during the epochs: use the "
             "log-probs recorded when the batch was sampled, not the ones of the policy after this step's updates."),
        Case(_reward_inputs(82, [6, 2, 4], padding=-3.0), {}, "replies of different lengths, padding after EOS",
             "the score goes on each reply's LAST REAL token (its EOS or the token limit), not on the last column; "
             "padding gets no reward at all, whatever the inputs hold there."),
        Case(_reward_inputs(83, [3, 5], beta=0.5), {}, "a larger beta", _REWARD_RULE),
    ]


def kl_penalty_rewards_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case(_reward_inputs(180, [1, 7, 3], beta=0.05, epoch=2), {}, "a one-token reply, epoch 2", _REWARD_RULE),
        Case(_reward_inputs(181, [8, 8, 8], beta=0.2, epoch=3), {}, "three replies cut at the limit", _REWARD_RULE),
        Case(_reward_inputs(182, [2, 6], beta=1.0, padding=5.0), {}, "beta 1, padding holding 5", _REWARD_RULE),
    ]


# ---- spot the bug 2: no clip, no baseline --------------------------------------------------------


def update_bug() -> str:
    """The letter of the statement that names what is wrong with ``buggy_policy_loss`` (exercise 11)."""
    return "D"


UPDATE_FEEDBACK = {
    "A": "exp(logp - old_logp) is new over old, the ratio PPO wants; the order is right.",
    "B": "padding is not a token: averaging over it would dilute the loss with meaningless entries. Masking is "
         "right here.",
    "C": "exp of a difference of log-probs IS the ratio of the probabilities, and it is the stable way to compute "
         "it.",
}


def rlhf_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, returns: torch.Tensor, values: torch.Tensor,
                     mask: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """Reference (the fix of ``buggy_policy_loss``): the clipped surrogate with the advantages returns - values,
    averaged over the real tokens, a 0-d tensor."""
    return clipped_surrogate(logp, old_logp, returns - values, clip_eps, mask=mask)[0]


def _loss_inputs(seed: int, lengths, R: int | None = None, move: float = 0.3, clip_eps: float = 0.2,
                 level: float = 0.0, padding: float = 0.0) -> tuple:
    """``(logp, old_logp, returns, values, mask, clip_eps)``: log-probs moved by N(0, move^2) since sampling,
    returns around ``level``, values near the returns; padding holds ``padding``."""
    g = generator(seed)
    mask = _mask(lengths, R)
    old_logp = torch.log(0.05 + 0.9 * torch.rand(mask.shape, generator=g))
    logp = old_logp + move * torch.randn(mask.shape, generator=g)
    returns = level + torch.randn(mask.shape, generator=g)
    values = returns + 0.8 * torch.randn(mask.shape, generator=g)
    fill = torch.full_like(logp, padding)
    return (torch.where(mask, logp, fill), torch.where(mask, old_logp, fill), torch.where(mask, returns, fill),
            torch.where(mask, values, fill), mask, clip_eps)


_LOSS_RULE = ("advantage = returns - values; ratio = exp(logp - old_logp); per token the smaller of ratio * A and "
              "clip(ratio, 1 - eps, 1 + eps) * A; minus its mean over the real tokens; a 0-d tensor.")


def rlhf_policy_loss_cases() -> list[Case]:
    """Seeded cases for ``rlhf_policy_loss``."""
    return [
        Case(_loss_inputs(90, [4, 4], move=0.0, level=3.0), {},
             "the first epoch (ratio 1), every return large and positive",
             "the ratio multiplies the ADVANTAGE, return minus value: how much better the reply went than the "
             "value head expected. Multiplying the raw return pushes up every token of a well-scored reply, "
             "however expected its score was."),
        Case(_loss_inputs(91, [6, 6], move=1.0), {}, "a policy that moved far since sampling (ratios far from 1)",
             "clip the ratio to [1 - eps, 1 + eps] and take, per token, the SMALLER of the clipped and the unclipped "
             "objective: the update gains nothing from moving a token's probability further than the clip range."),
        Case(_loss_inputs(92, [5, 2, 3], padding=4.0), {}, "replies of different lengths, padding holding 4",
             "average over the real tokens only (the mask), not over the padding."),
        Case(_loss_inputs(93, [4, 6], move=0.6, clip_eps=0.1), {}, "clip range 0.1", _LOSS_RULE),
    ]


def rlhf_policy_loss_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case(_loss_inputs(190, [7, 1, 4], move=0.8, level=-2.0), {}, "negative returns, much movement", _LOSS_RULE),
        Case(_loss_inputs(191, [3, 3, 3, 3], move=0.05, clip_eps=0.3), {}, "little movement, clip 0.3", _LOSS_RULE),
        Case(_loss_inputs(192, [8, 5], move=2.0, level=1.0, padding=-7.0), {}, "ratios far out, padding -7",
             _LOSS_RULE),
    ]


# ---- predict, then run: beta 0.03 against beta 0.3 ---------------------------------------------------


def beta_prediction() -> str:
    """The letter of the right prediction: which run drifts further from the reference (exercise 11)."""
    return "B"


BETA_FEEDBACK = {
    "A": "the penalty is -beta times the log-ratio: the larger beta, the more each nat of drift costs, and the score "
         "the tiny reward model can give is at most 1 per reply.",
    "C": "whitening rescales the sum of the score and the penalty; it cannot change their ratio, and beta sets that "
         "ratio.",
    "D": "at the first step the KL is 0, but the score pulls the policy away from the reference as soon as it "
         "updates; the penalty only sets a price on that drift.",
}


def _your_answer() -> list[Case]:
    return [Case((), {}, "your answer", "re-read each option against the code or the formula it talks about.")]


# ---- tier-2 hints ----------------------------------------------------------------------------------

HINTS = {
    "whiten": (
        "Pick the n real advantages out of the (B, R) tensor with the boolean mask: a flat tensor of n numbers. Its "
        "mean and its variance (torch divides by n - 1 by default) are the batch's statistics. Whiten the whole "
        "(B, R) tensor with them, then choose per entry: the whitened value where the mask is True, 0 where it is "
        "False. Worked example: real advantages 1, 2, 3, 5 give mean 2.75, unbiased variance 2.9167, std 1.7078, "
        "so the 5 becomes (5 - 2.75) / 1.7078 = +1.317; a padding entry holding 9 becomes 0. Trap: statistics per "
        "row would give every reply mean 0."),
    "kl_estimates": (
        "First the per-token log-ratio r, reference minus policy, with 0 put on padding BEFORE any arithmetic "
        "(a -inf minus -inf on padding is nan, and nan survives a multiplication by 0). Then k1 per token is -r "
        "and k3 per token is e^r - 1 - r (torch has expm1 for e^x - 1); sum each over the token axis, the last "
        "one, for one number per reply. Worked example: a reply of two tokens with r = -1 and +1 has k1 = 1 - 1 = "
        "0 and k3 = (e^-1 - 1 + 1) + (e - 1 - 1) = 0.368 + 0.718 = 1.086; a padding token adds e^0 - 1 - 0 = 0."),
    "adaptive_kl_coef": (
        "Python's built-in min and max clip a float: the inner one of the two lifts the error to at least -0.2, "
        "the outer one caps it at 0.2. Worked example: beta 0.05, KL 15, target 6, 8 replies, horizon 80: the "
        "relative error is 15 / 6 - 1 = 1.5, clipped to 0.2; beta is multiplied by 1 + 0.2 x 8 / 80 = 1.02 and "
        "becomes 0.051. With KL 6.3 the error is +0.05 (not 0.3 nats) and the factor 1.005. Return a float."),
    "kl_penalty_rewards": (
        "Three log-prob tensors come in; only two belong in the penalty: the policy that SAMPLED the batch "
        "(fixed for all its epochs) and the frozen reference. Per real token: -beta x (sampling-time log-prob - "
        "reference log-prob). Then each reply's score lands on its last real token: the last position where the "
        "mask is True (a cumulative sum or the mask shifted by one finds it). Worked example: beta 0.1, a reply "
        "of 2 real tokens with log-ratios +0.5 and -0.2 and score 2 gets rewards -0.05 and +0.02 + 2 = 2.02, then "
        "0 on padding."),
    "rlhf_policy_loss": (
        "Two fixes. The baseline: the advantage is returns - values, how much better than the value head "
        "expected. The clip: per token, compare ratio x A with clamp(ratio, 1 - eps, 1 + eps) x A and keep the "
        "smaller (torch.minimum), then average minus that over the real tokens. Worked example, eps 0.2: a token "
        "with ratio 1.5 and advantage +2 contributes min(3.0, 2.4) = 2.4; with advantage -2, min(-3.0, -2.4) = "
        "-3.0: the clip limits the gain, never the penalty."),
    "rlhf_ppo_step": (
        "Work phase by phase and print shapes. (1) The mask: a token is real when no EOS came strictly before it "
        "(a cumulative count of EOS along the reply, minus the token's own). (2) Without gradient: the policy's "
        "log-probs of the sampled tokens (log-softmax of its logits, gathered at the ids) and values, and the "
        "reference's log-probs. (3) Rewards: -beta x (policy - reference) on real tokens, the score added on the "
        "last real one. (4) GAE backwards over the R positions; the value after the last real token is 0. "
        "Returns = advantages + old values, then whiten the advantages (your whiten). (5) `epochs` times: "
        "forward with gradient, clipped surrogate + vf_coef x 0.5 x mean squared value error, both over real "
        "tokens; record the loss, zero_grad, backward, step. At the first step of a run every reward but the "
        "last of each reply must be exactly 0."),
}


EXERCISES = {
    "whiten": Exercise("whiten", whiten, whiten_cases, whiten_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5,
                       twins=("course_lib.rl.masked.masked_whiten",)),
    "kl_estimates": Exercise("kl_estimates", kl_estimates, kl_estimates_cases, kl_estimates_hidden_cases,
                             adapt=cloned, names=("k1", "k3"), rtol=1e-4, atol=1e-5,
                             twins=("course_lib.rl.kl.kl_k1", "course_lib.rl.kl.kl_k3")),
    "adaptive_kl_coef": Exercise("adaptive_kl_coef", adaptive_kl_coef, adaptive_kl_coef_cases,
                                 adaptive_kl_coef_hidden_cases, rtol=1e-9, atol=1e-12),
    "kl_anchor_bug": Exercise("kl_anchor_bug", kl_anchor_bug, _your_answer, list, kind="answer",
                              comparer=functools.partial(compare_answers, feedback=KL_ANCHOR_FEEDBACK)),
    "kl_penalty_rewards": Exercise("kl_penalty_rewards", kl_penalty_rewards, kl_penalty_rewards_cases,
                                   kl_penalty_rewards_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5,
                                   twins=("course_lib.llm.rollout.token_rewards",)),
    "update_bug": Exercise("update_bug", update_bug, _your_answer, list, kind="answer",
                           comparer=functools.partial(compare_answers, feedback=UPDATE_FEEDBACK)),
    "rlhf_policy_loss": Exercise("rlhf_policy_loss", rlhf_policy_loss, rlhf_policy_loss_cases,
                                 rlhf_policy_loss_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5,
                                 twins=("course_lib.rl.losses.clipped_surrogate",)),
    "rlhf_ppo_step": Exercise("rlhf_ppo_step", rlhf_ppo_step, rlhf_ppo_step_cases, rlhf_ppo_step_hidden_cases,
                              adapt=rlhf_run, rtol=1e-4, atol=1e-5,
                              names=("mask", "rewards", "advantages", "first epoch's loss",
                                     "loss fell over the epochs", "score rose over the run")),
    "beta_prediction": Exercise("beta_prediction", beta_prediction, _your_answer, list, kind="answer",
                                comparer=functools.partial(compare_answers, feedback=BETA_FEEDBACK)),
}

__getattr__ = check_functions(EXERCISES)

BUILDS = ("rlhf_ppo_step",)
"""The whole-algorithm build of exercise 11 (the lesson must not print its source)."""
