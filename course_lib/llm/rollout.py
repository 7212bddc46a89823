"""The LLM as a policy in the token-level MDP: sampling, per-token log-probs and values, token rewards.

State s_t = prompt + the response tokens before t; action a_t = response token t;
pi(a_t | s_t) = softmax(logits / temperature); one score at the end of the response.
Shapes (B batch, P prompt length after left padding, R response tokens, V vocabulary):

* ``input_ids`` (B, P + R): left-padded prompts, then the sampled response tokens;
* ``response_mask`` (B, R): True on the response's real tokens, up to and including the
  first EOS; False on what the sampler wrote after it (padding; SmolLM2's pad id *is* its EOS id);
* the logits at position P - 1 + t predict response token t, so per-token log-probs and
  values of the response are read at positions P - 1 .. P + R - 2 (the shift of next-token
  prediction, at every place it happens below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import nn

from course_lib.llm.generation import cached_prefix_logprobs, sample
from course_lib.llm.tokens import keep_last_logits, last_token_index, position_ids, replies_from
from course_lib.rl import entropy_from_logits, kl_k1, masked_sum, token_logprobs
from course_lib.utils.validation import check_float


class PolicyWithValue(nn.Module):
    """A causal LM plus a value head: one forward gives the next-token logits and V(s_t) at every position.

    Args:
        causal_lm: a Hugging Face ``...ForCausalLM``; trained in place (its ``.model`` body and ``.lm_head``).

    The value head is a linear layer on the last hidden state, started at zero (V = 0 everywhere
    at first), as the critic of the PPO-RLHF recipe (Ziegler et al. 2019; Ouyang et al. 2022).
    """

    def __init__(self, causal_lm):
        super().__init__()
        self.lm = causal_lm
        self.value_head = nn.Linear(causal_lm.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(causal_lm.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logits_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask: (B, T) -> ``(logits (B, T - logits_from, V), values (B, T))``.

        ``logits_from``: the first position whose next-token logits are computed (default 0: all of
        them). The LM head is the largest matrix product per position (576 x 49,152 in SmolLM2, about
        a fifth of the forward's work), so scoring a response skips it on the prompt's positions.
        """
        hidden = self.lm.model(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids(attention_mask)).last_hidden_state  # (B, T, H)
        logits = self.lm.lm_head(hidden[:, logits_from:])  # (B, T - logits_from, V)
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()  # (B, T)
        return logits, values


@dataclass
class Samples:
    """Prompts and the responses sampled for them, as tokens."""

    input_ids: torch.Tensor
    """(B, P + R) int64: left-padded prompt tokens, then response tokens (padding after EOS)."""
    attention_mask: torch.Tensor
    """(B, P + R) int64: 1 on real prompt tokens and on the response up to its first EOS."""
    response_mask: torch.Tensor
    """(B, R) bool: True on the response's real tokens, the first EOS included."""
    prompt_length: int
    """P: every response starts at this position."""
    texts: list[str]
    """The B responses as :class:`~course_lib.data.preferences.Reply` s: each the text (decoded without special
    tokens) that also keeps its token ids (EOS included when it finished) and its ``finished`` flag."""
    logp: torch.Tensor | None = None
    """(B, R) log pi(a_t | s_t) of each response token at sampling time (None when not recorded); equal to
    :func:`response_outputs`' re-scored log-probs within 1e-4 in float32 (tested)."""

    @property
    def responses(self) -> torch.Tensor:
        """(B, R) the response tokens."""
        return self.input_ids[:, self.prompt_length:]

    def ended(self, eos_token_id: int) -> torch.Tensor:
        """(B,) bool: the response ended with EOS within the token limit (an EOS among its real tokens)."""
        return ((self.responses == eos_token_id) & self.response_mask).any(dim=1)


def _check_policy_temperature(temperature) -> None:
    """The policy is softmax(logits / temperature): defined for a temperature > 0 only (0 is greedy decoding)."""
    check_float("temperature", temperature, "> 0", note="the policy's sampling temperature")


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, temperature: float = 1.0,
                     top_k: int | None = None) -> Samples:
    """Sample one response per prompt from softmax(logits / temperature) with the course's KV-cached loop.

    Repeated prompts (K responses per prompt) are prefilled once (:func:`~course_lib.llm.generation.sample`).

    Args:
        model: a causal LM (or a :class:`PolicyWithValue`, whose LM is used).
        prompts: B formatted prompts. max_new_tokens: R, >= 1. temperature: > 0 (this is sampling,
            the policy's exploration). top_k: None samples from the whole vocabulary, as the policy
            gradient assumes; a top-k sample is not drawn from the distribution whose log-probs PPO uses.
    """
    _check_policy_temperature(temperature)
    lm = model.lm if isinstance(model, PolicyWithValue) else model
    out = sample(lm, tokenizer, prompts, max_new_tokens, temperature, top_k)
    P = out.prompt_ids.shape[1]
    input_ids = torch.cat([out.prompt_ids, out.tokens], dim=1)  # (B, P + R)
    attention_mask = torch.cat([out.prompt_mask, out.response_mask.long()], dim=1)  # (B, P + R)
    return Samples(input_ids, attention_mask, out.response_mask, P,
                   replies_from(tokenizer, out.tokens, out.response_mask), out.logp)


class ResponseOutputs(NamedTuple):
    """Per response token t, from one forward pass: (B, R) each; entries outside the response mask are meaningless."""

    logp: torch.Tensor
    """log pi(a_t | s_t) at the sampling temperature."""
    values: torch.Tensor | None
    """V(s_t), the value of the state before token t; None without a value head."""
    entropy: torch.Tensor | None
    """H(pi(. | s_t)) in nats; None unless asked for."""


def response_outputs(model, samples: Samples, temperature: float = 1.0, with_values: bool = True,
                     with_entropy: bool = False, entropy_grad: bool = True) -> ResponseOutputs:
    """log pi(a_t | s_t) of each response token, V(s_t) before it, and optionally the entropy, in one forward pass.

    Args:
        model: a :class:`PolicyWithValue` (values too) or a plain causal LM (``with_values=False``),
            e.g. the frozen reference.
        samples: the :class:`Samples` (or a minibatch of them) to score.
        temperature: the sampling temperature: the policy *is* softmax(logits / temperature).
        entropy_grad: False computes the entropy outside autograd, for a loop that only logs it (an entropy
            bonus of 0): its backward over (B, R, V) would be wasted work.
    """
    _check_policy_temperature(temperature)
    P = samples.prompt_length
    R = samples.input_ids.shape[1] - P
    # Only positions P - 1 .. P + R - 1 get logits (the LM head on the prompt would be thrown away).
    if isinstance(model, PolicyWithValue):
        logits, values = model(samples.input_ids, samples.attention_mask, logits_from=P - 1)  # (B, R+1, V), (B, P+R)
        values = values[:, P - 1:-1] if with_values else None  # (B, R): V(s_t) at the position before token t
    else:
        logits = model(input_ids=samples.input_ids, attention_mask=samples.attention_mask,
                       position_ids=position_ids(samples.attention_mask),
                       **keep_last_logits(model, R + 1)).logits  # (B, R+1 or P+R, V)
        logits = logits[:, -(R + 1):]  # (B, R + 1, V), whether the model kept only those or not
        values = None
    logits = logits[:, :-1, :] / temperature  # (B, R, V): position P - 1 + t predicts response token t
    logp = token_logprobs(logits, samples.responses)  # (B, R)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(torch.is_grad_enabled() and entropy_grad):
            entropy = entropy_from_logits(logits)  # (B, R)
    return ResponseOutputs(logp, values, entropy)


def token_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, response_mask: torch.Tensor,
                  kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards of RLHF (Ziegler et al. 2019, Eq. 2; Ouyang et al. 2022, Eq. 2):

        r_t = -kl_coef * (log pi(a_t | s_t) - log pi_ref(a_t | s_t))      on every response token
        r_T += score(x, y)                                                 on the last response token

    The per-token KL term is k1 (the log-ratio of the sampled token), whose sum over the response
    is an unbiased estimate of KL(pi || pi_ref) for that prompt. Nothing on padding.

    Args:
        scores: (B,) the reward model's (or any scorer's) score of each finished response.
        logp, ref_logp: (B, R) per-token log-probs of the policy at sampling time and of the reference.
        response_mask: (B, R) bool, True on real response tokens (at least one per row).
        kl_coef: beta >= 0.

    Returns:
        ``(rewards, kl)``: (B, R) rewards, and (B, R) per-token log-ratios (0 outside the mask).
    """
    check_float("kl_coef", kl_coef, ">= 0")
    mask = response_mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("response_mask: expected at least one real token per response")
    kl = torch.where(mask, kl_k1(logp, ref_logp), torch.zeros_like(logp))  # (B, R): log pi - log pi_ref
    rewards = -kl_coef * kl  # (B, R)
    last = last_token_index(mask)  # (B,): the response's last real token
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards, kl


def sequence_kl(kl: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """(B, R) per-token log-ratios -> (B,) their sum over each response: the k1 estimate of KL(pi || pi_ref)."""
    return masked_sum(kl, response_mask.bool(), dim=-1)


def shared_prompt_response_logprobs(model, samples: Samples, temperature: float = 1.0) -> torch.Tensor:
    """(N, R) log pi(a_t | s_t) of each response token, each distinct prompt of ``samples`` run once.

    Rows with the same prompt (K samples per prompt: GRPO's groups, a held-out evaluation's several
    samples, best-of-n) share one pass over it: the prompt goes through the body once and its KV cache
    is reused by its responses (:func:`~course_lib.llm.generation.cached_prefix_logprobs`). Equal to
    ``response_outputs(model, samples, temperature, with_values=False).logp`` on the response tokens
    (tested, values and gradients), for about 1/K of the prompt's work.
    """
    P = samples.prompt_length
    key = torch.cat([samples.input_ids[:, :P], samples.attention_mask[:, :P].long()], dim=1)  # (N, 2P)
    distinct, owner = torch.unique(key, dim=0, return_inverse=True)  # (U, 2P), (N,)
    lm = model.lm if isinstance(model, PolicyWithValue) else model
    return cached_prefix_logprobs(lm, distinct[:, :P], distinct[:, P:], owner, samples.responses,
                                  samples.response_mask, temperature)  # (N, R)


def group_response_logprobs(model, samples: Samples, group_size: int, temperature: float = 1.0) -> torch.Tensor:
    """(N, R) log pi(a_t | s_t) of each response token, for groups of G consecutive responses to one prompt.

    GRPO samples G responses per prompt; rows b*G .. b*G + G - 1 of ``samples`` share prompt b, which
    goes through the body once (:func:`shared_prompt_response_logprobs`, after checking the grouping).

    Raises:
        ValueError: N is not a multiple of ``group_size``, or the rows of a group have different prompts.
    """
    N, P = samples.input_ids.shape[0], samples.prompt_length
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or N % group_size:
        raise ValueError(f"group_size: expected an int >= 1 dividing the {N} responses, got {group_size!r}")
    prompts = samples.input_ids[:, :P].view(N // group_size, group_size, P)  # (B, G, P)
    if not (prompts == prompts[:, :1]).all():
        raise ValueError(f"samples: expected each run of group_size ({group_size}) rows to share one prompt")
    return shared_prompt_response_logprobs(model, samples, temperature)  # (N, R)
