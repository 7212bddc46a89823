"""Small torch helpers shared by the checks of the deep-RL and LLM lessons (``core`` stays numpy-only): seeded
generators, copied inputs, the check that a loss can be trained on, and a policy started from a frozen reference."""

from __future__ import annotations

import copy
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


def check_scalar_loss(loss, lead: str, one_number: str, owner: str, wrt: str,
                      detached: str = "(.detach(), torch.no_grad(), .item() or numpy)",
                      then: str = "the optimiser could not use it") -> None:
    """Raise (inside the check, so the student sees it as their function's error) unless ``loss`` is a 0-d tensor
    with a gradient: not a float, not a per-sample vector, not a detached loss.

    The messages are ``"{lead} a 0-d torch tensor ..."``, ``"{lead} one number{one_number}, got shape ..."`` and
    ``"{owner}'s loss has no gradient w.r.t. {wrt}: it was detached somewhere {detached}; {then}"``.
    """
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"{lead} a 0-d torch tensor that can be back-propagated, got {type(loss).__name__}; keep to "
                        f"torch operations (no .item(), float() or numpy)")
    if loss.dim() != 0:
        raise ValueError(f"{lead} one number{one_number}, got shape {tuple(loss.shape)}")
    if not loss.requires_grad:
        raise RuntimeError(f"{owner}'s loss has no gradient w.r.t. {wrt}: it was detached somewhere {detached}; {then}")


def with_grad(fn: Callable, exercise: str, wrt: str, one_number: str = ", a 0-d tensor (the mean over every entry)"
              ) -> Callable:
    """``fn`` called with a fresh leaf as its first argument (the other tensors copied), returning ``(loss, d loss /
    d arg)``: a loss with the right value but the wrong slope fails too. A gradient that does not reach the leaf
    counts as 0. The ``adapt`` of a loss is ``functools.partial(with_grad, exercise=name, wrt=argument name)``;
    :func:`check_scalar_loss` says what is wrong with a result that is not a trainable number."""

    def run(x, *rest):
        x = x.detach().clone().requires_grad_(True)  # the student and the reference each get their own leaf
        loss = fn(x, *(r.clone() if isinstance(r, torch.Tensor) else r for r in rest))
        check_scalar_loss(loss, f"{exercise} should return", one_number, exercise, f"`{wrt}`")
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
        return loss.detach(), torch.zeros_like(x) if grad is None else grad

    return run


def policy_from(reference: torch.nn.Module, moved_seed: int | None = None) -> torch.nn.Module:
    """Freeze ``reference`` in place and return a trainable copy of it; with ``moved_seed``, the copy is moved away
    from the reference by 0.3 * N(0, 1) noise drawn from ``generator(moved_seed)`` (so a first step's KL is not 0)."""
    for p in reference.parameters():
        p.requires_grad_(False)
    policy = copy.deepcopy(reference)
    for p in policy.parameters():
        p.requires_grad_(True)
    if moved_seed is not None:
        with torch.no_grad():
            g0 = generator(moved_seed)
            for p in policy.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g0))
    return policy
