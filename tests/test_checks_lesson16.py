"""Lesson 16's checks pass the references (and peft's own numbers) and fail plausible wrong versions with the right
hint."""

from __future__ import annotations

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson16 import (
    ALL_SEVEN,
    BF16_FEEDBACK,
    EXERCISES,
    SMOLLM2_LAYER,
    LoRALinear,
    adam_memory_bytes,
    check_adam_memory_bytes,
    check_bf16_bug,
    check_lora_param_count,
    check_LoRALinear,
    check_mixed_precision_sgd_step,
    lora_param_count,
    mixed_precision_sgd_step,
    smollm2_shapes,
)
from course_lib.llm import finetune, models

# ---- the references agree with peft and with independent computations -------------------------


def test_lora_linear_computes_what_peft_computes_and_merges_as_merge_lora(tokenizer):
    lm, _ = models.tiny_model(seed=5, tokenizer=tokenizer)
    plain = lm.model.layers[0].mlp.up_proj
    mine = LoRALinear(torch.nn.Linear(plain.in_features, plain.out_features, bias=plain.bias is not None), 4, 8.0)
    with torch.no_grad():
        mine.base.weight.copy_(plain.weight)
    finetune.add_lora(lm.model, rank=4)
    wrapped = lm.model.layers[0].mlp.up_proj
    with torch.no_grad():
        wrapped.lora_B["default"].weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
        mine.A.copy_(wrapped.lora_A["default"].weight)
        mine.B.copy_(wrapped.lora_B["default"].weight)
    x = torch.randn(2, 3, plain.in_features, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(mine(x), wrapped(x), atol=1e-5)  # W x + (alpha / r) B A x, the course's alpha = 2r
        delta = wrapped.get_delta_weight("default")
        assert torch.allclose(mine.merged_weight() - mine.base.weight, delta, atol=1e-6)
        finetune.merge_lora(lm.model)
        assert torch.allclose(lm.model.layers[0].mlp.up_proj.weight, mine.merged_weight(), atol=1e-6)


def test_lora_linear_starts_as_its_base_and_trains_only_a_and_b():
    base = torch.nn.Linear(6, 4)
    layer = LoRALinear(base, 2, 4.0)
    x = torch.randn(5, 6)
    assert torch.equal(layer(x), base(x))
    assert sorted(n for n, p in layer.named_parameters() if p.requires_grad) == ["A", "B"]
    assert layer.A.shape == (2, 6) and layer.B.shape == (4, 2) and layer.scale == 2.0
    for case in EXERCISES["LoRALinear"].cases() + EXERCISES["LoRALinear"].hidden_cases():
        start_gap, n_trainable, output, merged, base_frozen, loss_fell = EXERCISES["LoRALinear"].call(LoRALinear)(
            *case.args)
        seed, d_in, d_out, r = case.args[:4]
        assert start_gap == 0.0 and n_trainable == r * (d_in + d_out) and base_frozen and loss_fell, case.about
        assert merged.shape == (d_out, d_in) and output.shape[-1] == d_out


def test_lora_param_count_matches_peft_on_smollm2_shapes(tokenizer):
    lm, _ = models.tiny_model(seed=0, tokenizer=tokenizer)
    linears = {n: tuple(m.weight.shape) for n, m in lm.model.named_modules() if isinstance(m, torch.nn.Linear)}
    trainable = sum(p.numel() for p in finetune.add_lora(lm.model, rank=3))
    assert lora_param_count(linears, finetune.LORA_TARGETS, 3) == trainable
    # SmolLM2-135M: 30 layers of the 7 projections in SMOLLM2_LAYER; rank 8 trains 2,442,240 of 134,515,008
    assert lora_param_count(smollm2_shapes(), ALL_SEVEN, 8) == 2_442_240
    assert set(ALL_SEVEN) == set(finetune.LORA_TARGETS) and len(SMOLLM2_LAYER) == 7
    assert isinstance(lora_param_count({"a.q": (3, 2)}, ("q",), 1), int)


def test_adam_memory_bytes_by_hand():
    assert adam_memory_bytes(10, 10, 4) == (40, 40, 80, 160)  # full fine-tuning: 4 copies of the weights
    assert adam_memory_bytes(10, 2, 2) == (20, 4, 8, 32)
    w, g, m, total = adam_memory_bytes(134_515_008, 134_515_008, 4)
    assert total == 16 * 134_515_008 and m == 2 * g == 2 * w


def test_cases_probe_what_they_say():
    lora = EXERCISES["LoRALinear"].cases()
    assert lora[1].args[4] % lora[1].args[3] != 0  # alpha not a multiple of r
    assert lora[2].args[5] is False  # no bias
    assert len(lora[3].args[6]) == 2  # a 3-d input
    counts = EXERCISES["lora_param_count"].cases()
    assert counts[1].args[0]["layers.0.self_attn.k_proj"] == (192, 576)
    assert "layers.0.mlp.gate_up_proj" in counts[3].args[0] and counts[3].args[1] == ("up_proj",)
    assert "lm_head" in counts[4].args[0]
    memory = EXERCISES["adam_memory_bytes"].cases()
    assert memory[1].args[1] < memory[1].args[0] and memory[2].args[2] == 2
    mp = EXERCISES["mixed_precision_sgd_step"].cases()
    assert (torch.tensor(1.0, dtype=torch.bfloat16) + 1e-3).item() == 1.0  # the bug the first case probes
    assert mp[3].args[4] == torch.float16


# ---- LoRALinear: wrong versions ------------------------------------------------------------------


class LoraRandomB(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.B = torch.nn.Parameter(0.1 * torch.randn_like(self.B))


class LoraZeroBoth(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.A = torch.nn.Parameter(torch.zeros_like(self.A))


class LoraBaseTrains(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        for p in self.base.parameters():
            p.requires_grad_(True)


class LoraBiasTrains(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(True)


class LoraAlphaOnly(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = alpha


class LoraRsLora(LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = alpha / r ** 0.5


class LoraNoBias(LoRALinear):
    def forward(self, x):
        return x @ self.base.weight.T + self.scale * (x @ self.A.T) @ self.B.T


class LoraMergedUnscaled(LoRALinear):
    def merged_weight(self):
        return self.base.weight + self.B @ self.A


class LoraFlattens(LoRALinear):
    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        return super().forward(flat)


@pytest.mark.parametrize("wrong, message", [
    (LoraRandomB, r"(?s)case 1 of 5 \(a rank-1 adapter on a 4 -> 3 layer.*result\[0\] \(start_gap\).*B starts at zero"),
    (LoraZeroBoth, r"(?s)case 1 of 5 .*result\[5\] \(loss_fell\).*with A = 0 too, no gradient"),
    (LoraBaseTrains, r"(?s)case 1 of 5 .*result\[1\] \(n_trainable\).*Only A and B train"),
    (LoraBiasTrains, r"(?s)case 1 of 5 .*result\[1\] \(n_trainable\).*weight and bias frozen"),
    (LoraAlphaOnly, r"(?s)case 2 of 5 \(alpha not a multiple of r.*result\[2\] \(output\).*not alpha alone"),
    (LoraRsLora, r"(?s)case 2 of 5 .*not alpha / sqrt\(r\)"),
    (LoraNoBias, r"(?s)case 1 of 5 .*result\[0\] \(start_gap\)"),
    (LoraMergedUnscaled, r"(?s)case 1 of 5 .*result\[3\] \(merged\)"),
    (LoraFlattens, r"(?s)case 4 of 5 \(a tall layer \(5 -> 9\) on a batch of sequences.*any leading shape"),
])
def test_lora_linear_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_LoRALinear(wrong)
    assert "Hint:" in str(err.value)


def test_lora_linear_check_is_fast_and_passes_the_reference():
    import time

    started = time.perf_counter()
    assert check_LoRALinear(LoRALinear).status == "pass"
    assert time.perf_counter() - started < 10


# ---- lora_param_count: wrong versions ----------------------------------------------------------


def count_every_layer(named, targets, r):
    return sum(r * (d_in + d_out) for d_out, d_in in named.values())


def count_substring(named, targets, r):
    return sum(r * (d_in + d_out) for n, (d_out, d_in) in named.items() if any(t in n for t in targets))


def count_full_weights(named, targets, r):
    return sum(d_out * d_in for n, (d_out, d_in) in named.items() if n.split(".")[-1] in targets)


def count_a_only(named, targets, r):
    return sum(r * d_in for n, (d_out, d_in) in named.items() if n.split(".")[-1] in targets)


def count_unique_shapes(named, targets, r):
    shapes = {shape for n, shape in named.items() if n.split(".")[-1] in targets}
    return sum(r * (d_in + d_out) for d_out, d_in in shapes)


def count_square(named, targets, r):
    return sum(2 * r * d_in for n, (d_out, d_in) in named.items() if n.split(".")[-1] in targets)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (count_full_weights, r"(?s)case 1 of 5 \(one square 64 x 64 layer.*not d_out \* d_in"),
        (count_a_only, r"(?s)case 1 of 5 .*B counts too"),
        (count_square, r"(?s)case 2 of 5 \(one non-square layer.*8 \* 576 \+ 192 \* 8 = 6144"),
        (count_every_layer, r"(?s)case 3 of 5 \(one SmolLM2 layer, adapters on q_proj and v_proj only.*only the layers "
                            r"named in targets"),
        (count_substring, r"(?s)case 4 of 5 \(a fused gate_up_proj next to up_proj.*LAST PART"),
        (count_unique_shapes, r"(?s)case 5 of 5 \(all of SmolLM2-135M's linear layers.*repeated shapes included"),
    ],
)
def test_lora_param_count_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_lora_param_count(wrong)
    assert "Hint:" in str(err.value)


# ---- adam_memory_bytes: wrong versions ---------------------------------------------------------


def memory_moments_for_all(n_params, n_trainable, b):
    return n_params * b, n_trainable * b, 2 * n_params * b, n_params * b + n_trainable * b + 2 * n_params * b


def memory_gradients_for_all(n_params, n_trainable, b):
    return n_params * b, n_params * b, 2 * n_trainable * b, 2 * n_params * b + 2 * n_trainable * b


def memory_one_moment(n_params, n_trainable, b):
    return n_params * b, n_trainable * b, n_trainable * b, n_params * b + 2 * n_trainable * b


def memory_counts_not_bytes(n_params, n_trainable, b):
    return n_params, n_trainable, 2 * n_trainable, n_params + 3 * n_trainable


def memory_float32_always(n_params, n_trainable, b):
    return adam_memory_bytes(n_params, n_trainable, 4)


def memory_total_without_weights(n_params, n_trainable, b):
    w, g, m, _ = adam_memory_bytes(n_params, n_trainable, b)
    return w, g, m, g + m


def memory_total_only(n_params, n_trainable, b):
    return adam_memory_bytes(n_params, n_trainable, b)[3]


def memory_trainable_weights_only(n_params, n_trainable, b):
    return adam_memory_bytes(n_trainable, n_trainable, b)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (memory_moments_for_all, r"(?s)case 2 of 5 \(a tenth of the parameters trained.*result\[2\] \(adam_moments\)"
                                 r".*only the trained parameters get"),
        (memory_gradients_for_all, r"(?s)case 2 of 5 .*result\[1\] \(gradients\).*gradients = n_trainable \* 4"),
        (memory_one_moment, r"(?s)case 1 of 5 \(every parameter trained.*result\[2\] \(adam_moments\).*two moments"),
        (memory_counts_not_bytes, r"(?s)case 1 of 5 .*result\[0\] \(weights\): expected 4000, got 1000"),
        (memory_float32_always, r"(?s)case 3 of 5 \(the same in bfloat16.*bytes_per_param bytes"),
        (memory_total_without_weights, r"(?s)case 1 of 5 .*result\[3\] \(total\)"),
        (memory_total_only, r"(?s)case 1 of 5 .*expected a tuple of 4 items, got int.*tuple of 4 ints"),
        (memory_trainable_weights_only, r"(?s)case 2 of 5 .*result\[0\] \(weights\).*still need their weights"),
    ],
)
def test_adam_memory_bytes_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_adam_memory_bytes(wrong)
    assert "Hint:" in str(err.value)


# ---- spot the bug: bf16_bug and mixed_precision_sgd_step -------------------------------------------------


def test_bf16_bug_feedback_explains_without_the_answer():
    assert check_bf16_bug(" c ").status == "pass"
    for wrong, why in BF16_FEEDBACK.items():
        with pytest.raises(CheckFailed) as err:
            check_bf16_bug(wrong)
        assert why[:40] in str(err.value) and "'C'" not in str(err.value)


def mp_all_bf16(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    """The buggy step: everything in the model's 16-bit dtype."""
    v = momentum * velocity.to(model_dtype) + grad
    w = master.to(model_dtype) - lr * v
    return w, v, w


def mp_velocity_16bit(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    v = (momentum * velocity + grad.float()).to(model_dtype)
    m = master - lr * v.float()
    return m, v, m.to(model_dtype)


def mp_weight_float32(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    m, v, _ = mixed_precision_sgd_step(master, velocity, grad, lr, momentum, model_dtype)
    return m, v, m


def mp_no_momentum(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    m = master - lr * grad.float()
    return m, grad.float(), m.to(model_dtype)


def mp_always_bf16(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    m, v, _ = mixed_precision_sgd_step(master, velocity, grad, lr, momentum, model_dtype)
    return m, v, m.to(torch.bfloat16)


def mp_two_items(master, velocity, grad, lr, momentum=0.9, model_dtype=torch.bfloat16):
    m, v, w = mixed_precision_sgd_step(master, velocity, grad, lr, momentum, model_dtype)
    return m, w


@pytest.mark.parametrize("wrong, message", [
    (mp_all_bf16, r"(?s)case 1 of 4 \(weights of 1.0, one step of \+0.001.*result\[0\] \(master_dtype\): expected "
                  r"'torch.float32', got 'torch.bfloat16'.*1.0 \+ 0.001 in bfloat16 is 1.0"),
    (mp_velocity_16bit, r"(?s)case 1 of 4 .*result\[2\] \(velocity_dtype\).*The velocity is optimiser state: "
                        r"float32 too"),
    (mp_weight_float32, r"(?s)case 1 of 4 .*result\[4\] \(weight_dtype\): expected 'torch.bfloat16'"),
    (mp_no_momentum, r"(?s)case 3 of 4 \(eight steps with momentum 0.9"),
    (mp_always_bf16, r"(?s)case 4 of 4 \(random gradients, five steps, a float16 model.*model_dtype: float16 here"),
    (mp_two_items, r"(?s)case 1 of 4 .*raised TypeError: got a tuple; return a tuple of three tensors"),
])
def test_mixed_precision_sgd_step_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_mixed_precision_sgd_step(wrong)
    assert "Hint:" in str(err.value)


def test_mixed_precision_sgd_step_reference_by_hand():
    m, v, w = mixed_precision_sgd_step(torch.ones(2), torch.zeros(2), torch.full((2,), -1.0, dtype=torch.bfloat16),
                                       1e-3, 0.9)
    assert m.dtype == v.dtype == torch.float32 and w.dtype == torch.bfloat16
    assert torch.allclose(m, torch.full((2,), 1.001)) and torch.equal(w, torch.ones(2, dtype=torch.bfloat16))
    m, v, w = mixed_precision_sgd_step(m, v, torch.full((2,), -1.0, dtype=torch.bfloat16), 1e-3, 0.9)
    assert torch.allclose(v, torch.full((2,), -1.9)) and torch.allclose(m, torch.full((2,), 1.0029))
