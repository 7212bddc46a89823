"""The cat-feeder bandit: k levers, each paying out food with its own hidden rate.

A multi-armed bandit is an MDP with a single state: the agent only chooses an
action (a lever) and sees a reward; nothing it does changes the situation. The
whole difficulty is exploration vs exploitation (lesson 2)::

    env = CatFeederBandit(k=10, payout="bernoulli", steps=1000)
    obs, info = env.reset(seed=0)          # draws the hidden means from env.np_random
    obs, reward, terminated, truncated, info = env.step(3)
    info["regret"], info["optimal"]        # best_mean - means[3], was lever 3 a best one?

numpy + gymnasium only, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from course_lib.utils.validation import check_int

PAYOUTS: tuple[str, ...] = ("bernoulli", "gaussian")
"""The reward distributions a lever can have."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class CatFeederBandit(gym.Env[int, int]):
    """A cat in front of ``k`` feeder levers: a k-armed bandit.

    ## Description
    Each lever ``a`` has a hidden mean payout ``means[a]`` (the true action
    value q*(a)). Pressing a lever gives a random reward drawn around that
    mean; the cat does not see ``means`` and must learn which lever feeds best
    while still trying the others (Sutton & Barto 2018, Sec. 2.1, the
    "k-armed bandit problem"; Sec. 2.3 uses the same 10-armed testbed).

    When ``means`` is not given, the means are drawn at ``reset`` from
    ``self.np_random`` (U(0, 1) for ``"bernoulli"``, N(0, 1) for
    ``"gaussian"``) on the first reset and again on every reset that passes a
    ``seed``; a reset without a seed keeps the same levers. So the same seed
    always gives the same bandit problem, and different seeds give different
    ones.

    ## Action Space
    ``Discrete(k)``: the index of the lever to press, in ``{0, ..., k - 1}``.

    ## Observation Space
    ``Discrete(1)``: the observation is always ``0``. A bandit has a single
    state; the hidden ``means`` are not part of the observation.

    ## Rewards
    - ``payout="bernoulli"``: 1 (food) with probability ``means[a]``, else 0.
    - ``payout="gaussian"``: a draw from N(``means[a]``, 1).

    ## Episode End
    ``terminated`` is always ``False`` (no lever ends the cat's life).
    ``truncated`` is ``True`` on the ``steps``-th pull: a time limit, so an
    agent that bootstraps should bootstrap through it.

    ## Information
    ``step`` returns ``{"regret": best_mean - means[a], "optimal": means[a] == best_mean}``:
    the instantaneous (expected) regret of the pull, and whether the lever was a
    best one. ``reset`` returns ``{}``. The attributes ``means`` ((k,) float
    array, read-only) and ``best_mean`` (float) expose the exact model, for
    plots and for computing regret; an agent must not read them.

    ## Arguments
    - ``k``: number of levers, an int >= 2 (default 10).
    - ``payout``: ``"bernoulli"`` (default) or ``"gaussian"``.
    - ``means``: optional sequence of ``k`` true means (in [0, 1] for
      ``"bernoulli"``, any finite number for ``"gaussian"``); ``None``
      (default) draws them at reset.
    - ``steps``: pulls per episode, an int >= 1 (default 1000).

    ## References
    R. S. Sutton and A. G. Barto, *Reinforcement Learning: An Introduction*,
    2nd ed., MIT Press, 2018, ch. 2 "Multi-armed Bandits".
    http://incompleteideas.net/book/the-book-2nd.html
    """

    metadata: dict[str, Any] = {"render_modes": []}  # rendering lives apart from the MDP

    def __init__(
        self,
        k: int = 10,
        payout: str = "bernoulli",
        means: Sequence[float] | np.ndarray | None = None,
        steps: int = 1000,
    ) -> None:
        check_int("k", k, 2)
        if payout not in PAYOUTS:
            raise ValueError(f"payout: expected one of {list(PAYOUTS)}, got {payout!r}")
        check_int("steps", steps, 1)
        self.k = int(k)
        self.payout = payout
        self.steps = int(steps)
        self._fixed_means = None if means is None else self._check_means(means)

        self.action_space = spaces.Discrete(self.k)
        self.observation_space = spaces.Discrete(1)

        self.means: np.ndarray | None = None  # (k,) set by reset
        """(k,) the hidden true mean payout of each lever; ``None`` before the first reset."""
        self.best_mean: float | None = None
        """``means.max()``; ``None`` before the first reset."""
        self._t: int | None = None  # pulls so far in this episode; None before the first reset

    def _check_means(self, means: Sequence[float] | np.ndarray) -> np.ndarray:
        try:
            arr = np.array(means, dtype=np.float64)  # (k,)
        except (TypeError, ValueError):
            raise ValueError(f"means: expected a sequence of k={self.k} numbers, got {means!r}") from None
        if arr.shape != (self.k,):
            raise ValueError(f"means: expected a sequence of k={self.k} numbers (shape ({self.k},)), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"means: expected finite numbers, got {arr.tolist()}")
        if self.payout == "bernoulli" and not np.all((arr >= 0.0) & (arr <= 1.0)):
            raise ValueError(f"means: expected probabilities in [0, 1] for payout='bernoulli', got {arr.tolist()}")
        return arr

    def _draw_means(self) -> np.ndarray:
        if self.payout == "bernoulli":
            return self.np_random.uniform(0.0, 1.0, size=self.k)  # (k,) success probabilities
        return self.np_random.normal(0.0, 1.0, size=self.k)  # (k,) as in Sutton & Barto's 10-armed testbed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Start an episode; draw new hidden means on the first reset or when ``seed`` is given.

        Returns:
            ``(0, {})``: the only observation, and an empty info dict.
        """
        super().reset(seed=seed)  # seeds self.np_random when seed is given
        if self._fixed_means is not None:
            means = self._fixed_means.copy()
        elif seed is not None or self.means is None:
            means = self._draw_means()
        else:
            means = self.means  # same levers, a new episode
        means.setflags(write=False)
        self.means = means
        self.best_mean = float(means.max())
        self._t = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Press lever ``action``.

        Returns:
            ``(0, reward, False, truncated, {"regret": float, "optimal": bool})``.
        """
        if self._t is None or self.means is None:
            raise RuntimeError("step: call reset() before the first step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, {self.k - 1}], got {action!r}")
        a = int(action)
        mean = float(self.means[a])
        if self.payout == "bernoulli":
            reward = float(self.np_random.random() < mean)  # 1 with probability means[a]
        else:
            reward = float(self.np_random.normal(mean, 1.0))  # N(means[a], 1)
        self._t += 1
        truncated = self._t >= self.steps
        info = {"regret": self.best_mean - mean, "optimal": bool(mean == self.best_mean)}
        return 0, reward, False, truncated, info
