"""Device and dtype choice: CUDA, then Apple MPS, then CPU; mixed precision.

Weights are float32 on every device (:func:`pick_dtype`): they are the master copy that AdamW updates.
A GPU computes in bfloat16 by running the forward passes under :func:`autocast` (a training config's
``mixed_precision="bf16"``, which the ``gpu`` presets set), the standard mixed precision: matrix products
in bf16, weights, gradients and optimiser state in fp32, no loss scaling (bf16 has fp32's exponent range).
Why not bf16 weights: bf16 keeps 8 significant bits, so an update smaller than about 1/500 of a weight
rounds away, and AdamW's step of about lr = 1e-5 per weight is lost on every weight larger than about
0.005; on SmolLM2, 10 steps at lr 1e-5 changed 1.8-2.0% of the weights in pure bf16 against 11.9-12.2%
with fp32 master weights (tests/test_mixed_precision.py measures the same on the tiny model).

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

    source = "device"
    if device is None:
        device = os.environ.get(DEVICE_ENV_VAR) or None
        source = DEVICE_ENV_VAR
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{source}: expected a device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}") from exc
    fix = f"; unset {DEVICE_ENV_VAR} or set it to cpu" if source == DEVICE_ENV_VAR else ""
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source}: expected an available device (cpu here), got {str(dev)!r}: "
                         f"CUDA is not available{fix}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{source}: expected an available device (cpu here), got {str(dev)!r}: "
                         f"MPS is not available{fix}")
    return dev


def small_net_device(device: Any = None):
    """The device for a small network (CartPole's MLPs, the tiny test model): ``device`` if given, else
    ``COURSE_DEVICE`` if set, else the CPU, where networks this small run fastest."""
    if device is None and not os.environ.get(DEVICE_ENV_VAR):
        device = "cpu"
    return pick_device(device)


def pick_dtype(device: Any = None, dtype: Any = None):
    """Return the floating dtype a model's weights are loaded in.

    float32 on every device, GPUs included: the weights are the master copy that training updates,
    and a GPU computes in bfloat16 under :func:`autocast` instead (see the module docstring). An
    explicit ``dtype`` (a ``torch.dtype`` or its name such as ``"bfloat16"``, e.g. for inference
    only, in half the memory) is returned as a ``torch.dtype``. ``device`` is accepted for callers
    that pass it; the answer does not depend on it.

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
    return torch.float32


MIXED_PRECISIONS = ("no", "bf16")
"""The values of a training config's ``mixed_precision``: fp32 compute, or bf16 autocast over fp32 weights."""


def bf16_supported(device: Any = None) -> bool:
    """Whether :func:`autocast` can compute in bfloat16 on ``device``: on the CPU, and on CUDA GPUs that
    have bf16 (Ampere and newer); not on MPS or older GPUs, where ``mixed_precision="bf16"`` runs in fp32."""
    import torch

    dev = pick_device(device)
    if dev.type == "cpu":
        return True
    if dev.type != "cuda":
        return False
    try:  # native bf16 only (Ampere and newer): recent torch also counts an emulated one unless told not to
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch: no emulation to exclude
        return torch.cuda.is_bf16_supported()


def check_mixed_precision(value: Any) -> None:
    """Raise ValueError naming ``mixed_precision`` unless ``value`` is one of :data:`MIXED_PRECISIONS`."""
    if not isinstance(value, str) or value not in MIXED_PRECISIONS:
        raise ValueError(f"mixed_precision: expected one of {MIXED_PRECISIONS}, got {value!r}")


def autocast(device: Any, mixed_precision: str = "no"):
    """The context the training loops run their forward passes and losses in.

    ``"no"``: a no-op (everything in the weights' dtype). ``"bf16"``: ``torch.autocast(device.type,
    dtype=torch.bfloat16)``: matrix products and convolutions run in bf16, reductions and the
    weights stay fp32. Backward and the optimiser step run after the ``with`` block, on the fp32
    weights; bf16 needs no gradient scaler. Where bf16 is not available (:func:`bf16_supported`) it
    warns and computes in fp32. Log-probs and values computed inside come out of bf16 matrix
    products: the library casts them to float32 before any loss (``token_logprobs``, the heads).

    Equals ``torch.autocast(device.type, torch.bfloat16) if mixed_precision == "bf16" else nullcontext()``
    on a device with bf16.

    Raises:
        ValueError: ``mixed_precision`` is not one of :data:`MIXED_PRECISIONS`.
    """
    import contextlib
    import warnings

    import torch

    check_mixed_precision(mixed_precision)
    if mixed_precision == "no":
        return contextlib.nullcontext()
    dev = pick_device(device)
    if not bf16_supported(dev):
        warnings.warn(f"mixed_precision: 'bf16' is not available on {dev}; computing in float32", stacklevel=2)
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
