"""The library's layering rule and its light top-level import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import BIN, ROOT


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": str(BIN)})


def test_layers_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def _copy_project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "course_lib", tmp_path / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_upward_import_breaks_the_contract(tmp_path):
    root = _copy_project(tmp_path)
    with open(root / "course_lib" / "utils" / "seeding.py", "a") as f:
        f.write("\nimport course_lib.llm.generation  # upward: utils must not import llm\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "course_lib.utils.seeding -> course_lib.llm.generation" in result.stdout


def test_sideways_import_breaks_the_contract(tmp_path):
    root = _copy_project(tmp_path)
    (root / "course_lib" / "tabular" / "sideways.py").write_text("import course_lib.llm.models\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "course_lib.tabular.sideways -> course_lib.llm.models" in result.stdout


def test_import_course_lib_is_light():
    code = (
        "import sys, course_lib, course_lib.utils;"
        "heavy = sorted(m for m in ('torch', 'transformers', 'matplotlib', 'gymnasium') if m in sys.modules);"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_part_one_checks_do_not_import_torch():
    code = ("import sys; from course_lib.checks import check_q_learning_target, CheckFailed;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
