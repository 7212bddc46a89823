"""Checks for lesson 12's exercises: sequence log-probs, a conservative DPO loss and its weights, a bug, one step.

* ``sequence_logps``: log pi(y|x) of each response from the model's logits, the sum over the response's
  tokens only, with next-token prediction's shift by one (what :func:`course_lib.llm.dpo.pair_logps`
  computes through :func:`course_lib.llm.generation.completion_logprobs` and :func:`course_lib.rl.masked_sum`);
* ``dpo_loss_fn``: Rafailov et al. (2023), Eq. 7 (:func:`course_lib.rl.dpo_loss`), with the label smoothing of
  conservative DPO (Mitchell 2023);
* ``dpo_gradient_weight``: each pair's weight in that loss's gradient, sigmoid(r_l - r_w) without smoothing
  (Rafailov et al. 2023, Section 4): pairs that the implicit reward already orders well get little;
* spot the bug (``dpo_bug``, then the fix ``dpo_margins``): a DPO loss with no reference model;
* the build ``dpo_step``: one DPO training step on the tiny preference task of :mod:`course_lib.harness.lesson12`.

Stronger hints: ``HINTS`` (``hint(name, 2)``).

Shapes: B sequences (or pairs), T tokens, V vocabulary. A sequence is left padding, then the prompt,
then the response, as :func:`course_lib.llm.generation.encode_completions` lays it out.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson12 import dpo_run
# the tiny task, imported from here by the lesson (TinyLM, tiny_dpo_run) and by the tests
from course_lib.harness.lesson12 import TinyLM, tiny_dpo_run, tiny_pairs  # noqa: F401
from course_lib.harness.tensors import cloned, generator
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
                ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Reference: the conservative DPO loss (Mitchell 2023; TRL's ``label_smoothing``), a 0-d tensor:
    mean over pairs of -(1 - eps) log sigmoid(z) - eps log sigmoid(-z), z = beta * ((logp_chosen - ref_chosen) -
    (logp_rejected - ref_rejected)). With eps = 0 it is DPO (Rafailov et al. 2023, Eq. 7)."""
    loss, _ = dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta)
    if label_smoothing == 0:
        return loss
    flipped, _ = dpo_loss(logp_rejected, logp_chosen, ref_rejected, ref_chosen, beta)  # the labels swapped
    return (1 - label_smoothing) * loss + label_smoothing * flipped


def dpo_gradient_weight(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                        ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Reference: (B,) each pair's weight in the gradient of :func:`dpo_loss_fn`, minus d loss_i / d z_i:
    (1 - eps) sigmoid(-z) - eps sigmoid(z); sigmoid(r_l - r_w) for eps = 0 (Rafailov et al. 2023, Section 4)."""
    reward_chosen = beta * (logp_chosen - ref_chosen)  # (B,)
    reward_rejected = beta * (logp_rejected - ref_rejected)  # (B,)
    z = reward_chosen - reward_rejected
    return (1 - label_smoothing) * torch.sigmoid(-z) - label_smoothing * torch.sigmoid(z)


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

_SEQ_RULE = ("per position, the log-softmax of the logits at the token that came NEXT (the last position predicts "
             "nothing); keep the entries whose next token is a reply token, 0 elsewhere, and sum per sequence: "
             "shape (B,).")


def sequence_logps_cases() -> list[Case]:
    """Seeded cases for ``sequence_logps``."""
    return [
        Case(_sequences(50, [3], [4]), {}, "one sequence, a 3-token prompt and a 4-token response, no padding",
             "the logits at position t predict the token at t + 1: the response token at position t is scored by "
             "the logits one position earlier. Shift all three: drop the logits' last position, and the ids' and "
             "the mask's first, so that the mask is shifted like the targets."),
        Case(_sequences(51, [2, 4], [3, 3], offset=5.0), {}, "logits with a large constant added",
             "a log-prob is log_softmax(logits)[token], not the raw logit: adding a constant to every logit "
             "changes the raw values but not the probabilities."),
        Case(_sequences(52, [5, 2, 3], [2, 4, 3]), {}, "prompts and responses of different lengths, left padding",
             "sum over the response's tokens only: the prompt's tokens are given, not generated, and the padding "
             "is not text. Use response_mask (shifted by one, like the targets)."),
        Case(_sequences(53, [2, 3], [4, 1], padding_logits=float("nan")), {},
             "padding whose logits are nan",
             "outside the response anything can sit in the logits, even nan; nan * 0 is nan, so choose 0 outside "
             "the mask before summing instead of multiplying by the mask."),
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


# ---- dpo_loss_fn ------------------------------------------------------------------------------

_LOSS_RULE = ("z = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)) per pair; the pair's loss is "
              "(1 - label_smoothing) times -log sigmoid(z) plus label_smoothing times -log sigmoid(-z); return the "
              "mean over pairs, a 0-d tensor.")


def dpo_loss_fn_cases() -> list[Case]:
    """Seeded cases for ``dpo_loss_fn``."""
    return [
        Case((*_pair_logps(60, 4, same=True), 0.1), {"label_smoothing": 0.1},
             "the policy equals the reference: the loss is ln 2",
             "the implicit reward is a log-RATIO to the reference, which is 0 here for both replies, so z = 0 and "
             "both terms are -log sigmoid(0) = ln 2 = 0.693, whatever the smoothing. Return the mean, a 0-d tensor."),
        Case((*_pair_logps(61, 4), 0.1), {}, "plain DPO (no smoothing), 4 pairs, beta = 0.1",
             "with label_smoothing 0 this is Eq. 7: z is beta times (chosen log-ratio - rejected log-ratio), each "
             "log-ratio policy minus reference, and the loss is -log sigmoid(z) averaged over the pairs."),
        Case((*_pair_logps(62, 4), 0.5), {"label_smoothing": 0.2}, "smoothing 0.2, beta = 0.5",
             "the smoothed loss mixes two DPO losses: weight 1 - eps on the labels as given, weight eps on the "
             "labels swapped (the sign of z flipped). beta scales z inside the sigmoid, not the loss."),
        Case((*_pair_logps(63, 3, drift=400.0, scale=1.0), 1.0), {"label_smoothing": 0.1},
             "log-ratios of hundreds of nats",
             "for a margin below about -104, sigmoid underflows to 0 in float32 and log(0) = -inf: use the "
             "log-sigmoid function itself, never the log of a sigmoid."),
        Case((*_pair_logps(64, 8, drift=3.0), 0.2), {"label_smoothing": 0.05}, "a batch of 8 pairs", _LOSS_RULE),
    ]


def dpo_loss_fn_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes, betas and smoothings than the notebook's."""
    return [
        Case((*_pair_logps(160, 2), 0.05), {"label_smoothing": 0.3}, "2 pairs, beta = 0.05, smoothing 0.3", _LOSS_RULE),
        Case((*_pair_logps(161, 5, drift=300.0), 2.0), {"label_smoothing": 0.1}, "huge log-ratios, beta = 2",
             _LOSS_RULE),
        Case((*_pair_logps(162, 16, drift=0.3), 0.1), {}, "16 pairs, small drift, no smoothing", _LOSS_RULE),
    ]


# ---- dpo_gradient_weight ----------------------------------------------------------------------

_WEIGHT_RULE = ("with z the pair's implicit reward margin (as in dpo_loss_fn), the weight is minus the derivative of "
                "the pair's loss with respect to z: 1 - eps times the sigmoid of minus z, less eps times the sigmoid "
                "of z; one weight per pair, (B,).")


def dpo_gradient_weight_cases() -> list[Case]:
    """Seeded cases for ``dpo_gradient_weight``."""
    return [
        Case((*_pair_logps(70, 3, same=True), 0.1), {}, "the policy equals the reference, no smoothing: 0.5 each",
             "at the start z = 0, so every pair gets sigmoid(0) = 0.5 without smoothing. Return one weight per "
             "pair, shape (B,), not their mean."),
        Case((*_pair_logps(71, 4, drift=10.0), 0.1), {}, "pairs ordered well and badly, no smoothing",
             "the weight is large when the implicit reward orders the pair WRONGLY (rejected above chosen) and "
             "near 0 for a pair it already orders well: a sigmoid of rejected minus chosen."),
        Case((*_pair_logps(72, 4, drift=10.0), 0.5), {"label_smoothing": 0.1}, "smoothing 0.1: a learned pair is "
             "pushed back",
             "with smoothing, the swapped-label term pulls the other way: its derivative adds -eps sigmoid(z), so "
             "a pair ordered very well (large z) gets a NEGATIVE weight, about -eps."),
        Case((*_pair_logps(73, 6, drift=20.0), 0.1), {"label_smoothing": 0.2}, "6 pairs, smoothing 0.2",
             "the implicit reward is relative to the reference: beta times (policy minus reference). " + _WEIGHT_RULE),
    ]


def dpo_gradient_weight_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, betas and smoothings than the notebook's."""
    return [
        Case((*_pair_logps(170, 5, drift=5.0), 0.2), {"label_smoothing": 0.05}, "5 pairs, beta = 0.2", _WEIGHT_RULE),
        Case((*_pair_logps(171, 2, drift=50.0), 1.0), {"label_smoothing": 0.3}, "2 pairs far apart, beta = 1",
             _WEIGHT_RULE),
        Case((*_pair_logps(172, 10, drift=2.0), 0.05), {}, "10 pairs, beta = 0.05, no smoothing", _WEIGHT_RULE),
    ]


# ---- spot the bug: DPO without a reference ------------------------------------------------------------


def dpo_bug() -> str:
    """The letter of the statement that names the bug of ``buggy_dpo_loss`` (exercise 12)."""
    return "B"


DPO_BUG_FEEDBACK = {
    "A": "F.logsigmoid is the stable form of log(sigmoid(x)): the same function, without the underflow to -inf.",
    "C": "the mean over pairs is what Eq. 7's expectation becomes; a sum would only rescale the learning rate.",
    "D": "beta multiplies the log-ratios inside the sigmoid in Eq. 7 too; its place is not what breaks this loss.",
}


def dpo_margins(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Reference (the fix of ``buggy_dpo_loss``'s margin): (B,) implicit reward margins
    beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))."""
    return beta * (logp_chosen - ref_chosen) - beta * (logp_rejected - ref_rejected)


_MARGIN_RULE = ("each reply's implicit reward is beta times ITS log-ratio to the reference (policy minus reference); "
                "the margin of a pair is the chosen reply's minus the rejected reply's, shape (B,).")


def dpo_margins_cases() -> list[Case]:
    """Seeded cases for ``dpo_margins``."""
    return [
        Case((*_pair_logps(65, 4, same=True), 0.1), {}, "the policy equals the reference: every margin is 0",
             "before any training the policy IS the reference, so both implicit rewards are 0 and so is every "
             "margin, whatever the two replies' raw log-probs: a long reply is not worse for being long."),
        Case((*_pair_logps(66, 4, drift=2.0), 0.1), {}, "a trained policy, beta 0.1",
             "subtract the reference's log-prob from the policy's for each reply first (how much more likely "
             "training made it), then take chosen minus rejected, times beta."),
        Case((*_pair_logps(67, 3, drift=5.0), 0.5), {}, "beta 0.5", _MARGIN_RULE),
    ]


def dpo_margins_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((*_pair_logps(165, 6, drift=1.0), 0.2), {}, "6 pairs, beta 0.2", _MARGIN_RULE),
        Case((*_pair_logps(166, 2, drift=30.0), 1.0), {}, "2 pairs far apart, beta 1", _MARGIN_RULE),
    ]


def _your_answer() -> list[Case]:
    return [Case((), {}, "your answer", "re-read each option against the buggy code and Eq. 7.")]


# ---- the build: one DPO training step on a tiny model --------------------------------------------------


def _tiny_logps(model, ids, mask) -> torch.Tensor:
    return sequence_logps(model(ids), ids, mask)


def dpo_step(policy, reference, optimizer, chosen_ids: torch.Tensor, rejected_ids: torch.Tensor,
             chosen_mask: torch.Tensor, rejected_mask: torch.Tensor, beta: float) -> tuple:
    """Reference: one DPO step. Returns ``(loss, margins)``: the loss before the step (a float) and the (B,)
    implicit reward margins before the step (no gradient)."""
    with torch.no_grad():
        ref_chosen = _tiny_logps(reference, chosen_ids, chosen_mask)  # (B,)
        ref_rejected = _tiny_logps(reference, rejected_ids, rejected_mask)  # (B,)
    logp_chosen = _tiny_logps(policy, chosen_ids, chosen_mask)  # (B,) with gradient
    logp_rejected = _tiny_logps(policy, rejected_ids, rejected_mask)
    loss, _ = dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    margins = dpo_margins(logp_chosen.detach(), logp_rejected.detach(), ref_chosen, ref_rejected, beta)
    return float(loss.detach()), margins


_DPO_STEP_RULE = ("the reference's sequence log-probs without gradient, the policy's with; loss = -mean log sigmoid "
                  "of the margins; zero the gradients, backward, one optimiser step; return the loss before the step "
                  "as a float and the (B,) margins before the step, without gradient.")


def dpo_step_cases() -> list[Case]:
    """Seeded runs of the tiny task for ``dpo_step``."""
    return [
        Case((0,), {"beta": 0.1}, "the first step: the policy is the reference",
             "at the first step the policy IS the reference, so every margin is exactly 0 and the loss is ln 2 = "
             "0.6931. A sequence log-prob sums the reply's tokens only (the masks), with the next-token shift: "
             "the model's logits at position t score the token at t + 1."),
        Case((1,), {"beta": 0.1, "moved": True}, "a policy that has moved away from the reference",
             "the margins and the loss compare log-RATIOS to the reference model you are given: compute its log-probs "
             "of the same replies (without gradient) and subtract them, reply by reply."),
        Case((2,), {"beta": 0.5}, "beta 0.5: 30 steps on the tiny task",
             "beta scales the margins inside the sigmoid. Each step: loss, zero_grad, backward, step, and nothing "
             "may change the reference (compute its log-probs under torch.no_grad)."),
        Case((3,), {"beta": 0.1, "steps": 40}, "40 steps: the loss falls, the held-out accuracy rises", _DPO_STEP_RULE),
    ]


def dpo_step_hidden_cases() -> list[Case]:
    """Grader-only runs."""
    return [
        Case((10,), {"beta": 0.2, "moved": True}, "a moved policy, beta 0.2", _DPO_STEP_RULE),
        Case((11,), {"beta": 0.05}, "beta 0.05", _DPO_STEP_RULE),
        Case((12,), {"beta": 1.0, "moved": True, "steps": 20}, "a moved policy, beta 1, 20 steps", _DPO_STEP_RULE),
    ]


# ---- tier-2 hints ----------------------------------------------------------------------------------

HINTS = {
    "sequence_logps": (
        "Three steps. (1) Log-softmax over the vocabulary axis (the last one) of every position but the last: "
        "position t's scores are for the token at t + 1. (2) For each position pick the entry of the token that "
        "actually came next (gather along the vocabulary axis with the ids from position 1 on, given a trailing "
        "axis of size 1, then drop it): (B, T - 1). (3) Keep the entries whose TARGET token is a reply token (the "
        "mask from position 1 on), choose 0 elsewhere (not a multiplication: nan x 0 is nan), sum per row. "
        "Worked example: uniform logits over 4 tokens and a reply of 2 tokens give 2 x ln(1/4) = -2.773."),
    "dpo_loss_fn": (
        "Build z = beta x ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)) per pair. Conservative "
        "DPO believes each label with probability 1 - label_smoothing: per pair the loss is (1 - eps) x "
        "-logsigmoid(z) + eps x -logsigmoid(-z), then the mean over pairs. Use F.logsigmoid (stable for margins "
        "of hundreds of nats). Worked example: z = 0 gives ln 2 = 0.6931 whatever eps; z = 2 with eps = 0.1 "
        "gives 0.9 x 0.1269 + 0.1 x 2.1269 = 0.3269."),
    "dpo_gradient_weight": (
        "Differentiate the per-pair loss with respect to z. The derivative of log sigmoid(x) is sigmoid(-x), so the "
        "first term, 1 - eps times minus log sigmoid of z, has derivative minus (1 - eps) times the sigmoid of minus "
        "z; the swapped term has the chain rule's extra minus sign and gives plus eps times the sigmoid of z. The "
        "weight is minus their sum. Worked example, eps = 0.1: z = 0 gives 0.9 x 0.5 - 0.1 x 0.5 = 0.4; z = 5 gives "
        "0.9 x 0.0067 - 0.1 x 0.9933 = -0.093 (negative: the pair is pushed back); z = -5 gives 0.894."),
    "dpo_margins": (
        "An implicit reward is a log-RATIO: beta x (the policy's log-prob of a reply - the reference's log-prob of "
        "the same reply). The margin is the chosen reply's implicit reward minus the rejected one's. Worked "
        "example: beta 0.1, chosen -50 under the policy and -52 under the reference (+2 nats), rejected -40 and "
        "-39 (-1 nat): margin 0.1 x (2 - (-1)) = +0.3, though the chosen reply is 10 nats LESS likely than the "
        "rejected one under both models."),
    "dpo_step": (
        "Four phases. (1) Under torch.no_grad, the reference's sequence log-probs of the chosen and the rejected "
        "replies (your sequence_logps works on the tiny model's logits: same shift, same masks). (2) The policy's, "
        "with gradient. (3) The margins (your dpo_margins) and the loss, the mean of -logsigmoid of them. "
        "(4) zero_grad, backward, step. Return the loss as a float and the margins detached, both from before the "
        "step. At the first step of a run the loss must be ln 2 = 0.6931 and every margin 0."),
}


EXERCISES = {
    "sequence_logps": Exercise("sequence_logps", sequence_logps, sequence_logps_cases, sequence_logps_hidden_cases,
                               adapt=cloned, rtol=1e-4, atol=1e-4, twins=("course_lib.rl.logprobs.token_logprobs",)),
    "dpo_loss_fn": Exercise("dpo_loss_fn", dpo_loss_fn, dpo_loss_fn_cases, dpo_loss_fn_hidden_cases, adapt=cloned,
                            rtol=1e-4, atol=1e-5, twins=("course_lib.rl.preference.dpo_loss",)),
    "dpo_gradient_weight": Exercise("dpo_gradient_weight", dpo_gradient_weight, dpo_gradient_weight_cases,
                                    dpo_gradient_weight_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5),
    "dpo_bug": Exercise("dpo_bug", dpo_bug, _your_answer, list, kind="answer",
                        comparer=functools.partial(compare_answers, feedback=DPO_BUG_FEEDBACK)),
    "dpo_margins": Exercise("dpo_margins", dpo_margins, dpo_margins_cases, dpo_margins_hidden_cases, adapt=cloned,
                            rtol=1e-4, atol=1e-5),
    "dpo_step": Exercise("dpo_step", dpo_step, dpo_step_cases, dpo_step_hidden_cases, adapt=dpo_run,
                         rtol=1e-4, atol=1e-5,
                         names=("loss", "margins", "loss fell over the run", "held-out accuracy rose",
                                "reference unchanged")),
}

__getattr__ = check_functions(EXERCISES)

BUILDS = ("dpo_step",)
"""The whole-algorithm build of exercise 12 (the lesson must not print its source)."""
