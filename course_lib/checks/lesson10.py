"""Checks for lesson 10's exercises: the Bradley-Terry loss, the last real token of a padded row, calibration bins.

* ``bradley_terry_loss_fn``: the reward model's loss, -mean log sigmoid(r_chosen - r_rejected), and its
  accuracy (Ouyang et al. 2022, Eq. 1). Checked on the value, the accuracy *and* the gradient w.r.t.
  both score vectors, on inputs where the naive ``log(sigmoid(d))`` and the ``exp`` form of the softmax
  overflow;
* ``last_token_positions``: where a reward model reads its score, the last 1 of each row of an attention
  mask, for left padding (the course's tokenizer), right padding, and both mixed;
* ``calibration_bins``: a reliability diagram's numbers, the mean predicted probability, the observed
  frequency and the count of each of ``n_bins`` equal-width bins of [0, 1].
"""

from __future__ import annotations

from typing import Callable

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator
from course_lib.llm.reward_model import last_token_index
from course_lib.rl import bradley_terry_loss

# ---- references ----------------------------------------------------------------------------


def bradley_terry_loss_fn(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor):
    """Reference: ``(loss, accuracy)`` of :func:`course_lib.rl.bradley_terry_loss`.

    loss = -mean_b log sigmoid(chosen_scores[b] - rejected_scores[b]), a 0-d tensor; accuracy = the share of
    pairs with chosen_scores[b] > rejected_scores[b] (a tie is not a right order), a float.
    """
    loss, info = bradley_terry_loss(chosen_scores, rejected_scores)
    return loss, info["accuracy"]


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Reference: :func:`course_lib.llm.reward_model.last_token_index`, (B, T) -> (B,) int64."""
    return last_token_index(attention_mask)


def calibration_bins(probs: torch.Tensor, outcomes: torch.Tensor, n_bins: int):
    """Reference: ``(mean_predicted, observed_frequency, counts)``, each (n_bins,), for equal-width bins of [0, 1].

    Bin k holds the predictions p with k / n_bins <= p < (k + 1) / n_bins; p = 1 goes in the last bin.
    An empty bin reports 0 for both means and count 0.
    """
    idx = (probs * n_bins).long().clamp(0, n_bins - 1)  # (N,) bin of each prediction
    counts = torch.bincount(idx, minlength=n_bins)  # (n_bins,) int64
    sum_p = torch.zeros(n_bins, dtype=probs.dtype).index_add_(0, idx, probs)  # (n_bins,)
    sum_o = torch.zeros(n_bins, dtype=probs.dtype).index_add_(0, idx, outcomes.to(probs.dtype))
    safe = counts.clamp(min=1).to(probs.dtype)  # an empty bin divides 0 by 1
    return sum_p / safe, sum_o / safe, counts


# ---- adapters ------------------------------------------------------------------------------


def _bt_with_grad(fn: Callable) -> Callable:
    """Call ``fn`` on fresh leaves; return ``(loss, d loss / d chosen, d loss / d rejected, accuracy)``.

    Raises (inside the check, so the student sees it as their function's error) when the result is not a pair
    ``(0-d tensor with a gradient, one number)``.
    """

    def run(chosen, rejected):
        chosen = chosen.detach().clone().requires_grad_(True)
        rejected = rejected.detach().clone().requires_grad_(True)
        result = fn(chosen, rejected)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("bradley_terry_loss_fn should return a tuple (loss, accuracy), got "
                            f"{type(result).__name__}")
        loss, accuracy = result
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"bradley_terry_loss_fn's loss should be a 0-d torch tensor that can be back-propagated, "
                            f"got {type(loss).__name__}; keep to torch operations (no .item(), float() or numpy)")
        if loss.dim() != 0:
            raise ValueError(f"bradley_terry_loss_fn's loss should be one number for the whole batch, a 0-d tensor, "
                             f"got shape {tuple(loss.shape)}")
        if not loss.requires_grad:
            raise RuntimeError("bradley_terry_loss_fn's loss has no gradient w.r.t. the scores: it was detached "
                               "somewhere (.detach(), torch.no_grad(), .item() or numpy); the reward model could "
                               "not learn from it")
        if isinstance(accuracy, torch.Tensor):
            if accuracy.numel() != 1:
                raise ValueError(f"bradley_terry_loss_fn's accuracy should be one number, the share of pairs "
                                 f"ordered right, got shape {tuple(accuracy.shape)}")
            accuracy = float(accuracy)
        grad_c, grad_r = torch.autograd.grad(loss, (chosen, rejected), allow_unused=True)
        grad_c = torch.zeros_like(chosen) if grad_c is None else grad_c
        grad_r = torch.zeros_like(rejected) if grad_r is None else grad_r
        return loss.detach(), grad_c, grad_r, accuracy

    return run


# ---- bradley_terry_loss_fn -----------------------------------------------------------------


def _scores(seed: int, B: int, gap: float = 0.3, scale: float = 1.0, offset: float = 0.0):
    """``(chosen, rejected)``, (B,) each: reward-model-like scores where the chosen one is ahead by ``gap`` on
    average, so most but not all pairs are ordered right."""
    g = generator(seed)
    rejected = offset + scale * torch.randn(B, generator=g)
    chosen = rejected + gap + scale * torch.randn(B, generator=g)
    return torch.round(chosen, decimals=3), torch.round(rejected, decimals=3)


_BT_RULE = ("loss = -mean over pairs of log sigmoid(chosen - rejected), computed stably (F.logsigmoid(d) or "
            "-F.softplus(-d)), a 0-d tensor with a gradient; accuracy = the share of pairs with chosen > rejected, "
            "a float.")


def bradley_terry_loss_fn_cases() -> list[Case]:
    """Seeded cases for ``bradley_terry_loss_fn``; the adapter returns ``(loss, grad_c, grad_r, accuracy)``."""
    return [
        Case((torch.tensor([1.5]), torch.tensor([0.5])), {}, "one pair, the chosen response scored 1 higher",
             "the loss of a pair is -log sigmoid(r_chosen - r_rejected) = -log sigmoid(1) = 0.313 here: chosen "
             "minus rejected, and a minus sign in front (a loss to minimise, >= 0). Its gradient pushes the "
             "chosen score up (negative gradient) and the rejected one down."),
        Case((torch.tensor([0.3, -0.2, 0.7]), torch.tensor([0.3, -0.2, 0.7])), {},
             "equal scores in every pair: loss log 2, accuracy 0",
             "when r_chosen == r_rejected every pair's loss is -log sigmoid(0) = log 2 = 0.693, and the loss is "
             "the MEAN over pairs, so log 2 too (not 3 log 2). The accuracy counts pairs with chosen STRICTLY "
             "greater than rejected: a tie is not a right order, so 0 here."),
        Case(_scores(2, 6), {}, "6 pairs, some ordered wrongly by the scores",
             "the accuracy is the share (between 0 and 1) of pairs with chosen > rejected, not their count. "
             + _BT_RULE),
        Case(_scores(4, 8, offset=100.0), {}, "8 pairs whose scores are all near 100",
             "only the difference of the two scores matters (add 100 to both and nothing changes), but exp(100) "
             "overflows float32 to inf: do not write the loss as -log(exp(r_c) / (exp(r_c) + exp(r_r))); compute "
             "d = chosen - rejected first, then F.logsigmoid(d)."),
        Case((torch.tensor([-100.0, 2.0]), torch.tensor([100.0, 1.0])), {},
             "a pair ordered wrongly by 200: log(sigmoid(-200)) is log(0)",
             "in float32 sigmoid(-200) rounds to 0 and log(0) is -inf: write log sigmoid(d) as F.logsigmoid(d) "
             "(or -F.softplus(-d)), which is exact and finite for any d. The right loss here is "
             "(200 + 0.313) / 2."),
    ]


def bradley_terry_loss_fn_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and offsets than the notebook's."""
    return [
        Case(_scores(100, 16, gap=0.8, scale=2.0), {}, "16 pairs, scores of scale 2", _BT_RULE),
        Case(_scores(101, 5, gap=-0.5, offset=-60.0), {}, "5 pairs near -60, mostly ordered wrongly", _BT_RULE),
        Case((torch.tensor([3.0, 0.0, -1.0, 250.0]), torch.tensor([3.0, 0.5, -4.0, -250.0])), {},
             "a tie, a small loss, a clear win and a huge margin", _BT_RULE),
    ]


def check_bradley_terry_loss_fn(fn) -> CheckResult:
    """Check a student's ``bradley_terry_loss_fn(chosen_scores, rejected_scores) -> (loss, accuracy)``."""
    __tracebackhide__ = True
    return EXERCISES["bradley_terry_loss_fn"].check(fn)


# ---- last_token_positions ------------------------------------------------------------------


def _mask(lengths, T: int, sides) -> torch.Tensor:
    """(B, T) int64 attention mask: row b has ``lengths[b]`` real tokens, padded on ``sides[b]`` ("left"/"right")."""
    mask = torch.zeros((len(lengths), T), dtype=torch.long)
    for b, (n, side) in enumerate(zip(lengths, sides)):
        if side == "left":
            mask[b, T - n:] = 1
        else:
            mask[b, :n] = 1
    return mask


def _random_mask(seed: int, B: int, T: int, side: str) -> torch.Tensor:
    g = generator(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    sides = [side] * B if side in ("left", "right") else [("left", "right")[int(x)] for x in
                                                          torch.randint(0, 2, (B,), generator=g)]
    return _mask(lengths, T, sides)


_LAST_RULE = ("index[b] = the largest t with attention_mask[b, t] == 1, for any padding side; shape (B,), "
              "dtype int64 (torch.long).")


def last_token_positions_cases() -> list[Case]:
    """Seeded cases for ``last_token_positions``."""
    return [
        Case((_mask([3, 5, 1], 5, ["right"] * 3),), {}, "right padding: real tokens first, padding after",
             "the score is read at the LAST real token (the last 1 of the row), not the first: with right "
             "padding that is position (number of real tokens) - 1; positions count from 0."),
        Case((_mask([3, 5, 1], 5, ["left"] * 3),), {}, "left padding, as the course's tokenizer pads",
             "with left padding the real tokens END the row: the last real token is at T - 1 for every row, "
             "whatever its length. mask.sum(dim=1) - 1 only works for right padding; find the last 1 instead."),
        Case((_mask([2, 4, 6, 1], 6, ["left", "right", "left", "right"]),), {},
             "left- and right-padded rows in one batch",
             "find the last 1 of each row without assuming a side: e.g. (torch.arange(T) * mask).argmax(dim=1), "
             "or T - 1 - mask.flip(1).argmax(dim=1) (argmax returns the first maximum)."),
        Case((_mask([4, 2, 3], 4, ["left", "right", "left"]).bool(),), {}, "a boolean mask (True = real token)",
             "the mask may come as bool: torch.argmax does not accept bool tensors and bool * int keeps "
             "working only sometimes; convert first with mask.long()."),
        Case((_random_mask(4, 8, 12, "left"),), {}, "8 left-padded rows of 1 to 12 tokens, as encode_pairs builds them",
             _LAST_RULE + " Return integer indices (they index the hidden states), not floats."),
    ]


def last_token_positions_hidden_cases() -> list[Case]:
    """Grader-only cases: other shapes and sides than the notebook's."""
    return [
        Case((_random_mask(110, 6, 20, "right"),), {}, "6 right-padded rows of up to 20 tokens", _LAST_RULE),
        Case((_random_mask(111, 10, 9, "mixed"),), {}, "10 rows, each padded on a random side", _LAST_RULE),
        Case((torch.ones((1, 1), dtype=torch.long),), {}, "a single one-token row", _LAST_RULE),
    ]


def check_last_token_positions(fn) -> CheckResult:
    """Check a student's ``last_token_positions(attention_mask) -> (B,) int64``."""
    __tracebackhide__ = True
    return EXERCISES["last_token_positions"].check(fn)


# ---- calibration_bins ----------------------------------------------------------------------


def _calibrated(seed: int, N: int, low: float = 0.0, high: float = 1.0, power: float = 1.0):
    """``(probs, outcomes)``, (N,) float32 each: predictions in [low, high] (skewed by ``power``), and outcomes drawn
    with exactly those probabilities (a calibrated predictor). No prediction lies within 1e-4 of an inner bin edge
    of 2 to 10 bins, so float rounding cannot move one across."""
    g = generator(seed)
    u = torch.rand(N, generator=g, dtype=torch.float64) ** power
    probs = low + (high - low) * u
    edges = torch.tensor(sorted({k / n for n in range(2, 11) for k in range(1, n)}), dtype=torch.float64)
    near = (probs[:, None] - edges[None, :]).abs().min(dim=1).values < 1e-4
    probs = torch.where(near, probs + 3e-4, probs)
    outcomes = (torch.rand(N, generator=g, dtype=torch.float64) < probs).float()
    return probs.float(), outcomes


_CAL_RULE = ("bin k holds the p with k / n_bins <= p < (k + 1) / n_bins (p = 1 in the last bin); per bin return the "
             "mean of its predictions, the mean of its outcomes and how many there are (int64); 0, 0 and 0 for "
             "an empty bin.")


def calibration_bins_cases() -> list[Case]:
    """Seeded cases for ``calibration_bins``."""
    return [
        Case((torch.tensor([0.1, 0.3, 0.8, 0.6]), torch.tensor([0.0, 1.0, 1.0, 1.0]), 2), {},
             "four predictions, two bins",
             "bin k of n_bins covers [k / n_bins, (k + 1) / n_bins): here [0, 0.5) holds 0.1 and 0.3, [0.5, 1] holds "
             "0.8 and 0.6. mean_predicted is the mean of the predictions IN the bin (0.2 and 0.7), not the bin's "
             "centre; observed_frequency is the mean of those predictions' outcomes (0.5 and 1.0), divided by the "
             "bin's count, not by all N; counts are integers (torch.bincount gives int64)."),
        Case((torch.tensor([0.0, 1.0, 0.9, 0.15]), torch.tensor([0.0, 1.0, 0.0, 0.0]), 2), {},
             "predictions of exactly 0 and 1",
             "floor(p * n_bins) is n_bins for p = 1.0, one past the last bin: clamp the bin index to n_bins - 1, "
             "so p = 1 lands in the last bin. p = 0 is in bin 0."),
        Case((*_calibrated(3, 60, power=3.0), 5), {}, "skewed predictions (most below 0.2), 5 bins",
             "the bins have EQUAL WIDTH (edges 0, 0.2, 0.4, ...), not equal counts: a bin holds however many "
             "predictions fall in it. " + _CAL_RULE),
        Case((*_calibrated(2, 40, low=0.55, high=0.95), 10), {}, "10 bins, predictions only between 0.55 and 0.95",
             "bins that no prediction falls in report mean_predicted 0, observed_frequency 0 and count 0 (divide by "
             "max(count, 1), or 0 / 0 gives nan); the result always has n_bins entries."),
        Case((*_calibrated(4, 1000), 10), {}, "1000 predictions of a calibrated model, 10 bins", _CAL_RULE),
    ]


def calibration_bins_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and bin counts than the notebook's."""
    return [
        Case((*_calibrated(120, 300, power=0.5), 8), {}, "300 predictions skewed towards 1, 8 bins", _CAL_RULE),
        Case((*_calibrated(121, 25, low=0.0, high=0.45), 3), {}, "25 predictions below 0.45, 3 bins", _CAL_RULE),
        Case((torch.tensor([1.0, 1.0, 0.05, 0.5]), torch.tensor([1.0, 0.0, 0.0, 1.0]), 2), {},
             "two predictions of 1 and one at the middle edge", _CAL_RULE),
    ]


def check_calibration_bins(fn) -> CheckResult:
    """Check a student's ``calibration_bins(probs, outcomes, n_bins) -> (mean_predicted, observed_frequency, counts)``."""
    __tracebackhide__ = True
    return EXERCISES["calibration_bins"].check(fn)


EXERCISES = {
    "bradley_terry_loss_fn": Exercise(
        "bradley_terry_loss_fn", bradley_terry_loss_fn, bradley_terry_loss_fn_cases,
        bradley_terry_loss_fn_hidden_cases, adapt=_bt_with_grad,
        names=("loss", "d loss / d chosen_scores", "d loss / d rejected_scores", "accuracy"), rtol=1e-4, atol=1e-6),
    "last_token_positions": Exercise("last_token_positions", last_token_positions, last_token_positions_cases,
                                     last_token_positions_hidden_cases, adapt=cloned),
    "calibration_bins": Exercise("calibration_bins", calibration_bins, calibration_bins_cases,
                                 calibration_bins_hidden_cases, adapt=cloned,
                                 names=("mean_predicted", "observed_frequency", "counts"), rtol=1e-5, atol=1e-6),
}
