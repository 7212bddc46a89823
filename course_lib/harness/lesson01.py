"""How lesson 1's checks call a student's function: ``discounted_return`` with its ValueError as an outcome, and
``run_episode`` on a fresh env and a fresh policy per call, both described by plain data."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

import course_lib.envs  # noqa: F401  (registers the course/... ids)

RAISES = "raises ValueError naming gamma"
"""The outcome of ``discounted_return`` for a gamma outside [0, 1] that raised a ValueError naming gamma."""


def outcome(fn: Callable) -> Callable:
    """Call ``fn(rewards, gamma)``; for a gamma outside [0, 1] a ValueError is the expected outcome.

    Inside [0, 1] every exception propagates, so ``run_check`` reports it as a crash.
    """

    def call(rewards, gamma):
        __tracebackhide__ = True
        try:
            return fn(rewards, gamma)
        except ValueError as exc:
            if 0 <= gamma <= 1:
                raise
            return RAISES if "gamma" in str(exc) else f"raises ValueError without the word gamma: {exc}"

    return call


class EnvSpec:
    """Makes a fresh env per call, so the student and the reference never share one."""

    def __init__(self, env_id: str, slip: float = 0.0):
        self.env_id, self.slip = env_id, slip

    def make(self):
        return gym.make(self.env_id, slip=self.slip)

    def __repr__(self) -> str:
        return f"gym.make({self.env_id!r}, slip={self.slip})"


class PolicySpec:
    """Makes a fresh policy per call from plain data: ``kind`` and its ``param`` say which.

    ``"always"``: ``param`` is the action taken in every state. ``"table"``: ``param`` is an (S,) array, the
    action of each state. ``"random"``: ``param`` is a seed; every call gets a freshly seeded generator and picks
    one of the 4 actions uniformly at each step.
    """

    KINDS = ("always", "table", "random")

    def __init__(self, name: str, kind: str, param):
        if kind not in self.KINDS:
            raise ValueError(f"kind: expected one of {self.KINDS}, got {kind!r}")
        self.name, self.kind, self.param = name, kind, param

    def make(self) -> Callable[[int], int]:
        if self.kind == "always":
            action = self.param
            return lambda s: action
        if self.kind == "table":
            table = self.param  # (S,)
            return lambda s: int(table[s])
        rng = np.random.default_rng(self.param)
        return lambda s: int(rng.integers(4))

    def __repr__(self) -> str:
        return f"policy {self.name!r}"


def on_fresh_env(fn: Callable) -> Callable:
    """Call ``fn(env, policy, **kwargs)`` with the env and the policy that the case's specs make."""

    def call(env_spec: EnvSpec, policy_spec: PolicySpec, **kwargs):
        __tracebackhide__ = True
        return fn(env_spec.make(), policy_spec.make(), **kwargs)

    return call
