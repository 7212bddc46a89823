"""Checks for lesson 1's exercises: the discounted return and one episode of the agent-environment loop."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

import course_lib.envs  # noqa: F401  (registers the course/... ids)
from course_lib.checks.core import Case, CheckResult, Exercise, compare_answers
from course_lib.envs.loop import discounted_return, run_episode
from course_lib.tabular.dp import value_iteration

# ---- discounted_return ---------------------------------------------------------------

_RAISES = "raises ValueError naming gamma"


def _outcome(fn: Callable) -> Callable:
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
            return _RAISES if "gamma" in str(exc) else f"raises ValueError without the word gamma: {exc}"

    return call


def discounted_return_cases() -> list[Case]:
    """Seeded cases for :func:`discounted_return`; each probes one property."""
    rng = np.random.default_rng(1)
    long_rewards = rng.normal(0.0, 1.0, size=50)  # (50,) float array
    to_cheese = [-1.0] * 6 + [10.0]
    return [
        Case(([-1.0, -1.0, 10.0], 0.9), {}, "three rewards, gamma 0.9: -1 - 0.9 + 0.81 * 10 = 6.2",
             "G_0 = r_1 + gamma r_2 + gamma^2 r_3: the first reward is not discounted (gamma^0 = 1)."),
        Case((to_cheese, 0.9), {}, "the shortest path to the cheese: six steps of -1, then +10",
             "sum gamma^t * rewards[t] for t = 0, ..., T-1."),
        Case((to_cheese, 1.0), {}, "gamma = 1: the plain sum of the rewards",
             "with gamma = 1 every gamma^t is 1, so G_0 is the sum of the rewards."),
        Case(([3.0, -5.0, 7.0], 0.0), {}, "gamma = 0: only the first reward counts",
             "with gamma = 0, G_0 = r_1 (0 ** 0 is 1 in Python and numpy)."),
        Case(([], 0.9), {}, "an empty episode",
             "no rewards: the return is 0.0 (start from G = 0.0 and add nothing)."),
        Case(([2.5], 0.5), {}, "a single reward",
             "one reward r_1 is not discounted: G_0 = r_1."),
        Case((long_rewards, 0.99), {}, "50 random rewards as a numpy array, gamma 0.99",
             "rewards may be a (T,) numpy array; return one Python float."),
        Case(([1.0, 2.0], 1.5), {}, "gamma = 1.5 is not a discount factor",
             "check gamma first: raise ValueError(f'gamma: expected a float in [0, 1], got {gamma!r}')."),
        Case(([1.0, 2.0], -0.1), {}, "gamma = -0.1 is not a discount factor",
             "a negative gamma is invalid too: raise a ValueError whose message names gamma."),
    ]


def discounted_return_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`discounted_return`: other rewards, lengths and discounts than the notebook's."""
    rng = np.random.default_rng(101)
    seeded = rng.normal(0.0, 2.0, size=20)  # (20,) float array
    six = [float(r) for r in rng.normal(1.0, 3.0, size=6)]
    return [
        Case((seeded, 0.95), {}, "20 seeded rewards as a numpy array, gamma 0.95",
             "sum gamma^t * rewards[t] for t = 0, ..., T-1; return one Python float."),
        Case(([0.0, 0.0, 0.0, 8.0], 0.5), {}, "a sparse reward at the end: 8 * 0.5^3 = 1.0",
             "the reward of step t is discounted by gamma^t, the first one by gamma^0 = 1."),
        Case((six, 0.0), {}, "gamma 0 on six seeded rewards: only the first one counts",
             "with gamma = 0 every later reward is multiplied by 0: G_0 = r_1."),
        Case(([1.0, 1.0], 1.01), {}, "gamma = 1.01, just above 1, is rejected",
             "gamma must lie in [0, 1]: raise a ValueError whose message names gamma."),
    ]


def check_discounted_return(fn) -> CheckResult:
    """Check a student's ``discounted_return(rewards, gamma) -> float``."""
    __tracebackhide__ = True
    return EXERCISES["discounted_return"].check(fn)


# ---- run_episode ---------------------------------------------------------------------


class _EnvSpec:
    """Makes a fresh env per call, so the student and the reference never share one."""

    def __init__(self, env_id: str, slip: float = 0.0):
        self.env_id, self.slip = env_id, slip

    def make(self):
        return gym.make(self.env_id, slip=self.slip)

    def __repr__(self) -> str:
        return f"gym.make({self.env_id!r}, slip={self.slip})"


class _PolicySpec:
    """Makes a fresh policy per call (a random policy gets a freshly seeded generator)."""

    def __init__(self, name: str, factory: Callable[[], Callable[[int], int]]):
        self.name, self.factory = name, factory

    def make(self) -> Callable[[int], int]:
        return self.factory()

    def __repr__(self) -> str:
        return f"policy {self.name!r}"


def _always(action: int, name: str) -> _PolicySpec:
    return _PolicySpec(name, lambda: (lambda s: action))


def _shortest_path(env_id: str) -> _PolicySpec:
    pi = value_iteration(gym.make(env_id).unwrapped.model).policy  # (S,) greedy actions, no slip

    return _PolicySpec("shortest path", lambda: (lambda s: int(pi[s])))


def _table(env_id: str, seed: int) -> _PolicySpec:
    table = np.random.default_rng(seed).integers(0, 4, size=gym.make(env_id).observation_space.n)  # (S,)
    return _PolicySpec(f"fixed random table {seed}", lambda: (lambda s: int(table[s])))


def _random(seed: int) -> _PolicySpec:
    def factory():
        rng = np.random.default_rng(seed)
        return lambda s: int(rng.integers(4))

    return _PolicySpec(f"uniform random, rng seed {seed}", factory)


def _on_fresh_env(fn: Callable) -> Callable:
    def call(env_spec: _EnvSpec, policy_spec: _PolicySpec, **kwargs):
        __tracebackhide__ = True
        return fn(env_spec.make(), policy_spec.make(), **kwargs)

    return call


def run_episode_cases() -> list[Case]:
    """Cases for :func:`run_episode`; slippery floors (slip > 0) make the seed matter."""
    maze, cliff, large = "course/MazeRobot-v0", "course/CliffMaze-v0", "course/LargeMaze-v0"
    return [
        Case((_EnvSpec(maze), _shortest_path(maze)), {"seed": 0}, "the shortest path reaches the cheese in 7 steps",
             "states holds T + 1 entries (the start and the state after every step, the cheese cell included); "
             "actions and rewards hold T; rewards[t] is the reward that step t returned."),
        Case((_EnvSpec(maze), _always(1, "always right")), {"seed": 0},
             "always right bumps into a wall until the 100-step time limit",
             "stop when terminated OR truncated: the registered time limit returns truncated=True at step 100."),
        Case((_EnvSpec(maze, 0.2), _shortest_path(maze)), {"seed": 3}, "slip 0.2: the robot sometimes slides sideways",
             "pass the seed on: env.reset(seed=seed); the same seed then replays the same slips."),
        Case((_EnvSpec(maze, 0.2), _random(6)), {"seed": 6}, "a uniform random agent on a slippery floor finds the cheese",
             "call policy(state) exactly once per step, with the latest observation, and reset only once."),
        Case((_EnvSpec(maze, 0.2), _table(maze, 5)), {"seed": 5}, "a fixed random table that never finds the cheese",
             "an episode that never reaches the cheese ends by truncation: terminated=False, truncated=True."),
        Case((_EnvSpec(maze), _always(1, "always right")), {"seed": 0, "max_steps": 5},
             "max_steps=5 stops the episode before the env's time limit",
             "stop after max_steps steps at the latest; stopping there is a truncation, so return truncated=True."),
        Case((_EnvSpec(cliff, 0.1), _always(1, "always right")), {"seed": 2},
             "the cliff, slip 0.1: many falls (-100, back to the start) before a slip gets the robot past",
             "record exactly the reward that env.step returned, as a float."),
        Case((_EnvSpec(large, 0.1), _random(9)), {"seed": 9}, "the large maze: a random agent ends in the trap",
             "a trap terminates the episode too (terminated=True) with reward -10."),
    ]


def run_episode_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`run_episode`: other mazes, slips, seeds and step limits than the notebook's."""
    maze, cliff, large = "course/MazeRobot-v0", "course/CliffMaze-v0", "course/LargeMaze-v0"
    return [
        Case((_EnvSpec(cliff), _shortest_path(cliff)), {"seed": 4},
             "the cliff maze without slip: the shortest path reaches the goal",
             "record T + 1 states, T actions and T rewards; the last step terminates (terminated=True)."),
        Case((_EnvSpec(large, 0.2), _random(42)), {"seed": 42, "max_steps": 30},
             "the large maze, slip 0.2: a random agent cut off by max_steps=30",
             "pass the seed to env.reset and stop after max_steps steps at the latest (truncated=True)."),
        Case((_EnvSpec(maze, 0.3), _table(maze, 17)), {"seed": 11}, "slip 0.3 with fixed random table 17",
             "call policy(state) once per step with the latest observation; record exactly what env.step returned."),
        Case((_EnvSpec(maze, 0.2), _shortest_path(maze)), {"seed": 8, "max_steps": 1},
             "max_steps=1: a single step, then stop",
             "with max_steps=1 the episode has 2 states, 1 action and 1 reward, and counts as truncated."),
    ]


def check_run_episode(fn) -> CheckResult:
    """Check a student's ``run_episode(env, policy, seed=None, max_steps=1000) -> Episode``."""
    __tracebackhide__ = True
    return EXERCISES["run_episode"].check(fn)


# ---- the exercises, for the notebook checks and the grader -----------------------------

# ---- graded concept checks ---------------------------------------------------------------

ROBOT_STORY_LABELS = ("agent", "environment", "state", "action", "reward", "policy")


def robot_story() -> dict:
    """The right mapping of the maze robot's story to RL terms (the answer to the graded concept check)."""
    return {
        "the robot": "agent",
        "the maze, its walls and the cheese": "environment",
        "the robot's current cell": "state",
        "moving up, down, left or right": "action",
        "+10 for the cheese, -1 per step": "reward",
        "the robot's rule for choosing its next move": "policy",
    }


def cat_statement() -> str:
    """The letter of the statement that relates agent, action and reward correctly in the cat story."""
    return "C"


def _robot_case() -> list[Case]:
    return [Case((), {}, "your answers", "re-read the robot story in lesson 1; each term is used exactly once.")]


def _cat_case() -> list[Case]:
    return [Case((), {}, "your answer", "who decides, what is decided, and what comes back after the decision?")]


EXERCISES = {
    "robot_story": Exercise("robot_story", robot_story, _robot_case, list, kind="answer", comparer=compare_answers),
    "cat_statement": Exercise("cat_statement", cat_statement, _cat_case, list, kind="answer", comparer=compare_answers),
    "discounted_return": Exercise("discounted_return", discounted_return, discounted_return_cases,
                                  discounted_return_hidden_cases, adapt=_outcome),
    "run_episode": Exercise("run_episode", run_episode, run_episode_cases, run_episode_hidden_cases,
                            adapt=_on_fresh_env, names=("states", "actions", "rewards", "terminated", "truncated")),
}


def check_robot_story(answers) -> CheckResult:
    """Check the robot story's mapping to RL terms; names wrong items without revealing the right terms."""
    __tracebackhide__ = True
    return EXERCISES["robot_story"].check(answers)


def check_cat_statement(letter) -> CheckResult:
    """Check the letter chosen for the cat story."""
    __tracebackhide__ = True
    return EXERCISES["cat_statement"].check(letter)
