"""No hint, exercise text or lesson gives away an exercise's code (issue: exercises that make the learner think)."""

from __future__ import annotations

import importlib
import re

import nbformat
import pytest

from conftest import ROOT
from course_lib.kit import overlap

ROWS = overlap.measure(ROOT)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.notebook[:2]}.{r.function}")
def test_no_answer_is_readable_before_it_is_written(row):
    assert row.ngrams > 0
    assert row.exercise <= overlap.LIMIT, (
        f"{row.function}: {row.exercise:.0%} of its answer's 5-grams appear in exercise {row.notebook} or its hints "
        f"(limit {overlap.LIMIT:.0%}); `python -m course_lib.kit.overlap` lists every answer")
    assert row.lesson <= overlap.LIMIT, (
        f"{row.function}: {row.lesson:.0%} of its answer's 5-grams appear in lesson {row.notebook[:2]} (sources and "
        f"outputs; limit {overlap.LIMIT:.0%})")


def test_the_measure_sees_through_renamed_variables_and_ignores_unrelated_code():
    block = overlap.Block("99_x.ipynb", "gae", (
        "    delta = rewards + gamma * next_values * not_term - values\n"
        "    adv = torch.zeros_like(rewards)\n"
        "    last = torch.zeros_like(rewards[:, 0])\n"
        "    for t in range(rewards.shape[1] - 1, -1, -1):\n"
        "        last = delta[:, t] + gamma * lam * not_done[:, t] * last\n"
        "        adv[:, t] = last\n"
        "    return adv, adv + values\n"), ("rewards", "values", "next_values", "not_term", "not_done", "gamma", "lam"))
    renamed = ("Hint: d = r + g * nv * nt - v; a = torch.zeros_like(r); run = torch.zeros_like(r[:, 0]);\n"
               "for k in range(r.shape[1] - 1, -1, -1): run = d[:, k] + g * l * nd[:, k] * run; a[:, k] = run\n")
    assert overlap.share(block, renamed)[1] > 0.6
    prose = ("Work backwards in time: the advantage of a step is its TD error plus the discounted, lambda-weighted "
             "advantage of the next step, and nothing flows back across the end of an episode.")
    assert overlap.share(block, prose)[1] == 0.0


LESSON_SOURCE = re.compile(r"getsource(?:lines)?\(\s*([\w.]+)\s*\)")


@pytest.mark.parametrize("lesson", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_no_lesson_prints_the_source_of_its_own_exercise(lesson):
    """A lesson may show library code, but not the code of a function its exercise notebook asks for."""
    module = importlib.import_module(f"course_lib.checks.lesson{lesson.name[:2]}")
    asked = set()
    for name, ex in module.EXERCISES.items():
        if ex.kind == "function":
            asked |= {name, getattr(ex.reference, "__name__", name)}
    asked |= set(getattr(module, "BUILDS", ()))
    text = "\n".join(c.source for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "code")
    shown = {m.split(".")[-1] for m in LESSON_SOURCE.findall(text)}
    assert not shown & asked, f"lesson {lesson.name} prints the source of {sorted(shown & asked)}, which its exercise asks for"
