"""Token bookkeeping, in one place: padding, position ids, the last real token, replies as token ids.

Every shift, pad and gather that the LLM loops need is here and tested once (``tests/test_tokens.py``),
so the whole class of off-by-one and padding bugs has one home. Shapes: B batch, T tokens, V vocabulary.

Conventions of the course:

* **Prompts are left-padded** (every prompt ends at the same position, where generation starts);
  **replies are right-padded** when they run on top of their prompt's KV cache.
* **Position ids count real tokens only**, so padding shifts nothing: the first real token of a
  left-padded row has position 0, exactly as it would without padding.
* **A reply is its token ids** (the episode; text is for people). A reply that finished ends with
  the EOS token; one cut at the token limit does not. A sampled reply carries its ids
  (:class:`~course_lib.data.preferences.Reply`); a reply given as plain text is a finished one: its
  tokens are the text's, then EOS (the convention TRL's trainers and SFT's demonstrations use too).
"""

from __future__ import annotations

from typing import Sequence

import torch

from course_lib.data.preferences import Reply


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, T) int64 positions counting real tokens only (padding gets 0).

    Equals, per row, ``[max(0, sum(mask[:t + 1]) - 1) for t in range(T)]`` (tested): under left padding
    the first real token is at position 0, as if there were no padding.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B,) int64 index of the last 1 in each row, for left or right padding.

    Equals ``[max(t for t in range(T) if mask[b, t]) for b in range(B)]`` (tested).

    Raises:
        ValueError: a mask that is not (B, T), or a row without any real token.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask: expected shape (B, T), got {tuple(attention_mask.shape)}")
    real = attention_mask.bool()  # (B, T)
    if not real.any(dim=1).all():
        empty = torch.nonzero(~real.any(dim=1)).flatten().tolist()
        raise ValueError(f"attention_mask: expected at least one real token per row, rows {empty} have none")
    T = real.shape[1]
    return (T - 1 - real.flip(1).int().argmax(dim=1)).long()  # (B,): first 1 from the right


def pad(rows: Sequence[Sequence[int]], pad_id: int, side: str, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """B lists of token ids -> ``(ids, mask)``, both (B, T) int64, T the longest row, padded on ``side``.

    ``side="left"`` puts the padding first (prompts: every row ends at T - 1); ``"right"`` puts it last
    (replies on a KV cache: every row starts at 0). ``mask`` is 1 on real tokens.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
    T = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
    for b, row in enumerate(rows):
        if not len(row):
            continue
        where = slice(T - len(row), T) if side == "left" else slice(0, len(row))
        ids[b, where] = torch.as_tensor(list(row), dtype=torch.long)
        mask[b, where] = 1
    return ids.to(device), mask.to(device)


def response_mask_from(tokens: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(B, R) sampled reply tokens -> (B, R) bool, True up to and including the first EOS of each row.

    Equals, per row: ``[t <= first_eos for t in range(R)]`` with first_eos = R - 1 when no EOS (tested).
    """
    is_eos = tokens == eos_token_id  # (B, R)
    before = is_eos.long().cumsum(dim=1) - is_eos.long()  # (B, R): EOS tokens strictly before t
    return before == 0


def keep_last_logits(model, n: int) -> dict:
    """The keyword that makes a Hugging Face causal LM compute logits for its last ``n`` positions only
    (``logits_to_keep``, called ``num_logits_to_keep`` before transformers 4.50), or {} when it has none."""
    from course_lib.llm.models import forward_keyword

    name = forward_keyword(type(model), "logits_to_keep", "num_logits_to_keep")
    return {name: n} if name else {}


def encode(tokenizer, text: str) -> list[int]:
    """The token ids of a piece of text as the course writes it: no BOS or other added tokens."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def check_context(model, prompts, lengths, what: str = "prompt + completion") -> None:
    """Raise when a sequence is longer than the model's context (``max_position_embeddings``).

    A longer sequence does not fail in the forward pass: its positions past the context get rotary
    angles the model never saw, and training goes on silently on garbage. ``prompts`` and ``lengths``
    name each sequence (its prompt's text) and give its token count.

    Raises:
        ValueError: naming the first sequence that does not fit, its length and the context.
    """
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if context is None:
        return
    for prompt, length in zip(prompts, lengths):
        if length > context:
            raise ValueError(f"prompts: expected {what} <= the model's context of {context} tokens, got {length} "
                             f"tokens for the prompt {str(prompt)[:60]!r}; shorten the prompt or its completion")


def completion_ids(tokenizer, completion: str) -> list[int]:
    """The tokens of a completion, exactly: a :class:`~course_lib.data.preferences.Reply`'s ids, or a
    plain text's own tokens (nothing appended: the log-prob of *this text* given a prompt)."""
    return list(completion.ids) if isinstance(completion, Reply) else encode(tokenizer, completion)


def as_reply(tokenizer, reply: str) -> Reply:
    """A reply with its token ids: a :class:`~course_lib.data.preferences.Reply` as it is; a plain string
    as a finished reply, its text's tokens then EOS (unless the text already ends with it)."""
    if isinstance(reply, Reply):
        return reply
    ids = encode(tokenizer, reply)
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
    return Reply(reply, ids, True)


def reply_ids(tokenizer, reply: str) -> list[int]:
    """A reply's token ids, EOS included when it finished (:func:`as_reply`)."""
    return list(as_reply(tokenizer, reply).ids)


def replies_from(tokenizer, responses: torch.Tensor, response_mask: torch.Tensor) -> list[Reply]:
    """(B, R) sampled tokens and their (B, R) response mask -> B :class:`Reply` s.

    Each keeps its real tokens (up to and including its first EOS), whether it finished (an EOS among
    them) and its text for people (decoded without special tokens).
    """
    eos = tokenizer.eos_token_id
    rows = [row[m].tolist() for row, m in zip(responses.cpu(), response_mask.bool().cpu())]
    texts = tokenizer.batch_decode([[t for t in r if t != eos] for r in rows], skip_special_tokens=True)
    return [Reply(text, ids, bool(ids and ids[-1] == eos)) for text, ids in zip(texts, rows)]
