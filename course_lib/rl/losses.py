"""PPO's losses, written once for CartPole and for RLHF (Schulman et al. 2017, "Proximal Policy Optimization").

Every loss returns ``(loss, info)``: a scalar to minimise and a dict of
float diagnostics. Inputs are (B, T) per step (or token) with an optional
(B, T) mask; flat (N,) inputs work too.
"""

from __future__ import annotations

import torch

from course_lib.rl.kl import kl_k3
from course_lib.rl.masked import masked_mean


def _mean(x: torch.Tensor, mask) -> torch.Tensor:
    return x.mean() if mask is None else masked_mean(x, mask)


def _check(name: str, t: torch.Tensor, like: torch.Tensor) -> None:
    if t.shape != like.shape:
        raise ValueError(f"{name}: expected shape {tuple(like.shape)}, got {tuple(t.shape)}")


def clipped_surrogate(logp, old_logp, advantages, clip_eps: float = 0.2, mask=None):
    """PPO's clipped policy loss (Schulman et al. 2017, Eq. 7), negated for minimisation:

        ratio = exp(logp - old_logp)
        loss  = -E[ min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) ]

    Args:
        logp: (B, T) log pi_theta(a_t | s_t) under the current policy (with gradient).
        old_logp: (B, T) the same under the policy that collected the data (no gradient).
        advantages: (B, T). clip_eps: epsilon, usually 0.1 to 0.3. mask: (B, T) or None.

    Returns:
        ``(loss, info)``; info: ``clipfrac`` (share of steps with |ratio - 1| > eps, on either side; the
        clip binds on fewer, only where the advantage pushes the ratio further out), ``approx_kl``
        (the k3 estimate of KL(old || new), Schulman's note), ``ratio_mean``.
    """
    if not 0 < clip_eps < 1:
        raise ValueError(f"clip_eps: expected a float in (0, 1), got {clip_eps!r}")
    _check("old_logp", old_logp, logp)
    _check("advantages", advantages, logp)
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    loss = -_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        info = {
            "clipfrac": float(_mean(((ratio - 1).abs() > clip_eps).float(), mask)),
            # samples come from the old policy: KL(old || new) = E_old[(r - 1) - log r], r = new / old
            "approx_kl": float(_mean(kl_k3(old_logp.detach(), logp.detach()), mask)),
            "ratio_mean": float(_mean(ratio, mask)),
        }
    return loss, info


def value_loss(values, returns, old_values=None, clip_eps: float | None = None, mask=None):
    """0.5 * E[(V(s) - R)^2], optionally clipped around the old values as in PPO's implementations
    (Engstrom et al. 2020 discuss whether it helps):
    0.5 * E[max((V - R)^2, (old_V + clip(V - old_V, -eps, eps) - R)^2)].

    Args:
        values: (B, T) current value predictions. returns: (B, T) targets (no gradient).
        old_values: (B, T) predictions at collection time; needed when ``clip_eps`` is set.

    Returns:
        ``(loss, info)``; info: ``value_clipfrac`` when clipping.
    """
    _check("returns", returns, values)
    err = (values - returns.detach()) ** 2
    info: dict[str, float] = {}
    if clip_eps is not None:
        if old_values is None:
            raise ValueError("old_values: expected the values at collection time when clip_eps is set, got None")
        _check("old_values", old_values, values)
        clipped_v = old_values.detach() + torch.clamp(values - old_values.detach(), -clip_eps, clip_eps)
        err_clipped = (clipped_v - returns.detach()) ** 2
        with torch.no_grad():
            info["value_clipfrac"] = float(_mean((err_clipped > err).float(), mask))
        err = torch.maximum(err, err_clipped)
    return 0.5 * _mean(err, mask), info


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each categorical distribution: H = -sum_a p(a) log p(a), with 0 log 0 = 0.

    Args:
        logits: (..., V); -inf marks impossible actions (top-k or action masks). Returns: (...).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (..., V)
    p_logp = torch.where(logp > -torch.inf, logp.exp() * logp, torch.zeros_like(logp))  # (..., V): 0 * -inf -> 0
    return -p_logp.sum(dim=-1)
