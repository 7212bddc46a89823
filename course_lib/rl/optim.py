"""One guarded optimiser step, written once for every training loop (PPO, REINFORCE, RLHF, GRPO, DPO, SFT).

A step that never goes on from NaN: a non-finite loss raises before the backward pass, a
non-finite gradient norm raises before the parameters move. The gradient is clipped to a
global L2 norm first (Pascanu et al. 2013), in the order zero_grad, backward, clip, step.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch


def guarded_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[torch.Tensor],
                 max_grad_norm: float, where: str, *, parts: Mapping[str, torch.Tensor] | None = None,
                 loss_name: str = "loss", norm_name: str = "gradient norm", at: str = "",
                 fix: str = "lower learning_rate") -> torch.Tensor:
    """``optimizer.zero_grad()``, ``loss.backward()``, clip the gradient of ``params`` to ``max_grad_norm``, step.

    Equals the plain loop ``zero_grad(); loss.backward(); clip_grad_norm_(params, max_grad_norm); step()``
    when every number is finite (tested); otherwise it raises and the parameters stay as they were.

    Args:
        optimizer: the optimiser of ``params``. loss: the scalar to minimise.
        params: the parameters whose gradient is clipped (all those the optimiser steps).
        max_grad_norm: clip the gradient to this global L2 norm (``math.inf``: measure it, clip nothing).
        where: names the place for the error, e.g. ``"epoch 0, step 3"``.
        parts: named components of ``loss``, shown in the error (e.g. ``{"policy": pg_loss, "value": v_loss}``).
        loss_name, norm_name: what the message calls the loss and the norm (e.g. ``"policy loss"``,
            ``"policy's gradient norm"``). at: text after the number (e.g. ``" at value step 3"``).
        fix: the advice that ends the message (e.g. ``"lower lr or max_grad_norm"``).

    Returns:
        the gradient norm before clipping, a 0-d tensor.

    Raises:
        FloatingPointError: ``"{where}: the {loss_name} is nan (policy ..., value ...){at}; {fix}"`` before
            the backward pass, or ``"{where}: the {norm_name} is nan{at}; {fix}"`` before the step.
    """
    if not torch.isfinite(loss):
        detail = "" if not parts else " (" + ", ".join(f"{k} {v.item()}" for k, v in parts.items()) + ")"
        raise FloatingPointError(f"{where}: the {loss_name} is {loss.item()}{detail}{at}; {fix}")
    optimizer.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if not torch.isfinite(norm):
        raise FloatingPointError(f"{where}: the {norm_name} is {norm.item()}{at}; {fix}")
    optimizer.step()
    return norm


DIVERGENCE_WINDOW = 3
"""Updates :class:`DivergenceGuard` averages over."""


class DivergenceError(RuntimeError):
    """A training run stopped by :class:`DivergenceGuard`: its updates moved the policy too far."""


class DivergenceGuard:
    """Stops a run whose updates move the policy far from the one that collected the data.

    After each update the loop calls :meth:`check` with that update's largest approximate KL between the
    data-collecting (old) policy and the updated one, per step or token (k3, the ``losses/approx_kl`` metric). Once
    the mean over the last :data:`DIVERGENCE_WINDOW` updates exceeds ``max_kl`` (the updates before the first
    counting as 0), the run is being ruined rather than trained and :meth:`check` raises :class:`DivergenceError`.
    The window catches both a collapse in one update (CartPole at a learning rate of 1.0: 58 nats in its first
    update, 0 after it, as the policy became deterministic) and a run that keeps jumping. It watches the old-to-new
    KL of single updates only, never the KL to a reference model, which a run without a KL penalty grows on
    purpose. ``max_kl=None`` switches it off, for deliberate experiments (a learning rate chosen to fail).
    """

    def __init__(self, max_kl: float | None, *, field: str = "divergence_kl"):
        self.max_kl, self.field = max_kl, field
        self.recent: list[tuple[str, float]] = []

    def check(self, approx_kl: float, where: str) -> None:
        """Record one update's approximate KL; raise :class:`DivergenceError` when the window's mean is too high
        or the value is not a number."""
        if self.max_kl is None:
            return
        self.recent = (self.recent + [(where, float(approx_kl))])[-DIVERGENCE_WINDOW:]
        mean = sum(kl for _, kl in self.recent) / DIVERGENCE_WINDOW
        if not mean <= self.max_kl:  # NaN included
            shown = "; ".join(f"{w}: {kl:.3g}" for w, kl in self.recent)
            raise DivergenceError(
                f"the run diverged: the approximate KL between the policy before and after an update averaged "
                f"{mean:.3g} over the last {DIVERGENCE_WINDOW} updates ({shown}), above {self.field}={self.max_kl:g}; "
                f"the updates are too large: lower learning_rate (or update_epochs), or pass {self.field}=None to "
                f"let a deliberate experiment go on")
