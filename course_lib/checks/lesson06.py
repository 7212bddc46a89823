"""Checks for lesson 6's exercises: reward-to-go, the REINFORCE loss, the variance of the gradient estimate.

The references are the library's REINFORCE pieces (:mod:`course_lib.deep.reinforce`):

* ``reward_to_go(rewards, gamma)``: one episode that ended in a terminal state, (T,) -> (T,).
  **Dtype:** the result keeps the dtype of ``rewards`` (float32 in, float32 out; float64 in,
  float64 out), as torch's own operations do; the check compares the exact dtype, not only its
  kind, so a result rebuilt with ``torch.tensor(list)`` or ``torch.zeros(T)`` (always float32)
  fails on float64 rewards with a message that says so.
* ``reinforce_loss(logp, advantages)``: ``-mean(logp * advantages)`` with the advantages detached.
  Checked on its value *and* its gradients: the adapter hands the student's function and the
  reference alike a fresh ``logp`` that requires grad (and ``advantages`` that require grad where
  the case says they come from a critic), back-propagates the returned scalar and returns
  ``(loss, d loss / d logp, d loss / d advantages)``. The last one must be 0: the advantages are
  weights, and a policy loss that sends gradient into them would also train whatever made them.
  The loss keeps the inputs' dtype (the check compares the dtype's kind).
* ``gradient_variance(grads)``: tr Cov of the B one-episode gradient estimates (rows), unbiased,
  returned as a Python ``float``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from course_lib.checks.core import Case, CheckResult, Exercise, compare
from course_lib.checks.tensors import generator
from course_lib.deep.reinforce import CategoricalPolicy, gradient_variance, per_episode_gradients
from course_lib.deep.reinforce import reward_to_go as _library_reward_to_go


# ---- reward_to_go --------------------------------------------------------------------------


def reward_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reference: G_t = sum_{k >= t} gamma^(k - t) r_k of an episode that ended in a terminal state, (T,) -> (T,).

    :func:`course_lib.deep.reinforce.reward_to_go` with ``terminated=True`` (Sutton & Barto 2018, Eq. 3.8;
    here ``rewards[t]`` is the reward that follows the action at step t, the book's r_{t+1}).
    """
    return _library_reward_to_go(rewards, gamma, terminated=True)


def _rewards(seed: int, T: int, low: float = -1.0, high: float = 2.0, dtype=torch.float32) -> torch.Tensor:
    """(T,) rewards uniform in [low, high), rounded to 2 decimals so messages stay readable."""
    r = low + (high - low) * torch.rand(T, generator=generator(seed), dtype=torch.float64)
    return torch.round(r, decimals=2).to(dtype)


def _compare_same_dtype(expected, got) -> str | None:
    """:func:`compare`, and the exact dtype: the returns keep the dtype of ``rewards``."""
    if isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
        return (f"result: expected dtype {expected.dtype} (the dtype of `rewards`), got dtype {got.dtype}")
    return compare(expected, got, rtol=_RTG_RTOL, atol=_RTG_ATOL)


_RTG_RTOL, _RTG_ATOL = 1e-5, 1e-5
_RTG_RULE = ("G[t] = rewards[t] + gamma * G[t + 1], computed backwards from G[T - 1] = rewards[T - 1]: "
             "the rewards from t to the end, each discounted by gamma^(k - t).")
_BEFORE_T = ("you summed the rewards *before* t too: the reward of step 0 came before the actions of steps 1, 2, ..., "
             "which cannot change it, so it belongs to G[0] only. G[t] sums rewards[t:], from t to the END (the "
             "whole-episode return at every step, or a forward cumsum, puts the 1 everywhere). If you got the right "
             "numbers in reverse order, you filled G from the wrong end: G[t] goes with rewards[t].")
_DISCOUNT = ("G[t] = rewards[t] + gamma * rewards[t + 1] + gamma^2 * rewards[t + 2] + ...: the discount counts from t, "
             "so every step's own reward is undiscounted. First mismatch at index 0 with a bigger number "
             "(5 instead of 4.0951): you left out gamma. G[0] right but the later entries too small: you discounted "
             "from the episode's start (gamma^k instead of gamma^(k - t)).")
_DTYPE = ("keep the dtype of `rewards`: start from torch.zeros_like(rewards) (or torch.empty_like) and fill it; "
          "torch.zeros(T) and torch.tensor(a_python_list) give float32 whatever the rewards were.")


def reward_to_go_cases() -> list[Case]:
    """Seeded cases for ``reward_to_go(rewards, gamma)``; ordered so that the first failure names the mistake."""
    return [
        Case((torch.tensor([2.5]), 0.9), {}, "one step (T = 1): G = rewards",
             "an episode of one step: G[0] = rewards[0], the step's own reward, undiscounted (gamma multiplies only "
             "the rewards *after* t) and with nothing after it. Start at t = T - 1 and do not read G[T]."),
        Case((torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]), 1.0), {}, "a reward at the first step only, gamma 1",
             _BEFORE_T),
        Case((torch.ones(5), 0.9), {}, "CartPole: five rewards of +1, gamma 0.9", _DISCOUNT),
        Case((_rewards(3, 6), 0.0), {}, "gamma 0: only the step's own reward counts",
             "with gamma = 0 nothing after t counts: G[t] = rewards[t] (note 0 ** 0 = 1 for the step's own term)."),
        Case((torch.tensor([-1.0, -1.0, -1.0, -1.0, 10.0]), 0.95), {},
             "the maze: -1 per move, +10 at the cheese, gamma 0.95",
             "negative rewards are summed like any other: " + _RTG_RULE),
        Case((_rewards(5, 20), 0.99), {}, "20 random rewards of both signs, gamma 0.99", _RTG_RULE),
        Case((torch.ones(500), 0.99), {}, "a long episode: 500 rewards of +1 (CartPole's cap), gamma 0.99",
             "compute backwards, G[t] = rewards[t] + gamma * G[t + 1]: G[0] = (1 - 0.99^500) / 0.01 = 99.34 here. "
             "Formulas that divide by gamma^t or subtract prefix sums lose precision on long episodes."),
        Case((_rewards(7, 12, dtype=torch.float64), 0.97), {}, "float64 rewards: the result is float64 too", _DTYPE),
    ]


def reward_to_go_hidden_cases() -> list[Case]:
    """Grader-only cases: other lengths, discounts and dtypes than the notebook's."""
    sparse = torch.zeros(9)
    sparse[::2] = 1.0  # a reward at every other step
    return [
        Case((torch.tensor([-3.0]), 0.5), {}, "one step with a negative reward, gamma 0.5",
             "one step: G[0] = rewards[0], undiscounted."),
        Case((sparse, 0.8), {}, "a reward at every other step, gamma 0.8", _RTG_RULE),
        Case((_rewards(102, 200, dtype=torch.float64), 0.999), {}, "200 float64 rewards, gamma 0.999",
             _RTG_RULE + " Keep the dtype of `rewards`."),
        Case((torch.ones(1000), 0.995), {}, "1000 rewards of +1, gamma 0.995",
             "compute backwards; " + _RTG_RULE),
        Case((_rewards(104, 15), 1.0), {}, "gamma 1 with random rewards",
             "with gamma = 1, G[t] = rewards[t] + ... + rewards[T - 1]: the rewards from t to the end, none before."),
    ]


def check_reward_to_go(fn) -> CheckResult:
    """Check a student's ``reward_to_go(rewards, gamma) -> (T,) tensor`` (values and dtype)."""
    __tracebackhide__ = True
    return EXERCISES["reward_to_go"].check(fn)


# ---- reinforce_loss ------------------------------------------------------------------------


def reinforce_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Reference: -mean_t(log pi(a_t | s_t) * A_t) with A_t detached, the loss whose gradient is the REINFORCE estimate.

    Williams 1992; Sutton & Barto 2018, Eqs. 13.8 and 13.11 (averaged over the batch's steps, as
    :func:`course_lib.deep.reinforce.reinforce` does). Shapes: logp and advantages (N,); returns a 0-d tensor.
    """
    return -(logp * advantages.detach()).mean()


def _loss_with_grads(fn: Callable) -> Callable:
    """The ``adapt`` of ``reinforce_loss``: call ``fn`` on fresh leaves, return ``(loss, d loss / d logp,
    d loss / d advantages)``; the advantages require grad only where the case's advantages do."""

    def run(logp, advantages):
        logp = logp.detach().clone().requires_grad_(True)  # each caller gets its own leaves
        adv = advantages.detach().clone().requires_grad_(bool(advantages.requires_grad))
        loss = fn(logp, adv)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"reinforce_loss should return a 0-d torch tensor that can be back-propagated, got "
                            f"{type(loss).__name__}; keep to torch operations (no .item(), float() or numpy)")
        if loss.dim() != 0:
            raise ValueError(f"reinforce_loss should return one number, a 0-d tensor (the mean over the N steps), "
                             f"got shape {tuple(loss.shape)}")
        if not loss.requires_grad:
            raise RuntimeError("reinforce_loss's loss has no gradient w.r.t. `logp`: it was detached somewhere "
                               "(.detach() on logp, torch.no_grad(), .item() or numpy); the optimiser could not use it")
        inputs = [logp, adv] if adv.requires_grad else [logp]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        if grads[0] is None:
            raise RuntimeError("reinforce_loss's loss has no gradient w.r.t. `logp` (only through the advantages): "
                               "detach the advantages, not the log-probabilities")
        grad_adv = grads[1] if adv.requires_grad and grads[1] is not None else torch.zeros_like(adv)
        return loss.detach(), grads[0], grad_adv

    return run


def _logp(seed: int, N: int, low: float = 0.1, high: float = 0.9, dtype=torch.float32) -> torch.Tensor:
    """(N,) log-probabilities of sampled actions whose probabilities are uniform in [low, high)."""
    p = low + (high - low) * torch.rand(N, generator=generator(seed), dtype=torch.float64)
    return torch.log(p).to(dtype)


def _advantages(seed: int, N: int, scale: float = 1.0, shift: float = 0.0, critic: bool = False,
                dtype=torch.float32) -> torch.Tensor:
    """(N,) advantages ~ N(shift, scale); ``critic=True``: they require grad, as the output of a value network would."""
    a = (torch.randn(N, generator=generator(seed), dtype=torch.float64) * scale + shift).to(dtype)
    return a.requires_grad_(critic)


_LOSS_RULE = ("loss = -mean(logp * advantages.detach()): elementwise products, averaged over the N steps, negated; "
              "its gradient flows into logp only.")
_DETACH = ("the advantages must not receive a gradient: multiply by advantages.detach(). They are weights that say "
           "how good each action was; without the detach, loss.backward() also sends -logp / N into them, and so into "
           "the critic that computed them (the policy loss would train the baseline).")


def reinforce_loss_cases() -> list[Case]:
    """Seeded cases for ``reinforce_loss``; the adapter returns ``(loss, d loss / d logp, d loss / d advantages)``."""
    return [
        Case((_logp(10, 8), torch.ones(8)), {}, "advantages all 1: the loss is -mean(logp)",
             "with A = 1 the loss is -mean(logp), positive because log-probs are negative, and "
             "d loss / d logp = -1 / N for every step. A negative loss here: you left out the minus (we minimise, to "
             "raise the log-probs of good actions); N times too big: you summed instead of averaging; 0: you "
             "normalised the advantages inside the loss (equal advantages normalise to 0). Use logp as given "
             "(log-probabilities, no exp)."),
        Case((_logp(11, 16), _advantages(11, 16)), {}, "advantages of both signs (normalised, as in training)",
             "multiply each log-prob by its own advantage, elementwise, then average: " + _LOSS_RULE),
        Case((_logp(12, 12), _advantages(12, 12, critic=True)), {},
             "advantages computed by a critic: they carry a gradient", _DETACH),
        Case((_logp(13, 32), _advantages(13, 32, scale=30.0, shift=50.0)), {},
             "CartPole-scale advantages (raw returns, tens to a hundred)",
             "use the advantages as given: no normalising, clipping or rescaling inside the loss. " + _LOSS_RULE),
        Case((_logp(14, 1), _advantages(14, 1)), {}, "one step (N = 1)", _LOSS_RULE),
        Case((_logp(15, 10, dtype=torch.float64), _advantages(15, 10, dtype=torch.float64)), {},
             "float64 log-probs and advantages", _LOSS_RULE),
    ]


def reinforce_loss_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, sizes and scales than the notebook's."""
    return [
        Case((_logp(110, 50), _advantages(110, 50, critic=True)), {},
             "50 steps, advantages from a critic with a gradient", _DETACH),
        Case((_logp(111, 20, low=0.95, high=0.999), _advantages(111, 20, scale=5.0)), {},
             "a nearly deterministic policy (log-probs near 0)", _LOSS_RULE),
        Case((_logp(112, 7, dtype=torch.float64), _advantages(112, 7, scale=3.0, shift=-2.0, critic=True,
                                                               dtype=torch.float64)), {},
             "float64 inputs with grad-carrying advantages", _DETACH),
    ]


def check_reinforce_loss(fn) -> CheckResult:
    """Check a student's ``reinforce_loss(logp, advantages) -> 0-d tensor`` (value and both gradients)."""
    __tracebackhide__ = True
    return EXERCISES["reinforce_loss"].check(fn)


# ---- gradient_variance ---------------------------------------------------------------------


def _returns_float(fn: Callable) -> Callable:
    """The ``adapt`` of ``gradient_variance``: the result must be a plain number, not a tensor or an array."""

    def run(grads):
        value = fn(grads.clone())
        if isinstance(value, (torch.Tensor, np.ndarray)):
            raise TypeError(f"gradient_variance should return a Python float (wrap the result in float(...)), got "
                            f"a {type(value).__name__} of shape {tuple(value.shape)}")
        return value

    return run


def _grads(seed: int, B: int, P: int, scale: float = 1.0, shift: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """(B, P) gradient estimates ~ N(shift, scale)."""
    g = torch.randn((B, P), generator=generator(seed), dtype=torch.float64) * scale + shift
    return g.to(dtype)


def _policy_grads(seed: int, B: int, hidden: int = 16) -> torch.Tensor:
    """(B, P) one-episode gradients of a small random policy on random CartPole-like episodes, via the
    library's :func:`per_episode_gradients` with the reward-to-go of +1 rewards as advantages."""
    with torch.random.fork_rng(devices=[]):  # the policy's initialisation must not touch the caller's random state
        torch.manual_seed(seed)
        policy = CategoricalPolicy(4, 2, hidden)
    g = generator(seed)
    lengths = [int(n) for n in torch.randint(5, 40, (B,), generator=g)]
    obs = torch.randn((sum(lengths), 4), generator=g) * 0.5  # (N, 4)
    actions = torch.randint(0, 2, (sum(lengths),), generator=g)  # (N,)
    logp = torch.distributions.Categorical(logits=policy(obs)).log_prob(actions)  # (N,)
    returns = torch.cat([_library_reward_to_go(torch.ones(n), 0.99, terminated=True) for n in lengths])  # (N,)
    return per_episode_gradients(logp, returns, lengths, list(policy.parameters())).detach()  # (B, P)


_VAR_RULE = ("tr Cov = sum over the P parameters (columns) of the unbiased variance across the B episodes (rows): "
             "((grads - grads.mean(dim=0)) ** 2).sum() / (B - 1), or grads.var(dim=0).sum().")


def gradient_variance_cases() -> list[Case]:
    """Seeded cases for ``gradient_variance(grads)``; the result must be a Python float."""
    same = _grads(23, 1, 6).repeat(5, 1)  # (5, 6): five identical rows
    return [
        Case((torch.tensor([[1.0], [3.0]]),), {}, "two episodes, one parameter: rows [1.] and [3.]",
             "the mean is 2 and the squared deviations 1 + 1 = 2; the unbiased variance divides by B - 1 = 1, so the "
             "answer is 2. A 1 means you divided by B (the biased variance): use grads.var(dim=0) (unbiased by "
             "default) or divide by B - 1. A nan means you took the variance along dim 1, within one episode's row "
             "(here of a single parameter), instead of across the episodes (dim 0)."),
        Case((torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0], [2.0, 4.0, 2.0], [2.0, 0.0, 2.0]]),), {},
             "four episodes (rows), three parameters (columns)",
             "take the variance across the episodes (dim 0, down each column), then SUM over the parameters: here "
             "2/3 + 4 + 0 = 4.667. Averaging over the parameters, or taking the variance along dim 1 (across one "
             "episode's parameters), is a different number."),
        Case((same,), {}, "all episodes give the same gradient: the variance is 0",
             "identical rows do not vary: subtract the mean gradient (over the episodes) before squaring; the sum "
             "of squares grads ** 2 is the second moment, not the variance."),
        Case((_grads(24, 8, 5, scale=0.1, shift=50.0),), {},
             "a large mean gradient (about 50) with a small spread (0.1)",
             "subtract the mean first, then square: E[g^2] - E[g]^2 cancels badly in float32 when the mean is large "
             "and the spread small. " + _VAR_RULE),
        Case((_grads(25, 10, 20),), {}, "10 episodes x 20 parameters, random", _VAR_RULE),
        Case((_policy_grads(26, 6),), {}, "per-episode gradients of a small policy (6 episodes, 386 parameters)",
             _VAR_RULE),
        Case((_grads(27, 5, 4, scale=2.0, dtype=torch.float64),), {}, "float64 gradients",
             "return a Python float whatever the dtype: " + _VAR_RULE),
    ]


def gradient_variance_hidden_cases() -> list[Case]:
    """Grader-only cases: other shapes and spreads than the notebook's."""
    return [
        Case((torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]]),), {},
             "three episodes, two parameters, small integers",
             "unbiased (divide by B - 1), summed over the parameters: " + _VAR_RULE),
        Case((_grads(121, 32, 100, scale=3.0, shift=-7.0),), {}, "32 episodes x 100 parameters with a mean of -7",
             _VAR_RULE),
        Case((torch.cat([torch.ones(2, 3), torch.tensor([[4.0, 1.0, -2.0]])]),), {},
             "two identical rows and one different", _VAR_RULE),
        Case((_policy_grads(123, 3, hidden=8),), {}, "per-episode gradients of a tiny policy, 3 episodes", _VAR_RULE),
    ]


def check_gradient_variance(fn) -> CheckResult:
    """Check a student's ``gradient_variance(grads) -> float`` (tr Cov, unbiased)."""
    __tracebackhide__ = True
    return EXERCISES["gradient_variance"].check(fn)


EXERCISES = {
    "reward_to_go": Exercise("reward_to_go", reward_to_go, reward_to_go_cases, reward_to_go_hidden_cases,
                             rtol=_RTG_RTOL, atol=_RTG_ATOL, comparer=_compare_same_dtype),
    "reinforce_loss": Exercise("reinforce_loss", reinforce_loss, reinforce_loss_cases, reinforce_loss_hidden_cases,
                               adapt=_loss_with_grads, names=("loss", "d loss / d logp", "d loss / d advantages"),
                               rtol=1e-4, atol=1e-6),
    "gradient_variance": Exercise("gradient_variance", gradient_variance, gradient_variance_cases,
                                  gradient_variance_hidden_cases, adapt=_returns_float, rtol=1e-4, atol=1e-6),
}
