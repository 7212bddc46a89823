"""The sandboxed side of the grader: a zygote, and one child forked from it per run.

The zygote (:func:`zygote`) is started by :mod:`course_lib.grading.sandbox` as ``python -I -B`` in an empty
root-owned folder (no folder a student can write to is on ``sys.path``); it imports the run's allow-listed
modules once (never a reference, a hidden case or a twin), then forks a fresh child per job. A job is one
submission's notebook code with one function exercise, or with all its answers (which are only read), and the
pickled inputs of the cases with the exercise's adapter (built by the grader from :mod:`course_lib.checks`; only
:mod:`course_lib.harness` is needed to unpickle them). Before any student code runs the child (:func:`run_task`):
puts up the walls (:mod:`course_lib.grading.confine`: namespaces, hidden paths, read-only mounts, private
temporary folders, limits, no sockets, the uid drop; root only, except limits and the socket filter), installs
the import guard (below), and imports only allow-listed modules. Then it runs the notebook's code once and calls
the student's function on every case, writing plain JSON results to ``result-<i>.json`` in its own folder. It
never sees an expected value: the trusted parent compares.

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


class _Deny(importlib.abc.MetaPathFinder):
    """The zygote's guard while it preloads: these modules (and their submodules) do not load at all."""

    def __init__(self, names: list[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == d or name.startswith(d + ".") for d in self.names):
            raise ImportError(f"{name} is not preloaded")
        return None


class _Unpickler(pickle.Unpickler):
    """Unpickles the grader's payload; anything from ``course_lib.checks`` is refused (it must never load here)."""

    def find_class(self, module, name):
        if module == "course_lib.checks" or module.startswith("course_lib.checks."):
            raise pickle.UnpicklingError(f"the payload refers to {module}.{name}")
        return super().find_class(module, name)


def imported_names(code: list[str]) -> set[str]:
    """The modules (and ``module.name``s) the code's import statements name, and :data:`PRELOAD`."""
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
    return names


def _preload(code: list[str]) -> None:
    """Import, before privileges drop, the allow-listed modules the notebook imports (the interpreter's own
    folder may be unreadable to the grading user). The import guard is already in place."""
    allowed = {n for n in imported_names(code) if _allowed(n)}
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


def zygote() -> None:
    """The template every run is forked from (``python -I -B``, root, in an empty folder): it imports the
    allow-listed modules the run's notebooks use (numpy, torch, matplotlib, the course's library...) with the
    checks package and every module that holds a twin of any exercise of the run denied (so no reference or twin
    is in it, and a module that needs one is left for each child to import its own way), then forks one child
    per job and reports on stdout
    ``pid N`` when it forked and ``exit N CODE`` when that child ended (CODE as :attr:`subprocess.Popen.returncode`).

    Protocol on stdin: one JSON line ``{"preload": [...], "deny": [...]}``, then one JSON line per job. Each child becomes its own
    session, joins its run's cgroup, writes to its own log, and runs :func:`run_task`; nothing of one child
    reaches another (each is a fresh copy of this template).
    """
    import select

    pending = bytearray()

    def lines():
        """Complete lines read so far from stdin (fd 0, unbuffered: select must see every byte)."""
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            yield line

    def read_more(timeout: float) -> bool:
        if select.select([0], [], [], timeout)[0]:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return False
            pending.extend(chunk)
            if len(pending) > MAX_JOB_BYTES:
                raise ValueError("a job over the size limit")
        return True

    while b"\n" not in pending:
        if not read_more(1.0):
            return
    setup = json.loads(next(lines()))
    os.environ["MPLBACKEND"] = "Agg"
    guard = _Deny(setup["deny"])
    sys.meta_path.insert(0, guard)
    for name in setup["preload"]:
        if _allowed(name):
            try:
                importlib.import_module(name)
            except Exception:  # not a module, or it needs a denied one: the child imports it then, its own way
                pass
    sys.meta_path.remove(guard)
    loaded = sorted(m for m in sys.modules if any(m == d or m.startswith(d + ".") for d in setup["deny"]))
    if loaded:
        raise RuntimeError(f"the zygote loaded a module it must not hold: {loaded}")
    if "torch" in sys.modules:
        _load_optimiser_modules()
    children: set[int] = set()
    open_ = True
    while open_ or children:
        open_ = open_ and read_more(0.002 if children else 0.1)  # a run that ended is seen within 2 ms
        for line in lines():
            job = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _become_task(job)
                run_task(job)  # never returns
            children.add(pid)
            os.write(1, f"pid {pid}\n".encode())
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                os.write(1, f"exit {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


def _become_task(job: dict) -> None:
    """In the forked child, before anything else: a session of its own (so its group can be killed), its run's
    cgroup, its log as stdout and stderr, nothing on stdin."""
    try:
        os.setsid()
        for procs in job["cgroup_procs"]:
            with open(procs, "w") as f:
                f.write("0")  # this process (and all it will start) into the run's budget
        log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
    except Exception:
        os._exit(EXIT_CONFINE)


def run_task(job: dict) -> None:
    """One run: walls, guard, the notebook's code once, then each of the job's exercises (one function exercise,
    or all the notebook's answers, which are only read); a report per exercise, ``result-<i>.json``; ends the
    process."""
    exercises = job["exercises"]
    reports = [{"exercise": e["name"], "status": None, "detail": "", "cases": []} for e in exercises]
    written: set[int] = set()
    work = ""

    def write(i: int, status: str, detail: str = "") -> None:
        reports[i]["status"], reports[i]["detail"] = status, detail[-500:]
        try:
            fd = os.open(os.path.join(work, f"result-{i}.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         0o600)
            with io.open(fd, "w", encoding="utf-8") as f:
                json.dump(reports[i], f)
        except OSError:
            os._exit(1)
        written.add(i)

    def finish(status: str, detail: str = "") -> None:
        """Every exercise not yet reported gets ``status``; then leave at once (no atexit, no threads)."""
        for i in range(len(exercises)):
            if i not in written:
                write(i, status, detail)
        sys.stdout.flush()
        os._exit(0)

    # 1. walls, guard, allow-listed imports, the cases' inputs: all before any student code
    try:
        work = _confine(job) if job["isolate"] else job["workdir"]
        os.environ.update(HOME=work, MPLCONFIGDIR=os.path.join(work, ".matplotlib"))
        sys.meta_path.insert(0, ImportGuard(job["twins"]))
        _preload(job["code"])
        from course_lib.grading.encoding import encode

        inputs = [_Unpickler(io.BytesIO(base64.b64decode(e["payload"]))).load() for e in exercises]
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
    detail = ""
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
                detail = f"{type(exc).__name__} in code cell {index}: {exc}"[:300]
            except SystemExit as exc:
                finish("crash", f"SystemExit({exc.code!r}) in code cell {index}")
            except BaseException as exc:  # the student's cell failed: later cells may still define the function
                detail = f"{type(exc).__name__} in code cell {index}: {exc}"[:300]
    except BaseException as exc:  # e.g. a KeyboardInterrupt raised from a finally
        finish("crash", f"{type(exc).__name__} while running the notebook's code")

    # 3. each exercise: call the student's function on every case (or read the answer); only encoded data leaves
    for i, (exercise, (adapt, cases)) in enumerate(zip(exercises, inputs)):
        status, why = _evaluate(exercise, namespace, adapt, cases, reports[i]["cases"], encode)
        write(i, status, why or detail)
    finish("ok")


def _evaluate(exercise: dict, namespace: dict, adapt, cases: list, results: list, encode) -> tuple[str, str]:
    """Fill ``results`` for one exercise; its status and detail ("" to keep the code's)."""
    name = exercise["name"]
    if name not in namespace:
        return "missing-function", f"nothing named {name!r} was defined"
    obj = namespace[name]
    if exercise["kind"] == "answer":
        if obj is None or isinstance(obj, dict) and all(v is None for v in obj.values()):
            return "not-implemented", ""  # the answer template, still unfilled
        call = lambda: obj  # noqa: E731
    elif not callable(obj):
        return "missing-function", f"{name!r} is not a function"
    else:
        call = adapt(obj) if adapt is not None else obj
    statuses = set()
    for args, kwargs in cases:
        try:
            results.append({"value": encode(call(*args, **kwargs))})
        except NotImplementedError:
            statuses.add("not-implemented")
            results.append({"error": "NotImplementedError"})
        except MemoryError:
            statuses.add("memory")
            results.append({"error": "MemoryError"})
        except SystemExit as exc:
            del results[:]
            return "crash", f"SystemExit({exc.code!r}) while calling {name}"
        except BaseException as exc:
            results.append({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    if "memory" in statuses:
        return "memory", "MemoryError while calling the function"
    if statuses == {"not-implemented"} and all("error" in c for c in results):
        return "not-implemented", ""
    return "ok", ""


if __name__ == "__main__":
    zygote()
