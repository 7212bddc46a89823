"""How lesson 14's exercises are run: GRPO's loss read with its gradient, and the tiny policy of the build.

:func:`loss_and_grad` is the ``adapt`` of ``grpo_loss``; :class:`TinyPolicy` (one logit table) and
:func:`tiny_group` are the tiny task on which :func:`update_run` (the ``adapt`` of ``grpo_group_update``) runs a
student's update with plain SGD at learning rate :data:`LR`.
"""

from __future__ import annotations

import functools

import torch

from course_lib.harness.tensors import generator, with_grad


def length_mask(lengths, R: int | None = None) -> torch.Tensor:
    """(N, R) bool: row i is True on its first ``lengths[i]`` positions, False after (padding)."""
    R = R or max(lengths)
    return torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]


loss_and_grad = functools.partial(with_grad, exercise="grpo_loss", wrt="logp",
                                  one_number=" for the whole batch, a 0-d tensor")
"""The ``adapt`` of ``grpo_loss``: ``(loss, d loss / d logp)`` on a fresh leaf ``logp``. The gradient is what the
optimiser uses: it must be finite everywhere (0 on the padding), even where the padded log-probs are -inf."""


# ---- the tiny task of grpo_group_update -----------------------------------------------------------

LR = 0.5
"""The check's optimiser: plain SGD at this learning rate (no momentum: a zero gradient moves nothing)."""


class TinyPolicy(torch.nn.Module):
    """A policy over replies of R tokens from a vocabulary of V: one learnable logit table (R, V), position by position.

    ``policy(replies)`` with replies (G, R) long returns (G, R): the log-prob of each reply's token at each position
    under the current table (with gradient), what ``response_outputs(...).logp`` is for SmolLM2.
    """

    def __init__(self, seed: int, R: int, V: int = 6):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn((R, V), generator=generator(seed)))  # (R, V)

    def forward(self, replies: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.table, dim=-1)  # (R, V)
        positions = torch.arange(replies.shape[1])  # (R,)
        return logp[positions[None, :], replies]  # (G, R)


def tiny_group(seed: int, lengths, R: int | None = None, V: int = 6, pad_id: int = 0) -> tuple:
    """``(replies, mask)``: G replies of the given real lengths, right-padded with ``pad_id`` to R tokens."""
    mask = length_mask(lengths, R)  # (G, R)
    replies = torch.randint(V, mask.shape, generator=generator(seed + 1000))  # (G, R)
    return torch.where(mask, replies, torch.full_like(replies, pad_id)), mask


def update_run(fn):
    """The check's view of a ``grpo_group_update`` (its ``adapt``): build the tiny policy and SGD (learning rate
    ``lr``), run ``fn`` ``calls`` times in a row on the same policy and optimiser (as a training loop does), report
    ``(losses, table)``: the loss of each epoch of each call (a float tensor) and the logit table after the last
    update."""

    def run(seed: int, lengths, rewards: torch.Tensor, loss_norm: str = "token", epochs: int = 1,
            R: int | None = None, pad_id: int = 0, lr: float = LR, calls: int = 1):
        replies, mask = tiny_group(seed, lengths, R, pad_id=pad_id)
        policy = TinyPolicy(seed, replies.shape[1])
        optimizer = torch.optim.SGD(policy.parameters(), lr=lr)
        out = []
        for _ in range(calls):
            losses = fn(policy, optimizer, replies.clone(), mask.clone(), rewards.clone(), loss_norm, epochs)
            if isinstance(losses, torch.Tensor):
                losses = losses.tolist()
            if not isinstance(losses, (list, tuple)):
                raise TypeError(f"got a {type(losses).__name__}; return a list of the epochs' loss values (floats)")
            out += [float(v) for v in losses]
        return torch.tensor(out, dtype=torch.float64), policy.table.detach().clone()

    return run
