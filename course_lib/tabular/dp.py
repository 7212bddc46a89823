"""Dynamic programming on the exact model: policy evaluation, policy iteration, value iteration.

Works on any :class:`course_lib.envs.MazeModel`-like object through its dense
arrays: P (S, A, S') transition probabilities, R (S, A) expected rewards and
done (S, A, S') termination flags. A transition that terminates contributes
its reward only: no bootstrapping from a terminal next state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from course_lib.utils.validation import check_float


@dataclass
class DPResult:
    """What a DP solver returns."""

    V: np.ndarray
    """(S,) state values."""
    Q: np.ndarray
    """(S, A) action values."""
    policy: np.ndarray
    """(S,) greedy action per state (int)."""
    deltas: list[float] = field(default_factory=list)
    """Convergence trace: value iteration stores the largest value change per sweep; policy
    iteration stores the number of states whose action changed per iteration."""


def _arrays(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``model.arrays()``, checked up front: a NaN or infinite reward or probability would otherwise spread
    through every sweep and end, many sweeps later, as a failure to converge that does not say why."""
    P, R, done = model.arrays()
    for what, name, x in (("finite rewards R(s, a)", "R", R), ("finite probabilities P(s' | s, a)", "P", P)):
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            s, a = bad[0][:2]
            more = f" (and {len(bad) - 1} more entries of {name})" if len(bad) > 1 else ""
            raise ValueError(f"model: expected {what}, got {x[tuple(bad[0])]} at state {s}, action {a}{more}")
    return P, R, done


def bellman_backup(P: np.ndarray, R: np.ndarray, done: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """One Bellman backup for every state and action (Sutton & Barto 2018, Eq. 4.6):

        Q(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) * (1 - done(s, a, s')) * V(s')

    Args:
        P: (S, A, S') transition probabilities. R: (S, A) expected rewards.
        done: (S, A, S') True where the transition ends the episode. V: (S,) values.

    Returns:
        (S, A) action values.
    """
    return R + gamma * np.einsum("sat,sat,t->sa", P, ~done, V)  # (S, A)


def policy_evaluation(model, policy: np.ndarray, gamma: float = 0.99, theta: float = 1e-8,
                      max_sweeps: int = 100_000) -> np.ndarray:
    """Iterative policy evaluation (Sutton & Barto 2018, Section 4.1) of a deterministic policy.

    Args:
        policy: (S,) action per state, or (S, A) action probabilities.

    Returns:
        (S,) V^pi, to within ``theta``.
    """
    check_float("gamma", gamma, "[0, 1]")
    P, R, done = _arrays(model)
    S, A = R.shape
    probs = np.eye(A)[np.asarray(policy, dtype=int)] if np.ndim(policy) == 1 else np.asarray(policy, dtype=float)
    if probs.shape != (S, A):
        raise ValueError(f"policy: expected shape ({S},) or ({S}, {A}), got {np.shape(policy)}")
    V = np.zeros(S)
    for _ in range(max_sweeps):
        V_new = (probs * bellman_backup(P, R, done, V, gamma)).sum(axis=1)  # (S,)
        delta = np.abs(V_new - V).max()
        V = V_new
        if delta < theta:
            return V
    raise RuntimeError(f"policy_evaluation did not converge in {max_sweeps} sweeps (gamma={gamma}); "
                       "with gamma = 1 an improper policy that never terminates has unbounded values")


def value_iteration(model, gamma: float = 0.99, theta: float = 1e-8, max_sweeps: int = 100_000) -> DPResult:
    """Value iteration (Sutton & Barto 2018, Section 4.4): V <- max_a Q(s, a) until it stops changing."""
    check_float("gamma", gamma, "[0, 1]")
    P, R, done = _arrays(model)
    V = np.zeros(R.shape[0])
    deltas = []
    for _ in range(max_sweeps):
        Q = bellman_backup(P, R, done, V, gamma)  # (S, A)
        V_new = Q.max(axis=1)
        deltas.append(float(np.abs(V_new - V).max()))
        V = V_new
        if deltas[-1] < theta:
            Q = bellman_backup(P, R, done, V, gamma)
            return DPResult(V, Q, Q.argmax(axis=1), deltas)
    raise RuntimeError(f"value_iteration did not converge in {max_sweeps} sweeps (gamma={gamma})")


def policy_iteration(model, gamma: float = 0.99, theta: float = 1e-8, max_iterations: int = 1000) -> DPResult:
    """Policy iteration (Sutton & Barto 2018, Section 4.3): evaluate, improve greedily, until stable."""
    check_float("gamma", gamma, "[0, 1]")
    P, R, done = _arrays(model)
    policy = np.zeros(R.shape[0], dtype=int)
    deltas = []
    for _ in range(max_iterations):
        V = policy_evaluation(model, policy, gamma, theta)
        Q = bellman_backup(P, R, done, V, gamma)
        # keep the current action on ties so the loop cannot cycle between equally good actions
        best = Q.max(axis=1)
        keep = np.isclose(Q[np.arange(len(policy)), policy], best, rtol=0, atol=1e-10)
        new_policy = np.where(keep, policy, Q.argmax(axis=1))
        deltas.append(float((new_policy != policy).sum()))
        if keep.all():
            return DPResult(V, Q, policy, deltas)
        policy = new_policy
    raise RuntimeError(f"policy_iteration did not stabilise in {max_iterations} iterations")
