"""REINFORCE on CartPole: the pure math against independent references, the training loop's guards, and learning."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import course_lib.deep.reinforce as reinforce_module
from course_lib.deep.reinforce import (
    REINFORCE_PRESETS,
    CategoricalPolicy,
    ReinforceConfig,
    evaluate,
    gradient_variance,
    per_episode_gradients,
    reinforce,
    reward_to_go,
)

CI = REINFORCE_PRESETS["cartpole_ci"]


# ---- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"episodes": 0}, r"episodes: expected a positive int multiple of episodes_per_batch \(10\), got 0"),
    ({"episodes": 25}, r"episodes: expected a positive int multiple of episodes_per_batch \(10\), got 25"),
    ({"episodes": 20.0}, r"episodes: expected a positive int multiple"),
    ({"episodes_per_batch": 1}, r"episodes_per_batch: expected an int >= 2, got 1"),
    ({"lr": 0.0}, r"lr: expected a float in \(0, 1\], got 0.0"),
    ({"lr": 2.0}, r"lr: expected a float in \(0, 1\], got 2.0"),
    ({"gamma": 1.1}, r"gamma: expected a float in \[0, 1\], got 1.1"),
    ({"gamma": float("nan")}, r"gamma: expected a float in \[0, 1\], got nan"),
    ({"gamma": True}, r"gamma: expected a float in \[0, 1\], got True"),
    ({"hidden": 0}, r"hidden: expected an int >= 1, got 0"),
    ({"baseline": 1}, r"baseline: expected a bool, got 1"),
    ({"baseline_lr": -1e-3}, r"baseline_lr: expected a float in \(0, 1\], got -0.001"),
    ({"value_steps": 0}, r"value_steps: expected an int >= 1, got 0"),
    ({"normalize_advantages": "yes"}, r"normalize_advantages: expected a bool, got 'yes'"),
    ({"max_grad_norm": 0.0}, r"max_grad_norm: expected a float > 0 \(math.inf: no clipping\), got 0.0"),
    ({"max_grad_norm": float("nan")}, r"max_grad_norm: expected a float > 0"),
])
def test_config_validation_names_the_field_and_range(changes, message):
    with pytest.raises(ValueError, match=message):
        ReinforceConfig(**changes)


def test_presets_are_valid_and_frozen():
    assert set(REINFORCE_PRESETS) == {"cartpole_ci", "cartpole"}
    with pytest.raises(AttributeError):
        CI.lr = 0.5  # type: ignore[misc]
    assert ReinforceConfig(max_grad_norm=float("inf")).max_grad_norm == float("inf")


# ---- the pure math -------------------------------------------------------------------------


def _reference_returns(rewards: list[float], gamma: float, bootstrap: float = 0.0) -> list[float]:
    """Independent reference: G_t = sum_k gamma^k r_{t+k+1} + gamma^(T-t) * bootstrap, term by term."""
    T = len(rewards)
    return [sum(gamma ** (k - t) * rewards[k] for k in range(t, T)) + gamma ** (T - t) * bootstrap for t in range(T)]


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_reward_to_go_of_a_terminated_episode_ignores_the_last_value(gamma):
    rewards = [1.0, 0.5, -2.0, 3.0]
    expected = _reference_returns(rewards, gamma)
    r = torch.tensor(rewards)
    np.testing.assert_allclose(reward_to_go(r, gamma, terminated=True), expected, rtol=1e-6)
    # a terminal state is worth 0: a value estimate for it must not leak in
    np.testing.assert_allclose(reward_to_go(r, gamma, terminated=True, last_value=100.0), expected, rtol=1e-6)


def test_reward_to_go_bootstraps_a_truncated_episode_from_the_last_value():
    rewards, gamma, v_last = [1.0, 1.0, 1.0], 0.9, 50.0
    got = reward_to_go(torch.tensor(rewards), gamma, terminated=False, last_value=torch.tensor(v_last))
    np.testing.assert_allclose(got, _reference_returns(rewards, gamma, bootstrap=v_last), rtol=1e-6)
    assert got[-1].item() == pytest.approx(1.0 + 0.9 * 50.0)
    # without a value estimate a cut episode keeps the rewards it saw (plain Monte-Carlo)
    plain = reward_to_go(torch.tensor(rewards), gamma, terminated=False)
    np.testing.assert_allclose(plain, _reference_returns(rewards, gamma), rtol=1e-6)


def test_per_episode_gradients_equal_one_backward_per_episode():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, 8)
    lengths = [3, 5, 2]
    obs = torch.randn(sum(lengths), 4)  # (N, obs_dim)
    actions = torch.randint(0, 2, (sum(lengths),))  # (N,)
    advantages = torch.randn(sum(lengths))  # (N,)
    logp = torch.distributions.Categorical(logits=policy(obs)).log_prob(actions)  # (N,)
    grads = per_episode_gradients(logp, advantages, lengths, list(policy.parameters()))  # (B, P)
    assert grads.shape == (3, sum(p.numel() for p in policy.parameters()))
    # the naive code it equals: zero the grads, backward one episode's sum, flatten
    start = 0
    for i, T in enumerate(lengths):
        policy.zero_grad()
        lp = torch.distributions.Categorical(logits=policy(obs[start:start + T])).log_prob(actions[start:start + T])
        (lp * advantages[start:start + T]).sum().backward()
        naive = torch.cat([p.grad.reshape(-1) for p in policy.parameters()])
        torch.testing.assert_close(grads[i], naive)
        start += T
    # and their sum over episodes, divided by N steps, is minus the gradient of the batch loss
    policy.zero_grad()
    (-(logp * advantages).mean()).backward()
    batch_grad = torch.cat([p.grad.reshape(-1) for p in policy.parameters()])
    torch.testing.assert_close(-grads.sum(0) / sum(lengths), batch_grad)


def test_gradient_variance_is_the_summed_unbiased_variance():
    g = np.random.default_rng(0).normal(size=(6, 11))
    expected = ((g - g.mean(0)) ** 2).sum() / (6 - 1)
    assert gradient_variance(torch.tensor(g)) == pytest.approx(expected)
    assert gradient_variance(torch.ones(4, 3)) == 0.0
    with pytest.raises(ValueError, match="grads: expected at least 2 episodes"):
        gradient_variance(torch.ones(1, 3))


# ---- training ------------------------------------------------------------------------------


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def test_smoke_ci_preset_updates_the_policy_and_records_history(capsys):
    torch.manual_seed(0)  # reinforce seeds torch itself; this draws the same initial policy to compare with
    initial = _flat(CategoricalPolicy(4, 2, CI.hidden))
    policy, history = reinforce("CartPole-v1", CI, seed=0, progress=True)
    assert isinstance(policy, CategoricalPolicy)
    assert not torch.allclose(_flat(policy), initial), "the policy's parameters did not change"
    n_batches = CI.episodes // CI.episodes_per_batch
    assert len(history.returns) == len(history.lengths) == CI.episodes
    for name in ("policy_loss", "value_loss", "grad_var", "grad_var_plain"):
        assert len(getattr(history, name)) == n_batches, name
        assert np.isfinite(getattr(history, name)).all(), name
    assert history.returns == [float(n) for n in history.lengths]  # CartPole pays 1 per step
    assert all(1 <= n <= 500 for n in history.lengths)
    assert "reinforce" in capsys.readouterr().err  # the tqdm bar


def test_initial_policy_matches_the_seeded_one():
    # the smoke test's "changed" check compares against this: same seed, same initial weights
    torch.manual_seed(0)
    a = _flat(CategoricalPolicy(4, 2, CI.hidden))
    policy, _ = reinforce("CartPole-v1", replace(CI, lr=1e-12, max_grad_norm=1e-12), seed=0, progress=False)
    torch.testing.assert_close(_flat(policy), a, atol=1e-9, rtol=0)


def test_without_a_baseline_no_value_loss_and_the_two_variances_agree():
    _, history = reinforce("CartPole-v1", replace(CI, baseline=False), seed=0, progress=False)
    assert history.value_loss == []
    assert history.grad_var == history.grad_var_plain


def test_same_seed_same_history_and_policy():
    p1, h1 = reinforce("CartPole-v1", CI, seed=3, progress=False)
    p2, h2 = reinforce("CartPole-v1", CI, seed=3, progress=False)
    assert h1 == h2
    assert torch.equal(_flat(p1), _flat(p2))
    _, h3 = reinforce("CartPole-v1", CI, seed=4, progress=False)
    assert h3.returns != h1.returns


def test_truncated_episodes_train_without_trouble():
    env_id = "test/CartPoleShort-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv", max_episode_steps=6)
    _, history = reinforce(env_id, CI, seed=0, progress=False)
    assert max(history.lengths) == 6  # most episodes are cut by the time limit, then bootstrapped from V
    assert np.isfinite(history.value_loss).all()


def test_rejects_envs_it_cannot_handle():
    with pytest.raises(ValueError, match="env_id: expected flat Box observations and Discrete actions"):
        reinforce("Pendulum-v1", CI, progress=False)
    with pytest.raises(ValueError, match=r"env_id: expected a Gymnasium id string .* got ReinforceConfig .* config=\.\.\."):
        reinforce(CI, progress=False)
    with pytest.raises(ValueError, match="config: expected a ReinforceConfig .* got dict"):
        reinforce("CartPole-v1", {"episodes": 8}, progress=False)


# ---- the NaN guard -------------------------------------------------------------------------


def test_nan_logits_while_collecting_raise_with_the_batch_and_episode(monkeypatch):
    monkeypatch.setattr(CategoricalPolicy, "forward", lambda self, obs: self.net(obs) * float("nan"))
    with pytest.raises(FloatingPointError, match=r"batch 0 \(episodes 0-7\), episode 0: the policy's logits are not"):
        reinforce("CartPole-v1", CI, seed=0, progress=False)


def test_nan_logits_in_the_update_raise_with_the_batch_number(monkeypatch):
    original = CategoricalPolicy.forward
    updates = {"n": 0}

    def forward(self, obs):
        logits = original(self, obs)
        if obs.dim() == 2:  # the update's batched forward: the second batch goes wrong
            updates["n"] += 1
            if updates["n"] == 2:
                return logits * float("nan")
        return logits

    monkeypatch.setattr(CategoricalPolicy, "forward", forward)
    with pytest.raises(FloatingPointError, match=r"batch 1 \(episodes 8-15\): the policy's logits on the batch"):
        reinforce("CartPole-v1", CI, seed=0, progress=False)


def test_nan_advantages_make_a_nan_policy_loss_that_raises(monkeypatch):
    monkeypatch.setattr(reinforce_module, "normalize", lambda a: a * float("nan"))
    with pytest.raises(FloatingPointError, match=r"batch 0 \(episodes 0-7\): the policy loss is nan"):
        reinforce("CartPole-v1", CI, seed=0, progress=False)


def test_nan_gradient_with_a_finite_loss_raises(monkeypatch):
    original = CategoricalPolicy.forward

    def forward(self, obs):
        # where() passes 0 forward but NaN backward (d sqrt(x)/dx at x < 0), the classic silent-NaN trap
        bad = torch.sqrt(-1.0 - self.net[0].bias.abs().sum())
        return original(self, obs) + torch.where(torch.tensor(False), bad, torch.zeros(()))

    monkeypatch.setattr(CategoricalPolicy, "forward", forward)
    with pytest.raises(FloatingPointError, match=r"batch 0 \(episodes 0-7\): the policy's gradient norm is nan"):
        reinforce("CartPole-v1", CI, seed=0, progress=False)


def test_nan_value_loss_raises_with_the_batch_number(monkeypatch):
    monkeypatch.setattr(reinforce_module, "value_loss", lambda v, g: (torch.tensor(float("nan")), {}))
    with pytest.raises(FloatingPointError, match=r"batch 0 \(episodes 0-7\): the value loss is nan at value step 0"):
        reinforce("CartPole-v1", CI, seed=0, progress=False)


# ---- the baseline's effect on variance ---------------------------------------------------


def test_same_seed_gives_the_same_first_batch_with_or_without_a_baseline():
    _, with_b = reinforce("CartPole-v1", CI, seed=0, progress=False)
    _, without = reinforce("CartPole-v1", replace(CI, baseline=False), seed=0, progress=False)
    B = CI.episodes_per_batch
    assert with_b.returns[:B] == without.returns[:B]
    assert with_b.grad_var_plain[0] == pytest.approx(without.grad_var[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learned_baseline_lowers_the_gradient_variance(seed):
    # Paired on the same episodes: one-episode gradient estimates with A = G - V against A = G.
    # Batch 0 is left out: V is still untrained there. Measured ratios, seeds 0-19: 0.22 to 0.83.
    _, history = reinforce("CartPole-v1", CI, seed=seed, progress=False)
    with_baseline, plain = np.mean(history.grad_var[1:]), np.mean(history.grad_var_plain[1:])
    assert with_baseline < 0.95 * plain


# ---- evaluation and learning ---------------------------------------------------------------


def test_evaluate_returns_one_greedy_return_per_episode():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, 16)
    returns = evaluate(policy, "CartPole-v1", episodes=3, seed=0)
    assert returns.shape == (3,) and returns.dtype == np.float64
    assert (returns >= 1).all() and (returns <= 500).all()
    np.testing.assert_array_equal(returns, evaluate(policy, "CartPole-v1", episodes=3, seed=0))
    with pytest.raises(ValueError, match="episodes: expected an int >= 1, got 0"):
        evaluate(policy, "CartPole-v1", episodes=0)


@pytest.mark.slow
def test_cartpole_preset_learns_to_balance():
    # Measured on a quiet 2-core CPU: about 27 s of training (400 episodes, most of the later ones at the
    # 500-step limit); greedy return 500 on every evaluation episode.
    policy, history = reinforce("CartPole-v1", REINFORCE_PRESETS["cartpole"], seed=0, progress=False)
    returns = evaluate(policy, "CartPole-v1", episodes=10, seed=1000)
    assert returns.mean() >= 195, f"greedy returns {returns}"
    assert np.mean(history.returns[-50:]) >= 195  # the stochastic training policy too
