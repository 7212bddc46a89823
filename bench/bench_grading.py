"""Grading throughput: submissions per minute for one lesson, with 1 and 2 jobs.

Compared, in the same run, with what an instructor would otherwise do:
execute each notebook top to bottom with nbclient (as nbgrader's autograde
and ``jupyter nbconvert --execute`` do), which has no sandbox and no hidden
cases. The submissions are copies of a correct lesson-1 notebook.

    python bench/bench_grading.py [--submissions 8] [--lesson-notebook tests/sample_submissions/ada/01_agent_environment_loop.ipynb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib.grading.grader import grade_folder
from course_lib.grading.sandbox import Limits

ROOT = Path(__file__).resolve().parents[1]


def _kind(grade) -> str:
    from course_lib.grading.grader import lesson_exercises

    return lesson_exercises(grade.lesson)[grade.exercise].kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=8, help="number of submissions (default 8)")
    parser.add_argument("--lesson-notebook", default=str(ROOT / "tests/sample_submissions/ada/01_agent_environment_loop.ipynb"),
                        help="the notebook every submission copies")
    args = parser.parse_args()
    source = Path(args.lesson_notebook)
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        for i in range(args.submissions):
            (subs / f"s{i:03d}").mkdir(parents=True)
            shutil.copy(source, subs / f"s{i:03d}" / source.name)
        rates = {}
        for jobs in (1, 2):
            start = time.perf_counter()
            grades = grade_folder(subs, Path(tmp) / f"grades{jobs}.csv", jobs=jobs, limits=Limits(), progress=False)
            seconds = time.perf_counter() - start
            assert all(g.score == 1.0 for gs in grades.values() for g in gs), "the copies should all pass"
            graded = next(iter(grades.values()))
            exercises = len(graded)
            kinds = [_kind(g) for g in graded]
            runs = kinds.count("function") + ("answer" in kinds)
            rates[f"course-kit grade, {jobs} job{'s' if jobs > 1 else ''}"] = args.submissions / seconds * 60
        start = time.perf_counter()
        for i in range(args.submissions):
            nb = nbformat.read(subs / f"s{i:03d}" / source.name, as_version=4)
            NotebookClient(nb, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(ROOT / "exercises")}}).execute()
        rates["nbclient, whole notebook, no sandbox"] = args.submissions / (time.perf_counter() - start) * 60
    base = rates["nbclient, whole notebook, no sandbox"]
    print(f"{args.submissions} submissions of {source.name} ({exercises} exercises each, graded in "
          f"{runs} sandboxed runs: one per function exercise, one for all the answers)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; torch threads "
          f"in each run: 1 (OMP_NUM_THREADS=1)")
    for name, rate in rates.items():
        print(f"{name:<40} {rate:7.1f} submissions/min   ratio {rate / base:4.2f}x vs nbclient")


if __name__ == "__main__":
    main()
