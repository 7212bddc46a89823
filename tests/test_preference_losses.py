"""DPO's loss and GRPO's group advantages, against hand computations and their defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.rl import bradley_terry_loss, clipped_surrogate, dpo_loss, group_advantages


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference():
    logp_w, logp_l = torch.tensor([-12.0, -30.5]), torch.tensor([-9.0, -41.0])
    loss, info = dpo_loss(logp_w, logp_l, logp_w.clone(), logp_l.clone(), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert info["reward_margin"] == 0.0 and info["accuracy"] == 0.0


def test_dpo_loss_matches_a_hand_computation():
    logp_w, logp_l = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -18.0])
    ref_w, ref_l = torch.tensor([-11.0, -19.0]), torch.tensor([-11.0, -19.0])
    beta = 0.5
    z = [beta * ((-10 + 11) - (-12 + 11)), beta * ((-20 + 19) - (-18 + 19))]  # [1.0, -1.0]
    by_hand = -sum(math.log(1 / (1 + math.exp(-x))) for x in z) / 2
    loss, info = dpo_loss(logp_w, logp_l, ref_w, ref_l, beta)
    assert loss.item() == pytest.approx(by_hand)
    assert info == pytest.approx({"reward_chosen": 0.0, "reward_rejected": 0.0, "reward_margin": 0.0,
                                  "accuracy": 0.5})


def test_dpo_is_bradley_terry_on_implicit_rewards_and_never_moves_the_reference():
    logp_w = torch.tensor([-3.0, -7.0], requires_grad=True)
    logp_l = torch.tensor([-4.0, -2.0], requires_grad=True)
    ref_w = torch.tensor([-3.5, -6.0], requires_grad=True)
    ref_l = torch.tensor([-4.5, -2.5], requires_grad=True)
    loss, _ = dpo_loss(logp_w, logp_l, ref_w, ref_l, beta=0.2)
    bt, _ = bradley_terry_loss(0.2 * (logp_w - ref_w), 0.2 * (logp_l - ref_l))
    assert loss.item() == pytest.approx(bt.item())
    loss.backward()
    assert ref_w.grad is None and ref_l.grad is None
    assert torch.all(logp_w.grad < 0) and torch.all(logp_l.grad > 0)  # descent raises chosen, lowers rejected


def test_dpo_loss_rejects_bad_input():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="beta: expected a float > 0, got 0"):
        dpo_loss(x, x, x, x, beta=0)
    with pytest.raises(ValueError, match="beta: expected a float > 0, got True"):
        dpo_loss(x, x, x, x, beta=True)
    with pytest.raises(ValueError, match=r"ref_logp_rejected: expected shape \(B,\) = \(3,\).*got \(2,\)"):
        dpo_loss(x, x, x, torch.zeros(2))


@pytest.mark.parametrize("wrong", range(4))
def test_dpo_loss_names_the_argument_of_shape_b_1(wrong):
    """(B, 1) instead of (B,): the message names that argument, expected (B,) = (3,), got (3, 1)."""
    names = ["logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected"]
    args = [torch.zeros(3) for _ in names]
    args[wrong] = torch.zeros(3, 1)
    with pytest.raises(ValueError, match=rf"^{names[wrong]}: expected shape \(B,\) = \(3,\).*got \(3, 1\)"):
        dpo_loss(*args)
    with pytest.raises(ValueError, match=r"^logp_chosen: expected shape \(B,\).*got \(3, 1\)"):
        dpo_loss(*[torch.zeros(3, 1) for _ in names])  # all four (B, 1): the first is named


def test_group_advantages_have_zero_mean_per_group_and_unit_scale():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.2, 0.9, 0.4, 0.5]])
    adv = group_advantages(rewards)
    assert torch.allclose(adv.mean(dim=1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(adv.std(dim=1), torch.ones(2), atol=1e-3)  # the Bessel-corrected std, as TRL's
    assert torch.allclose(group_advantages(rewards, scale=False), rewards - rewards.mean(1, keepdim=True))


def test_a_group_with_identical_rewards_contributes_no_gradient():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    adv = group_advantages(rewards)
    assert torch.all(adv[0] == 0)
    logp = torch.randn(2, 3, 5, requires_grad=True)  # (B, G, T) token log-probs
    old = logp.detach()
    loss, _ = clipped_surrogate(logp, old, adv[..., None].expand_as(logp))
    loss.backward()
    assert torch.all(logp.grad[0] == 0) and torch.any(logp.grad[1] != 0)


def test_group_advantages_reject_groups_of_one():
    with pytest.raises(ValueError, match=r"rewards: expected shape \(B, G\) with G >= 2 .*G - 1.*got \(4, 1\)"):
        group_advantages(torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r"rewards: expected shape \(B, G\) with G >= 2 .*got \(4,\)"):
        group_advantages(torch.zeros(4))
