"""How lesson 3's check calls a student's ``run_value_iteration``: on copies of the model's arrays, with the policy
judged by whether it is greedy for the returned values (so ties may be broken either way)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from course_lib.tabular.dp import bellman_backup


def greedy_outcome(fn: Callable) -> Callable:
    """``fn(P, R, done, gamma, theta)`` on copies, as (V, policy_is_greedy): whether each state's action is a best one.

    Any action whose value is within 1e-6 of the best counts as greedy, so ties may be broken either way.
    A result that is not a pair of arrays, or a policy that is not an (S,) int array, comes back as it is.
    """

    def call(P, R, done, gamma, theta=1e-8):
        __tracebackhide__ = True
        out = fn(P.copy(), R.copy(), done.copy(), gamma, theta)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], np.ndarray)
                and isinstance(out[1], np.ndarray) and out[0].shape == (R.shape[0],)
                and out[1].shape == (R.shape[0],) and out[1].dtype.kind in "iu"):
            return out
        V, policy = out
        if not np.all(np.isfinite(V)) or policy.min() < 0 or policy.max() >= R.shape[1]:
            return V, policy
        Q = bellman_backup(P, R, done, V, gamma)  # (S, A) the values the policy should be greedy for
        chosen = Q[np.arange(R.shape[0]), policy]  # (S,)
        return V, chosen >= Q.max(axis=1) - 1e-6

    return call
