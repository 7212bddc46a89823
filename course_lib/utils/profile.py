"""Run profiles: how much compute a notebook, preset or demo may spend.

One environment variable, ``COURSE_PROFILE``, chooses the profile:

=======  ===========================================================  =====================
name     for                                                          typical notebook time
=======  ===========================================================  =====================
``ci``   the test suite: tiny budgets, proves the code runs           seconds
``cpu``  a learner on a laptop CPU (the default without a GPU)        minutes
``gpu``  a learner with a CUDA GPU (the default when one is there)    minutes, bigger runs
=======  ===========================================================  =====================

Every notebook and preset picks its sizes with :func:`by_profile` instead of
writing its own ``if`` chains::

    steps = by_profile(ci=200, cpu=20_000, gpu=100_000)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

ENV_VAR = "COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """A named compute budget."""

    name: str
    """``ci``, ``cpu`` or ``gpu``."""
    description: str
    """One line saying what the profile is for."""


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", "test suite: tiny budgets, seconds per notebook"),
    "cpu": Profile("cpu", "laptop CPU: minutes per notebook"),
    "gpu": Profile("gpu", "CUDA GPU: bigger budgets, minutes per notebook"),
}


def _cuda_available() -> bool:
    # Ask torch only when it is installed and an NVIDIA driver is present (or torch is
    # already imported), so a torch-free Part I lesson on a CPU machine never imports it.
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return False
        if not (os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")):
            return False
    import torch

    return torch.cuda.is_available()


def get_profile() -> Profile:
    """Return the active profile.

    ``COURSE_PROFILE`` wins when set; otherwise ``gpu`` when CUDA is
    available, else ``cpu``.

    Raises:
        ValueError: ``COURSE_PROFILE`` names no known profile.
    """
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        name = "gpu" if _cuda_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"{ENV_VAR} must be one of {sorted(PROFILES)}, got {os.environ.get(ENV_VAR)!r}"
        )
    return PROFILES[name]


def by_profile(*, ci: T, cpu: T, gpu: T | None = None) -> T:
    """Pick the value for the active profile.

    Args:
        ci: value for the test suite.
        cpu: value for a laptop CPU.
        gpu: value for a GPU; defaults to ``cpu`` when not given.
    """
    name = get_profile().name
    if name == "ci":
        return ci
    if name == "gpu" and gpu is not None:
        return gpu
    return cpu
