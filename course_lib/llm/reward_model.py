"""A reward model: the LLM's backbone with a scalar head read at the last real token (lesson 10).

Following Ouyang et al. (2022, Section 3.5) and Stiennon et al. (2020): take the language
model, drop its next-token head, and put a linear layer from the last hidden state to one
number. The score of (prompt, response) is that number at the *last real token* of the
joined sequence, the only position that has seen all of it. Which position that is depends
on the padding side, so :func:`last_token_index` reads it from the attention mask instead
of assuming one: with right padding it is ``mask.sum() - 1``, with left padding ``T - 1``.
"""

from __future__ import annotations

import torch
from torch import nn


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B,) int64 index of the last 1 in each row, for left or right padding.

    Equals ``[max(t for t in range(T) if mask[b, t]) for b in range(B)]`` (tested).

    Raises:
        ValueError: a row without any real token.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask: expected shape (B, T), got {tuple(attention_mask.shape)}")
    real = attention_mask.bool()  # (B, T)
    if not real.any(dim=1).all():
        empty = torch.nonzero(~real.any(dim=1)).flatten().tolist()
        raise ValueError(f"attention_mask: expected at least one real token per row, rows {empty} have none")
    T = real.shape[1]
    return (T - 1 - real.flip(1).int().argmax(dim=1)).long()  # (B,): first 1 from the right


class RewardModel(nn.Module):
    """r_phi(x, y): a causal LM's transformer body plus a linear head to one scalar.

    Args:
        causal_lm: a Hugging Face ``...ForCausalLM`` (e.g. SmolLM2); its ``.model`` body is
            shared, not copied, and its LM head is not used.

    ``forward(input_ids, attention_mask)`` -> (B,) scores, float32.
    """

    def __init__(self, causal_lm):
        super().__init__()
        self.body = causal_lm.model  # the transformer without its next-token head
        hidden = causal_lm.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1 / (hidden + 1) ** 0.5)  # scores start at about unit scale
        nn.init.zeros_(self.head.bias)
        self.head.to(next(causal_lm.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, T) -> (B,) scalar rewards."""
        # position ids count real tokens only, so left padding does not shift positions
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids).last_hidden_state  # (B, T, H)
        idx = last_token_index(attention_mask)  # (B,)
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]  # (B, H)
        return self.head(last.to(self.head.weight.dtype)).squeeze(-1).float()  # (B,)
