"""Checks for lesson 0's warm-up exercise."""

from __future__ import annotations

import torch

from course_lib.checks.core import Case, Exercise, check_functions
from course_lib.harness.lesson00 import plain_pair
from course_lib.llm.generation import top_k_next_tokens


def _logits(seed: int, shape: tuple[int, ...], scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


def top_k_cases() -> list[Case]:
    """Seeded cases for :func:`top_k_next_tokens`; each probes one property."""
    return [
        Case((_logits(0, (8,)), 3), {}, "one prompt, 8-token vocabulary",
             "softmax over the last axis, then the k largest probabilities, largest first."),
        Case((_logits(1, (8,)), 8), {}, "k equal to the vocabulary size",
             "with k = V every token is returned, sorted by probability."),
        Case((_logits(2, (4, 50)), 5), {}, "a batch of 4 prompts: logits of shape (B, V)",
             "work on the last axis (dim=-1) so a batch of prompts works too."),
        Case((_logits(3, (50,)), 5), {"temperature": 0.5}, "temperature 0.5 sharpens the distribution",
             "divide the logits by the temperature before the softmax."),
        Case((_logits(4, (50,)), 5), {"temperature": 2.0}, "temperature 2.0 flattens the distribution",
             "divide the logits by the temperature before the softmax."),
        Case((_logits(5, (2, 30), scale=400.0), 4), {}, "very large logits",
             "exp(400) overflows: use torch.softmax (it subtracts the max first), not exp / sum."),
    ]


def top_k_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and temperatures than the notebook's."""
    return [
        Case((_logits(100, (3, 17)), 4), {"temperature": 0.8}, "a batch of 3, temperature 0.8",
             "softmax(logits / temperature) over the last axis, then the top k."),
        Case((_logits(101, (64,), scale=50.0), 2), {"temperature": 3.0}, "large logits at temperature 3",
             "use a numerically stable softmax."),
        Case((_logits(102, (2, 2, 9)), 9), {}, "a (2, 2, V) batch with k = V", "work on the last axis."),
    ]


HINTS = {
    "top_k_next_tokens": (
        "Two steps, both on the LAST axis (the vocabulary), so that (V,) and (B, V) logits work alike. "
        "1) Probabilities: divide the logits by tau, then a softmax that subtracts the max first "
        "(torch has one; exp then divide overflows at logits of 400). Example: logits [2, 0], tau 0.5 -> "
        "scores [4, 0] -> probabilities [0.982, 0.018]. 2) Selection: torch has one function that returns the "
        "k largest entries along an axis AND their positions, largest first; the positions are the token ids "
        "(int64). Select on the probabilities, not on the logits, so the values you return are probabilities. "
        "Return (probabilities, ids) in that order."
    ),
}

EXERCISES = {
    "top_k_next_tokens": Exercise("top_k_next_tokens", top_k_next_tokens, top_k_cases, top_k_hidden_cases,
                                  adapt=plain_pair, names=("probs", "ids"),
                                  twins=("course_lib.llm.generation.top_k_next_tokens",)),
}


__getattr__ = check_functions(EXERCISES)
