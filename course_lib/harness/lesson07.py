"""How lesson 7's checks call a student's loss: on a fresh leaf, returning the loss and its gradient, so that a loss
with the right value but the wrong slope (a clip that is not flat where it should be) fails too."""

from __future__ import annotations

from typing import Callable

import torch


def with_grad(fn: Callable, exercise: str, wrt: str) -> Callable:
    """``fn`` called with a fresh leaf as its first argument, returning ``(loss, d loss / d arg)``.

    The ``adapt`` of a loss is ``functools.partial(with_grad, exercise=name, wrt=argument name)``. It raises (inside
    the check, so the student sees it as their function's error) when the result is not a 0-d tensor with a
    gradient: a float, a per-sample vector, or a detached loss.
    """

    def run(x, *rest):
        x = x.detach().clone().requires_grad_(True)  # the student and the reference each get their own leaf
        loss = fn(x, *(r.clone() if isinstance(r, torch.Tensor) else r for r in rest))
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"{exercise} should return a 0-d torch tensor that can be back-propagated, got "
                            f"{type(loss).__name__}; keep to torch operations (no .item(), float() or numpy)")
        if loss.dim() != 0:
            raise ValueError(f"{exercise} should return one number, a 0-d tensor (the mean over every entry), "
                             f"got shape {tuple(loss.shape)}")
        if not loss.requires_grad:
            raise RuntimeError(f"{exercise}'s loss has no gradient w.r.t. `{wrt}`: it was detached somewhere "
                               f"(.detach(), torch.no_grad(), .item() or numpy); the optimiser could not use it")
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
        return loss.detach(), torch.zeros_like(x) if grad is None else grad

    return run
