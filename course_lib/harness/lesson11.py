"""How lesson 11's build is run: a tiny policy with a value head, its tiny RLHF task, and the build's adapter.

:class:`TinyPolicy` samples replies of a few tokens from a 6-token vocabulary and a tiny reward model scores them
(:func:`tiny_scores`); :func:`tiny_rlhf_run` trains it with a step function like ``rlhf_ppo_step``, and
:func:`rlhf_run` (the ``adapt`` of ``rlhf_ppo_step``) reports what such a run did.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.harness.tensors import generator, policy_from
from course_lib.llm.tokens import response_mask_from

TINY_V, TINY_R, TINY_EOS, TINY_GOOD = 6, 6, 1, 3
"""The tiny task: a vocabulary of 6 tokens, replies of at most 6 tokens, EOS = 1; the reward model likes token 3."""


class TinyPolicy(nn.Module):
    """A tiny autoregressive policy with a value head, for checking a whole RLHF step in milliseconds.

    ``policy(response_ids)`` with (B, R) int64 reply tokens returns ``(logits, values)``: (B, R, V) and (B, R).
    ``logits[:, t]`` are the policy's scores for reply token t given the tokens before it (the next-token shift
    is already done, as :func:`course_lib.llm.rollout.response_outputs` does it), ``values[:, t]`` is V(s_t),
    the value of the state before token t. Token t's state is its position and the token before it.
    """

    def __init__(self, seed: int = 0, V: int = TINY_V, R: int = TINY_R, hidden: int = 16):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(V + 1, hidden)  # id V is "no token yet" (before the first)
            self.position = nn.Embedding(R, hidden)
            self.head = nn.Linear(hidden, V)
            self.value_head = nn.Linear(hidden, 1)
        self.V = V

    def forward(self, response_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, R = response_ids.shape
        before = torch.cat([torch.full((B, 1), self.V, dtype=torch.long), response_ids[:, :-1]], dim=1)  # (B, R)
        h = torch.tanh(self.embed(before) + self.position(torch.arange(R))[None])  # (B, R, H)
        return self.head(h), self.value_head(h).squeeze(-1)


@torch.no_grad()
def tiny_sample(policy: TinyPolicy, B: int, g: torch.Generator, R: int = TINY_R) -> torch.Tensor:
    """(B, R) replies sampled from ``policy`` token by token; after a reply's first EOS the sampler writes EOS
    (SmolLM2's pad id is its EOS id)."""
    ids = torch.full((B, R), TINY_EOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for t in range(R):
        logits, _ = policy(ids)
        token = torch.multinomial(torch.softmax(logits[:, t], dim=-1), 1, generator=g).squeeze(1)  # (B,)
        ids[:, t] = torch.where(done, torch.full_like(token, TINY_EOS), token)
        done = done | (token == TINY_EOS)
    return ids


def tiny_scores(response_ids: torch.Tensor) -> torch.Tensor:
    """(B, R) replies -> (B,) the tiny reward model's score: the share of the R positions that hold token 3
    before the reply's EOS (a reply that stops early scores less)."""
    real = response_mask_from(response_ids, TINY_EOS)  # (B, R)
    return ((response_ids == TINY_GOOD) & real).float().mean(dim=1)


@torch.no_grad()
def tiny_kl(policy: TinyPolicy, reference: TinyPolicy, response_ids: torch.Tensor) -> torch.Tensor:
    """(B,) exact per-token KL(pi || pi_ref) of the next-token distributions, summed over each reply's real
    tokens (a low-variance measure of how far the policy drifted)."""
    mask = response_mask_from(response_ids, TINY_EOS)
    logp = torch.log_softmax(policy(response_ids)[0], dim=-1)
    ref = torch.log_softmax(reference(response_ids)[0], dim=-1)
    per_token = (logp.exp() * (logp - ref)).sum(-1)  # (B, R)
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum(-1)


def tiny_rlhf_run(step_fn, seed: int = 0, steps: int = 30, beta: float = 0.05, batch: int = 16,
                  learning_rate: float = 0.05, moved: bool = False, **step_kwargs) -> dict:
    """RLHF on the tiny task with ``step_fn`` (a function like exercise ``rlhf_ppo_step``) as its step.

    The reference is a frozen copy of the starting policy. ``moved``: start the policy a little away from the
    reference (so the first step's KL is not 0). Returns a dict of lists per step: ``score`` (mean score of the
    step's samples), ``kl`` (mean exact KL to the reference on them), and the first step's ``first`` output.
    """
    reference = TinyPolicy(seed)
    policy = policy_from(reference, 1000 + seed if moved else None)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    g = generator(seed)
    out = {"score": [], "kl": [], "first": None}
    for step in range(steps):
        ids = tiny_sample(policy, batch, g)
        scores = tiny_scores(ids)
        out["score"].append(float(scores.mean()))
        out["kl"].append(float(tiny_kl(policy, reference, ids).mean()))
        result = step_fn(policy, reference, optimizer, ids.clone(), scores.clone(), TINY_EOS, beta, **step_kwargs)
        if step == 0:
            out["first"] = result
    return out


def rlhf_run(fn):
    """``adapt`` of the build: wrap a step function as a short RLHF run on the tiny task, returning its first step's
    outputs and two behaviours."""

    def run(seed: int, beta: float = 0.05, moved: bool = False, steps: int = 25, **step_kwargs) -> tuple:
        out = tiny_rlhf_run(fn, seed=seed, steps=steps, beta=beta, moved=moved, **step_kwargs)
        if not isinstance(out["first"], tuple) or len(out["first"]) != 4:
            raise TypeError(f"expected a tuple (mask, rewards, advantages, losses), got {type(out['first']).__name__}")
        mask, rewards, advantages, losses = out["first"]
        losses = [float(x) for x in losses]
        early, late = out["score"][:5], out["score"][-5:]
        rose = sum(late) / len(late) > sum(early) / len(early) + 0.25
        return mask, rewards.detach(), advantages.detach(), losses[0], losses[-1] < losses[0], rose

    return run
