"""The autograder against correct, unfinished, broken and malicious submissions.

Every fixture is a lesson-1 exercise notebook (two exercises: discounted_return
and run_episode) with one attack added: code at the top that runs when the
notebook's code runs, or a replacement for ``discounted_return``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import threading
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import ROOT
from course_lib.grading.grader import grade_folder
from course_lib.grading.sandbox import SANDBOX_UID_BASE, Limits, _pids_of_uid

LESSON = "01_agent_environment_loop.ipynb"
EXERCISE = ROOT / "exercises" / LESSON
SOLUTION = ROOT / "solutions" / LESSON
AS_ROOT = os.geteuid() == 0
LIMITS = Limits(timeout_s=4.0, memory_mb=1024)

# name -> (where, code): "top" inserts a cell at the top, "function" appends a cell (it replaces
# discounted_return), "replace" puts the code in place of the cell that defines the stub.
ATTACKS = {
    "cpu_loop": ("top", "while True:\n    pass"),
    "sleep": ("top", "import time\ntime.sleep(10_000)"),
    "memory_bomb": ("top", "hog = bytearray(8 * 1024**3)"),
    "output_flood": ("top", "while True:\n    print('x' * 100_000)"),
    "exit_at_import": ("top", "raise SystemExit('bye')"),
    "os_exit": ("function", "import os\ndef discounted_return(rewards, gamma):\n    os._exit(0)"),
    "always_equal": ("function", "class Yes:\n    def __eq__(self, other):\n        return True\n"
                                 "def discounted_return(rewards, gamma):\n    return Yes()"),
    "nan_answers": ("function", "def discounted_return(rewards, gamma):\n    return float('nan')"),
    "read_hidden_tests": ("function",
                          "import pathlib, json, course_lib\n"
                          "SOL = pathlib.Path(course_lib.__file__).parents[1] / 'solutions' / '" + LESSON + "'\n"
                          "def discounted_return(rewards, gamma):\n"
                          "    cells = json.loads(SOL.read_text())['cells']  # the answers, if they were readable\n"
                          "    ns = {}\n"
                          "    exec(''.join(cells[3]['source']), ns)\n"
                          "    return ns['discounted_return'](rewards, gamma)"),
    "patch_builtins": ("function", "import builtins, json\nbuiltins.isinstance = lambda *a: True\n"
                                   "json.dump = lambda obj, f, *a, **k: f.write('{\"forged\": true}')\n"
                                   "def discounted_return(rewards, gamma):\n    return 0.0"),
    "missing_function": ("replace", "def discounted_returns(rewards, gamma):  # a typo in the name\n    return 0.0"),
    "network_call": ("function", "import socket\ndef discounted_return(rewards, gamma):\n"
                                 "    with socket.create_connection(('127.0.0.1', PORT), timeout=2) as s:\n"
                                 "        return float(s.recv(64).decode())"),
}
if AS_ROOT:  # without a uid of its own, a fork bomb would count against the grader's own processes
    ATTACKS["fork_bomb"] = ("top", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")


def _notebook(attack: tuple[str, str] | None, port: int) -> nbformat.NotebookNode:
    nb = nbformat.read(EXERCISE, as_version=4)
    if attack is not None:
        where, code = attack
        cell = new_code_cell(code.replace("PORT", str(port)))
        if where == "top":
            nb.cells.insert(1, cell)
        elif where == "function":
            nb.cells.append(cell)
        else:
            index = next(i for i, c in enumerate(nb.cells) if "def discounted_return(" in c.source)
            nb.cells[index] = cell
    return nb


def _write(folder, student: str, nb=None, raw: bytes | None = None):
    (folder / student).mkdir(parents=True)
    path = folder / student / LESSON
    if raw is not None:
        path.write_bytes(raw)
    else:
        nbformat.write(nb, path)


@pytest.fixture(scope="module")
def answer_server():
    """A loopback server that hands out the right answer: only a sandbox with network access could use it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"-2.0")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, answer_server):
    folder = tmp_path_factory.mktemp("submissions")
    shutil.copytree(SOLUTION.parent, folder / "_unused", dirs_exist_ok=True)
    shutil.rmtree(folder / "_unused")
    (folder / "correct").mkdir()
    shutil.copy(SOLUTION, folder / "correct" / LESSON)
    _write(folder, "untouched", _notebook(None, answer_server))
    for name, attack in ATTACKS.items():
        _write(folder, name, _notebook(attack, answer_server))
    bad_syntax = _notebook(("top", "def broken(:\n    pass"), answer_server)
    _write(folder, "syntax_error", bad_syntax)
    _write(folder, "not_json", raw=b"this is not a notebook {")
    _write(folder, "schema_invalid", raw=json.dumps({"cells": "nope", "nbformat": 4}).encode())
    _write(folder, "oversize", raw=b'{"cells": [], "pad": "' + b"x" * 6_000_000 + b'"}')
    start = time.monotonic()
    grades = grade_folder(folder, tmp_path_factory.mktemp("out") / "grades.csv", hidden=ROOT / "solutions",
                          jobs=2, limits=LIMITS, progress=False)
    return {s: {g.exercise: g for g in gs} for s, gs in grades.items()}, time.monotonic() - start


def test_correct_submission_gets_full_marks(graded):
    grades, _ = graded
    for g in grades["correct"].values():
        assert (g.status, g.score) == ("ok", 1.0), g


def test_untouched_exercise_scores_zero_as_not_implemented(graded):
    grades, _ = graded
    for g in grades["untouched"].values():
        assert (g.status, g.score) == ("not-implemented", 0.0), g


EXPECTED = {  # student -> (status of discounted_return, a phrase of its detail or feedback)
    "cpu_loop": ("timeout", "stopped after"),
    "sleep": ("timeout", "stopped after"),
    "memory_bomb": ("memory", "MemoryError"),
    "output_flood": ("crash", "output or file size limit"),
    "exit_at_import": ("crash", "SystemExit"),
    "os_exit": ("crash", "without reporting results"),
    "always_equal": ("ok", "not plain data"),
    "nan_answers": ("ok", "expected a finite number, got nan"),
    "read_hidden_tests": ("ok", "raised"),
    "patch_builtins": ("crash", ""),
    "missing_function": ("missing-function", "discounted_return"),
    "network_call": ("ok", "raised"),
    "fork_bomb": ("timeout", ""),
    "syntax_error": ("rejected", "syntax error in code cell 1, line 1"),
    "not_json": ("rejected", "not JSON"),
    "schema_invalid": ("rejected", "not a valid notebook"),
    "oversize": ("rejected", "over the 5000000-byte limit"),
}


@pytest.mark.parametrize("student", [s for s in EXPECTED if s != "fork_bomb" or AS_ROOT])
def test_each_attack_scores_zero_with_its_status(graded, student):
    grades, _ = graded
    g = grades[student]["discounted_return"]
    status, phrase = EXPECTED[student]
    assert g.score == 0.0, g
    assert g.status == status, g
    assert phrase in g.detail + " ".join(g.failures), g


def test_no_sandbox_process_is_left(graded):
    time.sleep(2)
    for slot in range(2):
        assert _pids_of_uid(SANDBOX_UID_BASE + slot) == []


@pytest.mark.skipif(not AS_ROOT, reason="the fork bomb needs a uid of its own (run as root)")
def test_correct_submission_right_after_a_fork_bomb(tmp_path):
    _write(tmp_path / "subs", "a_fork_bomb", _notebook(ATTACKS["fork_bomb"], 0))
    (tmp_path / "subs" / "b_correct").mkdir()
    shutil.copy(SOLUTION, tmp_path / "subs" / "b_correct" / LESSON)
    grades = grade_folder(tmp_path / "subs", tmp_path / "grades.csv", jobs=1, limits=LIMITS, progress=False)
    assert [g.score for g in grades["a_fork_bomb"]] == [0.0] * 6
    assert [(g.status, g.score) for g in grades["b_correct"]] == [("ok", 1.0)] * 6
    assert _pids_of_uid(SANDBOX_UID_BASE) == []


def test_same_submission_graded_twice_gives_the_same_row(tmp_path):
    (tmp_path / "subs" / "x").mkdir(parents=True)
    shutil.copy(SOLUTION, tmp_path / "subs" / "x" / LESSON)
    grade_folder(tmp_path / "subs", tmp_path / "a.csv", limits=LIMITS, progress=False)
    grade_folder(tmp_path / "subs", tmp_path / "b.csv", limits=LIMITS, progress=False)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert (tmp_path / "a_feedback" / "x.md").read_text() == (tmp_path / "b_feedback" / "x.md").read_text()


def test_outputs_and_feedback(graded, tmp_path):
    grades, _ = graded
    g = grades["nan_answers"]["discounted_return"]
    hidden_lines = [line for line in g.failures if line.startswith("hidden case")]
    assert hidden_lines and all("wrong result" in line or "raised" in line for line in hidden_lines)
    assert all("expected" not in line for line in hidden_lines)  # never an expected value from a hidden case


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
