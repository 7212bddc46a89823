"""Chat formatting, batched generation and per-token log-probs of completions.

The LLM seen as a policy: the state is the prompt plus the tokens so far, an
action is the next token, and ``pi(a | s)`` is the softmax of the model's
logits. These helpers turn text into those quantities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from course_lib.rl.logprobs import token_logprobs

Messages = list[dict[str, str]]


def chat_prompt(tokenizer, message: str | Messages, system: str | None = None) -> str:
    """Format a user message (or a list of chat messages) with the tokenizer's chat template.

    The result ends with the assistant's turn opened, ready for generation.

    Args:
        message: the user's text, or ``[{"role": ..., "content": ...}, ...]``.
        system: optional system prompt put first (only with a plain string message).
    """
    if isinstance(message, str):
        messages: Messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": message}
        ]
    elif isinstance(message, list) and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in message):
        if system is not None:
            raise ValueError("system: give the system prompt inside the messages list when message is a list")
        messages = message
    else:
        raise ValueError(
            f"message: expected a str or a list of {{'role', 'content'}} dicts, got {type(message).__name__}"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _check_texts(name: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or len(texts) == 0:
        raise ValueError(f"{name}: expected a non-empty list of str, got {texts!r:.80}")
    return list(texts)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Complete each prompt; return only the new text of each.

    Prompts are left-padded into one batch, so every sequence's next token is
    at the same (last) position.

    Args:
        prompts: B already formatted prompts (see :func:`chat_prompt`).
        max_new_tokens: at most this many tokens per completion (>= 1).
        temperature: 0 for greedy decoding, > 0 to sample from softmax(logits / temperature).
        top_k: sample only among the k most likely tokens (None: all).
        seed: seed torch's generator first, for reproducible samples.
    """
    prompts = _check_texts("prompts", prompts)
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected an int >= 1, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    sampling = {"do_sample": True, "temperature": float(temperature), "top_k": top_k or 0, "top_p": 1.0}
    out = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        **(sampling if temperature > 0 else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}),
    )  # (B, T_prompt + T_new)
    new_tokens = out[:, batch["input_ids"].shape[1] :]  # (B, T_new)
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


@dataclass
class CompletionBatch:
    """Prompt + completion token ids, left-padded, with the masks to score them."""

    input_ids: torch.Tensor
    """(B, T) int64: left padding, then prompt, then completion tokens."""
    attention_mask: torch.Tensor
    """(B, T) int64: 1 on prompt and completion tokens, 0 on padding."""
    completion_mask: torch.Tensor
    """(B, T) bool: True on completion tokens only."""


def encode_completions(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> CompletionBatch:
    """Tokenise prompt and completion separately and join them, left-padded.

    Tokenising separately keeps the boundary exact: the completion mask covers
    exactly the completion's tokens, whatever the tokenizer would merge.
    """
    prompts = _check_texts("prompts", prompts)
    completions = _check_texts("completions", completions)
    if len(prompts) != len(completions):
        raise ValueError(f"completions: expected {len(prompts)} (one per prompt), got {len(completions)}")
    rows = []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
        if not p_ids or not c_ids:
            raise ValueError(f"prompts/completions: each must encode to at least one token, got {p!r:.40} / {c!r:.40}")
        rows.append((p_ids, c_ids))
    T = max(len(p) + len(c) for p, c in rows)
    B = len(rows)
    input_ids = torch.full((B, T), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    completion_mask = torch.zeros((B, T), dtype=torch.bool)
    for b, (p_ids, c_ids) in enumerate(rows):
        n = len(p_ids) + len(c_ids)
        input_ids[b, T - n :] = torch.tensor(p_ids + c_ids)
        attention_mask[b, T - n :] = 1
        completion_mask[b, T - len(c_ids) :] = True
    return CompletionBatch(input_ids, attention_mask, completion_mask)


def sequence_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log pi(x_t | x_<t) for every token after the first.

    Args:
        input_ids: (B, T) token ids, left-padded.
        attention_mask: (B, T) 1 on real tokens, 0 on padding.

    Returns:
        (B, T - 1) log-probs: entry t scores token ``input_ids[:, t + 1]`` given
        the tokens up to t (the shift by one of next-token prediction).
    """
    # Position ids count real tokens only, so left padding does not shift positions.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits  # (B, T, V)
    return token_logprobs(logits[:, :-1, :], input_ids[:, 1:])  # (B, T-1): logits at t predict token t+1


def completion_logprobs(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]):
    """Per-token log-probs of each completion given its prompt.

    Returns:
        ``(logp, mask)``, both (B, T - 1): ``logp[b, t]`` is the log-prob of
        token ``t + 1`` of the joined, left-padded sequence; ``mask`` is True
        where that token belongs to the completion. The sequence log-prob
        log pi(completion | prompt) is ``masked_sum(logp, mask, dim=-1)``.
    """
    device = next(model.parameters()).device
    enc = encode_completions(tokenizer, prompts, completions)
    logp = sequence_token_logprobs(model, enc.input_ids.to(device), enc.attention_mask.to(device))  # (B, T-1)
    return logp, enc.completion_mask[:, 1:].to(device)  # mask shifted like the targets


def top_k_next_tokens(logits: torch.Tensor, k: int, temperature: float = 1.0):
    """The k most likely next tokens and their probabilities under softmax(logits / temperature).

    Args:
        logits: (..., V) next-token scores, e.g. (V,) for one prompt or (B, V).
        k: how many tokens, 1 <= k <= V.
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.

    Returns:
        ``(probs, ids)``, each (..., k), sorted by decreasing probability;
        ``probs`` are probabilities of the full distribution (they sum to at most 1).
    """
    V = logits.shape[-1]
    if not isinstance(k, int) or not 1 <= k <= V:
        raise ValueError(f"k: expected an int in [1, {V}], got {k!r}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a float > 0, got {temperature!r}")
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (..., V)
    top = torch.topk(probs, k, dim=-1)  # sorted, largest first
    return top.values, top.indices


@torch.no_grad()
def next_token_distribution(model, tokenizer, prompt: str, k: int = 10, temperature: float = 1.0):
    """The model's top-k next tokens for ``prompt``: a list of ``(token_text, prob)``."""
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)  # (1, T)
    logits = model(input_ids=ids).logits[0, -1]  # (V,) scores for the next token
    probs, top_ids = top_k_next_tokens(logits, k, temperature)
    return [(tokenizer.decode([int(i)]), float(p)) for p, i in zip(probs, top_ids)]


def shared_prompt_logprobs(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]):
    """Per-token log-probs of each completion given its prompt, each distinct prompt run once.

    Equals :func:`completion_logprobs` (tested: the sequence sums and their gradients), for fewer
    tokens when completions share prompts (a DPO pair's two responses; GRPO's group of G samples).
    The U distinct prompts go through the model's body once, left-padded, with the KV cache; the
    cache is indexed to the N completions, which run right-padded on top of it. Completion token t
    is predicted by the hidden state before it: the prompt's last one for t = 0, the completion's
    token t - 1 after that. The LM head runs on those N x R positions only.

    Args:
        model: a Hugging Face ``...ForCausalLM`` (``.model`` body, ``.lm_head``).
        prompts, completions: N texts each; each must encode to at least one token.

    Returns:
        ``(logp, mask)``, both (N, R), R the longest completion: ``logp[n, t]`` is log pi of the
        completion's token t; ``mask`` is True on its real tokens. The sequence log-prob is
        ``masked_sum(logp, mask, dim=-1)``.
    """
    prompts = _check_texts("prompts", prompts)
    completions = _check_texts("completions", completions)
    if len(prompts) != len(completions):
        raise ValueError(f"completions: expected {len(prompts)} (one per prompt), got {len(completions)}")
    device = next(model.parameters()).device
    distinct = {p: u for u, p in enumerate(dict.fromkeys(prompts))}
    prompt_rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in distinct]
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]
    for text, ids in [*zip(distinct, prompt_rows), *zip(completions, rows)]:
        if not ids:
            raise ValueError(f"prompts/completions: each must encode to at least one token, got {text!r:.40}")
    U, N = len(prompt_rows), len(rows)
    P, R = max(map(len, prompt_rows)), max(map(len, rows))
    prompt_ids = torch.full((U, P), tokenizer.pad_token_id, dtype=torch.long)  # (U, P), left-padded
    prompt_mask = torch.zeros((U, P), dtype=torch.long)  # (U, P)
    for u, ids in enumerate(prompt_rows):
        prompt_ids[u, P - len(ids):] = torch.tensor(ids)
        prompt_mask[u, P - len(ids):] = 1
    ids = torch.full((N, R), tokenizer.pad_token_id, dtype=torch.long)  # (N, R), right-padded
    mask = torch.zeros((N, R), dtype=torch.long)  # (N, R)
    for n, row in enumerate(rows):
        ids[n, :len(row)] = torch.tensor(row)
        mask[n, :len(row)] = 1
    prompt_ids, prompt_mask, ids, mask = (t.to(device) for t in (prompt_ids, prompt_mask, ids, mask))
    owner = torch.tensor([distinct[p] for p in prompts], device=device)  # (N,): each completion's prompt
    logp = cached_prefix_logprobs(model, prompt_ids, prompt_mask, owner, ids, mask)  # (N, R)
    return logp, mask.bool()


def cached_prefix_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, owner: torch.Tensor,
                           ids: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(token t | prompt, tokens < t) of N continuations of U prompts, each prompt run once.

    The U prompts go through the model's body once with the KV cache; the cache is indexed to the N
    continuations (``owner``), which run on top of it. Token t is predicted by the hidden state
    before it: the prompt's last one for t = 0, the continuation's token t - 1 after that; the LM
    head runs on those N x R positions only. Differentiable.

    Args:
        model: a Hugging Face ``...ForCausalLM`` (``.model`` body, ``.lm_head``).
        prompt_ids, prompt_mask: (U, P), left-padded (every prompt ends at position P - 1).
        owner: (N,) int, the prompt row of each continuation.
        ids, mask: (N, R), right-padded continuations (1 on real tokens, each row starting with one).
        temperature: > 0; the log-probs are those of softmax(logits / temperature).

    Returns:
        (N, R) log-probs; entries where ``mask`` is 0 are meaningless.
    """
    from course_lib.llm.models import forward_keyword

    body = model.model
    cache_keyword = forward_keyword(type(body), "cache", "past_key_values")  # renamed in transformers 5
    out = body(input_ids=prompt_ids, attention_mask=prompt_mask,
               position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)  # real tokens counted
    cache = getattr(out, cache_keyword)  # per layer: keys, values (U, heads, P, d)
    cache.reorder_cache(owner)  # (N, heads, P, d): each continuation gets its prompt's keys and values
    R = ids.shape[1]
    positions = prompt_mask.sum(-1)[owner, None] + torch.arange(R, device=ids.device)  # (N, R)
    hidden = body(input_ids=ids, attention_mask=torch.cat([prompt_mask[owner], mask.long()], dim=1),
                  position_ids=positions, use_cache=True, **{cache_keyword: cache}).last_hidden_state  # (N, R, H)
    before = torch.cat([out.last_hidden_state[owner, -1:], hidden[:, :-1]], dim=1)  # (N, R, H): state before token t
    return token_logprobs(model.lm_head(before) / temperature, ids)  # (N, R)
