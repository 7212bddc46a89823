"""The exercise pipeline: solutions/ -> exercises/, stubs, hidden tests, `course-kit check`."""

from __future__ import annotations

import subprocess

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT, course_kit
from course_lib.kit.exercises import ExerciseSourceError, build_all, build_exercise, render, strip_cell

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_exercises_are_up_to_date_with_solutions():
    stale = build_all(ROOT / "solutions", ROOT / "exercises", check=True)
    assert stale == [], f"regenerate with `course-kit build-exercises`: {stale}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_build_is_stable_and_strips_answers(solution):
    text = render(build_exercise(solution))
    assert render(build_exercise(solution)) == text  # same bytes every time
    for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
        assert marker not in text
    nb = nbformat.reads(text, as_version=4)
    source_ids = [c.id for c in nbformat.read(solution, as_version=4).cells]
    assert all(c.id in source_ids for c in nb.cells)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert "raise NotImplementedError" in text


def test_strip_cell_stub_and_hidden():
    source = (
        "def f(x):\n    '''Doc.'''\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
        "### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\nprint('visible')"
    )
    out = strip_cell(source, "code", "cell 1")
    assert "return 2 * x" not in out and "assert f(2)" not in out and "print('visible')" in out
    assert '    raise NotImplementedError("Exercise: implement `f`' in out
    assert strip_cell("Answer:\n### BEGIN SOLUTION\nforty-two\n### END SOLUTION", "markdown", "c") == (
        "Answer:\nYOUR ANSWER HERE"
    )


@pytest.mark.parametrize(
    "source, message",
    [("### BEGIN SOLUTION\nx = 1\n", "cell 3: a solution block is never closed"),
     ("x = 1\n### END SOLUTION\n", "cell 3, line 2: '### END SOLUTION' without its BEGIN marker"),
     ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n", "inside an open solution block")],
)
def test_unbalanced_markers_are_errors(source, message):
    with pytest.raises(ExerciseSourceError, match=message):
        strip_cell(source, "code", "cell 3")


def _first_stub_cell(nb) -> int:
    """Index of the first cell that calls a stubbed function: the first check cell after a TODO."""
    seen_stub = False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if "raise NotImplementedError" in cell.source:
            seen_stub = True
        elif seen_stub and "check_" in cell.source:
            return i
    raise AssertionError("no check cell after a stub")


@pytest.mark.parametrize("exercise", sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_exercise_runs_until_its_first_todo(exercise):
    nb = nbformat.read(exercise, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "exercises")}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    assert err.value.ename == "NotImplementedError"
    stop = _first_stub_cell(nb)
    executed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert max(executed) == stop, f"stopped at cell {max(executed)}, expected the first check cell {stop}"
    assert not any(o.output_type == "error" for c in nb.cells[:stop] for o in c.get("outputs", []))


def test_course_kit_check_summarises(tmp_path):
    solution = subprocess.run([course_kit(), "check", "solutions/00_warmup.ipynb"], cwd=ROOT, capture_output=True,
                              text=True)
    assert solution.returncode == 0, solution.stdout + solution.stderr
    assert "pass             top_k_next_tokens            6/6 cases" in solution.stdout
    assert "1/1 exercises pass" in solution.stdout
    exercise = subprocess.run([course_kit(), "check", "exercises/00_warmup.ipynb"], cwd=ROOT, capture_output=True,
                              text=True)
    assert exercise.returncode == 1
    assert "not-implemented  top_k_next_tokens" in exercise.stdout and "0/1 exercises pass" in exercise.stdout
