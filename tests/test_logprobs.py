"""token_logprobs against the naive log-softmax-then-gather, and masked sums."""

from __future__ import annotations

import pytest
import torch

from course_lib.rl import masked_sum, token_logprobs


def naive_token_logprobs(logits, tokens):
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 6)])
def test_equals_naive(shape):
    g = torch.Generator().manual_seed(0)
    V = 11
    logits = torch.randn(*shape, V, generator=g) * 5
    tokens = torch.randint(0, V, shape, generator=g)
    torch.testing.assert_close(token_logprobs(logits, tokens), naive_token_logprobs(logits, tokens))


def test_stable_for_huge_logits_and_bf16():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]])
    out = token_logprobs(logits, torch.tensor([0]))
    assert torch.isfinite(out).all() and abs(out.item()) < 1e-6
    out16 = token_logprobs(logits.bfloat16(), torch.tensor([1]))
    assert out16.dtype == torch.float32 and torch.isclose(out16, torch.tensor([-1000.0])).all()


def test_gradient_matches_naive():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    tokens = torch.randint(0, 5, (2, 3))
    (g1,) = torch.autograd.grad(token_logprobs(logits, tokens).sum(), logits)
    (g2,) = torch.autograd.grad(naive_token_logprobs(logits, tokens).sum(), logits)
    torch.testing.assert_close(g1, g2)


def test_shape_and_dtype_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"tokens: expected shape \(2, 3\).*got \(2, 4\)"):
        token_logprobs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens: expected an integer tensor"):
        token_logprobs(torch.zeros(2, 5), torch.zeros(2))


def test_masked_sum_ignores_padding_even_if_inf():
    values = torch.tensor([[float("-inf"), -1.0, -2.0], [-0.5, -0.5, float("nan")]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    torch.testing.assert_close(masked_sum(values, mask, dim=-1), torch.tensor([-3.0, -1.0]))
    assert masked_sum(values, mask).item() == -4.0
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3\)"):
        masked_sum(values, mask[:, :2])


def test_row_wise_path_handles_bf16_batches():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 4, 9, generator=g) * 4).bfloat16()
    tokens = torch.randint(0, 9, (3, 4), generator=g)
    out = token_logprobs(logits, tokens)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, naive_token_logprobs(logits.float(), tokens))
