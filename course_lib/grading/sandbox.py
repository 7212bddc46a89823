"""Start one sandboxed child per run (a submission's notebook with one exercise), bound it, read what it reports,
and leave nothing behind.

A grading run (:class:`Sandbox`, a context manager) owns, for its whole life:

* a **uid block**, taken under a lock (``flock`` on a root-owned file per block), so that two graders, or a
  grader and a test suite, on one machine never share a uid and never kill each other's runs;
* a private, root-owned folder holding each task's working folder, an empty start folder and an empty file (to
  cover hidden files); removed at the end;
* a **zygote** (:class:`Zygote`, :func:`course_lib.grading.child.zygote`) started as ``python -I -B`` in the
  empty folder, which imports the run's heavy modules once and forks each task's child (several times faster
  than starting Python and importing numpy, torch or matplotlib per task).

Each task (one function exercise, or all the answers of one notebook) gets: a fresh child forked from the
zygote; one memory and process budget for all of its processes (:class:`RunBudget`, a cgroup, v2 or v1, where the kernel
offers one); a wall-clock watchdog; and, afterwards, however it ended, every process of the run killed (its
process group, its cgroup and, as root, its uid). Its report is read without following links, from a regular file
only, up to a size cap, and validated against a strict schema; anything else is a ``crash`` with the reason.

Grading untrusted code needs root (namespaces, mounts, the uid drop). Without root, :class:`Sandbox` refuses unless
``unsafe=True``: then only the limits, the no-sockets filter and the import guard apply, and every row is flagged.
"""

from __future__ import annotations

import ast
import base64
import errno
import fcntl
import functools
import importlib.util
import json
import os
import pickle
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from course_lib.grading.child import DENIED, EXIT_CONFINE

STATUSES = ("ok", "not-implemented", "missing-function", "timeout", "memory", "crash", "rejected", "missing",
            "sandbox-error")
"""Every row's status is one of these, whatever the child does."""
CHILD_STATUSES = frozenset({"ok", "not-implemented", "missing-function", "memory", "crash"})
"""The statuses a child may report; anything else in its report makes the row a ``crash``."""
UID_BASE, UID_BLOCK, UID_BLOCKS = 61000, 64, 70
"""Blocks of 64 uids from 61000 (no account needs to exist); a run takes one, under a lock."""
LOCK_DIR = Path("/run/course-kit-grade")


class SandboxUnavailable(RuntimeError):
    """Grading cannot be made safe here (not root, and ``unsafe`` not given); the message says what to do."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    memory_mb: int = 2048
    """One budget for all processes of a run (a cgroup); also each process's address-space limit."""
    file_mb: int = 16
    """Largest file a run may write; also the cap on its report."""
    processes: int = 64
    open_files: int = 128
    tmp_mb: int = 64
    """Size of each private temporary folder (/tmp, /var/tmp, /dev/shm) inside the sandbox."""


@dataclass
class RunOutcome:
    status: str
    """One of :data:`STATUSES`."""
    detail: str
    cases: list
    """Per case: {"value": encoded} or {"error": text}."""


# ---- the uid block -------------------------------------------------------------------------------------------


def pids_of_uids(low: int, high: int) -> list[int]:
    """Every process whose real uid is in ``[low, high)``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if low <= int(line.split()[1]) < high:
                                pids.append(int(entry))
                            break
            except OSError:
                continue
    return pids


def kill_until_gone(find: Callable[[], list[int]]) -> None:
    """SIGKILL every process ``find`` lists, again and again until it lists none (a fork bomb may still be forking),
    for at most about two seconds."""
    for _ in range(100):
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def _kill_uid(uid: int) -> None:
    kill_until_gone(lambda: pids_of_uids(uid, uid + 1))


def _lock_dir() -> Path:
    """A root-owned folder no one else can write to, for the uid blocks' lock files."""
    folder = LOCK_DIR if LOCK_DIR.parent.is_dir() else Path(tempfile.gettempdir()) / "course-kit-grade-locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise SandboxUnavailable(f"{folder} must be a folder owned by root and writable only by root")
    return folder


class UidBlock:
    """A block of :data:`UID_BLOCK` uids held under an exclusive lock until :meth:`release`."""

    def __init__(self):
        folder = _lock_dir()
        for index in range(UID_BLOCKS):
            fd = os.open(folder / f"uids-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd, self.base = fd, UID_BASE + index * UID_BLOCK
            # left over by a grader that died: nobody else can hold this block
            kill_until_gone(lambda: pids_of_uids(self.base, self.base + UID_BLOCK))
            return
        raise SandboxUnavailable(f"all {UID_BLOCKS} uid blocks are in use by other graders")

    def uid(self, slot: int) -> int:
        if not 0 <= slot < UID_BLOCK:
            raise ValueError(f"slot: expected 0 to {UID_BLOCK - 1}, got {slot}")
        return self.base + slot

    def release(self) -> None:
        os.close(self.fd)


# ---- one budget for all processes of a run ---------------------------------------------------------------------


class RunBudget:
    """A cgroup for one run: memory (no swap) and process count for all its processes together, an out-of-memory
    count, and a way to kill everything in it. v2 where our cgroup can delegate memory and pids, else v1's
    memory and pids hierarchies; :meth:`create` returns None where neither is available (then the per-process
    limits are all there is)."""

    def __init__(self, folders: list[Path], version: int):
        self.folders, self.version = folders, version

    @classmethod
    def create(cls, name: str, memory_bytes: int, processes: int) -> RunBudget | None:
        try:
            own = dict(line.rstrip("\n").split(":", 2)[1:] for line in open("/proc/self/cgroup"))
        except (OSError, ValueError):
            return None
        for budget in (cls._v2(own, name), cls._v1(own, name)):
            if budget is None:
                continue
            try:
                budget._set(memory_bytes, processes)
                return budget
            except OSError:
                budget.remove()
        return None

    @classmethod
    def _v2(cls, own: dict, name: str) -> RunBudget | None:
        for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
            parent = mount / own.get("", "/").lstrip("/")
            try:
                enabled = (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if {"memory", "pids"} <= set(enabled):
                try:
                    (parent / name).mkdir()
                except OSError:
                    return None
                return cls([parent / name], 2)
        return None

    @classmethod
    def _v1(cls, own: dict, name: str) -> RunBudget | None:
        folders = []
        for controller in ("memory", "pids"):
            path = next((p for k, p in own.items() if controller in k.split(",")), None)
            parent = Path("/sys/fs/cgroup") / controller / (path or "/").lstrip("/")
            if path is None or not (parent / "cgroup.procs").exists():
                break
            try:
                (parent / name).mkdir()
            except OSError:
                break
            folders.append(parent / name)
        else:
            return cls(folders, 1)
        cls(folders, 1).remove()
        return None

    def _set(self, memory_bytes: int, processes: int) -> None:
        if self.version == 2:
            (self.folders[0] / "memory.max").write_text(str(memory_bytes))
            try:
                (self.folders[0] / "memory.swap.max").write_text("0")
            except OSError:
                pass
            (self.folders[0] / "pids.max").write_text(str(processes))
        else:
            memory, pids = self.folders
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            try:
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            except OSError:
                pass  # no swap accounting
            (pids / "pids.max").write_text(str(processes))

    def add(self, pid: int) -> None:
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        found = set()
        for folder in self.folders:
            try:
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def kill(self) -> None:
        if self.version == 2:
            try:
                (self.folders[0] / "cgroup.kill").write_text("1")
            except OSError:
                pass  # before Linux 5.14: one process at a time
        kill_until_gone(self.pids)

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the run for the memory budget."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.folders[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


# ---- twins: the library functions that are an exercise's answer -----------------------------------------------


def _stub_source(kind: type, name: str, dotted: str) -> str:
    message = f"{dotted} {DENIED}: write the exercise yourself"
    if kind is ast.ClassDef:
        return f"class {name}:\n    def __init__(self, *args, **kwargs):\n        raise RuntimeError({message!r})\n"
    return f"def {name}(*args, **kwargs):\n    raise RuntimeError({message!r})\n"


@functools.lru_cache(maxsize=None)
def strip_twins(twins: tuple[str, ...]) -> tuple[dict[str, dict], list[str]]:
    """For each twin ``module.name``: the module's source with ``name``'s definition replaced by a stub that
    raises, and the files to hide (the module's source and its compiled copies).

    Returns:
        (module -> {"source", "file"}, paths to hide).
    """
    by_module: dict[str, set[str]] = {}
    for dotted in twins:
        module, _, name = dotted.rpartition(".")
        by_module.setdefault(module, set()).add(name)
    stripped, hide = {}, []
    for module, names in by_module.items():
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise ValueError(f"twins: {module} is not a module with a source file")
        origin = Path(spec.origin)
        tree = ast.parse(origin.read_text(encoding="utf-8"))
        found = set()
        for i, node in enumerate(tree.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
                stub = ast.parse(_stub_source(type(node), node.name, f"{module}.{node.name}")).body[0]
                tree.body[i] = ast.copy_location(stub, node)
                found.add(node.name)
        if found != names:
            raise ValueError(f"twins: {module} defines no top-level {sorted(names - found)}")
        stripped[module] = {"source": ast.unparse(ast.fix_missing_locations(tree)), "file": str(origin)}
        hide.append(str(origin))
        hide += [str(p) for p in (origin.parent / "__pycache__").glob(f"{origin.stem}.*.pyc")]
    return stripped, hide


# ---- the run ---------------------------------------------------------------------------------------------------


def _matplotlib_font_cache() -> Path | None:
    """The grader's own matplotlib font list, where matplotlib keeps it (found without importing matplotlib), or
    None (then the zygote builds one for the run)."""
    folder = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matplotlib")
    found = sorted(Path(folder).glob("fontlist-*.json"))
    return found[-1] if found else None


def kit_paths_to_hide() -> list[str]:
    """The checks package, and, when the library runs from a source checkout, everything beside it in the
    checkout except the library and the interpreter's folder (the instructor's solutions, the tests' sample
    submissions, the git history)."""
    import course_lib

    package = Path(course_lib.__file__).resolve().parent
    hide = [str(package / "checks")]
    root = package.parent
    if root.name in ("site-packages", "dist-packages"):
        return hide
    keep = {package, Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent}
    for entry in sorted(root.iterdir()):
        resolved = entry.resolve() if not entry.is_symlink() else entry
        if any(k == resolved or resolved in k.parents for k in keep):
            continue
        hide.append(str(entry))
    return hide


def read_report(path: Path, exercise: str, cap: int) -> dict | str:
    """The child's report, or why it is not one: opened without following a link, a regular file only, at
    most ``cap`` bytes, JSON of exactly the expected shape."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "no result file"
    except OSError as exc:
        return f"the result file could not be opened ({errno.errorcode.get(exc.errno, exc.errno)})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "the result file is not a regular file"
        data = os.read(fd, cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        return f"the result file is over {cap} bytes"
    try:
        report = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "the result file is not valid JSON"
    if not isinstance(report, dict) or set(report) != {"exercise", "status", "detail", "cases"}:
        return "the result file does not have the expected fields"
    if report["exercise"] != exercise or report["status"] not in CHILD_STATUSES:
        return "the result file names another exercise or an unknown status"
    if not isinstance(report["detail"], str) or not isinstance(report["cases"], list):
        return "the result file's detail or cases have the wrong type"
    for case in report["cases"]:
        if not (isinstance(case, dict) and len(case) == 1 and
                ("value" in case or isinstance(case.get("error"), str))):
            return "a case in the result file has the wrong shape"
    return report


class Zygote:
    """The grader's side of :func:`course_lib.grading.child.zygote`: start it, ask it for a child per job, learn
    when each child ends. Thread-safe (several jobs share one zygote)."""

    def __init__(self, command: list[str], env: dict, cwd: Path, preload: list[str], deny: list[str]):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd,
                                     start_new_session=True)
        self.lock = threading.Lock()
        self.forked: queue.Queue = queue.Queue()
        self.ended: dict[int, int] = {}
        self.changed = threading.Condition()
        self.proc.stdin.write((json.dumps({"preload": preload, "deny": deny}) + "\n").encode())
        self.proc.stdin.flush()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            kind, _, rest = line.decode().strip().partition(" ")
            if kind == "pid":
                self.forked.put(int(rest))
            elif kind == "exit":
                pid, code = (int(x) for x in rest.split())
                with self.changed:
                    self.ended[pid] = code
                    self.changed.notify_all()
        self.forked.put(None)  # the zygote is gone: wake whoever waits for a fork
        with self.changed:
            self.changed.notify_all()

    def spawn(self, job: dict) -> int:
        """Fork a child for ``job``; its pid (its process group and session too)."""
        with self.lock:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            pid = self.forked.get(timeout=60)
        if pid is None:
            raise RuntimeError("the grader's zygote process ended")
        return pid

    def wait(self, pid: int, timeout: float) -> int | None:
        """The child's exit code (as ``Popen.returncode``), or None if it still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while pid not in self.ended:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.changed.wait(left)
            return self.ended.pop(pid)

    def close(self) -> None:
        """Stop the zygote (every run it forked has ended and been killed by then)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.kill()
        self.proc.wait()


class Sandbox:
    """One grading run's walls: see the module docstring. Use as a context manager."""

    def __init__(self, hide: list[Path], limits: Limits = Limits(), unsafe: bool = False,
                 preload: Iterable[str] = (), twins: Iterable[str] = ()):
        """``preload``: modules the run's notebooks import; ``twins``: every twin of every exercise the run grades
        (their modules are never preloaded)."""
        self.limits, self.root = limits, os.geteuid() == 0
        if not self.root and not unsafe:
            raise SandboxUnavailable("grading untrusted code needs root (network, file and user isolation); run "
                                     "as root in a disposable VM or container, or pass --unsafe to grade your own "
                                     "trusted code with limits only")
        self.unsafe = not self.root
        self.hide = [str(Path(p).resolve()) for p in hide] + kit_paths_to_hide()
        self.block = UidBlock() if self.root else None
        self.folder = Path(tempfile.mkdtemp(prefix="course-grade-"))
        os.chmod(self.folder, 0o700)
        (self.folder / "start").mkdir(mode=0o555)
        self.empty_file = self.folder / "empty"
        self.empty_file.touch(mode=0o000)
        (self.folder / "mpl").mkdir()
        font_cache = _matplotlib_font_cache()
        if font_cache is not None:  # else the zygote's matplotlib would build it again (seconds)
            shutil.copy(font_cache, self.folder / "mpl" / font_cache.name)
        self.count = 0
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.folder), "MPLCONFIGDIR": str(self.folder / "mpl"),
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_PROFILE": "ci",
               "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "COURSE_KIT_CACHE"):
            if key in os.environ:
                env[key] = os.environ[key]
        import course_lib

        package_root = str(Path(course_lib.__file__).resolve().parents[1])
        command = [sys.executable, "-I", "-B", "-c", f"import sys; sys.path.insert(0, {package_root!r}); "
                   "from course_lib.grading.child import zygote; zygote()"]
        deny = sorted({t.rpartition(".")[0] for t in twins} | {"course_lib.checks", "course_lib.grading.grader"})
        self.zygote = Zygote(command, env, self.folder / "start", sorted(set(preload)), deny)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.zygote.close()
        os.chmod(self.folder / "start", 0o700)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.block is not None:
            self.block.release()
            self.block = None

    def run(self, code: list[str], exercises: list, payloads: list[bytes], slot: int = 0) -> list[RunOutcome]:
        """Run the notebook's ``code`` once in a fresh child, then each exercise (a checks ``Exercise``) on its
        pickled cases; one outcome per exercise. Give one function exercise at a time (each gets a child of its
        own, with its twins denied), or several answers (they are only read)."""
        if len(exercises) > 1 and any(e.kind != "answer" for e in exercises):
            raise ValueError("exercises: expected one function exercise, or answers only")
        self.count += 1
        uid = self.block.uid(slot) if self.block is not None else None
        workdir = self.folder / f"task-{self.count}"
        workdir.mkdir(mode=0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        log_path = workdir / "output.log"
        log_path.touch(mode=0o600)  # root's: the child writes to it through the descriptor it opened before the drop
        twins, twin_files = strip_twins(tuple(t for e in exercises for t in e.twins))
        lim = self.limits
        budget = RunBudget.create(f"{self.folder.name}-{self.count}", lim.memory_mb * 2**20, lim.processes)
        job = {
            "code": code, "twins": twins, "isolate": self.root, "uid": uid,
            "exercises": [{"name": e.name, "kind": e.kind, "payload": base64.b64encode(p).decode("ascii")}
                          for e, p in zip(exercises, payloads)],
            "workdir": str(workdir), "hide": self.hide + twin_files, "empty_file": str(self.empty_file),
            "tmp_mb": lim.tmp_mb, "log": str(log_path),
            "cgroup_procs": [str(f / "cgroup.procs") for f in budget.folders] if budget is not None else [],
            "limits": {"cpu_s": int(lim.timeout_s) + 1, "memory_bytes": lim.memory_mb * 2**20,
                       "file_bytes": lim.file_mb * 2**20, "open_files": lim.open_files, "processes": lim.processes},
        }
        start = time.monotonic()
        try:
            pid = self.zygote.spawn(job)
        except Exception as exc:
            if budget is not None:
                budget.remove()
            shutil.rmtree(workdir, ignore_errors=True)
            return [RunOutcome("sandbox-error", f"the sandbox could not start a run: {exc}", [])] * len(exercises)
        code = self.zygote.wait(pid, lim.timeout_s)  # the watchdog
        timed_out = code is None
        self._kill(pid, uid, budget)
        if code is None:
            code = self.zygote.wait(pid, 5)
        elapsed = time.monotonic() - start
        with open(log_path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - 400))
            tail = log.read(400).decode("utf-8", "replace")
        out_of_memory = budget is not None and budget.out_of_memory()
        if budget is not None:
            budget.remove()
        reports = [read_report(workdir / f"result-{i}.json", e.name, lim.file_mb * 2**20)
                   for i, e in enumerate(exercises)]
        shutil.rmtree(workdir, ignore_errors=True)
        return [self._outcome(report, code, tail, elapsed, timed_out, out_of_memory) for report in reports]

    def _outcome(self, report: dict | str, code: int | None, tail: str, elapsed: float, timed_out: bool,
                 out_of_memory: bool) -> RunOutcome:
        lim = self.limits
        if code == EXIT_CONFINE:
            return RunOutcome("sandbox-error", "the sandbox could not be set up: " + tail.strip()[-300:], [])
        if out_of_memory:  # before the timeout: a run whose children were killed for memory may then hang
            return RunOutcome("memory", f"the run's processes went over {lim.memory_mb} MB together", [])
        if timed_out:
            return RunOutcome("timeout", f"stopped after {lim.timeout_s:.0f} s (wall clock)", [])
        if isinstance(report, str):
            return RunOutcome(_death_status(code, tail), _death_detail(code, elapsed) + f" ({report})", [])
        return RunOutcome(report["status"], report["detail"][:500], report["cases"])

    def _kill(self, pid: int, uid: int | None, budget: RunBudget | None) -> None:
        """Kill every process of the run: its process group (the child is a session leader), its cgroup and its
        uid, until none is left."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if budget is not None:
            budget.kill()
        if uid is not None:
            _kill_uid(uid)

    @staticmethod
    def pickled_cases(exercise, cases: list) -> bytes:
        """The payload a child unpickles: the exercise's adapter and every case's inputs."""
        return pickle.dumps((exercise.adapt if exercise.kind == "function" else None,
                             [(c.args, c.kwargs) for c in cases]))


def _death_status(code: int | None, tail: str) -> str:
    if code == -signal.SIGXCPU:
        return "timeout"
    if "MemoryError" in tail or "Cannot allocate memory" in tail:
        return "memory"
    return "crash"


def _death_detail(code: int | None, elapsed: float) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        why = {"SIGXCPU": "CPU time limit", "SIGXFSZ": "output or file size limit", "SIGKILL": "killed"}.get(name, name)
        return f"the process died ({why}) after {elapsed:.1f} s without reporting results"
    return f"the process exited with code {code} after {elapsed:.1f} s without reporting results"
