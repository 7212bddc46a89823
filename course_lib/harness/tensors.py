"""Small torch helpers shared by the checks of the deep-RL and LLM lessons (``core`` stays numpy-only)."""

from __future__ import annotations

from typing import Callable

import torch


def generator(seed: int) -> torch.Generator:
    """A CPU random generator seeded with ``seed``: each check case draws its tensors from its own."""
    return torch.Generator().manual_seed(seed)


def cloned(fn: Callable) -> Callable:
    """Call ``fn`` on copies of its tensor arguments (positional and keyword), so an in-place edit cannot change
    the case for others."""

    def copy(a):
        return a.clone() if isinstance(a, torch.Tensor) else a

    def run(*args, **kwargs):
        return fn(*(copy(a) for a in args), **{k: copy(v) for k, v in kwargs.items()})

    return run

