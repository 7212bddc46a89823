"""Checks for lesson 1's exercises: the discounted return and one episode of the agent-environment loop."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

import course_lib.envs  # noqa: F401  (registers the course/... ids)
from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.envs.loop import discounted_return, run_episode
from course_lib.harness.lesson01 import EnvSpec, PolicySpec, on_fresh_env, outcome
from course_lib.tabular.dp import value_iteration

# ---- discounted_return ---------------------------------------------------------------


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


# ---- run_episode ---------------------------------------------------------------------


def _always(action: int, name: str) -> PolicySpec:
    return PolicySpec(name, "always", action)


def _shortest_path(env_id: str) -> PolicySpec:
    pi = value_iteration(gym.make(env_id).unwrapped.model).policy  # (S,) greedy actions, no slip
    return PolicySpec("shortest path", "table", pi)


def _table(env_id: str, seed: int) -> PolicySpec:
    table = np.random.default_rng(seed).integers(0, 4, size=gym.make(env_id).observation_space.n)  # (S,)
    return PolicySpec(f"fixed random table {seed}", "table", table)


def _random(seed: int) -> PolicySpec:
    return PolicySpec(f"uniform random, rng seed {seed}", "random", seed)


def run_episode_cases() -> list[Case]:
    """Cases for :func:`run_episode`; slippery floors (slip > 0) make the seed matter."""
    maze, cliff, large = "course/MazeRobot-v0", "course/CliffMaze-v0", "course/LargeMaze-v0"
    return [
        Case((EnvSpec(maze), _shortest_path(maze)), {"seed": 0}, "the shortest path reaches the cheese in 7 steps",
             "states holds T + 1 entries (the start and the state after every step, the cheese cell included); "
             "actions and rewards hold T; rewards[t] is the reward that step t returned."),
        Case((EnvSpec(maze), _always(1, "always right")), {"seed": 0},
             "always right bumps into a wall until the 100-step time limit",
             "stop when terminated OR truncated: the registered time limit returns truncated=True at step 100."),
        Case((EnvSpec(maze, 0.2), _shortest_path(maze)), {"seed": 3}, "slip 0.2: the robot sometimes slides sideways",
             "pass the seed on: env.reset(seed=seed); the same seed then replays the same slips."),
        Case((EnvSpec(maze, 0.2), _random(6)), {"seed": 6}, "a uniform random agent on a slippery floor finds the cheese",
             "call policy(state) exactly once per step, with the latest observation, and reset only once."),
        Case((EnvSpec(maze, 0.2), _table(maze, 5)), {"seed": 5}, "a fixed random table that never finds the cheese",
             "an episode that never reaches the cheese ends by truncation: terminated=False, truncated=True."),
        Case((EnvSpec(maze), _always(1, "always right")), {"seed": 0, "max_steps": 5},
             "max_steps=5 stops the episode before the env's time limit",
             "stop after max_steps steps at the latest; stopping there is a truncation, so return truncated=True."),
        Case((EnvSpec(cliff, 0.1), _always(1, "always right")), {"seed": 2},
             "the cliff, slip 0.1: many falls (-100, back to the start) before a slip gets the robot past",
             "record exactly the reward that env.step returned, as a float."),
        Case((EnvSpec(large, 0.1), _random(9)), {"seed": 9}, "the large maze: a random agent ends in the trap",
             "a trap terminates the episode too (terminated=True) with reward -10."),
        Case((EnvSpec(maze), _shortest_path(maze)), {"seed": 0, "max_steps": 7},
             "max_steps=7: the cheese is reached on the last allowed step",
             "the step that reaches the cheese terminates the episode: terminated=True and truncated=False, even "
             "when it is also the last step max_steps allows. Only a budget that runs out WITHOUT an ending is a "
             "truncation."),
    ]


def run_episode_hidden_cases() -> list[Case]:
    """Grader-only cases for :func:`run_episode`: other mazes, slips, seeds and step limits than the notebook's."""
    maze, cliff, large = "course/MazeRobot-v0", "course/CliffMaze-v0", "course/LargeMaze-v0"
    return [
        Case((EnvSpec(cliff), _shortest_path(cliff)), {"seed": 4},
             "the cliff maze without slip: the shortest path reaches the goal",
             "record T + 1 states, T actions and T rewards; the last step terminates (terminated=True)."),
        Case((EnvSpec(large, 0.2), _random(42)), {"seed": 42, "max_steps": 30},
             "the large maze, slip 0.2: a random agent cut off by max_steps=30",
             "pass the seed to env.reset and stop after max_steps steps at the latest (truncated=True)."),
        Case((EnvSpec(maze, 0.3), _table(maze, 17)), {"seed": 11}, "slip 0.3 with fixed random table 17",
             "call policy(state) once per step with the latest observation; record exactly what env.step returned."),
        Case((EnvSpec(maze, 0.2), _shortest_path(maze)), {"seed": 8, "max_steps": 1},
             "max_steps=1: a single step, then stop",
             "with max_steps=1 the episode has 2 states, 1 action and 1 reward, and counts as truncated."),
        Case((EnvSpec(cliff), _shortest_path(cliff)), {"seed": 1, "max_steps": 13},
             "the cliff without slip: the goal is reached on step 13, the last one max_steps allows",
             "reaching the goal terminates the episode (terminated=True, truncated=False), even on the last "
             "allowed step."),
    ]


# ---- graded concept checks ---------------------------------------------------------------

ROBOT_STORY_LABELS = ("agent", "environment", "state", "action", "reward", "policy")

_TERM_IS = {
    "agent": "the agent is the one that decides and learns",
    "environment": "the environment is everything the agent cannot choose: it answers each action",
    "state": "a state is a situation the agent can be in, what it observes before it acts",
    "action": "an action is one choice the agent makes at one step",
    "reward": "a reward is a number the environment sends back after a step",
    "policy": "a policy is a rule: for every situation, which choice to make",
}
_ITEM_IS = {
    "the robot": "this is the one that chooses the moves",
    "the maze, its walls and the cheese": "the robot cannot change these; they answer its moves",
    "the robot's current cell": "this changes after every move and is what the robot knows when it chooses",
    "moving up, down, left or right": "these are the choices available at each step",
    "+10 for the cheese, -1 per step": "these are numbers that come back after each move",
    "the robot's rule for choosing its next move": "this is not one move but a rule that gives a move for every cell",
}
ROBOT_FEEDBACK = {item: {term: f"{_TERM_IS[term]}, but {note}" for term in ROBOT_STORY_LABELS}
                  for item, note in _ITEM_IS.items()}
"""Per item, per wrong term: why that term does not fit (it never names the right term)."""


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


CAT_FEEDBACK = {
    "A": "the feeder box does not choose anything: it follows a fixed rule (press, then food, some of the time). "
         "And the press cannot be a reward: a reward is what comes back after a choice.",
    "B": "the cat cannot choose the food; it can only choose what it does; which of the two comes first in time, "
         "and which one is the consequence?",
    "D": "the story says the cat presses MORE often after food: something in the cat changed, not in the box. "
         "Learning from reward changes the agent's behaviour.",
}
"""Why each wrong statement of the cat story is wrong (it never names the right letter)."""


def cat_statement() -> str:
    """The letter of the statement that relates agent, action and reward correctly in the cat story."""
    return "C"


RL_LOOP_STEPS = {
    "A": "the agent's policy picks an action a_t",
    "B": "the environment returns the reward r_{t+1}, the next state s_{t+1} and the two flags",
    "C": "if terminated or truncated, the episode ends; otherwise s_{t+1} becomes the current state and the loop goes on",
    "D": "env.reset() puts the agent in a start state s_0",
    "E": "the agent learns from the transition (s_t, a_t, r_{t+1}, s_{t+1})",
    "F": "the agent observes the current state s_t",
}
"""The steps of one episode of the RL loop, in a scrambled order; the learner puts their letters in order."""

_TOO_EARLY = {
    "A": "a policy maps a state to an action: the agent must know its state before it can pick.",
    "B": "the environment answers an action: there is nothing to answer before the agent has chosen one.",
    "C": "the flags come with the environment's answer, and the agent should still learn from the last step "
         "of an episode (the cheese is the most informative step of all).",
    "D": "nothing else can happen before there is a state to start from.",
    "E": "learning needs the whole transition: the reward and the next state come from the environment's answer.",
    "F": "there must be a state to observe: where does the very first one come from?",
}


def rl_loop_order() -> list:
    """The right order of the RL loop's steps (the letters of :data:`RL_LOOP_STEPS`)."""
    return ["D", "F", "A", "B", "E", "C"]


def compare_order(expected: list, got) -> str | None:
    """Compare an ordering answer: name the first misplaced step and why it cannot come there, not the order."""
    letters = sorted(expected)
    if not isinstance(got, (list, tuple)) or not all(isinstance(x, str) for x in got):
        return f"answer: expected a list of the letters {letters} in order, got {type(got).__name__}"
    got = [x.strip().upper() for x in got]
    if sorted(got) != letters:
        return f"answer: expected each of the letters {letters} exactly once, got {got}"
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            return (f"step {i + 1} of your order is {g} ({RL_LOOP_STEPS[g]}), which cannot come there yet: "
                    f"{_TOO_EARLY[g]}" + (" The steps before it are in the right order." if i else ""))
    return None


CONCEPT_DEFINITIONS = {
    "a": "a rule that gives, in every state, an action (or a probability for each action)",
    "b": "the expected return from a state when the agent follows a given policy from there on",
    "c": "the sum of the rewards from time t on, the reward k steps ahead weighted by gamma^k",
    "d": "a number in [0, 1] that makes later rewards count less than earlier ones",
    "e": "one run from reset until the run ends",
    "f": "the run ended because the task itself ended (cheese or trap): the last state has no future",
    "g": "the run was stopped by a time limit: the last state still has a future, so learning bootstraps from it",
}
"""The definitions of the matching quiz; the learner maps each concept to a letter."""

_DEFINITION_IS = {
    "a": "a rule for acting, not a number",
    "b": "an average over many possible futures, a property of a state under a policy",
    "c": "a number computed from the rewards of one run",
    "d": "a constant you choose when you set up the problem",
    "e": "a stretch of time, not a number",
    "f": "one of the two ways a run can end",
    "g": "one of the two ways a run can end",
}
_CONCEPT_IS = {
    "return": "the return is what ONE run actually collected from time t on, discounted",
    "discount factor": "the discount factor is set before any learning and weighs rewards by their delay",
    "policy": "the policy is what the agent uses to choose",
    "value function": "a value is an expectation: it averages the returns of many runs from one state",
    "episode": "an episode is a whole run, from its start to its end",
    "terminated": "terminated means the task is over: cheese or trap, nothing more to collect",
    "truncated": "truncated means the clock stopped the run, not the task",
}
CONCEPT_FEEDBACK = {concept: {letter: f"{letter} is {kind}; {note}" for letter, kind in _DEFINITION_IS.items()}
                    for concept, note in _CONCEPT_IS.items()}


def concept_definitions() -> dict:
    """The right definition (a letter of :data:`CONCEPT_DEFINITIONS`) for each concept."""
    return {"return": "c", "discount factor": "d", "policy": "a", "value function": "b", "episode": "e",
            "terminated": "f", "truncated": "g"}


def _robot_case() -> list[Case]:
    return [Case((), {}, "your answers", "re-read the robot story in lesson 1; each term is used exactly once.")]


def _cat_case() -> list[Case]:
    return [Case((), {}, "your answer", "who decides, what is decided, and what comes back after the decision?")]


def _order_case() -> list[Case]:
    return [Case((), {}, "your order", "for each step ask: what must already exist for it to happen?")]


def _definitions_case() -> list[Case]:
    return [Case((), {}, "your answers", "first sort the concepts by kind: rules, numbers, averages, stretches of "
                 "time, ways to end; then match inside each kind.")]


HINTS = {
    "discounted_return": (
        "The reward at list index t is r_{t+1}, and it is weighted by gamma to the power t: the first reward "
        "gets gamma^0 = 1, not gamma. Worked example: rewards [-1, -1, 10] with gamma 0.9 give "
        "-1 + 0.9 * (-1) + 0.81 * 10 = 6.2. Two ways to get there: a forward sum of weighted rewards, or a "
        "backward pass where the return of a step is its reward plus gamma times the return of the next step "
        "(the return after the last step is 0). Validate gamma BEFORE computing anything, and make the "
        "ValueError's message contain the word gamma. An empty episode returns 0.0."
    ),
    "run_episode": (
        "The loop alternates two calls: the policy turns the current state into an action, the env's step "
        "turns the action into (next state, reward, terminated, truncated, info). Keep the next state: the "
        "policy's next question is about it. Book-keeping for an episode of T steps: T + 1 states (the "
        "reset's state first), T actions, T rewards. Example: the shortest path in the small maze takes 7 "
        "steps, so 8 states, 7 actions, 7 rewards, the last reward 10.0, terminated=True, truncated=False. "
        "Two traps: (1) reaching the cheese on the very last step max_steps allows is a termination, not a "
        "truncation; only running out of steps WITHOUT an ending is. (2) Pass the seed to reset only, once."
    ),
}


EXERCISES = {
    "robot_story": Exercise("robot_story", robot_story, _robot_case, list, kind="answer",
                            comparer=functools.partial(compare_answers, feedback=ROBOT_FEEDBACK),
                            explanation="the line between agent and environment is drawn at what the robot can "
                                        "choose: it picks its moves, and everything it cannot change (walls, cheese, "
                                        "where a move leads) is the environment that answers them. Its cell is the "
                                        "state it knows when it chooses, one move is an action, the +10 and -1 are "
                                        "rewards sent back after each move, and the rule giving a move for every "
                                        "cell is the policy. Keep the last pair apart: an action is one choice, a "
                                        "policy is a choice for every situation, and learning changes the policy."),
    "cat_statement": Exercise("cat_statement", cat_statement, _cat_case, list, kind="answer",
                              comparer=functools.partial(compare_answers, feedback=CAT_FEEDBACK),
                              explanation="the cat chooses (agent), pressing is what it chooses (action), and food "
                                          "is what comes back after the choice (reward). The story's last part is "
                                          "the learning: food after a press makes pressing more likely next time, so "
                                          "the reward changes the agent's behaviour while the box keeps its fixed "
                                          "rule. That is reinforcement in its original sense: an action followed by "
                                          "reward is repeated more often."),
    "rl_loop_order": Exercise("rl_loop_order", rl_loop_order, _order_case, list, kind="answer",
                              comparer=compare_order,
                              explanation="each step needs what the one before it produced: reset makes the first "
                                          "state, the agent observes it, its policy turns it into an action, the "
                                          "environment answers with the reward, the next state and the flags, and "
                                          "only then is the transition complete enough to learn from. The end test "
                                          "comes after learning, so the last step of an episode (the cheese, the "
                                          "most informative one) is learned from too; the next pass starts by "
                                          "observing s_{t+1}, with no new reset until the episode ends."),
    "concept_definitions": Exercise("concept_definitions", concept_definitions, _definitions_case, list,
                                    kind="answer", comparer=functools.partial(compare_answers,
                                                                              feedback=CONCEPT_FEEDBACK),
                                    explanation="the seven concepts are of different kinds: a policy is a rule for "
                                                "acting, the discount factor a constant chosen in advance, the "
                                                "return a number computed from the rewards of one run, the value its "
                                                "expectation over many runs from one state under one policy, and an "
                                                "episode a stretch of time from reset to its end. Terminated and "
                                                "truncated are the two ways that stretch can end, and only the first "
                                                "means the last state has no future. Keep return and value apart: "
                                                "the return is what one run collected, the value what the agent can "
                                                "expect to collect, and learning estimates the second from many of "
                                                "the first."),
    "discounted_return": Exercise("discounted_return", discounted_return, discounted_return_cases,
                                  discounted_return_hidden_cases, adapt=outcome,
                                  twins=("course_lib.envs.loop.discounted_return",)),
    "run_episode": Exercise("run_episode", run_episode, run_episode_cases, run_episode_hidden_cases,
                            adapt=on_fresh_env, names=("states", "actions", "rewards", "terminated", "truncated"),
                            twins=("course_lib.envs.loop.run_episode",)),
}


__getattr__ = check_functions(EXERCISES)
