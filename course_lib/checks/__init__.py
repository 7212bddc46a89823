"""Exercise checks: compare a student's function with the library's reference.

Each check runs the student's function on seeded cases, compares with the
reference in this (trusted) process, and prints a short verdict: all passed,
or the first mismatch with its input, the expected and the got value, and a
hint. It never shows the reference's code.

A check cell in an exercise notebook is one line::

    check_top_k_next_tokens(top_k_next_tokens)

Hints come in three tiers: the nudge in the exercise's docstring, a stronger
one printed by ``hint("top_k_next_tokens", 2)`` (each lesson module's
``HINTS``), and the failing case's own hint in the check's message. None of
them contains the answer's code (``tests/test_hint_leaks.py`` measures it).

Outcomes: passing prints a verdict; a wrong answer raises :class:`CheckFailed`
(so "Run All" stops at the first exercise that needs work); an unfinished
stub's ``NotImplementedError`` propagates after a friendly line. When the
environment variable ``COURSE_KIT_CHECK_LOG`` names a file, each outcome is
also appended to it as a JSON line (``course-kit check`` reads it).

The checks live in one module per lesson (``lesson00``, ``lesson01``, ...)
and are imported on first use, so the torch-free Part I exercises never
import torch through lesson 0's checks.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from course_lib.checks.core import Case, CheckFailed, CheckResult, compare, hint, run_check

__all__ = ["Case", "CheckFailed", "CheckResult", "compare", "hint", "run_check"]


def __getattr__(name: str):
    """``from course_lib.checks import check_x`` finds ``check_x`` in whichever lesson module defines it."""
    if name.startswith("check_"):
        # Find the defining module by its text, so only that lesson's imports are paid.
        for path in sorted(Path(__file__).parent.glob("lesson*.py")):
            if f"def {name}(" in path.read_text(encoding="utf-8"):
                return getattr(importlib.import_module(f"{__name__}.{path.stem}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
