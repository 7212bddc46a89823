"""Bandit agents for lesson 2: greedy, epsilon-greedy, UCB1 and Thompson sampling.

The cat in front of the feeder levers (``course_lib.envs.bandit.CatFeederBandit``)
must trade exploration (try a lever to learn its payout) against exploitation
(press the lever that looks best). Notation (Sutton & Barto 2018, ch. 2):

=================  ======================================  ================
symbol             meaning                                 name in code
=================  ======================================  ================
K                  number of arms (levers)                 ``k``
a                  an arm                                  ``action``
Q_t(a)             estimated value of arm a                ``q`` (K,)
N_t(a)             times arm a was pulled                  ``counts`` (K,)
q*(a)              true mean payout of arm a (hidden)      ``env.unwrapped.means`` (K,)
t                  time step, 1-based                      ``t``
epsilon            exploration probability                 ``epsilon``
c                  UCB exploration weight                  ``c``
regret_t           q*(a*) - q*(A_t)                        ``regret``
=================  ======================================  ================

Three small pure functions hold the math (students re-implement them as
exercises): :func:`epsilon_greedy_action`, :func:`ucb_scores` and
:func:`incremental_mean`. The agents share one interface (``select(rng)``,
``update(action, reward)``, attributes ``q`` and ``counts``), and
:func:`run_bandit` is the whole agent-environment loop, top to bottom.

Presets (:data:`BANDIT_PRESETS`), times for 20 seeds on one laptop CPU core:

===========  ==========================================================  ==========
name         for                                                         time
===========  ==========================================================  ==========
``ci``       tests and quick checks: 4 agents x 200 steps                < 1 s
``lesson2``  the lesson's regret plot: 4 agents x 1,000 steps            ~1 s
``long``     log-regret vs linear regret: 4 agents x 10,000 steps        ~10 s
===========  ==========================================================  ==========

numpy only (plus tqdm), no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from course_lib.envs.bandit import PAYOUTS
from course_lib.utils.validation import check_float, check_int

AGENTS: tuple[str, ...] = ("greedy", "epsilon-greedy", "ucb1", "thompson")
"""The agent names a :class:`BanditConfig` accepts."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_vector(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError(f"{name}: expected a 1-D array of shape (K,) with K >= 1, got shape {arr.shape}")
    return arr


def _argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> int:
    """argmax over ``values`` (K,), a tie broken uniformly at random (np.argmax would always pick the first)."""
    best = np.flatnonzero(values == values.max())  # (n_tied,) indices of every maximiser
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


# ----------------------------------------------------------------------------
# The math: small pure functions
# ----------------------------------------------------------------------------


def epsilon_greedy_action(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Pick an arm epsilon-greedily (Sutton & Barto 2018, Sec. 2.2).

        A_t = uniform random arm             with probability epsilon
              argmax_a Q_t(a)                otherwise, ties broken uniformly at random

    Args:
        q: (K,) estimated action values Q_t(a).
        epsilon: exploration probability, in [0, 1].
        rng: the generator for both coin flips (explore? which tied arm?).

    Returns:
        The arm, an int in [0, K - 1].
    """
    q = _check_vector("q", q)
    check_float("epsilon", epsilon, "[0, 1]")
    return _epsilon_greedy(q, epsilon, rng)


def _epsilon_greedy(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """:func:`epsilon_greedy_action` without its checks, for the agents: they check ``epsilon`` once, when built,
    not at every step."""
    if rng.random() < epsilon:
        return int(rng.integers(q.shape[0]))  # explore: every arm, the greedy one included
    return _argmax_random_ties(q, rng)  # exploit


def ucb_scores(q: np.ndarray, counts: np.ndarray, t: int, c: float) -> np.ndarray:
    """Upper-confidence-bound scores (UCB1, Auer et al. 2002; Sutton & Barto 2018, Eq. 2.10).

        U_t(a) = Q_t(a) + c * sqrt(ln t / N_t(a)),      U_t(a) = +inf when N_t(a) = 0

    so every arm is pulled once before any is pulled twice. Auer et al.'s
    UCB1 is the case ``c = sqrt(2)`` (rewards in [0, 1]).

    Args:
        q: (K,) estimated action values Q_t(a).
        counts: (K,) pull counts N_t(a), non-negative.
        t: the current time step, an int >= 1 (1 for the first pull).
        c: exploration weight, finite and >= 0.

    Returns:
        (K,) float64 scores; the agent pulls their argmax.
    """
    q = _check_vector("q", q)
    counts = np.asarray(counts)
    if counts.shape != q.shape:
        raise ValueError(f"counts: expected shape {q.shape} (q.shape), got {counts.shape}")
    if np.any(counts < 0):
        raise ValueError(f"counts: expected non-negative counts, got {counts.tolist()}")
    check_int("t", t, 1)
    check_float("c", c, "[0, inf)")
    return _ucb_scores(q, counts, t, c)


def _ucb_scores(q: np.ndarray, counts: np.ndarray, t: int, c: float) -> np.ndarray:
    """:func:`ucb_scores` without its checks, for :class:`UCB1Agent`: its own (K,) ``q`` and ``counts``, the ``t`` it
    counts, and the ``c`` it checked once, when built."""
    pulled = counts > 0  # (K,)
    bonus = np.full(q.shape, np.inf)  # (K,) an unpulled arm is infinitely promising
    bonus[pulled] = c * np.sqrt(math.log(t) / counts[pulled])
    return q.astype(np.float64) + bonus


def incremental_mean(q: float, n: int, reward: float) -> float:
    """The sample mean after the n-th reward, without storing the rewards (Sutton & Barto 2018, Eq. 2.3).

        Q_{n+1} = Q_n + (R_n - Q_n) / n

    Args:
        q: Q_n, the mean of the first n - 1 rewards (any value when n = 1).
        n: the number of rewards including this one, an int >= 1.
        reward: R_n, the new reward.

    Returns:
        Q_{n+1}, the mean of all n rewards.
    """
    check_int("n", n, 1)
    return float(q + (reward - q) / n)


# ----------------------------------------------------------------------------
# Agents: select(rng) -> action, update(action, reward)
# ----------------------------------------------------------------------------


class BanditAgent:
    """Sample-average action values; subclasses choose how to ``select``.

    Attributes:
        k: number of arms K.
        q: (K,) float64 sample mean reward of each arm, Q_t(a) (0 before a pull).
        counts: (K,) int64 pull counts N_t(a).
    """

    def __init__(self, k: int) -> None:
        check_int("k", k, 2)
        self.k = int(k)
        self.q = np.zeros(self.k, dtype=np.float64)  # (K,)
        self.counts = np.zeros(self.k, dtype=np.int64)  # (K,)

    def select(self, rng: np.random.Generator) -> int:
        """Choose the arm to pull, using only ``rng`` for randomness."""
        raise NotImplementedError

    def update(self, action: int, reward: float) -> None:
        """Learn from one pull: N(a) += 1, then Q(a) += (R - Q(a)) / N(a)."""
        if not _is_int(action) or not 0 <= action < self.k:
            raise ValueError(f"action: expected an int in [0, {self.k - 1}], got {action!r}")
        if not _is_real(reward) or not math.isfinite(reward):
            raise ValueError(f"reward: expected a finite float, got {reward!r}")
        self.counts[action] += 1
        self.q[action] = incremental_mean(self.q[action], int(self.counts[action]), float(reward))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


class GreedyAgent(BanditAgent):
    """Always pull an arm with the highest Q_t(a) (ties at random): pure exploitation."""

    def select(self, rng: np.random.Generator) -> int:
        return _epsilon_greedy(self.q, 0.0, rng)


class EpsilonGreedyAgent(BanditAgent):
    """Greedy, except with probability ``epsilon`` a uniformly random arm (Sutton & Barto 2018, Sec. 2.2)."""

    def __init__(self, k: int, epsilon: float = 0.1) -> None:
        super().__init__(k)
        self.epsilon = check_float("epsilon", epsilon, "[0, 1]")

    def select(self, rng: np.random.Generator) -> int:
        return _epsilon_greedy(self.q, self.epsilon, rng)

    def __repr__(self) -> str:
        return f"EpsilonGreedyAgent(k={self.k}, epsilon={self.epsilon})"


class UCB1Agent(BanditAgent):
    """Pull the arm with the highest upper confidence bound (Auer et al. 2002; Sutton & Barto 2018, Sec. 2.7)."""

    def __init__(self, k: int, c: float = 0.5) -> None:
        super().__init__(k)
        self.c = check_float("c", c, "[0, inf)")

    def select(self, rng: np.random.Generator) -> int:
        t = int(self.counts.sum()) + 1  # the step being chosen, 1-based
        return _argmax_random_ties(_ucb_scores(self.q, self.counts, t, self.c), rng)

    def __repr__(self) -> str:
        return f"UCB1Agent(k={self.k}, c={self.c})"


class ThompsonAgent(BanditAgent):
    """Thompson sampling: draw a mean for every arm from its posterior, pull the largest draw.

    (Thompson 1933; Russo et al. 2018, "A Tutorial on Thompson Sampling".)
    The posterior follows from ``q`` and ``counts`` alone (the sum of the
    rewards of arm a is N(a) * Q(a)), see :meth:`posterior`:

    - ``"bernoulli"``: prior Beta(1, 1) (uniform), posterior
      Beta(1 + S(a), 1 + N(a) - S(a)) with S(a) = N(a) Q(a) the successes.
      Rewards must lie in [0, 1].
    - ``"gaussian"``: prior N(0, 1), rewards N(q*(a), 1) with known unit
      variance; posterior N(S(a) / (1 + N(a)), 1 / (1 + N(a))) (precisions add:
      1 from the prior, 1 per reward).
    """

    def __init__(self, k: int, payout: str = "bernoulli") -> None:
        super().__init__(k)
        if payout not in PAYOUTS:
            raise ValueError(f"payout: expected one of {list(PAYOUTS)}, got {payout!r}")
        self.payout = payout

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The posterior's parameters per arm.

        Returns:
            ``(alpha, beta)``, each (K,), of Beta(alpha, beta) for ``"bernoulli"``;
            ``(mean, std)``, each (K,), of N(mean, std**2) for ``"gaussian"``.
        """
        total = self.counts * self.q  # (K,) sum of rewards S(a)
        if self.payout == "bernoulli":
            return 1.0 + total, 1.0 + (self.counts - total)
        precision = 1.0 + self.counts  # (K,) prior precision 1 + one per unit-variance reward
        return total / precision, 1.0 / np.sqrt(precision)

    def select(self, rng: np.random.Generator) -> int:
        a, b = self.posterior()
        if self.payout == "bernoulli":
            theta = rng.beta(a, b)  # (K,) one plausible mean per arm
        else:
            theta = rng.normal(a, b)  # (K,)
        return int(np.argmax(theta))  # continuous draws: ties have probability 0

    def update(self, action: int, reward: float) -> None:
        if self.payout == "bernoulli":
            check_float("reward", reward, "[0, 1]", note="payout='bernoulli'")
        super().update(action, reward)

    def __repr__(self) -> str:
        return f"ThompsonAgent(k={self.k}, payout={self.payout!r})"


# ----------------------------------------------------------------------------
# Configuration and presets
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BanditConfig:
    """One bandit run: which agent, its exploration knob, how many pulls.

    Fields an agent does not use are still validated, then ignored
    (``epsilon`` only matters for ``"epsilon-greedy"``, ``c`` for ``"ucb1"``).
    """

    agent: str = "epsilon-greedy"
    """One of ``"greedy"``, ``"epsilon-greedy"``, ``"ucb1"``, ``"thompson"``."""
    epsilon: float = 0.1
    """Exploration probability of epsilon-greedy, in [0, 1]; typically 0.01 to 0.1."""
    c: float = 0.5
    """UCB exploration weight, >= 0; scale it with the reward noise: typically 0.3 to 0.7 for rewards in [0, 1]
    (Bernoulli levers, std <= 0.5), 1 to 2 for unit-variance Gaussian rewards (Sutton & Barto's Fig. 2.4 uses 2).
    Auer et al.'s UCB1 bound is c = sqrt(2): safe, but it over-explores on 1,000 pulls."""
    steps: int = 1000
    """Number of pulls, >= 1; typically 1,000 (the lesson) to 10,000 (asymptotics)."""

    def __post_init__(self) -> None:
        if self.agent not in AGENTS:
            raise ValueError(f"agent: expected one of {list(AGENTS)}, got {self.agent!r}")
        check_float("epsilon", self.epsilon, "[0, 1]")
        check_float("c", self.c, "[0, inf)")
        check_int("steps", self.steps, 1)


def _lineup(steps: int) -> dict[str, BanditConfig]:
    return {
        "greedy": BanditConfig("greedy", steps=steps),
        "epsilon-greedy": BanditConfig("epsilon-greedy", epsilon=0.1, steps=steps),
        "ucb1": BanditConfig("ucb1", c=0.5, steps=steps),
        "thompson": BanditConfig("thompson", steps=steps),
    }


BANDIT_PRESETS: dict[str, dict[str, BanditConfig]] = {
    # Tests and quick checks: the four agents for 200 pulls; < 1 s for 20 seeds.
    "ci": _lineup(200),
    # Lesson 2's regret plot on the default 10-lever bandit (1,000 pulls): the
    # four agents side by side; ~1 s for 20 seeds on a laptop CPU.
    "lesson2": _lineup(1000),
    # A challenge: 10,000 pulls, where UCB1 and Thompson's regret visibly
    # flattens (grows like log t) while epsilon-greedy's keeps growing linearly;
    # ~10 s for 20 seeds. Build the env with CatFeederBandit(steps=10_000).
    "long": _lineup(10_000),
}
"""Named line-ups of agents for :func:`compare_agents`: ``compare_agents(make_env, BANDIT_PRESETS["lesson2"], range(20))``."""


def make_agent(config: BanditConfig, k: int, payout: str | None = "bernoulli") -> BanditAgent:
    """Build the agent ``config.agent`` names, for ``k`` arms with rewards of kind ``payout`` (used by Thompson only)."""
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config: expected a BanditConfig, got {type(config).__name__}")
    if config.agent == "greedy":
        return GreedyAgent(k)
    if config.agent == "epsilon-greedy":
        return EpsilonGreedyAgent(k, config.epsilon)
    if config.agent == "ucb1":
        return UCB1Agent(k, config.c)
    return ThompsonAgent(k, payout)


# ----------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------


@dataclass
class BanditHistory:
    """What happened in one run of :func:`run_bandit`, one entry per pull (T = ``config.steps``)."""

    rewards: np.ndarray
    """(T,) float64 reward R_t of each pull."""
    actions: np.ndarray
    """(T,) int64 arm A_t pulled."""
    regret: np.ndarray
    """(T,) float64 instantaneous regret q*(a*) - q*(A_t) (expected, not the noisy reward gap)."""
    optimal: np.ndarray
    """(T,) bool: was A_t a best arm?"""
    means: np.ndarray
    """(K,) float64 the true means q*(a) of the problem the agent faced."""

    @property
    def cumulative_regret(self) -> np.ndarray:
        """(T,) total regret after each pull: sum_{s <= t} regret_s."""
        return np.cumsum(self.regret)


def run_bandit(env: gym.Env, config: BanditConfig, seed: int, progress: bool = True) -> BanditHistory:
    """Run one agent on one bandit problem for ``config.steps`` pulls.

    Args:
        env: a bandit env with the :class:`~course_lib.envs.bandit.CatFeederBandit`
            interface (``Discrete(K)`` actions, ``info["regret"]`` and
            ``info["optimal"]`` from ``step``, ``payout`` and ``means`` on
            ``env.unwrapped``); wrappers are fine.
        config: the agent and the number of pulls.
        seed: seeds the env (its reset draws the true means) and, through an
            independent child stream, the agent's generator.
        progress: show a progress bar over the pulls.

    Returns:
        The per-pull history.
    """
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config: expected a BanditConfig, got {type(config).__name__}")
    check_int("seed", seed, 0)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"env: expected a Discrete action space, got {env.action_space}")

    # 1. Reset the env with the seed: a CatFeederBandit draws its hidden means here.
    env.reset(seed=int(seed))
    means = np.array(env.unwrapped.means, dtype=np.float64)  # (K,) for the record only; the agent never sees it

    # 2. Build the agent and its own generator. The child SeedSequence keeps the
    #    agent's coin flips independent of the env's reward draws (default_rng(seed)
    #    would replay the very same stream as the env's np_random).
    k = int(env.action_space.n)
    agent = make_agent(config, k, getattr(env.unwrapped, "payout", None))  # Thompson needs the reward model
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])

    # 3. The agent-environment loop: select, pull, learn, record.
    T = config.steps
    rewards = np.zeros(T, dtype=np.float64)  # (T,)
    actions = np.zeros(T, dtype=np.int64)  # (T,)
    regret = np.zeros(T, dtype=np.float64)  # (T,)
    optimal = np.zeros(T, dtype=bool)  # (T,)
    for t in tqdm(range(T), desc=config.agent, disable=not progress, leave=False):
        action = agent.select(rng)
        _, reward, terminated, truncated, info = env.step(action)
        agent.update(action, float(reward))
        rewards[t], actions[t] = reward, action
        regret[t], optimal[t] = info["regret"], info["optimal"]
        if (terminated or truncated) and t < T - 1:
            env.reset()  # no seed: the same levers, the run goes on past the env's time limit

    # 4. Hand back the record.
    return BanditHistory(rewards=rewards, actions=actions, regret=regret, optimal=optimal, means=means)


def compare_agents(
    env_factory: Callable[[], gym.Env],
    configs: dict[str, BanditConfig],
    seeds: Sequence[int],
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Run every config on every seed; the cumulative regret curves per agent.

    Each (agent, seed) run gets a fresh ``env_factory()`` reset with that seed,
    so all agents face the same true means for the same seed (checked: a
    ``ValueError`` names the seed when they differ, e.g. when the factory fixes
    ``means`` from a generator of its own).

    Args:
        env_factory: builds a fresh env, e.g. ``lambda: CatFeederBandit(k=10)``.
        configs: agent label -> config, e.g. ``BANDIT_PRESETS["lesson2"]``.
        seeds: the seeds, one bandit problem each.
        progress: show a progress bar over the runs.

    Returns:
        label -> (n_seeds, T) float64 cumulative regret, T = that config's ``steps``.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got []")
    if not configs:
        raise ValueError("configs: expected at least one BanditConfig, got {}")
    means_of_seed: dict[int, np.ndarray] = {}  # seed -> (K,) true means of the first run
    curves: dict[str, np.ndarray] = {}
    with tqdm(total=len(configs) * len(seeds), desc="runs", disable=not progress) as bar:
        for label, config in configs.items():
            curves[label] = np.zeros((len(seeds), config.steps), dtype=np.float64)  # (n_seeds, T)
            for i, seed in enumerate(seeds):
                env = env_factory()
                history = run_bandit(env, config, seed, progress=False)
                env.close()
                first = means_of_seed.setdefault(seed, history.means)
                if not np.array_equal(first, history.means):
                    raise ValueError(
                        f"env_factory: expected the same true means for seed {seed} in every run, "
                        f"got {first.tolist()} and {history.means.tolist()}"
                    )
                curves[label][i] = history.cumulative_regret
                bar.update(1)
    return curves
