"""How lesson 12's build is run: a tiny causal LM, its tiny preference task, and the build's adapter.

:class:`TinyLM` is a causal LM of a few hundred weights over an 8-token vocabulary; :func:`tiny_pairs` draws
preference pairs whose chosen reply holds more of token 3; :func:`tiny_dpo_run` trains it with a step function like
``dpo_step`` and :func:`dpo_run` (the ``adapt`` of ``dpo_step``) reports what such a run did.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_lib.harness.tensors import generator, policy_from
from course_lib.rl import masked_sum, token_logprobs

TINY_V, TINY_PAD, TINY_EOS, TINY_PROMPT, TINY_GOOD = 8, 0, 1, 2, 3
"""The tiny preference task: 8 tokens (0 pad, 1 EOS, 2 the prompt's first token, 3 to 7 words); the annotator
prefers the reply with more 3s."""


class TinyLM(nn.Module):
    """A tiny causal LM: ``model(input_ids)`` with (B, T) int64 ids returns (B, T, V) logits, ``logits[:, t]``
    scoring the token at t + 1 (the next-token shift of a real LM). Token t + 1 depends on token t and on t."""

    def __init__(self, seed: int = 0, V: int = TINY_V, T: int = 16, hidden: int = 16):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(V, hidden)
            self.position = nn.Embedding(T, hidden)
            self.head = nn.Linear(hidden, V)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        return self.head(torch.tanh(self.embed(input_ids) + self.position(torch.arange(T))[None]))


def tiny_pairs(seed: int, n: int) -> tuple:
    """``(chosen_ids, rejected_ids, chosen_mask, rejected_mask)``: n preference pairs of the tiny task, each (n, T).

    A sequence is a 2-token prompt (2, then a word), then a reply of 1 to 5 words and EOS, then padding (0);
    the masks are True on the reply's tokens, EOS included. Both replies of a pair share the prompt.
    """
    g = generator(seed)
    T = 2 + 6
    out = [torch.zeros((n, T), dtype=torch.long) for _ in range(2)] + [torch.zeros((n, T), dtype=torch.bool)
                                                                      for _ in range(2)]
    for i in range(n):
        prompt = [TINY_PROMPT, int(torch.randint(3, TINY_V, (1,), generator=g))]
        while True:
            replies = [torch.randint(3, TINY_V, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
                       for _ in range(2)]
            goods = [r.count(TINY_GOOD) for r in replies]
            if goods[0] != goods[1]:
                break
        order = (0, 1) if goods[0] > goods[1] else (1, 0)
        for k, which in enumerate(order):
            row = prompt + replies[which] + [TINY_EOS]
            out[k][i, :len(row)] = torch.tensor(row)
            out[2 + k][i, 2:len(row)] = True
    return tuple(out)


def _sequence_logps(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) log pi(y | x) of each sequence under a tiny model: the log-probs of its ``mask``-ed tokens, each read
    from the logits one position earlier, summed (through the library's :func:`course_lib.rl.token_logprobs`)."""
    logp = token_logprobs(model(ids)[:, :-1, :], ids[:, 1:])  # (B, T - 1): entry t scores token t + 1
    return masked_sum(logp, mask[:, 1:], dim=-1)  # (B,)


def tiny_dpo_run(step_fn, seed: int = 0, beta: float = 0.1, steps: int = 30, batch: int = 8,
                 learning_rate: float = 0.05, moved: bool = False) -> dict:
    """DPO on the tiny task with ``step_fn`` (a function like exercise ``dpo_step``): ``steps`` minibatches of
    ``batch`` of 64 training pairs. Returns ``losses`` and ``first`` (the first step's output), the held-out
    ``accuracy`` (share of 32 held-out pairs with a positive implicit reward margin) before and after, and
    whether the reference's weights stayed as they were."""
    reference = TinyLM(seed)
    policy = policy_from(reference, 2000 + seed if moved else None)
    frozen = {k: v.clone() for k, v in reference.state_dict().items()}
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    train, held = tiny_pairs(seed, 64), tiny_pairs(seed + 500, 32)

    @torch.no_grad()
    def accuracy() -> float:
        c = _sequence_logps(policy, held[0], held[2]) - _sequence_logps(frozen_ref, held[0], held[2])
        r = _sequence_logps(policy, held[1], held[3]) - _sequence_logps(frozen_ref, held[1], held[3])
        return float((c > r).float().mean())

    frozen_ref = copy.deepcopy(reference)
    out = {"losses": [], "first": None, "accuracy_before": accuracy()}
    g = generator(seed)
    for step in range(steps):
        idx = torch.randperm(64, generator=g)[:batch]
        result = step_fn(policy, reference, optimizer, *(x[idx].clone() for x in train), beta)
        if step == 0:
            out["first"] = result
        out["losses"].append(float(result[0]))
    out["accuracy_after"] = accuracy()
    out["reference_unchanged"] = all(torch.equal(v, frozen[k]) for k, v in reference.state_dict().items())
    return out


def dpo_run(fn):
    """``adapt`` of the build: wrap a step function as a short DPO run on the tiny task, returning its first step's
    outputs and three behaviours."""

    def run(seed: int, beta: float = 0.1, moved: bool = False, steps: int = 30) -> tuple:
        out = tiny_dpo_run(fn, seed=seed, beta=beta, steps=steps, moved=moved)
        if not isinstance(out["first"], tuple) or len(out["first"]) != 2:
            raise TypeError(f"expected a tuple (loss, margins), got {type(out['first']).__name__}")
        loss, margins = out["first"]
        losses = out["losses"]
        fell = sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05
        learned = out["accuracy_after"] >= out["accuracy_before"] + 0.15 and out["accuracy_after"] >= 0.7
        return float(loss), margins.detach(), fell, learned, out["reference_unchanged"]

    return run
