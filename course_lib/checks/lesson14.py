"""Checks for lesson 14's exercises: group-relative advantages, a verifiable answer parser, GRPO's token loss.

Three pieces of :func:`course_lib.llm.grpo.grpo` and of its reward program:

* ``group_relative_advantages``: each response's reward relative to the other responses to the same
  prompt (Shao et al. 2024, Section 4.1.2), with or without the std-scaling
  (:func:`course_lib.rl.group_advantages`);
* ``parse_answer``: the integer a reply states in the required form "The answer is <n>", the heart of
  the format and correctness rewards (:func:`course_lib.data.arithmetic.parse_answer`);
* ``grpo_loss``: the clipped token loss with three normalisations over tokens, GRPO's per-response mean,
  DAPO's token mean and Dr. GRPO's constant (:func:`course_lib.llm.grpo.grpo_token_loss`);
* ``grpo_group_update`` (a whole-algorithm build): one GRPO update on one group of sampled replies, composed
  from the pieces above, checked by what it does to a tiny policy's weights (a uniform group leaves them
  unchanged, padding never moves them, two updates in a row do not mix their gradients, several epochs keep the old
  log-probs of the sampling policy);
* ``second_epoch_prediction`` (predict, then run): the second epoch's loss on a group whose first loss is 0.

Shapes: B prompts, G responses per prompt, N = B * G responses of up to R tokens, right-padded.
"""

from __future__ import annotations

import torch

import functools

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson14 import length_mask, loss_and_grad, update_run
from course_lib.harness.lesson14 import LR, TinyPolicy  # noqa: F401  (imported from here by the lesson and the tests)
from course_lib.harness.tensors import cloned, generator
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
    number may carry a sign, "-" or "+" ("+7" -> 7), and a trailing ".0" ("12.0" -> 12). Integer answers
    only: None when there is no such statement, when the number has a decimal part other than zeros
    ("12.5", "45.5": never rounded, never cut to its integer part), or when it has a thousands comma
    ("1,200", "12,000": never read as 1200, 12000, nor as a shorter number in front of the comma). Only the
    last statement counts, readable or not: "The answer is 3. Actually the answer is 1,200." is None.
    """
    return _parse_answer(response)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              loss_norm: str = "sequence") -> torch.Tensor:
    """Reference: GRPO's clipped token loss (clip_eps 0.2, no KL) with the normalisation ``loss_norm``.

        term[i, t] = min(ratio * A_i, clip(ratio, 0.8, 1.2) * A_i),  ratio = exp(logp - old_logp)
        "sequence": -mean over responses of (sum_t term / number of real tokens of the response)
        "token":    -sum of term over all real tokens / number of real tokens in the batch
        "constant": -sum of term over all real tokens / (N * R)

    The padded entries (which may be -inf) are replaced by 0 BEFORE the exp, so that the gradient w.r.t. ``logp`` is
    finite everywhere (0 on the padding): a where() after exp(-inf - (-inf)) = nan fixes the value but still sends
    nan back through the unselected branch.

    Args:
        logp, old_logp: (N, R). advantages: (N,). mask: (N, R) bool. loss_norm: as above.

    Returns:
        a 0-d tensor.
    """
    mask = mask.bool()
    logp = torch.where(mask, logp, torch.zeros_like(logp))  # (N, R): finite before the exp
    old_logp = torch.where(mask, old_logp, torch.zeros_like(old_logp))
    return grpo_token_loss(logp, old_logp, advantages, mask, 0.2, loss_norm, max_new_tokens=logp.shape[1])[0]


# ---- group_relative_advantages -----------------------------------------------------------------

_ADV_RULE = ("per group (one row: the G answers to one question): A = (r - mean) / (std + 1e-4) with the "
             "Bessel-corrected std (divided by G - 1, torch's default) when scale is True, A = r - mean when it is "
             "False; shape (B, G).")


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
             "one mean and one std per group (per row, reduced along the group axis and kept as a (B, 1) column so "
             "that it broadcasts), not over the whole batch: each response is compared only with the other "
             "responses to its own prompt."),
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


# ---- parse_answer ----------------------------------------------------------------------------

_PARSE_RULE = ("the integer after the last 'the answer is' (any case; spaces, ':' or '=', '**' allowed before it; a "
               "sign, '-' or '+', and a trailing '.0' allowed), else None; None for '12.5' and '1,200' (no shorter "
               "number in front of the '.' or the ',' either), and None when the last statement is unreadable, "
               "whatever an earlier one said.")

_BACKTRACK = ("a regex that fails after the whole number gives back digits and tries again: a lookahead that refuses "
              "only ',<digit>' right after the match lets the digit run shrink to '1' (followed by '2', which it does "
              "not refuse) and reads 1. The number must be read whole: refuse a match that a digit or ',<digit>' "
              "follows, so that no shorter prefix can be accepted. Here the answer is None.")


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
        Case(("The answer is 3. Actually the answer is 1,200.",), {}, "the last statement is unreadable",
             "the LAST statement decides even when it is not a readable integer: here it is '1,200', so the reply "
             "states no answer: return None, not the 3 of an earlier statement. Find the last phrase first, then "
             "read the number after it; do not pick the last statement that happens to parse."),
        Case(("The answer is 12,000",), {}, "a thousands comma after two digits", _BACKTRACK),
        Case(("The answer is +7.",), {}, "a leading plus sign",
             "a leading '+' is a sign, like '-': '+7' is 7. Allow either sign (one character, directly before the "
             "digits)."),
    ]


def parse_answer_hidden_cases() -> list[Case]:
    """Grader-only cases: other replies than the notebook's."""
    return [
        Case(("So, the answer is = 14 because 9 + 5 = 14.",), {}, "an '=' and a reason after the answer", _PARSE_RULE),
        Case(("The answer is 8.0!",), {}, "a trailing .0", _PARSE_RULE),
        Case(("The answer is seven.",), {}, "a word instead of digits", _PARSE_RULE),
        Case(("the answer is 3 or the answer is 4",), {}, "two statements", _PARSE_RULE),
        Case(("The answer is 4. No, the answer is four.",), {}, "a readable statement, then one in words",
             _PARSE_RULE),
        Case(("The answer is 45.5",), {}, "a decimal after two digits", _PARSE_RULE),
        Case(("So the answer is 25,000.",), {}, "a thousands comma after 25", _PARSE_RULE),
        Case(("The answer is: **+12**",), {}, "a plus sign inside bold markers", _PARSE_RULE),
    ]


# ---- grpo_loss ---------------------------------------------------------------------------------

_LOSS_RULE = ("per real token, the smaller of ratio times A and the clipped ratio (to [0.8, 1.2]) times A, A shared "
              "by all tokens of its response; 'sequence': minus the mean over responses of each response's token "
              "mean; 'token': minus the sum over real tokens divided by their number; 'constant': minus the sum "
              "divided by N times R, R the token budget (the second dimension of logp). A 0-d tensor.")


def _batch(seed: int, lengths, R: int | None = None, drift: float = 0.0, padding: float | None = None) -> tuple:
    """``(logp, old_logp, advantages, mask)``: log-probs of sampled tokens, old ones ``drift`` away, one advantage per
    response. ``padding`` overwrites both log-prob tensors outside the mask (what a forward pass leaves there)."""
    g = generator(seed)
    mask = length_mask(lengths, R)
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
             "the number of True in its row of the mask), then averages those N numbers. Padding never enters a "
             "sum."),
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
             "exp(-inf - (-inf)) is nan, and the check compares the gradient w.r.t. logp too. Multiplying by the mask "
             "does not remove it (nan * 0 is nan). A where on the mask AFTER the exp fixes the loss's value but not "
             "its gradient: autograd still sends nan back through the branch it did not select. Replace the padded "
             "log-probs by finite values (a where on the mask, e.g. 0) BEFORE the exp, or select the real tokens "
             "(boolean indexing) before computing anything with them."),
        Case((*_batch(64, [3, 5, 2], R=12, drift=0.2), "constant"), {}, "a token budget of 12, the longest answer 5",
             "'constant' divides by N * R with R the generation budget, the second dimension of logp (12 here), not "
             "the longest real answer (5): Dr. GRPO's divisor must not depend on the lengths the policy chose."),
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
        Case((*_batch(163, [2, 6, 4], R=7, drift=0.5, padding=float("-inf")), "constant"), {},
             "-inf on padding, constant", _LOSS_RULE + " The gradient w.r.t. logp must be finite, 0 on the padding."),
    ]


# ---- grpo_group_update: the whole-algorithm build -------------------------------------------------


def grpo_group_update(policy, optimizer, replies: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
                      loss_norm: str = "token", epochs: int = 1) -> list[float]:
    """Reference: one GRPO update on one group of G replies to one question.

    1. advantages: (r - mean) / (std + 1e-4) over the group (Bessel-corrected std), shape (G,);
    2. old log-probs: ``policy(replies)`` once, before any update, without gradient;
    3. ``epochs`` times: ``policy(replies)`` -> (G, R) log-probs, the clipped token loss (clip 0.2, no KL) with
       ``loss_norm`` over the real tokens (``mask``), R = replies.shape[1] for "constant"; zero the gradients,
       backward, one optimiser step;
    4. return the epochs' loss values, a list of floats.
    """
    advantages = group_advantages(rewards[None, :], scale=True, eps=1e-4)[0]  # (G,)
    with torch.no_grad():
        old_logp = policy(replies)  # (G, R): the sampling policy, fixed for every epoch
    losses = []
    for _ in range(epochs):
        logp = policy(replies)  # (G, R)
        loss, _ = grpo_token_loss(logp, old_logp, advantages, mask, 0.2, loss_norm, max_new_tokens=replies.shape[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


_UPDATE_RULE = ("advantages of the group (std-scaled, Bessel, + 1e-4), old log-probs once before any step and without "
                "gradient, then per epoch: log-probs, your clipped token loss with loss_norm over the masked tokens, "
                "zero the gradients, backward, step; return the list of the epochs' losses.")


def grpo_group_update_cases() -> list[Case]:
    """Seeded cases for ``grpo_group_update``: each runs it on a fresh tiny policy with SGD (lr 0.5)."""
    return [
        Case((10, [4, 4, 4, 4], torch.tensor([1.5, 0.0, 0.5, 0.0])), {"lr": 0.0},
             "the losses alone: one group of 4 replies, one epoch, learning rate 0",
             "the learning rate is 0 here, so only the returned losses are compared. Your group_relative_advantages "
             "takes a batch of groups, shape (B, G): give it the G rewards as ONE row, shape (1, G), and take that row "
             "back out, shape (G,). A (G,) vector has no dim 1 to reduce over (an error), and a (G, 1) column is G "
             "groups of one answer each, whose Bessel std divides by 0 (nan). Return a list with one float per "
             "epoch: the loss you stepped on, before the step."),
        Case((10, [4, 4, 4, 4], torch.tensor([1.5, 0.0, 0.5, 0.0])), {}, "the same group, one SGD step (lr 0.5)",
             "one step must move the weights. If your losses are right but no weight moved, your old log-probs carry "
             "a gradient: with old_logp computed by the same policy with gradient, ratio = exp(logp - old_logp) is "
             "exactly 1 and its gradient cancels (d(logp - old_logp) is 0), so the step is 0. Take the old log-probs "
             "under no-grad (or detach them): they are data, the sampling policy's. (No optimiser step at all looks "
             "the same: backward, then step.)"),
        Case((11, [4, 4, 4, 4], torch.tensor([1.5, 1.5, 1.5, 1.5])), {}, "a group whose rewards are all equal",
             "equal rewards give advantages of 0 (the + 1e-4 keeps 0 / 0 away): the loss is 0, its gradient is 0 and "
             "SGD leaves every weight where it was. A nan here means the division by the std lost its 1e-4."),
        Case((12, [5, 2, 3, 1], torch.tensor([0.0, 1.5, 0.5, 0.0]), "token", 1, 5, 3), {},
             "replies of different lengths, padded with token 3",
             "padding is not part of any reply: no padded position may enter the loss or move the weights. Pass "
             "the mask to your loss; the padded positions hold a real token id (3) and a finite log-prob."),
        Case((15, [4, 3, 4, 2], torch.tensor([1.5, 0.0, 0.0, 0.5])), {"calls": 2},
             "two updates in a row on the same policy and optimiser, one epoch each",
             "the second update's step is wrong while each loss is right: the gradients piled up. backward() ADDS "
             "to the .grad the parameters already hold (here, the first update's gradient), so without clearing "
             "them the step uses the sum of the old and the new gradients; with several epochs they pile up from "
             "epoch to epoch the same way. Clear the gradients (the optimiser's zero_grad) before every backward, "
             "in every epoch."),
        Case((13, [4, 3, 4], torch.tensor([0.0, 1.5, 0.5]), "token", 3), {}, "three epochs on the same group",
             "compute the old log-probs ONCE, before the first step, and keep them for every epoch (without "
             "gradient). Recomputed each epoch they make the ratio 1 forever and the clip never acts; the first "
             "epoch's loss is right either way, the later ones are not."),
        Case((14, [3, 4, 2, 4], torch.tensor([1.5, 0.0, 0.0, 0.5]), "sequence", 2), {},
             "GRPO's per-reply mean, two epochs",
             "pass loss_norm on to your grpo_loss: 'sequence' weighs each reply's mean, not each token. " + _UPDATE_RULE),
    ]


def grpo_group_update_hidden_cases() -> list[Case]:
    """Grader-only cases: other groups, lengths, normalisations and epochs than the notebook's."""
    return [
        Case((110, [6, 2, 5, 1, 4, 3, 6, 2], torch.tensor([0.0, 0.5, 1.5, 0.0, 0.0, 1.5, 0.5, 0.0]), "constant", 2,
              8, 5), {}, "8 replies, a budget of 8 tokens, constant", _UPDATE_RULE),
        Case((111, [3, 3, 3], torch.tensor([0.0, 0.0, 0.0]), "sequence", 2), {}, "a hopeless group: every reward 0",
             _UPDATE_RULE),
        Case((112, [2, 5, 4, 1], torch.tensor([-1.0, 2.0, 0.5, 2.0]), "token", 4, 6, 1), {},
             "four epochs, rewards -1 to 2", _UPDATE_RULE),
        Case((113, [3, 5, 5, 2, 4], torch.tensor([0.5, 0.0, 1.5, 1.5, 0.0]), "sequence", 2), {"calls": 2},
             "two updates in a row, two epochs each", _UPDATE_RULE),
    ]


# ---- second_epoch_prediction: predict, then run ------------------------------------------------------------


def second_epoch_prediction() -> str:
    """The letter of the right prediction (exercise 14's predict-then-run cell)."""
    return "D"


SECOND_EPOCH_FEEDBACK = {
    "A": "the loss is the token mean of the advantages only while every ratio is 1. After one SGD step, is every "
         "ratio still 1, and do the wrong answer's tokens and the right answers' tokens get the same ratio?",
    "B": "look at your grpo_group_update: when are the old log-probs computed, and how many times? Then ask what the "
         "ratio exp(logp - old_logp) is in the second epoch.",
    "C": "the min is pessimistic only about ratios beyond the clip range; inside [0.8, 1.2] the term is ratio times "
         "A_i. The first step was a small step along the gradient of the objective (minus the loss): which way does "
         "such a step move the objective?",
}


def _prediction_case() -> list[Case]:
    return [Case((), {}, "your prediction", "the first step moved the weights; what did it do to each answer's ratio, "
                                            "given the sign of its advantage?")]


# ---- tier-2 hints: hint(name, 2) ---------------------------------------------------------------

HINTS = {
    "group_relative_advantages": (
        "Reduce along the group axis (axis 1: the G answers of one question), and keep that axis so the mean and the "
        "std are (B, 1) columns that broadcast against (B, G); reducing over everything compares answers to "
        "different questions. torch's default std is already the Bessel-corrected one (divided by G - 1). Worked "
        "example: rewards (1, 0, 0, 0): mean 0.25, deviations (0.75, -0.25, -0.25, -0.25), Bessel std "
        "sqrt(0.75 / 3) = 0.5, so the advantages are about (1.50, -0.50, -0.50, -0.50). With scale=False stop after "
        "the subtraction."),
    "parse_answer": (
        "Two steps. First find where the LAST statement starts: every match of the phrase in any letter case, keep "
        "the last. Then try to read a number right after it: optional spaces, an optional ':' or '=', optional '**', "
        "an optional sign, digits, an optional decimal part; a lookahead rejects a number followed by ',<digit>' "
        "('1,200'). No number there: None. A decimal part is allowed only when it is all zeros ('12.0' -> 12, "
        "'12.5' -> None). Worked example: 'The answer is 5. Wait, no. The answer is 6.' -> 6; 'The answer is 3. "
        "Actually the answer is 1,200.' -> None."),
    "grpo_loss": (
        "Build a (N, R) tensor of per-token terms first, then reduce it. The ratio is the exponential of the "
        "log-prob difference; the advantage needs a new last axis of size 1 to broadcast over the R tokens; clamp "
        "the ratio to [0.8, 1.2] and keep the element-wise minimum of the two products. The padding first: the padded "
        "log-probs may be -inf, and exp(-inf - (-inf)) is nan. Replace them by finite values (a where on the mask, "
        "e.g. 0) BEFORE the exp, or select the real tokens away before computing with them. Zeroing the terms "
        "afterwards is not enough: multiplying by the mask keeps the nan (nan * 0 is nan), and a where applied after "
        "the nan fixes the loss's value but still passes nan gradients back to logp. The three divisors: each row's own count of real tokens ('sequence', then the mean of the "
        "N numbers), the batch's count of real tokens ('token'), N times R with R = the second dimension of logp, "
        "the budget ('constant'). Worked example: two answers of 3 and 1 real tokens in R = 3, ratio 1, advantages "
        "+1 and -1: terms sum to 3 - 1 = 2, so 'token' gives -2/4, 'constant' -2/6 and 'sequence' -(1 + (-1))/2 = 0."),
    "grpo_group_update": (
        "Compose, do not rewrite: your group_relative_advantages wants a (B, G) batch, so give it the group as one "
        "row and take the row back out, shape (G,). Call the policy once under no-grad before any step: those are "
        "the old log-probs, the sampling policy's, and they stay fixed for all epochs. Each epoch: call the policy "
        "again (now with gradient), your grpo_loss with the mask and loss_norm, then the optimiser's three moves in "
        "the usual order (clear the old gradients, backward, step). Record each epoch's loss as a float. Worked "
        "example: rewards (1.5, 1.5, 1.5, 1.5) give advantages 0, every epoch's loss is 0.0 and the weights do not "
        "move; with three epochs on a spread group, the first loss is minus the mean advantage-weighted ratio 1, "
        "the later ones use ratios that have moved away from 1."),
}

EXERCISES = {
    "group_relative_advantages": Exercise("group_relative_advantages", group_relative_advantages,
                                          group_relative_advantages_cases, group_relative_advantages_hidden_cases,
                                          adapt=cloned, rtol=1e-4, atol=1e-5,
                                          twins=("course_lib.rl.advantages.group_advantages",)),
    "parse_answer": Exercise("parse_answer", parse_answer, parse_answer_cases, parse_answer_hidden_cases,
                             twins=("course_lib.data.arithmetic.parse_answer",)),
    "grpo_loss": Exercise("grpo_loss", grpo_loss, grpo_loss_cases, grpo_loss_hidden_cases, adapt=loss_and_grad,
                          names=("loss", "d loss / d logp"), rtol=1e-4, atol=1e-6,
                          twins=("course_lib.llm.grpo.grpo_token_loss",)),
    "grpo_group_update": Exercise("grpo_group_update", grpo_group_update, grpo_group_update_cases,
                                  grpo_group_update_hidden_cases, adapt=update_run, names=("losses", "table"),
                                  rtol=1e-4, atol=1e-5),
    "second_epoch_prediction": Exercise("second_epoch_prediction", second_epoch_prediction, _prediction_case, list,
                                        kind="answer",
                                        comparer=functools.partial(compare_answers, feedback=SECOND_EPOCH_FEEDBACK),
                                        explanation="the old log-probs are those of the sampling policy, taken once, so "
                                                    "in the second epoch the ratio is exp(logp after one step - old "
                                                    "logp), no longer 1. The first step followed the gradient of the "
                                                    "objective, the token mean of min(ratio * A, clip(ratio) * A): it "
                                                    "lowered the wrong answer's log-probs (A about -2.47: ratios near "
                                                    "0.97, a smaller penalty) and raised the right answers' (A about "
                                                    "+0.35: ratios up to 1.02). The objective is now above 0, and the "
                                                    "loss, its negative, below 0: the run prints -0.0116, after a "
                                                    "first loss of 0 up to rounding. That drop is the improvement of "
                                                    "the surrogate on the same samples, the quantity several PPO-style "
                                                    "epochs climb (and the clip bounds, beyond 0.8 and 1.2); with one "
                                                    "epoch, as in lesson 14's cpu preset, the loss stays 0 and never "
                                                    "shows it."),
}

__getattr__ = check_functions(EXERCISES)
