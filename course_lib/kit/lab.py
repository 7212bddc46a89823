"""``course-kit lab``: JupyterLab on 127.0.0.1 with the course's folders."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def lab_command(root: Path, port: int, token: str, settings_dir: Path | None = None) -> list[str]:
    """The command line that starts JupyterLab bound to loopback, with no news or update checks."""
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if settings_dir is not None:
        cmd.append(f"--LabApp.user_settings_dir={settings_dir}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def start_lab(root: Path, port: int = 8888, token: str | None = None) -> None:
    """Print the URL with its token, then replace this process with JupyterLab (same PID)."""
    token = token or secrets.token_hex(16)
    first = "notebooks/00_welcome.ipynb"
    page = f"lab/tree/{first}" if (root / first).is_file() else "lab"  # open lesson 0 when the course is here
    print(f"JupyterLab for the course: http://127.0.0.1:{port}/{page}?token={token}", flush=True)
    print("Open lessons in notebooks/, exercises in exercises/. Stop with Ctrl-C.", flush=True)
    cmd = lab_command(root, port, token)
    os.execv(cmd[0], cmd)
