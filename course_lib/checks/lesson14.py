"""Checks for lesson 14's exercises: group-relative advantages, a verifiable answer parser, GRPO's token loss.

Three pieces of :func:`course_lib.llm.grpo.grpo` and of its reward program:

* ``group_relative_advantages``: each response's reward relative to the other responses to the same
  prompt (Shao et al. 2024, Section 4.1.2), with or without the std-scaling
  (:func:`course_lib.rl.group_advantages`);
* ``parse_answer``: the integer a reply states in the required form "The answer is <n>", the heart of
  the format and correctness rewards (:func:`course_lib.data.arithmetic.parse_answer`);
* ``grpo_loss``: the clipped token loss with three normalisations over tokens, GRPO's per-response mean,
  DAPO's token mean and Dr. GRPO's constant (:func:`course_lib.llm.grpo.grpo_token_loss`).

Shapes: B prompts, G responses per prompt, N = B * G responses of up to R tokens, right-padded.
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator
from course_lib.data.arithmetic import parse_answer as _parse_answer
from course_lib.llm.grpo import grpo_token_loss
from course_lib.rl import group_advantages

# ---- references ----------------------------------------------------------------------------


def group_relative_advantages(rewards: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Reference: (r - mean over the group) / (std over the group + 1e-4), or without the division.

    The std is the Bessel-corrected one (divided by G - 1, torch's default ``.std()``), per group (dim=1), as Hugging
    Face TRL's ``GRPOTrainer`` computes it (lesson 16).

    Args:
        rewards: (B, G) one reward per response, G responses for each of B prompts.
        scale: divide by the group's std plus 1e-4 (GRPO) or not (Dr. GRPO).

    Returns:
        (B, G).
    """
    return group_advantages(rewards, scale=scale, eps=1e-4)


def parse_answer(response: str) -> int | None:
    """Reference: the integer stated after the last "the answer is" (any letter case), or None.

    Between the phrase and the number there may be spaces, one ":" or "=", and bold markers "**"; the
    number may carry a sign and a trailing ".0" ("12.0" -> 12). None when there is no such statement,
    when the number is not an integer ("12.5"), or when it has a thousands comma ("1,200").
    """
    return _parse_answer(response)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              loss_norm: str = "sequence") -> torch.Tensor:
    """Reference: GRPO's clipped token loss (clip_eps 0.2, no KL) with the normalisation ``loss_norm``.

        term[i, t] = min(ratio * A_i, clip(ratio, 0.8, 1.2) * A_i),  ratio = exp(logp - old_logp)
        "sequence": -mean over responses of (sum_t term / number of real tokens of the response)
        "token":    -sum of term over all real tokens / number of real tokens in the batch
        "constant": -sum of term over all real tokens / (N * R)

    Args:
        logp, old_logp: (N, R). advantages: (N,). mask: (N, R) bool. loss_norm: as above.

    Returns:
        a 0-d tensor.
    """
    return grpo_token_loss(logp, old_logp, advantages, mask, 0.2, loss_norm, max_new_tokens=logp.shape[1])[0]


# ---- group_relative_advantages -----------------------------------------------------------------

_ADV_RULE = ("per group (row, dim=1): A = (r - mean) / (std + 1e-4) with the Bessel-corrected std (divided by G - 1, "
             "torch's default) when scale is True, A = r - mean when it is False; shape (B, G).")


def _rewards(seed: int, B: int, G: int, values=(0.0, 0.5, 1.5)) -> torch.Tensor:
    """(B, G) rewards drawn from ``values`` (the arithmetic reward's 0, 0.5 and 1.5)."""
    g = generator(seed)
    idx = torch.randint(len(values), (B, G), generator=g)
    return torch.tensor(values, dtype=torch.float32)[idx]


def group_relative_advantages_cases() -> list[Case]:
    """Cases for ``group_relative_advantages``."""
    return [
        Case((torch.tensor([[1.0, 0.0, 0.0, 0.0]]),), {}, "one group of 4, one right answer",
             "subtract the group's mean (0.25) and divide by its standard deviation plus 1e-4. Use the "
             "Bessel-corrected std, divided by G - 1 (torch's default .std()), as Hugging Face TRL's GRPOTrainer "
             "does: the right answer gets about +1.50 (the population std, divided by G, would give +1.73)."),
        Case((torch.tensor([[0.5, 0.5, 0.5, 0.5]]),), {}, "a group whose rewards are all equal",
             "every reward equals the mean, so every advantage is 0; the 1e-4 added to the std keeps 0 / 0 from "
             "being nan. Such a group teaches nothing."),
        Case((torch.tensor([[1.5, 0.0], [0.5, 0.0], [0.0, 0.0]]),), {}, "three groups with different rewards",
             "one mean and one std per group (per row: dim=1, keepdim=True), not over the whole batch: each response "
             "is compared only with the other responses to its own prompt."),
        Case((torch.tensor([[1.5, 0.5, 0.0, 0.0]]), False), {}, "scale=False (Dr. GRPO)",
             "with scale=False return the centred rewards r - mean, without dividing by the std."),
        Case((_rewards(50, 8, 8),), {}, "8 prompts x 8 responses of the arithmetic reward", _ADV_RULE),
    ]


def group_relative_advantages_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and rewards than the notebook's."""
    return [
        Case((_rewards(150, 4, 16),), {}, "4 prompts x 16 responses", _ADV_RULE),
        Case((_rewards(151, 6, 3, values=(-1.0, 2.0)), False), {}, "rewards -1 and 2, unscaled", _ADV_RULE),
        Case((torch.tensor([[2.0, 2.0], [3.0, -1.0]]),), {}, "an equal pair and a spread pair", _ADV_RULE),
    ]


def check_group_relative_advantages(fn) -> CheckResult:
    """Check a student's ``group_relative_advantages(rewards, scale=True) -> (B, G)``."""
    __tracebackhide__ = True
    return EXERCISES["group_relative_advantages"].check(fn)


# ---- parse_answer ----------------------------------------------------------------------------

_PARSE_RULE = ("the integer after the last 'the answer is' (any case; spaces, ':' or '=', '**' allowed before it; a "
               "sign and a trailing '.0' allowed), else None; None for '12.5' and '1,200'.")


def parse_answer_cases() -> list[Case]:
    """Cases for ``parse_answer`` (plain strings)."""
    return [
        Case(("The answer is 12.",), {}, "the required form",
             "find the phrase 'the answer is' and read the integer after it: return the int 12, not the str '12' "
             "(the full stop after the number ends it)."),
        Case(("7 + 5 = 12",), {}, "a right number but not in the required form",
             "the format reward asks for the form 'The answer is <n>': without the phrase, return None, even when a "
             "number is there."),
        Case(("THE ANSWER IS: **9**",), {}, "capitals, a colon and bold markers",
             "match the phrase in any letter case (re.IGNORECASE) and allow spaces, one ':' or '=' and '**' "
             "between the phrase and the number."),
        Case(("The answer is 5. Wait, no. The answer is 6.",), {}, "the reply corrects itself",
             "when the phrase occurs more than once, the last statement counts (re.findall or re.finditer, then "
             "the last match)."),
        Case(("The answer is 12.5",), {}, "a number that is not an integer",
             "a decimal part other than zeros makes the answer not an integer: return None. '12.0' counts as 12."),
        Case(("The answer is -3, I think.",), {}, "a negative answer followed by a comma", _PARSE_RULE),
        Case(("The answer is 1,200",), {}, "a thousands separator",
             "a comma followed by a digit is part of the number ('1,200'), which this parser does not accept: return "
             "None. A comma followed by a space ends the number."),
    ]


def parse_answer_hidden_cases() -> list[Case]:
    """Grader-only cases: other replies than the notebook's."""
    return [
        Case(("So, the answer is = 14 because 9 + 5 = 14.",), {}, "an '=' and a reason after the answer", _PARSE_RULE),
        Case(("The answer is 8.0!",), {}, "a trailing .0", _PARSE_RULE),
        Case(("The answer is seven.",), {}, "a word instead of digits", _PARSE_RULE),
        Case(("the answer is 3 or the answer is 4",), {}, "two statements", _PARSE_RULE),
    ]


def check_parse_answer(fn) -> CheckResult:
    """Check a student's ``parse_answer(response) -> int | None``."""
    __tracebackhide__ = True
    return EXERCISES["parse_answer"].check(fn)


# ---- grpo_loss ---------------------------------------------------------------------------------

_LOSS_RULE = ("term = min(ratio * A, clip(ratio, 0.8, 1.2) * A) on real tokens, A broadcast over each response's "
              "tokens; 'sequence': -mean over responses of each response's token mean; 'token': -sum / number of "
              "real tokens; 'constant': -sum / (N * R). A 0-d tensor.")


def _mask(lengths, R: int | None = None) -> torch.Tensor:
    """(N, R) bool: row i is True on its first ``lengths[i]`` positions, False after (padding)."""
    R = R or max(lengths)
    return torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]


def _batch(seed: int, lengths, R: int | None = None, drift: float = 0.0, padding: float | None = None) -> tuple:
    """``(logp, old_logp, advantages, mask)``: log-probs of sampled tokens, old ones ``drift`` away, one advantage per
    response. ``padding`` overwrites both log-prob tensors outside the mask (what a forward pass leaves there)."""
    g = generator(seed)
    mask = _mask(lengths, R)
    old = torch.log(0.05 + 0.9 * torch.rand(mask.shape, generator=g))  # (N, R)
    logp = old + drift * torch.randn(mask.shape, generator=g)
    adv = torch.randn(mask.shape[0], generator=g)  # (N,)
    if padding is not None:
        logp = torch.where(mask, logp, torch.full_like(logp, padding))
        old = torch.where(mask, old, torch.full_like(old, padding))
    return logp, old, adv, mask


def grpo_loss_cases() -> list[Case]:
    """Seeded cases for ``grpo_loss``."""
    return [
        Case((*_batch(60, [4, 4]), "sequence"), {}, "two responses of 4 tokens, ratio 1",
             "with logp == old_logp the ratio is 1 and each token's term is A_i; the loss is minus the mean over "
             "responses of each response's mean term: a 0-d tensor (a scalar to minimise)."),
        Case((*_batch(61, [6, 2, 4], drift=0.1), "sequence"), {}, "responses of different lengths",
             "'sequence' (GRPO) first averages the terms over each response's real tokens (divide by its own length, "
             "mask.sum(dim=1)), then averages those N numbers. Padding never enters a sum."),
        Case((*_batch(61, [6, 2, 4], drift=0.1), "token"), {}, "the token mean (DAPO)",
             "'token' divides the sum over all real tokens of the batch by their count: every token weighs the same, "
             "whatever the length of its response."),
        Case((*_batch(61, [6, 2, 4], drift=0.1), "constant"), {}, "a constant divisor (Dr. GRPO)",
             "'constant' divides the sum over all real tokens by N * R (R = logp.shape[1], the length limit), a "
             "number that does not depend on how long the responses are."),
        Case((*_batch(62, [5, 5, 5, 5], drift=0.6), "token"), {}, "ratios far from 1: the clip acts",
             "clip the ratio to [1 - 0.2, 1 + 0.2] and take the minimum of ratio * A and clipped ratio * A, token by "
             "token (PPO's pessimistic bound), before averaging."),
        Case((*_batch(63, [3, 5, 1], drift=0.3, padding=float("-inf")), "sequence"), {},
             "-inf log-probs on padding",
             "exp(-inf - (-inf)) is nan; select the real tokens with torch.where(mask, term, 0) (or term[mask]) instead "
             "of multiplying by the mask, since nan * 0 is nan."),
    ]


def grpo_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and drifts than the notebook's."""
    return [
        Case((*_batch(160, [8, 1, 5, 3, 7, 2, 6, 4], drift=0.4), "sequence"), {}, "8 responses, sequence",
             _LOSS_RULE),
        Case((*_batch(161, [2, 9, 4], R=10, drift=0.2), "constant"), {}, "R beyond the longest response",
             _LOSS_RULE),
        Case((*_batch(162, [5, 3, 6, 1], drift=0.8, padding=0.0), "token"), {}, "zeros on padding, token",
             _LOSS_RULE),
    ]


def check_grpo_loss(fn) -> CheckResult:
    """Check a student's ``grpo_loss(logp, old_logp, advantages, mask, loss_norm) -> 0-d tensor``."""
    __tracebackhide__ = True
    return EXERCISES["grpo_loss"].check(fn)


EXERCISES = {
    "group_relative_advantages": Exercise("group_relative_advantages", group_relative_advantages,
                                          group_relative_advantages_cases, group_relative_advantages_hidden_cases,
                                          adapt=cloned, rtol=1e-4, atol=1e-5),
    "parse_answer": Exercise("parse_answer", parse_answer, parse_answer_cases, parse_answer_hidden_cases),
    "grpo_loss": Exercise("grpo_loss", grpo_loss, grpo_loss_cases, grpo_loss_hidden_cases, adapt=cloned,
                          rtol=1e-4, atol=1e-6),
}
