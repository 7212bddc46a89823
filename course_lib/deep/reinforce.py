"""REINFORCE with reward-to-go and an optional learned baseline (Williams 1992; Sutton & Barto 2018, 13.3-13.4).

The policy gradient theorem turns "make good episodes more likely" into a
gradient we can estimate from sampled episodes alone (Sutton & Barto 2018,
Section 13.3; the REINFORCE update is their Eq. 13.8):

    grad J(theta) = E_pi[ sum_t G_t * grad log pi(A_t | S_t, theta) ]

where ``G_t`` is the reward-to-go from step t. Subtracting a baseline ``b(S_t)``
that does not depend on the action leaves the expectation unchanged but can
shrink its variance a lot (Eqs. 13.9-13.11); a learned state value ``V(S_t)`` is
the usual choice ("REINFORCE with baseline", Section 13.4).

:func:`reinforce` is one top-to-bottom function in five phases: collect whole
episodes, compute the reward-to-go, subtract the baseline, take gradient steps,
log. The math lives in small pure functions (:func:`reward_to_go`,
:func:`per_episode_gradients`, :func:`gradient_variance`) so lessons can test them.

Recorded in :class:`ReinforceHistory` (names fixed, for plots):

===================  ==========  ==============================================================
field                per         meaning
===================  ==========  ==============================================================
``returns``          episode     undiscounted return of each training episode
``lengths``          episode     environment steps of each training episode
``policy_loss``      batch       -mean_t(log pi(a_t | s_t) * A_t) over the batch's steps
``value_loss``       batch       0.5 * mean_t (V(s_t) - G_t)^2 before the update (baseline only)
``grad_var``         batch       tr Cov[g_i] of the one-episode gradient estimate, A_t = G_t - V(s_t)
``grad_var_plain``   batch       the same on the same episodes with A_t = G_t (plain REINFORCE)
===================  ==========  ==============================================================

The variance measure (:func:`per_episode_gradients`, :func:`gradient_variance`):
each episode i of a batch gives its own estimate g_i = sum_t A_t grad log pi(a_t | s_t);
the total variance of these B vectors says how noisy one episode's estimate is.
Both columns use the advantages *before* normalisation, where G_t - V(s_t) and
G_t are unbiased estimates of the same gradient, so their variances compare.
``grad_var / grad_var_plain`` is a paired comparison on identical episodes: how
much the learned baseline cut the variance. (Comparing ``grad_var`` of two runs,
with and without a baseline, mixes that effect up with their different episode
lengths as soon as the two policies part ways.)

Pick a preset by profile in a notebook:
``REINFORCE_PRESETS[by_profile(ci="cartpole_ci", cpu="cartpole")]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical
from tqdm.auto import tqdm

from course_lib.deep.ppo import evaluate as greedy_returns
from course_lib.rl import discounted_returns, guarded_step, normalize, value_loss
from course_lib.utils import set_seed
from course_lib.utils.device import small_net_device
from course_lib.utils.validation import check_float, check_int


@dataclass(frozen=True)
class ReinforceConfig:
    """Hyper-parameters of :func:`reinforce`."""

    episodes: int = 400
    """Training episodes in total, a multiple of ``episodes_per_batch``; usually 200 to 5,000."""
    episodes_per_batch: int = 10
    """Whole episodes collected per gradient step (>= 2, for the variance measure); usually 4 to 32."""
    lr: float = 1e-2
    """Adam step size of the policy in (0, 1]; usually 1e-3 to 3e-2."""
    gamma: float = 0.99
    """Discount of the reward-to-go in [0, 1]; usually 0.95 to 1."""
    hidden: int = 64
    """Width of the two hidden tanh layers of the policy and value networks; usually 16 to 128."""
    baseline: bool = True
    """Subtract a learned V(s) from the return (Sutton & Barto 2018, Section 13.4)."""
    baseline_lr: float = 1e-2
    """Adam step size of the value network in (0, 1]; usually 1e-3 to 3e-2 (unused without a baseline)."""
    value_steps: int = 20
    """Gradient steps on the value network per batch, usually 1 to 80 (unused without a baseline)."""
    normalize_advantages: bool = True
    """Rescale each batch's advantages to mean 0, std 1 (a further constant baseline plus a step-size scale)."""
    max_grad_norm: float = 1.0
    """Clip each network's gradient to this global L2 norm, > 0 (``math.inf`` turns clipping off); usually 0.5 to 10."""

    def __post_init__(self):
        check_int("episodes_per_batch", self.episodes_per_batch, 2)
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int) or self.episodes < 1 \
                or self.episodes % self.episodes_per_batch:
            raise ValueError(f"episodes: expected a positive int multiple of episodes_per_batch "
                             f"({self.episodes_per_batch}), got {self.episodes!r}")
        check_float("lr", self.lr, "(0, 1]")
        check_float("gamma", self.gamma, "[0, 1]")
        check_int("hidden", self.hidden, 1)
        if not isinstance(self.baseline, bool):
            raise ValueError(f"baseline: expected a bool, got {self.baseline!r}")
        check_float("baseline_lr", self.baseline_lr, "(0, 1]")
        check_int("value_steps", self.value_steps, 1)
        if not isinstance(self.normalize_advantages, bool):
            raise ValueError(f"normalize_advantages: expected a bool, got {self.normalize_advantages!r}")
        check_float("max_grad_norm", self.max_grad_norm, "> 0", note="math.inf: no clipping")


REINFORCE_PRESETS: dict[str, ReinforceConfig] = {
    # The test suite: proves the loop runs and updates, 3 batches of 8 short episodes; about 1 s. Learns little.
    "cartpole_ci": ReinforceConfig(episodes=24, episodes_per_batch=8),
    # CartPole-v1 with a learned baseline. On a quiet 2-core CPU about 27 s (most later episodes run to the
    # 500-step limit); the 50-episode mean return passes 200 after 85-210 episodes and greedy evaluation
    # returns 500 (the time limit), seeds 0-9. Lesson 6 runs 300 of its 400 episodes.
    "cartpole": ReinforceConfig(episodes=400, episodes_per_batch=10, lr=1e-2, gamma=0.99, hidden=64, baseline=True,
                                baseline_lr=1e-2, value_steps=20, normalize_advantages=True, max_grad_norm=1.0),
}


@dataclass
class ReinforceHistory:
    """Per-episode and per-batch records of :func:`reinforce` (see the module's table)."""

    returns: list[float] = field(default_factory=list)
    """Undiscounted return of each training episode (stochastic policy)."""
    lengths: list[int] = field(default_factory=list)
    """Environment steps of each training episode."""
    policy_loss: list[float] = field(default_factory=list)
    """Per batch: -mean over the batch's steps of log pi(a_t | s_t) * A_t."""
    value_loss: list[float] = field(default_factory=list)
    """Per batch: 0.5 * mean (V(s_t) - G_t)^2 before the value update; empty without a baseline."""
    grad_var: list[float] = field(default_factory=list)
    """Per batch: :func:`gradient_variance` of the per-episode gradients with A_t = G_t - V(s_t) (G_t without a
    baseline), before any normalisation."""
    grad_var_plain: list[float] = field(default_factory=list)
    """Per batch: the same on the same episodes with A_t = G_t; equals ``grad_var`` without a baseline."""


# ---- networks ----------------------------------------------------------------------------


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """(..., in_dim) -> (..., out_dim) through two tanh hidden layers of width ``hidden``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, out_dim))


class CategoricalPolicy(nn.Module):
    """pi(a | s, theta): an MLP from observations to the logits of a categorical distribution over actions."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int):
        super().__init__()
        self.net = mlp(obs_dim, hidden, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs: (B, obs_dim) or (obs_dim,). Returns logits (B, A) or (A,)."""
        return self.net(obs)


# ---- the math, pure ----------------------------------------------------------------------


def reward_to_go(rewards: torch.Tensor, gamma: float, terminated: bool, last_value=None) -> torch.Tensor:
    """G_t = sum_{k > t} gamma^(k-t-1) r_k for one whole episode (Sutton & Barto 2018, Eq. 3.8).

    Args:
        rewards: (T,) r_1 .. r_T of one episode.
        terminated: the episode ended in a terminal state (G_T = 0). Otherwise it was
            truncated (a time limit): with ``last_value`` = V(s_T) the return is bootstrapped,
            G_{T-1} = r_T + gamma * V(s_T), as Gymnasium's ``Env.step`` asks; without it, the
            rewards seen are all that count (plain Monte-Carlo, Williams 1992).
        last_value: V(s_T) as a float or 0-d tensor, or None.

    Returns:
        (T,) returns, via :func:`course_lib.rl.discounted_returns` on a batch of one (time = last axis).
    """
    r = rewards.reshape(1, -1)  # (1, T)
    term = torch.zeros_like(r, dtype=torch.bool)  # (1, T): only the last step can end the episode
    term[0, -1] = terminated
    trunc = torch.zeros_like(term)
    trunc[0, -1] = not terminated
    next_values = None
    if last_value is not None:
        next_values = torch.zeros_like(r)  # (1, T); used only where the episode was cut
        next_values[0, -1] = float(last_value)
    return discounted_returns(r, gamma, terminated=term, truncated=trunc, next_values=next_values)[0]  # (T,)


def per_episode_gradients(logp: torch.Tensor, advantages: torch.Tensor, lengths: list[int],
                          params: list[torch.Tensor]) -> torch.Tensor:
    """One policy-gradient estimate per episode, g_i = sum_t A_t * grad log pi(a_t | s_t) (Williams 1992).

    Equals, for each episode i: zero the grads, ``(logp_i * A_i).sum().backward()``, flatten
    every ``p.grad`` and concatenate. The batch's update direction is sum_i g_i / N (N steps).

    Args:
        logp: (N,) log pi(a_t | s_t) of the batch's N steps, episodes one after another (with graph).
        advantages: (N,) A_t, no gradient. lengths: the B episode lengths, summing to N.
        params: the P' parameter tensors of the policy.

    Returns:
        (B, P), P = total number of policy parameters.
    """
    terms = torch.split(logp * advantages.detach(), lengths)  # B tensors of shape (T_i,)
    grads = []
    for term in terms:
        g = torch.autograd.grad(term.sum(), params, retain_graph=True)
        grads.append(torch.cat([x.reshape(-1) for x in g]))  # (P,)
    return torch.stack(grads)  # (B, P)


def gradient_variance(grads: torch.Tensor) -> float:
    """Total variance of a one-episode gradient estimate: tr Cov[g] = sum_p Var_i[g_{i,p}].

    The unbiased sample variance across the B episodes of each of the P coordinates, summed;
    equals sum_i ||g_i - mean_j g_j||^2 / (B - 1). A baseline leaves E[g] unchanged
    (Sutton & Barto 2018, Eqs. 13.9-13.10) and, when it fits the returns, makes this number smaller.

    Args:
        grads: (B, P) from :func:`per_episode_gradients`, B >= 2.
    """
    if grads.shape[0] < 2:
        raise ValueError(f"grads: expected at least 2 episodes (rows) for a variance, got {grads.shape[0]}")
    return float(grads.var(dim=0, unbiased=True).sum())


# ---- the algorithm -----------------------------------------------------------------------


def reinforce(env_id: str = "CartPole-v1", config: ReinforceConfig = REINFORCE_PRESETS["cartpole"], seed: int = 0,
              progress: bool = True, device=None):
    """REINFORCE with reward-to-go and (``config.baseline``) a learned state-value baseline.

    Sutton & Barto 2018, Section 13.4 ("REINFORCE with Baseline"), with the usual deliberate
    deviations: a batch of whole episodes per gradient step, averaged over its steps; Adam and
    gradient clipping; optional advantage normalisation; and no gamma^t factor in front of each
    step's term (the book's update has one; nearly every implementation drops it). With a
    baseline, an episode cut by a time limit is bootstrapped from V(s_T) (see :func:`reward_to_go`).

    Args:
        env_id: a Gymnasium id with a flat ``Box`` observation and ``Discrete`` actions.
        config: a :class:`ReinforceConfig`, e.g. ``REINFORCE_PRESETS["cartpole"]``.
        seed: seeds Python, NumPy and torch (:func:`set_seed`) and the first ``env.reset``.
        progress: show a tqdm bar over episodes.
        device: passed to :func:`~course_lib.utils.device.small_net_device`; ``None`` means ``COURSE_DEVICE``
            if set, else ``"cpu"`` (small MLPs are faster there).

    Returns:
        ``(policy, history)``: the trained :class:`CategoricalPolicy` and a :class:`ReinforceHistory`.

    Raises:
        FloatingPointError: a logit, loss or gradient norm is not finite; the message names
            the batch and its episodes. Training never goes on from NaN.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"env_id: expected a Gymnasium id string such as 'CartPole-v1', got {type(env_id).__name__} "
                         f"{env_id!r:.80}" + (" (pass it as config=...)" if isinstance(env_id, ReinforceConfig) else ""))
    if not isinstance(config, ReinforceConfig):
        raise ValueError(f"config: expected a ReinforceConfig (e.g. REINFORCE_PRESETS['cartpole']), got "
                         f"{type(config).__name__}")
    set_seed(seed)
    device = small_net_device(device)
    env = gym.make(env_id)
    if not isinstance(env.action_space, gym.spaces.Discrete) or not isinstance(env.observation_space, gym.spaces.Box) \
            or len(env.observation_space.shape) != 1:
        raise ValueError(f"env_id: expected flat Box observations and Discrete actions, got {env_id!r} with "
                         f"{env.observation_space} and {env.action_space}")
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, config.hidden).to(device)
    # Built even without a baseline, so both settings draw the same random numbers: same seed, same first batch.
    value_net = mlp(obs_dim, config.hidden, 1).to(device)
    policy_opt = torch.optim.Adam(policy.parameters(), lr=config.lr)
    value_opt = torch.optim.Adam(value_net.parameters(), lr=config.baseline_lr)
    history = ReinforceHistory()
    B = config.episodes_per_batch
    bar = tqdm(total=config.episodes, desc="reinforce", unit="episode", disable=not progress)

    for batch in range(config.episodes // B):
        where = f"batch {batch} (episodes {batch * B}-{batch * B + B - 1})"

        # 1. collect B whole episodes with the current stochastic policy
        obs_list, act_list, rew_list, ends = [], [], [], []  # ends: (terminated, s_T) per episode
        for i in range(B):
            episode = batch * B + i
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            observations, actions, rewards, done = [], [], [], False
            while not done:
                obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)  # (obs_dim,)
                with torch.no_grad():
                    logits = policy(obs_t)  # (A,)
                if not torch.isfinite(logits).all():
                    raise FloatingPointError(f"{where}, episode {episode}: the policy's logits are not finite "
                                             f"({logits.tolist()}); lower lr or max_grad_norm")
                action = int(Categorical(logits=logits).sample())
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs_t)
                actions.append(action)
                rewards.append(float(reward))
                done = terminated or truncated
            obs_list.append(torch.stack(observations))  # (T_i, obs_dim)
            act_list.append(torch.tensor(actions, device=device))  # (T_i,)
            rew_list.append(torch.tensor(rewards, device=device))  # (T_i,)
            ends.append((bool(terminated), torch.as_tensor(obs, dtype=torch.float32, device=device)))
            history.returns.append(float(sum(rewards)))
            history.lengths.append(len(rewards))
        lengths = [len(a) for a in act_list]
        obs_b = torch.cat(obs_list)  # (N, obs_dim), N = sum of the B episode lengths
        act_b = torch.cat(act_list)  # (N,)

        # 2. reward-to-go G_t per episode (Sutton & Barto 2018, Eq. 13.8), bootstrapped at time limits
        with torch.no_grad():
            last_values = [value_net(s_T).squeeze(-1) if config.baseline else None for _, s_T in ends]
        returns = torch.cat([reward_to_go(r, config.gamma, term, v)
                             for r, (term, _), v in zip(rew_list, ends, last_values)])  # (N,)

        # 3. advantages A_t = G_t - V(s_t) with the baseline detached (Eq. 13.11), optionally normalised
        if config.baseline:
            with torch.no_grad():
                advantages = returns - value_net(obs_b).squeeze(-1)  # (N,)
        else:
            advantages = returns
        raw_advantages = advantages  # (N,) before normalising: for the variance measure
        if config.normalize_advantages:
            advantages = normalize(advantages)

        # 4. policy step on -mean(logp * A); value steps on 0.5 * (V - G)^2
        logits = policy(obs_b)  # (N, A)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(f"{where}: the policy's logits on the batch are not finite; "
                                     "lower lr or max_grad_norm")
        logp = Categorical(logits=logits).log_prob(act_b)  # (N,)
        policy_loss = -(logp * advantages).mean()
        # the variance measure: one-episode gradient estimates weighted by G_t - V(s_t) and by G_t alone, both
        # unbiased for the same gradient (Eq. 13.10), so their variances compare (normalising would rescale them)
        params = list(policy.parameters())
        grads = per_episode_gradients(logp, raw_advantages, lengths, params)  # (B, P)
        grads_plain = per_episode_gradients(logp, returns, lengths, params) if config.baseline else grads  # (B, P)
        # backward and a clipped step; a non-finite loss or gradient norm raises FloatingPointError
        guarded_step(policy_opt, policy_loss, policy.parameters(), config.max_grad_norm, where,
                     loss_name="policy loss", norm_name="policy's gradient norm", fix="lower lr or max_grad_norm")
        v_loss = None
        if config.baseline:
            for step in range(config.value_steps):
                loss, _ = value_loss(value_net(obs_b).squeeze(-1), returns)  # 0.5 * mean (V(s_t) - G_t)^2
                guarded_step(value_opt, loss, value_net.parameters(), config.max_grad_norm, where,
                             loss_name="value loss", norm_name="value network's gradient norm",
                             at=f" at value step {step}", fix="lower baseline_lr or max_grad_norm")
                v_loss = loss.item() if v_loss is None else v_loss

        # 5. log
        history.policy_loss.append(policy_loss.item())
        history.grad_var.append(gradient_variance(grads))
        history.grad_var_plain.append(gradient_variance(grads_plain))
        if v_loss is not None:
            history.value_loss.append(v_loss)
        bar.update(B)
        bar.set_postfix(ret=f"{np.mean(history.returns[-B:]):.1f}")
    bar.close()
    env.close()
    return policy, history


def evaluate(policy: nn.Module, env_id: str = "CartPole-v1", episodes: int = 10, seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` episodes with the greedy action argmax_a pi(a | s): lesson 6's seeding.

    :func:`course_lib.deep.ppo.evaluate` with ``seeding="first_reset"``: the first reset is seeded
    with ``seed``; later resets continue the environment's stream.

    Returns:
        (episodes,) float64 undiscounted returns.
    """
    return greedy_returns(policy, env_id, episodes, seed, seeding="first_reset")
