"""Exercise checks: compare a student's function with the library's reference.

Each check runs the student's function on seeded cases, compares with the
reference in this (trusted) process, and prints a short verdict: all passed,
or the first mismatch with its input, the expected and the got value, and a
hint. It never shows the reference's code.

A check cell in an exercise notebook is one line::

    check_top_k_next_tokens(top_k_next_tokens)

Outcomes: passing prints a verdict; a wrong answer raises :class:`CheckFailed`
(so "Run All" stops at the first exercise that needs work); an unfinished
stub's ``NotImplementedError`` propagates after a friendly line. When the
environment variable ``COURSE_KIT_CHECK_LOG`` names a file, each outcome is
also appended to it as a JSON line (``course-kit check`` reads it).
"""

from course_lib.checks.core import Case, CheckFailed, CheckResult, compare, run_check
from course_lib.checks.lesson00 import check_top_k_next_tokens

__all__ = ["Case", "CheckFailed", "CheckResult", "compare", "run_check", "check_top_k_next_tokens"]
