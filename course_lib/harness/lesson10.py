"""How lesson 10's exercises are run: the Bradley-Terry loss is called on fresh leaves and read with its gradients."""

from __future__ import annotations

from typing import Callable

import torch

from course_lib.harness.tensors import check_scalar_loss


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
        check_scalar_loss(loss, "bradley_terry_loss_fn's loss should be", " for the whole batch, a 0-d tensor",
                          "bradley_terry_loss_fn", "the scores", then="the reward model could not learn from it")
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
