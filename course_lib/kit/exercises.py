"""Generate ``exercises/`` from ``solutions/`` (``course-kit build-exercises``).

A solution notebook is the single source of its exercise notebook. It uses
the nbgrader conventions, so instructors who use nbgrader can take it as is:

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub
  that raises ``NotImplementedError`` (markdown between the markers becomes
  "YOUR ANSWER HERE");
* lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed;
* outputs and execution counts are cleared; cell ids are kept, so building
  twice gives byte-identical files.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")


class ExerciseSourceError(ValueError):
    """A solution notebook's markers are unbalanced or misplaced."""


def _stub_lines(indent: str, function: str | None) -> list[str]:
    if function is None:  # an answer block outside any function, e.g. a concept check
        return [f"{indent}# YOUR ANSWER HERE",
                f'{indent}raise NotImplementedError("Fill in your answers above, then delete this line.")']
    return [
        f"{indent}# YOUR CODE HERE",
        f'{indent}raise NotImplementedError("Exercise: implement `{function}` (the hint is in the docstring above).")',
    ]


def strip_cell(source: str, cell_type: str, where: str) -> str:
    """Return the student version of one cell's source.

    Raises:
        ExerciseSourceError: unbalanced or nested markers; ``where`` names the cell.
    """
    out: list[str] = []
    state = None  # None, "solution" or "hidden"
    function = None
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        match = _DEF.match(line)
        if match and state is None:
            function = match.group(1)
        if stripped in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if state is not None:
                raise ExerciseSourceError(f"{where}, line {lineno}: {stripped!r} inside an open {state} block")
            state = "solution" if stripped == BEGIN_SOLUTION else "hidden"
            if state == "solution":
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(["YOUR ANSWER HERE"] if cell_type == "markdown" else _stub_lines(indent, function))
            continue
        if stripped in (END_SOLUTION, END_HIDDEN):
            expected = "solution" if stripped == END_SOLUTION else "hidden"
            if state != expected:
                raise ExerciseSourceError(f"{where}, line {lineno}: {stripped!r} without its BEGIN marker")
            state = None
            continue
        if state is None:
            out.append(line)
    if state is not None:
        raise ExerciseSourceError(f"{where}: a {state} block is never closed")
    return "\n".join(out).rstrip("\n")


def build_exercise(solution: Path) -> nbformat.NotebookNode:
    """The exercise notebook generated from one solution notebook."""
    nb = nbformat.read(solution, as_version=4)
    kept = []
    for i, cell in enumerate(nb.cells):
        original = cell.source
        cell.source = strip_cell(original, cell.cell_type, f"{solution.name}, cell {i} (id {cell.get('id')})")
        if original.strip() and not cell.source.strip():
            continue  # a cell of hidden tests only: students get no empty cell in its place
        kept.append(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags", "editable", "deletable")}
    nb.cells = kept
    # Only what does not change when the solution is executed, so the output stays byte-stable.
    language = nb.metadata.get("language_info", {}).get("name", "python")
    nb.metadata = {"kernelspec": nb.metadata.get("kernelspec", {}), "language_info": {"name": language}}
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build_all(solutions_dir: Path, exercises_dir: Path, check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) every ``exercises/NN_*.ipynb``.

    Returns:
        With ``check``: the names of exercise notebooks that are stale,
        missing or have no solution any more. Otherwise the names written.
    """
    solutions = sorted(solutions_dir.glob("[0-9][0-9]_*.ipynb"))
    wanted = {s.name: render(build_exercise(s)) for s in solutions}
    existing = {p.name for p in exercises_dir.glob("*.ipynb")}
    if check:
        stale = [n for n, text in wanted.items() if not (exercises_dir / n).is_file()
                 or (exercises_dir / n).read_text(encoding="utf-8") != text]
        return stale + sorted(existing - wanted.keys())
    exercises_dir.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (exercises_dir / name).write_text(text, encoding="utf-8")
    for orphan in existing - wanted.keys():
        (exercises_dir / orphan).unlink()
    return sorted(wanted)
