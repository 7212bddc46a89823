"""Run notebooks headless (``course-kit run``) and run an exercise notebook's checks (``course-kit check``)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

import nbformat
import psutil
from nbclient import NotebookClient
from tqdm.auto import tqdm

from course_lib.checks.core import LOG_ENV_VAR, CheckResult


class _ProgressClient(NotebookClient):
    """An nbclient that advances a tqdm bar after every cell, and never misses a cell's reply.

    nbclient waits for a cell's ``execute_reply`` with one long poll of the shell socket (the cell timeout).
    With widgets on screen (``ipywidgets.interact``) that poll can miss the reply's wake-up and wait out the
    whole timeout with the kernel idle (seen here: lesson 0 hanging headless; nbclient issue 312). Polling
    in one-second slices instead finds a reply that is already there.
    """

    bar: tqdm | None = None
    poll_slice_s: float = 1.0

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        get_msg = kc.shell_channel.get_msg

        async def get_msg_in_slices(timeout: float | None = None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = self.poll_slice_s if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return await get_msg(timeout=min(self.poll_slice_s, left))
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

        kc.shell_channel.get_msg = get_msg_in_slices
        return kc

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self.bar is not None:
            self.bar.update(1)
        return result


@dataclass
class RunResult:
    path: Path
    output: Path
    seconds: float
    error: str | None
    peak_mb: float
    """Peak resident memory of the kernel's process tree (see :class:`PeakMemory`)."""


class PeakMemory:
    """The largest summed RSS of this process's descendants (the kernel and what it starts), sampled in a thread.

    Sampled every ``interval`` seconds, so a spike shorter than that can be missed.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def execute(path: Path, *, timeout: int = 1800, allow_errors: bool = False, progress: bool = True,
            env: dict[str, str] | None = None) -> tuple[nbformat.NotebookNode, str | None]:
    """Execute a notebook in its own folder; return it and the first error (or None)."""
    nb = nbformat.read(path, as_version=4)
    client = _ProgressClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.bar = tqdm(total=len(nb.cells), desc=path.name, unit="cell", disable=not progress)
    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})  # the kernel inherits this process's environment
    error = None
    try:
        client.execute()
    except Exception as exc:  # nbclient's CellExecutionError, timeouts, dead kernels
        error = describe_failure(nb, exc)
    finally:
        client.bar.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, error


_ANSI = __import__("re").compile(r"\x1b\[[0-9;]*[A-Za-z]")


def describe_failure(nb: nbformat.NotebookNode, exc: BaseException) -> str:
    """One plain-text line: the failing cell's number (counting from 1, as Jupyter shows cells) and its error."""
    for index, cell in enumerate(nb.cells, start=1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                evalue = _ANSI.sub("", str(out.get("evalue", ""))).strip().splitlines()
                return f"cell {index}: {out.get('ename', 'Error')}: {evalue[0] if evalue else ''}".rstrip(": ")
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else repr(exc)}"


def run_notebooks(paths: list[Path], out_dir: Path | None, *, inplace: bool = False, timeout: int = 1800,
                  env: dict[str, str] | None = None, progress: bool = True) -> list[RunResult]:
    """Execute notebooks one after another, writing executed copies (or in place).

    Each result has the notebook's wall time and its kernel's peak memory; ``env`` is set for the kernels.
    """
    results = []
    bar = tqdm(paths, desc="notebooks", unit="notebook", disable=not progress or len(paths) < 2)
    for path in bar:
        start = time.perf_counter()
        with PeakMemory() as memory:
            nb, error = execute(path, timeout=timeout, progress=progress, env=env)
        seconds = time.perf_counter() - start
        target = path if inplace else (out_dir or Path("runs/executed")) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        results.append(RunResult(path, target, seconds, error, round(memory.peak_bytes / 2**20)))
        bar.set_postfix_str(f"{path.name}: {seconds:.0f} s" + (" FAILED" if error else ""))
    return results


def exercise_names(path: Path) -> list[str]:
    """Names of the exercises a notebook checks, from its ``check_<name>(...)`` calls, in order."""
    import re

    nb = nbformat.read(path, as_version=4)
    names: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name in re.findall(r"^\s*check_(\w+)\(", cell.source, flags=re.M):
                if name not in names:
                    names.append(name)
    return names


def check_notebook(path: Path, timeout: int = 600) -> tuple[list[CheckResult], str | None]:
    """Execute an exercise notebook (errors allowed) and collect each check's outcome.

    Exercises whose check never ran are reported with status ``not-run``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "checks.jsonl"
        log.touch()
        _, error = execute(path, timeout=timeout, allow_errors=True, env={LOG_ENV_VAR: str(log)})
        records = [CheckResult(**json.loads(line)) for line in log.read_text().splitlines() if line.strip()]
    latest = {r.exercise: r for r in records}  # a check re-run later in the notebook wins
    results = list(latest.values())
    for name in exercise_names(path):
        if name not in latest:
            results.append(CheckResult(name, "not-run", f"{name}: its check cell did not run", 0, 0))
    return results, error
