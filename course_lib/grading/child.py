"""The sandboxed side of the grader: one child process per (submission x exercise).

Started by :mod:`course_lib.grading.sandbox` as ``python -I -B`` in an empty root-owned folder (no folder a
student can write to is on ``sys.path``), with the job on stdin: the notebook's code, the exercise's name, and
the pickled inputs of its cases with its adapter (built by the grader from :mod:`course_lib.checks`; only
:mod:`course_lib.harness` is needed to unpickle them). Before any student code runs it: puts up the walls
(:mod:`course_lib.grading.confine`: namespaces, hidden paths, read-only mounts, private temporary folders, limits,
no sockets, the uid drop; root only, except limits and the socket filter), installs the import guard (below),
and imports only allow-listed modules. Then it runs the notebook's code and calls the student's function on
every case, writing plain JSON results to ``result.json`` in its own folder. It never sees an expected value,
a reference or a hidden case's expected behaviour: the trusted parent compares.

The import guard: ``course_lib.checks`` (references, hidden cases, quiz answers) is never loaded; a notebook's
``from course_lib.checks.lessonNN import check_x, TinyPolicy`` gets a stand-in whose ``check_*`` do nothing and
whose other names come from :mod:`course_lib.harness`. The exercise's *twins* (the library functions that are
its answer) exist only as stubs that raise: their modules are compiled from source the grader stripped, and
their files are hidden.
"""

from __future__ import annotations

import ast
import base64
import errno
import importlib
import importlib.abc
import importlib.machinery
import io
import json
import os
import pickle
import sys
import types

MAX_JOB_BYTES = 64 * 2**20
EXIT_CONFINE = 3
"""Exit code when a wall could not be put up: the parent reports ``sandbox-error``."""
DENIED = "is not available while grading"
"""In the message a twin's stub raises; the parent flags case errors that contain it."""
PRELOAD = ("math", "random", "itertools", "functools", "collections", "dataclasses", "typing", "statistics",
           "heapq", "bisect", "copy", "re", "json", "inspect", "string", "operator", "fractions", "decimal",
           "numbers", "enum", "abc", "contextlib", "time", "warnings", "textwrap", "encodings.idna", "numpy", "gymnasium")
THIRD_PARTY = frozenset({"numpy", "torch", "gymnasium", "matplotlib", "scipy", "pandas", "transformers", "tqdm",
                         "course_lib", "ipywidgets", "IPython", "safetensors", "tokenizers"})
"""Top-level packages (besides the standard library) whose modules a notebook may have imported before the drop."""
NEVER_PRELOAD = frozenset({"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "webbrowser",
                           "pydoc", "pdb", "code", "venv", "ensurepip", "site", "sitecustomize", "usercustomize"})


def _noop(*args, **kwargs):
    return None


class _IPythonStub:
    """Enough of ``get_ipython()`` for magics in exercise notebooks to do nothing."""

    def __getattr__(self, name):
        return _noop


# ---- the import guard ----------------------------------------------------------------------------------------


class _ChecksStandIn(types.ModuleType):
    """What ``import course_lib.checks[.lessonNN]`` gives in the sandbox: checks that do nothing, helpers from the
    harness, nothing else."""

    def __getattr__(self, name: str):
        if name.startswith("check_") or name in ("hint", "run_check"):
            return _noop
        lesson = self.__name__.rpartition(".")[2]
        if lesson.startswith("lesson"):
            try:
                return getattr(importlib.import_module(f"course_lib.harness.{lesson}"), name)
            except (ImportError, AttributeError):
                pass
        raise AttributeError(f"{name} is not available while grading")


class ImportGuard(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """First on ``sys.meta_path``: serves the checks' stand-in and the twins' stripped modules."""

    def __init__(self, twins: dict[str, dict]):
        self.twins = twins
        """module name -> {"source": stripped source, "file": the module's path}."""

    def find_spec(self, name, path=None, target=None):
        if name == "course_lib.checks" or name.startswith("course_lib.checks."):
            return importlib.machinery.ModuleSpec(name, self, is_package=name == "course_lib.checks")
        if name in self.twins:
            spec = importlib.machinery.ModuleSpec(name, self, origin=self.twins[name]["file"])
            spec.has_location = True
            return spec
        return None

    def create_module(self, spec):
        if spec.name in self.twins:
            return None
        module = _ChecksStandIn(spec.name)
        if spec.name == "course_lib.checks":
            module.__path__ = []
        return module

    def exec_module(self, module):
        twin = self.twins.get(module.__name__)
        if twin is not None:
            module.__file__ = twin["file"]
            exec(compile(twin["source"], twin["file"], "exec"), module.__dict__)


class _Unpickler(pickle.Unpickler):
    """Unpickles the grader's payload; anything from ``course_lib.checks`` is refused (it must never load here)."""

    def find_class(self, module, name):
        if module == "course_lib.checks" or module.startswith("course_lib.checks."):
            raise pickle.UnpicklingError(f"the payload refers to {module}.{name}")
        return super().find_class(module, name)


def _preload(code: list[str]) -> None:
    """Import, before privileges drop, the allow-listed modules the notebook imports (the interpreter's own
    folder may be unreadable to the grading user). The import guard is already in place."""
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
    allowed = {n for n in names if _allowed(n)}
    if any("pyplot" in n for n in allowed):
        os.environ["MPLBACKEND"] = "Agg"
    for name in sorted(allowed):
        try:
            importlib.import_module(name)
        except Exception:  # not a module (a function imported by name), not installed, or a denied twin's user
            pass
    if "torch" in sys.modules:
        _load_optimiser_modules()


def _allowed(name: str) -> bool:
    top = name.partition(".")[0]
    if top in NEVER_PRELOAD or name.startswith("course_lib.checks") or name == "course_lib.grading.grader":
        return False
    return top in sys.stdlib_module_names or top in THIRD_PARTY


def _load_optimiser_modules() -> None:
    """A torch optimiser's first step imports more of torch (``torch._dynamo``, and cProfile with it): do it now,
    while the interpreter's own files are readable, so that the builds that train (lessons 6, 11, 14, 16) can."""
    import torch

    for make in (torch.optim.SGD, torch.optim.Adam):
        make([torch.zeros(1, requires_grad=True)], lr=0.0).step()


# ---- the run -------------------------------------------------------------------------------------------------


def _confine(job: dict) -> str:
    """The walls that need root (root mode only); returns the run's folder as the sandbox sees it."""
    from course_lib.grading import confine

    confine.new_namespaces()
    work_fd = os.open(job["workdir"], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)  # in the new namespace
    confine.hide(job["hide"], job["empty_file"])
    confine.read_only_everything()
    work = confine.private_tmp(work_fd, job["uid"], job["tmp_mb"])
    os.close(work_fd)
    return work


def _limit_and_drop(job: dict) -> None:
    from course_lib.grading import confine

    lim = job["limits"]
    confine.set_limits(lim["cpu_s"], lim["memory_bytes"], lim["file_bytes"], lim["open_files"], lim["processes"])
    confine.deny_sockets()
    if job["isolate"]:
        confine.drop(job["uid"])
    else:
        confine.drop_capabilities()


def main() -> None:
    job = json.loads(sys.stdin.buffer.read(MAX_JOB_BYTES))
    report: dict = {"exercise": job["exercise"], "status": None, "detail": "", "cases": []}
    result_path = ""

    def finish(status: str, detail: str = "") -> None:
        report["status"], report["detail"] = status, detail[-500:]
        try:
            fd = os.open(result_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with io.open(fd, "w", encoding="utf-8") as f:
                json.dump(report, f)
        except OSError:
            os._exit(1)
        sys.stdout.flush()
        os._exit(0)  # nothing the student registered (atexit, threads) runs after this

    # 1. walls, guard, allow-listed imports, the cases' inputs: all before any student code
    try:
        work = _confine(job) if job["isolate"] else job["workdir"]
        result_path = os.path.join(work, "result.json")
        os.environ.update(HOME=work, MPLCONFIGDIR=work)
        sys.meta_path.insert(0, ImportGuard(job["twins"]))
        _preload(job["code"])
        from course_lib.grading.encoding import encode

        adapt, cases = _Unpickler(io.BytesIO(base64.b64decode(job["payload"]))).load()
        leaked = sorted(m for m in sys.modules if m.startswith("course_lib.checks.") and
                        not isinstance(sys.modules[m], _ChecksStandIn))
        if leaked:
            raise RuntimeError(f"a reference module was loaded before the student's code: {leaked}")
        os.chdir(work)
        _limit_and_drop(job)
    except Exception as exc:
        print(f"sandbox: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_CONFINE)

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

    name = job["exercise"]
    if name not in namespace:
        finish("missing-function", f"nothing named {name!r} was defined")
    obj = namespace[name]
    if job["kind"] == "answer":
        if obj is None or isinstance(obj, dict) and all(v is None for v in obj.values()):
            finish("not-implemented")  # the answer template, still unfilled
        call = lambda: obj  # noqa: E731
    elif not callable(obj):
        finish("missing-function", f"{name!r} is not a function")
    else:
        call = adapt(obj) if adapt is not None else obj

    # 3. call the student's function on every case; only encoded data leaves
    statuses = set()
    for args, kwargs in cases:
        try:
            report["cases"].append({"value": encode(call(*args, **kwargs))})
        except NotImplementedError:
            statuses.add("not-implemented")
            report["cases"].append({"error": "NotImplementedError"})
        except MemoryError:
            statuses.add("memory")
            report["cases"].append({"error": "MemoryError"})
        except SystemExit as exc:
            finish("crash", f"SystemExit({exc.code!r}) while calling {name}")
        except BaseException as exc:
            report["cases"].append({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    if "memory" in statuses:
        finish("memory", "MemoryError while calling the function")
    if statuses == {"not-implemented"} and all("error" in c for c in report["cases"]):
        finish("not-implemented")
    finish("ok")


if __name__ == "__main__":
    main()
