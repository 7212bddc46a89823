"""Start one sandboxed child per (submission x exercise) and clean up after it.

Limits per run: wall-clock timeout, CPU seconds, address space, file size,
open files and processes; no network and hidden folders (new namespaces)
and an unprivileged uid when the grader runs as root. After every run, also
a normal one, every process of the run is killed: its process group, and, as
root, every process owned by the run's uid (a fork bomb's children that
escaped into new sessions included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID_BASE = 61000  # one uid per parallel slot; no account needs to exist


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    memory_mb: int = 2048
    file_mb: int = 16
    processes: int = 64
    open_files: int = 128


@dataclass
class RunOutcome:
    status: str
    """ok, not-implemented, missing-function, timeout, memory, crash."""
    detail: str
    cases: list
    """Per case: {"value": encoded} or {"error": text}."""
    not_isolated: list


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                pids.append(int(entry))
                            break
            except OSError:
                continue
    return pids


def kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    """Kill the run's process group and, when a uid was used, every process of that uid, until none is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        for _ in range(50):  # a fork bomb may still be forking: repeat until nothing is left
            pids = _pids_of_uid(uid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_exercise(code: list[str], lesson: str, exercise: str, limits: Limits, hide: list[Path],
                 slot: int = 0) -> RunOutcome:
    """Run the notebook's code and one exercise's cases in a fresh sandboxed process."""
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    uid = SANDBOX_UID_BASE + slot if as_root else None
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    result_path = workdir / "result.json"
    log_path = workdir / "output.log"
    if uid is not None:
        os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)
    job = {
        "code": code, "lesson": lesson, "exercise": exercise, "uid": uid,
        "workdir": str(workdir), "result_path": str(result_path),
        "hide": [str(p.resolve()) for p in hide if p.exists()],
        "limits": {"cpu_s": int(limits.timeout_s) + 1, "memory_bytes": limits.memory_mb * 2**20,
                   "file_bytes": limits.file_mb * 2**20, "open_files": limits.open_files,
                   "processes": limits.processes},
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "MPLCONFIGDIR": str(workdir),
        "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1", "COURSE_PROFILE": "ci", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "COURSE_KIT_CACHE", "PYTHONPATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    start = time.monotonic()
    with open(log_path, "wb") as log:
        if uid is not None:
            os.chown(log_path, uid, uid)
        proc = subprocess.Popen([sys.executable, "-m", "course_lib.grading.child"], stdin=subprocess.PIPE,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timed_out = False
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BrokenPipeError:
            pass
        finally:
            kill_all(proc, uid)
    elapsed = time.monotonic() - start
    try:
        report = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        report = None
    tail = log_path.read_bytes()[-400:].decode("utf-8", "replace") if log_path.is_file() else ""
    shutil.rmtree(workdir, ignore_errors=True)
    if timed_out:
        return RunOutcome("timeout", f"stopped after {limits.timeout_s:.0f} s (wall clock)", [], [])
    if not isinstance(report, dict) or report.get("exercise") != exercise or not isinstance(report.get("cases"), list):
        return RunOutcome(_death_status(proc.returncode, tail), _death_detail(proc.returncode, tail, elapsed), [], [])
    return RunOutcome(str(report.get("status")), str(report.get("detail", ""))[:500], report["cases"],
                      list(report.get("not_isolated", [])))


def _death_status(code: int | None, tail: str) -> str:
    if code == -signal.SIGXCPU:
        return "timeout"
    if "MemoryError" in tail or "Cannot allocate memory" in tail:
        return "memory"
    return "crash"


def _death_detail(code: int | None, tail: str, elapsed: float) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        why = {"SIGXCPU": "CPU time limit", "SIGXFSZ": "output or file size limit", "SIGKILL": "killed"}.get(name, name)
        return f"the process died ({why}) after {elapsed:.1f} s without reporting results"
    return f"the process exited with code {code} after {elapsed:.1f} s without reporting results"
