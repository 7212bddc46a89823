"""The agent-environment loop (lesson 1): play one episode, and the discounted return of its rewards.

numpy + gymnasium only, no torch::

    import gymnasium as gym
    import course_lib.envs  # registers course/MazeRobot-v0
    from course_lib.envs.loop import discounted_return, run_episode

    env = gym.make("course/MazeRobot-v0")
    episode = run_episode(env, lambda s: 1, seed=0)     # always "right"
    discounted_return(episode.rewards, gamma=0.9)

Notation (Sutton & Barto 2018, Section 3.1): at step t the agent sees the
state s_t, picks a_t = pi(s_t), and the environment answers with the reward
r_{t+1} and the next state s_{t+1}.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

from course_lib.utils.validation import check_float, check_int


class Episode(NamedTuple):
    """One episode of the agent-environment loop, T steps long.

    ``states[t]``, ``actions[t]`` and ``rewards[t]`` are s_t, a_t and r_{t+1}:
    the reward at index t is the one that *followed* action ``actions[t]``.
    """

    states: list[int]
    """T + 1 states s_0, ..., s_T: the start state and the state after every step (the last one included)."""
    actions: list[int]
    """T actions a_0, ..., a_{T-1}."""
    rewards: list[float]
    """T rewards r_1, ..., r_T."""
    terminated: bool
    """True when the last step reached a terminal state (cheese, trap): the task itself ended."""
    truncated: bool
    """True when a time limit cut the episode short (the env's registered limit, or ``max_steps``)."""


def discounted_return(rewards: Sequence[float], gamma: float) -> float:
    """The discounted return of an episode's rewards (Sutton & Barto 2018, Eq. 3.8):

        G_0 = r_1 + gamma r_2 + gamma^2 r_3 + ... = sum_{t=0}^{T-1} gamma^t r_{t+1}

    Args:
        rewards: the T rewards r_1, ..., r_T (a list or a (T,) array); empty gives 0.0.
        gamma: discount factor in [0, 1]; 0 keeps only r_1, 1 is the plain sum.

    Returns:
        G_0 as a Python float.

    Raises:
        ValueError: ``gamma`` is not a number in [0, 1].
    """
    check_float("gamma", gamma, "[0, 1]")
    G = 0.0
    for r in reversed(list(rewards)):  # backwards: G_t = r_{t+1} + gamma * G_{t+1}, Eq. 3.9
        G = float(r) + gamma * G
    return float(G)


def run_episode(env, policy: Callable[[Any], int], seed: int | None = None, max_steps: int = 1000) -> Episode:
    """Play one episode: reset, then step with ``policy`` until terminated or truncated.

    Args:
        env: a Gymnasium env, e.g. ``gym.make("course/MazeRobot-v0")`` (its time limit truncates).
        policy: a function state -> action.
        seed: passed to ``env.reset(seed=seed)``: the same seed replays the same slips.
        max_steps: stop after this many steps at the latest (counts as a truncation).

    Returns:
        An :class:`Episode`: lists of T + 1 states (ints), T actions (ints), T rewards (floats),
        and the ``terminated``/``truncated`` flags of the last step (bools).

    Raises:
        ValueError: ``max_steps`` is not an int >= 1.
    """
    check_int("max_steps", max_steps, 1)
    obs, _info = env.reset(seed=seed)
    states, actions, rewards = [int(obs)], [], []
    terminated = truncated = False
    for _ in range(int(max_steps)):
        action = int(policy(obs))  # a_t = pi(s_t)
        obs, reward, terminated, truncated, _info = env.step(action)  # r_{t+1}, s_{t+1}
        actions.append(action)
        rewards.append(float(reward))
        states.append(int(obs))
        if terminated or truncated:
            break
    else:
        truncated = True  # our own time limit: the task did not end, we stopped it
    return Episode(states, actions, rewards, bool(terminated), bool(truncated))
