"""Every lesson's exercises are declared for the grader, and their hidden cases have teeth."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

from conftest import ROOT
from course_lib.checks.core import Exercise, compare

LESSONS = sorted(p.stem for p in (ROOT / "course_lib" / "checks").glob("lesson*.py"))


def exercises():
    for lesson in LESSONS:
        module = importlib.import_module(f"course_lib.checks.{lesson}")
        for name, ex in module.EXERCISES.items():
            yield pytest.param(lesson, name, ex, id=f"{lesson}.{name}")


def zeros_like(x):
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return torch.zeros_like(x)
    except ImportError:
        pass
    if isinstance(x, np.ndarray):
        return np.zeros_like(x)
    if isinstance(x, tuple):
        items = [zeros_like(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    if isinstance(x, list):
        return [zeros_like(v) for v in x]
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float, np.integer, np.floating)):
        return type(x)(0)
    return None


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_check_function_has_an_exercise_spec(lesson):
    module = importlib.import_module(f"course_lib.checks.{lesson}")
    checks = {name[len("check_"):] for name in dir(module) if name.startswith("check_")}
    assert checks == set(module.EXERCISES), (checks, set(module.EXERCISES))
    for name, ex in module.EXERCISES.items():
        assert isinstance(ex, Exercise) and ex.name == name


@pytest.mark.parametrize("lesson, name, ex", list(exercises()))
def test_hidden_cases_differ_from_public_and_defeat_trivial_answers(lesson, name, ex):
    hidden = ex.hidden_cases()
    if ex.kind == "answer":  # a concept-check answer: one right value, no inputs to vary
        right = ex.reference()
        for wrong in ({}, [], None, "", {k: "agent" for k in right} if isinstance(right, dict) else "A"):
            assert ex.compare(right, wrong) is not None
        assert not hidden
        return
    assert hidden, f"{name}: no hidden cases"
    public_about = {c.about for c in ex.cases()}
    assert not public_about & {c.about for c in hidden}, "hidden cases must not repeat the notebook's cases"
    reference = ex.call(ex.reference)
    defeated = {"zeros": False, "empty list": False, "input unchanged": False}
    for case in hidden:
        expected = reference(*case.args, **case.kwargs)
        assert compare(expected, reference(*case.args, **case.kwargs), rtol=ex.rtol, atol=ex.atol) is None
        trivial = {"zeros": zeros_like(expected), "empty list": [],
                   "input unchanged": case.args[0] if case.args else None}
        for label, answer in trivial.items():
            if compare(expected, answer, rtol=ex.rtol, atol=ex.atol) is not None:
                defeated[label] = True
    assert all(defeated.values()), f"{name}: a trivial answer passes every hidden case: {defeated}"


def test_exercise_names_match_the_solution_notebooks():
    """Each solution notebook's check calls name exercises declared in its lesson's module."""
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        lesson = f"lesson{solution.name[:2]}"
        module = importlib.import_module(f"course_lib.checks.{lesson}")
        called = set(re.findall(r"check_(\w+)\(", solution.read_text()))
        assert called == set(module.EXERCISES), (solution.name, called, set(module.EXERCISES))
