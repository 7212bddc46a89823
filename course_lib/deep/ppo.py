"""PPO: proximal policy optimisation with an actor-critic on vectorised Gymnasium envs (Schulman et al. 2017).

:func:`ppo` is one function in numbered phases, the loop of Schulman et al. (2017),
Algorithm 1, with the details of the common implementations (Huang et al. 2022, "The 37
implementation details of PPO"): N envs step in lock-step for ``num_steps`` steps
(collection); GAE computes advantages and value targets (Schulman et al. 2016); several
epochs of minibatch updates minimise the clipped surrogate, the value loss and an entropy
bonus; gradients are clipped; the learning rate anneals linearly to 0; a target KL may stop
the epochs early. The math comes from :mod:`course_lib.rl`, the very functions the LLM's
PPO calls in lesson 11.

Episode ends follow Gymnasium's split: ``terminated`` (a terminal state, worth 0) and
``truncated`` (a time limit: bootstrap from V of the final observation). The vector env
resets finished copies in the same step (``AutoresetMode.SAME_STEP``) and hands back the
final observation in ``info["final_obs"]``.

Metrics (names fixed, meanings in ``docs/metrics.md``): ``charts/episodic_return``,
``charts/episode_length`` (per finished episode), ``charts/learning_rate``,
``losses/policy_loss``, ``losses/value_loss``, ``losses/entropy``, ``losses/approx_kl``,
``losses/clipfrac``, ``losses/explained_variance``, ``losses/loss`` (per update), all at
the global environment step, in a :class:`~course_lib.utils.metrics.MetricLogger`.

Checkpoints (:func:`ppo` with ``checkpoint=`` / ``checkpoint_every=`` / ``resume=``) hold the
networks, the optimiser, the envs (pickled mid-episode), the current observations, the episode
counters, the divergence guard's recent KLs and the Python, NumPy and torch random states, so
``updates=N``, save, resume, ``updates=N`` gives the same parameters as ``updates=2N`` in one go
(tested on CPU). They are written atomically (:func:`~course_lib.utils.checkpoint.save_checkpoint`):
every ``checkpoint_every`` updates, at the end of the call, and after the current update on Ctrl-C.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from torch import nn
from torch.distributions import Categorical

from course_lib.rl import (DivergenceGuard, clipped_surrogate, explained_variance, gae, guarded_step, normalize,
                           value_loss)
from course_lib.utils import set_seed
from course_lib.utils.checkpoint import (DeferredInterrupt, check_checkpoint_args, check_picklable, resume_state,
                                         rng_states, save_checkpoint, set_rng_states)
from course_lib.utils.device import small_net_device
from course_lib.utils.metrics import MetricLogger
from course_lib.utils.validation import check_float, check_int


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of :func:`ppo` (names as in CleanRL's ``ppo.py``)."""

    env_id: str = "CartPole-v1"
    """A Gymnasium id with flat ``Box`` observations and ``Discrete`` actions (ignored when ``ppo`` gets ``env_fn``)."""
    num_envs: int = 8
    """Envs stepped in lock-step (a ``SyncVectorEnv``); usually 1 to 64."""
    num_steps: int = 32
    """Steps per env per rollout; batch = num_envs * num_steps transitions per update; usually 16 to 2048."""
    total_timesteps: int = 100_000
    """Environment steps in all (summed over envs), rounded down to whole updates."""
    learning_rate: float = 3e-3
    """Adam step size in (0, 1] at the first update; usually 1e-4 to 3e-3."""
    anneal_lr: bool = True
    """Anneal the step size linearly to 0 over ``num_updates`` updates."""
    gamma: float = 0.99
    """Discount in [0, 1]; usually 0.95 to 0.999."""
    gae_lambda: float = 0.95
    """GAE's lambda in [0, 1]: 0 is the TD error, 1 the Monte-Carlo return minus V; usually 0.8 to 0.99."""
    num_minibatches: int = 1
    """Minibatches per epoch; must divide the batch; usually 1 to 32."""
    update_epochs: int = 10
    """Passes over each batch; usually 3 to 30."""
    norm_adv: bool = True
    """Whiten the advantages of each minibatch (mean 0, std 1)."""
    clip_eps: float = 0.2
    """PPO's epsilon in (0, 1): the ratio is clipped to [1 - eps, 1 + eps]; usually 0.1 to 0.3."""
    clip_vloss: bool = False
    """Clip the value update around the old values by ``clip_eps`` (Engstrom et al. 2020 found it rarely helps)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus, >= 0; usually 0 to 0.01."""
    vf_coef: float = 0.5
    """Weight of the value loss, > 0; usually 0.5 to 1."""
    max_grad_norm: float = 0.5
    """Clip the gradient to this global L2 norm, > 0 (``math.inf``: off); usually 0.5 to 10."""
    target_kl: float | None = None
    """Stop an update's epochs once the approximate KL of a minibatch exceeds this (> 0), or None; usually 0.01-0.05."""
    divergence_kl: float | None = 1.0
    """Stop the whole run (:class:`~course_lib.rl.DivergenceError`) once the largest approximate KL of each update,
    averaged over the last 3 updates, exceeds this (> 0; normal CartPole updates stay below 0.1); None switches the
    guard off for a deliberate experiment."""
    hidden: int = 64
    """Width of the two tanh hidden layers of the actor and of the critic; usually 32 to 256."""

    def __post_init__(self):
        def positive_int(name):
            value = getattr(self, name)
            check_int(name, value, 1)

        def flag(name):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")

        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id: expected a Gymnasium id such as 'CartPole-v1', got {self.env_id!r}")
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden"):
            positive_int(name)
        for name in ("anneal_lr", "norm_adv", "clip_vloss"):
            flag(name)
        if isinstance(self.total_timesteps, bool) or not isinstance(self.total_timesteps, int) \
                or self.total_timesteps < self.batch_size:
            raise ValueError(f"total_timesteps: expected an int >= one batch (num_envs * num_steps = "
                             f"{self.batch_size}), got {self.total_timesteps!r}")
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"num_minibatches: expected a divisor of the batch size {self.batch_size} "
                             f"(num_envs * num_steps), got {self.num_minibatches!r}")
        check_float("learning_rate", self.learning_rate, "(0, 1]")
        check_float("gamma", self.gamma, "[0, 1]")
        check_float("gae_lambda", self.gae_lambda, "[0, 1]")
        check_float("clip_eps", self.clip_eps, "(0, 1)")
        check_float("ent_coef", self.ent_coef, ">= 0")
        check_float("vf_coef", self.vf_coef, "> 0")
        check_float("max_grad_norm", self.max_grad_norm, "> 0", note="math.inf: no clipping")
        check_float("target_kl", self.target_kl, "> 0", none_ok=True)
        check_float("divergence_kl", self.divergence_kl, "> 0", none_ok=True)

    @property
    def batch_size(self) -> int:
        """Transitions per update: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Updates in a full run: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size


PPO_PRESETS: dict[str, PPOConfig] = {
    # The test suite: 3 updates of 4 x 16 steps; proves the loop runs, checkpoints and logs. Learns little.
    "cartpole_ci": PPOConfig(num_envs=4, num_steps=16, total_timesteps=192, update_epochs=2),
    # Solves CartPole-v1 fast: 8 envs x 32 steps, 10 epochs on each batch of 256, lr 3e-3 annealed, no entropy
    # bonus (started from the RL Zoo's tuned CartPole settings, then tuned by measurement). On a 2-core CPU:
    # ~12,000 env steps/s; greedy mean >= 475 after a median of 20k steps (~1.6 s), every seed of 0-7 by 40k.
    "cartpole_fast": PPOConfig(),
    # CleanRL's defaults for classic control (4 envs x 128 steps, 4 epochs of 4 minibatches, lr 2.5e-4):
    # slower to solve, the settings most tutorials start from.
    "cartpole_cleanrl": PPOConfig(num_envs=4, num_steps=128, total_timesteps=500_000, learning_rate=2.5e-4,
                                  gamma=0.99, gae_lambda=0.95, num_minibatches=4, update_epochs=4, clip_vloss=True,
                                  ent_coef=0.01),
    # Lesson 7, imitation then RL (course_lib.deep.imitation): PPO on the maze, for fine-tuning a behaviour-cloned
    # policy on LAYOUTS["large_changed"]. Pass env_fn=partial(make_maze_env, "large_changed") (one-hot observations);
    # env_id only names the task. cartpole_fast's settings (tuned by measurement; an entropy bonus made runs less
    # stable), 20k steps, ~2-3 s on a 2-core CPU. From the clone: greedy success after a median of ~2.3k env steps;
    # from scratch: not within the budget (it learns to bump into walls or to end episodes in the trap).
    "maze_finetune": PPOConfig(env_id="course/LargeMaze-v0", total_timesteps=20_000),
    # The test suite and the ci profile: 3 updates of maze_finetune's shape (768 steps, well under a second).
    "maze_ci": PPOConfig(env_id="course/LargeMaze-v0", total_timesteps=768),
}


# ---- the agent ---------------------------------------------------------------------------


def _layer(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    """A linear layer with orthogonal weights of scale ``gain`` and zero bias (Huang et al. 2022, detail 2)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs: pi(a | s) as categorical logits and V(s).

    The actor's last layer starts near 0 (gain 0.01), so the first policy is close to uniform;
    the critic's with gain 1.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.actor = nn.Sequential(_layer(obs_dim, hidden, math.sqrt(2)), nn.Tanh(),
                                   _layer(hidden, hidden, math.sqrt(2)), nn.Tanh(), _layer(hidden, n_actions, 0.01))
        self.critic = nn.Sequential(_layer(obs_dim, hidden, math.sqrt(2)), nn.Tanh(),
                                    _layer(hidden, hidden, math.sqrt(2)), nn.Tanh(), _layer(hidden, 1, 1.0))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) -> V(s) (B,)."""
        return self.critic(obs).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) -> action logits (B, A)."""
        return self.actor(obs)


@dataclass
class PPOResult:
    """What :func:`ppo` returns."""

    agent: ActorCritic
    logger: MetricLogger
    """Every metric of the run, with history (``logger.plot()``, ``logger.as_arrays(name)``)."""
    global_step: int
    """Environment steps taken so far (summed over the envs), counting those before a resume."""
    updates_done: int
    """Updates done so far, counting those before a resume."""
    seconds: float
    """Wall time of this call's training (after setup)."""
    stopped_by_callback: bool = False


def make_envs(env_fn: Callable[[], gym.Env], num_envs: int) -> SyncVectorEnv:
    """``num_envs`` copies of ``env_fn()`` in a ``SyncVectorEnv`` that resets finished copies in the same step.

    ``env_fn`` must be picklable (a module-level function or a ``functools.partial``) for checkpoints.
    """
    return SyncVectorEnv([env_fn] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


def _check_spaces(envs: SyncVectorEnv) -> tuple[int, int]:
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(act_space, gym.spaces.Discrete) or not isinstance(obs_space, gym.spaces.Box) \
            or len(obs_space.shape) != 1:
        raise ValueError(f"env: expected flat Box observations and Discrete actions, got {obs_space} and {act_space}")
    return obs_space.shape[0], int(act_space.n)


def _check_observations(obs: np.ndarray, where: str, envs: SyncVectorEnv, ids=None, kind: str = "") -> None:
    """Raise FloatingPointError naming the env when a row of ``obs`` (B, obs_dim) holds a NaN or an infinity.

    Checked as the envs return them: fed to the networks, such an observation would surface as non-finite logits or
    losses, which look like a training problem (and ask for a lower learning rate) but are the environment's.

    Args:
        ids: (B,) the env index of each row (default: row b is env b). kind: "final " for a time limit's final
            observations.
    """
    bad = ~np.isfinite(obs).all(axis=1)  # (B,)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        i = int(b if ids is None else ids[b])
        spec = getattr(envs.envs[i], "spec", None)
        name = f" ({spec.id})" if spec is not None else ""
        raise FloatingPointError(f"{where}: env {i}{name} returned a non-finite {kind}observation {obs[b]}; the "
                                 "environment produced it, so this is not a learning-rate problem: check the "
                                 "environment's dynamics and observations (or end the episode before they overflow)")


@dataclass
class Rollout:
    """One rollout's buffers, N envs x T steps, filled by :func:`collect_rollout`."""

    obs: torch.Tensor
    """(N, T, obs_dim) the observation s_t each action was chosen in."""
    actions: torch.Tensor
    """(N, T) long: a_t."""
    logp: torch.Tensor
    """(N, T) log pi_old(a_t | s_t) at collection time."""
    rewards: torch.Tensor
    """(N, T) r_{t+1}."""
    values: torch.Tensor
    """(N, T) V(s_t) at collection time."""
    next_values: torch.Tensor
    """(N, T) V(s_{t+1}) for bootstrapping; at a time limit, V of the episode's final observation."""
    terminated: torch.Tensor
    """(N, T) bool: s_{t+1} is terminal (worth 0)."""
    truncated: torch.Tensor
    """(N, T) bool: a time limit cut the episode after step t (bootstrap from ``next_values``)."""

    @classmethod
    def empty(cls, N: int, T: int, obs_dim: int, device) -> Rollout:
        obs = torch.zeros((N, T, obs_dim), device=device)  # (N, T, obs_dim)
        actions = torch.zeros((N, T), dtype=torch.long, device=device)  # (N, T)
        logp, rewards, values, next_values = (torch.zeros((N, T), device=device) for _ in range(4))  # (N, T) each
        terminated, truncated = (torch.zeros((N, T), dtype=torch.bool, device=device) for _ in range(2))  # (N, T)
        return cls(obs, actions, logp, rewards, values, next_values, terminated, truncated)


def collect_rollout(agent: ActorCritic, envs: SyncVectorEnv, rollout: Rollout, obs_t: torch.Tensor, counters: dict,
                    logger: MetricLogger, where: str) -> torch.Tensor:
    """Phase 2 of :func:`ppo`: T steps in each of the N envs with the current policy, into ``rollout``.

    Logs each finished episode's return and length, and fills ``rollout.next_values``: V of the final
    observation where a time limit cut an episode, else the next step's V(s_{t+1}).

    Args:
        obs_t: (N, obs_dim) the envs' current observations. counters: the run's step and episode counters,
            updated in place. where: names the update in errors.

    Returns:
        (N, obs_dim) the observations after the rollout.
    """
    (N, T), device = rollout.actions.shape, rollout.obs.device
    for t in range(T):
        with torch.no_grad():
            logits = agent(obs_t)  # (N, A)
            if not torch.isfinite(logits).all():
                raise FloatingPointError(f"{where}, global step {counters['global_step']}: the policy's "
                                         "logits are not finite; lower learning_rate or max_grad_norm")
            dist = Categorical(logits=logits, validate_args=False)
            action = dist.sample()  # (N,)
            rollout.obs[:, t], rollout.actions[:, t] = obs_t, action
            rollout.logp[:, t], rollout.values[:, t] = dist.log_prob(action), agent.value(obs_t)
        next_obs, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
        counters["global_step"] += N
        _check_observations(next_obs, f"{where}, global step {counters['global_step']}", envs)
        if not np.isfinite(reward).all():
            raise FloatingPointError(f"{where}, global step {counters['global_step']}: env "
                                     f"{int(np.flatnonzero(~np.isfinite(reward))[0])} returned the reward "
                                     f"{reward[~np.isfinite(reward)][0]}; check the environment")
        rollout.rewards[:, t] = torch.as_tensor(reward, dtype=torch.float32, device=device)
        rollout.terminated[:, t] = torch.as_tensor(terminated, device=device)
        rollout.truncated[:, t] = torch.as_tensor(truncated, device=device)
        # V(s_{t+1}) for bootstrapping where a time limit cut the episode: the value of its *final*
        # observation (SAME_STEP autoreset already put the next episode's first observation in next_obs).
        # Elsewhere V(s_{t+1}) is the next step's values entry, filled in after the rollout.
        cut = np.flatnonzero(truncated & ~terminated)
        if len(cut):
            final = np.stack([info["final_obs"][i] for i in cut])  # (len(cut), obs_dim)
            _check_observations(final, f"{where}, global step {counters['global_step']}", envs, cut, "final ")
            with torch.no_grad():
                rollout.next_values[cut, t] = agent.value(torch.as_tensor(final, dtype=torch.float32, device=device))
        obs_t = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
        counters["ep_return"] += reward
        counters["ep_length"] += 1
        for i in np.flatnonzero(terminated | truncated):
            logger.log(counters["global_step"], {"charts/episodic_return": counters["ep_return"][i],
                                                 "charts/episode_length": counters["ep_length"][i]})
            counters["ep_return"][i], counters["ep_length"][i] = 0.0, 0

    trunc, next_values = rollout.truncated, rollout.next_values
    with torch.no_grad():
        next_values[:, -1] = torch.where(trunc[:, -1], next_values[:, -1], agent.value(obs_t))  # (N,)
    next_values[:, :-1] = torch.where(trunc[:, :-1], next_values[:, :-1], rollout.values[:, 1:])  # (N, T-1)
    return obs_t


def update_epochs(agent: ActorCritic, optimizer: torch.optim.Optimizer, config: PPOConfig, rollout: Rollout,
                  advantages: torch.Tensor, returns: torch.Tensor, where: str, global_step: int) -> list[dict]:
    """Phase 4 of :func:`ppo`: ``update_epochs`` passes of minibatch steps on the rollout's N*T transitions.

    Each minibatch: the clipped surrogate (Schulman et al. 2017, Eq. 7) on its (optionally whitened)
    advantages, the (optionally clipped) value loss and the entropy bonus, then one guarded, clipped
    step. The epochs stop early once a minibatch's approx KL exceeds ``config.target_kl``.

    Args:
        advantages, returns: (N, T) from GAE. where, global_step: name the place in errors.

    Returns:
        one dict of ``losses/*`` metrics per minibatch step.
    """
    N, T = rollout.actions.shape
    b_obs, b_act, b_logp = rollout.obs.reshape(N * T, -1), rollout.actions.reshape(-1), rollout.logp.reshape(-1)
    b_adv, b_ret, b_val = advantages.reshape(-1), returns.reshape(-1), rollout.values.reshape(-1)  # (N*T,) each
    infos = []
    for epoch in range(config.update_epochs):
        order = torch.randperm(N * T, device=b_obs.device)
        for k, start in enumerate(range(0, N * T, config.minibatch_size)):
            mb = order[start:start + config.minibatch_size]
            logits = agent(b_obs[mb])  # (M, A)
            dist = Categorical(logits=logits, validate_args=False)
            adv = normalize(b_adv[mb]) if config.norm_adv else b_adv[mb]  # (M,)
            pg_loss, info = clipped_surrogate(dist.log_prob(b_act[mb]), b_logp[mb], adv, config.clip_eps)
            v_loss, v_info = value_loss(agent.value(b_obs[mb]), b_ret[mb], b_val[mb],
                                        config.clip_eps if config.clip_vloss else None)
            entropy = dist.entropy().mean()
            loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss
            # backward and a clipped step; a non-finite loss or gradient norm raises FloatingPointError
            guarded_step(optimizer, loss, agent.parameters(), config.max_grad_norm,
                         f"{where}, epoch {epoch}, minibatch {k} (global step {global_step})",
                         parts={"policy": pg_loss, "value": v_loss}, fix="lower learning_rate or max_grad_norm")
            infos.append({"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                          "losses/entropy": entropy.item(), "losses/loss": loss.item(),
                          "losses/approx_kl": info["approx_kl"], "losses/clipfrac": info["clipfrac"]})
        # optional early stop once the policy moved too far from the one that collected the data
        if config.target_kl is not None and infos[-1]["losses/approx_kl"] > config.target_kl:
            break
    return infos


def _start(config: PPOConfig, seed: int, env_fn, agent, state: dict | None, device):
    """The envs, the agent, the first observations and the counters of a run: rebuilt from a checkpoint's
    ``state``, or new (seeded; the agent made or moved to ``device``; each env reset with ``seed + i``)."""
    if state is not None:
        envs = pickle.loads(state["envs"])
        agent = ActorCritic(*_check_spaces(envs), config.hidden).to(device)
        agent.load_state_dict(state["agent"])
        return envs, agent, state["next_obs"], state["counters"]
    set_seed(seed)
    envs = make_envs(env_fn or partial(gym.make, config.env_id), config.num_envs)
    obs_dim, n_actions = _check_spaces(envs)
    agent = (agent if agent is not None else ActorCritic(obs_dim, n_actions, config.hidden)).to(device)
    next_obs, _ = envs.reset(seed=[seed + i for i in range(config.num_envs)])
    _check_observations(next_obs, "reset", envs)
    counters = {"update": 0, "global_step": 0, "ep_return": np.zeros(config.num_envs),
                "ep_length": np.zeros(config.num_envs, dtype=np.int64)}
    return envs, agent, next_obs, counters


def _update_metrics(infos: list[dict], rollout: Rollout, returns: torch.Tensor, lr: float) -> dict[str, float]:
    """One update's logged values: the means of its minibatches' ``losses/*``, the critic's explained variance
    (left out when the batch's returns do not vary, where it is NaN) and the learning rate."""
    metrics = {name: float(np.mean([i[name] for i in infos])) for name in infos[0]}
    ev = float(explained_variance(rollout.values.reshape(-1), returns.reshape(-1)))
    if math.isfinite(ev):
        metrics["losses/explained_variance"] = ev
    metrics["charts/learning_rate"] = lr
    return metrics


def ppo(config: PPOConfig = PPO_PRESETS["cartpole_fast"], seed: int = 0, *, env_fn: Callable[[], gym.Env] | None = None,
        agent: ActorCritic | None = None, updates: int | None = None, checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None, resume: str | Path | None = None,
        callback: Callable[[int, ActorCritic], bool] | None = None, progress: bool = True, live: bool | None = None,
        device=None) -> PPOResult:
    """Train an actor-critic with PPO (Schulman et al. 2017, Algorithm 1; clipped objective, Eq. 7).

    Args:
        config: a :class:`PPOConfig`, e.g. ``PPO_PRESETS["cartpole_fast"]``.
        seed: seeds Python, NumPy and torch (:func:`set_seed`); env i is reset with ``seed + i``.
        env_fn: builds one env (flat ``Box`` observations, ``Discrete`` actions); default
            ``gym.make(config.env_id)``. With ``checkpoint``, it and the envs it builds must pickle (a
            module-level function or a ``functools.partial``, not a lambda): checked before the first update.
        agent: an :class:`ActorCritic` to start from (e.g. behaviour-cloned), trained in place;
            default a fresh one.
        updates: stop after this many updates in this call (default: the rest of ``config.num_updates``).
            The learning-rate schedule always follows the full ``config.num_updates``.
        checkpoint: the file the whole training state is saved to (atomically: an interrupted save leaves the
            previous file whole) every ``checkpoint_every`` updates, when the call ends (the last update or the
            callback's stop) and on Ctrl-C (the current update finishes, is saved, then KeyboardInterrupt is
            raised; a second Ctrl-C stops at once). Not on an error: the last good checkpoint stays. It holds
            ``config`` (as a dict), ``agent`` (the networks' state dict), ``optimizer`` (Adam's state),
            ``envs`` (the pickled vector env, mid-episode), ``next_obs`` (their current observations),
            ``counters`` (updates done, the global step, each env's running episode return and length),
            ``guard`` (the divergence guard's recent KLs) and ``rng`` (the Python, NumPy and torch random
            states). Not the logged metrics: a resumed run's logger starts empty.
        checkpoint_every: also save after every K-th update of the run (counted from its start, so a resumed
            run saves at the same updates), an int >= 1; None: only at the end and on Ctrl-C.
        resume: continue from a file written with ``checkpoint`` (``seed``, ``env_fn`` and ``agent``
            are then taken from it; ``config`` must equal the saved one). May be the same file as ``checkpoint``.
        callback: ``callback(global_step, agent)`` after each update; returning True stops training
            (e.g. an evaluation that found the task solved). Its time is not counted in ``seconds``.
        progress: show a progress bar over environment steps. live: passed to :class:`MetricLogger`.
        device: passed to :func:`~course_lib.utils.device.small_net_device`; None means ``COURSE_DEVICE``
            if set, else ``"cpu"`` (small MLPs are fastest there).

    Returns:
        a :class:`PPOResult`.

    Raises:
        FloatingPointError: an observation, reward, logit, loss or gradient norm is not finite; the message
            names the update and the global step (and the env, or the epoch and minibatch). Training never goes
            on from NaN.
        DivergenceError: the updates' approximate KL, averaged over 3 updates, exceeded ``config.divergence_kl``.
        KeyboardInterrupt: Ctrl-C with ``checkpoint``, after the current update was saved.
    """
    if not isinstance(config, PPOConfig):
        raise ValueError(f"config: expected a PPOConfig (e.g. PPO_PRESETS['cartpole_fast']), got {config!r}")
    if isinstance(updates, bool) or (updates is not None and (not isinstance(updates, int) or updates < 1)):
        raise ValueError(f"updates: expected an int >= 1 or None, got {updates!r}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"checkpoint: expected a file path (str or Path) or None, got {checkpoint!r}")
    check_checkpoint_args(checkpoint, checkpoint_every, config)
    device = small_net_device(device)
    state = resume_state(resume, "ppo", config) if resume is not None else None
    envs, agent, next_obs, counters = _start(config, seed, env_fn, agent, state, device)
    if checkpoint is not None:  # fail now, not at the first save
        if env_fn is not None and state is None:
            check_picklable("env_fn", env_fn)
        check_picklable("env_fn", envs, "a checkpoint stores the envs env_fn builds")
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5, foreach=True)
    guard = DivergenceGuard(config.divergence_kl)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        guard.recent = list(state["guard"])
        set_rng_states(state["rng"])
    first = counters["update"]
    last = config.num_updates if updates is None else min(config.num_updates, first + updates)

    rollout = Rollout.empty(config.num_envs, config.num_steps, envs.single_observation_space.shape[0], device)
    logger = MetricLogger(total=config.num_updates * config.batch_size, desc="PPO", live=live, progress=progress,
                          keys_to_plot=["charts/episodic_return", "losses/approx_kl", "losses/clipfrac",
                                        "losses/entropy", "losses/explained_variance", "losses/value_loss"])
    obs_t = torch.as_tensor(next_obs, dtype=torch.float32, device=device)  # (N, obs_dim)
    seconds, stopped, saved = 0.0, False, None

    def save() -> None:
        """The whole training state after ``counters["update"]`` updates, into ``checkpoint``."""
        nonlocal saved
        save_checkpoint({"config": asdict(config), "agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
                         "envs": pickle.dumps(envs), "next_obs": obs_t.cpu().numpy(), "counters": counters,
                         "guard": list(guard.recent), "rng": rng_states()}, checkpoint, "ppo")
        saved = counters["update"]

    interrupt = DeferredInterrupt("PPO", enabled=checkpoint is not None)
    try:
        with interrupt:
            started = time.perf_counter()
            for update in range(first, last):
                # 1. anneal the learning rate linearly from learning_rate to 0 over the whole run
                lr = config.learning_rate * (1 - update / config.num_updates) if config.anneal_lr \
                    else config.learning_rate
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # 2. collect T steps in each of the N envs with the current policy (no gradient)
                obs_t = collect_rollout(agent, envs, rollout, obs_t, counters, logger, f"update {update}")

                # 3. advantages and value targets by GAE over each env's row (Schulman et al. 2016, Eq. 16)
                advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                          rollout.truncated, gamma=config.gamma, lam=config.gae_lambda)  # (N, T)

                # 4. update epochs: shuffle the N*T transitions into minibatches, a guarded step on each
                infos = update_epochs(agent, optimizer, config, rollout, advantages, returns,
                                      f"update {update}", counters["global_step"])

                # 5. log the update's means, stop a diverging run, then let the callback evaluate (untimed)
                counters["update"] = update + 1
                guard.check(max(i["losses/approx_kl"] for i in infos), f"update {update}")
                logger.log(counters["global_step"], _update_metrics(infos, rollout, returns, lr))
                seconds += time.perf_counter() - started
                if callback is not None:
                    stopped = bool(callback(counters["global_step"], agent))

                # then save (untimed): every checkpoint_every updates, or now that Ctrl-C asked to stop
                due = checkpoint_every is not None and counters["update"] % checkpoint_every == 0
                if checkpoint is not None and (interrupt.requested or due):
                    save()
                    if interrupt.requested:
                        raise KeyboardInterrupt(f"PPO: interrupted after update {counters['update']}; saved to "
                                                f"{str(checkpoint)!r}: continue with ppo(config, resume="
                                                f"{str(checkpoint)!r})")
                started = time.perf_counter()
                if stopped:
                    break
            if checkpoint is not None and saved != counters["update"]:
                save()
            if interrupt.requested:  # Ctrl-C during the last save: all is saved
                raise KeyboardInterrupt(f"PPO: interrupted after the last update; saved to {str(checkpoint)!r}")
    finally:
        logger.close()
        envs.close()
    return PPOResult(agent, logger, counters["global_step"], counters["update"], seconds, stopped)


SEEDINGS = ("per_episode", "first_reset")
"""How :func:`evaluate` seeds its episodes: lesson 7's side-by-side copies, or lesson 6's one seeded stream."""


def evaluate(agent: nn.Module, env_fn: Callable[[], gym.Env] | str = "CartPole-v1", episodes: int = 10,
             seed: int = 10_000, seeding: str = "per_episode") -> np.ndarray:
    """Undiscounted returns of ``episodes`` greedy episodes (argmax of the logits).

    Works for any module mapping (B, obs_dim) to (B, A) logits (and (obs_dim,) to (A,)).

    Args:
        agent: the policy network. env_fn: a Gymnasium id or a function building one env.
        episodes: how many episodes, >= 1. seed: the seed of the first reset.
        seeding: one of :data:`SEEDINGS`.
            ``"per_episode"``: one vectorised env with ``episodes`` copies, reset with seeds ``seed, seed + 1,
            ...``, each copy playing one episode, all side by side (PPO's, lesson 7);
            ``"first_reset"``: one env, the episodes one after another; the first reset is seeded with
            ``seed``, later resets continue the environment's stream (REINFORCE's, lesson 6).

    Returns:
        (episodes,) float64.
    """
    check_int("episodes", episodes, 1)
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding: expected one of {SEEDINGS}, got {seeding!r}")
    env_fn = partial(gym.make, env_fn) if isinstance(env_fn, str) else env_fn
    device = next(agent.parameters()).device
    if seeding == "first_reset":
        return _evaluate_in_turn(agent, env_fn(), episodes, seed, device)
    envs = SyncVectorEnv([env_fn] * episodes, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        with torch.no_grad():
            action = agent(torch.as_tensor(obs, dtype=torch.float32, device=device)).argmax(-1)  # (episodes,)
        obs, reward, terminated, truncated, _ = envs.step(action.cpu().numpy())
        returns += reward * running
        running &= ~(terminated | truncated)
    envs.close()
    return returns


def _evaluate_in_turn(agent: nn.Module, env: gym.Env, episodes: int, seed: int, device) -> np.ndarray:
    """:func:`evaluate` with ``seeding="first_reset"``: one env, one episode after another."""
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        done = False
        while not done:
            with torch.no_grad():
                logits = agent(torch.as_tensor(obs, dtype=torch.float32, device=device))  # (A,)
            obs, reward, terminated, truncated, _ = env.step(int(logits.argmax()))
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns
