"""Masked reductions: statistics over the real steps (tokens) only, never over padding.

Shapes: values and mask are (B, T) (or any equal shapes); mask is bool or 0/1.
"""

from __future__ import annotations

import torch


def _check(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if values.shape != mask.shape:
        raise ValueError(f"mask: expected shape {tuple(values.shape)} (values.shape), got {tuple(mask.shape)}")
    return mask.bool()


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``values`` where ``mask`` is true, e.g. a sequence log-prob.

    Args:
        values: (B, T) per-step values such as token log-probs.
        mask: (B, T) bool or 0/1 tensor; 0 marks padding or prompt tokens.
        dim: axis to sum over (``-1`` gives one number per sequence); ``None`` sums all.
    """
    m = _check(values, mask)
    # where(), not values * mask: a padded -inf log-prob times 0 would be NaN.
    masked = torch.where(m, values, torch.zeros_like(values))
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the masked-in entries (all of them, or along ``dim``).

    Raises:
        ValueError: the mask selects nothing (the mean would be 0 / 0).
    """
    m = _check(values, mask)
    count = m.sum() if dim is None else m.sum(dim=dim)
    if (count == 0).any():
        raise ValueError("mask: expected at least one true entry to average over, got none")
    return masked_sum(values, m, dim) / count


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over all masked-in entries (Bessel-corrected unless ``unbiased=False``)."""
    m = _check(values, mask)
    n = m.sum()
    mean = masked_mean(values, m)
    sq = masked_sum((values - mean) ** 2, m)
    if unbiased:
        if n < 2:
            raise ValueError(f"mask: expected at least 2 true entries for an unbiased variance, got {int(n)}")
        return sq / (n - 1)
    return sq / n


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values - mean) / std over the masked-in entries; masked-out entries become 0."""
    m = _check(values, mask)
    mean, var = masked_mean(values, m), masked_var(values, m)
    white = (values - mean) * torch.rsqrt(var + eps)
    return torch.where(m, white, torch.zeros_like(white))


def normalize(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Advantage normalisation over the whole batch (no padding): (A - mean) / (std + eps)."""
    if advantages.numel() < 2:
        raise ValueError(f"advantages: expected at least 2 values to normalise, got {advantages.numel()}")
    return (advantages - advantages.mean()) / (advantages.std() + eps)
