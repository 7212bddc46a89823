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


def load_optimiser_modules() -> None:
    """Import now what a torch optimiser imports on its first step (``torch._dynamo``, and cProfile with it).

    The grader builds a lesson's cases before its sandbox drops privileges; after that the interpreter's own
    modules may be unreadable, so a check that trains with an optimiser calls this while building its cases.
    """
    for make in (torch.optim.SGD, torch.optim.Adam):
        make([torch.zeros(1, requires_grad=True)], lr=0.0).step()
