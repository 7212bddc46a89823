"""Checks for lesson 7's exercises: GAE with explicit episode ends, PPO's clipped policy loss, the value loss, and
a prediction (``ppo_lr_prediction``: which learning rate makes PPO collapse) graded before its experiment runs.

The references are thin wrappers around :mod:`course_lib.rl` (the functions
the library's PPO calls). Both losses are checked on their value *and* on
their gradient: the adapter hands the student's function and the reference
alike a fresh ``logp`` (or ``values``) that requires grad, back-propagates
the returned scalar and returns ``(loss, grad)``. For the clipped surrogate
the gradient is the point: it is 0 where the clip is active and the ratio
has already moved in the advantage's favour, and only the gradient shows a
loss that has the right value but the wrong slope.

Rollout tensors are (N, T): N envs (rows), T steps, time on the last axis.
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.tensors import generator, with_grad
from course_lib.rl import clipped_surrogate, gae, value_loss

HINTS = {
    "gae_advantages": (
        "Pass 1, no loop: the (N, T) TD errors, each step's reward plus gamma times next_values, minus values, with "
        "the gamma term switched off (multiplied by 0) where terminated. Pass 2, a loop over t from T - 1 down to 0, "
        "all N rows at once: keep one (N,) running advantage, starting at 0; at each t it becomes delta[:, t] plus "
        "gamma * lam times its old value, with that carried part switched off where the episode ended at t "
        "(terminated OR truncated). Write it into column t. Returns = advantages + values. Worked example, one row, "
        "gamma 0.5, lam 1, rewards 1, values 0, next_values (0, 0, 0, 10), no episode end: deltas (1, 1, 1, 6), "
        "advantages (1 + 0.5 * 2.75, 1 + 0.5 * 3.5, 1 + 0.5 * 6, 6) = (2.375, 2.75, 4, 6). With terminated at the "
        "last step, delta[3] = 1 (no bootstrap) and the row is (1.875, 1.75, 1.5, 1); with truncated there instead, "
        "the same numbers as without an end (the bootstrap stays, and nothing comes after the row)."),
    "ppo_clip_loss": (
        "The ratio is new probability over old: exp of (logp minus old_logp), new first. Two candidate objectives "
        "per sample: ratio times A, and the ratio clamped between 1 - eps and 1 + eps, times A. Keep the elementwise "
        "smaller one (the pessimistic bound), average over every entry, negate. Worked example, eps 0.2: ratio 1.5 "
        "and A = 1 give min(1.5, 1.2) = 1.2 (flat: gradient 0); ratio 0.5 and A = 1 give min(0.5, 0.8) = 0.5 "
        "(unclipped, gradient not 0); ratio 0.5 and A = -1 give min(-0.5, -0.8) = -0.8 (flat). The loss of these "
        "three is -(1.2 + 0.5 - 0.8) / 3 = -0.3."),
    "value_loss_fn": (
        "Square the differences between predictions and targets entry by entry, average over every entry (no dim), "
        "and halve. Worked example: values (1, 2), returns (0, 4): squared errors 1 and 4, mean 2.5, loss 1.25; the "
        "gradient w.r.t. values is (V - R) / n = (0.5, -1)."),
}


# ---- references ----------------------------------------------------------------------------


def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Reference: :func:`course_lib.rl.gae` (Schulman et al. 2016, Eq. 16) with both episode-end flags.

    All tensors (N, T); returns ``(advantages, returns)``, both (N, T).
    """
    return gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)


def ppo_clip_loss(logp, old_logp, advantages, clip_eps):
    """Reference: the scalar loss of :func:`course_lib.rl.clipped_surrogate` (Schulman et al. 2017, Eq. 7, negated)."""
    loss, _ = clipped_surrogate(logp, old_logp, advantages, clip_eps)
    return loss


def value_loss_fn(values, returns):
    """Reference: :func:`course_lib.rl.value_loss` without clipping, 0.5 * mean((V - R)^2)."""
    loss, _ = value_loss(values, returns)
    return loss


# ---- seeded inputs -------------------------------------------------------------------------


def _rollout(seed: int, N: int, T: int, terminated_at=(), truncated_at=(), gamma: float = 0.99,
             lam: float = 0.95) -> tuple:
    """Args for ``gae_advantages`` as a rollout of the library's PPO lays them out.

    ``next_values[:, t]`` is ``values[:, t + 1]`` (the next observation's value), except after the last
    step and after a truncation, where it is V of the final observation (the bootstrap value). After a
    termination it still holds the next episode's first value, as in the PPO buffers: the flag, not
    the number, says "do not bootstrap".
    """
    g = generator(seed)
    rewards = torch.round(torch.rand((N, T), generator=g) * 2.0, decimals=2)  # (N, T), like CartPole's +1 scaled
    v = torch.round(torch.randn((N, T + 1), generator=g) * 2.0 + 3.0, decimals=2)  # (N, T + 1)
    values, next_values = v[:, :T].clone(), v[:, 1:].clone()  # (N, T) each: V(s_t) and V(s_{t+1})
    bootstrap = torch.round(torch.randn((N, T), generator=g) * 2.0 + 3.0, decimals=2)  # V(final obs) at cuts
    terminated = torch.zeros((N, T), dtype=torch.bool)
    truncated = torch.zeros((N, T), dtype=torch.bool)
    for n, t in terminated_at:
        terminated[n, t] = True
    for n, t in truncated_at:
        truncated[n, t] = True
        next_values[n, t] = bootstrap[n, t]  # the final observation's value, not the new episode's first
    return rewards, values, next_values, terminated, truncated, gamma, lam


_GAE_RULE = ("A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, computed backwards from the last step "
             "(A_{t+1} = 0 after it), with delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t "
             "and done_t = terminated_t or truncated_t; returns = advantages + values.")
_TERMINAL_BOOTSTRAP = ("you bootstrapped past a terminal step: where terminated[:, t] is True, s_{t+1} is terminal "
                       "and worth 0, so delta_t = r_t - V(s_t) whatever next_values[:, t] holds.")
_TERMINAL_CARRY = ("you carried the advantage across a terminal step: the steps after it belong to a new episode, "
                   "so there A_t = delta_t (multiply gamma * lam * A_{t+1} by 1 - done_t).")
_TRUNC_BOOTSTRAP = ("truncated means a time limit cut the episode, not a terminal state: still bootstrap from "
                    "next_values[:, t] (V of the final observation); only terminated removes gamma * V(s_{t+1}).")
_TRUNC_CARRY = ("you carried the advantage across a truncation: the step after a cut starts a new episode, so stop "
                "the recursion there (A_t = delta_t), but keep the bootstrap gamma * next_values[:, t] in delta_t.")


def gae_advantages_cases() -> list[Case]:
    """Seeded cases for ``gae_advantages``; each probes one property, in an order that makes the first failure
    name the mistake."""
    return [
        Case(_rollout(0, 1, 6, gamma=0.9, lam=0.0), {}, "lam = 0: the advantage is the TD error",
             "with lam = 0, A_t = delta_t = r_t + gamma * next_values[:, t] - values[:, t]; next_values holds "
             "V(s_{t+1}), including the bootstrap value after the last step. The returns are A_t + values[:, t]."),
        Case(_rollout(1, 1, 6, gamma=1.0, lam=1.0), {}, "lam = 1, gamma = 1, no episode end",
             "compute backwards: A_t = delta_t + gamma * lam * A_{t+1}, starting from A_{t+1} = 0 after the last "
             "step (its bootstrap is already in next_values[:, -1]). With lam = 1 this is the sum of the "
             "remaining rewards plus the bootstrap value, minus V(s_t)."),
        Case(_rollout(2, 3, 8, gamma=0.99, lam=0.95), {}, "3 envs x 8 steps, gamma 0.99, lam 0.95, no episode end",
             "each env (row) is its own sequence: loop over t backwards, vectorised over the rows ([:, t]); "
             + _GAE_RULE),
        Case(_rollout(3, 2, 5, terminated_at=[(0, 4)], gamma=0.9, lam=0.9), {},
             "env 0 terminates at the last step", _TERMINAL_BOOTSTRAP),
        Case(_rollout(4, 2, 8, terminated_at=[(0, 3), (1, 5)], gamma=0.9, lam=0.9), {},
             "a termination in the middle of each row", _TERMINAL_CARRY),
        Case(_rollout(5, 2, 5, truncated_at=[(1, 4)], gamma=0.9, lam=0.9), {},
             "env 1 is truncated (time limit) at the last step", _TRUNC_BOOTSTRAP),
        Case(_rollout(6, 2, 8, truncated_at=[(0, 2), (1, 6)], gamma=0.9, lam=0.9), {},
             "a truncation in the middle of each row", _TRUNC_CARRY),
        Case(_rollout(7, 2, 6, terminated_at=[(0, 2)], truncated_at=[(0, 2), (1, 3)], gamma=0.9, lam=0.9), {},
             "terminated and truncated on the same step (the terminal state came at the time limit)",
             "when both flags are set the state is terminal: no bootstrap (terminated wins), and no carry."),
        Case(_rollout(8, 4, 16, terminated_at=[(0, 5), (2, 11), (3, 15)], truncated_at=[(1, 9), (2, 3)],
                      gamma=0.98, lam=0.8), {},
             "4 envs x 16 steps with terminations and truncations (the cartpole_fast settings)", _GAE_RULE),
        Case(_rollout(9, 2, 5, terminated_at=[(1, 1)], gamma=0.0, lam=0.95), {}, "gamma = 0",
             "with gamma = 0 nothing is bootstrapped or carried: A_t = r_t - V(s_t) whatever lam is."),
    ]


def gae_advantages_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes, discounts and episode ends than the notebook's."""
    return [
        Case(_rollout(100, 1, 20, terminated_at=[(0, 6), (0, 13)], gamma=0.9, lam=0.5), {},
             "one row of 20 steps with two terminations, lam 0.5", _TERMINAL_CARRY),
        Case(_rollout(101, 5, 12, truncated_at=[(0, 4), (2, 11), (3, 0), (4, 7)], gamma=0.99, lam=0.95), {},
             "5 envs x 12 steps with truncations only", _TRUNC_CARRY),
        Case(_rollout(102, 3, 10, terminated_at=[(0, 2), (1, 9)], truncated_at=[(0, 7), (2, 5)], gamma=0.95,
                      lam=0.9), {}, "terminations and truncations in the same rows", _GAE_RULE),
        Case(_rollout(103, 2, 9, truncated_at=[(0, 4)], gamma=0.97, lam=1.0), {},
             "lam = 1 with a truncation: Monte-Carlo returns bootstrapped at the cut", _TRUNC_BOOTSTRAP),
    ]


# ---- ppo_clip_loss -------------------------------------------------------------------------


def _clip_args(seed: int, shape: tuple[int, ...], log_ratio: tuple[float, float], adv: tuple[float, float],
               clip_eps: float = 0.2, sign: float = 1.0) -> tuple:
    """``(logp, old_logp, advantages, clip_eps)`` with log-ratios uniform in ``log_ratio`` and advantage sizes
    uniform in ``adv``, of sign ``sign`` (+1, -1, or 0 for random signs); old log-probs are those of actions
    with probabilities in (0.1, 0.9)."""
    g = generator(seed)
    old_logp = torch.log(0.1 + 0.8 * torch.rand(shape, generator=g))  # (...)
    lo, hi = log_ratio
    logp = old_logp + lo + (hi - lo) * torch.rand(shape, generator=g)  # (...) ratio = exp(logp - old_logp)
    a_lo, a_hi = adv
    size = a_lo + (a_hi - a_lo) * torch.rand(shape, generator=g)  # (...)
    signs = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0) if sign == 0 else sign
    return logp, old_logp, signs * size, clip_eps


def _clip_mixed(seed: int, shape: tuple[int, ...], clip_eps: float, spread: float = 0.3) -> tuple:
    """A batch as in training: log-ratios N(0, spread), advantages N(0, 1) (normalised)."""
    g = generator(seed)
    old_logp = torch.log(0.1 + 0.8 * torch.rand(shape, generator=g))
    logp = old_logp + spread * torch.randn(shape, generator=g)
    advantages = torch.randn(shape, generator=g)
    return logp, old_logp, advantages, clip_eps


_CLIP_RULE = ("the loss is minus the mean, over every entry, of the smaller of two terms: the ratio times A, and "
              "the ratio clamped between 1 - clip_eps and 1 + clip_eps, times A; the ratio is new over old probability, "
              "from the log-probabilities. The gradient flows through logp.")


def ppo_clip_loss_cases() -> list[Case]:
    """Seeded cases for ``ppo_clip_loss``; the adapter returns ``(loss, d loss / d logp)``."""
    return [
        Case(_clip_args(20, (8,), (0.0, 0.0), (0.85, 1.15)), {}, "logp equals old_logp (the first epoch): ratio 1",
             "with logp == old_logp the ratio is 1, the loss is -mean(A) and its gradient w.r.t. logp is -A / n. "
             "Check the minus sign (we minimise the negated objective); mean, not sum; the ratio new over old, "
             "exp(logp - old_logp); and no detach on either term of the min."),
        Case(_clip_args(21, (4, 6), (-0.15, 0.15), (0.1, 1.5), sign=0), {},
             "ratio inside [1 - eps, 1 + eps], advantages of both signs",
             "inside the clip range nothing is clipped: loss = -mean(ratio * A) with ratio = exp(logp - old_logp), "
             "new over old. Clip the ratio, never the advantages."),
        Case(_clip_args(22, (8,), (0.3, 0.8), (0.5, 2.0)), {}, "A > 0 and ratio above 1 + eps: the clip is active",
             "for A > 0, once the ratio is above 1 + eps the smaller of the two terms is the clipped one, (1 + eps) "
             "times A: the objective goes flat and its gradient w.r.t. logp is 0. Take the min, not the max, and "
             "clip the ratio (not the advantage)."),
        Case(_clip_args(23, (8,), (-0.8, -0.3), (0.5, 2.0), sign=-1.0), {},
             "A < 0 and ratio below 1 - eps: the clip is active",
             "for A < 0, once the ratio is below 1 - eps the smaller term is the clipped one, (1 - eps) times A: "
             "flat, with gradient 0. Take the min, not the max, and clip the ratio (between 1 - eps and 1 + eps)."),
        Case(_clip_args(24, (8,), (-0.8, -0.3), (0.5, 2.0)), {},
             "A > 0 but ratio below 1 - eps: the min keeps the unclipped ratio * A",
             "the clip removes only the incentive to move further in the advantage's direction. When the ratio "
             "moved the other way, the smaller term is the unclipped ratio times A (the pessimistic bound) and its "
             "gradient is not 0: keep the min, do not return the clipped term alone."),
        Case(_clip_args(25, (8,), (0.3, 0.8), (0.5, 2.0), sign=-1.0), {},
             "A < 0 but ratio above 1 + eps: the min keeps the unclipped ratio * A",
             "when the ratio moved against the advantage the min picks ratio * A, unclipped, so the gradient pulls "
             "the probability back: the min of both terms, not the clipped term alone."),
        Case(_clip_mixed(26, (4, 16), 0.2), {}, "a (B, T) batch as in training, clip_eps 0.2", _CLIP_RULE),
        Case(_clip_mixed(27, (64,), 0.1), {}, "a flat batch with clip_eps 0.1",
             "the same loss as before, with clip_eps = 0.1 here: use the clip_eps you are given, not a fixed 0.2."),
    ]


def ppo_clip_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and clip ranges than the notebook's."""
    return [
        Case(_clip_mixed(120, (3, 5), 0.3, spread=0.5), {}, "a (3, 5) batch, clip_eps 0.3, large policy moves",
             _CLIP_RULE),
        Case(_clip_args(121, (6,), (0.4, 1.0), (0.2, 3.0)), {}, "every sample clipped on the favoured side (A > 0)",
             "above 1 + eps with A > 0 the loss is -(1 + eps) * mean(A) and the gradient is 0: min, not max."),
        Case(_clip_args(122, (2, 7), (-0.9, -0.3), (0.2, 3.0)), {}, "ratio fell below 1 - eps while A > 0",
             "the min keeps ratio * A here (unclipped), so the gradient is not 0."),
        Case(_clip_mixed(123, (128,), 0.15, spread=0.1), {}, "small policy moves, clip_eps 0.15", _CLIP_RULE),
    ]


# ---- value_loss_fn -------------------------------------------------------------------------


def _value_args(seed: int, shape: tuple[int, ...], error=None, scale: float = 3.0, shift: float = 0.0) -> tuple:
    """``(values, returns)``; with ``error``, returns = values + error * (random signs)."""
    g = generator(seed)
    values = torch.randn(shape, generator=g) * scale + shift
    if error is None:
        returns = torch.randn(shape, generator=g) * scale + shift
    else:
        signs = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
        returns = values + error * signs
    return values, returns


_VALUE_RULE = ("loss = 0.5 * mean((values - returns)^2) over every entry, a 0-d tensor; its gradient flows "
               "through values.")


def value_loss_fn_cases() -> list[Case]:
    """Seeded cases for ``value_loss_fn``; the adapter returns ``(loss, d loss / d values)``."""
    same = _value_args(46, (6,))[0]
    return [
        Case(_value_args(40, (8,), error=1.0), {}, "every error V - R is +1 or -1",
             "here every (V - R)^2 is 1, so the loss is 0.5 * mean(1) = 0.5: a 1.0 means you forgot the 0.5, a "
             "bigger number that you summed instead of averaging. If only the gradient (V - R) / n differs, "
             "square the errors instead of taking |V - R|."),
        Case(_value_args(41, (8,), error=0.5), {}, "every error V - R is +0.5 or -0.5",
             "0.5 * mean((V - R)^2) = 0.5 * 0.25 = 0.125 here: square the errors (|V - R| would give 0.25)."),
        Case(_value_args(42, (16,)), {}, "random values and returns, shape (B,)", _VALUE_RULE),
        Case(_value_args(43, (4, 8)), {}, "values and returns of shape (N, T)",
             "average over every entry (both axes): .mean() with no dim, so the loss is one number."),
        Case(_value_args(44, (32,), scale=30.0, shift=60.0), {}, "CartPole-scale returns (tens to a hundred)",
             "do not normalise, clip or rescale inside the loss: 0.5 * mean((V - R)^2) of the raw numbers."),
        Case((same, same.clone()), {}, "values equal the returns: loss 0 and gradient 0",
             "identical values and returns give loss 0 and gradient 0."),
    ]


def value_loss_fn_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds and shapes than the notebook's."""
    return [
        Case(_value_args(140, (3, 5)), {}, "a (3, 5) batch", _VALUE_RULE),
        Case(_value_args(141, (10,), error=2.0), {}, "every error is +2 or -2: loss 2",
             "0.5 * mean((V - R)^2) = 0.5 * 4 = 2 here: the 0.5, the square and the mean."),
        Case(_value_args(142, (50,), scale=100.0, shift=200.0), {}, "returns in the hundreds", _VALUE_RULE),
    ]


# ---- predict, then run: which learning rate makes PPO collapse? ------------------------------------

LR_OPTIONS = {
    "A": "neither: the clip keeps every update inside the trust region, whatever the learning rate",
    "B": "only the run with learning rate 0.3",
    "C": "only the run with learning rate 0.003",
    "D": "both",
}
LR_FEEDBACK = {
    "a": "the clip acts per sample, and only once that sample's ratio has left the range: in the first minibatch of "
         "every update all ratios are exactly 1, so nothing limits how far that one optimiser step moves the "
         "weights. Think about the size of that first step.",
    "c": "0.003 is the learning rate of the preset that solved CartPole in lesson 7; a small step learns slowly, "
         "it does not wreck the policy.",
    "d": "one of the two is the learning rate of the preset that solved CartPole in lesson 7.",
}


def ppo_lr_prediction() -> str:
    """Reference: the letter of the run that collapses (the policy turns deterministic, greedy return near 10)."""
    return "B"


def _lr_case() -> list[Case]:
    return [Case((), {}, "your prediction", "what limits the size of PPO's very first step in an update, when every "
                 "ratio is 1? Then compare one Adam step of each size with the scale of the weights.")]


EXERCISES = {
    "gae_advantages": Exercise("gae_advantages", gae_advantages, gae_advantages_cases, gae_advantages_hidden_cases,
                               names=("advantages", "returns"), rtol=1e-4, atol=1e-5,
                               twins=("course_lib.rl.advantages.gae",)),
    "ppo_clip_loss": Exercise("ppo_clip_loss", ppo_clip_loss, ppo_clip_loss_cases, ppo_clip_loss_hidden_cases,
                              adapt=functools.partial(with_grad, exercise="ppo_clip_loss", wrt="logp"),
                              names=("loss", "d loss / d logp"), rtol=1e-4, atol=1e-6,
                              twins=("course_lib.rl.losses.clipped_surrogate",)),
    "value_loss_fn": Exercise("value_loss_fn", value_loss_fn, value_loss_fn_cases, value_loss_fn_hidden_cases,
                              adapt=functools.partial(with_grad, exercise="value_loss_fn", wrt="values"),
                              names=("loss", "d loss / d values"), rtol=1e-4, atol=1e-6,
                              twins=("course_lib.rl.losses.value_loss",)),
    "ppo_lr_prediction": Exercise("ppo_lr_prediction", ppo_lr_prediction, _lr_case, list, kind="answer",
                                  comparer=functools.partial(compare_answers, feedback=LR_FEEDBACK),
                                  explanation="the clip removes a sample's gradient only after its ratio has left "
                                              "1 +- epsilon, and in the first minibatch of every update all ratios "
                                              "are exactly 1, so that step is a plain policy-gradient step whose size "
                                              "only the learning rate sets. At 0.3 one Adam step moves every weight by "
                                              "about 0.3: the run shows the entropy near 0 within two updates, an "
                                              "approx KL of several nats and a greedy return near 10, and a "
                                              "deterministic policy no longer explores, so it cannot recover (at "
                                              "0.003 the entropy falls slowly and the return climbs). "
                                              "The clip bounds the incentive to move, not the step: the step's size "
                                              "is the learning rate's job (and target_kl's)."),
}


__getattr__ = check_functions(EXERCISES)
