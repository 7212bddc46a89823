"""How lesson 2's checks call a student's bandit math: on copies of the arrays, with a freshly seeded generator,
and with ``+inf`` scores split out so that the comparison (finite numbers only) can see them."""

from __future__ import annotations

from typing import Callable

import numpy as np


def watch_inputs(fn: Callable) -> Callable:
    """``fn(q, counts, arm, reward)`` on copies; returns (q, counts, whether the copies it was given are unchanged)."""

    def call(q: np.ndarray, counts: np.ndarray, arm: int, reward: float):
        __tracebackhide__ = True
        q_in, counts_in = q.copy(), counts.copy()
        out = fn(q_in, counts_in, arm, reward)
        unchanged = bool(np.array_equal(q_in, q) and np.array_equal(counts_in, counts))
        if isinstance(out, tuple) and len(out) == 2:
            return out[0], out[1], unchanged
        return out

    return call


def seeded(fn: Callable) -> Callable:
    """``fn(q, epsilon, rng)`` as ``f(q, epsilon, seed=...)``: a fresh ``default_rng(seed)``, a copy of ``q``."""

    def call(q: np.ndarray, epsilon: float, seed: int):
        return fn(q.copy(), epsilon, np.random.default_rng(seed))

    return call


def split_inf(scores):
    """``(is_inf, finite)`` of a (K,) score array: the ``+inf`` positions (bool) and the scores with them set to 0.

    A value that is not a numpy array comes back unchanged in both places, so
    the comparison names its type.
    """
    if not isinstance(scores, np.ndarray):
        return scores, scores
    is_inf = np.isposinf(scores) if scores.dtype.kind == "f" else np.zeros(scores.shape, dtype=bool)
    return is_inf, np.where(is_inf, 0, scores)  # (K,) bool, (K,) same dtype kind; NaN and -inf stay


def split(fn: Callable) -> Callable:
    """``fn(q, counts, t, c)`` as a function returning ``split_inf`` of its scores; copies of the arrays per call."""

    def call(q: np.ndarray, counts: np.ndarray, t: int, c: float):
        return split_inf(fn(q.copy(), counts.copy(), t, c))

    return call
