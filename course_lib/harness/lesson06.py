"""How lesson 6's checks call a student's function: the losses on fresh leaves with their gradients, the variance as
a plain number, and ``train_reinforce`` through probes that turn a whole training run into a verdict string.

The verdicts of :func:`train_reinforce_runner`: "ok" or "solved", or what went wrong. Scripted episodes with an
optimiser that records the gradients (each batch's must be that of the specification), a fixed policy with
probabilities (0.25, 0.75) (its actions must be sampled), a NaN reward (FloatingPointError before the step), and
CartPole-v1 on a seed (solved = a mean return of ``RF_LEVEL`` over ``RF_WINDOW`` consecutive episodes within
``RF_BUDGET`` env steps).
"""

from __future__ import annotations

import functools
from typing import Callable

import gymnasium as gym
import gymnasium.envs.classic_control  # noqa: F401  (CartPole's module, loaded before the sandbox drops privileges)
import numpy as np
import torch

from course_lib.deep.reinforce import CategoricalPolicy, reward_to_go
from course_lib.harness.tensors import check_scalar_loss
from course_lib.rl import normalize
from course_lib.utils import set_seed

# ---- the losses and the variance -----------------------------------------------------------


def loss_with_grads(fn: Callable) -> Callable:
    """The ``adapt`` of ``reinforce_loss``: call ``fn`` on fresh leaves, return ``(loss, d loss / d logp,
    d loss / d advantages)``; the advantages require grad only where the case's advantages do."""

    def run(logp, advantages):
        logp = logp.detach().clone().requires_grad_(True)  # each caller gets its own leaves
        adv = advantages.detach().clone().requires_grad_(bool(advantages.requires_grad))
        loss = fn(logp, adv)
        check_scalar_loss(loss, "reinforce_loss should return", ", a 0-d tensor (the mean over the N steps)",
                          "reinforce_loss", "`logp`", detached="(.detach() on logp, torch.no_grad(), .item() or numpy)")
        inputs = [logp, adv] if adv.requires_grad else [logp]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        if grads[0] is None:
            raise RuntimeError("reinforce_loss's loss has no gradient w.r.t. `logp` (only through the advantages): "
                               "detach the advantages, not the log-probabilities")
        grad_adv = grads[1] if adv.requires_grad and grads[1] is not None else torch.zeros_like(adv)
        return loss.detach(), grads[0], grad_adv

    return run


def returns_float(fn: Callable) -> Callable:
    """The ``adapt`` of ``gradient_variance``: the result must be a plain number, not a tensor or an array."""

    def run(grads):
        value = fn(grads.clone())
        if isinstance(value, (torch.Tensor, np.ndarray)):
            raise TypeError(f"gradient_variance should return a Python float (wrap the result in float(...)), got "
                            f"a {type(value).__name__} of shape {tuple(value.shape)}")
        return value

    return run


# ---- train_reinforce: probes of the whole algorithm --------------------------------------------

_RF_HIDDEN, _RF_LR, _RF_BATCH, _RF_GAMMA = 32, 0.02, 8, 0.99
"""The behaviour cases' set-up: CategoricalPolicy(4, 2, 32), Adam(lr=0.02), batches of 8 episodes, gamma 0.99."""
RF_LEVEL, RF_WINDOW, RF_BUDGET = 100.0, 20, 30_000
"""Solved: the mean return of RF_WINDOW consecutive training episodes reaches RF_LEVEL within RF_BUDGET env steps.
Measured on the reference (30 seeds): the median run needed 6,300 steps, 29 of 30 under 13,000, the slowest 28,300."""
SOLVED = "solved"
_RF_RANDOM_LEVEL = 40.0
"""A best mean of RF_WINDOW episodes under this is a random policy's level: uniform actions average about 22 per
episode, and the best window of 20 in a 30,000-step run of them reached 30.5, 31.8 and 33.6 (seeds 1, 3, 8)."""


class _Stop(BaseException):
    """Raised by the watching env to end a behaviour run (BaseException: an `except Exception` does not swallow it)."""


class _Watch:
    """CartPole as the learner's function sees it, counting env steps and episode returns.

    It stops the run (raises :class:`_Stop`) at the first reset after the mean return of the last ``window``
    episodes reached ``level``, or at the step after the budget.
    """

    def __init__(self, env, level: float, window: int, budget: int):
        self.env, self.level, self.window, self.budget = env, level, window, budget
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.steps, self.returns, self.current, self.started = 0, [], 0.0, False
        self.solved_at, self.best = None, (float("-inf"), 0)

    def reset(self, **kwargs):
        if self.started:
            self.returns.append(self.current)
            if len(self.returns) >= self.window:
                mean = float(np.mean(self.returns[-self.window:]))
                self.best = max(self.best, (mean, self.steps))
                if mean >= self.level:
                    self.solved_at = self.steps
                    raise _Stop()
        self.started, self.current = True, 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        if self.steps >= self.budget:
            raise _Stop()
        self.steps += 1
        out = self.env.step(action)
        self.current += float(out[1])
        return out

    def close(self):
        pass  # the check closes CartPole when the run is over

    def __getattr__(self, name):  # spec, unwrapped, np_random, ...: CartPole's own
        return getattr(self.env, name)


class _ProbeEnv:
    """A tiny scripted env: 4-number observations, 2 actions, fixed episode lengths and ends, rewards that depend on
    the action. It records every step, so the check can recompute the gradient the learner's loss should give."""

    def __init__(self, seed: int, lengths, truncated_at=(), nan_at=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.rng = np.random.default_rng(seed)
        self.lengths, self.truncated_at, self.nan_at = list(lengths), set(truncated_at), nan_at
        self.episodes = []  # one dict per episode: obs (T, 4), actions, rewards
        self.open = False

    def reset(self, seed=None, options=None):
        if self.open:
            raise RuntimeError("env.reset() was called in the middle of an episode: an episode ends only when "
                               "env.step reports terminated or truncated")
        if len(self.episodes) >= len(self.lengths):
            raise RuntimeError(f"env.reset() was called for episode {len(self.episodes) + 1}, but the function was "
                               f"asked for {len(self.lengths)} episodes")
        self.open = True
        self.episodes.append({"obs": [], "actions": [], "rewards": []})
        self.obs = self.rng.normal(size=4).astype(np.float32)
        return self.obs.copy(), {}

    spec = None
    metadata: dict = {}

    @property
    def unwrapped(self):
        return self

    def close(self):
        pass

    def step(self, action):
        if not self.open:
            raise RuntimeError("env.step() was called after the episode ended (terminated or truncated): call "
                               "env.reset() first; an episode ends on either flag")
        ep, i = self.episodes[-1], len(self.episodes) - 1
        a = int(action)
        if a not in (0, 1):
            raise ValueError(f"env.step: expected an action 0 or 1 (an int), got {action!r}")
        reward = 1.0 + 0.5 * a + float(self.rng.normal(scale=0.3))
        if self.nan_at == (i, len(ep["rewards"])):
            reward = float("nan")
        ep["obs"].append(self.obs.copy())
        ep["actions"].append(a)
        ep["rewards"].append(reward)
        self.obs = self.rng.normal(size=4).astype(np.float32)
        end = len(ep["rewards"]) == self.lengths[i]
        truncated = end and i in self.truncated_at
        self.open = not end
        return self.obs.copy(), reward, end and not truncated, truncated, {}


class _Recorder(torch.optim.Optimizer):
    """An optimiser that takes no step (lr 0) and records the gradients it was asked to step on."""

    def __init__(self, params):
        super().__init__(params, {})
        self.grads, self.episodes_at_step = [], []
        self.env = None

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        self.grads.append(torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()).reshape(-1)
                                     for p in params]))
        self.episodes_at_step.append(len(self.env.episodes) if self.env is not None else 0)


def _probe_policy(seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CategoricalPolicy(4, 2, 8)


def _batch_gradient(policy, episodes, gamma: float, variant: str) -> torch.Tensor:
    """The gradient of the batch loss over ``episodes`` (recorded dicts), the right way or a named wrong way."""
    obs = torch.as_tensor(np.concatenate([np.array(e["obs"]) for e in episodes]))  # (N, 4)
    actions = torch.tensor([a for e in episodes for a in e["actions"]])  # (N,)
    rewards = [torch.tensor(e["rewards"]) for e in episodes]
    if variant == "whole":
        G = torch.cat([torch.full_like(r, float(reward_to_go(r, gamma, terminated=True)[0])) for r in rewards])
    else:
        G = torch.cat([reward_to_go(r, gamma, terminated=True) for r in rewards])  # (N,)
    if variant == "per_episode":
        A = torch.cat([normalize(reward_to_go(r, gamma, terminated=True)) if len(r) > 1 else torch.zeros_like(r)
                       for r in rewards])
    elif variant == "raw":
        A = G
    else:
        A = normalize(G)
    logp = torch.distributions.Categorical(logits=policy(obs)).log_prob(actions)  # (N,)
    loss = -(logp * A).sum() if variant == "sum" else -(logp * A).mean()
    if variant == "ascent":
        loss = -loss
    grads = torch.autograd.grad(loss, list(policy.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


_GRADIENT_DIAGNOSES = {
    "whole": "you weighted every step by its episode's whole return G_0: use the reward-to-go from each step "
             "(your reward_to_go, one episode at a time)",
    "raw": "you used the raw reward-to-go: normalise the returns over the whole batch first (mean 0, std 1, "
           "course_lib.rl.normalize)",
    "per_episode": "you normalised each episode's returns on their own: normalise once, over all the batch's steps",
    "sum": "your gradient is N times too large: average over the batch's N steps (reinforce_loss does), do not sum",
    "ascent": "your gradient has the wrong sign: the optimiser minimises, so step on reinforce_loss as it is",
}


def probe_gradients(fn: Callable) -> str:
    """Run ``fn`` on the scripted env with a recording optimiser; describe the first departure from the spec."""
    lengths, B = [3, 6, 2, 5, 4, 7], 2
    env = _ProbeEnv(31, lengths, truncated_at=(1, 4))
    policy = _probe_policy(31)
    recorder = _Recorder(policy.parameters())
    recorder.env = env
    before = [p.detach().clone() for p in policy.parameters()]
    torch.manual_seed(31)
    returned = fn(env, policy, recorder, len(lengths), B, 0.9)
    if any(not torch.equal(a, p) for a, p in zip(before, policy.parameters())):
        return "the policy's parameters changed outside optimizer.step(): change them only through the optimiser"
    if len(env.episodes) != len(lengths):
        return f"your function played {len(env.episodes)} episodes, expected {len(lengths)} (the `episodes` argument)"
    if len(recorder.grads) != len(lengths) // B:
        return (f"your function took {len(recorder.grads)} optimiser steps for {len(lengths)} episodes in batches of "
                f"{B}, expected {len(lengths) // B}: one step per batch, after its {B} episodes")
    for k, (grad, seen) in enumerate(zip(recorder.grads, recorder.episodes_at_step)):
        if seen != (k + 1) * B:
            return (f"optimiser step {k + 1} came after {seen} episodes, expected after {(k + 1) * B}: collect a whole "
                    f"batch of {B} episodes, then step once")
        batch = env.episodes[k * B:(k + 1) * B]
        right = _batch_gradient(policy, batch, 0.9, "right")
        if torch.allclose(grad, right, rtol=1e-4, atol=1e-6):
            continue
        if k > 0 and torch.allclose(grad, recorder.grads[k - 1] + right, rtol=1e-4, atol=1e-6):
            return (f"at optimiser step {k + 1} the gradient still holds the previous batch's: zero the gradients "
                    "before each backward pass (optimizer.zero_grad())")
        for variant, why in _GRADIENT_DIAGNOSES.items():
            if torch.allclose(grad, _batch_gradient(policy, batch, 0.9, variant), rtol=1e-4, atol=1e-6):
                return f"the gradient of optimiser step {k + 1} is not REINFORCE's: {why}"
        return (f"the gradient of optimiser step {k + 1} is not that of reinforce_loss(logp, normalize(G)) over the "
                f"batch's {sum(len(e['actions']) for e in batch)} steps (G: each episode's reward-to-go; logp: "
                "log pi(a_t | s_t) of the actions taken, under the current policy, with its graph)")
    expected = [float(sum(e["rewards"])) for e in env.episodes]
    if not isinstance(returned, list) or len(returned) != len(expected):
        return (f"your function returned {type(returned).__name__}"
                + (f" of {len(returned)} items" if hasattr(returned, "__len__") else "")
                + f"; expected a list of {len(expected)} floats, the return of each episode")
    if not np.allclose([float(x) for x in returned], expected, rtol=1e-5, atol=1e-5):
        return "the returned list is not the undiscounted return (sum of rewards) of each episode, in order"
    return "ok"


class _FixedPolicy(torch.nn.Module):
    """A policy that ignores the observation: the same logits, probabilities (0.25, 0.75), for every state."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.log(torch.tensor([0.25, 0.75])))

    def forward(self, obs):
        obs = torch.as_tensor(obs)
        return self.logits.expand(*obs.shape[:-1], 2)


_SAMPLE_LENGTHS, _SAMPLE_BATCH = [20] * 8, 4


def probe_sampling(fn: Callable) -> str:
    """A fixed policy with probabilities (0.25, 0.75) over 160 steps: a sampling rollout chooses action 0 at about a
    quarter of them (40 +- 5.5); the argmax never does, and a policy sampled the other way round at three quarters."""
    env = _ProbeEnv(33, _SAMPLE_LENGTHS)
    policy = _FixedPolicy()
    recorder = _Recorder(policy.parameters())
    recorder.env = env
    torch.manual_seed(33)
    fn(env, policy, recorder, len(_SAMPLE_LENGTHS), _SAMPLE_BATCH, 0.9)
    actions = [a for e in env.episodes for a in e["actions"]]
    zeros = actions.count(0)
    if not actions:
        return "your function took no actions on the scripted episodes"
    if zeros == 0:
        return (f"with a policy whose probabilities are (0.25, 0.75) in every state, your function never chose action "
                f"0 in {len(actions)} steps, where the policy gives it a quarter of them: the rollout does not "
                "follow the policy's distribution")
    if not 0.05 * len(actions) <= zeros <= 0.5 * len(actions):
        return (f"with a policy whose probabilities are (0.25, 0.75) in every state, your function chose action 0 at "
                f"{zeros} of {len(actions)} steps ({zeros / len(actions):.0%}), where the policy gives it about a "
                "quarter: the rollout does not follow the policy's distribution")
    return "ok"


def probe_nan(fn: Callable) -> str:
    """A NaN reward in the second batch: the function must raise FloatingPointError before stepping on it."""
    lengths = [3, 4, 2, 5]
    env = _ProbeEnv(32, lengths, nan_at=(3, 1))
    policy = _probe_policy(32)
    recorder = _Recorder(policy.parameters())
    recorder.env = env
    torch.manual_seed(32)
    try:
        fn(env, policy, recorder, len(lengths), 2, 0.9)
    except NotImplementedError:
        raise  # the stub: the check says "not implemented yet"
    except FloatingPointError:
        if len(recorder.grads) != 1:
            return (f"FloatingPointError raised after {len(recorder.grads)} optimiser steps, expected after 1: the "
                    "first batch is fine; raise when the second batch's loss is not finite, before its step")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any other exception is the wrong one
        return (f"a NaN reward made your function raise {type(exc).__name__} ({exc}), expected FloatingPointError: "
                "check the loss with torch.isfinite before the backward pass and raise FloatingPointError")
    return ("a NaN reward reached the loss and your function went on (it stepped on a NaN gradient): check the loss "
            "with torch.isfinite and raise FloatingPointError before optimizer.step()")


def run_cartpole(fn: Callable, seed: int) -> str:
    """Train a fresh policy with ``fn`` on CartPole-v1 (seeded); "solved" or what happened instead."""
    set_seed(seed)
    env = _Watch(gym.make("CartPole-v1"), RF_LEVEL, RF_WINDOW, RF_BUDGET)
    env.env.reset(seed=seed)
    env.action_space.seed(seed)
    policy = CategoricalPolicy(4, 2, _RF_HIDDEN)
    optimizer = torch.optim.Adam(policy.parameters(), lr=_RF_LR)
    try:
        fn(env, policy, optimizer, 100_000 // _RF_BATCH * _RF_BATCH, _RF_BATCH, _RF_GAMMA)
    except _Stop:
        pass
    finally:
        env.env.close()
    if env.solved_at is not None:
        return SOLVED
    best, at = env.best
    if env.steps < env.budget:
        return (f"your function returned after {len(env.returns)} episodes and {env.steps:,} env steps, before the "
                f"run was solved or out of budget: play the `episodes` it is given")
    best_text = f"its best mean of {RF_WINDOW} episodes was {best:.1f} (at {at:,} steps)" if at else "no episodes ended"
    if best < _RF_RANDOM_LEVEL:
        return (f"not solved, and not learning: the mean return of {RF_WINDOW} consecutive episodes never rose above "
                f"a random policy's level within {RF_BUDGET:,} env steps ({best_text}; random actions average about 22, "
                f"and their best window stays under {_RF_RANDOM_LEVEL:.0f}). A policy that learns passes that within "
                "a few thousand steps whatever the seed, so this is not REINFORCE's noise: the policy stays where it "
                "started, or acts worse than chance")
    return (f"not solved: the mean return of {RF_WINDOW} consecutive episodes never reached {RF_LEVEL:.0f} within "
            f"{RF_BUDGET:,} env steps; {best_text}. The reference needs about 6,000. If the probe cases pass, try "
            "the run again with another seed: REINFORCE is noisy")


_SOLVES_CARTPOLE: list[Callable] = []


def solves_cartpole(fn: Callable) -> Callable:
    """Record that ``fn`` solves the CartPole cases on every seed, so that :func:`train_reinforce_runner` returns its
    verdict without training it again next to the learner's run. For the check module's reference, in the trusted
    process: its tests run it on every seed of the cases (a second or two apiece). Returns ``fn``."""
    _SOLVES_CARTPOLE.append(fn)
    return fn


def train_reinforce_runner(fn: Callable) -> Callable:
    """The ``adapt`` of ``train_reinforce``: ``run(probe, seed)`` -> "ok"/"solved", or what went wrong."""

    def run(probe: str, seed: int = 0) -> str:
        if probe == "gradients":
            return probe_gradients(fn)
        if probe == "nan":
            return probe_nan(fn)
        if probe == "sampling":
            return probe_sampling(fn)
        if probe == "cartpole":
            known = any(fn is solver for solver in _SOLVES_CARTPOLE)  # a reference: see solves_cartpole
            return SOLVED if known else run_cartpole(fn, seed)
        raise ValueError(f"probe: expected 'gradients', 'sampling', 'nan' or 'cartpole', got {probe!r}")

    return run


@functools.lru_cache(maxsize=1)
def load_what_the_runs_need() -> None:
    """Load now what the runs would load lazily: the grader prepares a check before it drops its privileges, and after
    that the interpreter's own modules may be unreadable. Importing this module loads what the runs call, CartPole's
    module included (the sandbox unpickles the adapter, so it imports this module, but builds no cases); one
    gym.make here makes sure (the grader's child loads a torch optimiser's lazy modules itself)."""
    gym.make("CartPole-v1").close()
