"""Lesson 16's checks pass the references (and peft's own numbers) and fail plausible wrong versions with the right
hint."""

from __future__ import annotations

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson16 import (
    EXERCISES,
    SMOLLM2_LAYER,
    adam_memory_bytes,
    check_adam_memory_bytes,
    check_lora_delta,
    check_lora_param_count,
    lora_delta,
    lora_param_count,
)
from course_lib.llm import models

# ---- the references agree with peft and with independent computations -------------------------


def test_lora_delta_is_what_peft_adds_and_what_merging_folds_in(tokenizer):
    lm, _ = models.tiny_model(seed=5, tokenizer=tokenizer)
    layer = lm.model.layers[0].mlp.up_proj
    w0 = layer.weight.detach().clone()  # (16, 8)
    models.add_lora(lm.model, rank=4)
    wrapped = lm.model.layers[0].mlp.up_proj
    with torch.no_grad():
        wrapped.lora_B["default"].weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    A, B = wrapped.lora_A["default"].weight.detach(), wrapped.lora_B["default"].weight.detach()
    delta = lora_delta(A, B, 8.0, 4)  # the course's alpha = 2r
    assert delta.shape == w0.shape
    assert torch.allclose(delta, wrapped.get_delta_weight("default").detach(), atol=1e-7)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(wrapped(x), x @ (w0 + delta).T, atol=1e-5)  # W x + (alpha / r) B A x
        models.merge_lora(lm.model)
        assert torch.allclose(lm.model.layers[0].mlp.up_proj.weight, w0 + delta, atol=1e-6)


def test_lora_delta_has_rank_at_most_r():
    for case in EXERCISES["lora_delta"].cases() + EXERCISES["lora_delta"].hidden_cases():
        A, B, alpha, r = case.args
        assert torch.linalg.matrix_rank(lora_delta(A, B, alpha, r)) <= r


def test_lora_param_count_matches_peft_on_smollm2_shapes(tokenizer):
    lm, _ = models.tiny_model(seed=0, tokenizer=tokenizer)
    shapes = [tuple(m.weight.shape) for n, m in lm.model.named_modules() if n.rsplit(".", 1)[-1] in models.LORA_TARGETS]
    trainable = sum(p.numel() for p in models.add_lora(lm.model, rank=3))
    assert lora_param_count(shapes, 3) == trainable
    # SmolLM2-135M: 30 layers of the 7 projections in SMOLLM2_LAYER; rank 8 trains 2,442,240 of 134,515,008
    assert lora_param_count(SMOLLM2_LAYER * 30, 8) == 2_442_240
    assert isinstance(lora_param_count([(3, 2)], 1), int)


def test_adam_memory_bytes_by_hand():
    assert adam_memory_bytes(10, 10, 4) == (40, 40, 80, 160)  # full fine-tuning: 4 copies of the weights
    assert adam_memory_bytes(10, 2, 2) == (20, 4, 8, 32)
    w, g, m, total = adam_memory_bytes(134_515_008, 134_515_008, 4)
    assert total == 16 * 134_515_008 and m == 2 * g == 2 * w


def test_cases_probe_what_they_say():
    delta_cases = EXERCISES["lora_delta"].cases()
    assert torch.all(lora_delta(*delta_cases[1].args) == 0)  # B = 0: the update is 0
    A, B, alpha, r = delta_cases[3].args
    assert B.shape[0] != A.shape[1]  # non-square
    assert delta_cases[2].args[2] % delta_cases[2].args[3] != 0  # alpha not a multiple of r
    counts = EXERCISES["lora_param_count"].cases()
    assert counts[1].args[0][0][0] != counts[1].args[0][0][1]
    assert len(set(counts[2].args[0])) < len(counts[2].args[0])  # a repeated shape
    memory = EXERCISES["adam_memory_bytes"].cases()
    assert memory[1].args[1] < memory[1].args[0] and memory[2].args[2] == 2


# ---- lora_delta: wrong versions ----------------------------------------------------------------


def delta_unscaled(A, B, alpha, r):
    return B @ A


def delta_alpha_only(A, B, alpha, r):
    return alpha * (B @ A)


def delta_integer_division(A, B, alpha, r):
    return (alpha // r) * (B @ A)


def delta_rslora(A, B, alpha, r):
    return alpha / r ** 0.5 * (B @ A)


def delta_transposed(A, B, alpha, r):
    return (alpha / r) * (A.T @ B.T)


def delta_inverted_scale(A, B, alpha, r):
    return (r / alpha) * (B @ A)


def delta_rank_shaped(A, B, alpha, r):
    """Multiplies the factors the wrong way round: (r, d_in) @ ... fails or gives an (r, r) matrix."""
    return (alpha / r) * (A @ B) if A.shape[1] == B.shape[0] else (alpha / r) * (A.T @ B.T)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (delta_unscaled, r"(?s)case 1 of 5 \(a rank-1 adapter on a 4 x 4 weight.*times alpha / r"),
        (delta_alpha_only, r"(?s)case 3 of 5 \(alpha not a multiple of r.*not alpha alone"),
        (delta_integer_division, r"(?s)case 3 of 5 .*not alpha // r"),
        (delta_rslora, r"(?s)case 3 of 5 .*not alpha / sqrt\(r\)"),
        (delta_transposed, r"(?s)case 1 of 5 \(a rank-1 adapter.*the matrix product B @ A"),
        (delta_inverted_scale, r"(?s)case 1 of 5 .*alpha / r"),
        (delta_rank_shaped, r"(?s)case 1 of 5 .*expected shape \(4, 4\), got shape \(1, 1\).*B @ A"),
    ],
)
def test_lora_delta_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_lora_delta(wrong)
    assert "Hint:" in str(err.value)


def test_lora_delta_equivalent_forms_pass():
    assert check_lora_delta(lambda A, B, alpha, r: torch.einsum("or,ri->oi", B, A) * alpha / r).status == "pass"
    assert check_lora_delta(lambda A, B, alpha, r: (B * (alpha / r)) @ A).status == "pass"


# ---- lora_param_count: wrong versions ----------------------------------------------------------


def count_full_weights(shapes, r):
    return sum(d_out * d_in for d_out, d_in in shapes)


def count_a_only(shapes, r):
    return sum(r * d_in for d_out, d_in in shapes)


def count_product(shapes, r):
    return sum(r * d_in * d_out for d_out, d_in in shapes)


def count_unique_shapes(shapes, r):
    return sum(r * (d_in + d_out) for d_out, d_in in set(shapes))


def count_square(shapes, r):
    return sum(2 * r * d_in for d_out, d_in in shapes)


def count_without_rank(shapes, r):
    return sum(d_in + d_out for d_out, d_in in shapes)


def count_r_squared(shapes, r):
    return sum(r * (d_in + d_out) + r * r for d_out, d_in in shapes)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (count_full_weights, r"(?s)case 1 of 5 \(one square 64 x 64 layer.*not d_out \* d_in"),
        (count_a_only, r"(?s)case 1 of 5 .*B counts too"),
        (count_product, r"(?s)case 1 of 5 .*expected 512, got 16384"),
        (count_unique_shapes, r"(?s)case 3 of 5 \(three layers, two of them with the same shape.*repeated shapes"),
        (count_square, r"(?s)case 2 of 5 \(one non-square layer.*8 \* 576 \+ 192 \* 8 = 6144"),
        (count_without_rank, r"(?s)case 1 of 5 .*r \* d_in \+ d_out \* r"),
        (count_r_squared, r"(?s)case 1 of 5 .*expected 512, got 528"),
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
