"""``course-kit doctor``: is this machine ready for the course?"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

REQUIRED = ("numpy", "gymnasium", "torch", "transformers", "gguf", "accelerate", "matplotlib", "ipywidgets", "jupyterlab")


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def diagnose(load: bool = True) -> list[Finding]:
    """Collect findings; ``load`` also loads the default model to prove it works."""
    findings = [Finding("python", sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})",
                        "install Python 3.10 or newer")]
    for dist in REQUIRED:
        v = _version(dist)
        fix = "bash tools/install_torch.sh .venv/bin/python" if dist == "torch" else 'pip install -e ".[dev]"'
        findings.append(Finding(dist, v is not None, v or "not installed", fix))

    from course_lib.utils.profile import get_profile

    try:
        profile = get_profile()
        findings.append(Finding("profile", True, f"{profile.name}: {profile.description}"))
    except ValueError as exc:
        findings.append(Finding("profile", False, str(exc), "export COURSE_PROFILE=cpu (or ci, gpu)"))

    if _version("torch"):
        from course_lib.utils.device import bf16_supported, pick_device, pick_dtype

        try:
            dev = pick_device()
            gpu_bf16 = dev.type != "cpu" and bf16_supported(dev)
            compute = "bf16 autocast in the gpu presets" if gpu_bf16 else "fp32 compute"
            findings.append(Finding("device", True, f"{dev} ({str(pick_dtype(dev)).replace('torch.', '')} weights, "
                                                    f"{compute})"))
        except ValueError as exc:
            findings.append(Finding("device", False, str(exc), "unset COURSE_DEVICE"))

    from course_lib.llm import models

    root = models.cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
        findings.append(Finding("cache", True, f"{root} is writable"))
    except OSError as exc:
        findings.append(Finding("cache", False, f"{root}: {exc}",
                                f"export {models.CACHE_ENV_VAR}=/a/writable/folder"))

    try:
        source = models.resolve_model(None)
        findings.append(Finding("model", True, f"{models.DEFAULT_MODEL} from {source.kind}: {source.location}"))
        if load and source.kind == "cache" and _version("torch") and _version("transformers"):
            start = time.perf_counter()
            try:
                models.load_model(device="cpu")
                findings.append(Finding("model load", True, f"loaded in {time.perf_counter() - start:.1f} s"))
            except Exception as exc:  # report any failure to load as a finding
                findings.append(Finding("model load", False, f"{type(exc).__name__}: {exc}",
                                        "course-kit model prepare --force"))
        elif source.kind == "wheel":
            damaged = models.cached_model_dir().is_dir()
            findings.append(Finding("model load", False,
                                    f"the cache {models.cached_model_dir()} is damaged or incomplete" if damaged else
                                    "not converted yet (the first load takes ~20 s)",
                                    "course-kit model prepare", required=False))
    except models.ModelNotFoundError as exc:
        findings.append(Finding("model", False, str(exc).split(". Fix:")[0], models.FIX_COMMAND))
    findings.append(Finding("offline", True, "HF_HUB_OFFLINE=" + os.environ.get("HF_HUB_OFFLINE", "(unset)"),
                            required=False))
    return findings


def report(findings: list[Finding]) -> tuple[str, int]:
    """Render findings as a table; exit code 1 when a required finding failed."""
    width = max(len(f.name) for f in findings)
    lines = []
    for f in findings:
        mark = "ok  " if f.ok else ("FAIL" if f.required else "warn")
        lines.append(f"{mark} {f.name:<{width}}  {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"     {'':<{width}}  fix: {f.fix}")
    failed = [f for f in findings if f.required and not f.ok]
    lines.append("" if not failed else f"\n{len(failed)} problem(s) found; run the 'fix' commands above.")
    return "\n".join(lines).rstrip() + "\n", 1 if failed else 0
