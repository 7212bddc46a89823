"""How lesson 0's check calls a student's ``top_k_next_tokens``: a ``torch.topk`` result counts as a plain pair."""

from __future__ import annotations

from typing import Callable

import torch


def plain_pair(fn: Callable) -> Callable:
    """Call ``fn``; a ``torch.topk`` result (a named ``(values, indices)`` pair) becomes a plain tuple.

    ``return torch.topk(probs, k, dim=-1)`` is a correct answer: its values are the probabilities and its
    indices the token ids. Any other result is compared as it is (a list, a swapped or unsorted pair still fail).
    """

    def call(*args, **kwargs):
        __tracebackhide__ = True
        out = fn(*args, **kwargs)
        if isinstance(out, torch.return_types.topk):
            return (out.values, out.indices)
        return out

    return call
