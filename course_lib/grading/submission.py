"""Read a submitted notebook, reject what cannot be graded, and pick the code to run."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_BYTES = 5_000_000
CHECK_CALL = re.compile(r"^\s*check_\w+\(.*\)\s*;?\s*$")


class Rejected(ValueError):
    """The notebook cannot be graded; the message is a one-line reason."""


@dataclass
class Submission:
    path: Path
    student: str
    lesson: str
    """Two digits, from the file name: ``04`` for ``04_temporal_difference_learning.ipynb``."""
    code: list[str]
    """The Python source of the code cells to run, check calls removed, in order."""
    source_text: str
    """All code joined, for flags (e.g. importing the reference)."""


def _to_python(source: str) -> str:
    """IPython cell source as plain Python (magics become calls to ``get_ipython()``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, which must be a regular file (not a link, folder, FIFO or device) of at most
    ``max_bytes``; opened without following links and without blocking.

    Raises:
        Rejected: otherwise, saying why.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise Rejected(f"the file cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Rejected("the notebook is not a regular file")
        if st.st_size > max_bytes:
            raise Rejected(f"the file is {st.st_size} bytes, over the {max_bytes}-byte limit")
        return os.read(fd, max_bytes + 1)[:max_bytes + 1]
    finally:
        os.close(fd)


def load_submission(path: Path, student: str, exercise_names: set[str], max_bytes: int = MAX_BYTES) -> Submission:
    """Validate ``path`` and extract the code to run.

    Raises:
        Rejected: over the size limit, not JSON, not a valid notebook, or a syntax
            error (naming the cell and line).
    """
    raw = read_regular_file(path, max_bytes)
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"not JSON: {exc}".splitlines()[0]) from None
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several kinds of validation errors
        raise Rejected(f"not a valid notebook: {str(exc).splitlines()[0][:200]}") from None
    m = re.match(r"(\d\d)_", path.name)
    if not m:
        raise Rejected(f"the file name {path.name!r} does not start with a lesson number like '04_'")
    cells: list[str] = []
    last_answer = -1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        kept = "\n".join(line for line in cell.source.splitlines() if not CHECK_CALL.match(line))
        try:
            python = _to_python(kept)
            tree = ast.parse(python, filename=f"cell {index}")
        except SyntaxError as exc:
            raise Rejected(f"syntax error in code cell {index}, line {exc.lineno}: {exc.msg}") from None
        defined = {n.name for n in ast.walk(tree)
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}  # LoRALinear is a class
        defined |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}  # concept-check answers are assignments
        cells.append(python)
        if defined & exercise_names:
            last_answer = len(cells) - 1
    code = cells[: last_answer + 1]  # cells after the last exercise (function or answer) are demos, not graded
    return Submission(path, student, m.group(1), code, "\n".join(code))
