"""PPO on vectorised Gymnasium envs: configuration, training guards, bootstrapping at time limits, and (slow)
solving CartPole-v1 (checkpoints and resume: tests/test_ppo_checkpoint.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch

from course_lib.deep.imitation import StopWhenSolved
from course_lib.deep.ppo import PPO_PRESETS, ActorCritic, PPOConfig, evaluate, ppo
from course_lib.utils.metrics import METRICS

CI = PPO_PRESETS["cartpole_ci"]


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, a constant observation, never terminates: only a time limit ends episodes.

    The agent cannot see how far the limit is, so the correct value (bootstrapping at truncation)
    is the infinite-horizon one, 1 / (1 - gamma), and the action does not matter.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, reward: float = 1.0):
        self.reward = reward

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), self.reward, False, False, {}


def constant_env(limit: int = 10, reward: float = 1.0) -> gym.Env:
    return gym.wrappers.TimeLimit(ConstantRewardEnv(reward), max_episode_steps=limit)


# ---- configuration ------------------------------------------------------------------------


def test_presets_are_valid_and_the_fast_preset_fits_the_acceptance_budget():
    for name, config in PPO_PRESETS.items():
        assert config.num_updates >= 1, name
        assert config.batch_size % config.num_minibatches == 0, name
    assert PPO_PRESETS["cartpole_fast"].total_timesteps <= 100_000


@pytest.mark.parametrize("field, value, expected", [
    ("num_envs", 0, "num_envs: expected an int >= 1, got 0"),
    ("num_steps", 2.5, "num_steps: expected an int >= 1, got 2.5"),
    ("total_timesteps", 10, "total_timesteps: expected an int >= one batch"),
    ("num_minibatches", 3, "num_minibatches: expected a divisor of the batch size"),
    ("learning_rate", 0.0, "learning_rate: expected a float in (0, 1], got 0.0"),
    ("gamma", 1.5, "gamma: expected a float in [0, 1], got 1.5"),
    ("gamma", True, "gamma: expected a float in [0, 1], got True"),
    ("learning_rate", "3e-3", "learning_rate: expected a float in (0, 1], got '3e-3'"),
    ("gae_lambda", -0.1, "gae_lambda: expected a float in [0, 1], got -0.1"),
    ("clip_eps", 1.0, "clip_eps: expected a float in (0, 1), got 1.0"),
    ("ent_coef", -0.01, "ent_coef: expected a float >= 0, got -0.01"),
    ("vf_coef", 0, "vf_coef: expected a float > 0, got 0"),
    ("max_grad_norm", math.nan, "max_grad_norm: expected a float > 0 (math.inf: no clipping), got nan"),
    ("target_kl", 0.0, "target_kl: expected a float > 0 or None, got 0.0"),
    ("anneal_lr", 1, "anneal_lr: expected a bool, got 1"),
    ("env_id", "", "env_id: expected a Gymnasium id"),
])
def test_config_errors_name_the_field_and_the_value(field, value, expected):
    with pytest.raises(ValueError) as err:
        replace(PPO_PRESETS["cartpole_fast"], **{field: value})
    assert expected in str(err.value)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="config: expected a PPOConfig"):
        ppo({"num_envs": 4})
    with pytest.raises(ValueError, match="updates: expected an int >= 1 or None, got 0"):
        ppo(CI, updates=0, progress=False)
    with pytest.raises(ValueError, match="env: expected flat Box observations and Discrete actions"):
        ppo(CI, env_fn=partial(gym.make, "Pendulum-v1"), progress=False)
    with pytest.raises(ValueError, match="episodes: expected an int >= 1, got 0"):
        evaluate(ActorCritic(4, 2), "CartPole-v1", episodes=0)


# ---- a short run ------------------------------------------------------------------------


def test_a_short_run_trains_both_networks_and_logs_the_documented_metrics():
    torch.manual_seed(0)
    start = ActorCritic(4, 2, CI.hidden)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = ppo(CI, seed=0, agent=start, progress=False)
    assert result.agent is start  # trained in place
    changed = {k for k, v in start.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("actor.") for k in changed) and any(k.startswith("critic.") for k in changed)
    assert result.updates_done == CI.num_updates == 3
    assert result.global_step == CI.num_updates * CI.batch_size
    names = set(result.logger.names())
    expected = {"charts/episodic_return", "charts/episode_length", "charts/learning_rate", "losses/policy_loss",
                "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac", "losses/loss",
                "losses/explained_variance"}
    assert expected <= names and names <= set(METRICS)
    steps, lrs = result.logger.as_arrays("charts/learning_rate")
    assert list(steps) == [64, 128, 192]
    assert np.allclose(lrs, CI.learning_rate * np.array([1, 2 / 3, 1 / 3]))  # linear annealing to 0
    _, entropy = result.logger.as_arrays("losses/entropy")
    assert np.all((entropy > 0) & (entropy <= math.log(2) + 1e-6))


def test_same_seed_same_run():
    a = ppo(CI, seed=5, progress=False).agent.state_dict()
    b = ppo(CI, seed=5, progress=False).agent.state_dict()
    c = ppo(CI, seed=6, progress=False).agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_target_kl_stops_the_epochs_early(monkeypatch):
    import course_lib.deep.ppo as ppo_module

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return ppo_module.clipped_surrogate.__wrapped__(*args, **kwargs)

    counting.__wrapped__ = ppo_module.clipped_surrogate
    monkeypatch.setattr(ppo_module, "clipped_surrogate", counting)
    config = replace(CI, update_epochs=30, learning_rate=0.05, target_kl=1e-4, anneal_lr=False)
    ppo(config, seed=0, progress=False)
    # epoch 0's only minibatch sees the data's own policy (KL 0, no stop); epoch 1's has moved past 1e-4
    assert len(calls) == config.num_updates * 2
    calls.clear()
    ppo(replace(config, target_kl=None), seed=0, progress=False)
    assert len(calls) == config.num_updates * config.update_epochs * config.num_minibatches


def test_a_callback_can_stop_training_and_is_told_the_global_step():
    seen = []
    result = ppo(CI, seed=0, callback=lambda step, agent: seen.append(step) or len(seen) == 2, progress=False)
    assert seen == [64, 128] and result.stopped_by_callback and result.updates_done == 2


def test_a_non_finite_reward_stops_training_and_names_the_step():
    with pytest.raises(FloatingPointError, match=r"update 0, global step 4: env 0 returned the reward nan"):
        ppo(CI, env_fn=partial(constant_env, 10, math.nan), progress=False)


def test_non_finite_losses_and_weights_stop_training_and_name_where(monkeypatch):
    import course_lib.deep.ppo as ppo_module

    monkeypatch.setattr(ppo_module, "value_loss", lambda *args, **kwargs: (torch.tensor(math.nan), {}))
    with pytest.raises(FloatingPointError, match=r"update 0, epoch 0, minibatch 0 .*: the loss is nan"):
        ppo(CI, progress=False)
    monkeypatch.undo()
    agent = ActorCritic(4, 2, CI.hidden)
    with torch.no_grad():
        agent.actor[-1].bias[0] = math.nan
    with pytest.raises(FloatingPointError, match=r"update 0, global step 0: the policy's logits are not finite"):
        ppo(CI, agent=agent, progress=False)


def test_truncation_bootstraps_so_the_critic_learns_the_infinite_horizon_value():
    """Episodes are cut every 10 steps but the agent cannot see the clock: with bootstrapping at the
    cut the value of the constant state is 1 / (1 - gamma) = 10; treating the cut as termination
    would pull it towards the mean of the truncated sums (about 4.6 for gamma 0.9)."""
    config = PPOConfig(num_envs=4, num_steps=20, total_timesteps=4 * 20 * 150, learning_rate=0.01, anneal_lr=False,
                       gamma=0.9, gae_lambda=0.5, update_epochs=10, hidden=16)
    result = ppo(config, seed=0, env_fn=partial(constant_env, 10), progress=False)
    v = result.agent.value(torch.zeros(1, 2)).item()
    assert v == pytest.approx(10.0, abs=0.5)


# ---- learning -----------------------------------------------------------------------------


def test_evaluate_plays_whole_greedy_episodes():
    returns = evaluate(ActorCritic(4, 2), "CartPole-v1", episodes=5, seed=0)
    assert returns.shape == (5,) and np.all((returns >= 8) & (returns <= 500))


def test_evaluate_takes_the_argmax_action():
    # push right when 0.1 x + 0.5 x' + theta + 0.5 theta' > 0: a hand-made controller that balances the pole for
    # the whole 500 steps; its logits differ by only 1% of that sum, so sampling from them would be nearly uniform
    # (random actions last about 22 steps on CartPole)
    controller = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        controller.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.001, 0.005, 0.01, 0.005]]))
    assert evaluate(controller, "CartPole-v1", episodes=5, seed=0).tolist() == [500.0] * 5
    with torch.no_grad():
        controller.weight.neg_()  # the same rule with the actions swapped drops the pole within a few steps
    assert evaluate(controller, "CartPole-v1", episodes=5, seed=0).max() < 20


def solve(config: PPOConfig, seed: int, every: int = 10_000, threshold: float = 475.0):
    """Train with an evaluation of 10 greedy episodes after each `every` env steps; stop once the mean
    reaches `threshold`. Returns the env steps at the solving evaluation, or None."""
    stop = StopWhenSolved(config.env_id, threshold, every, episodes=10, measure="return")
    ppo(config, seed, callback=stop, progress=False)
    return stop.solved_at


@pytest.mark.slow
def test_ppo_fast_preset_solves_cartpole_in_2_of_3_seeds_within_100k_steps():
    config = PPO_PRESETS["cartpole_fast"]
    solved = [solve(config, seed) for seed in range(3)]
    assert sum(s is not None and s <= 100_000 for s in solved) >= 2, solved
