"""Lesson 7's checks pass the library's GAE and PPO losses and fail plausible wrong versions with the right hint."""

from __future__ import annotations

import pytest
import torch

from course_lib.checks.core import CheckFailed, compare
from course_lib.checks.lesson07 import (
    EXERCISES,
    check_gae_advantages,
    check_ppo_clip_loss,
    check_value_loss_fn,
    gae_advantages,
    ppo_clip_loss,
    value_loss_fn,
)
from course_lib.rl import discounted_returns, td_errors


# ---- the cases probe what they say ----------------------------------------------------------


def test_gae_cases_cover_both_episode_ends_and_the_lambda_limits():
    cases = EXERCISES["gae_advantages"].cases()
    assert any(c.args[3].any() for c in cases) and any(c.args[4].any() for c in cases)
    assert any((c.args[3] & c.args[4]).any() for c in cases)  # both flags on one step
    lam0 = cases[0].args
    adv, ret = gae_advantages(*lam0)
    assert torch.allclose(adv, td_errors(*lam0[:4], gamma=lam0[5]))  # lam = 0: the TD error
    rewards, values, next_values, terminated, truncated, gamma, lam = cases[1].args
    assert lam == 1.0 and not (terminated | truncated).any()
    adv, _ = gae_advantages(*cases[1].args)
    mc = discounted_returns(rewards, gamma, terminated, truncated, next_values=next_values)  # lam = 1: MC - V
    assert torch.allclose(adv, mc - values)


def test_clip_cases_hit_each_region_of_the_objective():
    cases = EXERCISES["ppo_clip_loss"].cases()
    run = EXERCISES["ppo_clip_loss"].call(ppo_clip_loss)
    _, grad = run(*cases[2].args)  # A > 0, ratio > 1 + eps: flat
    assert torch.all(grad == 0)
    _, grad = run(*cases[3].args)  # A < 0, ratio < 1 - eps: flat
    assert torch.all(grad == 0)
    _, grad = run(*cases[4].args)  # A > 0, ratio < 1 - eps: the unclipped term, pulling the probability up
    assert torch.all(grad < 0)


# ---- GAE: wrong versions ---------------------------------------------------------------------


def _gae_loop(rewards, values, next_values, terminated, truncated, gamma, lam, *, bootstrap_mask, carry_mask,
              carry_gamma=True):
    """A backwards GAE loop whose bootstrap and carry masks the wrong versions choose."""
    delta = rewards + gamma * next_values * bootstrap_mask - values
    adv = torch.zeros_like(rewards)
    nxt = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        nxt = delta[:, t] + (gamma if carry_gamma else 1.0) * lam * carry_mask[:, t] * nxt
        adv[:, t] = nxt
    return adv, adv + values


def _not(x):
    return (~x).float()


def gae_bootstraps_past_terminal(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=torch.ones_like(r),
                     carry_mask=_not(term | trunc))


def gae_carries_across_terminal(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=_not(term), carry_mask=_not(trunc))


def gae_truncation_as_termination(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=_not(term | trunc),
                     carry_mask=_not(term | trunc))


def gae_ignores_truncation(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=_not(term), carry_mask=_not(term))


def gae_forgets_gamma_in_the_carry(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=_not(term), carry_mask=_not(term | trunc),
                     carry_gamma=False)


def gae_returns_advantages_as_returns(*args):
    adv, _ = gae_advantages(*args)
    return adv, adv


def gae_shifts_values_instead_of_next_values(r, v, nv, term, trunc, gamma, lam):
    """V(s_{t+1}) read from values[:, t + 1] and 0 after the last step: loses every bootstrap value."""
    shifted = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    return gae_advantages(r, v, shifted, term, trunc, gamma, lam)


def gae_forward_in_time(r, v, nv, term, trunc, gamma, lam):
    delta = r + gamma * nv * _not(term) - v
    adv = torch.zeros_like(r)
    prev = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1]):
        prev = delta[:, t] + gamma * lam * prev
        adv[:, t] = prev
    return adv, adv + v


def gae_bool_arithmetic(r, v, nv, term, trunc, gamma, lam):
    return _gae_loop(r, v, nv, term, trunc, gamma, lam, bootstrap_mask=1 - term, carry_mask=1 - (term | trunc))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (gae_bootstraps_past_terminal, r"(?s)case 4 of 10 \(env 0 terminates at the last step;.*"
                                       r"Hint: you bootstrapped past a terminal step"),
        (gae_carries_across_terminal, r"(?s)case 5 of 10 \(a termination in the middle of each row;.*"
                                      r"Hint: you carried the advantage across a terminal step"),
        (gae_truncation_as_termination, r"(?s)case 6 of 10 \(env 1 is truncated \(time limit\) at the last step;.*"
                                        r"Hint: truncated means a time limit cut the episode"),
        (gae_ignores_truncation, r"(?s)case 7 of 10 \(a truncation in the middle of each row;.*"
                                 r"Hint: you carried the advantage across a truncation"),
        (gae_forgets_gamma_in_the_carry, r"(?s)case 3 of 10 \(3 envs x 8 steps.*Hint: .*gamma \* lam \* \(1 - done_t\)"),
        (gae_returns_advantages_as_returns, r"(?s)case 1 of 10 .*result\[1\] \(returns\): first mismatch.*"
                                            r"The returns are A_t \+ values"),
        (gae_shifts_values_instead_of_next_values, r"(?s)case 1 of 10 .*result\[0\] \(advantages\): first mismatch at "
                                                   r"index \[0, 5\].*next_values holds V\(s_\{t\+1\}\)"),
        (gae_forward_in_time, r"(?s)case 2 of 10 \(lam = 1, gamma = 1.*Hint: compute backwards"),
        (gae_bool_arithmetic, r"case 1 of 10 .* raised (RuntimeError|TypeError): .*"),
    ],
)
def test_gae_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_gae_advantages(wrong)
    assert "Hint:" in str(err.value)


# ---- ppo_clip_loss: wrong versions -----------------------------------------------------------


def _ratio(logp, old_logp):
    return torch.exp(logp - old_logp)


def clip_no_minus(logp, old_logp, adv, eps):
    r = _ratio(logp, old_logp)
    return torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv).mean()


def clip_sums(logp, old_logp, adv, eps):
    r = _ratio(logp, old_logp)
    return -torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv).sum()


def clip_takes_max(logp, old_logp, adv, eps):
    r = _ratio(logp, old_logp)
    return -torch.max(r * adv, r.clamp(1 - eps, 1 + eps) * adv).mean()


def clip_clips_the_advantage(logp, old_logp, adv, eps):
    r = _ratio(logp, old_logp)
    return -torch.min(r * adv, r * adv.clamp(1 - eps, 1 + eps)).mean()


def clip_inverted_ratio(logp, old_logp, adv, eps):
    r = torch.exp(old_logp - logp)
    return -torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv).mean()


def clip_log_ratio(logp, old_logp, adv, eps):
    r = logp - old_logp  # forgot the exp
    return -torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv).mean()


def clip_without_min(logp, old_logp, adv, eps):
    return -(_ratio(logp, old_logp).clamp(1 - eps, 1 + eps) * adv).mean()


def clip_without_clip(logp, old_logp, adv, eps):
    return -(_ratio(logp, old_logp) * adv).mean()


def clip_hardcoded_eps(logp, old_logp, adv, eps):
    return ppo_clip_loss(logp, old_logp, adv, 0.2)


def clip_detaches_the_clipped_branch(logp, old_logp, adv, eps):
    """Right value everywhere, but inside the clip range the min's tie sends half the gradient to a dead branch."""
    r = _ratio(logp, old_logp)
    return -torch.min(r * adv, r.detach().clamp(1 - eps, 1 + eps) * adv).mean()


def clip_straight_through(logp, old_logp, adv, eps):
    """Right value everywhere, but the clip passes the gradient through (a 'soft' clip): never flat."""
    r = _ratio(logp, old_logp)
    clipped = r + (r.clamp(1 - eps, 1 + eps) - r).detach()
    return -torch.min(r * adv, clipped * adv).mean()


def clip_returns_float(logp, old_logp, adv, eps):
    return ppo_clip_loss(logp, old_logp, adv, eps).item()


def clip_under_no_grad(logp, old_logp, adv, eps):
    with torch.no_grad():
        return ppo_clip_loss(logp, old_logp, adv, eps)


def clip_per_sample(logp, old_logp, adv, eps):
    r = _ratio(logp, old_logp)
    return -torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (clip_no_minus, r"(?s)case 1 of 8 \(logp equals old_logp.*result\[0\] \(loss\).*Hint: .*the minus sign"),
        (clip_sums, r"(?s)case 1 of 8 \(logp equals old_logp.*mean, not sum"),
        (clip_takes_max, r"(?s)case 3 of 8 \(A > 0 and ratio above 1 \+ eps.*Take the min, not the max"),
        (clip_clips_the_advantage, r"(?s)case 2 of 8 \(ratio inside.*Clip the ratio, never the advantages"),
        (clip_inverted_ratio, r"(?s)case 1 of 8 .*result\[1\] \(d loss / d logp\).*the ratio new over old"),
        (clip_log_ratio, r"(?s)case 1 of 8 \(logp equals old_logp.*the ratio new over old, exp\(logp - old_logp\)"),
        (clip_without_min, r"(?s)case 5 of 8 \(A > 0 but ratio below 1 - eps.*keep the min"),
        (clip_without_clip, r"(?s)case 3 of 8 \(A > 0 and ratio above 1 \+ eps.*goes flat"),
        (clip_hardcoded_eps, r"(?s)case 8 of 8 \(a flat batch with clip_eps 0\.1.*use the clip_eps you are given"),
        (clip_detaches_the_clipped_branch, r"(?s)case 1 of 8 .*result\[1\] \(d loss / d logp\): first mismatch.*"
                                           r"no detach on either term of the min"),
        (clip_straight_through, r"(?s)case 3 of 8 \(A > 0 and ratio above 1 \+ eps.*result\[1\] \(d loss / d logp\).*"
                                r"gradient w\.r\.t\. logp is 0"),
        (clip_returns_float, r"case 1 of 8 .* raised TypeError: ppo_clip_loss should return a 0-d torch tensor"),
        (clip_under_no_grad, r"case 1 of 8 .* raised RuntimeError: ppo_clip_loss's loss has no gradient w\.r\.t\. `logp`"),
        (clip_per_sample, r"case 1 of 8 .* raised ValueError: ppo_clip_loss should return one number"),
    ],
)
def test_clip_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_ppo_clip_loss(wrong)
    assert "Hint:" in str(err.value)


def test_clip_equivalent_forms_pass():
    """The where-form of the clipped objective and a ratio built from probabilities are right too."""

    def where_form(logp, old_logp, adv, eps):
        r = torch.exp(logp) / torch.exp(old_logp)
        bound = torch.where(adv > 0, r.clamp(max=1 + eps), r.clamp(min=1 - eps))
        return -(bound * adv).mean()

    assert check_ppo_clip_loss(where_form).status == "pass"


# ---- value_loss_fn: wrong versions -----------------------------------------------------------


def value_forgets_half(values, returns):
    return ((values - returns) ** 2).mean()


def value_sums(values, returns):
    return 0.5 * ((values - returns) ** 2).sum()


def value_abs(values, returns):
    return 0.5 * (values - returns).abs().mean()


def value_square_of_mean(values, returns):
    return 0.5 * (values - returns).mean() ** 2


def value_mean_over_last_axis(values, returns):
    return 0.5 * ((values - returns) ** 2).mean(dim=-1)


def value_normalises_returns(values, returns):
    target = (returns - returns.mean()) / (returns.std() + 1e-8)
    return 0.5 * ((values - target) ** 2).mean()


def value_returns_float(values, returns):
    return float(0.5 * ((values - returns) ** 2).mean())


def value_detached(values, returns):
    return 0.5 * ((values.detach() - returns) ** 2).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (value_forgets_half, r"(?s)case 1 of 6 \(every error V - R is \+1 or -1.*expected 0\.5, got 1\b.*"
                             r"a 1\.0 means you forgot the 0\.5"),
        (value_sums, r"(?s)case 1 of 6 .*expected 0\.5, got 4\b.*summed instead of averaging"),
        (value_abs, r"(?s)case 1 of 6 .*result\[1\] \(d loss / d values\).*square the errors instead of taking"),
        (value_square_of_mean, r"case 1 of 6 \(every error V - R is \+1 or -1"),
        (value_mean_over_last_axis, r"(?s)case 4 of 6 \(values and returns of shape \(N, T\).* raised ValueError: "
                                    r"value_loss_fn should return one number.*Hint: average over every entry"),
        (value_normalises_returns, r"case 1 of 6 \(every error"),
        (value_returns_float, r"case 1 of 6 .* raised TypeError: value_loss_fn should return a 0-d torch tensor"),
        (value_detached, r"case 1 of 6 .* raised RuntimeError: value_loss_fn's loss has no gradient w\.r\.t\. `values`"),
    ],
)
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
def test_value_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_value_loss_fn(wrong)
    assert "Hint:" in str(err.value)


def test_value_mean_then_sum_fails_on_two_dimensional_batches():
    """On (B,) inputs `.mean(dim=-1)` is the mean; the (N, T) case catches a mean over T summed over N."""
    with pytest.raises(CheckFailed,
                       match=r"(?s)case 4 of 6 \(values and returns of shape \(N, T\).*\.mean\(\) with no dim"):
        check_value_loss_fn(lambda v, r: 0.5 * ((v - r) ** 2).mean(dim=-1) if v.dim() == 1
                            else 0.5 * ((v - r) ** 2).mean(dim=-1).sum())


# ---- predict, then run: the learning-rate experiment ------------------------------------------------

from course_lib.checks.lesson07 import LR_OPTIONS, check_ppo_lr_prediction  # noqa: E402


def test_the_prediction_accepts_the_right_letter_and_explains_the_wrong_ones_without_naming_it():
    assert check_ppo_lr_prediction("b").status == "pass"
    for wrong in set(LR_OPTIONS) - {"B"}:
        with pytest.raises(CheckFailed, match=r"not the right one yet: .+") as err:
            check_ppo_lr_prediction(wrong)
        text = str(err.value)
        assert "'B'" not in text and LR_OPTIONS["B"] not in text and "0.3" not in text


def test_the_experiment_behind_the_prediction_collapses_only_at_the_high_learning_rate():
    """The prediction's answer is a measurement: 12 updates of cartpole_fast, seed 0, constant learning rate."""
    from dataclasses import replace

    from course_lib.deep.ppo import PPO_PRESETS, evaluate, ppo

    results = {}
    for lr in (0.003, 0.3):
        run = ppo(replace(PPO_PRESETS["cartpole_fast"], learning_rate=lr, anneal_lr=False, divergence_kl=None),
                  seed=0, updates=12, progress=False, live=False)  # the guard off: the collapse is the point
        entropy = run.logger.as_arrays("losses/entropy")[1]
        results[lr] = (entropy[-1], evaluate(run.agent, "CartPole-v1", episodes=10, seed=20_000).mean())
    assert results[0.3][0] < 0.05 and results[0.3][1] < 20  # deterministic, and the pole falls at once
    assert results[0.003][0] > 0.4 and results[0.003][1] > 50  # still exploring, and learning


# ---- text defects of lesson 7 ---------------------------------------------------------------------------


def test_lesson_7_says_what_clipfrac_counts_and_motivates_the_ratio():
    import nbformat

    from conftest import ROOT

    nb = nbformat.read(ROOT / "notebooks" / "07_actor_critic_ppo.ipynb", as_version=4)
    cells = {c.id: c.source for c in nb.cells}
    text = "\n".join(cells.values())
    assert "(the share of samples where the clip is active)" not in text  # the old, wrong description
    assert r"|\rho_t - 1| > \varepsilon" in cells["l07-06"] and "on either side" in cells["l07-06"]
    assert "not exactly the share of samples where the clip *acts*" in cells["l07-06"]
    recap = cells["l07-01"]
    assert "importance sampling" in recap and "surrogate objective" in recap
    assert recap.index("importance sampling") < recap.index("**PPO's clipped surrogate**")
    assert r"\nabla \pi = \pi\, \nabla \log \pi" in recap  # the rho = 1 gradient is REINFORCE's
    assert "getsource" not in "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    demo = next(c for c in nb.cells if c.id == "l07-07")
    printed = "".join(o.get("text", "") for o in demo.outputs)
    assert "clipfrac = 0.8 (outside the range); share where the clip binds = 0.4" in printed
