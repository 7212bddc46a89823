"""How much of each exercise's answer a learner can read before writing it (``python -m course_lib.kit.overlap``).

A hint that spells out the code turns an exercise into transcription. This
module measures it: for each solution block inside a function of
``solutions/NN_*.ipynb``, the share of the block's token 5-grams that also
occur in what the learner sees first:

* ``exercise``: the generated exercise notebook (markdown, code, docstrings),
  together with the exercise's stronger hints (``HINTS`` of its check module,
  shown by ``hint(name, 2)``) and its cases' hints (the mismatch messages);
* ``lesson``: the lesson notebook ``notebooks/NN_*.ipynb``, its sources and its
  text outputs (a printed library source counts).

Renaming variables does not hide a copy: in the answer, the function's
parameters and every name the block binds become one placeholder, and so does
every name of the other text that the answer does not use as a library or
builtin name. Comments and docstrings of the answer are dropped and its string
literals are one token, so the measure counts code, not prose.

5-grams that any Python code has (``V = V . shape [``, ``( V , V ) ]``) say
nothing about this answer: those that also occur in a fixed background of
general code (a few standard-library modules, numpy's ``lib`` and torch's
``nn.functional`` and ``distributions``) are left out. An answer too short to
keep :data:`MIN_SPECIFIC` of its 5-grams is measured on all of them.
"""

from __future__ import annotations

import ast
import functools
import importlib
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.kit.exercises import BEGIN_SOLUTION, END_SOLUTION, build_exercise

N = 5
LIMIT = 0.25
"""The largest share of an answer's 5-grams that may appear in its exercise notebook or its lesson."""
MIN_SPECIFIC = 6
"""Fewer 5-grams than this left after the background: measure the answer on all of its 5-grams."""

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:e-?\d+)?|\*\*|//|==|!=|<=|>=|->|\+=|-=|\*=|/=|[^\sA-Za-z0-9_]")
_PLACEHOLDER = "V"


@dataclass
class Block:
    """One answer: the solution code of ``function`` in a solution notebook."""

    notebook: str
    function: str
    code: str
    params: tuple[str, ...]


@dataclass
class Overlap:
    notebook: str
    function: str
    ngrams: int
    exercise: float
    lesson: float

    def worst(self) -> float:
        return max(self.exercise, self.lesson)


def solution_blocks(solution: Path) -> list[Block]:
    """The answer blocks of a solution notebook that sit inside a function (concept-check answers are not code)."""
    nb = nbformat.read(solution, as_version=4)
    blocks = []
    for cell in nb.cells:
        if cell.cell_type != "code" or BEGIN_SOLUTION not in cell.source:
            continue
        clean = "\n".join(line for line in cell.source.splitlines()
                          if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
        try:
            tree = ast.parse(clean)
        except SyntaxError:
            continue
        lines = cell.source.splitlines()
        inside: list[tuple[int, int]] = []
        start = None
        for i, line in enumerate(lines):
            if line.strip() == BEGIN_SOLUTION:
                start = i
            elif line.strip() == END_SOLUTION and start is not None:
                inside.append((start, i))
                start = None
        for begin, end in inside:
            owner = _enclosing_function(lines, begin)
            if owner is None:
                continue
            method = owner.split(".")[-1]
            fn = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == method), None)
            params = tuple(a.arg for a in fn.args.args + fn.args.kwonlyargs) if fn is not None else ()
            blocks.append(Block(solution.name, owner, "\n".join(lines[begin + 1:end]), params))
    return blocks


def _enclosing_function(lines: list[str], index: int) -> str | None:
    """The function around line ``index``; for a method, ``Class.method`` (the class is the exercise)."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    name = None
    for line in reversed(lines[:index]):
        m = re.match(r"^(\s*)(def|class)\s+(\w+)\s*[(:]", line)
        if m and len(m.group(1)) < indent:
            if m.group(2) == "class":
                return f"{m.group(3)}.{name}" if name else None
            if name is not None:
                return name
            name, indent = m.group(3), len(m.group(1))
            if indent == 0:
                return name
    return name


def _bound_names(code: str) -> set[str]:
    """Names the block assigns, loops over or defines (dedented so that it parses)."""
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args
            names.update(a.arg for a in args.args + args.kwonlyargs)
            if isinstance(node, ast.FunctionDef):
                names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.comprehension):
            for n in ast.walk(node.target):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def answer_tokens(block: Block) -> tuple[list[str], set[str]]:
    """The block's tokens with locals replaced, and the vocabulary of names it keeps (library and builtin names)."""
    local = set(block.params) | _bound_names(block.code)
    tokens: list[str] = []
    source = io.StringIO(_dedent(block.code) + "\n")
    previous = ""
    try:
        for tok in tokenize.generate_tokens(source.readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.STRING or tok.type in _FSTRING_TYPES:
                if tokens and tokens[-1] == "STR":
                    continue
                tokens.append("STR")
            elif tok.type == tokenize.NAME:
                tokens.append(_PLACEHOLDER if tok.string in local and previous != "." else tok.string)
            else:
                tokens.extend(_TOKEN.findall(tok.string))
            previous = tok.string
    except (tokenize.TokenError, IndentationError):
        tokens = [_PLACEHOLDER if t in local else t for t in _TOKEN.findall(block.code)]
    vocabulary = {t for t in tokens if t.isidentifier() and t not in (_PLACEHOLDER, "STR")}
    return tokens, vocabulary


_FSTRING_TYPES = {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, n)}


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


def text_tokens(text: str, vocabulary: set[str]) -> list[str]:
    """Tokens of any text (prose, code, outputs); names outside ``vocabulary`` become the placeholder."""
    return [t if not t[0].isalpha() and t[0] != "_" or t in vocabulary else _PLACEHOLDER for t in _TOKEN.findall(text)]


def ngrams(tokens: list[str], n: int = N) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


@functools.lru_cache(maxsize=1)
def _background_tokens() -> tuple[str, ...]:
    import argparse
    import collections
    import random
    import statistics
    import textwrap

    import numpy

    files = [Path(m.__file__) for m in (argparse, collections, random, statistics, textwrap)]
    files += sorted((Path(numpy.__file__).parent / "lib").glob("_*.py"))[:12]
    try:
        import torch

        base = Path(torch.__file__).parent
        files += [base / "nn" / "functional.py"] + [base / "distributions" / f"{n}.py" for n in
                                                     ("normal", "categorical", "kl", "utils", "bernoulli", "beta")]
    except ImportError:  # the Part I environment: the background is smaller, the measure stricter
        pass
    return tuple(_TOKEN.findall("\n".join(f.read_text(encoding="utf-8") for f in files if f.is_file())))


def specific_ngrams(block: Block) -> tuple[set[tuple[str, ...]], set[str]]:
    """The answer's 5-grams that general code does not have (all of them when too few remain), and its vocabulary."""
    tokens, vocabulary = answer_tokens(block)
    grams = ngrams(tokens)
    background = ngrams([t if not (t[0].isalpha() or t[0] == "_") or t in vocabulary else _PLACEHOLDER
                         for t in _background_tokens()])
    specific = grams - background
    return (specific if len(specific) >= MIN_SPECIFIC else grams), vocabulary


def share(block: Block, text: str) -> tuple[int, float]:
    """(number of the answer's 5-grams measured, the share of them that ``text`` contains)."""
    grams, vocabulary = specific_ngrams(block)
    if not grams:
        return 0, 0.0
    return len(grams), len(grams & ngrams(text_tokens(text, vocabulary))) / len(grams)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """Every cell's source and every text output of a notebook, one string."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
            for key in ("text/plain", "text/markdown", "text/html"):
                data = out.get("data", {}).get(key)
                if data:
                    parts.append(data if isinstance(data, str) else "".join(data))
    return "\n".join(parts)


def hints_text(lesson: str, function: str) -> str:
    """The stronger hints and the cases' hints that a learner can reveal for ``function``."""
    try:
        module = importlib.import_module(f"course_lib.checks.lesson{lesson}")
    except ModuleNotFoundError:
        return ""
    parts = [getattr(module, "HINTS", {}).get(function, "")]
    exercise = getattr(module, "EXERCISES", {}).get(function)
    if exercise is not None and exercise.kind == "function":
        parts.extend(c.hint for c in exercise.cases())
    return "\n".join(parts)


def measure(root: Path) -> list[Overlap]:
    """The overlap of every answer block of ``root/solutions`` with its exercise notebook and its lesson."""
    results = []
    for solution in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        number = solution.name[:2]
        exercise_text = notebook_text(build_exercise(solution))
        lessons = sorted((root / "notebooks").glob(f"{number}_*.ipynb"))
        lesson_text = notebook_text(nbformat.read(lessons[0], as_version=4)) if lessons else ""
        for block in solution_blocks(solution):
            extra = hints_text(number, block.function.split(".")[0])
            count, in_exercise = share(block, exercise_text + "\n" + extra)
            _, in_lesson = share(block, lesson_text)
            results.append(Overlap(solution.name, block.function, count, in_exercise, in_lesson))
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib.kit.overlap", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the course's root folder (default: the current one)")
    args = parser.parse_args(argv)
    rows = measure(Path(args.root))
    print(f"{'notebook':40} {'function':28} {'5-grams':>7} {'exercise':>8} {'lesson':>7}")
    for r in rows:
        flag = "  <- over %.2f" % LIMIT if r.worst() > LIMIT else ""
        print(f"{r.notebook:40} {r.function:28} {r.ngrams:7d} {r.exercise:8.2f} {r.lesson:7.2f}{flag}")
    return 1 if any(r.worst() > LIMIT for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
