"""Grade a folder of submissions: ``course-kit grade SUBMISSIONS --out grades.csv``.

Layout: ``SUBMISSIONS/<student>/<NN_lesson>.ipynb`` (one folder per student,
the exercise notebooks under their original names). For every (notebook x
exercise) a sandboxed child (:mod:`course_lib.grading.sandbox`) runs the
notebook's code and calls the student's function on the exercise's public
and hidden cases; this trusted process computes the expected values with the
library's reference and compares (type-strict, finite-only, with the
exercise's tolerances). Score per exercise: the fraction of cases passed (1 point each).
"""

from __future__ import annotations

import ast
import csv
import importlib
import io
import json
import os
import queue
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Iterable, NamedTuple
from pathlib import Path

from tqdm.auto import tqdm

from course_lib.checks import LESSON_OF
from course_lib.grading.child import DENIED, imported_names
from course_lib.grading.encoding import decode
from course_lib.grading.sandbox import Limits, Sandbox, SandboxUnavailable  # noqa: F401  (raised by grade_folder)
from course_lib.grading.submission import Rejected, load_submission


@dataclass
class ExerciseGrade:
    lesson: str
    exercise: str
    status: str
    """One of :data:`course_lib.grading.sandbox.STATUSES`."""
    score: float
    """Fraction of cases passed, 0 to 1."""
    passed: int
    total: int
    detail: str = ""
    failures: list[str] = field(default_factory=list)
    """Feedback lines: public cases say what differs; hidden cases say only which property failed."""
    flags: list[str] = field(default_factory=list)


def lesson_exercises(lesson: str) -> dict:
    """The lesson's exercises (``course_lib.checks.lessonNN.EXERCISES``), or {} for a lesson without any."""
    try:
        return importlib.import_module(f"course_lib.checks.lesson{lesson}").EXERCISES
    except ModuleNotFoundError:
        return {}


class _Prepared(NamedTuple):
    """One exercise as the grader holds it: its spec, its cases, their expected values and the sandbox's payload."""

    exercise: object
    public: list
    hidden: list
    expected: list
    payload: bytes


class _Expected:
    """Expected values per (lesson, exercise), computed once with the reference in this process."""

    def __init__(self):
        self._cache: dict[tuple[str, str], _Prepared] = {}

    def get(self, lesson: str, name: str) -> _Prepared:
        key = (lesson, name)
        if key not in self._cache:
            ex = lesson_exercises(lesson)[name]
            public, hidden = ex.cases(), ex.hidden_cases()
            payload = Sandbox.pickled_cases(ex, public + hidden)  # pickled before the reference sees the inputs
            reference = ex.call(ex.reference)
            expected = [reference(*c.args, **c.kwargs) for c in public + hidden]
            self._cache[key] = _Prepared(ex, public, hidden, expected, payload)
        return self._cache[key]


def _score(lesson: str, name: str, outcome, expected_cache: _Expected) -> ExerciseGrade:
    ex, public, hidden, expected, _ = expected_cache.get(lesson, name)
    total = len(public) + len(hidden)
    if outcome.status != "ok":
        return ExerciseGrade(lesson, name, outcome.status, 0.0, 0, total, outcome.detail)
    if len(outcome.cases) != total:
        return ExerciseGrade(lesson, name, "crash", 0.0, 0, total,
                             f"the sandbox reported {len(outcome.cases)} results for {total} cases")
    passed, failures = 0, []
    for i, (case, exp, res) in enumerate(zip(public + hidden, expected, outcome.cases)):
        is_public = i < len(public)
        label = f"case {i + 1}/{len(public)} ({case.about})" if is_public else f"hidden case {i - len(public) + 1} ({case.about})"
        if not isinstance(res, dict) or not ("value" in res or "error" in res):
            failures.append(f"{label}: no valid result")
            continue
        if "error" in res:
            failures.append(f"{label}: raised {str(res['error'])[:200] if is_public else str(res['error']).split(':')[0]}")
            continue
        try:
            got = decode(res["value"], like=exp)
            mismatch = ex.compare(exp, got)
        except Exception as exc:  # a malformed encoded value: the student's process wrote it
            mismatch = f"the result could not be read back ({type(exc).__name__})"
        if mismatch is None:
            passed += 1
        else:
            # hidden cases never reveal inputs or expected values, only the property they test
            failures.append(f"{label}: {mismatch}" + (f" Hint: {case.hint}" if case.hint else "") if is_public
                            else f"{label}: wrong result. Hint: {case.hint}")
    return ExerciseGrade(lesson, name, "ok", passed / total, passed, total, outcome.detail, failures)


def _flags(source: str, ex) -> list[str]:
    """Flag code that names the exercise's reference (a twin needs no flag here: in the sandbox it is a stub, and
    calling it is flagged by :func:`_denied_flags`)."""
    module, name = ex.reference.__module__, ex.reference.__name__
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    if "course_lib.harness" in source or any(
            isinstance(n, ast.ImportFrom) and n.module == "course_lib" and any(a.name == "harness" for a in n.names)
            for n in ast.walk(tree)):
        # the harness runs the cases inside the sandbox: code that patches it could forge a build's verdict
        return ["reaches into the grading harness (course_lib.harness): check by hand"]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module and any(a.name == name for a in node.names):
            return [f"imports the library's reference {module}.{name}: check by hand"]
    if f"{module}.{name}" in source:
        return [f"uses the library's reference {module}.{name}: check by hand"]
    return []


UNSAFE_FLAG = "UNSAFE: graded without root, so without network, file and user isolation (--unsafe)"


def _scan(submissions: Path) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, str]], dict[str, str]]:
    """Every ``<student>/<NN_*.ipynb>`` that is a regular file, and the reason for each entry that is not.

    Returns:
        (student -> lesson -> notebook, student -> lesson -> why it cannot be graded, student -> why the
        whole folder cannot be graded).
    """
    notebooks: dict[str, dict[str, Path]] = {}
    problems: dict[str, dict[str, str]] = {}
    folder_problems: dict[str, str] = {}
    for entry in sorted(os.scandir(submissions), key=lambda e: e.name):
        if entry.is_symlink():
            folder_problems[entry.name] = "the student's folder is a symbolic link, not a folder"
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue  # a stray file beside the students' folders
        notebooks[entry.name], problems[entry.name] = {}, {}
        for item in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if not _NOTEBOOK_NAME.match(item.name):
                continue
            lesson = item.name[:2]
            kind = _file_kind(item)
            if kind == "a regular file":
                notebooks[entry.name][lesson] = Path(item.path)
            else:
                problems[entry.name][lesson] = f"{item.name} is {kind}, not a regular file"
    return notebooks, problems, folder_problems


_NOTEBOOK_NAME = re.compile(r"^\d\d_.*\.ipynb$")


def _file_kind(entry: os.DirEntry) -> str:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return "unreadable"
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def grade_folder(submissions: Path, out_csv: Path, hidden: Path | None = None, jobs: int = 1,
                 limits: Limits = Limits(), progress: bool = True, unsafe: bool = False,
                 exercises: Iterable[str] | None = None) -> dict[str, list[ExerciseGrade]]:
    """Grade every ``submissions/<student>/<NN_*.ipynb>``; write the CSV, the JSON and the feedback.

    Every (student x exercise) of every lesson that anyone submitted ends in a row with a status from
    :data:`~course_lib.grading.sandbox.STATUSES`, whatever the student's code does; the tables are written once,
    after every child is gone.

    Args:
        exercises: grade only these exercises (by name); None grades every exercise of every submitted lesson.

    Raises:
        SandboxUnavailable: not root and ``unsafe`` not given.
        ValueError: ``exercises`` names one that no lesson has.

    Returns:
        student -> the grade of every exercise of every lesson that anyone submitted.
    """
    submissions = Path(submissions)
    only = None if exercises is None else set(exercises)
    if only is not None and only - set(LESSON_OF):
        raise ValueError(f"exercises: expected names of exercises, got unknown {sorted(only - set(LESSON_OF))}")

    def exercises_of(lesson: str) -> dict:
        return {k: v for k, v in lesson_exercises(lesson).items() if only is None or k in only}

    grades, tasks = _plan(submissions, exercises_of)
    lessons = sorted({lesson for gs in grades.values() for lesson, _ in gs} | {t[1] for t in tasks})
    out_csv = Path(out_csv)
    feedback_dir = out_csv.with_name(out_csv.stem + "_feedback")
    outputs = [out_csv, out_csv.with_suffix(".json"), out_csv.with_name(f".{out_csv.name}.tmp"),
               out_csv.with_name(f".{out_csv.stem}.json.tmp")]
    hide = [submissions, feedback_dir, *outputs] + ([Path(hidden)] if hidden else [])
    preload = set().union(*(imported_names(sub.code) for sub in {id(t[3]): t[3] for t in tasks}.values()))
    twins = {t for lesson in lessons for ex in exercises_of(lesson).values() for t in ex.twins}
    expected = _Expected()
    slots: queue.Queue = queue.Queue()
    for slot in range(max(1, jobs)):
        slots.put(slot)
    with Sandbox(hide, limits, unsafe=unsafe, preload=preload, twins=twins) as sandbox:  # its zygote imports meanwhile
        for lesson in lessons:  # compute the references once, before any child runs
            for name in exercises_of(lesson):
                expected.get(lesson, name)

        def work(task):
            slot = slots.get()
            try:
                return _grade_task(sandbox, task, expected, slot)
            finally:
                slots.put(slot)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for student, graded in tqdm(pool.map(work, tasks), total=len(tasks), desc="grading", unit="run",
                                        disable=not progress):
                for grade in graded:
                    grades[student][(grade.lesson, grade.exercise)] = grade

    ordered = {s: [gs[k] for k in sorted(gs)] for s, gs in grades.items()}
    write_outputs(ordered, out_csv, feedback_dir)
    return ordered


def _plan(submissions: Path, exercises_of) -> tuple[dict[str, dict], list[tuple]]:
    """The rows that need no run (``missing``, ``rejected``) and the runs to make: ``(student, lesson, exercise
    names, submission)``, one per function exercise and one for all of a notebook's answers (only read)."""
    notebooks, problems, folder_problems = _scan(submissions)
    students = sorted(set(notebooks) | set(folder_problems))
    lessons = sorted({lesson for s in students for lesson in [*notebooks.get(s, {}), *problems.get(s, {})]
                      if exercises_of(lesson)})
    grades: dict[str, dict[tuple[str, str], ExerciseGrade]] = {s: {} for s in students}
    tasks = []
    for student in students:
        for lesson in lessons:
            names = exercises_of(lesson)
            reason = folder_problems.get(student) or problems.get(student, {}).get(lesson)
            nb = notebooks.get(student, {}).get(lesson)
            try:
                if reason is None and nb is None:
                    grades[student].update({(lesson, name): ExerciseGrade(lesson, name, "missing", 0.0, 0, 0,
                                                                          "no notebook for this lesson")
                                            for name in names})
                    continue
                if reason is not None:
                    raise Rejected(reason)
                sub = load_submission(nb, student, set(names))
            except Rejected as exc:
                grades[student].update({(lesson, name): ExerciseGrade(lesson, name, "rejected", 0.0, 0, 0, str(exc))
                                        for name in names})
                continue
            answers = [name for name in names if names[name].kind == "answer"]
            tasks += [(student, lesson, [name], sub) for name in names if name not in answers]
            tasks += [(student, lesson, answers, sub)] if answers else []
    return grades, tasks


def _grade_task(sandbox: Sandbox, task: tuple, expected: _Expected, slot: int) -> tuple[str, list[ExerciseGrade]]:
    """One run in the sandbox and its rows; the grader's own failure here spoils these rows only, never the run."""
    student, lesson, names, sub = task
    try:
        specs = [expected.get(lesson, name) for name in names]
        outcomes = sandbox.run(sub.code, [spec.exercise for spec in specs], [spec.payload for spec in specs], slot)
        graded = []
        for name, spec, outcome in zip(names, specs, outcomes):
            grade = _score(lesson, name, outcome, expected)
            grade.flags = _flags(sub.source_text, spec.exercise) + _denied_flags(outcome, spec.exercise)
            graded.append(grade)
    except Exception as exc:
        graded = [ExerciseGrade(lesson, name, "sandbox-error", 0.0, 0, 0, f"the grader failed on this task: "
                                f"{type(exc).__name__}: {str(exc)[:200]}") for name in names]
    for grade in graded:
        if sandbox.unsafe:
            grade.flags.append(UNSAFE_FLAG)
    return student, graded


def _denied_flags(outcome, ex) -> list[str]:
    """A case that failed because the student's code called a twin (a stub in the sandbox)."""
    if any(DENIED in str(c.get("error", "")) for c in outcome.cases if isinstance(c, dict)):
        return [f"called the library's answer ({', '.join(ex.twins)}), which is denied while grading: check by hand"]
    return []


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: str) -> str:
    """A text cell a spreadsheet shows as text: one that starts like a formula (``=``, ``+``, ``-``, ``@``, a tab or
    a carriage return: a student's folder named ``=HYPERLINK(...)``) gets a leading ``'``, OWASP's advice for CSV
    injection; any other text is unchanged."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: a reader, or a run cut off
    while writing, sees the old file or the whole new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_outputs(grades: dict[str, list[ExerciseGrade]], out_csv: Path, feedback_dir: Path) -> None:
    """``grades.csv`` (a row per student), ``grades.json`` (everything), ``<out>_feedback/<student>.md``.

    Both tables are written atomically (:func:`_write_atomically`); text cells of the CSV that a spreadsheet would
    read as a formula are escaped (:func:`spreadsheet_text`), while ``grades.json`` keeps every value as it is.
    """
    columns = sorted({(g.lesson, g.exercise) for gs in grades.values() for g in gs})
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table)
    header = ["student"]
    for lesson, name in columns:
        header += [f"{lesson}:{name}", f"{lesson}:{name}:status"]
    writer.writerow([spreadsheet_text(h) for h in header] + ["total", "max"])
    for student, gs in grades.items():
        by_key = {(g.lesson, g.exercise): g for g in gs}
        row = [spreadsheet_text(student)]
        for key in columns:
            g = by_key[key]
            row += [f"{g.score:.3f}", spreadsheet_text(g.status)]
        writer.writerow(row + [f"{sum(g.score for g in gs):.3f}", len(columns)])
    _write_atomically(out_csv, table.getvalue())
    _write_atomically(out_csv.with_suffix(".json"),
                      json.dumps({s: [asdict(g) for g in gs] for s, gs in grades.items()}, indent=1) + "\n")
    feedback_dir.mkdir(parents=True, exist_ok=True)
    for student, gs in grades.items():
        lines = [f"# Feedback for {student}", "", f"Total: {sum(g.score for g in gs):.2f} / {len(gs)}", ""]
        for g in gs:
            lines.append(f"## Lesson {g.lesson}: `{g.exercise}`: {g.score:.2f} ({g.status})")
            lines.append("")
            if g.status == "ok":
                lines.append(f"{g.passed} of {g.total} cases passed." + ("" if g.failures else " Well done."))
            else:
                lines.append(_STATUS_TEXT.get(g.status, g.status) + (f" ({g.detail})" if g.detail else ""))
            lines += [f"- {line}" for line in g.failures]
            lines.append("")
        (feedback_dir / f"{student}.md").write_text("\n".join(lines), encoding="utf-8")


_STATUS_TEXT = {
    "rejected": "The notebook could not be graded",
    "timeout": "The code ran out of time",
    "memory": "The code ran out of memory",
    "crash": "The code crashed before reporting results",
    "missing-function": "The function is not defined in the notebook",
    "not-implemented": "Not implemented yet: the function still raises NotImplementedError",
    "missing": "No notebook was submitted for this lesson",
    "sandbox-error": "The grader could not run this exercise safely (not your fault: your instructor will look)",
}
