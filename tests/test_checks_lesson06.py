"""Lesson 6's checks pass the library's REINFORCE pieces and fail plausible wrong versions with the right hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson06 import (
    EXERCISES,
    check_gradient_variance,
    check_reinforce_loss,
    check_reward_to_go,
    reinforce_loss_cases,
    reward_to_go_cases,
)
from course_lib.deep.reinforce import gradient_variance, reward_to_go


def test_references_agree_with_the_library_and_the_definition():
    """The exercise's reward_to_go is the library's for a terminated episode, and equals the definition term by term."""
    rewards = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    gamma = 0.9
    naive = torch.tensor([sum(gamma ** (k - t) * rewards[k].item() for k in range(t, 5)) for t in range(5)],
                         dtype=torch.float64)
    ours = EXERCISES["reward_to_go"].reference(rewards, gamma)
    assert torch.allclose(ours, naive) and ours.dtype == torch.float64
    assert torch.equal(ours, reward_to_go(rewards, gamma, terminated=True))
    grads = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    assert EXERCISES["gradient_variance"].reference is gradient_variance
    assert np.isclose(gradient_variance(grads), float(torch.trace(torch.cov(grads.T))))


def test_cases_cover_the_edges():
    """gamma 0 and 1, a one-step and a long episode, float32 and float64 inputs; critic-made advantages."""
    rtg = reward_to_go_cases()
    assert {c.args[1] for c in rtg} >= {0.0, 1.0}
    assert min(len(c.args[0]) for c in rtg) == 1 and max(len(c.args[0]) for c in rtg) >= 500
    assert {c.args[0].dtype for c in rtg} == {torch.float32, torch.float64}
    loss = reinforce_loss_cases()
    assert any(c.args[1].requires_grad for c in loss) and not loss[0].args[1].requires_grad
    assert {c.args[0].dtype for c in loss} == {torch.float32, torch.float64}


# ---- reward_to_go: right answers in other forms ---------------------------------------------


def rtg_loop(rewards, gamma):
    G = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        G[t] = running
    return G


def rtg_matrix(rewards, gamma):
    """The definition as a (T, T) matrix of gamma^(k - t) for k >= t."""
    T = len(rewards)
    t = torch.arange(T, dtype=rewards.dtype)
    exponents = t[None, :] - t[:, None]  # (T, T): k - t
    powers = torch.where(exponents >= 0, torch.tensor(gamma, dtype=rewards.dtype) ** exponents,
                         torch.zeros((), dtype=rewards.dtype))
    return powers @ rewards


@pytest.mark.parametrize("fn", [rtg_loop, rtg_matrix], ids=["backward loop", "(T, T) matrix"])
def test_reward_to_go_equivalent_forms_pass(fn):
    assert check_reward_to_go(fn).status == "pass"


# ---- reward_to_go: wrong versions -------------------------------------------------------------


def rtg_whole_episode(rewards, gamma):
    """REINFORCE without reward-to-go: the whole episode's discounted return G_0 at every step."""
    return torch.full_like(rewards, float(rtg_loop(rewards, gamma)[0]))


def rtg_prefix_sum(rewards, gamma):
    """Accumulated forwards: the rewards up to t instead of from t."""
    G = torch.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards)):
        running = rewards[t] + gamma * running
        G[t] = running
    return G


def rtg_no_discount(rewards, gamma):
    return rewards.flip(0).cumsum(0).flip(0)


def rtg_discount_from_start(rewards, gamma):
    """gamma^k instead of gamma^(k - t): every step discounted from the episode's first step."""
    k = torch.arange(len(rewards), dtype=rewards.dtype)
    return (gamma ** k * rewards).flip(0).cumsum(0).flip(0)


def rtg_excludes_own_reward(rewards, gamma):
    """G[t] = gamma * G[t + 1] + ... without rewards[t]: sums the rewards strictly after t."""
    return rtg_loop(rewards, gamma) - rewards


def rtg_discounts_own_reward(rewards, gamma):
    return gamma * rtg_loop(rewards, gamma)


def rtg_reversed(rewards, gamma):
    return rtg_loop(rewards, gamma).flip(0)


def rtg_float32(rewards, gamma):
    return torch.tensor(rtg_loop(rewards, gamma).tolist())  # always float32


def rtg_numpy(rewards, gamma):
    return rtg_loop(rewards, gamma).numpy()


def rtg_reads_past_the_end(rewards, gamma):
    G = torch.zeros_like(rewards)
    G[-1] = rewards[-1]
    for t in range(len(rewards) - 2, -1, -1):
        G[t] = rewards[t] + gamma * G[t + 1]
    G[0] = rewards[0] + gamma * G[1]  # breaks for T = 1
    return G


def rtg_prefix_difference(rewards, gamma):
    """Algebraically right, numerically not: sum_k gamma^k r_k (k >= t) divided by gamma^t, via a forward cumsum."""
    T = len(rewards)
    k = torch.arange(T, dtype=rewards.dtype)
    weighted = gamma ** k * rewards  # gamma^k r_k
    total = weighted.sum()
    before = torch.cat([torch.zeros(1, dtype=rewards.dtype), weighted.cumsum(0)[:-1]])
    return (total - before) / gamma ** k if gamma > 0 else rewards.clone()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (rtg_whole_episode, r"(?s)case 2 of 8 \(a reward at the first step only, gamma 1;.*first mismatch at index \[1\]: "
                            r"expected 0, got 1.*Hint: you summed the rewards \*before\* t too"),
        (rtg_prefix_sum, r"(?s)case 2 of 8 \(a reward at the first step only.*"
                         r"Hint: you summed the rewards \*before\* t too"),
        (rtg_no_discount, r"(?s)case 3 of 8 \(CartPole: five rewards of \+1, gamma 0\.9;.*first mismatch at index \[0\]: "
                          r"expected 4\.0951, got 5.*you left out gamma"),
        (rtg_discount_from_start, r"(?s)case 3 of 8 \(CartPole.*first mismatch at index \[1\]: "
                                  r"expected 3\.439, got 3\.0951.*you discounted from the episode's start"),
        (rtg_excludes_own_reward, r"(?s)case 1 of 8 \(one step \(T = 1\).*the step's own reward, undiscounted"),
        (rtg_discounts_own_reward, r"(?s)case 1 of 8 \(one step \(T = 1\).*expected 2\.5, got 2\.25.*undiscounted"),
        (rtg_reversed, r"(?s)case 2 of 8 .*first mismatch at index \[0\].*in reverse order"),
        (rtg_float32, r"(?s)case 8 of 8 \(float64 rewards.*expected dtype torch\.float64 \(the dtype of `rewards`\), got "
                      r"dtype torch\.float32.*Hint: keep the dtype of `rewards`: start from torch\.zeros_like"),
        (rtg_numpy, r"case 1 of 8 .*result: expected a Tensor, got ndarray"),
        (rtg_reads_past_the_end, r"(?s)case 1 of 8 \(one step.* raised IndexError.*do not read G\[T\]"),
    ],
)
def test_reward_to_go_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_reward_to_go(wrong)
    assert "Hint:" in str(err.value)


def test_reward_to_go_prefix_difference_fails_on_long_episodes():
    """Dividing by gamma^t after subtracting prefix sums is right on short episodes and loses precision later.

    The public long case (gamma 0.99, T = 500) is still within float32 reach; the hidden 1000-step case is not."""
    ex = EXERCISES["reward_to_go"]
    long_hidden = next(c for c in ex.hidden_cases() if c.about.startswith("1000 rewards"))
    expected = ex.reference(*long_hidden.args)
    assert ex.compare(expected, rtg_prefix_difference(*long_hidden.args)) is not None
    assert ex.compare(ex.reference(torch.ones(5), 0.9), rtg_prefix_difference(torch.ones(5), 0.9)) is None


# ---- reinforce_loss: right answers in other forms -------------------------------------------


def loss_sum_over_n(logp, advantages):
    return -(logp * advantages.detach()).sum() / logp.numel()


def loss_no_grad_weights(logp, advantages):
    with torch.no_grad():
        weights = advantages.clone()
    return -torch.mean(weights * logp)


@pytest.mark.parametrize("fn", [loss_sum_over_n, loss_no_grad_weights], ids=["sum / N", "weights under no_grad"])
def test_reinforce_loss_equivalent_forms_pass(fn):
    assert check_reinforce_loss(fn).status == "pass"


# ---- reinforce_loss: wrong versions -----------------------------------------------------------


def loss_not_detached(logp, advantages):
    return -(logp * advantages).mean()


def loss_sums(logp, advantages):
    return -(logp * advantages.detach()).sum()


def loss_no_minus(logp, advantages):
    return (logp * advantages.detach()).mean()


def loss_uses_probabilities(logp, advantages):
    return -(logp.exp() * advantages.detach()).mean()


def loss_normalises(logp, advantages):
    a = advantages.detach()
    if a.numel() > 1:
        a = (a - a.mean()) / (a.std() + 1e-8)
    return -(logp * a).mean()


def loss_returns_float(logp, advantages):
    return -(logp * advantages.detach()).mean().item()


def loss_per_step(logp, advantages):
    return -(logp * advantages.detach())


def loss_detaches_logp(logp, advantages):
    return -(logp.detach() * advantages.detach()).mean()


def loss_detaches_only_logp(logp, advantages):
    return -(logp.detach() * advantages).mean()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (loss_not_detached, r"(?s)case 3 of 6 \(advantages computed by a critic: they carry a gradient;.*"
                            r"result\[2\] \(d loss / d advantages\): first mismatch.*"
                            r"Hint: the advantages must not receive a gradient"),
        (loss_sums, r"(?s)case 1 of 6 \(advantages all 1.*result\[0\] \(loss\).*you summed instead of averaging"),
        (loss_no_minus, r"(?s)case 1 of 6 \(advantages all 1.*result\[0\] \(loss\): first mismatch at index \[\]: "
                        r"expected 0\.5398\d*, got -0\.5398.*A negative loss here: you left out the minus"),
        (loss_uses_probabilities, r"(?s)case 1 of 6 .*Use logp as given \(log-probabilities, no exp\)"),
        (loss_normalises, r"(?s)case 1 of 6 \(advantages all 1.*got -?0\n"
                          r".*0: you normalised the advantages inside the loss"),
        (loss_returns_float, r"case 1 of 6 .* raised TypeError: reinforce_loss should return a 0-d torch tensor"),
        (loss_per_step, r"case 1 of 6 .* raised ValueError: reinforce_loss should return one number"),
        (loss_detaches_logp, r"case 1 of 6 .* raised RuntimeError: reinforce_loss's loss has no gradient "
                             r"w\.r\.t\. `logp`"),
        (loss_detaches_only_logp, r"case 1 of 6 .* raised RuntimeError: reinforce_loss's loss has no gradient"),
    ],
)
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
def test_reinforce_loss_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_reinforce_loss(wrong)
    assert "Hint:" in str(err.value)


def test_reinforce_loss_detach_is_caught_only_where_the_advantages_carry_a_gradient():
    """The not-detached loss has the right value and the right gradient w.r.t. logp everywhere; only the gradient
    that reaches the critic's advantages tells it apart, in the grader's hidden cases too."""
    ex = EXERCISES["reinforce_loss"]
    ref, wrong = ex.call(ex.reference), ex.call(loss_not_detached)
    for case in ex.cases() + ex.hidden_cases():
        expected, got = ref(*case.args), wrong(*case.args)
        assert ex.compare(expected[:2], got[:2]) is None
        assert (ex.compare(expected, got) is not None) == case.args[1].requires_grad


# ---- gradient_variance: right answers in other forms ------------------------------------------


def var_two_pass(grads):
    centred = grads - grads.mean(dim=0, keepdim=True)  # (B, P)
    return float((centred ** 2).sum() / (grads.shape[0] - 1))


def var_trace_of_covariance(grads):
    return torch.trace(torch.atleast_2d(torch.cov(grads.T))).item()


def var_numpy(grads):
    return np.var(grads.numpy(), axis=0, ddof=1).sum()  # a numpy float: a number too


@pytest.mark.parametrize("fn", [var_two_pass, var_trace_of_covariance, var_numpy],
                         ids=["two-pass", "trace of torch.cov", "numpy float"])
def test_gradient_variance_equivalent_forms_pass(fn):
    assert check_gradient_variance(fn).status == "pass"


# ---- gradient_variance: wrong versions -------------------------------------------------------


def var_biased(grads):
    return float(grads.var(dim=0, unbiased=False).sum())


def var_across_parameters(grads):
    return float(grads.var(dim=1).sum())


def var_mean_over_parameters(grads):
    return float(grads.var(dim=0).mean())


def var_second_moment(grads):
    return float((grads ** 2).sum() / (grads.shape[0] - 1))


def var_one_pass(grads):
    """E[g^2] - E[g]^2 in float32: cancels when the mean is large."""
    B = grads.shape[0]
    return float(((grads ** 2).mean(dim=0) - grads.mean(dim=0) ** 2).sum() * B / (B - 1))


def var_std(grads):
    return float(grads.std(dim=0).sum())


def var_of_the_mean(grads):
    """The variance of the batch's mean gradient, tr Cov / B: a different (also useful) number."""
    return float(grads.var(dim=0).sum() / grads.shape[0])


def var_tensor(grads):
    return grads.var(dim=0).sum()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (var_biased, r"(?s)case 1 of 7 \(two episodes, one parameter.*result: expected 2, got 1\b.*"
                     r"you divided by B \(the biased variance\)"),
        (var_across_parameters, r"(?s)case 1 of 7 \(two episodes.*got nan.*A nan means you took the variance along dim 1"),
        (var_mean_over_parameters, r"(?s)case 2 of 7 \(four episodes \(rows\), three parameters.*then SUM over the "
                                   r"parameters"),
        (var_second_moment, r"(?s)case 1 of 7 .*expected 2, got 10"),
        (var_one_pass, r"(?s)case 4 of 7 \(a large mean gradient.*E\[g\^2\] - E\[g\]\^2 cancels badly"),
        (var_std, r"(?s)case 1 of 7 .*expected 2, got 1\.41421"),
        (var_of_the_mean, r"(?s)case 1 of 7 .*expected 2, got 1\b"),
        (var_tensor, r"case 1 of 7 .* raised TypeError: gradient_variance should return a Python float"),
    ],
)
@pytest.mark.filterwarnings(r"ignore:var\(\)")
def test_gradient_variance_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_gradient_variance(wrong)
    assert "Hint:" in str(err.value)


def test_gradient_variance_identical_rows_case_rejects_the_second_moment():
    """Where the rows do not vary the variance is exactly 0, and a sum of squares is not."""
    ex = EXERCISES["gradient_variance"]
    identical = next(c for c in ex.cases() if c.about.startswith("all episodes give the same"))
    assert ex.reference(*identical.args) == 0.0
    assert ex.compare(0.0, var_second_moment(*identical.args)) is not None


# ---- spot the bug: reinforce_weights ---------------------------------------------------------------

from course_lib.checks.lesson06 import (  # noqa: E402
    LOSS_GRAD_OPTIONS,
    RF_BUDGET,
    WEIGHTS_BUG_OPTIONS,
    _probe_gradients,
    _probe_nan,
    _probe_sampling,
    check_reinforce_loss_grad,
    check_reinforce_weights,
    check_reinforce_weights_bug,
    check_train_reinforce,
    reinforce_weights,
    reinforce_weights_buggy,
    train_reinforce,
)
from course_lib.harness.lesson06 import run_cartpole as _run_cartpole  # noqa: E402
from course_lib.rl import normalize  # noqa: E402


def test_the_bug_question_accepts_the_right_letter_and_explains_the_wrong_ones_without_naming_it():
    assert check_reinforce_weights_bug(" b ").status == "pass"
    for wrong in set(WEIGHTS_BUG_OPTIONS) - {"B"}:
        with pytest.raises(CheckFailed, match=r"not the right one yet: .+") as err:
            check_reinforce_weights_bug(wrong)
        text = str(err.value)
        assert "'B'" not in text and "option B" not in text and WEIGHTS_BUG_OPTIONS["B"] not in text


def test_the_bug_question_has_a_plausible_distractor_with_its_own_feedback():
    assert len(WEIGHTS_BUG_OPTIONS) == 5 and "normalising" in WEIGHTS_BUG_OPTIONS["E"]
    with pytest.raises(CheckFailed, match=r"not the right one yet: .*normalis") as err:
        check_reinforce_weights_bug("E")
    assert WEIGHTS_BUG_OPTIONS["B"] not in str(err.value)


def test_the_loss_gradient_question_accepts_the_right_letter_and_explains_the_wrong_ones(capsys):
    right = EXERCISES["reinforce_loss_grad"].reference()
    assert len(LOSS_GRAD_OPTIONS) == 4 and "(-1, 2)" in LOSS_GRAD_OPTIONS[right]
    assert check_reinforce_loss_grad(right.lower()).status == "pass"
    assert "N" in capsys.readouterr().out  # the explanation is printed when right
    for wrong in set(LOSS_GRAD_OPTIONS) - {right}:
        with pytest.raises(CheckFailed, match=r"not the right one yet: .+") as err:
            check_reinforce_loss_grad(wrong)
        text = str(err.value)
        assert f"'{right}'" not in text and LOSS_GRAD_OPTIONS[right] not in text and "(-1, 2)" not in text


def weights_mean_only(episode_rewards, gamma):
    G = torch.cat([reward_to_go(r, gamma, terminated=True) for r in episode_rewards])
    return G - G.mean()


def weights_population_std(episode_rewards, gamma):
    G = torch.cat([reward_to_go(r, gamma, terminated=True) for r in episode_rewards])
    return (G - G.mean()) / G.std(unbiased=False)


def weights_per_episode_normalised(episode_rewards, gamma):
    return torch.cat([normalize(reward_to_go(r, gamma, terminated=True)) if len(r) > 1 else torch.zeros_like(r)
                      for r in episode_rewards])


def weights_not_normalised(episode_rewards, gamma):
    return torch.cat([reward_to_go(r, gamma, terminated=True) for r in episode_rewards])


@pytest.mark.parametrize(
    "wrong, message",
    [
        (reinforce_weights_buggy, r"(?s)case 1 of 5 \(two CartPole episodes.*The buggy code put 3 at every step"),
        (weights_not_normalised, r"(?s)case 1 of 5 \(two CartPole episodes.*got 3\n.*a 3 there: you did not normalise"),
        (weights_per_episode_normalised, r"(?s)case 1 of 5 .*got 1\n.*a 1: you normalised each episode on its own"),
        (weights_mean_only, r"(?s)case 1 of 5 .*got 1\.2\n.*1\.2: you subtracted the mean only"),
        (weights_population_std, r"(?s)case 1 of 5 .*got 1\.60.*\n.*1\.60: you divided by the std that divides by n"),
    ],
)
def test_reinforce_weights_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_reinforce_weights(wrong)


def test_reinforce_weights_fixed_passes_and_the_buggy_one_is_really_noisier():
    assert check_reinforce_weights(
        lambda eps, gamma: normalize(torch.cat([reward_to_go(r, gamma, terminated=True) for r in eps]))).status == "pass"
    eps = [torch.ones(4), torch.ones(7)]
    assert torch.allclose(reinforce_weights_buggy(eps, 1.0)[:4], torch.full((4,), 4.0))
    assert torch.allclose(reinforce_weights(eps, 1.0).mean(), torch.tensor(0.0), atol=1e-6)


# ---- the build: train_reinforce ----------------------------------------------------------------------


def make_trainer(*, weights="right", reduce="mean", zero_grad=True, nan_check=True, stop_on_truncated=True,
                 step_every_episode=False, sample=True):
    """train_reinforce with one named departure from the specification."""

    def fn(env, policy, optimizer, episodes, batch_size, gamma):
        out, batch = [], []
        for e in range(episodes):
            obs, _ = env.reset()
            o_list, a_list, r_list, done = [], [], [], False
            while not done:
                o = torch.as_tensor(obs, dtype=torch.float32)
                with torch.no_grad():
                    logits = policy(o)
                    a = int(torch.distributions.Categorical(logits=logits).sample()) if sample else int(logits.argmax())
                obs, r, term, trunc, _ = env.step(a)
                o_list.append(o)
                a_list.append(a)
                r_list.append(float(r))
                done = term or (trunc and stop_on_truncated)
            batch.append((o_list, a_list, torch.tensor(r_list)))
            out.append(sum(r_list))
            if len(batch) < (1 if step_every_episode else batch_size):
                continue
            obs_b = torch.stack([o for b in batch for o in b[0]])
            act_b = torch.tensor([a for b in batch for a in b[1]])
            rews = [b[2] for b in batch]
            if weights == "whole":
                A = normalize(torch.cat([torch.full_like(r, float(reward_to_go(r, gamma, terminated=True)[0]))
                                         for r in rews]))
            elif weights == "raw":
                A = weights_not_normalised(rews, gamma)
            else:
                A = reinforce_weights(rews, gamma)
            logp = torch.distributions.Categorical(logits=policy(obs_b)).log_prob(act_b)
            loss = -(logp * A).sum() if reduce == "sum" else -(logp * A).mean()
            if nan_check and not torch.isfinite(loss):
                raise FloatingPointError("loss")
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch = []
        env.close()  # allowed: the check's envs ignore it until the run is over
        return out

    return fn


def test_the_reference_solves_every_cartpole_case_within_the_budget():
    """The reference's verdict is not recomputed by the checks (it is known): measure it here, on every seed."""
    ex = EXERCISES["train_reinforce"]
    seeds = [c.args[1] for c in ex.cases() + ex.hidden_cases() if c.args[0] == "cartpole"]
    assert len(seeds) == 4
    for seed in seeds:
        assert _run_cartpole(train_reinforce, seed) == "solved", seed
    assert RF_BUDGET >= 2 * 13_000  # twice what 29 of 30 reference seeds needed


def test_an_equivalent_build_passes_the_probes():
    assert _probe_gradients(make_trainer()) == "ok" and _probe_nan(make_trainer()) == "ok"
    assert _probe_sampling(make_trainer()) == "ok" and _probe_sampling(train_reinforce) == "ok"


def test_an_argmax_policy_passes_the_gradient_probe_and_fails_the_sampling_one():
    assert _probe_gradients(make_trainer(sample=False)) == "ok"
    assert "never chose action 0" in _probe_sampling(make_trainer(sample=False))


def test_a_run_at_a_random_policys_level_says_so_instead_of_blaming_the_seed():
    def random_actions(env, policy, optimizer, episodes, batch_size, gamma):
        for _ in range(episodes):
            env.reset()
            done = False
            while not done:
                _, _, term, trunc, _ = env.step(env.action_space.sample())
                done = term or trunc

    verdict = _run_cartpole(random_actions, 3)
    assert "a random policy's level" in verdict and "another seed" not in verdict


@pytest.mark.parametrize(
    "wrong, message",
    [
        (make_trainer(weights="whole"), r"(?s)case 1 of 5 .*whole return G_0: use the reward-to-go"),
        (make_trainer(weights="raw"), r"(?s)case 1 of 5 .*normalise the returns over the whole batch"),
        (make_trainer(reduce="sum"), r"(?s)case 1 of 5 .*N times too large"),
        (make_trainer(zero_grad=False), r"(?s)case 1 of 5 .*still holds the previous batch's: zero the gradients"),
        (make_trainer(step_every_episode=True), r"(?s)case 1 of 5 .*optimiser steps for 6 episodes in batches of 2, "
                                                r"expected 3"),
        (make_trainer(stop_on_truncated=False), r"(?s)case 1 of 5 .*raised RuntimeError: env\.step\(\) was called "
                                                r"after the episode ended"),
        (make_trainer(nan_check=False), r"(?s)case 3 of 5 \(a NaN reward.*raise FloatingPointError before "
                                        r"optimizer\.step\(\)"),
        (make_trainer(sample=False), r"(?s)case 2 of 5 \(.*never chose action 0.*Hint: sample from "
                                     r"Categorical\(logits=\.\.\.\), do not take the argmax"),
    ],
)
def test_train_reinforce_wrong_versions_fail_with_a_message_that_names_the_mistake(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_train_reinforce(wrong)
    assert "Hint:" in str(err.value)


# ---- text defects of lesson 6 --------------------------------------------------------------------------


def test_lesson_6_reports_the_profile_honestly_and_prints_no_exercise_source():
    import nbformat

    from conftest import ROOT

    nb = nbformat.read(ROOT / "notebooks" / "06_policy_gradients.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "getsource" not in text
    prose = {c.id: c.source for c in nb.cells if c.cell_type == "markdown"}
    assert "stored run (`cpu` profile)" in prose["l06-17"] and "smoke test" in prose["l06-15"]
    assert prose["l06-15"].index("`ci` profile") < prose["l06-15"].index("all six runs learn")
    greedy_cell = next(c.source for c in nb.cells if c.id == "l06-16")
    assert 'get_profile().name == "ci"' in greedy_cell  # the ci run prints what it measured, not the cpu prose
