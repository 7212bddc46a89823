"""Chat formatting, batched generation and per-token log-probs of completions.

The LLM seen as a policy: the state is the prompt plus the tokens so far, an
action is the next token, and ``pi(a | s)`` is the softmax of the model's
logits. These helpers turn text into those quantities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

from course_lib.llm.models import forward_keyword
from course_lib.llm.tokens import check_context, completion_ids, encode, pad, position_ids, replies_from, response_mask_from
from course_lib.rl.logprobs import token_logprobs
from course_lib.utils.validation import check_float, check_int

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


class Sampled(NamedTuple):
    """What :func:`sample` returns for B prompts (P: the longest prompt, R: the longest reply)."""

    prompt_ids: torch.Tensor
    """(B, P) int64, left-padded prompt tokens."""
    prompt_mask: torch.Tensor
    """(B, P) int64, 1 on real prompt tokens."""
    tokens: torch.Tensor
    """(B, R) int64, the sampled tokens; EOS (the pad id) after a row's first EOS."""
    response_mask: torch.Tensor
    """(B, R) bool, True up to and including each row's first EOS."""
    logp: torch.Tensor
    """(B, R) float32, log pi(a_t | s_t) of each sampled token under softmax(logits / temperature)
    (under softmax(logits) when greedy); meaningless where ``response_mask`` is False."""
    finished: torch.Tensor
    """(B,) bool, True when the row ended with EOS, False when it was cut at ``max_new_tokens``."""


def _check_temperature(temperature) -> float:
    return check_float("temperature", temperature, "[0, inf)", note="0 decodes greedily")


@torch.no_grad()
def sample(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None) -> Sampled:
    """The agent-environment loop of lesson 1, on tokens: sample a reply to each prompt, one token at a time.

    1. **Prefill.** Each *distinct* prompt goes through the model once (left-padded, position ids counting
       real tokens); its KV cache is then copied to every row that asked for it, so K replies to one
       prompt (preference data, GRPO's groups, best-of-n) cost one prompt pass, not K.
    2. **Step.** The policy's next-token distribution softmax(logits / temperature) at each row's last
       state; sample a token (the argmax when ``temperature`` is 0), record its log-prob, append it.
    3. **Episode end.** A row that sampled EOS is finished (``terminated``); the rest are cut after
       ``max_new_tokens`` (``truncated``). The loop stops as soon as every row has finished.

    Uses the global torch generator (seed it with :func:`course_lib.utils.set_seed` for reproducible samples).

    Args:
        model: a Hugging Face ``...ForCausalLM`` (``.model`` body, ``.lm_head``).
        tokenizer: its tokenizer (EOS = the pad id in SmolLM2).
        prompts: B formatted prompts (:func:`chat_prompt`), each at least one token.
        max_new_tokens: R >= 1, the token limit of a reply.
        temperature: > 0 samples from softmax(logits / temperature); 0 decodes greedily.
        top_k: sample among the k most likely tokens only (None: all, as the policy gradient assumes);
            the recorded log-probs stay those of the full distribution.

    Raises:
        ValueError: a bad argument, an empty prompt, or a prompt plus ``max_new_tokens`` longer than
            the model's context (each naming the argument).
    """
    prompts = _check_texts("prompts", prompts)
    check_int("max_new_tokens", max_new_tokens, 1)
    temperature = _check_temperature(temperature)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")
    distinct = {p: u for u, p in enumerate(dict.fromkeys(prompts))}
    rows = [encode(tokenizer, p) for p in distinct]
    context = getattr(model.config, "max_position_embeddings", None)
    for p, ids in zip(distinct, rows):
        if not ids:
            raise ValueError(f"prompts: expected each prompt to encode to at least one token, got {p!r}")
        if context is not None and len(ids) + max_new_tokens > context:
            raise ValueError(f"prompts: expected prompt + max_new_tokens <= the model's context of {context} "
                             f"tokens, got {len(ids)} + {max_new_tokens} for {p!r:.60}")
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    body, head = model.model, model.lm_head
    cache_keyword = forward_keyword(type(body), "cache", "past_key_values")  # renamed in transformers 5

    # 1. prefill the U distinct prompts once, then give each of the B rows its prompt's cache
    prompt_ids, prompt_mask = pad(rows, tokenizer.pad_token_id, "left", device)  # (U, P) each
    owner = torch.tensor([distinct[p] for p in prompts], device=device)  # (B,)
    padded = bool((prompt_mask == 0).any())  # without padding the causal mask alone is right: no mask to build
    out = body(input_ids=prompt_ids, attention_mask=prompt_mask if padded else None,
               position_ids=position_ids(prompt_mask), use_cache=True)
    cache = getattr(out, cache_keyword)  # per layer: keys, values (U, heads, P, d)
    if len(distinct) < len(prompts) or not torch.equal(owner, torch.arange(len(prompts), device=device)):
        cache.reorder_cache(owner)  # (B, heads, P, d)
    hidden = out.last_hidden_state[owner, -1]  # (B, H): the state after each prompt
    attention = prompt_mask[owner]  # (B, P)
    position = attention.sum(-1)  # (B,): the next token's position
    B = len(prompts)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, logps = [], []
    for t in range(max_new_tokens):
        # 2. the next-token distribution of every row, one token sampled (or the argmax)
        logits = head(hidden).float()  # (B, V)
        probs = torch.softmax(logits / (temperature or 1.0), dim=-1)  # (B, V): the policy
        if temperature == 0:
            token = logits.argmax(dim=-1)  # (B,)
        else:
            weights = probs
            if top_k is not None and top_k < probs.shape[-1]:
                kth = torch.topk(probs, top_k, dim=-1).values[:, -1:]  # (B, 1)
                weights = probs.masked_fill(probs < kth, 0.0)  # multinomial renormalises
            token = torch.multinomial(weights, 1).squeeze(1)  # (B,)
        token = torch.where(finished, torch.full_like(token, eos), token)  # a finished row only pads
        tokens.append(token)
        logps.append(probs.gather(1, token[:, None]).squeeze(1).log())  # (B,): one log per row, not (B, V)
        finished |= token == eos
        # 3. stop when every row has ended; else feed the new tokens through the cache
        if bool(finished.all()) or t == max_new_tokens - 1:
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)  # (B, P + t + 1)
        hidden = body(input_ids=token[:, None], attention_mask=attention if padded else None,
                      position_ids=(position + t)[:, None], use_cache=True,
                      **{cache_keyword: cache}).last_hidden_state[:, -1]  # (B, H)
    tokens_t = torch.stack(tokens, dim=1)  # (B, R)
    P = prompt_ids.shape[1]
    return Sampled(prompt_ids[owner], attention[:, :P], tokens_t, response_mask_from(tokens_t, eos),
                   torch.stack(logps, dim=1), finished)


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> list:
    """Complete each prompt; return each reply as a :class:`~course_lib.data.preferences.Reply`.

    A ``Reply`` is the reply's text (a ``str``) that also keeps its token ids, EOS included when it
    finished, and whether it finished (see :func:`sample`, which this calls).

    Args:
        prompts: B already formatted prompts (see :func:`chat_prompt`).
        max_new_tokens: at most this many tokens per completion (>= 1).
        temperature: 0 for greedy decoding, > 0 to sample from softmax(logits / temperature).
        top_k: sample only among the k most likely tokens (None: all).
        seed: seed torch's generator first, for reproducible samples.
    """
    if seed is not None:
        torch.manual_seed(seed)
    out = sample(model, tokenizer, prompts, max_new_tokens, temperature, top_k)
    return replies_from(tokenizer, out.tokens, out.response_mask)


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

    Tokenising separately keeps the boundary exact: the completion mask covers exactly the
    completion's tokens, whatever the tokenizer would merge. A completion that is a
    :class:`~course_lib.data.preferences.Reply` brings its sampled ids (EOS included when it finished);
    a plain text is its own tokens (:func:`~course_lib.llm.tokens.completion_ids`).
    """
    prompts = _check_texts("prompts", prompts)
    completions = _check_texts("completions", completions)
    if len(prompts) != len(completions):
        raise ValueError(f"completions: expected {len(prompts)} (one per prompt), got {len(completions)}")
    rows = []
    for p, c in zip(prompts, completions):
        p_ids, c_ids = encode(tokenizer, p), completion_ids(tokenizer, c)
        if not p_ids or not c_ids:
            raise ValueError(f"prompts/completions: each must encode to at least one token, got {p!r:.40} / {c!r:.40}")
        rows.append((p_ids, c_ids))
    input_ids, attention_mask = pad([p + c for p, c in rows], tokenizer.pad_token_id, "left")  # (B, T) each
    completion_mask = torch.zeros_like(input_ids, dtype=torch.bool)  # (B, T)
    for b, (_, c_ids) in enumerate(rows):
        completion_mask[b, input_ids.shape[1] - len(c_ids):] = True
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
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids(attention_mask)).logits  # (B, T, V); padding shifts no position
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
    check_context(model, prompts, enc.attention_mask.sum(dim=1).tolist())
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
    check_float("temperature", temperature, "> 0")
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
        prompts, completions: N texts each (a completion may be a :class:`~course_lib.data.preferences.Reply`,
            scored on its own ids); each must encode to at least one token.

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
    prompt_rows = [encode(tokenizer, p) for p in distinct]
    rows = [completion_ids(tokenizer, c) for c in completions]
    for text, ids in [*zip(distinct, prompt_rows), *zip(completions, rows)]:
        if not ids:
            raise ValueError(f"prompts/completions: each must encode to at least one token, got {text!r:.40}")
    check_context(model, prompts, [len(prompt_rows[distinct[p]]) + len(r) for p, r in zip(prompts, rows)])
    prompt_ids, prompt_mask = pad(prompt_rows, tokenizer.pad_token_id, "left", device)  # (U, P) each
    ids, mask = pad(rows, tokenizer.pad_token_id, "right", device)  # (N, R) each
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
    body = model.model
    cache_keyword = forward_keyword(type(body), "cache", "past_key_values")  # renamed in transformers 5
    out = body(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids(prompt_mask),
               use_cache=True)  # real tokens counted
    cache = getattr(out, cache_keyword)  # per layer: keys, values (U, heads, P, d)
    cache.reorder_cache(owner)  # (N, heads, P, d): each continuation gets its prompt's keys and values
    R = ids.shape[1]
    positions = prompt_mask.sum(-1)[owner, None] + torch.arange(R, device=ids.device)  # (N, R)
    hidden = body(input_ids=ids, attention_mask=torch.cat([prompt_mask[owner], mask.long()], dim=1),
                  position_ids=positions, use_cache=True, **{cache_keyword: cache}).last_hidden_state  # (N, R, H)
    before = torch.cat([out.last_hidden_state[owner, -1:], hidden[:, :-1]], dim=1)  # (N, R, H): state before token t
    return token_logprobs(model.lm_head(before) / temperature, ids)  # (N, R)
