"""KL estimators from samples, written once (Schulman, "Approximating KL Divergence", 2020).

With samples x ~ q and log-ratio lr = log p(x) - log q(x), estimates of KL(q || p):

* k1 = -lr                   unbiased, high variance, can be negative;
* k2 = lr^2 / 2              biased (low when p and q are close), low variance, >= 0;
* k3 = (exp(lr) - 1) - lr    unbiased, low variance, >= 0.

In RLHF the samples come from the policy q = pi_theta and p = pi_ref, so the
per-token penalty is ``kl_k1(logp, ref_logp)`` or ``kl_k3(logp, ref_logp)``.
All functions take (B, T) log-probs and return (B, T) per-sample estimates.
"""

from __future__ import annotations

import torch


def _log_ratio(logq: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    if logq.shape != logp.shape:
        raise ValueError(f"logp: expected shape {tuple(logq.shape)} (the samples' log-probs), got {tuple(logp.shape)}")
    return logp - logq


def kl_k1(logq: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """k1 = log q(x) - log p(x) for x ~ q: the plain log-ratio."""
    return -_log_ratio(logq, logp)


def kl_k2(logq: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """k2 = (log p(x) - log q(x))^2 / 2 for x ~ q."""
    return 0.5 * _log_ratio(logq, logp) ** 2


def kl_k3(logq: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """k3 = (p/q - 1) - log(p/q) for x ~ q, computed as ``expm1(lr) - lr``.

    The naive ``exp(lr) - 1 - lr`` loses every digit when lr is tiny (two numbers
    near 1 subtracted); ``expm1`` keeps them, so k3 ~ lr^2 / 2 stays accurate.
    """
    lr = _log_ratio(logq, logp)
    return torch.expm1(lr) - lr
