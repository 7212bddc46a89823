"""Checks for lesson 16's exercises: the LoRA weight update, LoRA's parameter count, AdamW's memory.

Three pieces of arithmetic behind "scaling up":

* ``lora_delta``: the update a LoRA adapter adds to a frozen weight, (alpha / r) B A (Hu et al. 2021, Eq. 3 with
  the ``alpha / r`` scaling of their Section 4.1), what :func:`course_lib.llm.models.merge_lora` folds into W;
* ``lora_param_count``: how many parameters rank-r adapters on a list of linear layers train, r (d_in + d_out)
  per layer, against d_in d_out for the layer itself;
* ``adam_memory_bytes``: the bytes of the weights, the gradients and AdamW's two moment estimates, the reason
  full fine-tuning needs about four times the model's size and LoRA little more than the model.

Shapes follow ``torch.nn.Linear``: a weight W is (d_out, d_in); LoRA's A is (r, d_in) and B is (d_out, r).
"""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, CheckResult, Exercise
from course_lib.checks.tensors import cloned, generator

# ---- references ----------------------------------------------------------------------------


def lora_delta(A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """Reference: the weight update of a LoRA adapter, (alpha / r) B A, shape (d_out, d_in).

    Args:
        A: (r, d_in), the down-projection. B: (d_out, r), the up-projection. alpha: the scale (> 0). r: the rank.
    """
    return (alpha / r) * (B @ A)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)


def lora_param_count(shapes: list[tuple[int, int]], r: int) -> int:
    """Reference: the trainable parameters of rank-``r`` LoRA adapters on linear layers of weight shapes
    ``(d_out, d_in)``: A has r d_in entries and B d_out r, so r (d_in + d_out) per layer, summed over the list."""
    return int(sum(r * (d_in + d_out) for d_out, d_in in shapes))


def adam_memory_bytes(n_params: int, n_trainable: int, bytes_per_param: int) -> tuple[int, int, int, int]:
    """Reference: ``(weights, gradients, adam_moments, total)`` in bytes when training with AdamW.

    Every parameter is stored (``n_params``); only the trained ones (``n_trainable``) get a gradient and AdamW's
    two moment estimates (m and v), each the size of the parameter. One dtype of ``bytes_per_param`` bytes for
    all of them (4 for float32, 2 for bfloat16). Activations are not counted.
    """
    weights = n_params * bytes_per_param
    gradients = n_trainable * bytes_per_param
    moments = 2 * n_trainable * bytes_per_param
    return weights, gradients, moments, weights + gradients + moments


# ---- seeded inputs -------------------------------------------------------------------------


def _adapter(seed: int, d_out: int, d_in: int, r: int, alpha: float, zero_b: bool = False) -> tuple:
    """``(A, B, alpha, r)``: A as peft initialises it (uniform, about 1 / sqrt(d_in)), B as training leaves it."""
    g = generator(seed)
    A = (torch.rand(r, d_in, generator=g) * 2 - 1) / d_in ** 0.5  # (r, d_in)
    B = torch.zeros(d_out, r) if zero_b else 0.1 * torch.randn(d_out, r, generator=g)  # (d_out, r)
    return A, B, alpha, r


SMOLLM2_LAYER = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
"""The (d_out, d_in) of the 7 projections of one SmolLM2-135M decoder layer: q, k, v, o (attention, 9 query heads
and 3 key-value heads of 64), gate, up, down (the MLP, width 1536)."""

# ---- lora_delta ----------------------------------------------------------------------------

_DELTA_RULE = "return (alpha / r) * (B @ A): B is (d_out, r), A is (r, d_in), the result (d_out, d_in)."


def lora_delta_cases() -> list[Case]:
    """Seeded cases for ``lora_delta``."""
    return [
        Case(_adapter(60, 4, 4, 1, 2.0), {}, "a rank-1 adapter on a 4 x 4 weight",
             "the update is the matrix product B @ A (an outer product when r = 1), times alpha / r; with "
             "alpha = 2 and r = 1 that is 2 * (B @ A)."),
        Case(_adapter(61, 6, 3, 2, 4.0, zero_b=True), {}, "B is zero, as peft initialises it",
             "with B = 0 the update is a (d_out, d_in) matrix of zeros: the adapted model starts as the base model. "
             "Return a tensor of W's shape (d_out, d_in), here (6, 3)."),
        Case(_adapter(63, 5, 7, 3, 16.0), {}, "alpha not a multiple of r: 16 / 3",
             "the scale is alpha / r as a true division (16 / 3 = 5.33), not alpha // r (5), not alpha alone and "
             "not alpha / sqrt(r) (rsLoRA's variant, not the one peft uses by default)."),
        Case(_adapter(62, 6, 3, 2, 4.0), {}, "a non-square weight: d_out 6, d_in 3, r 2",
             "W is (d_out, d_in) = (6, 3), as in torch.nn.Linear; B (6, 2) @ A (2, 3) has that shape. A.T @ B.T "
             "is the transpose, (3, 6)."),
        Case(_adapter(64, 8, 12, 4, 8.0), {}, "rank 4 with alpha = 2r, the course's setting", _DELTA_RULE),
    ]


def lora_delta_hidden_cases() -> list[Case]:
    """Grader-only cases: other shapes and scales than the notebook's."""
    return [
        Case(_adapter(160, 3, 9, 2, 1.0), {}, "alpha below r: the update is scaled down", _DELTA_RULE),
        Case(_adapter(161, 10, 4, 4, 32.0), {}, "a tall weight, alpha 32, r 4", _DELTA_RULE),
        Case(_adapter(162, 7, 7, 5, 10.0), {}, "a square weight of rank-5 adapters", _DELTA_RULE),
    ]


def check_lora_delta(fn) -> CheckResult:
    """Check a student's ``lora_delta(A, B, alpha, r) -> (d_out, d_in)``."""
    __tracebackhide__ = True
    return EXERCISES["lora_delta"].check(fn)


# ---- lora_param_count ----------------------------------------------------------------------

_COUNT_RULE = ("for every (d_out, d_in) in the list, A has r * d_in parameters and B has d_out * r; return the sum "
               "of r * (d_in + d_out) over all layers, as an int.")


def lora_param_count_cases() -> list[Case]:
    """Cases for ``lora_param_count`` (plain numbers: nothing random)."""
    return [
        Case(([(64, 64)], 4), {}, "one square 64 x 64 layer, rank 4",
             "the adapter of one layer is A (r, d_in) and B (d_out, r): r * d_in + d_out * r = 4 * 64 + 64 * 4 = "
             "512 parameters, not d_out * d_in (that is the frozen W) and not r * d_in alone (B counts too)."),
        Case(([(192, 576)], 8), {}, "one non-square layer: SmolLM2's k_proj, (d_out, d_in) = (192, 576), rank 8",
             "the shape is (d_out, d_in) as torch.nn.Linear stores it: A is (8, 576), B is (192, 8): "
             "8 * 576 + 192 * 8 = 6144."),
        Case(([(576, 576), (576, 576), (1536, 576)], 2), {}, "three layers, two of them with the same shape",
             "sum over every layer in the list, repeated shapes included: each layer has its own adapter."),
        Case((SMOLLM2_LAYER, 8), {}, "the 7 projections of one SmolLM2 decoder layer, rank 8", _COUNT_RULE),
        Case((SMOLLM2_LAYER * 30, 8), {}, "all 30 layers of SmolLM2-135M, rank 8", _COUNT_RULE),
    ]


def lora_param_count_hidden_cases() -> list[Case]:
    """Grader-only cases: other layers and ranks than the notebook's."""
    return [
        Case(([(4096, 4096), (1024, 4096), (14336, 4096)], 16), {}, "three layers of an 8 B model, rank 16",
             _COUNT_RULE),
        Case((SMOLLM2_LAYER * 30, 1), {}, "all of SmolLM2's projections, rank 1", _COUNT_RULE),
        Case(([(10, 3)], 5), {}, "a rank larger than d_in", _COUNT_RULE),
    ]


def check_lora_param_count(fn) -> CheckResult:
    """Check a student's ``lora_param_count(shapes, r) -> int``."""
    __tracebackhide__ = True
    return EXERCISES["lora_param_count"].check(fn)


# ---- adam_memory_bytes ---------------------------------------------------------------------

_MEMORY_RULE = ("weights = n_params * bytes_per_param; gradients = n_trainable * bytes_per_param; adam_moments = "
                "2 * n_trainable * bytes_per_param; return (weights, gradients, adam_moments, total) with total their "
                "sum.")


def adam_memory_bytes_cases() -> list[Case]:
    """Cases for ``adam_memory_bytes`` (plain numbers)."""
    return [
        Case((1_000, 1_000, 4), {}, "every parameter trained, float32",
             "in full fine-tuning every parameter has a weight, a gradient and AdamW's two moments (m and v): "
             "4 copies of 4,000 bytes. Return a tuple of 4 ints: (weights, gradients, adam_moments, total)."),
        Case((1_000, 100, 4), {}, "a tenth of the parameters trained, float32",
             "only the trained parameters get a gradient and the moments; the frozen ones still need their "
             "weights: weights = n_params * 4, gradients = n_trainable * 4."),
        Case((1_000, 100, 2), {}, "the same in bfloat16: 2 bytes per number",
             "every number takes bytes_per_param bytes, so multiply each count by it: these are bytes, not "
             "parameters."),
        Case((134_515_008, 2_442_240, 4), {}, "SmolLM2-135M with rank-8 LoRA adapters, float32",
             "AdamW keeps two moments per trained parameter (the mean of the gradient and of its square): "
             "adam_moments = 2 * n_trainable * bytes_per_param."),
        Case((134_515_008, 134_515_008, 2), {}, "SmolLM2-135M, every parameter, bfloat16", _MEMORY_RULE),
    ]


def adam_memory_bytes_hidden_cases() -> list[Case]:
    """Grader-only cases: other sizes than the notebook's."""
    return [
        Case((7_000_000_000, 7_000_000_000, 2), {}, "a 7 B model, every parameter, bfloat16", _MEMORY_RULE),
        Case((7_000_000_000, 20_000_000, 2), {}, "a 7 B model with LoRA adapters, bfloat16", _MEMORY_RULE),
        Case((500, 0, 4), {}, "nothing trained: inference", _MEMORY_RULE),
    ]


def check_adam_memory_bytes(fn) -> CheckResult:
    """Check a student's ``adam_memory_bytes(n_params, n_trainable, bytes_per_param) -> (weights, gradients,
    adam_moments, total)``."""
    __tracebackhide__ = True
    return EXERCISES["adam_memory_bytes"].check(fn)


EXERCISES = {
    "lora_delta": Exercise("lora_delta", lora_delta, lora_delta_cases, lora_delta_hidden_cases, adapt=cloned,
                           rtol=1e-4, atol=1e-6),
    "lora_param_count": Exercise("lora_param_count", lora_param_count, lora_param_count_cases,
                                 lora_param_count_hidden_cases, rtol=0, atol=0),
    "adam_memory_bytes": Exercise("adam_memory_bytes", adam_memory_bytes, adam_memory_bytes_cases,
                                  adam_memory_bytes_hidden_cases, names=("weights", "gradients", "adam_moments",
                                                                         "total"), rtol=0, atol=0),
}
