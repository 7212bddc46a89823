"""Device and dtype choice: CUDA, then Apple MPS, then CPU.

torch is imported inside the functions so that importing ``course_lib.utils``
stays cheap for the torch-free Part I.
"""

from __future__ import annotations

import os
from typing import Any

DEVICE_ENV_VAR = "COURSE_DEVICE"


def pick_device(device: Any = None):
    """Return the ``torch.device`` to use.

    Args:
        device: ``None`` to choose automatically (``COURSE_DEVICE`` if set,
            else cuda, then mps, then cpu), or anything ``torch.device``
            accepts (``"cpu"``, ``"cuda:1"``, a ``torch.device``).

    Raises:
        ValueError: the requested device is not available on this machine.
    """
    import torch

    if device is None:
        device = os.environ.get(DEVICE_ENV_VAR) or None
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device (cpu here), got {str(dev)!r}: CUDA is not available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device: expected an available device (cpu here), got {str(dev)!r}: MPS is not available")
    return dev


def pick_dtype(device: Any = None, dtype: Any = None):
    """Return the floating dtype to use on ``device``.

    bfloat16 on CUDA GPUs that support it, float32 everywhere else (CPU, MPS,
    older GPUs). An explicit ``dtype`` (a ``torch.dtype`` or its name such as
    ``"float16"``) is returned as a ``torch.dtype``.

    Raises:
        ValueError: ``dtype`` names no floating torch dtype.
    """
    import torch

    if dtype is not None:
        if isinstance(dtype, str):
            resolved = getattr(torch, dtype, None)
            if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
                raise ValueError(
                    f"dtype: expected a floating torch dtype name such as 'float32' or 'bfloat16', got {dtype!r}"
                )
            return resolved
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
        return dtype
    dev = pick_device(device)
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
