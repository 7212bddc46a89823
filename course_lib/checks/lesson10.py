"""Checks for lesson 10's exercises: the Bradley-Terry loss, the last real token of a padded row, calibration bins,
and a spot-the-bug on the EOS token.

* ``bradley_terry_loss_fn``: the reward model's loss, -mean log sigmoid(r_chosen - r_rejected), with label
  smoothing for noisy labels, and its accuracy (Ouyang et al. 2022, Eq. 1; Mitchell 2023). Checked on the
  value, the accuracy *and* the gradient w.r.t. both score vectors, on inputs where the naive ``log(sigmoid(d))`` and the ``exp`` form of the softmax
  overflow;
* ``last_token_positions``: where a reward model reads its score, the last 1 of each row of an attention
  mask, for left padding (the course's tokenizer), right padding, and both mixed;
* ``calibration_bins``: a reliability diagram's numbers, the mean predicted probability, the observed
  frequency and the count of each of ``n_bins`` equal-width bins of [0, 1];
* spot the bug: ``eos_bug`` names the bug of a row builder that strips the EOS before scoring (a graded
  choice), ``reward_rows`` is the fix, checked on replies with and without EOS.
"""

from __future__ import annotations

import functools
import torch
import torch.nn.functional as F

from course_lib.checks.core import Case, Exercise, check_functions, compare, compare_answers
from course_lib.harness.lesson10 import bt_with_grad
from course_lib.harness.tensors import cloned, generator
from course_lib.llm.reward_model import last_token_index
from course_lib.llm.tokens import pad
from course_lib.rl import bradley_terry_loss

# ---- references ----------------------------------------------------------------------------


def bradley_terry_loss_fn(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, label_smoothing: float = 0.0):
    """Reference: ``(loss, accuracy)``; with ``label_smoothing`` 0 the loss of :func:`course_lib.rl.bradley_terry_loss`.

    loss = -mean_b [(1 - eps) log sigmoid(d_b) + eps log sigmoid(-d_b)], d_b = chosen_scores[b] - rejected_scores[b],
    eps = ``label_smoothing`` (the share of labels an annotator is believed to have flipped; the conservative
    loss of Mitchell 2023), a 0-d tensor; accuracy = the share of pairs with d_b > 0 (a tie is not a right order),
    a float.
    """
    loss, info = bradley_terry_loss(chosen_scores, rejected_scores)
    if label_smoothing:
        d = chosen_scores - rejected_scores  # (B,)
        loss = -((1 - label_smoothing) * F.logsigmoid(d) + label_smoothing * F.logsigmoid(-d)).mean()
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


# ---- comparing bradley_terry_loss_fn's results ---------------------------------------------

_BT_LABELS = ("loss (the first value you return)", "accuracy (the second value you return)",
              "d loss / d chosen_scores (the gradient of your loss)",
              "d loss / d rejected_scores (the gradient of your loss)")


def _compare_bt(expected, got) -> str | None:
    """Compare ``(loss, accuracy, grad_c, grad_r)`` item by item, each named by what it is to the student."""
    for label, e, g in zip(_BT_LABELS, expected, got):
        mismatch = compare(e, g, rtol=1e-4, atol=1e-6, path=label)
        if mismatch:
            return mismatch
    return None


# ---- bradley_terry_loss_fn -----------------------------------------------------------------


def _scores(seed: int, B: int, gap: float = 0.3, scale: float = 1.0, offset: float = 0.0):
    """``(chosen, rejected)``, (B,) each: reward-model-like scores where the chosen one is ahead by ``gap`` on
    average, so most but not all pairs are ordered right."""
    g = generator(seed)
    rejected = offset + scale * torch.randn(B, generator=g)
    chosen = rejected + gap + scale * torch.randn(B, generator=g)
    return torch.round(chosen, decimals=3), torch.round(rejected, decimals=3)


_BT_RULE = ("the loss is minus the mean over pairs of the (smoothed) log-likelihood of the observed choice, each "
            "log sigmoid computed by the stable function, never as the log of a sigmoid; a 0-d tensor with a "
            "gradient. The accuracy is the share of pairs with chosen strictly above rejected, a float.")


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
        Case((torch.tensor([1.5, 0.0]), torch.tensor([0.5, 0.0])), {"label_smoothing": 0.1},
             "label smoothing 0.1: the annotator is believed to flip one label in ten",
             "with label_smoothing eps each pair's log-likelihood is (1 - eps) log sigmoid(d) + eps log sigmoid(-d): "
             "the chosen one wins with weight 1 - eps and LOSES with weight eps. Here the first pair gives "
             "0.9 * 0.313 + 0.1 * 1.313 = 0.413, the tie log 2 = 0.693; the loss is their mean, 0.553. The "
             "accuracy does not depend on eps."),
        Case(_scores(5, 7, gap=1.5, scale=3.0), {"label_smoothing": 0.25},
             "7 pairs with large margins, label smoothing 0.25",
             "with eps > 0 a pair ordered right by a wide margin still costs about eps * d (log sigmoid(-d) is "
             "about -d): smoothing stops the margins from growing without end. Compute log sigmoid(-d) stably "
             "too. " + _BT_RULE),
    ]


def bradley_terry_loss_fn_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and offsets than the notebook's."""
    return [
        Case(_scores(100, 16, gap=0.8, scale=2.0), {}, "16 pairs, scores of scale 2", _BT_RULE),
        Case(_scores(101, 5, gap=-0.5, offset=-60.0), {}, "5 pairs near -60, mostly ordered wrongly", _BT_RULE),
        Case((torch.tensor([3.0, 0.0, -1.0, 250.0]), torch.tensor([3.0, 0.5, -4.0, -250.0])), {},
             "a tie, a small loss, a clear win and a huge margin", _BT_RULE),
        Case(_scores(102, 9, gap=0.2, scale=1.5), {"label_smoothing": 0.05}, "9 pairs, label smoothing 0.05",
             _BT_RULE),
        Case((torch.tensor([-150.0, 4.0]), torch.tensor([150.0, 1.0])), {"label_smoothing": 0.5},
             "label smoothing 0.5 (no information in the labels) and a margin of 300", _BT_RULE),
    ]


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
             "find the last 1 of each row without assuming a side. argmax returns the FIRST maximum of a row, so "
             "give the later positions larger values (weigh each 1 by its position), or search the row from its "
             "end (reversed) and convert the index back."),
        Case((_mask([4, 2, 3], 4, ["left", "right", "left"]).bool(),), {}, "a boolean mask (True = real token)",
             "the mask may come as bool: torch.argmax does not accept bool tensors and bool * int keeps "
             "working only sometimes; convert the mask to int64 (mask.long()) first."),
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


EXERCISES = {
    "bradley_terry_loss_fn": Exercise(
        "bradley_terry_loss_fn", bradley_terry_loss_fn, bradley_terry_loss_fn_cases,
        bradley_terry_loss_fn_hidden_cases, adapt=bt_with_grad, comparer=_compare_bt, rtol=1e-4, atol=1e-6,
        twins=("course_lib.rl.preference.bradley_terry_loss",)),
    "last_token_positions": Exercise("last_token_positions", last_token_positions, last_token_positions_cases,
                                     last_token_positions_hidden_cases, adapt=cloned,
                                     twins=("course_lib.llm.tokens.last_token_index",)),
    "calibration_bins": Exercise("calibration_bins", calibration_bins, calibration_bins_cases,
                                 calibration_bins_hidden_cases, adapt=cloned,
                                 names=("mean_predicted", "observed_frequency", "counts"), rtol=1e-5, atol=1e-6),
}

__getattr__ = check_functions(EXERCISES)


# ---- spot the bug: the EOS stripped before scoring ---------------------------------------------


def reward_rows(prompt_ids: list[int], replies: list[list[int]], eos_id: int, pad_id: int):
    """Reference: ``(input_ids, attention_mask)``, (B, T) int64 each, for a reward model: row b is the prompt's ids then
    reply b's ids exactly as sampled (its EOS kept when it finished), left-padded with ``pad_id``; the mask is 1 on
    every real token (the EOS included, even when ``pad_id == eos_id``) and 0 on padding."""
    del eos_id  # nothing to do with it: a reply's ids are the episode, EOS and all
    return pad([list(prompt_ids) + list(reply) for reply in replies], pad_id, side="left")


_EOS = 2  # the cases' EOS id; padding is 0 unless a case says otherwise


def _replies(seed: int, lengths, finished) -> list[list[int]]:
    """Replies of ``lengths`` content tokens (ids 3 to 40), each ending with EOS where ``finished``."""
    g = generator(seed)
    return [torch.randint(3, 41, (n,), generator=g).tolist() + ([_EOS] if f else []) for n, f in zip(lengths, finished)]


_ROWS_RULE = ("row b is the prompt's ids followed by reply b's ids exactly as they are, left-padded to the longest "
              "row; the mask is 1 on every real token, 0 on padding, both int64.")


def reward_rows_cases() -> list[Case]:
    """Seeded cases for ``reward_rows``: replies with and without EOS."""
    finished_and_cut = [[11, 12, 13, _EOS], [11, 12, 13]]
    return [
        Case(([5, 6], [[7, 8, _EOS]], _EOS, 0), {}, "one finished reply: its EOS stays",
             "the reply finished, and its EOS token is part of it: it is the last real token, where the reward "
             "model reads its score. Keep every id of the reply, EOS included."),
        Case(([5, 6], finished_and_cut, _EOS, 0), {}, "the same words, once finished (EOS) and once cut at the limit",
             "these two replies are different episodes: one ended, one was cut. With the EOS removed their rows "
             "are identical and any reward model gives them the same score. The cut row is one token shorter, so it "
             "gets one more padding token on the LEFT."),
        Case(([4, 9, 9], [[_EOS], [20, 21]], _EOS, 0), {}, "an empty finished reply (only EOS) next to a cut one",
             "a reply of only EOS is a real, finished (empty) answer: its row is the prompt then EOS. " + _ROWS_RULE),
        Case(([5, 6], finished_and_cut, _EOS, _EOS), {}, "the padding id is the EOS id (as for many tokenizers)",
             "when pad_id == eos_id you cannot find the real tokens by comparing ids with pad_id: build the mask "
             "from each row's length. The finished reply's EOS is real (mask 1); the padding before it is not."),
        Case((_replies(4, [1], [False])[0], _replies(5, [3, 6, 1, 4], [True, False, True, True]), _EOS, 0), {},
             "4 replies of 1 to 6 tokens, three finished", _ROWS_RULE),
    ]


def reward_rows_hidden_cases() -> list[Case]:
    """Grader-only cases: other prompts, lengths and padding ids than the notebook's."""
    return [
        Case(([8], _replies(110, [5, 5, 2], [False, True, True]), _EOS, 1), {}, "3 replies, padding id 1", _ROWS_RULE),
        Case((_replies(111, [4], [False])[0], _replies(112, [2, 7], [True, True]), _EOS, _EOS), {},
             "two finished replies, padding id = EOS id", _ROWS_RULE),
        Case(([3, 3], _replies(113, [6], [False]), _EOS, 0), {}, "a single cut reply", _ROWS_RULE),
    ]


def eos_bug() -> str:
    """The letter of the bug in ``reward_rows_buggy`` (exercise 10): the EOS is stripped before scoring."""
    return "B"


EOS_BUG_FEEDBACK = {
    "a": "left padding is the course's convention, and the reward model reads its score at the last REAL token, "
         "which left padding puts at the end of every row. Compare the two rows the notebook printed instead.",
    "c": "the reward model must see the prompt: the same reply can be good for one prompt and bad for another. "
         "Look at what the rows contain at their last real position.",
    "d": "token ids carry no gradient anyway (the reward model's gradient flows through its weights). Look at "
         "which ids of a reply reach the row.",
}


def _eos_bug_case() -> list[Case]:
    return [Case((), {}, "your answer", "print the rows the buggy function builds for a finished reply and for the "
                 "same words cut at the token limit: what is different about the two replies, and what is different "
                 "about their rows?")]


EXERCISES["reward_rows"] = Exercise("reward_rows", reward_rows, reward_rows_cases, reward_rows_hidden_cases,
                                    names=("input_ids", "attention_mask"), twins=("course_lib.llm.tokens.pad",))
EXERCISES["eos_bug"] = Exercise("eos_bug", eos_bug, _eos_bug_case, list, kind="answer",
                                comparer=functools.partial(compare_answers, feedback=EOS_BUG_FEEDBACK),
                                explanation="the EOS is an action, the policy's choice to stop: a reply that ended "
                                            "and one the token limit cut are different episodes, and for a finished "
                                            "reply the EOS is the last real token, where the reward model reads its "
                                            "score. Decoding with skip_special_tokens drops it, so the two replies "
                                            "become one row and every reward model, however well trained, must "
                                            "score them alike: the policy is never rewarded for finishing, nor "
                                            "penalised for rambling up to the limit. Give the reward model the ids "
                                            "exactly as sampled; text is for reading, not for scoring.")


# ---- tier-2 hints ----------------------------------------------------------------------------

HINTS = {
    "bradley_terry_loss_fn": (
        "Work with the margin d = chosen minus rejected, one number per pair. The observed choice 'chosen wins' "
        "has probability sigmoid(d); with label smoothing eps you believe it with weight 1 - eps and the opposite "
        "choice (probability sigmoid(-d)) with weight eps. torch.nn.functional has a log-sigmoid that stays finite "
        "for any d; never take the log of a sigmoid, and never exponentiate raw scores. The loss is minus the "
        "batch mean of the weighted log-likelihoods, kept as a tensor with its gradient. The accuracy compares d "
        "with 0 strictly (a tie is wrong) and is a share in [0, 1], returned as a Python float. Worked example: "
        "d = [1, 0], eps = 0: loss (0.313 + 0.693) / 2 = 0.503, accuracy 0.5; with eps = 0.1 the first pair costs "
        "0.9 * 0.313 + 0.1 * 1.313 = 0.413."),
    "last_token_positions": (
        "You want, per row, the position of the LAST 1. argmax along the token axis returns the first position of "
        "the largest value, so make later 1s larger than earlier ones: e.g. weigh each entry of the mask by its "
        "position (a range over T, broadcast over rows), and the largest product sits at the last 1. Another way: "
        "reverse each row, find its first 1, and convert that index back to a position of the original row. "
        "Convert a bool mask to int64 first (argmax rejects bool). Worked example: the rows [0, 1, 1, 0], "
        "[1, 0, 0, 0] and [0, 0, 0, 1] give [2, 0, 3]."),
    "calibration_bins": (
        "First give every prediction its bin: k = floor(p * n_bins), but p = 1 would land in bin n_bins, one past "
        "the end, so cap k at n_bins - 1. Then per bin you need three numbers: how many predictions it holds, the "
        "sum of their p and the sum of their outcomes. torch has a function that counts occurrences of each "
        "integer (ask it for n_bins entries even when the top bins are empty), and an in-place scatter-add along "
        "an axis for the sums; a loop over the n_bins bins with a boolean mask works too. Divide each sum by the "
        "count, using at least 1 as the divisor so an empty bin reports 0, not nan. Worked example, 4 bins: p = "
        "[0.05, 0.15, 0.95, 1.0], outcomes [0, 1, 1, 0]: counts [2, 0, 0, 2], mean_predicted [0.1, 0, 0, 0.975], "
        "observed_frequency [0.5, 0, 0, 0.5]."),
    "reward_rows": (
        "A reply's ids are the episode: copy them as they are. A finished reply ends with EOS and a cut one does "
        "not, and that last token is exactly where the reward model reads its score. Build each row as prompt ids "
        "then reply ids, find the longest row, and put each row at the END of a (B, T) tensor filled with pad_id "
        "(left padding); the mask is 1 on the positions you filled. Do not derive the mask from ids != pad_id: "
        "pad_id may equal eos_id. Worked example: prompt [5, 6], replies [11, 12, 13, EOS] and [11, 12, 13], "
        "EOS = 2, pad 0: rows [5, 6, 11, 12, 13, 2] and [0, 5, 6, 11, 12, 13], masks [1, 1, 1, 1, 1, 1] and "
        "[0, 1, 1, 1, 1, 1]."),
}
