"""How lesson 9's exercises are run: the losses' gradient adapter, and the tiny task of the ``pg_kl_step`` build.

* :func:`loss_with_grad`: calls a loss on a fresh leaf ``logp`` and returns the loss with its gradient (the
  ``adapt`` of ``sft_loss`` and ``pg_loss``, as a :func:`functools.partial` naming the exercise);
* :func:`tiny_policy` and :func:`tiny_batch`: a tiny random causal LM and one fixed batch of its responses;
  :func:`pg_kl_run` (the ``adapt`` of ``pg_kl_step``) trains the tiny policy with a student's step and reports
  what it did; :func:`pg_kl_demo` runs a step function longer, for the lesson's plot.
"""

from __future__ import annotations

import copy

import torch
from transformers import LlamaConfig, LlamaForCausalLM  # at import: the grader's sandbox cannot import later

from course_lib.harness.tensors import check_scalar_loss, generator
from course_lib.rl import masked_sum


def loss_with_grad(fn, exercise: str, rewards_grad: bool = False):
    """``fn`` called with a fresh leaf ``logp`` as its first argument; the call returns ``(loss, d loss / d logp)``,
    and with ``rewards_grad`` also ``d loss / d rewards`` (the last argument, a fresh leaf when the case's rewards
    require grad, as a reward model's scores do; zeros otherwise).

    Raises (inside the check, so the student sees it as their function's error) when the result is not a
    0-d tensor with a gradient: a float, a per-response vector, or a detached loss.
    """

    def run(logp, *rest):
        logp = logp.detach().clone().requires_grad_(True)  # the student and the reference each get their own
        rest = [r.detach().clone().requires_grad_(r.requires_grad) if isinstance(r, torch.Tensor) else r
                for r in rest]
        loss = fn(logp, *rest)
        check_scalar_loss(loss, f"{exercise} should return", " for the whole batch, a 0-d tensor", exercise, "`logp`")
        if not rewards_grad:
            (grad,) = torch.autograd.grad(loss, logp, allow_unused=True)
            return loss.detach(), torch.zeros_like(logp) if grad is None else grad
        rewards = rest[-1]
        if rewards.requires_grad:
            grad, grad_r = torch.autograd.grad(loss, (logp, rewards), allow_unused=True)
        else:
            (grad,), grad_r = torch.autograd.grad(loss, logp, allow_unused=True), None
        return (loss.detach(), torch.zeros_like(logp) if grad is None else grad,
                torch.zeros_like(rewards) if grad_r is None else grad_r)

    return run


# ---- the tiny task of pg_kl_step ----------------------------------------------------------------


def tiny_policy(seed: int, vocab: int = 16, hidden: int = 16):
    """A tiny random causal LM of SmolLM2's family (Llama, 1 layer) with a ``vocab``-token vocabulary: no tokenizer,
    built in milliseconds; seeded, so the student's run and the reference's start from the same weights."""
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


_GOOD = 5  # the tiny task's liked token: a response scores the share of its real tokens that are token 5


def tiny_batch(seed: int, lengths, P: int = 3, vocab: int = 16, garbage: bool = True) -> tuple:
    """``(input_ids, attention_mask, response_mask, rewards)`` of B responses of ``lengths`` real tokens (the last one
    EOS = 1 where shorter than the longest), after a P-token prompt (no padding). After EOS the ids are random
    (``garbage``: a forward pass computes something there too) and the attention mask is 0. Rewards: the share of a
    response's real tokens that are token 5, minus 0.2."""
    g = generator(seed)
    B, R = len(lengths), max(lengths)
    ids = torch.randint(3, vocab, (B, P + R), generator=g)  # (B, P + R)
    favoured = torch.rand((B, R), generator=g) < 0.3
    ids[:, P:] = torch.where(favoured, torch.full_like(ids[:, P:], _GOOD), ids[:, P:])
    response_mask = torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]  # (B, R)
    for b, n in enumerate(lengths):
        if n < R:
            ids[b, P + n - 1] = 1  # EOS ends the shorter responses
        if not garbage:
            ids[b, P + n:] = 0
    attention_mask = torch.cat([torch.ones((B, P), dtype=torch.long), response_mask.long()], dim=1)  # (B, P + R)
    hits = ((ids[:, P:] == _GOOD) & response_mask).sum(dim=1).float()
    rewards = hits / response_mask.sum(dim=1) - 0.2  # (B,)
    return ids, attention_mask, response_mask, rewards


def _run_steps(fn, seed: int, lengths, beta: float, steps: int, lr: float = 0.05, P: int = 3,
               garbage: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train a fresh tiny policy with ``fn`` for ``steps`` steps on one fixed batch; return the per-step losses
    (steps,), the per-step mean KLs (steps,) and the final log pi(y | x) of each response (B,)."""
    policy = tiny_policy(seed)
    reference = copy.deepcopy(policy).requires_grad_(False)
    optimizer = torch.optim.SGD(policy.parameters(), lr=lr)
    ids, attn, rmask, rewards = tiny_batch(seed + 1, lengths, P=P, garbage=garbage)
    losses, kls = [], []
    for _ in range(steps):
        out = fn(policy, reference, optimizer, ids.clone(), attn.clone(), P, rmask.clone(), rewards.clone(), beta)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"pg_kl_step should return a tuple (loss, kl) of two floats, got {type(out).__name__}")
        loss, kl = (float(v) for v in out)
        losses.append(loss)
        kls.append(kl)
    with torch.no_grad():
        logits = policy(input_ids=ids, attention_mask=attn).logits[:, P - 1:-1]
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)
    return torch.tensor(losses), torch.tensor(kls), masked_sum(logp, rmask, dim=-1)


def pg_kl_run(fn):
    """``adapt`` of the build: a function of a case's settings that trains a fresh tiny policy with ``fn``."""

    def run(seed, lengths, beta, steps, **kwargs):
        return _run_steps(fn, seed, lengths, beta, steps, **kwargs)

    return run


def pg_kl_demo(fn, steps: int = 20, beta: float = 0.1, seed: int = 7) -> tuple[list[float], list[float], list[float]]:
    """Run ``fn`` for ``steps`` steps on the tiny task (one fixed batch of 8 responses); return three lists: the
    losses, the mean KLs, and the mean reward of the batch weighted by the policy's probabilities of its responses
    (how much the policy now prefers the better ones)."""
    policy = tiny_policy(seed)
    reference = copy.deepcopy(policy).requires_grad_(False)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    ids, attn, rmask, rewards = tiny_batch(seed + 1, [6, 4, 6, 5, 6, 3, 6, 5])
    losses, kls, preferred = [], [], []
    for _ in range(steps):
        loss, kl = fn(policy, reference, optimizer, ids, attn, 3, rmask, rewards, beta)
        losses.append(float(loss))
        kls.append(float(kl))
        with torch.no_grad():
            logits = policy(input_ids=ids, attention_mask=attn).logits[:, 2:-1]
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 3:].unsqueeze(-1)).squeeze(-1)
            weights = torch.softmax(masked_sum(logp, rmask, dim=-1), dim=0)  # (B,) the policy's preference
        preferred.append(float((weights * rewards).sum()))
    return losses, kls, preferred
