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
def test_every_exercise_spec_has_its_check_and_its_registry_entry(lesson):
    from course_lib.checks import LESSON_OF

    module = importlib.import_module(f"course_lib.checks.{lesson}")
    written = [name for name in vars(module) if name.startswith("check_") and name != "check_functions"]
    assert written == [], "checks are generated from EXERCISES (check_functions), not written by hand"
    for name, ex in module.EXERCISES.items():
        assert isinstance(ex, Exercise) and ex.name == name
        check = getattr(module, f"check_{name}")
        assert check.__name__ == f"check_{name}" and LESSON_OF[name] == lesson[-2:]
    with pytest.raises(AttributeError):
        getattr(module, "check_no_such_exercise")


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


def function_exercises():
    """Every exercise that is a function to write (concept-check answers excluded), with its lesson's module."""
    for lesson in LESSONS:
        module = importlib.import_module(f"course_lib.checks.{lesson}")
        for name, ex in module.EXERCISES.items():
            if ex.kind != "answer":
                yield pytest.param(module, name, ex, id=f"{lesson}.{name}")


@pytest.mark.parametrize("module, name, ex", list(function_exercises()))
def test_the_reference_passes_its_own_check(module, name, ex, capsys):
    result = getattr(module, f"check_{name}")(ex.reference)
    n = len(ex.cases())
    assert result.status == "pass" and result.passed == result.total == n
    assert f"[x] {name}: all {n} cases passed" in capsys.readouterr().out


@pytest.mark.parametrize("module, name, ex", list(function_exercises()))
def test_cases_are_seeded_and_explained(module, name, ex):
    run = ex.call(ex.reference)
    first, second = ex.cases(), ex.cases()
    for a, b in zip(first, second):
        assert compare(run(*a.args, **a.kwargs), run(*b.args, **b.kwargs), rtol=0, atol=0) is None
        assert a.about == b.about
    assert all(c.about and c.hint for c in first + ex.hidden_cases())
    assert len({c.about for c in first}) == len(first)


@pytest.mark.parametrize("module, name, ex", list(function_exercises()))
def test_an_unwritten_exercise_propagates_not_implemented(module, name, ex, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise: implement it")

    with pytest.raises(NotImplementedError):
        getattr(module, f"check_{name}")(stub)
    assert f"[ ] {name}: not implemented yet" in capsys.readouterr().out


def test_the_registry_names_exactly_the_lessons_exercises():
    from course_lib.checks import LESSON_OF

    found = {name: lesson[-2:] for lesson in LESSONS
             for name in importlib.import_module(f"course_lib.checks.{lesson}").EXERCISES}
    assert LESSON_OF == found
