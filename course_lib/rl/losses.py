"""PPO's losses, written once for CartPole, RLHF and GRPO (Schulman et al. 2017, "Proximal Policy Optimization").

:func:`clipped_objective` is the per-token clipped term and :func:`clip_diagnostics` its diagnostics;
:func:`clipped_surrogate` reduces them to PPO's loss, and GRPO's token loss reduces the same term its
own three ways (:mod:`course_lib.llm.grpo`). Every loss returns ``(loss, info)``: a scalar to minimise and a dict of
float diagnostics. Inputs are (B, T) per step (or token) with an optional
(B, T) mask; flat (N,) inputs work too.
"""

from __future__ import annotations

import torch

from course_lib.rl.kl import kl_k3
from course_lib.rl.masked import masked_mean
from course_lib.utils.validation import check_float


def _mean(x: torch.Tensor, mask) -> torch.Tensor:
    return x.mean() if mask is None else masked_mean(x, mask)


def _check(name: str, t: torch.Tensor, like: torch.Tensor) -> None:
    if t.shape != like.shape:
        raise ValueError(f"{name}: expected shape {tuple(like.shape)}, got {tuple(t.shape)}")


def clipped_objective(logp, old_logp, advantages, clip_eps: float = 0.2):
    """PPO's clipped objective per step (or token), unreduced (Schulman et al. 2017, Eq. 7, inside the mean):

        ratio_t = exp(logp_t - old_logp_t)
        term_t  = min(ratio_t * A_t, clip(ratio_t, 1 - eps, 1 + eps) * A_t)

    The one implementation behind :func:`clipped_surrogate` (CartPole's PPO, RLHF-PPO) and
    GRPO's token loss: each caller only chooses how to reduce ``term`` (and what to add to it).

    Args:
        logp: (B, T) log pi_theta(a_t | s_t) under the current policy (with gradient).
        old_logp: (B, T) the same under the policy that collected the data (detached here).
        advantages: (B, T), or any shape that broadcasts to it, e.g. (B, 1) for one advantage per response.
        clip_eps: epsilon in (0, 1), usually 0.1 to 0.3.

    Returns:
        ``(term, ratio)``, both (B, T): the objective to maximise and the probability ratio.
    """
    check_float("clip_eps", clip_eps, "(0, 1)")
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    return torch.minimum(unclipped, clipped), ratio


def clip_diagnostics(logp, old_logp, ratio, clip_eps: float, mask=None) -> dict[str, float]:
    """PPO's diagnostics of one update, over the real steps (tokens) only:

    * ``clipfrac``: share of steps with |ratio - 1| > eps, on either side (the clip binds on fewer:
      only where the advantage pushes the ratio further out);
    * ``approx_kl``: the k3 estimate of KL(old || new) (Schulman's note): the samples come from the
      old policy, so KL(old || new) = E_old[(r - 1) - log r] with r = new / old;
    * ``ratio_mean``: the mean probability ratio (1 at the first epoch).

    Args:
        logp, old_logp, ratio: (B, T) as in :func:`clipped_objective` (no gradient is taken).
        clip_eps: the epsilon of the clip. mask: (B, T) or None (every step counts).
    """
    with torch.no_grad():
        return {
            "clipfrac": float(_mean(((ratio - 1).abs() > clip_eps).float(), mask)),
            "approx_kl": float(_mean(kl_k3(old_logp.detach(), logp.detach()), mask)),
            "ratio_mean": float(_mean(ratio, mask)),
        }


def clipped_surrogate(logp, old_logp, advantages, clip_eps: float = 0.2, mask=None):
    """PPO's clipped policy loss (Schulman et al. 2017, Eq. 7), negated for minimisation:

        ratio = exp(logp - old_logp)
        loss  = -E[ min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) ]

    The mean of :func:`clipped_objective` over the (masked-in) steps, negated.

    Args:
        logp: (B, T) log pi_theta(a_t | s_t) under the current policy (with gradient).
        old_logp: (B, T) the same under the policy that collected the data (no gradient).
        advantages: (B, T). clip_eps: epsilon, usually 0.1 to 0.3. mask: (B, T) or None.

    Returns:
        ``(loss, info)``; info: ``clipfrac``, ``approx_kl`` (k3 of KL(old || new)) and ``ratio_mean``,
        from :func:`clip_diagnostics`.
    """
    _check("old_logp", old_logp, logp)
    _check("advantages", advantages, logp)
    term, ratio = clipped_objective(logp, old_logp, advantages, clip_eps)  # (B, T) each
    loss = -_mean(term, mask)
    return loss, clip_diagnostics(logp, old_logp, ratio, clip_eps, mask)


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
