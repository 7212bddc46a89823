"""The course as a learner meets it: JupyterLab from ``course-kit lab``, driven in Debian's Chromium by Playwright.

Each case copies a lesson into a fresh folder, serves it with ``course-kit lab`` (fixed token, 127.0.0.1,
isolated Jupyter config, data, runtime and settings folders), opens it from the file browser, waits until the
kernel is really connected, runs every cell from the Run menu, then clicks a widget and waits for the page to
change: a round trip browser -> kernel -> browser. Screenshots go to ``runs/browser/``.

Needs the ``chromium`` Debian package (``make test`` installs it when it can) and the ``playwright`` Python
package (the ``dev`` extra); the browser is launched from ``executable_path``, nothing is downloaded, and every
request that is not to 127.0.0.1 is aborted and counted. Without Chromium the tests skip, except under CI
(``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT, free_port

SCREENSHOTS = ROOT / "runs" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "course-kit-browser-test"
KERNEL_READY = re.compile(r"Python 3 \(ipykernel\)\s*\|\s*Idle")

if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("tests/test_browser.py: expected Debian's chromium on PATH under CI, found none "
                           "(make test installs it with apt-get when run as root)")
    pytest.skip("Chromium is not installed (apt-get install chromium; make test does it when run as root)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is not installed")


def _write_settings(settings: Path) -> None:
    """User settings: start the default kernel without asking, render every cell, no news or update checks."""
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"autoStartDefaultKernel": True, "windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # and no toast asking


class Lab:
    """``course-kit lab`` serving ``root`` on a free loopback port, stopped by PID (its whole process group)."""

    def __init__(self, root: Path, home: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "COURSE_PROFILE": "ci",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
        })
        _write_settings(home / "settings")
        self.log = (home / "lab.log").open("w")
        course_kit = Path(sys.executable).with_name("course-kit")
        self.proc = subprocess.Popen(
            [str(course_kit), "lab", "--port", str(self.port), "--token", TOKEN, "--root", str(root)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.log_path = home / "lab.log"
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"course-kit lab exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"JupyterLab did not answer within 120 s:\n{self.log_path.read_text()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server, then the kernels it started (same group)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any kernel left behind
        except ProcessLookupError:
            pass
        self.log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-proxy-server"])
        yield chromium
        chromium.close()


def _open_lesson(browser, tmp_path: Path, notebook: str):
    """Serve a fresh copy of ``notebooks/<notebook>``; open it from the file browser; wait for its kernel."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / notebook, root / "notebooks" / notebook)
    lab = Lab(root, tmp_path / "jupyter")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def loopback_only(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab?token={TOKEN}")
    page.locator(".jp-DirListing-itemText", has_text="notebooks").dblclick()
    page.locator(".jp-DirListing-itemText", has_text=notebook).dblclick()
    # "Idle" can show before the kernel session exists: wait for the kernel's name and Idle together.
    sync_api.expect(page.locator("#jp-main-statusbar")).to_contain_text(KERNEL_READY, timeout=120_000)
    return lab, context, page, outside, root


def _run_all(page, timeout_s: float) -> None:
    """Run > Run All Cells; wait until every code cell has an execution count and the kernel is idle."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + timeout_s
    while True:
        texts = [t.strip() for t in prompts.all_inner_texts()]
        if texts and all(re.fullmatch(r"\[\d+\]:", t) for t in texts):
            break
        if time.monotonic() > deadline:
            pending = sum(1 for t in texts if not re.fullmatch(r"\[\d+\]:", t))
            raise AssertionError(f"Run All Cells: {pending} of {len(texts)} code cells unfinished after {timeout_s} s")
        time.sleep(1)
    sync_api.expect(page.locator("#jp-main-statusbar")).to_contain_text(KERNEL_READY, timeout=60_000)


def _assert_no_errors(page) -> None:
    """No cell shows an error or a traceback on stderr (JupyterLab renders both as stderr outputs)."""
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    bad = [t for t in stderr.all_inner_texts() if "Traceback" in t or re.search(r"\b\w+Error\b", t)]
    assert not bad, f"cells show errors on stderr: {[t[:300] for t in bad]}"


def _save_and_check_outputs(page, path: Path) -> None:
    """Save the notebook and read it back: no output of type "error"."""
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while True:
        nb = json.loads(path.read_text())
        counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
        if all(counts):
            break
        assert time.monotonic() < deadline, f"{path.name}: the saved notebook still has unexecuted cells"
        time.sleep(0.5)
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[(e['ename'], e['evalue']) for e in errors]}"


def test_lesson1_runs_and_the_maze_stepper_moves(browser, tmp_path):
    lab, context, page, outside, root = _open_lesson(browser, tmp_path, "01_agent_environment_loop.ipynb")
    try:
        _run_all(page, timeout_s=300)
        _assert_no_errors(page)
        _save_and_check_outputs(page, root / "notebooks" / "01_agent_environment_loop.ipynb")

        right = page.get_by_role("button", name="right", exact=True)
        sync_api.expect(right).to_have_count(1)
        stepper = page.locator(".widget-vbox").filter(has=right).last
        status = stepper.locator(".widget-html").last
        image = stepper.locator("img").first
        right.scroll_into_view_if_needed()
        sync_api.expect(status).to_contain_text("press a button to move")
        before = image.get_attribute("src")
        right.click()  # from the start cell, "right" moves the robot one square (reward -1)
        sync_api.expect(status).to_contain_text("step 1: action right, reward -1, return so far -1")
        sync_api.expect(image).not_to_have_attribute("src", before)
        right.click()
        sync_api.expect(status).to_contain_text("step 2: action right")
        sync_api.expect(status).to_contain_text("return so far -2")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stepper.screenshot(path=str(SCREENSHOTS / "lesson01_maze_stepper.png"))
        page.screenshot(path=str(SCREENSHOTS / "lesson01.png"))
        assert not outside, f"requests left 127.0.0.1: {outside[:5]}"
    finally:
        context.close()
        lab.stop()


def test_lesson10_labelling_widget_saves_a_choice(browser, tmp_path):
    lab, context, page, outside, root = _open_lesson(browser, tmp_path, "10_reward_models.ipynb")
    try:
        _run_all(page, timeout_s=900)
        _assert_no_errors(page)
        count = page.locator(".labeller-count")
        sync_api.expect(count).to_have_count(1)
        count.scroll_into_view_if_needed()
        before = int(re.search(r"saved: (\d+)", count.inner_text()).group(1))
        page.get_by_role("button", name="A is better").click()
        sync_api.expect(count).to_have_text(f"saved: {before + 1}")
        labels = root / "notebooks" / "runs" / "lesson10_my_labels.jsonl"
        lines = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
        assert len(lines) == before + 1 and set(lines[-1]) == {"prompt", "chosen", "rejected"}
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".widget-vbox").filter(has=count).last.screenshot(path=str(SCREENSHOTS / "lesson10_labeller.png"))
        assert not outside, f"requests left 127.0.0.1: {outside[:5]}"
    finally:
        context.close()
        lab.stop()
