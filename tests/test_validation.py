"""course_lib.utils.validation.check_int: the one integer check every function and config uses."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from conftest import ROOT
from course_lib.utils.validation import check_int


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
