"""The sandboxed side of the grader: ``python -m course_lib.grading.child``, one per (submission x exercise).

It is started by :mod:`course_lib.grading.sandbox` as root or as the grading
user, with the job as JSON on stdin. Before any student code runs it: enters
new network and mount namespaces (when root), hides the given folders under
empty tmpfs mounts, imports what the notebook's code will import, builds the
exercise's cases, sets resource limits and drops to an unprivileged uid.
Then it runs the notebook's code and calls the student's function on every
case, writing only plain JSON results to ``result.json``. It never sees an
expected value: the trusted parent compares.
"""

from __future__ import annotations

import ast
import ctypes
import errno
import importlib
import json
import os
import resource
import sys

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 16384, 1 << 18
PRELOAD = ("math", "random", "itertools", "functools", "collections", "dataclasses", "typing", "statistics",
           "heapq", "bisect", "copy", "re", "json", "inspect", "string", "operator", "fractions", "decimal",
           "numbers", "enum", "abc", "contextlib", "time", "warnings", "textwrap", "numpy", "gymnasium")


def _isolate(job: dict) -> list[str]:
    """Namespaces and hidden folders (root only). Returns what could not be done, for the report."""
    missing = []
    if os.geteuid() != 0:
        return ["network namespace", "hidden folders", "unprivileged user"]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        return ["network namespace", "hidden folders"]
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return ["hidden folders"]
    for folder in job["hide"]:
        if libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"size=64k,mode=000") != 0:
            missing.append(f"hiding {folder}")
    return missing


def _preload(code: list[str]) -> None:
    """Import, before privileges drop, the modules the notebook imports (the interpreter's own
    folder may be unreadable to the grading user)."""
    names = set(PRELOAD)
    for source in code:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    if any("pyplot" in n for n in names):
        os.environ["MPLBACKEND"] = "Agg"
    for name in sorted(names):
        try:
            importlib.import_module(name)
        except Exception:  # not a module (e.g. a function imported by name) or not installed
            pass
    if "torch" in sys.modules:
        _load_optimiser_modules()


def _load_optimiser_modules() -> None:
    """A torch optimiser's first step imports more of torch (``torch._dynamo``, and cProfile with it): do it now,
    while the interpreter's own files are readable, so that the builds that train (lessons 6, 11, 14, 16) can."""
    import torch

    for make in (torch.optim.SGD, torch.optim.Adam):
        make([torch.zeros(1, requires_grad=True)], lr=0.0).step()


def _limit(job: dict) -> None:
    lim = job["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (lim["memory_bytes"], lim["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_bytes"], lim["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (lim["processes"], lim["processes"]))


def _drop(uid: int | None) -> None:
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _noop(*args, **kwargs):
    return None


class _IPythonStub:
    """Enough of ``get_ipython()`` for magics in exercise notebooks to do nothing."""

    def __getattr__(self, name):
        return _noop


def main() -> None:
    job = json.loads(sys.stdin.read())
    result_path = job["result_path"]
    report: dict = {"exercise": job["exercise"], "cases": [], "status": None, "detail": "", "not_isolated": []}

    def finish(status: str, detail: str = "") -> None:
        report["status"], report["detail"] = status, detail[-500:]
        with open(result_path, "w", encoding="utf-8") as f:
            json.dump(report, f)
        sys.stdout.flush()
        os._exit(0)  # nothing the student registered (atexit, threads) runs after this

    # 1. isolate, import, build the cases: all before any student code
    report["not_isolated"] = _isolate(job)
    _preload(job["code"])
    from course_lib.grading.encoding import EncodeError, encode  # noqa: F401  (loaded before the drop)

    lesson = importlib.import_module(f"course_lib.checks.lesson{job['lesson']}")
    exercise = lesson.EXERCISES[job["exercise"]]
    cases = exercise.cases() + exercise.hidden_cases()
    os.chdir(job["workdir"])
    _limit(job)
    _drop(job.get("uid"))

    # 2. run the notebook's code
    namespace = {"__name__": "__main__", "display": _noop, "get_ipython": _IPythonStub}
    try:
        for index, source in enumerate(job["code"]):
            try:
                exec(compile(source, f"<code cell {index}>", "exec"), namespace)
            except NotImplementedError:
                pass  # a cell that calls an unfinished stub: the exercise itself decides
            except MemoryError:
                finish("memory", f"MemoryError in code cell {index}")
            except OSError as exc:
                if exc.errno == errno.EFBIG:  # Python ignores SIGXFSZ: writes past the limit raise instead
                    finish("crash", f"output or file size limit reached in code cell {index}")
                report["detail"] = f"{type(exc).__name__} in code cell {index}: {exc}"[:300]
            except SystemExit as exc:
                finish("crash", f"SystemExit({exc.code!r}) in code cell {index}")
            except BaseException as exc:  # the student's cell failed: later cells may still define the function
                report["detail"] = f"{type(exc).__name__} in code cell {index}: {exc}"[:300]
    except BaseException as exc:  # e.g. a KeyboardInterrupt raised from a finally
        finish("crash", f"{type(exc).__name__} while running the notebook's code")

    if job["exercise"] not in namespace:
        finish("missing-function", f"nothing named {job['exercise']!r} was defined")
    fn = namespace[job["exercise"]]
    if exercise.kind == "function" and not callable(fn):
        finish("missing-function", f"{job['exercise']!r} is not a function")

    if exercise.kind == "answer" and (fn is None or isinstance(fn, dict) and all(v is None for v in fn.values())):
        finish("not-implemented")  # the answer template, still unfilled

    # 3. call the student's function on every case (or read the answer); only encoded data leaves
    call = exercise.student_callable(fn)
    statuses = set()
    for case in cases:
        try:
            value = call(*case.args, **case.kwargs)
            report["cases"].append({"value": encode(value)})
        except NotImplementedError:
            statuses.add("not-implemented")
            report["cases"].append({"error": "NotImplementedError"})
        except MemoryError:
            statuses.add("memory")
            report["cases"].append({"error": "MemoryError"})
        except SystemExit as exc:
            finish("crash", f"SystemExit({exc.code!r}) while calling {job['exercise']}")
        except BaseException as exc:
            report["cases"].append({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    if "memory" in statuses:
        finish("memory", "MemoryError while calling the function")
    if statuses == {"not-implemented"} and all("error" in c for c in report["cases"]):
        finish("not-implemented")
    finish("ok")


if __name__ == "__main__":
    main()
