"""`course-kit lab` serves JupyterLab on 127.0.0.1 with a token, and stops by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import ROOT, course_kit, env_with, free_port


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_lab_serves_the_course(tmp_path):
    port, token = free_port(), "test-token-123"
    proc = subprocess.Popen(
        [course_kit(), "lab", "--port", str(port), "--token", token, "--root", str(ROOT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=env_with(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                     JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws")),
    )
    try:
        first_line = proc.stdout.readline()
        assert first_line.strip() == (f"JupyterLab for the course: "
                                      f"http://127.0.0.1:{port}/lab/tree/notebooks/00_welcome.ipynb?token={token}")
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = _get(f"http://127.0.0.1:{port}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        assert status is not None, "JupyterLab did not answer within 90 s"
        assert status[0] == 200 and "started" in json.loads(status[1])
        code, body = _get(f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}")
        assert "00_welcome.ipynb" in [item["name"] for item in json.loads(body)["content"]]
        try:
            _get(f"http://127.0.0.1:{port}/api/status")
            raise AssertionError("the API answered without the token")
        except urllib.error.HTTPError as err:
            assert err.code == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.poll() is not None
