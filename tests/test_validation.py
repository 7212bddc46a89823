"""course_lib.utils.validation: the one integer check (check_int) and the one float check (check_float) every
function and config uses."""

from __future__ import annotations

import ast
import math
import re

import numpy as np
import pytest

from conftest import ROOT
from course_lib.utils.validation import check_float, check_int


def test_integers_pass_as_ints():
    assert check_int("steps", 3, 1) == 3
    value = check_int("steps", np.int64(5), 0)
    assert value == 5 and type(value) is int


@pytest.mark.parametrize("bad", [0, -1, True, False, 2.0, "3", None, np.float64(2.0), np.bool_(True)])
def test_everything_else_is_named(bad):
    with pytest.raises(ValueError, match=rf"^steps: expected an int >= 1, got {re.escape(repr(bad))}$"):
        check_int("steps", bad, 1)


def test_no_module_writes_the_integer_check_inline():
    """The message "expected an int >= N" is check_int's: a module that raises it itself has a second copy."""
    inline = []
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and re.search(r"expected an int >= \{?[\w.]+\}?, got \{", ast.unparse(node)):
                inline.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [p for p in inline if not p.startswith("course_lib/utils/validation.py")] == []


@pytest.mark.parametrize("value, interval", [(0.5, "(0, 1)"), (1, "(0, 1]"), (0, "[0, 1]"), (np.float32(0.2), "(0, 1)"),
                                             (math.inf, "> 0"), (0.0, ">= 0"), (2.0, "> 1"), (1e9, "[0, inf)")])
def test_reals_in_the_interval_pass_as_floats(value, interval):
    checked = check_float("x", value, interval)
    assert checked == float(value) and type(checked) is float


@pytest.mark.parametrize("value, interval, expected", [
    (0.0, "(0, 1)", "a float in (0, 1)"), (1.0, "(0, 1)", "a float in (0, 1)"), (1.5, "(0, 1]", "a float in (0, 1]"),
    (-0.1, "[0, 1]", "a float in [0, 1]"), (0, "> 0", "a float > 0"), (-1e-9, ">= 0", "a float >= 0"),
    (1.0, "> 1", "a float > 1"), (math.inf, "[0, inf)", "a float in [0, inf)"), (math.nan, "> 0", "a float > 0"),
    (True, "[0, 1]", "a float in [0, 1]"), ("0.5", "(0, 1)", "a float in (0, 1)"), (None, "> 0", "a float > 0"),
    (np.bool_(True), "[0, 1]", "a float in [0, 1]"), ([0.5], "(0, 1)", "a float in (0, 1)")])
def test_everything_else_is_named_with_the_interval(value, interval, expected):
    with pytest.raises(ValueError, match=rf"^lr: expected {re.escape(expected)}, got {re.escape(repr(value))}$"):
        check_float("lr", value, interval)


def test_none_switches_off_and_a_note_is_kept():
    assert check_float("target_kl", None, "> 0", none_ok=True) is None
    with pytest.raises(ValueError, match=r"^target_kl: expected a float > 0 or None, got 0$"):
        check_float("target_kl", 0, "> 0", none_ok=True)
    with pytest.raises(ValueError, match=r"^max_grad_norm: expected a float > 0 \(math.inf: no clipping\), got -1$"):
        check_float("max_grad_norm", -1, "> 0", note="math.inf: no clipping")


def test_a_malformed_interval_is_refused():
    with pytest.raises(ValueError, match="^interval: expected"):
        check_float("x", 0.5, "0 < x < 1")


def test_no_module_writes_the_float_check_inline():
    """"a float in (a, b)" or "a float > a" is check_float's wording: a module that spells it, in a raise or in a
    table of checks, has a second copy of the check. The checks package is left out: its hints quote the message a
    student's own function raises."""
    inline = []
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel == "course_lib/utils/validation.py" or rel.startswith("course_lib/checks/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.search(r"a float (in [(\[]|>)", node.value):
                inline.append(f"{rel}:{node.lineno}")
    assert inline == []
