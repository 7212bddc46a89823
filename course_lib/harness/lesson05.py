"""How lesson 5's checks call a student's function: ``dyna_planning`` on a copy of Q with a freshly seeded
generator (it updates in place), and ``dyna_q_agent`` on a fresh maze env that a :class:`Maze` describes."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from course_lib.envs.maze import MazeRobotEnv


def q_after_planning(fn: Callable) -> Callable:
    """Call ``fn`` on a copy of Q with a fresh ``default_rng(seed)``; return the updated copy."""

    def run(Q, model, n, alpha, gamma, seed):
        Q = Q.copy()  # the student and the reference each get their own copy and their own generator
        returned = fn(Q, dict(model), n, alpha, gamma, np.random.default_rng(seed))
        if returned is not None and returned is not Q:
            raise TypeError(f"dyna_planning should update Q in place and return None; "
                            f"it returned a value of type {type(returned).__name__}")
        return Q

    return run


class Maze:
    """Makes a fresh maze env per call: a registered id or a layout, slip, and a time limit."""

    def __init__(self, layout: str | tuple[str, ...], slip: float = 0.0, limit: int = 100, name: str = ""):
        self.layout, self.slip, self.limit, self.name = layout, slip, limit, name

    def make(self):
        return gym.wrappers.TimeLimit(MazeRobotEnv(list(self.layout) if isinstance(self.layout, tuple) else self.layout,
                                                   slip=self.slip), max_episode_steps=self.limit)

    def __repr__(self) -> str:
        where = self.name or repr(self.layout)
        return f"maze {where}, slip {self.slip}, time limit {self.limit} steps"


def fresh_env(fn: Callable) -> Callable:
    """Call ``fn(env, config, seed)`` on the env the case's :class:`Maze` makes; episode lengths as a list of ints."""

    def call(maze: Maze, config, seed: int):
        __tracebackhide__ = True
        out = fn(maze.make(), config, seed)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], (list, tuple, np.ndarray)):
            return out[0], [int(n) for n in out[1]]
        return out

    return call
