"""Log-probabilities of chosen actions (tokens) under a categorical policy.

Shape letters used across the library: B batch, T time steps or tokens,
V vocabulary (number of actions), G group, N parallel envs.
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log pi(a_t | s_t) for the actions actually taken.

    Equals the naive ``torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)``
    (``tests/test_logprobs.py`` proves it), but gathers the chosen logit and
    subtracts a log-sum-exp computed one batch row at a time: the naive form
    allocates a second (B, T, V) tensor, this one only a (T, V) one (for
    SmolLM2, V = 49,152). ``bench/bench_logprobs.py`` measures both.

    Args:
        logits: (..., V) unnormalised scores, e.g. (B, T, V) from a language model.
        tokens: (...) int64 indices into the last axis of ``logits``, e.g. (B, T).

    Returns:
        (...) float32 (or float64) log-probabilities, same shape as ``tokens``.
    """
    if logits.dim() < 1 or tokens.shape != logits.shape[:-1]:
        raise ValueError(
            f"tokens: expected shape {tuple(logits.shape[:-1])} (logits.shape[:-1]), got {tuple(tokens.shape)}"
        )
    if tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens: expected an integer tensor (int64), got dtype {tokens.dtype}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32  # log-sum-exp never in bf16
    chosen = logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1).to(dtype)  # (...)
    if logits.dim() >= 3:
        lse = torch.stack([torch.logsumexp(row.to(dtype), dim=-1) for row in logits])  # (B, T): one (T, V) at a time
    else:
        lse = torch.logsumexp(logits.to(dtype), dim=-1)  # (...)
    return chosen - lse
