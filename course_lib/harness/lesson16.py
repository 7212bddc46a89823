"""How lesson 16's exercises are run: a ``LoRALinear`` class by what it does, and mixed precision's step in a loop."""

from __future__ import annotations

import torch

from course_lib.harness.tensors import generator

LORA_LR, LORA_STEPS = 0.05, 40
"""The check's small regression: Adam at this rate for this many steps on the trainable parameters."""


def lora_run(cls):
    """The check's view of a ``LoRALinear`` class (the exercise's ``adapt``): build it on a seeded base layer and
    report what it does.

    Returns ``(start_gap, n_trainable, output, merged, base_frozen, loss_fell)``: the largest |layer(x) - base(x)|
    right after construction; the number of trainable entries among the layer's parameters; the output for given
    A and B; the merged weight for them; whether the base's weight and bias are unchanged after training; whether
    a small regression's loss fell below half its start in LORA_STEPS Adam steps.
    """

    def run(seed: int, d_in: int, d_out: int, r: int, alpha: float, bias: bool = True, lead=(5,)):
        g = generator(seed)
        torch.manual_seed(seed)  # the layer's own random init (A) is reproducible
        base = torch.nn.Linear(d_in, d_out, bias=bias)
        with torch.no_grad():
            base.weight.copy_(torch.randn(d_out, d_in, generator=g) / d_in ** 0.5)
            if bias:
                base.bias.copy_(0.1 * torch.randn(d_out, generator=g))
        w0 = base.weight.detach().clone()
        b0 = base.bias.detach().clone() if bias else None
        x = torch.randn(*lead, d_in, generator=g)  # (..., d_in)
        with torch.no_grad():
            base_out = base(x)  # (..., d_out)
        layer = cls(base, r, alpha)
        with torch.no_grad():
            start_gap = float((layer(x) - base_out).abs().max())
        n_trainable = int(sum(p.numel() for p in layer.parameters() if p.requires_grad))
        # the output and the merged weight for given A and B
        A0 = torch.randn(r, d_in, generator=g) / d_in ** 0.5  # (r, d_in)
        B0 = 0.3 * torch.randn(d_out, r, generator=g)  # (d_out, r)
        with torch.no_grad():
            keep = layer.A.detach().clone(), layer.B.detach().clone()
            layer.A.copy_(A0)
            layer.B.copy_(B0)
            output = layer(x).detach().clone()
            merged = layer.merged_weight().detach().clone()
            layer.A.copy_(keep[0])
            layer.B.copy_(keep[1])
        # a small regression: the target is the base plus a rank-r change
        target_delta = 0.5 * torch.randn(d_out, r, generator=g) @ torch.randn(r, d_in, generator=g) / d_in ** 0.5
        xs = torch.randn(64, d_in, generator=g)
        ys = xs @ (w0 + target_delta).T + (b0 if bias else 0.0)
        params = [p for p in layer.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=LORA_LR)
        losses = []
        for _ in range(LORA_STEPS):
            loss = ((layer(xs) - ys) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        base_frozen = bool(torch.equal(base.weight.detach(), w0) and (not bias or torch.equal(base.bias.detach(), b0)))
        return start_gap, n_trainable, output, merged, base_frozen, bool(losses[-1] < 0.5 * losses[0])

    return run


def mp_run(fn):
    """The ``adapt`` of ``mixed_precision_sgd_step``: run ``fn`` for the case's steps from ``master`` and a zero
    velocity, feeding its master and velocity back in; report the dtype and the values of the master, the velocity
    and the weight, in that order, the values as float32 (numpy has no bfloat16)."""

    def run(master: torch.Tensor, grads: torch.Tensor, lr: float, momentum: float = 0.9,
            model_dtype: torch.dtype = torch.bfloat16):
        m, v = master.clone(), torch.zeros_like(master)  # the velocity starts at zero, float32
        weight = None
        for g in grads:  # grads: (steps, n) bfloat16
            out = fn(m.clone(), v.clone(), g.clone(), lr, momentum, model_dtype)
            if not isinstance(out, tuple) or len(out) != 3:
                raise TypeError(f"got a {type(out).__name__}; return a tuple of three tensors (new master, new "
                                "velocity, the model's weight)")
            m, v, weight = out
        as_float = (lambda t: t.detach().float() if isinstance(t, torch.Tensor) else t)  # numpy has no bfloat16
        dtype = (lambda t: str(t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__)
        return dtype(m), as_float(m), dtype(v), as_float(v), dtype(weight), as_float(weight)

    return run
