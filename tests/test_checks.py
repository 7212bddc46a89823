"""Exercise checks pass the reference and fail plausible wrong answers, with a useful message."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from course_lib.checks import CheckFailed, check_top_k_next_tokens, compare
from course_lib.checks.lesson00 import EXERCISES
from course_lib.llm.generation import top_k_next_tokens


def test_reference_passes(capsys):
    result = check_top_k_next_tokens(top_k_next_tokens)
    assert result.status == "pass" and result.passed == result.total == 6
    assert "[x] top_k_next_tokens: all 6 cases passed" in capsys.readouterr().out


def no_temperature(logits, k, temperature=1.0):
    top = torch.topk(torch.softmax(logits, dim=-1), k, dim=-1)
    return top.values, top.indices


def naive_exp(logits, k, temperature=1.0):
    e = torch.exp(logits / temperature)
    top = torch.topk(e / e.sum(-1, keepdim=True), k, dim=-1)
    return top.values, top.indices


def first_axis(logits, k, temperature=1.0):
    top = torch.topk(torch.softmax(logits / temperature, dim=0), k, dim=-1)
    return top.values, top.indices


def returns_logits(logits, k, temperature=1.0):
    top = torch.topk(logits / temperature, k, dim=-1)
    return top.values, top.indices


def swapped(logits, k, temperature=1.0):
    top = torch.topk(torch.softmax(logits / temperature, dim=-1), k, dim=-1)
    return top.indices, top.values


def unsorted(logits, k, temperature=1.0):
    top = torch.topk(torch.softmax(logits / temperature, dim=-1), k, dim=-1, sorted=True)
    return top.values.flip(-1), top.indices.flip(-1)


def as_lists(logits, k, temperature=1.0):
    values, indices = top_k_next_tokens(logits, k, temperature)
    return values.tolist(), indices.tolist()


def crashes(logits, k, temperature=1.0):
    return logits[k + 100]


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (no_temperature, "temperature 0.5 sharpens"),
        (naive_exp, "very large logits.*non-finite value"),
        (first_axis, "a batch of 4 prompts"),
        (returns_logits, r"failed at case 1 of 6 .*input: tensor\(\[4.623, -0.8803, .*dtype=torch.float32\), 3\).*result\[0\] \(probs\): first mismatch at index \[0\]"),
        (swapped, r"result\[0\] \(probs\): expected dtype torch.float32, got dtype torch.int64"),
        (unsorted, r"result\[0\] \(probs\): first mismatch at index \[0\]: expected 0\.\d+, got 0\.\d+"),
        (as_lists, r"result\[0\] \(probs\): expected a Tensor, got list"),
        (crashes, r"failed at case 1 of 6 .*: raised IndexError"),
    ],
)
def test_wrong_versions_fail_with_the_first_mismatch(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_top_k_next_tokens(wrong)
    assert "Hint:" in str(err.value)
    assert "torch.topk(probs" not in str(err.value)  # never shows the reference's code


def test_stub_is_reported_and_propagates(capsys, tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_KIT_CHECK_LOG", str(log))

    def stub(logits, k, temperature=1.0):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_top_k_next_tokens(stub)
    assert "not implemented yet" in capsys.readouterr().out
    check_top_k_next_tokens(top_k_next_tokens)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in records] == ["not-implemented", "pass"]


def test_a_notebook_shows_the_verdict_once(capsys, tmp_path, monkeypatch):
    """A check cell prints its verdict; IPython's display of the returned result (the cell's last value) adds no
    output data, and a quiet check's result displays the verdict instead. The log keeps the six fields the
    grader reads."""
    from IPython.core.interactiveshell import InteractiveShell

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_KIT_CHECK_LOG", str(log))
    shell = InteractiveShell.instance()
    try:
        shown = check_top_k_next_tokens(top_k_next_tokens)
        assert capsys.readouterr().out == "[x] top_k_next_tokens: all 6 cases passed\n"
        assert shell.display_formatter.format(shown) == ({}, {})  # no execute_result in a notebook
        assert capsys.readouterr().out == ""
        quiet = EXERCISES["top_k_next_tokens"].check(top_k_next_tokens, quiet=True)
        assert capsys.readouterr().out == ""
        assert shell.display_formatter.format(quiet) == ({}, {})
        assert capsys.readouterr().out == "[x] top_k_next_tokens: all 6 cases passed\n"
    finally:
        InteractiveShell.clear_instance()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [sorted(r) for r in records] == [sorted(["exercise", "status", "message", "passed", "total", "hint"])] * 2


class AlwaysEqual:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    "expected, got, message",
    [
        (torch.ones(2), AlwaysEqual(), "expected a Tensor, got AlwaysEqual"),
        (1.5, AlwaysEqual(), "expected a number, got AlwaysEqual"),
        ("a", AlwaysEqual(), "expected 'a'"),
        (torch.ones(2), torch.tensor([1.0, float("nan")]), r"non-finite value nan at index \[1\]"),
        (2.0, float("nan"), "expected a finite number"),
        (torch.ones(2), np.ones(2), "expected a Tensor, got ndarray"),
        ((1, 2), [1, 2], "expected a tuple of 2 items, got list"),
        (torch.ones(2, 3), torch.ones(3, 2), r"expected shape \(2, 3\), got shape \(3, 2\)"),
        (1, True, "expected a number, got bool"),
    ],
)
def test_compare_is_strict(expected, got, message):
    mismatch = compare(expected, got)
    assert mismatch is not None and re.search(message, mismatch), mismatch


def test_compare_accepts_equal_values_within_tolerance():
    assert compare((torch.tensor([1.0, 2.0]), 3), (torch.tensor([1.0, 2.0 + 1e-7]), 3)) is None
    assert compare(np.arange(3), np.arange(3)) is None


def test_cloned_copies_positional_and_keyword_tensors():
    from course_lib.harness.tensors import cloned

    def scale_in_place(x, y=None):
        x.mul_(2)
        y.mul_(3)
        return x + y

    a, b = torch.ones(2), torch.ones(2)
    assert cloned(scale_in_place)(a, y=b).tolist() == [5.0, 5.0]
    assert a.tolist() == b.tolist() == [1.0, 1.0]  # the case's tensors are untouched


def returns_topk_result(logits, k, temperature=1.0):
    """The idiomatic answer: torch.topk's named (values, indices) pair, on the probabilities."""
    return torch.topk(torch.softmax(logits / temperature, dim=-1), k, dim=-1)


def returns_topk_of_logits(logits, k, temperature=1.0):
    return torch.topk(logits / temperature, k, dim=-1)


def returns_topk_ascending(logits, k, temperature=1.0):
    return torch.topk(torch.softmax(logits / temperature, dim=-1), k, dim=-1, largest=False)


def test_a_topk_result_is_accepted_as_the_pair_it_is(capsys):
    result = check_top_k_next_tokens(returns_topk_result)
    assert result.status == "pass" and result.passed == result.total == 6


@pytest.mark.parametrize("wrong, expected_message", [
    (returns_topk_of_logits, r"result\[0\] \(probs\): first mismatch"),
    (returns_topk_ascending, r"result\[1\] \(ids\)|result\[0\] \(probs\): first mismatch"),
])
def test_a_topk_result_of_the_wrong_thing_still_fails(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message):
        check_top_k_next_tokens(wrong)
