"""How lesson 4's checks call a student's function: ``q_learning_step`` on a copy of Q (it updates in place), and
``q_learning_agent`` trained on a maze a :class:`Scenario` describes, judged by one number of its behaviour."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from course_lib.envs.maze import MazeRobotEnv


def table_after(fn: Callable) -> Callable:
    """Call ``fn`` on a copy of Q; return the updated copy (the function updates in place)."""

    def call(Q, s, a, r, s2, terminated, truncated, alpha, gamma):
        __tracebackhide__ = True
        Q = Q.copy()
        returned = fn(Q, s, a, r, s2, terminated, truncated, alpha, gamma)
        if returned is not None and returned is not Q:
            raise TypeError(f"q_learning_step should update Q in place and return None; it returned a "
                            f"{type(returned).__name__}")
        return Q

    return call


class Scenario:
    """A maze the check builds, how to train on it, and which number of the result to compare."""

    def __init__(self, name: str, layout: tuple[str, ...], measure: str, *, limit: int = 100, episodes: int = 200,
                 alpha: float = 0.5, gamma: float = 0.95, epsilon: float = 0.1, q_init: float = 0.0):
        self.name, self.layout, self.measure, self.limit = name, layout, measure, limit
        self.episodes, self.alpha, self.gamma, self.epsilon, self.q_init = episodes, alpha, gamma, epsilon, q_init

    def env(self):
        return gym.wrappers.TimeLimit(MazeRobotEnv(list(self.layout)), max_episode_steps=self.limit)

    def __repr__(self) -> str:
        return (f"maze {self.name!r} {list(self.layout)}, time limit {self.limit}, episodes={self.episodes}, "
                f"alpha={self.alpha}, gamma={self.gamma}, epsilon={self.epsilon}, q_init={self.q_init}")


def greedy_path_length(maze: MazeRobotEnv, Q: np.ndarray) -> int:
    """Steps of the greedy policy of Q (first index on ties) from the start to a terminal cell; -1 if it never gets
    there within S steps (a loop) or ends in a trap."""
    s = maze.start_state
    for step in range(1, maze.model.n_states + 1):
        t = maze.model.transitions[s][int(np.argmax(Q[s]))][0]  # deterministic: one outcome
        s = t.next_state
        if t.terminated:
            return step if maze.grid[maze.cell_of(s)] == "C" else -1
    return -1


def behaviour(fn: Callable) -> Callable:
    """Train ``fn`` on the scenario's maze with the seed; return the number the scenario measures.

    ``path``: the greedy path's length from the start (the shortest, once learned). ``terminal``: the largest
    Q of a move that enters a terminal cell (the reward alone when nothing bootstraps through the end). ``start``:
    the largest Q of the start state (with a 1-step time limit, every step is a truncation).
    """

    def call(scenario: Scenario, seed: int):
        __tracebackhide__ = True
        env = scenario.env()
        Q = fn(env, scenario.episodes, scenario.alpha, scenario.gamma, scenario.epsilon, seed=seed,
               q_init=scenario.q_init)
        maze = env.unwrapped
        shape = (maze.model.n_states, maze.model.n_actions)
        if not isinstance(Q, np.ndarray) or Q.shape != shape:
            return f"not a Q table: expected a numpy array of shape {shape}, got {type(Q).__name__}" + (
                f" of shape {Q.shape}" if isinstance(Q, np.ndarray) else "")
        if scenario.measure == "path":
            return greedy_path_length(maze, Q)
        if scenario.measure == "terminal":
            entering = [(s, a) for s in range(shape[0]) for a in range(shape[1])
                        if s not in maze.model.terminal_states and any(t.terminated for t in maze.model.transitions[s][a])]
            return round(float(max(Q[s, a] for s, a in entering)), 6)
        return round(float(Q[maze.start_state].max()), 6)

    return call
