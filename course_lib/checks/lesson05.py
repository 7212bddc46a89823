"""Checks for lesson 5's exercises: Dyna-Q's planning step, then the whole Dyna-Q agent built around it.

``dyna_planning`` changes its first argument in place and returns None, so its
check hands the student's function and the reference each their own copy of
Q (and their own identically seeded generator) and compares what the copy
holds afterwards. ``dyna_q_agent`` is a whole algorithm: each case makes a
fresh environment and runs the student's agent and the library's ``dyna_q``
with the same seed and hyper-parameters; with the random draws the exercise
prescribes, the two Q tables and episode lengths agree exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import course_lib.envs  # noqa: F401  (registers the course/... ids)
from course_lib.checks.core import Case, Exercise, check_functions
from course_lib.harness.lesson05 import Maze, fresh_env, q_after_planning
from course_lib.tabular.td import TDConfig, dyna_planning, dyna_q

BUILDS = ("dyna_q",)
"""The library's ``dyna_q`` is what ``dyna_q_agent`` asks for: lesson 5 must not print it."""


# ---- seeded inputs ---------------------------------------------------------------------


def _random_model(seed: int, n_states: int, n_actions: int, size: int, p_terminal: float = 0.0) -> dict:
    """``size`` remembered pairs ``(s, a) -> (r, s2, terminated)`` with plain Python types, in a seeded order."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_states * n_actions, size=size, replace=False)
    model = {}
    for p in pairs:
        s, a = divmod(int(p), n_actions)
        terminated = bool(rng.random() < p_terminal)
        r = float(rng.choice([10.0, -10.0])) if terminated else -1.0
        model[(s, a)] = (r, int(rng.integers(n_states)), terminated)
    return model


def _random_q(seed: int, n_states: int, n_actions: int, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, size=(n_states, n_actions))


# ---- dyna_planning ---------------------------------------------------------------------


def _corridor() -> dict:
    """0 -> 1 -> 2 -> 3 (cheese): three remembered steps of a corridor, inserted in walking order."""
    return {(0, 1): (-1.0, 1, False), (1, 1): (-1.0, 2, False), (2, 1): (10.0, 3, True)}


def dyna_planning_cases() -> list[Case]:
    """Seeded cases for ``dyna_planning``; each probes one property."""
    sample_hint = ("list the remembered pairs in the dict's own order once; each step draws ONE integer index "
                   "below their number from rng, and nothing else draws from rng.")
    target_hint = ("the one-step Q-learning target of the remembered outcome (the reward alone when it ended the "
                   "episode), then move Q of the pair a fraction alpha towards it.")
    return [
        Case((_random_q(0, 6, 4), _random_model(0, 6, 4, 5), 1, 0.5, 0.9), {"seed": 0},
             "one planning step, only non-terminal transitions in the model",
             target_hint + " " + sample_hint),
        Case((_random_q(1, 6, 4), _random_model(1, 6, 4, 5), 0, 0.5, 0.9), {"seed": 1},
             "n = 0 planning steps: Q must not change", "loop exactly n times."),
        Case((_random_q(2, 8, 4, scale=20.0), _random_model(2, 8, 4, 6, p_terminal=1.0), 5, 0.5, 0.9), {"seed": 2},
             "every remembered transition ends the episode: the target is r alone",
             "when the stored terminated flag is True do not bootstrap: the target is the reward alone."),
        Case((_random_q(3, 10, 4), _random_model(3, 10, 4, 3), 20, 0.5, 0.9), {"seed": 3},
             "the model knows only 3 of the 40 (s, a) pairs",
             "plan only from pairs the model remembers: " + sample_hint),
        Case((np.zeros((4, 4)), _corridor(), 50, 0.5, 0.9), {"seed": 4},
             "a corridor 0 -> 1 -> 2 -> cheese: 50 steps carry the reward back",
             "update Q in place, one sample after the other, so later steps see earlier updates."),
        Case((_random_q(5, 12, 4), _random_model(5, 12, 4, 20, p_terminal=0.2), 30, 0.1, 0.95), {"seed": 5},
             "30 steps from a mixed model, alpha 0.1",
             "move the pair's value only a fraction alpha of the way to the target."),
        Case((_random_q(6, 5, 4), _random_model(6, 5, 4, 8, p_terminal=0.25), 10, 1.0, 1.0), {"seed": 6},
             "alpha = 1 and gamma = 1: Q[s, a] becomes the target itself",
             target_hint),
    ]


def dyna_planning_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, table shapes and parameters than the notebook's."""
    target_hint = "the Q-learning target of the remembered outcome, reward alone when it ended the episode."
    return [
        Case((_random_q(10, 7, 3), _random_model(10, 7, 3, 6, p_terminal=0.3), 15, 0.3, 0.8), {"seed": 10},
             "15 steps on a 7 x 3 table, alpha 0.3, gamma 0.8", target_hint),
        Case((_random_q(11, 6, 4), _random_model(11, 6, 4, 6), 8, 0.5, 0.0), {"seed": 11},
             "gamma 0: planning pulls Q[s, a] toward r alone",
             "with gamma = 0 the target is the reward alone."),
        Case((_random_q(12, 5, 4), _random_model(12, 5, 4, 1), 4, 0.5, 0.9), {"seed": 12},
             "a model with a single remembered pair, 4 steps",
             "every step samples the same pair and updates it again from its new value."),
        Case((np.zeros((6, 4)), _random_model(13, 6, 4, 10, p_terminal=0.3), 40, 0.5, 0.95), {"seed": 13},
             "a zero Q table and a model with terminal rewards, 40 steps",
             "update in place, one sample after the other; no bootstrapping where the stored flag says terminated."),
    ]


# ---- dyna_q_agent: the whole algorithm --------------------------------------------------


def dyna_q_agent(env, config: TDConfig, seed: int = 0):
    """Reference: the library's Dyna-Q, as (Q (S, A), lengths: the real steps of each episode)."""
    Q, history = dyna_q(env, config, seed=seed)
    return Q, list(history.lengths)


CORRIDOR = ("#######", "#S...C#", "#######")
TRAPS = ("#######", "#T.S.C#", "#.....#", "#######")


def _config(episodes: int, n: int, alpha: float = 0.5, gamma: float = 0.95, epsilon: float = 0.1) -> TDConfig:
    return TDConfig(episodes=episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, planning_steps=n)


def dyna_q_agent_cases() -> list[Case]:
    """Cases for ``dyna_q_agent(env, config, seed) -> (Q, lengths)``; each probes one property."""
    return [
        Case((Maze(CORRIDOR, name="corridor S...C"), _config(3, 0), 0), {},
             "a corridor, no planning (n = 0): plain Q-learning",
             "with n = 0 Dyna-Q is Q-learning: one epsilon-greedy action per step, one update from the real step."),
        Case((Maze(CORRIDOR, name="corridor S...C"), _config(3, 5), 0), {},
             "the corridor with 5 planning steps per real step",
             "after the real step's update: remember its outcome, then plan. Planning draws from the same rng."),
        Case((Maze("small", name="small"), _config(8, 10), 1), {}, "the small maze, 8 episodes, n = 10",
             "draw each action with epsilon_greedy(Q[s], valid, epsilon, rng); one rng for the whole run."),
        Case((Maze(CORRIDOR, limit=3, name="corridor S...C"), _config(10, 5), 2), {},
             "a 3-step time limit in the corridor: the cheese is 4 steps away, every episode is truncated",
             "truncation ends the episode but is not termination: the real step's target still bootstraps, and "
             "the model stores the terminated flag, not the truncated one."),
        Case((Maze(TRAPS, name="trap T.S.C"), _config(10, 5, epsilon=0.3), 3), {},
             "a trap beside the start: episodes that end in the trap (-10) are terminated too",
             "a terminating real step has the reward alone as its target, whichever terminal cell it reached."),
        Case((Maze("small", slip=0.2, name="small"), _config(5, 5), 4), {},
             "slip 0.2: only the first episode's reset gets the seed",
             "reset with the seed on the first episode only; later resets get no seed, so the env's slips go on "
             "from its generator."),
    ]


def dyna_q_agent_hidden_cases() -> list[Case]:
    """Grader-only cases for ``dyna_q_agent``: other mazes, seeds and hyper-parameters than the notebook's."""
    long_corridor = ("#########", "#S......#", "#.####.C#", "#########")
    return [
        Case((Maze(long_corridor, name="long corridor"), _config(6, 8, alpha=0.3, gamma=0.9), 11), {},
             "a longer corridor, alpha 0.3, gamma 0.9, n = 8",
             "one update from the real step, then remember, then n planning updates."),
        Case((Maze("cliff", limit=60, name="cliff"), _config(4, 3, epsilon=0.2), 12), {},
             "the cliff with a 60-step time limit",
             "falling off the cliff is not terminal; a time limit is not terminal either."),
        Case((Maze(TRAPS, limit=8, name="trap T.S.C"), _config(12, 2, gamma=1.0, epsilon=0.5), 13), {},
             "the trap maze, 8-step limit, gamma 1, epsilon 0.5",
             "bootstrap on truncation, not on termination; count the real steps of each episode."),
    ]


HINTS = {
    "dyna_planning": (
        "Sample from what the model remembers, nothing else: make a list of its keys (the dict's insertion "
        "order) once, then each of the n steps draws one integer index below the list's length with the "
        "generator's integer method: that is the only draw. Read the remembered (reward, next state, "
        "terminated) of the pair and apply the Q-learning update to it, in place. Worked example: corridor "
        "model {(2, 1): (10, 3, True), ...}, alpha 0.5, Q[2, 1] = 0: one planning step on that pair gives "
        "target 10 (no bootstrap, the move ended the episode) and Q[2, 1] = 5; a second gives 7.5. Traps: "
        "bootstrapping from Q of the cheese state; sampling states the model has never seen; updating a copy."
    ),
    "dyna_q_agent": (
        "Per real step, four things in this order: (a) pick the action epsilon-greedily with the given "
        "helper and the run's single generator; (b) step the env and update Q of (s, a) from the real "
        "transition (target: the reward alone when terminated, else reward + gamma * the best next value; "
        "truncation does not change the target); (c) remember the outcome in the model dict, keyed by the "
        "pair; (d) call your dyna_planning with the same generator. The episode ends on terminated OR "
        "truncated; count its real steps. Create the generator once from the seed; pass the seed to reset "
        "on the first episode only. Example: in the corridor S...C with n = 0, the first episode's last "
        "real step earns +10 and its update makes that pair worth alpha * 10 = 5."
    ),
}


EXERCISES = {
    "dyna_planning": Exercise("dyna_planning", dyna_planning, dyna_planning_cases, dyna_planning_hidden_cases,
                              adapt=q_after_planning, twins=("course_lib.tabular.td.dyna_planning",)),
    "dyna_q_agent": Exercise("dyna_q_agent", dyna_q_agent, dyna_q_agent_cases, dyna_q_agent_hidden_cases,
                             adapt=fresh_env, names=("Q", "lengths"), twins=("course_lib.tabular.td.dyna_q",)),
}


__getattr__ = check_functions(EXERCISES)
