"""What a learner reads when a check fails: the input, the mismatch, the hint tiers; answers compared fairly."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from conftest import ROOT
from course_lib.checks import hint
from course_lib.checks.core import Case, CheckFailed, Exercise, _describe, compare_answers


def test_small_inputs_are_shown_in_full_and_large_ones_by_shape():
    assert _describe(np.array([1.0, 2.5, -3.0])) == "array([1, 2.5, -3], dtype=float64)"
    assert _describe(torch.tensor([[True, False]])) == "tensor([[True, False]], dtype=torch.bool)"
    assert _describe(torch.zeros(5, 5)) == "tensor(shape=(5, 5), dtype=torch.float32)"
    assert _describe(np.zeros(17)) == "array(shape=(17,), dtype=float64)"


def double(x):
    return 2 * x


def test_a_failing_case_says_which_of_how_many_with_its_input_and_hint():
    ex = Exercise("double", double, lambda: [Case((np.array([1.0, 2.0]),), {}, "a pair", "twice each entry")], list)
    with pytest.raises(CheckFailed) as err:
        ex.check(lambda x: x + 1, quiet=True)
    text = str(err.value)
    assert text.startswith("double: failed at case 1 of 1 (a pair; input: array([1, 2], dtype=float64)): ")
    assert "expected 2, got 2" not in text and "first mismatch at index [0]: expected 2, got 2" not in text
    assert "index [1]: expected 4, got 3" in text and text.endswith("Hint: twice each entry")


@pytest.mark.parametrize("got", ["c", " C ", "C"])
def test_a_single_choice_ignores_case_and_spaces(got):
    assert compare_answers("C", got) is None


def test_a_wrong_choice_gets_its_own_feedback_without_the_right_one():
    feedback = {"A": "the lever is part of the world the cat acts on", "B": "the food is what the cat gets, not does"}
    assert compare_answers("C", "a", feedback) == (
        "your answer 'a' is not the right one yet: the lever is part of the world the cat acts on")
    assert compare_answers("C", "D", feedback) == "your answer 'D' is not the right one yet"
    for wrong in "AB":
        assert "C" not in compare_answers("C", wrong, feedback).split(":")[0].replace("'", " ").split()


def test_dict_answers_compare_items_and_choices_without_case():
    expected = {"the robot": "agent", "the maze": "environment"}
    assert compare_answers(expected, {"The Robot": "AGENT", "the maze": " environment"}) is None
    feedback = {"the robot": {"environment": "the environment is what the robot acts on"}}
    msg = compare_answers(expected, {"the robot": "Environment", "the maze": "environment"}, feedback)
    assert msg == ("1 of 2 answers are not right yet: 'the robot' (you chose 'Environment'): "
                   "the environment is what the robot acts on")
    assert "agent" not in msg


def test_hint_prints_the_stronger_tier_and_names_bad_arguments(capsys, monkeypatch):
    from course_lib.checks import lesson00

    monkeypatch.setattr(lesson00, "HINTS", {"top_k_next_tokens": "a stronger nudge"}, raising=False)
    hint("top_k_next_tokens", 2)
    assert capsys.readouterr().out == "top_k_next_tokens, tier 2: a stronger nudge\n"
    hint("top_k_next_tokens", 1)
    assert "docstring" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"tier: expected 1, 2 or 3, got 4"):
        hint("top_k_next_tokens", 4)
    with pytest.raises(ValueError, match=r"exercise: expected the name of an exercise.*got 'no_such_thing'"):
        hint("no_such_thing")


def test_every_function_exercise_has_a_stronger_hint(capsys):
    """Every function exercise has a tier-2 hint of substance (a worked example: over 200 characters), and
    hint(name, 2) prints it."""
    import importlib

    missing = []
    for path in sorted((ROOT / "course_lib" / "checks").glob("lesson*.py")):
        module = importlib.import_module(f"course_lib.checks.{path.stem}")
        hints = getattr(module, "HINTS", {})
        for n, ex in module.EXERCISES.items():
            if ex.kind != "function":
                continue
            if len(hints.get(n, "").strip()) <= 200:
                missing.append(f"{path.stem}.{n}")
                continue
            hint(n, 2)
            assert capsys.readouterr().out.startswith(f"{n}, tier 2: {hints[n][:40]}"), n
    assert not missing, f"no hint(name, 2) text of substance (> 200 characters) for: {missing}"


def test_course_kit_check_prints_the_failing_case_and_its_hint(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import torch\nfrom course_lib.checks import check_top_k_next_tokens\n"
        "def top_k_next_tokens(logits, k, temperature=1.0):\n"
        "    return torch.topk(logits, k, dim=-1)[0], torch.topk(logits, k, dim=-1)[1]\n"),
        nbformat.v4.new_code_cell("check_top_k_next_tokens(top_k_next_tokens)")]
    path = tmp_path / "00_warmup.ipynb"
    nbformat.write(nb, path)
    out = subprocess.run([sys.executable, "-m", "course_lib.kit.cli", "check", str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 1
    assert "failed at case 1 of" in out.stdout and "Hint: " in out.stdout, out.stdout + out.stderr


def test_feedback_keeps_its_capitals():
    assert compare_answers("C", "a", {"A": "No. The lever is part of the world."}).endswith(
        ": No. The lever is part of the world.")


def test_a_right_answer_is_explained_and_a_wrong_one_is_not(capsys):
    ex = Exercise("q", lambda: "B", lambda: [Case((), {}, "your answer")], list, kind="answer",
                  comparer=compare_answers, explanation="because truncation is not an end")
    ex.check("b")
    assert capsys.readouterr().out == "[x] q: right\nWhy: because truncation is not an end\n"
    with pytest.raises(CheckFailed) as err:
        ex.check("A", quiet=True)
    assert "truncation" not in str(err.value)
