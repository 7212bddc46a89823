"""Checks for lesson 6's exercises: reward-to-go, the REINFORCE loss, the variance of the gradient estimate.

The references are the library's REINFORCE pieces (:mod:`course_lib.deep.reinforce`):

* ``reward_to_go(rewards, gamma)``: one episode that ended in a terminal state, (T,) -> (T,).
  **Dtype:** the result keeps the dtype of ``rewards`` (float32 in, float32 out; float64 in,
  float64 out), as torch's own operations do; the check compares the exact dtype, not only its
  kind, so a result rebuilt with ``torch.tensor(list)`` or ``torch.zeros(T)`` (always float32)
  fails on float64 rewards with a message that says so.
* ``reinforce_loss_grad``: the predict-then-check question before the loss's check, d loss / d logp for
  advantages (2, -4) (a letter; per-option feedback that does not give the right one away).
* ``reinforce_loss(logp, advantages)``: ``-mean(logp * advantages)`` with the advantages detached.
  Checked on its value *and* its gradients: the adapter hands the student's function and the
  reference alike a fresh ``logp`` that requires grad (and ``advantages`` that require grad where
  the case says they come from a critic), back-propagates the returned scalar and returns
  ``(loss, d loss / d logp, d loss / d advantages)``. The last one must be 0: the advantages are
  weights, and a policy loss that sends gradient into them would also train whatever made them.
  The loss keeps the inputs' dtype (the check compares the dtype's kind).
* ``gradient_variance(grads)``: tr Cov of the B one-episode gradient estimates (rows), unbiased,
  returned as a Python ``float``.
* Spot the bug: ``reinforce_weights_bug`` names what is wrong with :func:`reinforce_weights_buggy` (a letter,
  per-option feedback that does not give the right one away); ``reinforce_weights(episode_rewards, gamma)`` is the
  fix, each episode's reward-to-go normalised over the whole batch.
* The whole algorithm: ``train_reinforce(env, policy, optimizer, episodes, batch_size, gamma)``, checked by
  behaviour. Its ``adapt`` turns a probe name into a verdict string ("ok", "solved", or what went wrong): scripted
  episodes with an optimiser that records the gradients (each batch's must be that of the specification), a fixed
  policy with probabilities (0.25, 0.75) (its actions must be sampled: both occur, about a quarter action 0), a NaN
  reward (FloatingPointError before the step), and CartPole-v1 on a seed (solved = a mean return of ``RF_LEVEL``
  over ``RF_WINDOW`` consecutive episodes within ``RF_BUDGET`` env steps).

The adapters, the probes and their scripted envs are :mod:`course_lib.harness.lesson06`'s (they run in the grader's
sandbox); this module holds the references and the cases.
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions, compare, compare_answers
from course_lib.deep.reinforce import CategoricalPolicy, gradient_variance, per_episode_gradients
from course_lib.deep.reinforce import reward_to_go as _library_reward_to_go
from course_lib.harness.lesson06 import (  # noqa: F401  (SOLVED: public here too)
    RF_BUDGET,
    RF_LEVEL,
    RF_WINDOW,
    SOLVED,
    load_what_the_runs_need,
    loss_with_grads,
    returns_float,
    solves_cartpole,
    train_reinforce_runner,
)
from course_lib.harness.lesson06 import probe_gradients as _probe_gradients  # noqa: F401  (the notebook's demo)
from course_lib.harness.lesson06 import probe_nan as _probe_nan  # noqa: F401  (the notebook's demo)
from course_lib.harness.lesson06 import probe_sampling as _probe_sampling  # noqa: F401  (the notebook's demo)
from course_lib.harness.tensors import generator


HINTS = {
    "reward_to_go": (
        "Walk the episode from its LAST step to its first, keeping one running number: the return from the step "
        "after. At each step the running number becomes this step's reward plus gamma times its old value, and that "
        "is G[t]. It starts at 0 (a terminal state is worth nothing). Worked example, rewards (1, 1, 1), gamma 0.9: "
        "G[2] = 1, G[1] = 1 + 0.9 * 1 = 1.9, G[0] = 1 + 0.9 * 1.9 = 2.71. Store the numbers in a tensor made like "
        "`rewards` (same dtype), so float64 rewards give float64 returns."),
    "reinforce_loss": (
        "Three steps, all torch operations on (N,) tensors: weight each log-probability by its step's advantage "
        "(elementwise), average over the N steps, negate. Before weighting, cut the advantages out of the autograd "
        "graph (the tensor method whose name says so), so that no gradient reaches whatever computed them. Worked "
        "example: logp = (log 0.5, log 0.25, log 0.8) = (-0.693, -1.386, -0.223), advantages (3, -1, 0): the "
        "products are -2.079, 1.386 and 0, their mean -0.231, the loss 0.231; d loss / d logp = (-3/3, 1/3, 0) = "
        "(-1, 0.333, 0), and d loss / d advantages = (0, 0, 0)."),
    "reinforce_loss_grad": (
        "Write the loss out for N = 2 with the advantages as plain numbers: L = -(logp[0] * A_0 + logp[1] * A_1) / 2. "
        "Each logp[t] appears in one term only, so d L / d logp[t] is that term's coefficient: read off what "
        "multiplies logp[t], sign and 1/2 included, then put in this question's A. The same reading at N = 3 with "
        "A = (3, -1, 0) gives (-1, 1/3, 0)."),
    "gradient_variance": (
        "The rows are episodes, the columns parameters. For each column, the spread of its B numbers: subtract the "
        "column's mean, square, add up, divide by B - 1. Then add the P column results together (sum, not mean) and "
        "return a Python float. torch has a reduction that does the first part along a chosen dim, unbiased by "
        "default. Worked example, rows [1, 0] and [3, 0]: column 0 has mean 2 and squared deviations 1 + 1, so "
        "2 / (2 - 1) = 2; column 1 does not vary, 0; the answer is 2.0."),
    "reinforce_weights": (
        "Two changes to the buggy code, both about what each step is weighted by. First, the reward-to-go: a step's "
        "weight counts only the rewards from that step on (the function you wrote in exercise 1 does exactly this "
        "for one episode; call it per episode and join the results in episode order). Second, a baseline: subtract "
        "the batch's mean and divide by its standard deviation, once, over all N steps together (a function of "
        "course_lib.rl does it). Worked example, gamma 1, episodes of 3 and 2 rewards of +1: reward-to-go (3, 2, 1) "
        "and (2, 1), joined (3, 2, 1, 2, 1), mean 1.8, std 0.837, so the first weight is (3 - 1.8) / 0.837 = 1.43."),
    "train_reinforce": (
        "Build it in the order of lesson 6's five phases, without looking up its source: (1) a batch: `batch_size` "
        "times, reset, then step with a SAMPLED action until terminated or truncated, keeping each step's "
        "observation, action and reward (the observation you acted on, not the next one); (2)-(3) the weights "
        "of the batch's N steps: your reinforce_weights of the episodes' rewards; (4) log-probabilities of the taken actions from ONE forward pass of the policy on the (N, 4) "
        "stacked observations (with its graph: not under no_grad), your reinforce_loss, the finite check, zero "
        "the grads, backward, one optimiser step. Sampling during the rollout needs no graph. Example of the "
        "bookkeeping: batches of 2 episodes of 3 and 6 steps give N = 9 rows for one step of the optimiser; "
        "6 episodes make 3 steps."),
}


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


# ---- reinforce_loss ------------------------------------------------------------------------


def reinforce_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Reference: -mean_t(log pi(a_t | s_t) * A_t) with A_t detached, the loss whose gradient is the REINFORCE estimate.

    Williams 1992; Sutton & Barto 2018, Eqs. 13.8 and 13.11 (averaged over the batch's steps, as
    :func:`course_lib.deep.reinforce.reinforce` does). Shapes: logp and advantages (N,); returns a 0-d tensor.
    """
    return -(logp * advantages.detach()).mean()


def _logp(seed: int, N: int, low: float = 0.1, high: float = 0.9, dtype=torch.float32) -> torch.Tensor:
    """(N,) log-probabilities of sampled actions whose probabilities are uniform in [low, high)."""
    p = low + (high - low) * torch.rand(N, generator=generator(seed), dtype=torch.float64)
    return torch.log(p).to(dtype)


def _advantages(seed: int, N: int, scale: float = 1.0, shift: float = 0.0, critic: bool = False,
                dtype=torch.float32) -> torch.Tensor:
    """(N,) advantages ~ N(shift, scale); ``critic=True``: they require grad, as the output of a value network would."""
    a = (torch.randn(N, generator=generator(seed), dtype=torch.float64) * scale + shift).to(dtype)
    return a.requires_grad_(critic)


_LOSS_RULE = ("multiply each step's log-probability by that step's own advantage, average the N products and put a "
              "minus in front; the advantages act as constants, so the gradient flows into logp only.")
_DETACH = ("the advantages must not receive a gradient: cut them out of the autograd graph before they weight the "
           "log-probabilities. They are weights that say how good each action was; left in the graph, "
           "loss.backward() also sends -logp / N into them, and so into the critic that computed them (the policy "
           "loss would train the baseline). Only d loss / d advantages differs here: the value was right.")


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


LOSS_GRAD_OPTIONS = {
    "A": "(1, -2)",
    "B": "(-2, 4)",
    "C": "(-1, 2)",
    "D": "(0, 0)",
}
LOSS_GRAD_FEEDBACK = {
    "a": "look at the sign: the optimiser MINIMISES the loss, and a step along minus your gradient would lower the "
         "log-probability of the action with the positive advantage. Where is the minus of the loss?",
    "b": "the loss is a mean over the N = 2 steps, not a sum: every term carries a factor that your answer left out.",
    "d": "the ADVANTAGES get no gradient (they are detached); the log-probabilities are what the loss is for. Each "
         "logp[t] still multiplies a number.",
}


def reinforce_loss_grad() -> str:
    """Reference: the letter of d loss / d logp for logp of shape (2,) and advantages (2, -4), i.e. -A / N."""
    return "C"


def _loss_grad_case() -> list[Case]:
    return [Case((), {}, "your answer", "write the loss out for two steps with A as plain numbers; differentiate "
                 "with respect to logp[0], then logp[1]: the sign, the 1/N and the advantage all stay in.")]


# ---- gradient_variance ---------------------------------------------------------------------


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


_VAR_RULE = ("tr Cov = for each of the P parameters (columns), the unbiased variance of its B values across the "
             "episodes (rows, divide by B - 1), then the SUM of those P numbers, as a Python float.")


def gradient_variance_cases() -> list[Case]:
    """Seeded cases for ``gradient_variance(grads)``; the result must be a Python float."""
    same = _grads(23, 1, 6).repeat(5, 1)  # (5, 6): five identical rows
    return [
        Case((torch.tensor([[1.0], [3.0]]),), {}, "two episodes, one parameter: rows [1.] and [3.]",
             "the mean is 2 and the squared deviations 1 + 1 = 2; the unbiased variance divides by B - 1 = 1, so the "
             "answer is 2. A 1 means you divided by B (the biased variance): divide by B - 1 (torch's var is "
             "unbiased by default). A nan means you took the variance along dim 1, within one episode's row "
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


# ---- spot the bug: the weights of REINFORCE -------------------------------------------------------


def reinforce_weights_buggy(episode_rewards: list, gamma: float) -> torch.Tensor:
    """The faulty code the notebook shows: every step of an episode weighted by that episode's whole discounted
    return G_0, with nothing subtracted. (N,) for a batch of episodes of lengths T_i summing to N."""
    weights = []
    for rewards in episode_rewards:
        T = len(rewards)
        G0 = sum(gamma ** k * float(rewards[k]) for k in range(T))
        weights.append(torch.full((T,), G0, dtype=rewards.dtype))
    return torch.cat(weights)


def reinforce_weights(episode_rewards: list, gamma: float) -> torch.Tensor:
    """Reference: each episode's reward-to-go, concatenated, normalised over the whole batch (a constant baseline).

    The normalisation is :func:`course_lib.rl.normalize`: (G - mean) / (std + 1e-8) with torch's default, unbiased
    std (the squared deviations divided by n - 1, not by n as np.std does).

    episode_rewards: B tensors of shape (T_i,); returns (N,), N = sum of T_i, the dtype of the rewards.
    """
    from course_lib.rl import normalize

    return normalize(torch.cat([reward_to_go(r, gamma) for r in episode_rewards]))


def _episodes(seed: int, lengths, low: float = 0.0, high: float = 2.0, dtype=torch.float32) -> list:
    g = generator(seed)
    return [torch.round(low + (high - low) * torch.rand(T, generator=g, dtype=torch.float64), decimals=2).to(dtype)
            for T in lengths]


_WEIGHTS_RULE = ("the weights are the reward-to-go of each episode (your reward_to_go, one episode at a time), "
                 "concatenated into one (N,) tensor, then normalised ONCE over all N steps of the batch "
                 "(course_lib.rl.normalize: mean 0, std 1).")


def reinforce_weights_cases() -> list[Case]:
    """Seeded cases for ``reinforce_weights(episode_rewards, gamma)``."""
    return [
        Case(([torch.ones(3), torch.ones(2)], 1.0), {}, "two CartPole episodes of 3 and 2 steps, gamma 1",
             "the reward-to-go of the 3-step episode is (3, 2, 1) and of the 2-step one (2, 1): concatenated, "
             "(3, 2, 1, 2, 1), mean 1.8, std 0.837: normalise once over the whole batch, so the first weight is "
             "(3 - 1.8) / 0.837 = 1.43 (a 3 there: you did not normalise; a 1: you normalised each episode on its own; 1.2: you subtracted the mean "
             "only, and did not divide by the standard deviation; 1.60: you divided by the std that divides by n, as "
             "np.std and torch.std(unbiased=False) do, 0.748 here, where normalize divides the squared deviations by "
             "n - 1). "
             "The buggy code "
             "put 3 at every step of the first episode and 2 at every step of the second, and subtracted nothing."),
        Case(([torch.tensor([1.0, 0.0, 0.0, 0.0])], 1.0), {}, "one episode, a reward at its first step only",
             "the later steps came after the only reward: their reward-to-go is 0, the first step's 1. Sum the "
             "rewards from t onwards, not the whole episode's."),
        Case((_episodes(40, [5, 8, 3]), 0.9), {}, "three episodes of random rewards, gamma 0.9",
             "normalise once over the whole batch, not episode by episode: " + _WEIGHTS_RULE),
        Case((_episodes(41, [1, 6]), 0.99), {}, "an episode of one step next to a longer one",
             "a one-step episode still contributes one weight, its own reward; " + _WEIGHTS_RULE),
        Case((_episodes(42, [4, 4], dtype=torch.float64), 0.95), {}, "float64 rewards", _WEIGHTS_RULE),
    ]


def reinforce_weights_hidden_cases() -> list[Case]:
    """Grader-only cases."""
    return [
        Case((_episodes(140, [10, 2, 7, 1]), 0.99), {}, "four episodes of different lengths", _WEIGHTS_RULE),
        Case((_episodes(141, [30, 30], low=-1.0, high=1.0), 0.5), {}, "rewards of both signs, gamma 0.5",
             _WEIGHTS_RULE),
    ]


WEIGHTS_BUG_OPTIONS = {
    "A": "The estimate is biased: the rewards that came before step t push the gradient the wrong way on average.",
    "B": "Every step is weighted by its whole episode's return, rewards before its action included, and nothing is "
         "subtracted: the estimate is still unbiased, but much noisier than it needs to be.",
    "C": "REINFORCE must not discount: gamma ** k makes the estimate wrong.",
    "D": "The weights must be detached before they reach the loss, or the gradient flows into the rewards.",
    "E": "Nothing that matters: the estimate is unbiased, and normalising the weights later would remove the extra "
         "noise anyway.",
}
WEIGHTS_BUG_FEEDBACK = {
    "a": "is it biased? The terms of the rewards before t multiply grad log pi(a_t | s_t), whose mean over a_t is 0 "
         "(the lesson's baseline identity); they average to 0. Ask what they add instead.",
    "c": "discounting is a choice of objective, made the same way in the library's reward_to_go; the buggy code is "
         "consistent about gamma. Look at which rewards each step is weighted by, and at what is subtracted.",
    "d": "the weights are built from rewards, plain numbers that no network produced: there is no graph to cut. "
         "Look at which rewards each step is weighted by.",
    "e": "normalising subtracts ONE number from every weight and divides by one: it centres and rescales the batch, "
         "but the part of a step's weight that came from rewards before its action is still in it, different from "
         "episode to episode. What do those terms add to the estimate, if not bias?",
}


def reinforce_weights_bug() -> str:
    """Reference: the letter of the statement that names the bug of ``reinforce_weights_buggy``."""
    return "B"


def _weights_bug_case() -> list[Case]:
    return [Case((), {}, "your answer", "which rewards does each step's weight count, and what is subtracted from it? "
                 "Then ask what that does to the average of the estimate, and what to its spread.")]


# ---- train_reinforce: the whole algorithm from the pieces ------------------------------------------


def train_reinforce(env, policy, optimizer, episodes: int, batch_size: int, gamma: float) -> list[float]:
    """Reference: REINFORCE with reward-to-go and the batch-normalised return (Williams 1992; Sutton & Barto 2018,
    Section 13.3), from the exercise's pieces: :func:`reward_to_go` and :func:`reinforce_loss` above.

    Returns the undiscounted return of every episode. Raises FloatingPointError on a non-finite loss, before stepping.
    """
    from course_lib.rl import normalize

    episode_returns = []
    for _ in range(episodes // batch_size):
        observations, actions, returns = [], [], []
        for _ in range(batch_size):
            obs, _ = env.reset()
            rewards, done = [], False
            while not done:
                obs_t = torch.as_tensor(obs, dtype=torch.float32)  # (obs_dim,)
                with torch.no_grad():
                    action = int(torch.distributions.Categorical(logits=policy(obs_t)).sample())
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs_t)
                actions.append(action)
                rewards.append(float(reward))
                done = terminated or truncated
            returns.append(reward_to_go(torch.tensor(rewards), gamma))  # (T_i,)
            episode_returns.append(sum(rewards))
        logits = policy(torch.stack(observations))  # (N, A)
        logp = torch.distributions.Categorical(logits=logits).log_prob(torch.tensor(actions))  # (N,)
        loss = reinforce_loss(logp, normalize(torch.cat(returns)))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()}; no step taken")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return episode_returns


solves_cartpole(train_reinforce)  # tests/test_checks_lesson06.py measures it on every seed of the cases


def _compare_verdicts(expected, got) -> str | None:
    if isinstance(got, str) and got == expected:
        return None
    return got if isinstance(got, str) else f"result: expected {expected!r}, got {got!r}"


_RF_GRADIENT_HINT = ("one batch = `batch_size` whole episodes; then ONE optimiser step on your reinforce_loss of all "
                     "the batch's steps, with each episode's reward-to-go normalised over the whole batch as the "
                     "advantages. The message names which part of that differs.")
_RF_SOLVE_HINT = ("if the three probe cases pass, the pieces are right and this is REINFORCE's noise or a slow loop: "
                  "sample the actions (do not take the argmax), keep the optimiser you are given, and do not add "
                  "tricks (entropy, clipping). A run the budget cuts off says how far it got.")


def train_reinforce_cases() -> list[Case]:
    """The notebook's cases: the spec on scripted episodes, sampled actions, a NaN, then CartPole on two seeds."""
    load_what_the_runs_need()
    return [
        Case(("gradients", 0), {}, "the spec on 6 scripted episodes in batches of 2 (two of them truncated)",
             _RF_GRADIENT_HINT),
        Case(("sampling", 0), {}, "a policy with probabilities (0.25, 0.75) in every state, 8 episodes of 20 steps: "
             "both actions must occur, about a quarter of them action 0",
             "sample from Categorical(logits=...), do not take the argmax: REINFORCE learns from the actions its "
             "policy tries, and an argmax tries only one of them in each state (its gradient estimate is that of a "
             "different, deterministic policy). Sampling needs no graph."),
        Case(("nan", 0), {}, "a NaN reward in the second batch: FloatingPointError before its step",
             "check the batch's loss before back-propagating it; a NaN anywhere in the returns makes it NaN, and one "
             "step on a NaN gradient ruins every parameter."),
        Case(("cartpole", 1), {}, f"CartPole-v1, seed 1: a mean of {RF_LEVEL:.0f} over {RF_WINDOW} episodes within "
             f"{RF_BUDGET:,} env steps", _RF_SOLVE_HINT),
        Case(("cartpole", 8), {}, "CartPole-v1, seed 8: the same target", _RF_SOLVE_HINT),
    ]


def train_reinforce_hidden_cases() -> list[Case]:
    """Grader-only cases: CartPole on other seeds."""
    load_what_the_runs_need()
    return [
        Case(("cartpole", 17), {}, "CartPole-v1, seed 17", _RF_SOLVE_HINT),
        Case(("cartpole", 21), {}, "CartPole-v1, seed 21", _RF_SOLVE_HINT),
    ]


EXERCISES = {
    "reward_to_go": Exercise("reward_to_go", reward_to_go, reward_to_go_cases, reward_to_go_hidden_cases,
                             rtol=_RTG_RTOL, atol=_RTG_ATOL, comparer=_compare_same_dtype,
                             twins=("course_lib.deep.reinforce.reward_to_go",
                                    "course_lib.rl.advantages.discounted_returns")),
    "reinforce_loss": Exercise("reinforce_loss", reinforce_loss, reinforce_loss_cases, reinforce_loss_hidden_cases,
                               adapt=loss_with_grads, names=("loss", "d loss / d logp", "d loss / d advantages"),
                               rtol=1e-4, atol=1e-6),
    "gradient_variance": Exercise("gradient_variance", gradient_variance, gradient_variance_cases,
                                  gradient_variance_hidden_cases, adapt=returns_float, rtol=1e-4, atol=1e-6,
                                  twins=("course_lib.deep.reinforce.gradient_variance",)),
    "reinforce_loss_grad": Exercise("reinforce_loss_grad", reinforce_loss_grad, _loss_grad_case, list, kind="answer",
                                    comparer=functools.partial(compare_answers, feedback=LOSS_GRAD_FEEDBACK),
                                    explanation="the loss is -(1/N) sum_t logp[t] A_t with A_t a constant, so "
                                                "d loss / d logp[t] = -A_t / N: (-2/2, 4/2) = (-1, 2). A gradient "
                                                "step moves logp against this, raising the log-probability of the "
                                                "action with A = 2 and lowering the one with A = -4, each in "
                                                "proportion to its advantage; the 1/N keeps the step's size "
                                                "independent of how many steps the batch has."),
    "reinforce_weights_bug": Exercise("reinforce_weights_bug", reinforce_weights_bug, _weights_bug_case, list,
                                      kind="answer",
                                      comparer=functools.partial(compare_answers, feedback=WEIGHTS_BUG_FEEDBACK),
                                      explanation="rewards that came before step t cannot depend on the action "
                                                  "a_t, and grad log pi(a_t | s_t) has mean 0 under the policy, so "
                                                  "their terms average to 0: the estimate stays unbiased. But they "
                                                  "still change from episode to episode and multiply every step's "
                                                  "gradient, so they add pure noise, as does the part of the return "
                                                  "that every action shares. Reward-to-go drops the first, a baseline "
                                                  "subtracts the second; both leave the expected gradient as it is "
                                                  "and shrink its variance, which is why REINFORCE learns faster from "
                                                  "the same samples with them."),
    "reinforce_weights": Exercise("reinforce_weights", reinforce_weights, reinforce_weights_cases,
                                  reinforce_weights_hidden_cases, rtol=1e-4, atol=1e-5),
    "train_reinforce": Exercise("train_reinforce", train_reinforce, train_reinforce_cases,
                                train_reinforce_hidden_cases, adapt=train_reinforce_runner,
                                comparer=_compare_verdicts, twins=("course_lib.deep.reinforce.reinforce",)),
}

BUILDS = ("train_reinforce", "reinforce")
"""Whole-algorithm builds: the lesson must not print the source of the library's REINFORCE loop."""


__getattr__ = check_functions(EXERCISES)
