"""The shared RL math against textbook loops and known properties."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.rl import (
    clipped_surrogate,
    discounted_returns,
    entropy_from_logits,
    explained_variance,
    gae,
    kl_k1,
    kl_k2,
    kl_k3,
    masked_mean,
    masked_var,
    masked_whiten,
    normalize,
    td_errors,
    value_loss,
)


def random_rollout(seed: int, B: int = 3, T: int = 12, p_term: float = 0.15, p_trunc: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    next_values = torch.randn(B, T, generator=g, dtype=torch.float64)
    terminated = torch.rand(B, T, generator=g) < p_term
    truncated = (torch.rand(B, T, generator=g) < p_trunc) & ~terminated
    return rewards, values, next_values, terminated, truncated


def textbook_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The loop as written in papers, one sequence and one step at a time."""
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            nonterminal = 0.0 if terminated[b, t] else 1.0
            delta = rewards[b, t] + gamma * next_values[b, t] * nonterminal - values[b, t]
            episode_goes_on = 0.0 if (terminated[b, t] or truncated[b, t]) else 1.0
            running = delta + gamma * lam * episode_goes_on * running
            adv[b, t] = running
    return adv


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 0.0), (1.0, 1.0), (0.5, 0.7)])
def test_gae_matches_the_textbook_loop(seed, gamma, lam):
    r, v, nv, term, trunc = random_rollout(seed)
    adv, ret = gae(r, v, nv, term, trunc, gamma=gamma, lam=lam)
    torch.testing.assert_close(adv, textbook_gae(r, v, nv, term, trunc, gamma, lam))
    torch.testing.assert_close(ret, adv + v)


def test_gae_lambda_zero_is_the_td_error():
    r, v, nv, term, trunc = random_rollout(1)
    adv, _ = gae(r, v, nv, term, trunc, gamma=0.9, lam=0.0)
    torch.testing.assert_close(adv, td_errors(r, v, nv, term, 0.9))


def test_gae_lambda_one_is_the_monte_carlo_return_minus_v():
    """One episode that terminates at its last step: V is consistent (next_values[t] = values[t + 1])."""
    g = torch.Generator().manual_seed(3)
    T, gamma = 10, 0.9
    r = torch.randn(1, T, generator=g, dtype=torch.float64)
    v = torch.randn(1, T, generator=g, dtype=torch.float64)
    nv = torch.cat([v[:, 1:], torch.zeros(1, 1, dtype=torch.float64)], dim=1)
    term = torch.zeros(1, T, dtype=torch.bool)
    term[0, -1] = True
    adv, _ = gae(r, v, nv, term, None, gamma=gamma, lam=1.0)
    mc = torch.tensor([[sum(gamma**k * r[0, t + k].item() for k in range(T - t)) for t in range(T)]],
                      dtype=torch.float64)
    torch.testing.assert_close(adv, mc - v)
    torch.testing.assert_close(discounted_returns(r, gamma, term), mc)


def test_truncation_bootstraps_and_termination_does_not():
    r = torch.tensor([[1.0, 1.0]])
    v = torch.zeros(1, 2)
    nv = torch.tensor([[5.0, 7.0]])
    ends = torch.tensor([[False, True]])
    adv_term, _ = gae(r, v, nv, ends, None, gamma=0.5, lam=1.0)
    adv_trunc, _ = gae(r, v, nv, torch.zeros_like(ends), ends, gamma=0.5, lam=1.0)
    # step 1 ends the episode: terminated -> 1; truncated -> 1 + 0.5 * 7 (the bootstrap value)
    assert adv_term[0, 1].item() == 1.0 and adv_trunc[0, 1].item() == 4.5
    # step 0 (its next state is not terminal): 1 + 0.5 * 5 - 0 + 0.5 * A_1 in both cases
    assert adv_term[0, 0].item() == pytest.approx(1 + 2.5 + 0.5 * 1.0)
    assert adv_trunc[0, 0].item() == pytest.approx(1 + 2.5 + 0.5 * 4.5)


def test_nothing_flows_across_an_episode_boundary():
    r = torch.tensor([[0.0, 0.0, 100.0]])
    v = torch.zeros(1, 3)
    term = torch.tensor([[False, True, False]])  # episode ends after step 1; step 2 is a new episode
    adv, _ = gae(r, v, v, term, None, gamma=1.0, lam=1.0)
    assert adv[0, :2].tolist() == [0.0, 0.0] and adv[0, 2].item() == 100.0


def test_masked_padding_gets_zero_and_passes_nothing_back():
    r = torch.tensor([[1.0, 2.0, 9.0, 9.0]])
    v = torch.zeros(1, 4)
    term = torch.tensor([[False, True, False, False]])
    mask = torch.tensor([[True, True, False, False]])
    adv, _ = gae(r, v, v, term, None, gamma=1.0, lam=1.0, mask=mask)
    assert adv.tolist() == [[3.0, 2.0, 0.0, 0.0]]


def test_discounted_returns_restart_and_bootstrap_only_at_cuts():
    r = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    term = torch.tensor([[False, True, False, False]])
    assert discounted_returns(r, 0.5, term).tolist() == [[1.5, 1.0, 1.5, 1.0]]
    nv = torch.tensor([[9.0, 9.0, 9.0, 4.0]])  # only the rollout's end (a cut) bootstraps: 1 + 0.5 * 4
    assert discounted_returns(r, 0.5, term, next_values=nv).tolist() == [[1.5, 1.0, 2.5, 3.0]]


def test_input_validation_names_the_argument():
    r, v, nv, term, trunc = random_rollout(0)
    with pytest.raises(ValueError, match=r"values: expected shape \(3, 12\) \(rewards.shape\), got \(3, 11\)"):
        gae(r, v[:, :11], nv, term, trunc)
    with pytest.raises(ValueError, match=r"lam: expected a float in \[0, 1\], got 1.5"):
        gae(r, v, nv, term, trunc, lam=1.5)
    with pytest.raises(ValueError, match=r"gamma: expected a float in \[0, 1\], got -0.1"):
        gae(r, v, nv, term, trunc, gamma=-0.1)
    with pytest.raises(ValueError, match=r"gamma: expected a float in \[0, 1\], got True"):
        td_errors(r, v, nv, term, gamma=True)


def test_gae_rejects_an_empty_rollout():
    z = torch.zeros(2, 0)  # (B=2, T=0)
    with pytest.raises(ValueError, match=r"rewards: expected shape \(B, T\) with T >= 1 steps, got \(2, 0\)"):
        gae(z, z, z, z.bool())
    with pytest.raises(ValueError, match=r"rewards: expected shape \(B, T\) with T >= 1 steps, got \(2, 0\)"):
        discounted_returns(z, 0.9, next_values=z)


def test_masked_statistics_ignore_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 1000.0], [5.0, -1000.0, -1000.0, -1000.0]])
    m = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert masked_mean(x, m).item() == pytest.approx(2.75)
    assert masked_var(x, m).item() == pytest.approx(torch.tensor([1.0, 2.0, 3.0, 5.0]).var().item())
    w = masked_whiten(x, m)
    assert masked_mean(w, m).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(w, m).item() == pytest.approx(1.0, rel=1e-4)
    assert (w[~m.bool()] == 0).all()
    with pytest.raises(TypeError, match="shift_mean"):  # removed: it kept neither the mean nor the signs
        masked_whiten(x, m, shift_mean=False)
    with pytest.raises(ValueError, match="mask: expected at least one true entry"):
        masked_mean(x, torch.zeros_like(m))
    n = normalize(torch.tensor([1.0, 2.0, 3.0]))
    assert n.mean().item() == pytest.approx(0.0, abs=1e-6) and n.std().item() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("advantage", [1.0, -1.0])
@pytest.mark.parametrize("log_ratio", [-0.5, -0.1, 0.0, 0.1, 0.5])
def test_clipped_objective_gradient_vanishes_only_where_the_clip_binds(advantage, log_ratio):
    eps = 0.2
    logp = torch.tensor([log_ratio], requires_grad=True)
    loss, info = clipped_surrogate(logp, torch.zeros(1), torch.tensor([advantage]), clip_eps=eps)
    (grad,) = torch.autograd.grad(loss, logp)
    ratio = math.exp(log_ratio)
    # the clip binds when the ratio has moved past 1 +- eps in the direction the advantage favours
    binds = (advantage > 0 and ratio > 1 + eps) or (advantage < 0 and ratio < 1 - eps)
    if binds:
        assert grad.item() == 0.0
    else:
        assert grad.item() == pytest.approx(-advantage * ratio)  # d/dlogp of -ratio * A
    assert info["clipfrac"] == (1.0 if abs(ratio - 1) > eps else 0.0)


def test_surrogate_info_and_mask():
    logp = torch.tensor([[0.1, -0.3, 5.0]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False]])
    loss, info = clipped_surrogate(logp, old, adv, 0.2, mask)
    r = torch.exp(torch.tensor([0.1, -0.3]))
    assert loss.item() == pytest.approx(-torch.minimum(r, r.clamp(0.8, 1.2)).mean().item())
    assert info["clipfrac"] == 0.5
    assert info["approx_kl"] == pytest.approx(((r - 1) - torch.log(r)).mean().item())
    with pytest.raises(ValueError, match=r"clip_eps: expected a float in \(0, 1\), got 0"):
        clipped_surrogate(logp, old, adv, 0)


def test_value_loss_plain_and_clipped():
    v = torch.tensor([1.0, 3.0])
    ret = torch.tensor([0.0, 0.0])
    loss, _ = value_loss(v, ret)
    assert loss.item() == pytest.approx(0.5 * (1 + 9) / 2)
    old = torch.tensor([1.0, 1.0])
    loss_c, info = value_loss(v, ret, old, clip_eps=0.5)
    # second entry: clipped prediction 1.5 -> error 2.25 < 9, and max keeps 9: the same loss here
    assert loss_c.item() == pytest.approx(loss.item()) and info["value_clipfrac"] == 0.0
    loss_c2, info2 = value_loss(torch.tensor([-1.0]), torch.tensor([0.0]), torch.tensor([-3.0]), clip_eps=0.5)
    assert loss_c2.item() == pytest.approx(0.5 * 2.5**2) and info2["value_clipfrac"] == 1.0
    with pytest.raises(ValueError, match="old_values: expected the values at collection time"):
        value_loss(v, ret, clip_eps=0.2)


def test_entropy_and_explained_variance():
    logits = torch.zeros(2, 3, 4)
    torch.testing.assert_close(entropy_from_logits(logits), torch.full((2, 3), math.log(4)))
    assert entropy_from_logits(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    # masked (top-k) logits: -inf entries count 0 log 0 = 0, not NaN
    masked = torch.tensor([[0.0, 0.0, -torch.inf, -torch.inf]])
    assert entropy_from_logits(masked).item() == pytest.approx(math.log(2))
    ret = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(ret, ret).item() == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), ret).item() == pytest.approx(0.0)


def test_kl_estimators_agree_in_expectation():
    """Samples x ~ q from one categorical, p another close one: k1 and k3 are unbiased, k2 close."""
    g = torch.Generator().manual_seed(0)
    q_logits = torch.randn(20, generator=g, dtype=torch.float64)
    p_logits = q_logits + 0.1 * torch.randn(20, generator=g, dtype=torch.float64)
    logq_all, logp_all = torch.log_softmax(q_logits, -1), torch.log_softmax(p_logits, -1)
    true_kl = (logq_all.exp() * (logq_all - logp_all)).sum().item()
    x = torch.multinomial(logq_all.exp(), 400_000, replacement=True, generator=g)
    logq, logp = logq_all[x], logp_all[x]
    k1, k2, k3 = kl_k1(logq, logp), kl_k2(logq, logp), kl_k3(logq, logp)
    for name, est in (("k1", k1), ("k3", k3)):
        stderr = est.std().item() / math.sqrt(len(x))
        assert abs(est.mean().item() - true_kl) < 4 * stderr, (name, est.mean().item(), true_kl)
    assert abs(k2.mean().item() - true_kl) < 0.1 * true_kl  # k2 is biased, but only slightly when p is close to q
    assert (k3 >= 0).all() and (k2 >= 0).all() and k3.std() < k1.std()


def test_k3_is_accurate_for_tiny_log_ratios():
    lr = torch.tensor([1e-4, -1e-4, 3e-5], dtype=torch.float32)
    exact = (lr.double() ** 2 / 2 + lr.double() ** 3 / 6)  # series of exp(lr) - 1 - lr
    k3 = kl_k3(torch.zeros_like(lr), lr).double()
    naive = (torch.exp(lr) - 1 - lr).double()
    assert torch.allclose(k3, exact, rtol=1e-3)
    assert not torch.allclose(naive, exact, rtol=1e-1)  # the naive form loses the digits
    with pytest.raises(ValueError, match=r"logp: expected shape \(3,\)"):
        kl_k3(lr, lr[:2])
