"""Committed lesson notebooks are stored executed, small, and say their run time."""

from __future__ import annotations

import json

import nbformat
import pytest

from conftest import ROOT

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_OUTPUT_BYTES = 500_000


def test_there_are_lessons():
    assert LESSONS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_executed_and_small(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    never_run = [c.id for c in code if c.execution_count is None]
    assert not never_run, f"{path.name}: code cells never executed: {never_run} (run `make notebooks`)"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not executed top to bottom in one run: {counts}"
    errors = [c.id for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: stored outputs contain errors in cells {errors}"
    size = sum(len(json.dumps(c.outputs)) for c in code)
    assert size <= MAX_OUTPUT_BYTES, f"{path.name}: outputs are {size} bytes, more than {MAX_OUTPUT_BYTES}"


@pytest.mark.parametrize("path", LESSONS + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.name)
def test_top_cell_states_run_time(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and "Run time:" in first.source
