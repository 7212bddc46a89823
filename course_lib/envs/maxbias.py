"""Sutton & Barto's maximisation-bias MDP (Example 6.7), for Double Q-learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from course_lib.utils.validation import check_int

A, B, END = 0, 1, 2
LEFT, RIGHT = 0, 1


class MaxBiasEnv(gym.Env):
    """Two non-terminal states where taking the max of noisy estimates misleads Q-learning.

    ## Description
    The episode starts in A. From A, ``right`` (action 1) ends the episode with
    reward 0; ``left`` (action 0) moves to B with reward 0. From B, every one
    of the ``n_b`` actions ends the episode with a reward drawn from
    N(-0.1, 1). Going left is worse on average (-0.1), but the maximum of
    ``n_b`` noisy estimates of Q(B, .) is positive early on, so Q-learning
    goes left far more often than an optimal agent would.

    ## Action Space
    ``Discrete(n_b)``. In A only actions 0 (left) and 1 (right) are meant:
    ``info["action_mask"]`` (int8, shape (n_b,)) marks them, and the
    course's learners choose only among marked actions. An unmarked action
    in A acts like ``right``, so the env accepts any action of its space.

    ## Observation Space
    ``Discrete(3)``: 0 = A, 1 = B, 2 = the terminal state.

    ## Rewards
    0 for every move out of A; N(-0.1, 1) for every action in B.

    ## Episode End
    Terminated after ``right`` in A or after any action in B.

    ## Arguments
    ``n_b``: number of actions in B (default 10, at least 2).

    ## References
    Sutton & Barto (2018), Example 6.7 and Figure 6.5; van Hasselt (2010), Double Q-learning.
    """

    metadata = {"render_modes": []}

    def __init__(self, n_b: int = 10):
        check_int("n_b", n_b, 2)
        self.n_b = n_b
        self.observation_space = spaces.Discrete(3)
        self.action_space = spaces.Discrete(n_b)
        self.state = A

    def action_mask(self, state: int) -> np.ndarray:
        """(n_b,) int8: 1 where the action is valid in ``state``."""
        mask = np.ones(self.n_b, dtype=np.int8)
        if state == A:
            mask[2:] = 0
        return mask

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = A
        return self.state, {"action_mask": self.action_mask(A)}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, {self.n_b - 1}], got {action!r}")
        if self.state == END:
            raise ValueError("step: the episode has ended; call reset() first")
        if self.state == A and action == LEFT:
            self.state = B
            return B, 0.0, False, False, {"action_mask": self.action_mask(B)}
        reward = 0.0 if self.state == A else float(self.np_random.normal(-0.1, 1.0))
        self.state = END
        return END, reward, True, False, {"action_mask": self.action_mask(END)}
