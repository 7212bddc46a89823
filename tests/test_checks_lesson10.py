"""Lesson 10's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson10 import (
    EXERCISES,
    bradley_terry_loss_fn,
    calibration_bins,
    check_bradley_terry_loss_fn,
    check_calibration_bins,
    check_last_token_positions,
    last_token_positions,
)

# ---- the references agree with independent computations ---------------------------------------


def test_bradley_terry_reference_matches_the_formula_in_float64():
    def softplus(x):  # -log sigmoid(-x) = log(1 + exp(x)), written to stay finite for either sign of x
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))

    for case in EXERCISES["bradley_terry_loss_fn"].cases() + EXERCISES["bradley_terry_loss_fn"].hidden_cases():
        chosen, rejected = case.args
        eps = case.kwargs.get("label_smoothing", 0.0)
        loss, accuracy = bradley_terry_loss_fn(chosen, rejected, **case.kwargs)
        d = (chosen.double() - rejected.double()).tolist()
        expected = sum((1 - eps) * softplus(-x) + eps * softplus(x) for x in d) / len(d)
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        assert accuracy == pytest.approx(sum(x > 0 for x in d) / len(d))


def test_last_token_reference_matches_a_loop():
    for case in EXERCISES["last_token_positions"].cases() + EXERCISES["last_token_positions"].hidden_cases():
        (mask,) = case.args
        expected = [max(t for t in range(mask.shape[1]) if mask[b, t]) for b in range(mask.shape[0])]
        got = last_token_positions(mask)
        assert got.dtype == torch.int64 and got.tolist() == expected


def test_calibration_reference_matches_a_loop():
    for case in EXERCISES["calibration_bins"].cases() + EXERCISES["calibration_bins"].hidden_cases():
        probs, outcomes, n_bins = case.args
        mean_p, freq, counts = calibration_bins(probs, outcomes, n_bins)
        assert mean_p.shape == freq.shape == counts.shape == (n_bins,) and counts.dtype == torch.int64
        members = [[] for _ in range(n_bins)]
        for p, o in zip(probs.tolist(), outcomes.tolist()):
            members[min(int(math.floor(p * n_bins)), n_bins - 1)].append((p, o))
        for k, items in enumerate(members):
            assert counts[k].item() == len(items)
            if items:
                assert mean_p[k].item() == pytest.approx(np.mean([p for p, _ in items]), rel=1e-5)
                assert freq[k].item() == pytest.approx(np.mean([o for _, o in items]), rel=1e-5, abs=1e-7)
            else:
                assert mean_p[k].item() == 0 and freq[k].item() == 0


def test_cases_probe_what_they_say():
    bt = EXERCISES["bradley_terry_loss_fn"].cases()
    assert torch.isinf(torch.exp(bt[3].args[0])).any()  # exp(score) overflows float32
    assert [c.kwargs.get("label_smoothing", 0) > 0 for c in bt] == [False] * 5 + [True] * 2
    assert (torch.sigmoid(bt[4].args[0] - bt[4].args[1]) == 0).any()  # the naive log(sigmoid) meets log(0)
    _, accuracy = bradley_terry_loss_fn(*bt[2].args)
    assert 0 < accuracy < 1  # some pairs ordered wrongly
    masks = [c.args[0] for c in EXERCISES["last_token_positions"].cases()]
    assert masks[0][:, 0].all() and masks[1][:, -1].all()  # right padding, then left padding
    assert not masks[2][:, 0].all() and not masks[2][:, -1].all()  # mixed
    assert masks[3].dtype == torch.bool
    cal = EXERCISES["calibration_bins"].cases()
    assert (cal[1].args[0] == 1.0).any()
    assert (calibration_bins(*cal[1].args)[2] > 0).all() and (calibration_bins(*cal[2].args)[2] > 0).all()
    assert (calibration_bins(*cal[3].args)[2] == 0).any()  # some empty bins
    calibrated = calibration_bins(*cal[4].args)
    assert (calibrated[0] - calibrated[1]).abs().max() < 0.1  # outcomes drawn with the predicted probabilities


def test_the_library_passes_the_checks():
    from course_lib.llm.reward_model import last_token_index
    from course_lib.rl import bradley_terry_loss

    assert check_last_token_positions(last_token_index).status == "pass"
    for case in EXERCISES["bradley_terry_loss_fn"].cases() + EXERCISES["bradley_terry_loss_fn"].hidden_cases():
        if not case.kwargs.get("label_smoothing"):  # the library's loss is the unsmoothed one
            loss, info = bradley_terry_loss(*case.args)
            assert torch.isclose(loss, bradley_terry_loss_fn(*case.args)[0])


# ---- bradley_terry_loss_fn: wrong versions -------------------------------------------------------


def _acc(c, r, label_smoothing=0.0):
    return float((c > r).float().mean())


def bt_sign_flipped(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(r - c).mean(), _acc(c, r)


def bt_naive_log_sigmoid(c, r, label_smoothing=0.0):
    return -torch.log(torch.sigmoid(c - r)).mean(), _acc(c, r)


def bt_exp_softmax(c, r, label_smoothing=0.0):
    return -torch.log(torch.exp(c) / (torch.exp(c) + torch.exp(r))).mean(), _acc(c, r)


def bt_sums(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(c - r).sum(), _acc(c, r)


def bt_ties_count_as_right(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(c - r).mean(), float((c >= r).float().mean())


def bt_accuracy_as_count(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(c - r).mean(), float((c > r).sum())


def bt_hinge(c, r, label_smoothing=0.0):
    return torch.relu(1 - (c - r)).mean(), _acc(c, r)


def bt_smoothing_ignored(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(c - r).mean(), _acc(c, r)


def bt_smoothing_only_scales(c, r, label_smoothing=0.0):
    return -(1 - label_smoothing) * torch.nn.functional.logsigmoid(c - r).mean(), _acc(c, r)


def bt_detached(c, r, label_smoothing=0.0):
    loss, acc = bradley_terry_loss_fn(c.detach(), r.detach())
    return loss, acc


def bt_loss_only(c, r, label_smoothing=0.0):
    return -torch.nn.functional.logsigmoid(c - r).mean()


def bt_accuracy_tensor(c, r, label_smoothing=0.0):  # allowed: a 0-d tensor accuracy is converted
    return bradley_terry_loss_fn(c, r, label_smoothing)[0], (c > r).float().mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (bt_sign_flipped, r"(?s)case 1 of 7 \(one pair, the chosen response scored 1 higher.*loss \(the first value "
                          r"you return\).*chosen minus rejected"),
        (bt_naive_log_sigmoid, r"(?s)case 5 of 7 \(a pair ordered wrongly by 200.*non-finite value inf.*F\.logsigmoid"),
        (bt_exp_softmax, r"(?s)case 4 of 7 \(8 pairs whose scores are all near 100.*non-finite value nan.*"
                         r"exp\(100\) overflows"),
        (bt_sums, r"(?s)case 2 of 7 \(equal scores.*loss \(the first value you return\).*the MEAN over pairs"),
        (bt_ties_count_as_right, r"(?s)case 2 of 7 \(equal scores.*accuracy \(the second value you return\): "
                                 r"expected 0, got 1.*a tie is not a right order"),
        (bt_accuracy_as_count, r"(?s)case 3 of 7 \(6 pairs.*accuracy \(the second value you return\).*not their count"),
        (bt_smoothing_ignored, r"(?s)case 6 of 7 \(label smoothing 0\.1.*loss \(the first value you return\).*"
                               r"with label_smoothing eps"),
        (bt_smoothing_only_scales, r"(?s)case 6 of 7 \(label smoothing 0\.1.*LOSES with weight eps"),
        (bt_hinge, r"(?s)case 1 of 7 .*loss \(the first value you return\)"),
        (bt_detached, r"case 1 of 7 .* raised RuntimeError: bradley_terry_loss_fn's loss has no gradient"),
        (bt_loss_only, r"case 1 of 7 .* raised TypeError: bradley_terry_loss_fn should return a tuple \(loss, accuracy\)"),
    ],
)
def test_bt_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_bradley_terry_loss_fn(wrong)
    assert "Hint:" in str(err.value)


def test_bt_equivalent_forms_pass():
    assert check_bradley_terry_loss_fn(bt_accuracy_tensor).status == "pass"
    def softplus(c, r, label_smoothing=0.0):
        d = c - r
        F = torch.nn.functional
        return ((1 - label_smoothing) * F.softplus(-d) + label_smoothing * F.softplus(d)).mean(), _acc(c, r)

    assert check_bradley_terry_loss_fn(softplus).status == "pass"


def test_bt_failure_names_the_returned_value_not_an_index_of_the_internal_tuple():
    """Issue 19: the message said "result[3] (accuracy)" for a function that returns a pair."""
    with pytest.raises(CheckFailed) as err:
        check_bradley_terry_loss_fn(bt_ties_count_as_right)
    message = str(err.value)
    assert "result[3]" not in message and "accuracy (the second value you return)" in message
    with pytest.raises(CheckFailed) as err:
        check_bradley_terry_loss_fn(bt_detached_rejected)
    assert "d loss / d rejected_scores (the gradient of your loss)" in str(err.value)


def bt_detached_rejected(c, r, label_smoothing=0.0):
    return bradley_terry_loss_fn(c, r.detach(), label_smoothing)


# ---- last_token_positions: wrong versions --------------------------------------------------------


def last_sum_minus_one(mask):
    return mask.long().sum(dim=1) - 1


def last_always_end(mask):
    return torch.full((mask.shape[0],), mask.shape[1] - 1, dtype=torch.long)


def last_first_real_token(mask):
    return mask.long().argmax(dim=1)


def last_count(mask):
    return mask.long().sum(dim=1)


def last_as_float(mask):
    return last_token_index(mask).float()


def last_flip_without_cast(mask):
    T = mask.shape[1]
    return T - 1 - mask.flip(1).argmax(dim=1)


def last_token_index(mask):
    from course_lib.llm.reward_model import last_token_index as library

    return library(mask)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (last_sum_minus_one, r"(?s)case 2 of 5 \(left padding, as the course's tokenizer pads.*mask\.sum\(dim=1\) - 1 "
                             r"only works for right padding"),
        (last_always_end, r"(?s)case 1 of 5 \(right padding.*the LAST real token"),
        (last_first_real_token, r"(?s)case 1 of 5 \(right padding.*not the first"),
        (last_count, r"(?s)case 1 of 5 \(right padding.*positions count from 0"),
        (last_as_float, r"(?s)case 1 of 5 .*expected dtype torch\.int64, got dtype torch\.float32"),
        (last_flip_without_cast, r"(?s)case 4 of 5 \(a boolean mask.* raised RuntimeError.*mask\.long\(\)"),
    ],
)
def test_last_token_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_last_token_positions(wrong)
    assert "Hint:" in str(err.value)


def test_last_token_equivalent_forms_pass():
    arange_form = lambda m: (torch.arange(m.shape[1]) * m.long()).argmax(dim=1)  # noqa: E731
    assert check_last_token_positions(arange_form).status == "pass"
    int32 = lambda m: last_token_index(m).int()  # noqa: E731
    assert check_last_token_positions(int32).status == "pass"  # any integer dtype indexes


# ---- calibration_bins: wrong versions ------------------------------------------------------------


def cal_no_clamp(probs, outcomes, n_bins):
    idx = (probs * n_bins).long()
    counts = torch.bincount(idx, minlength=n_bins)
    if len(counts) > n_bins:
        raise IndexError(f"bin index {int(idx.max())} is out of range for {n_bins} bins")
    return calibration_bins(probs, outcomes, n_bins)


def cal_round(probs, outcomes, n_bins):
    idx = torch.round(probs * n_bins).long().clamp(0, n_bins - 1)
    return _binned(probs, outcomes, idx, n_bins)


def _binned(probs, outcomes, idx, n_bins, divide_by=None):
    counts = torch.bincount(idx, minlength=n_bins)
    sp = torch.zeros(n_bins).index_add_(0, idx, probs)
    so = torch.zeros(n_bins).index_add_(0, idx, outcomes)
    safe = counts.clamp(min=1).float()
    return sp / safe, so / (safe if divide_by is None else divide_by), counts


def cal_frequency_over_all(probs, outcomes, n_bins):
    idx = (probs * n_bins).long().clamp(0, n_bins - 1)
    return _binned(probs, outcomes, idx, n_bins, divide_by=float(len(probs)))


def cal_float_counts(probs, outcomes, n_bins):
    mean_p, freq, counts = calibration_bins(probs, outcomes, n_bins)
    return mean_p, freq, counts.float()


def cal_nan_for_empty(probs, outcomes, n_bins):
    idx = (probs * n_bins).long().clamp(0, n_bins - 1)
    counts = torch.bincount(idx, minlength=n_bins)
    sp = torch.zeros(n_bins).index_add_(0, idx, probs)
    so = torch.zeros(n_bins).index_add_(0, idx, outcomes)
    return sp / counts, so / counts, counts


def cal_bin_centres(probs, outcomes, n_bins):
    _, freq, counts = calibration_bins(probs, outcomes, n_bins)
    return (torch.arange(n_bins) + 0.5) / n_bins, freq, counts


def cal_quantile_bins(probs, outcomes, n_bins):
    order = torch.argsort(probs)
    idx = torch.empty_like(order)
    idx[order] = torch.arange(len(probs)) * n_bins // len(probs)
    return _binned(probs, outcomes, idx, n_bins)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (cal_no_clamp, r"(?s)case 2 of 5 \(predictions of exactly 0 and 1.* raised IndexError.*clamp the bin index"),
        (cal_round, r"(?s)case 1 of 5 \(four predictions, two bins"),
        (cal_frequency_over_all, r"(?s)case 1 of 5 .*result\[1\] \(observed_frequency\).*not by all N"),
        (cal_float_counts, r"(?s)case 1 of 5 .*result\[2\] \(counts\): expected dtype torch\.int64"),
        (cal_nan_for_empty, r"(?s)case 4 of 5 \(10 bins, predictions only between 0\.55 and 0\.95.*non-finite value nan"),
        (cal_bin_centres, r"(?s)case 1 of 5 .*result\[0\] \(mean_predicted\).*not the bin's centre"),
        (cal_quantile_bins, r"(?s)case 3 of 5 \(skewed predictions.*EQUAL WIDTH"),
    ],
)
def test_calibration_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_calibration_bins(wrong)
    assert "Hint:" in str(err.value)


def test_quantile_bins_differ_from_equal_width_ones_only_a_little_on_even_predictions():
    """Why the skewed case is needed: on evenly spread predictions equal-count bins are nearly the equal-width ones."""
    spread = EXERCISES["calibration_bins"].cases()[4]
    _, _, counts_q = cal_quantile_bins(*spread.args)
    _, _, counts_w = calibration_bins(*spread.args)
    assert (counts_q - counts_w).abs().max() < 20 and not torch.equal(counts_q, counts_w)


# ---- spot the bug: reward_rows and eos_bug ---------------------------------------------------------------

from course_lib.checks.lesson10 import check_eos_bug, check_reward_rows, reward_rows  # noqa: E402


def rows_strip_eos(prompt_ids, replies, eos_id, pad_id):
    """The notebook's buggy version, on ids: the EOS is removed before scoring."""
    return reward_rows(prompt_ids, [[t for t in r if t != eos_id] for r in replies], eos_id, pad_id)


def rows_mask_from_ids(prompt_ids, replies, eos_id, pad_id):
    ids, _ = reward_rows(prompt_ids, replies, eos_id, pad_id)
    return ids, (ids != pad_id).long()


def rows_right_padded(prompt_ids, replies, eos_id, pad_id):
    from course_lib.llm.tokens import pad

    return pad([list(prompt_ids) + list(r) for r in replies], pad_id, side="right")


@pytest.mark.parametrize(
    "wrong, message",
    [
        (rows_strip_eos, r"(?s)case 1 of 5 \(one finished reply: its EOS stays.*Keep every id of the reply, EOS included"),
        (rows_right_padded, r"(?s)case 2 of 5 \(the same words, once finished.*one more padding token on the LEFT"),
        (rows_mask_from_ids, r"(?s)case 4 of 5 \(the padding id is the EOS id.*result\[1\] \(attention_mask\).*"
                             r"build the mask from each row's length"),
    ],
)
def test_reward_rows_wrong_versions_fail_naming_the_mistake(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_reward_rows(wrong)
    assert "Hint:" in str(err.value)


def test_reward_rows_reference_keeps_the_eos_and_tells_finished_from_cut():
    ids, mask = reward_rows([5, 6], [[11, 12, 13, 2], [11, 12, 13]], 2, 0)
    assert ids.tolist() == [[5, 6, 11, 12, 13, 2], [0, 5, 6, 11, 12, 13]]
    assert mask.tolist() == [[1] * 6, [0] + [1] * 5] and ids.dtype == mask.dtype == torch.int64
    bug_ids, _ = rows_strip_eos([5, 6], [[11, 12, 13, 2], [11, 12, 13]], 2, 0)
    assert torch.equal(bug_ids[0], bug_ids[1])  # the bug: a finished and a cut reply look the same


def test_eos_bug_feedback_explains_without_naming_the_answer():
    assert check_eos_bug("b").status == "pass"
    for wrong in ("A", "C", "D"):
        with pytest.raises(CheckFailed) as err:
            check_eos_bug(wrong)
        message = str(err.value)
        assert "not the right one yet:" in message and "'B'" not in message and " B." not in message
