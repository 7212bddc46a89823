"""How lesson 10's exercises are run: the Bradley-Terry loss is called on fresh leaves and read with its gradients."""

from __future__ import annotations

from typing import Callable

import torch


def bt_with_grad(fn: Callable) -> Callable:
    """Call ``fn`` on fresh leaves; return ``(loss, accuracy, d loss / d chosen, d loss / d rejected)``: the student's
    pair first, in its order, then the gradients (the ``adapt`` of ``bradley_terry_loss_fn``).

    Raises (inside the check, so the student sees it as their function's error) when the result is not a pair
    ``(0-d tensor with a gradient, one number)``.
    """

    def run(chosen, rejected, *rest, **kwargs):
        chosen = chosen.detach().clone().requires_grad_(True)
        rejected = rejected.detach().clone().requires_grad_(True)
        result = fn(chosen, rejected, *rest, **kwargs)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("bradley_terry_loss_fn should return a tuple (loss, accuracy), got "
                            f"{type(result).__name__}")
        loss, accuracy = result
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"bradley_terry_loss_fn's loss should be a 0-d torch tensor that can be back-propagated, "
                            f"got {type(loss).__name__}; keep to torch operations (no .item(), float() or numpy)")
        if loss.dim() != 0:
            raise ValueError(f"bradley_terry_loss_fn's loss should be one number for the whole batch, a 0-d tensor, "
                             f"got shape {tuple(loss.shape)}")
        if not loss.requires_grad:
            raise RuntimeError("bradley_terry_loss_fn's loss has no gradient w.r.t. the scores: it was detached "
                               "somewhere (.detach(), torch.no_grad(), .item() or numpy); the reward model could "
                               "not learn from it")
        if isinstance(accuracy, torch.Tensor):
            if accuracy.numel() != 1:
                raise ValueError(f"bradley_terry_loss_fn's accuracy should be one number, the share of pairs "
                                 f"ordered right, got shape {tuple(accuracy.shape)}")
            accuracy = float(accuracy)
        grad_c, grad_r = torch.autograd.grad(loss, (chosen, rejected), allow_unused=True)
        grad_c = torch.zeros_like(chosen) if grad_c is None else grad_c
        grad_r = torch.zeros_like(rejected) if grad_r is None else grad_r
        return loss.detach(), accuracy, grad_c, grad_r

    return run
