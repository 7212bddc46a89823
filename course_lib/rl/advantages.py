"""Returns and advantages with explicit episode ends: reward-to-go, TD errors and GAE.

Time is the last axis everywhere: (B, T) for B sequences of T steps, which
are env steps (transpose a vectorised rollout of shape (T, N) to (N, T)) or
generated tokens. A step t is described by:

* ``rewards[b, t]``: r_{t+1}, the reward after the action at t;
* ``values[b, t]``: V(s_t);
* ``next_values[b, t]``: V(s_{t+1}), the value of the observation that
  *followed* step t, also when the episode was cut there (a time limit or the
  end of the rollout): that is the bootstrap value;
* ``terminated[b, t]``: s_{t+1} is terminal, so it is worth 0 (no bootstrap);
* ``truncated[b, t]``: the episode was cut after t (time limit): bootstrap
  from ``next_values`` but do not carry later advantages across the cut.

Gymnasium's ``Env.step`` draws the same line between ``terminated`` and ``truncated``.
"""

from __future__ import annotations

import torch

from course_lib.utils.validation import check_float


def _check_same(name: str, t: torch.Tensor, shape: torch.Size) -> None:
    if t.shape != shape:
        raise ValueError(f"{name}: expected shape {tuple(shape)} (rewards.shape), got {tuple(t.shape)}")


def _check_steps(rewards: torch.Tensor) -> None:
    if rewards.dim() == 0 or rewards.shape[-1] == 0:
        raise ValueError(f"rewards: expected shape (B, T) with T >= 1 steps, got {tuple(rewards.shape)}")


def td_errors(rewards, values, next_values, terminated, gamma: float) -> torch.Tensor:
    """delta_t = r_{t+1} + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)  (Sutton & Barto 2018, Eq. 6.5).

    All arguments (B, T); returns (B, T).
    """
    check_float("gamma", gamma, "[0, 1]")
    for name, t in (("values", values), ("next_values", next_values), ("terminated", terminated)):
        _check_same(name, t, rewards.shape)
    return rewards + gamma * next_values * (~terminated.bool()).to(rewards.dtype) - values


def gae(rewards, values, next_values, terminated, truncated=None, gamma: float = 0.99, lam: float = 0.95,
        mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16), computed backwards in time:

        A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   done_t = terminated_t or truncated_t,

    with A_T = 0 after the last step of the rollout (a cut: ``next_values``
    carries its bootstrap value). lam = 1 gives the Monte-Carlo return minus
    V(s_t) (bootstrapped at cuts); lam = 0 gives the TD error.

    Args:
        rewards, values, next_values: (B, T) floats, T >= 1 steps.
        terminated: (B, T) bool. truncated: (B, T) bool or None (no time-limit cuts).
        gamma: discount in [0, 1]. lam: GAE lambda in [0, 1].
        mask: (B, T) bool or None; steps outside the mask (padding) get advantage 0 and
            pass nothing back to earlier steps: put a real step's end (terminated or
            truncated) before padding begins.

    Returns:
        ``(advantages, returns)``, both (B, T); returns = advantages + values, the value-function targets.
    """
    _check_steps(rewards)
    check_float("lam", lam, "[0, 1]")
    delta = td_errors(rewards, values, next_values, terminated, gamma)  # (B, T)
    done = terminated.bool()
    if truncated is not None:
        _check_same("truncated", truncated, rewards.shape)
        done = done | truncated.bool()
    if mask is not None:
        _check_same("mask", mask, rewards.shape)
        delta = torch.where(mask.bool(), delta, torch.zeros_like(delta))
    carry = (~done).to(rewards.dtype) * gamma * lam  # (B, T): how much of A_{t+1} flows into A_t
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[..., 0])  # (B,) A_T = 0
    for t in range(rewards.shape[-1] - 1, -1, -1):  # a loop over T only; the batch is vectorised
        next_adv = delta[..., t] + carry[..., t] * next_adv
        advantages[..., t] = next_adv
    if mask is not None:
        advantages = torch.where(mask.bool(), advantages, torch.zeros_like(advantages))
    return advantages, advantages + values


def discounted_returns(rewards, gamma: float, terminated=None, truncated=None, next_values=None) -> torch.Tensor:
    """Reward-to-go G_t = r_{t+1} + gamma * G_{t+1}, restarting at episode ends (REINFORCE's return).

    Without ``next_values`` nothing is bootstrapped: a cut episode's return
    counts only the rewards seen. With ``next_values``, cuts (``truncated`` or the
    end of the rollout) bootstrap from V(s_{t+1}). Equals :func:`gae` with
    lam = 1 and V = 0 (tested).

    Args:
        rewards: (B, T). terminated, truncated: (B, T) bool or None. next_values: (B, T) or None.
    """
    _check_steps(rewards)
    zeros = torch.zeros_like(rewards)
    term = torch.zeros_like(rewards, dtype=torch.bool) if terminated is None else terminated.bool()
    bootstrap = zeros
    if next_values is not None:  # bootstrap only where the episode was cut, not after every step
        _check_same("next_values", next_values, rewards.shape)
        cut = torch.zeros_like(term)
        cut[..., -1] = True
        if truncated is not None:
            cut = cut | truncated.bool()
        bootstrap = torch.where(cut & ~term, next_values, zeros)
    _, returns = gae(rewards, zeros, bootstrap, term, truncated, gamma=gamma, lam=1.0)
    return returns


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask=None) -> torch.Tensor:
    """1 - Var[returns - values] / Var[returns]: 1 is a perfect value function, 0 no better than a
    constant, negative worse. NaN when the returns do not vary."""
    from course_lib.rl.masked import masked_var

    m = torch.ones_like(returns, dtype=torch.bool) if mask is None else mask.bool()
    var_y = masked_var(returns, m)
    return 1 - masked_var(returns - values, m) / var_y if var_y > 0 else torch.tensor(float("nan"))


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantages: each completion's reward relative to the other completions of its prompt.

        A_i = (r_i - mean_g(r)) / (std_g(r) + eps)     (Shao et al. 2024, DeepSeekMath, Section 4.1.2)

    std_g is the Bessel-corrected sample std of the G rewards (divided by G - 1, torch's default
    ``.std()``), the one Hugging Face TRL's ``GRPOTrainer`` divides by (its ``nanstd`` with
    ``scale_rewards="group"``, plus the same eps 1e-4), so lesson 16's TRL runs see the same
    advantages. The population std (divided by G) would give advantages sqrt(G / (G - 1)) larger.

    No value model: the group's mean is the baseline. With ``scale=False`` the division by the
    group's standard deviation is dropped, as Dr. GRPO argues (Liu et al. 2025, "Understanding
    R1-Zero-like training"): dividing up-weights prompts that are nearly always solved or failed.
    A group whose rewards are all equal gets advantages of exactly 0: it teaches nothing.

    Args:
        rewards: (B, G) one reward per completion, G >= 2 completions for each of B prompts.
        scale: divide by the group's (Bessel-corrected) standard deviation plus ``eps``.

    Returns:
        (B, G) advantages, one per completion (broadcast over its tokens by the loss).

    Raises:
        ValueError: ``rewards`` is not (B, G) with G >= 2 (a group of one has no baseline but
            itself, and its Bessel-corrected std, divided by G - 1 = 0, is undefined).
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards: expected shape (B, G) with G >= 2 completions per prompt (the std divides by "
                         f"G - 1), got {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # (B, G)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)  # (B, G); std divides by G - 1, as TRL's nanstd
