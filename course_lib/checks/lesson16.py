"""Checks for lesson 16's exercises: a LoRA layer, LoRA's parameter count, AdamW's memory, and mixed precision's bug.

* ``LoRALinear`` (a whole-algorithm build): a frozen ``torch.nn.Linear`` with a rank-r adapter beside it,
  h = W x + b + (alpha / r) B A x (Hu et al. 2021, Eq. 3, with the ``alpha / r`` scaling of their Section 4.1), B
  zero at the start so the layer starts as its base, only A and B trainable, and the merged weight W + (alpha / r) B A
  that :func:`course_lib.llm.finetune.merge_lora` folds in; checked by behaviour (the output at the start, what
  trains, the output and merged weight for given A and B, a small regression that must learn);
* ``lora_param_count``: how many parameters rank-r adapters train on the layers whose name is in a target list,
  r (d_in + d_out) per adapted layer, as peft's ``target_modules`` chooses them;
* ``adam_memory_bytes``: the bytes of the weights, the gradients and AdamW's two moment estimates, the reason
  full fine-tuning needs about four times the model's size and LoRA little more than the model;
* spot the bug: ``bf16_bug`` names what is wrong with an SGD step on bfloat16 weights (a graded choice), and
  ``mixed_precision_sgd_step`` fixes it with a float32 master copy (Micikevicius et al. 2018).

Shapes follow ``torch.nn.Linear``: a weight W is (d_out, d_in); LoRA's A is (r, d_in) and B is (d_out, r).
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.lesson16 import lora_run, mp_run
from course_lib.harness.tensors import generator

# ---- references ----------------------------------------------------------------------------


class LoRALinear(torch.nn.Module):
    """Reference: a frozen linear layer with a rank-``r`` LoRA adapter, h = W x + b + (alpha / r) B A x.

    Attributes: ``base`` (the frozen ``torch.nn.Linear``), ``A`` (r, d_in) and ``B`` (d_out, r) the only trainable
    parameters (A random, B zero at the start), ``scale`` = alpha / r.
    """

    def __init__(self, base: torch.nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        d_out, d_in = base.weight.shape
        self.A = torch.nn.Parameter(torch.randn(r, d_in) / d_in ** 0.5)  # (r, d_in)
        self.B = torch.nn.Parameter(torch.zeros(d_out, r))  # (d_out, r): the layer starts as its base
        self.scale = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_out)."""
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T

    def merged_weight(self) -> torch.Tensor:
        """W + (alpha / r) B A, (d_out, d_in)."""
        return self.base.weight + self.scale * (self.B @ self.A)


def lora_param_count(named_shapes: dict, targets, r: int) -> int:
    """Reference: the trainable parameters of rank-``r`` LoRA adapters on the linear layers whose name's last part
    (after the last ".") is in ``targets``: r (d_in + d_out) per adapted layer of weight shape (d_out, d_in)."""
    return int(sum(r * (d_in + d_out) for name, (d_out, d_in) in named_shapes.items()
                   if name.rsplit(".", 1)[-1] in targets))


def adam_memory_bytes(n_params: int, n_trainable: int, bytes_per_param: int) -> tuple[int, int, int, int]:
    """Reference: ``(weights, gradients, adam_moments, total)`` in bytes when training with AdamW.

    Every parameter is stored (``n_params``); only the trained ones (``n_trainable``) get a gradient and AdamW's
    two moment estimates (m and v), each the size of the parameter. One dtype of ``bytes_per_param`` bytes for
    all of them (4 for float32, 2 for bfloat16). Activations are not counted.
    """
    weights = n_params * bytes_per_param
    gradients = n_trainable * bytes_per_param
    moments = 2 * n_trainable * bytes_per_param
    return weights, gradients, moments, weights + gradients + moments


def mixed_precision_sgd_step(master: torch.Tensor, velocity: torch.Tensor, grad: torch.Tensor, lr: float,
                             momentum: float = 0.9, model_dtype: torch.dtype = torch.bfloat16
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference: one SGD-with-momentum step (torch's convention, no dampening) on a float32 master copy.

        velocity <- momentum * velocity + grad;   master <- master - lr * velocity;   weight = master in model_dtype

    Returns ``(new_master, new_velocity, weight)``: float32, float32, ``model_dtype`` (bfloat16 or float16).
    """
    new_velocity = momentum * velocity + grad.float()  # float32 optimiser state
    new_master = master - lr * new_velocity  # float32: an update of 1e-3 on 1.0 survives
    return new_master, new_velocity, new_master.to(model_dtype)


def bf16_bug() -> str:
    """The letter of the statement that names the bug of ``bf16_sgd_step_buggy`` (exercise 16)."""
    return "C"


# ---- LoRALinear -------------------------------------------------------------------------------

_LORA_RULE = ("freeze the base (weight and bias); A (r, d_in) random and B (d_out, r) zero, both Parameters; forward: "
              "the base's output plus alpha / r times B A x; merged_weight: W plus alpha / r times B A.")


def LoRALinear_cases() -> list[Case]:
    """Seeded cases for the ``LoRALinear`` build: (seed, d_in, d_out, r, alpha, bias, leading shape of x)."""
    return [
        Case((20, 4, 3, 1, 2.0), {}, "a rank-1 adapter on a 4 -> 3 layer",
             "at the start the layer must compute exactly what its base computes (start_gap 0): B starts at zero, "
             "A does not (with A = 0 too, no gradient would ever reach B). Only A and B train: r * (d_in + d_out) "
             "= 7 trainable entries here, the base's weight and bias frozen."),
        Case((21, 6, 5, 2, 5.0), {}, "alpha not a multiple of r: scale 5 / 2",
             "the adapter's output is multiplied by alpha / r as a true division (2.5 here), not alpha alone, not "
             "alpha // r, not alpha / sqrt(r). The check sets A and B to given values and compares your output."),
        Case((22, 8, 8, 4, 8.0, False), {}, "a layer without bias",
             "call the base layer itself for W x (+ b): it knows whether it has a bias. A is (r, d_in) and B is "
             "(d_out, r), as peft's lora_A and lora_B weights."),
        Case((23, 5, 9, 3, 6.0, True, (2, 3)), {}, "a tall layer (5 -> 9) on a batch of sequences (2, 3, 5)",
             "the input may have any leading shape (..., d_in): multiply on the last axis (x times A transposed, then "
             "times B transposed) rather than reshaping. merged_weight is (d_out, d_in) = (9, 5), the same shape as "
             "the base's weight."),
        Case((24, 6, 4, 2, 4.0), {}, "training: the base must not move",
             "the check trains every parameter that requires a gradient with Adam: if the base's weight or bias "
             "still requires one, it moves (base_frozen False) and the count of trainable entries is wrong. "
             + _LORA_RULE),
    ]


def LoRALinear_hidden_cases() -> list[Case]:
    """Grader-only cases: other shapes, ranks and scales than the notebook's."""
    return [
        Case((120, 7, 2, 2, 1.0), {}, "alpha below r: the update scaled down", _LORA_RULE),
        Case((121, 10, 6, 4, 32.0, False), {}, "rank 4, alpha 32, no bias", _LORA_RULE),
        Case((122, 3, 12, 3, 3.0, True, (4, 2)), {}, "a rank as large as d_in, 3-d input", _LORA_RULE),
    ]


# ---- lora_param_count ----------------------------------------------------------------------

SMOLLM2_LAYER = {"self_attn.q_proj": (576, 576), "self_attn.k_proj": (192, 576), "self_attn.v_proj": (192, 576),
                 "self_attn.o_proj": (576, 576), "mlp.gate_proj": (1536, 576), "mlp.up_proj": (1536, 576),
                 "mlp.down_proj": (576, 1536)}
"""The (d_out, d_in) of the 7 projections of one SmolLM2-135M decoder layer, by name: q, k, v, o (attention, 9 query
heads and 3 key-value heads of 64), gate, up, down (the MLP, width 1536)."""
ALL_SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def smollm2_shapes(layers: int = 30) -> dict:
    """The named (d_out, d_in) of every linear layer of SmolLM2-135M's body: the 7 projections of each decoder layer,
    and the LM head (tied to the embedding, never adapted by the course)."""
    shapes = {f"model.layers.{i}.{name}": shape for i in range(layers) for name, shape in SMOLLM2_LAYER.items()}
    shapes["lm_head"] = (49152, 576)
    return shapes


_COUNT_RULE = ("for every layer whose name's last part (after the last '.') is one of targets, add r * d_in (A) + "
               "d_out * r (B), with (d_out, d_in) its weight's shape; other layers add nothing; an int.")


def lora_param_count_cases() -> list[Case]:
    """Cases for ``lora_param_count`` (plain numbers and names: nothing random)."""
    return [
        Case(({"q_proj": (64, 64)}, ("q_proj",), 4), {}, "one square 64 x 64 layer, rank 4",
             "the adapter of one layer is A (r, d_in) and B (d_out, r): r * d_in + d_out * r = 4 * 64 + 64 * 4 = "
             "512 parameters, not d_out * d_in (that is the frozen W) and not r * d_in alone (B counts too)."),
        Case(({"layers.0.self_attn.k_proj": (192, 576)}, ("k_proj",), 8), {},
             "one non-square layer: SmolLM2's k_proj, (d_out, d_in) = (192, 576), rank 8",
             "the shape is (d_out, d_in) as torch.nn.Linear stores it: A is (8, 576), B is (192, 8): "
             "8 * 576 + 192 * 8 = 6144. The name is a dotted path; the target names its last part."),
        Case(({f"layers.0.{k}": v for k, v in SMOLLM2_LAYER.items()}, ("q_proj", "v_proj"), 8), {},
             "one SmolLM2 layer, adapters on q_proj and v_proj only (Hu et al.'s choice)",
             "only the layers named in targets get an adapter: q_proj (576 x 576) and v_proj (192 x 576) here, "
             "9216 + 6144 = 15360. The other five projections train nothing."),
        Case(({"layers.0.mlp.up_proj": (1536, 576), "layers.0.mlp.gate_up_proj": (3072, 576),
               "layers.0.self_attn.o_proj": (576, 576)}, ("up_proj",), 2), {},
             "a fused gate_up_proj next to up_proj",
             "compare the name's LAST PART with the targets exactly: 'gate_up_proj' ends with the letters of "
             "'up_proj' but is another layer, and is not adapted. Split the name at the dots."),
        Case((smollm2_shapes(), ALL_SEVEN, 8), {}, "all of SmolLM2-135M's linear layers, the seven projections, rank 8",
             "sum over every adapted layer, repeated shapes included (each layer has its own adapter); the LM head "
             "is not a target. " + _COUNT_RULE),
    ]


def lora_param_count_hidden_cases() -> list[Case]:
    """Grader-only cases: other layers, targets and ranks than the notebook's."""
    return [
        Case(({"l.0.q": (4096, 4096), "l.0.k": (1024, 4096), "l.0.mlp": (14336, 4096), "l.1.q": (4096, 4096)},
              ("q", "mlp"), 16), {}, "layers of an 8 B model, two targets, rank 16", _COUNT_RULE),
        Case((smollm2_shapes(), ("o_proj", "down_proj"), 1), {}, "SmolLM2's output projections, rank 1", _COUNT_RULE),
        Case(({"a.v_proj": (10, 3), "b.v_proj_extra": (7, 7)}, ("v_proj", "k_proj"), 5), {},
             "a rank larger than d_in, a target that matches nothing", _COUNT_RULE),
    ]


# ---- adam_memory_bytes ---------------------------------------------------------------------

_MEMORY_RULE = ("weights = n_params * bytes_per_param; gradients = n_trainable * bytes_per_param; adam_moments = "
                "2 * n_trainable * bytes_per_param; return (weights, gradients, adam_moments, total) with total their "
                "sum.")


def adam_memory_bytes_cases() -> list[Case]:
    """Cases for ``adam_memory_bytes`` (plain numbers)."""
    return [
        Case((1_000, 1_000, 4), {}, "every parameter trained, float32",
             "in full fine-tuning every parameter has a weight, a gradient and AdamW's two moments (m and v): "
             "4 copies of 4,000 bytes. Return a tuple of 4 ints: (weights, gradients, adam_moments, total)."),
        Case((1_000, 100, 4), {}, "a tenth of the parameters trained, float32",
             "only the trained parameters get a gradient and the moments; the frozen ones still need their "
             "weights: weights = n_params * 4, gradients = n_trainable * 4."),
        Case((1_000, 100, 2), {}, "the same in bfloat16: 2 bytes per number",
             "every number takes bytes_per_param bytes, so multiply each count by it: these are bytes, not "
             "parameters."),
        Case((134_515_008, 2_442_240, 4), {}, "SmolLM2-135M with rank-8 LoRA adapters, float32",
             "AdamW keeps two moments per trained parameter (the mean of the gradient and of its square): "
             "adam_moments = 2 * n_trainable * bytes_per_param."),
        Case((134_515_008, 134_515_008, 2), {}, "SmolLM2-135M, every parameter, bfloat16", _MEMORY_RULE),
    ]


def adam_memory_bytes_hidden_cases() -> list[Case]:
    """Grader-only cases: other sizes than the notebook's."""
    return [
        Case((7_000_000_000, 7_000_000_000, 2), {}, "a 7 B model, every parameter, bfloat16", _MEMORY_RULE),
        Case((7_000_000_000, 20_000_000, 2), {}, "a 7 B model with LoRA adapters, bfloat16", _MEMORY_RULE),
        Case((500, 0, 4), {}, "nothing trained: inference", _MEMORY_RULE),
    ]


# ---- spot the bug: bf16_bug and mixed_precision_sgd_step ----------------------------------------

BF16_FEEDBACK = {
    "A": "run the buggy step in float32 with the same learning rate: does 1.0 + 0.001 survive there? If it does, the "
         "size of the step alone is not the problem (and real fine-tuning steps are smaller still).",
    "B": "the gradient's precision changes the update by a fraction of a percent at most; the update here is lost "
         "entirely, whatever the gradient's dtype. Look at where the sum is stored.",
    "D": "bfloat16 has float32's 8 exponent bits and so float32's range (up to about 3e38); 65,504 is float16's "
         "limit. Nothing here is large.",
}


def _bf16_case() -> list[Case]:
    return [Case((), {}, "your answer", "print torch.tensor(1.0, dtype=torch.bfloat16) + 0.001 and compare with the "
                                        "same sum in float32: where does the step go?")]


def _mp_grads(seed: int, steps: int, n: int, scale: float = 1.0, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """(steps, n) seeded gradients in the model's 16-bit dtype."""
    return (scale * torch.randn(steps, n, generator=generator(seed))).to(dtype)


_MP_RULE = ("keep the master and the velocity in float32: velocity = momentum * velocity + the gradient converted to "
            "float32, master = master - lr * velocity; the model's weight is the new master rounded to model_dtype; "
            "return (new master, new velocity, weight).")


def mixed_precision_sgd_step_cases() -> list[Case]:
    """Cases for ``mixed_precision_sgd_step``: (master (n,) float32, grads (steps, n) bfloat16, lr, momentum)."""
    return [
        Case((torch.ones(4), torch.full((1, 4), -1.0, dtype=torch.bfloat16), 1e-3), {},
             "weights of 1.0, one step of +0.001",
             "the master copy must come back as float32 with 1.001 in it: 1.0 + 0.001 in bfloat16 is 1.0 (its "
             "numbers near 1 are 1/128 apart). The velocity is optimiser state: float32 too. Convert the gradient to "
             "float32 BEFORE it meets the velocity and the master, and return (master, velocity, the weight in "
             "model_dtype, made from the new master)."),
        Case((torch.ones(3), torch.full((10, 3), -1.0, dtype=torch.bfloat16), 1e-4, 0.0), {},
             "ten steps of +0.0001 from 1.0, no momentum",
             "with momentum 0 the velocity is just the gradient: ten steps add 0.001 to the float32 master (1.001); "
             "its bfloat16 copy is still 1.0, and that is right: the master remembers what the copy cannot show."),
        Case((torch.ones(2), torch.full((8, 2), -1.0, dtype=torch.bfloat16), 1e-3, 0.9), {},
             "eight steps with momentum 0.9",
             "the velocity is optimiser state: keep it in float32 too, update it first (momentum times the old "
             "velocity plus the gradient), then step the master with it."),
        Case((torch.linspace(-2.0, 2.0, 6), _mp_grads(30, 5, 6, dtype=torch.float16), 1e-2, 0.9, torch.float16), {},
             "random gradients, five steps, a float16 model",
             "the bfloat16 weight is only a rounded COPY of the master for the next forward pass: never update it "
             "and never carry it to the next step. Make it in the model's dtype (model_dtype: float16 here). "
             + _MP_RULE),
    ]


def mixed_precision_sgd_step_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((torch.full((5,), 100.0), torch.full((20, 5), -1.0, dtype=torch.bfloat16), 0.01, 0.5), {},
             "weights of 100, twenty steps, momentum 0.5", _MP_RULE),
        Case((torch.linspace(0.5, 3.0, 8), _mp_grads(31, 12, 8, 0.3), 3e-3, 0.9), {}, "twelve small random steps",
             _MP_RULE),
        Case((torch.full((3,), 2.0), torch.full((6, 3), 1.0, dtype=torch.float16), 2e-4, 0.0, torch.float16), {},
             "a float16 model, six small steps down", _MP_RULE),
    ]


# ---- tier-2 hints: hint(name, 2) ---------------------------------------------------------------

HINTS = {
    "LoRALinear": (
        "In __init__: keep the base layer as an attribute and switch off requires_grad on each of its parameters "
        "(weight and bias). Read d_out and d_in from the base's weight shape (d_out first, as torch.nn.Linear "
        "stores it). A is a Parameter of shape (r, d_in), small random numbers (a normal divided by sqrt(d_in) is "
        "fine); B a Parameter of shape (d_out, r) of zeros; store the scale alpha / r. In forward: the base layer's "
        "output (it adds its own bias) plus the scale times the input sent through A then B: A maps d_in to r and B "
        "maps r to d_out, so with x on the last axis both appear transposed. merged_weight: the base's weight plus "
        "the scale times the (d_out, d_in) product of B and A. Worked example: d_in 4, d_out 3, r 1, alpha 2: 4 + 3 "
        "= 7 trainable entries, scale 2, and the output at the start equals the base's."),
    "lora_param_count": (
        "Walk through the dict's items: each is a dotted name and a (d_out, d_in) shape. The part of the name after "
        "the last dot says which projection it is; only when that part is exactly one of targets does the layer get "
        "an adapter, worth r * d_in for A and d_out * r for B. A substring test is the trap ('up_proj' is inside "
        "'gate_up_proj'). Worked example: q_proj (576, 576) and v_proj (192, 576) at rank 8: 8 * 1152 + 8 * 768 = "
        "15360. Return an int."),
    "adam_memory_bytes": (
        "Count numbers first, then multiply by the bytes per number. Every parameter has a weight (n_params numbers); "
        "only trained parameters have a gradient (n_trainable numbers) and AdamW's two moments, m and v "
        "(2 * n_trainable numbers). Worked example: 1,000 parameters, 100 trained, bfloat16 (2 bytes): weights "
        "2,000, gradients 200, moments 400, total 2,600 bytes. Return four ints in that order."),
    "mixed_precision_sgd_step": (
        "The fix keeps everything the optimiser owns in float32: the master weights and the velocity. The bfloat16 "
        "weight is a copy for the model's forward pass, made fresh from the master after every step and never fed "
        "back. So: bring the gradient to float32; new velocity = momentum times the old one plus the gradient; new "
        "master = master minus lr times the new velocity; then round the new master to the model's dtype. Worked "
        "example: "
        "master 1.0, velocity 0, gradient -1, lr 1e-3, momentum 0.9: velocity -1, master 1.001 (float32), weight "
        "1.0 in bfloat16; the next step gives velocity -1.9 and master 1.0029."),
}

EXERCISES = {
    "LoRALinear": Exercise("LoRALinear", LoRALinear, LoRALinear_cases, LoRALinear_hidden_cases, adapt=lora_run,
                           names=("start_gap", "n_trainable", "output", "merged", "base_frozen", "loss_fell"),
                           rtol=1e-4, atol=1e-5),
    "lora_param_count": Exercise("lora_param_count", lora_param_count, lora_param_count_cases,
                                 lora_param_count_hidden_cases, rtol=0, atol=0),
    "adam_memory_bytes": Exercise("adam_memory_bytes", adam_memory_bytes, adam_memory_bytes_cases,
                                  adam_memory_bytes_hidden_cases, names=("weights", "gradients", "adam_moments",
                                                                         "total"), rtol=0, atol=0),
    "bf16_bug": Exercise("bf16_bug", bf16_bug, _bf16_case, list, kind="answer",
                         comparer=functools.partial(compare_answers, feedback=BF16_FEEDBACK),
                         explanation="bfloat16 keeps 8 bits of mantissa, so the numbers next to 1.0 are 1/128 "
                                     "(about 0.008) apart: an update of about 0.001 is less than half that gap and "
                                     "1.0 + 0.001 rounds back to 1.0, at every step, which is why 100 steps leave "
                                     "the weight at exactly 1.0 where float32 reaches about 1.09. The step is not "
                                     "too small in itself, only next to the weight it is added to; so mixed "
                                     "precision keeps a float32 master copy of the weights and of the optimiser's "
                                     "state, and gives the model a bfloat16 copy for its forward pass. Sixteen bits "
                                     "are enough to compute with, not to accumulate many small changes in."),
    "mixed_precision_sgd_step": Exercise("mixed_precision_sgd_step", mixed_precision_sgd_step,
                                         mixed_precision_sgd_step_cases, mixed_precision_sgd_step_hidden_cases,
                                         adapt=mp_run, names=("master_dtype", "master", "velocity_dtype", "velocity",
                                                                "weight_dtype", "weight"),
                                         rtol=1e-6, atol=1e-7),
}

__getattr__ = check_functions(EXERCISES)
