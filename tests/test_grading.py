"""The autograder's honest path, its tables and its pieces (the hostile class is in test_grading_hostile.py).

Grading runs as root (the sandbox's isolation needs it; without root it refuses unless ``unsafe``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import ROOT
from course_lib.grading.grader import grade_folder
from course_lib.grading.sandbox import Limits

LESSON = "01_agent_environment_loop.ipynb"
EXERCISE = ROOT / "exercises" / LESSON
SOLUTION = ROOT / "solutions" / LESSON
AS_ROOT = os.geteuid() == 0
LIMITS = Limits(timeout_s=4.0, memory_mb=1024)

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def _notebook(top_code: str) -> nbformat.NotebookNode:
    nb = nbformat.read(EXERCISE, as_version=4)
    nb.cells.insert(1, new_code_cell(top_code))
    return nb


def _write(folder, student: str, nb=None, raw: bytes | None = None):
    (folder / student).mkdir(parents=True)
    path = folder / student / LESSON
    if raw is not None:
        path.write_bytes(raw)
    else:
        nbformat.write(nb, path)


needs_root = pytest.mark.skipif(not AS_ROOT, reason="grading untrusted code needs root (see test_non_root_mode)")


@needs_root
def test_correct_submission_right_after_a_fork_bomb(tmp_path):
    """The same uid, right after a fork bomb: nothing of the bomb is left to disturb the next run."""
    _write(tmp_path / "subs", "a_fork_bomb", _notebook(FORK_BOMB))
    (tmp_path / "subs" / "b_correct").mkdir()
    shutil.copy(SOLUTION, tmp_path / "subs" / "b_correct" / LESSON)
    grades = grade_folder(tmp_path / "subs", tmp_path / "grades.csv", jobs=1, limits=LIMITS, progress=False,
                          exercises=["discounted_return"])
    assert [(g.status, g.score) for g in grades["a_fork_bomb"]] == [("timeout", 0.0)]
    assert [(g.status, g.score) for g in grades["b_correct"]] == [("ok", 1.0)]


@needs_root
def test_same_submission_graded_twice_gives_the_same_row(tmp_path):
    (tmp_path / "subs" / "x").mkdir(parents=True)
    shutil.copy(SOLUTION, tmp_path / "subs" / "x" / LESSON)
    grade_folder(tmp_path / "subs", tmp_path / "a.csv", limits=LIMITS, progress=False)
    grade_folder(tmp_path / "subs", tmp_path / "b.csv", limits=LIMITS, progress=False)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert (tmp_path / "a_feedback" / "x.md").read_text() == (tmp_path / "b_feedback" / "x.md").read_text()


@needs_root
@pytest.mark.slow
def test_every_solution_scores_full_marks_and_every_exercise_zero(tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(ROOT / "solutions", subs / "solutions", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(ROOT / "exercises", subs / "exercises", ignore=shutil.ignore_patterns(".*"))
    grades = grade_folder(subs, tmp_path / "grades.csv", hidden=ROOT / "solutions", jobs=2,
                          limits=Limits(timeout_s=120), progress=False)
    lessons = {p.name[:2] for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    assert {g.lesson for g in grades["solutions"]} == lessons
    for g in grades["solutions"]:
        assert (g.status, g.score, g.flags) == ("ok", 1.0, []), g
    for g in grades["exercises"]:
        assert g.status in ("ok", "not-implemented") and g.score == 0.0, g


@needs_root
def test_worked_example_in_the_docs(tmp_path):
    """The three sample submissions grade to the table docs/instructors.md shows."""
    grade_folder(ROOT / "tests" / "sample_submissions", tmp_path / "grades.csv", jobs=2, limits=LIMITS,
                 progress=False)
    docs = (ROOT / "docs" / "instructors.md").read_text()
    table = (tmp_path / "grades.csv").read_text().replace("\r\n", "\n")
    assert table in docs
    feedback = (tmp_path / "grades_feedback" / "ben.md").read_text()
    assert "## Lesson 01: `run_episode`: 0.57 (ok)\n\n8 of 14 cases passed." in feedback
    assert "2 of 6 answers are not right yet" in feedback and "'agent'" not in feedback  # no right term revealed


def test_a_class_exercise_that_comes_last_is_graded(tmp_path):
    """Cells after the last exercise are demos and are dropped; an exercise that is a class counts as one."""
    import nbformat

    from course_lib.grading.submission import load_submission

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("class LoRALinear:\n    pass"),
                nbformat.v4.new_code_cell("print('a demo')")]
    path = tmp_path / "16_scaling_up.ipynb"
    nbformat.write(nb, path)
    sub = load_submission(path, "s", {"LoRALinear"})
    assert len(sub.code) == 2 and "class LoRALinear" in sub.code[-1]


def test_the_tables_escape_formula_cells_and_are_written_whole(tmp_path):
    from course_lib.grading.grader import ExerciseGrade, spreadsheet_text, write_outputs

    hostile = '=HYPERLINK("evil.example","full marks")'  # a folder name: no slash can be in it
    grades = {hostile: [ExerciseGrade("01", "discounted_return", "ok", 1.0, 3, 3)],
              "-1+1": [ExerciseGrade("01", "discounted_return", "crash", 0.0, 0, 3)],
              "ada": [ExerciseGrade("01", "discounted_return", "ok", 0.5, 1, 2)]}
    write_outputs(grades, tmp_path / "grades.csv", tmp_path / "grades_feedback")
    rows = list(csv.reader((tmp_path / "grades.csv").open(newline="", encoding="utf-8")))
    assert [r[0] for r in rows[1:]] == ["'" + hostile, "'-1+1", "ada"]  # shown as text, never evaluated
    assert rows[3][1:] == ["0.500", "ok", "0.500", "1"]  # numbers stay numbers
    assert list(json.loads((tmp_path / "grades.json").read_text())) == [hostile, "-1+1", "ada"]  # the raw names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv", "grades.json", "grades_feedback"]  # no temp
    assert [spreadsheet_text(t) for t in ("@SUM(A1)", "+1", "\tx", "ok", "")] == ["'@SUM(A1)", "'+1", "'\tx", "ok", ""]


# ---- the pieces ----------------------------------------------------------------------------------------------


def test_a_report_is_read_only_from_a_small_regular_file_of_the_right_shape(tmp_path):
    from course_lib.grading.sandbox import read_report

    good = {"exercise": "f", "status": "ok", "detail": "", "cases": [{"value": {"t": "int", "v": 1}}, {"error": "E"}]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(good))
    assert read_report(path, "f", 10_000) == good
    bad = {
        "a link": lambda p: os.symlink("/etc/hostname", p),
        "a FIFO": lambda p: os.mkfifo(p),
        "too big": lambda p: p.write_text(json.dumps({**good, "detail": "x" * 20_000})),
        "deep": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
        "extra field": lambda p: p.write_text(json.dumps({**good, "flags": []})),
        "status": lambda p: p.write_text(json.dumps({**good, "status": "sandbox-error"})),
        "case shape": lambda p: p.write_text(json.dumps({**good, "cases": [{"value": 1, "error": "x"}]})),
        "error type": lambda p: p.write_text(json.dumps({**good, "cases": [{"error": 3}]})),
        "other exercise": lambda p: p.write_text(json.dumps({**good, "exercise": "g"})),
    }
    for why, make in bad.items():
        path.unlink(missing_ok=True)
        make(path)
        assert isinstance(read_report(path, "f", 10_000), str), why
    path.unlink()
    assert read_report(path, "f", 10_000) == "no result file"


def test_decode_refuses_what_encode_never_writes():
    from course_lib.grading.encoding import decode, encode

    hostile = [
        {"t": "tensor", "dtype": "save", "shape": [1], "data": [1.0]},  # not a dtype: never getattr(torch, ...)
        {"t": "ndarray", "dtype": "V9", "shape": [1], "data": [0]},
        {"t": "ndarray", "dtype": "float64", "shape": [10**9, 10**9], "data": [1.0]},  # a shape the data does not fill
        {"t": "ndarray", "dtype": "float64", "shape": [2], "data": [1.0, [2.0]]},
        {"t": "float", "v": [1.0]},
        {"t": "int", "v": 1.5},
        {"t": "dict", "v": [[{"t": "int", "v": 1}]]},
        {"t": "list", "v": "abc"},
        {"t": "exec", "v": "import os"},
        {"t": "list", "v": [{"t": "list", "v": []}]},  # fine by itself: made deep below
    ]
    for obj in hostile[:-1]:
        with pytest.raises(ValueError):
            decode(obj)
    deep = {"t": "int", "v": 0}
    for _ in range(30):
        deep = {"t": "list", "v": [deep]}
    with pytest.raises(ValueError, match="deep"):
        decode(deep)
    assert decode(hostile[-1]) == [[]]
    assert decode(encode({"a": [1, 2.5, float("inf")]})) == {"a": [1, 2.5, float("inf")]}
    import numpy as np
    import torch

    for value in (np.array([True, False]), np.arange(6).reshape(2, 3), np.array([np.inf, np.nan]),
                  torch.tensor([[True], [False]]), torch.arange(4.0)):  # every dtype the exercises return
        back = decode(encode(value))
        assert type(back) is type(value) and back.dtype == value.dtype and back.shape == value.shape
        assert np.array_equal(np.asarray(back), np.asarray(value), equal_nan=True)


def test_twins_are_stubs_in_the_source_the_sandbox_gets():
    from course_lib.grading.child import DENIED
    from course_lib.grading.sandbox import strip_twins

    stripped, hide = strip_twins(("course_lib.envs.loop.discounted_return",))
    module = stripped["course_lib.envs.loop"]
    namespace: dict = {}
    exec(compile(module["source"], module["file"], "exec"), namespace)
    with pytest.raises(RuntimeError, match=DENIED):
        namespace["discounted_return"]([1.0], 0.9)
    assert callable(namespace["run_episode"])  # the rest of the module is intact
    assert "for " not in module["source"].split("def discounted_return")[1].split("def ")[0]  # no body left
    assert hide[0] == module["file"] and all(p.endswith(".pyc") for p in hide[1:])
    with pytest.raises(ValueError, match="no top-level"):
        strip_twins(("course_lib.envs.loop.no_such_function",))


def test_without_root_the_sandbox_refuses_unless_unsafe(monkeypatch, tmp_path):
    from course_lib.grading import sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    with pytest.raises(sandbox.SandboxUnavailable, match="needs root"):
        sandbox.Sandbox([tmp_path])
    with sandbox.Sandbox([tmp_path], unsafe=True) as walls:
        assert walls.unsafe and walls.block is None


@needs_root
def test_two_graders_hold_different_uid_blocks():
    from course_lib.grading.sandbox import UID_BLOCK, UidBlock

    first, second = UidBlock(), UidBlock()
    try:
        assert abs(first.base - second.base) >= UID_BLOCK
    finally:
        first.release()
        second.release()
    third = UidBlock()  # released blocks are free again
    assert third.base == min(first.base, second.base)
    third.release()


def test_code_that_names_the_reference_or_the_harness_is_flagged():
    from course_lib.checks.lesson01 import EXERCISES
    from course_lib.grading.grader import _flags

    ex = EXERCISES["discounted_return"]
    honest = "import numpy as np\ndef discounted_return(rewards, gamma):\n    return 0.0"
    assert _flags(honest, ex) == []
    assert "reference" in _flags(f"from {ex.reference.__module__} import {ex.reference.__name__}", ex)[0]
    for source in ("import course_lib.harness.lesson06 as h\nh.solves_cartpole(train_reinforce)",
                   "from course_lib import harness"):
        assert "harness" in _flags(source, ex)[0], source
