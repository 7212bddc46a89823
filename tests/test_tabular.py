"""Dynamic programming and the tabular learners, against independent references."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import course_lib.envs  # noqa: F401
from course_lib.envs import LAYOUTS, MazeRobotEnv
from course_lib.tabular.dp import bellman_backup, policy_evaluation, policy_iteration, value_iteration
from course_lib.tabular.td import (
    TD_PRESETS,
    TDConfig,
    double_q_learning,
    double_q_target,
    dyna_q,
    expected_sarsa,
    expected_sarsa_target,
    greedy_path,
    mc_control,
    q_learning,
    q_learning_target,
    sarsa,
    sarsa_target,
)
from test_maze import bfs_steps


def linear_solve(model, policy, gamma):
    """Independent reference: V^pi solves (I - gamma P_pi) V = R_pi over the non-terminal, non-wall states."""
    P, R, done = model.arrays()
    S = model.n_states
    live = np.array([s not in model.terminal_states and s not in model.wall_states for s in range(S)])
    P_pi = np.stack([P[s, policy[s]] * ~done[s, policy[s]] for s in range(S)])  # (S, S') without terminal mass
    R_pi = R[np.arange(S), policy]
    idx = np.flatnonzero(live)
    A = np.eye(len(idx)) - gamma * P_pi[np.ix_(idx, idx)]
    V = np.zeros(S)
    V[idx] = np.linalg.solve(A, R_pi[idx])
    return V


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_value_iteration_matches_the_linear_bellman_system(layout, slip):
    model = MazeRobotEnv(layout, slip=slip).model
    vi = value_iteration(model, gamma=0.95, theta=1e-10)
    np.testing.assert_allclose(vi.V, linear_solve(model, vi.policy, 0.95), atol=1e-6)
    pi = policy_iteration(model, gamma=0.95, theta=1e-10)
    np.testing.assert_allclose(pi.V, vi.V, atol=1e-6)
    np.testing.assert_allclose(policy_evaluation(model, vi.policy, 0.95, theta=1e-12), vi.V, atol=1e-6)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_value_iteration_policy_takes_the_shortest_path(layout):
    env = gym.make("course/MazeRobot-v0", layout=layout)
    vi = value_iteration(env.unwrapped.model, gamma=0.99)
    assert len(greedy_path(env, vi.Q)) - 1 == bfs_steps(LAYOUTS[layout])


def test_bellman_backup_does_not_bootstrap_from_terminal_transitions():
    env = MazeRobotEnv("small")
    P, R, done = env.model.arrays()
    cheese = next(iter(env.model.terminal_states))
    V = np.zeros(env.model.n_states)
    V[cheese] = 1000.0  # a terminal state's value must never leak into a backup
    Q = bellman_backup(P, R, done, V, 0.9)
    r, c = env.cell_of(cheese)
    above = env.state_of(r - 1, c)
    assert Q[above, 2] == 10.0  # moving down onto the cheese: reward only


def test_dp_input_validation():
    with pytest.raises(ValueError, match=r"gamma: expected a float in \[0, 1\], got 1.5"):
        value_iteration(MazeRobotEnv("small").model, gamma=1.5)
    with pytest.raises(ValueError, match="policy: expected shape"):
        policy_evaluation(MazeRobotEnv("small").model, np.zeros(3, dtype=int))


def with_reward(model, state, action, reward):
    """``model`` with the reward of every outcome of (state, action) replaced."""
    transitions = [list(row) for row in model.transitions]
    transitions[state][action] = tuple(t._replace(reward=reward) for t in transitions[state][action])
    return model._replace(transitions=tuple(tuple(row) for row in transitions))


@pytest.mark.parametrize("solver", [value_iteration, policy_iteration])
def test_dp_rejects_a_nan_reward_up_front_naming_state_and_action(solver):
    model = with_reward(MazeRobotEnv("small").model, 8, 2, float("nan"))
    with pytest.raises(ValueError, match=r"model: expected finite rewards R\(s, a\), got nan at state 8, action 2"):
        solver(model, max_sweeps=10) if solver is value_iteration else solver(model, max_iterations=10)


def test_greedy_path_rejects_a_q_table_of_the_wrong_shape():
    env = gym.make("course/MazeRobot-v0")  # small maze: 6 x 7 = 42 states, 4 actions
    for shape in [(42, 1), (100, 4), (4, 42)]:
        message = rf"Q: expected shape \(S, A\) = \(42, 4\).*got \({shape[0]}, {shape[1]}\)"
        with pytest.raises(ValueError, match=message):
            greedy_path(env, np.zeros(shape))


def test_targets():
    q = np.array([1.0, 3.0, -2.0])
    assert q_learning_target(1.0, q, 0.5, terminated=False) == 2.5
    assert q_learning_target(1.0, q, 0.5, terminated=True) == 1.0
    assert sarsa_target(1.0, -2.0, 0.5, terminated=False) == 0.0
    assert sarsa_target(1.0, -2.0, 0.5, terminated=True) == 1.0
    probs = np.array([0.25, 0.5, 0.25])
    assert expected_sarsa_target(0.0, q, probs, 1.0, False) == pytest.approx(0.25 + 1.5 - 0.5)
    assert double_q_target(0.0, q, np.array([10.0, 20.0, 30.0]), 1.0, False) == 20.0  # Q1 picks, Q2 values
    assert double_q_target(5.0, q, q, 1.0, True) == 5.0


@pytest.mark.parametrize(
    "field, value, message",
    [("method", "td0", "method: expected one of"), ("episodes", 0, "episodes: expected an int >= 1, got 0"),
     ("alpha", 0.0, r"alpha: expected a float in \(0, 1\], got 0.0"),
     ("gamma", -0.1, r"gamma: expected a float in \[0, 1\], got -0.1"),
     ("epsilon", 2.0, r"epsilon: expected a float in \[0, 1\], got 2.0"),
     ("epsilon", True, r"epsilon: expected a float in \[0, 1\], got True"),
     ("planning_steps", -1, "planning_steps: expected an int >= 0, got -1")],
)
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        TDConfig(**{field: value})


@pytest.mark.parametrize("env_id, preset", [("course/MazeRobot-v0", "small_maze"), ("course/CliffMaze-v0", "cliff")])
def test_q_learning_matches_value_iteration(env_id, preset):
    env = gym.make(env_id)
    config = TD_PRESETS[preset]
    Q, history = q_learning(env, config, seed=0)
    vi = value_iteration(env.unwrapped.model, gamma=config.gamma)
    path = greedy_path(env, Q)
    assert len(path) - 1 == len(greedy_path(env, vi.Q)) - 1  # the optimal number of steps
    for s in path[:-1]:  # Q of the optimal action along the optimal path, within 5% of Q*
        a = int(np.argmax(Q[s]))
        assert abs(Q[s, a] - vi.Q[s, a]) <= 0.05 * max(abs(vi.Q[s, a]), 1.0), (s, Q[s, a], vi.Q[s, a])
    assert len(history.returns) == config.episodes


def test_sarsa_keeps_away_from_the_cliff_and_q_learning_runs_along_it():
    env = gym.make("course/CliffMaze-v0")
    cliff_row = 4
    for seed in range(3):
        Qq, _ = q_learning(env, TD_PRESETS["cliff"], seed=seed)
        Qs, _ = sarsa(env, TD_PRESETS["cliff"], seed=seed)
        rows_q = [env.unwrapped.cell_of(s)[0] for s in greedy_path(env, Qq)]
        rows_s = [env.unwrapped.cell_of(s)[0] for s in greedy_path(env, Qs)]
        # Q-learning: straight along the row next to the cliff; SARSA: at least two rows away in the middle
        assert rows_q[1:-1] == [cliff_row - 1] * (len(rows_q) - 2), rows_q
        assert min(rows_s[3:-3]) <= cliff_row - 2 and max(rows_s[3:-3]) <= cliff_row - 2, rows_s
        assert len(rows_s) > len(rows_q)


def test_double_q_reduces_maximisation_bias():
    """Share of 'left' from A in the first 300 episodes, over 20 seeds (Sutton & Barto Figure 6.5)."""
    env = gym.make("course/MaxBias-v0")
    config = TD_PRESETS["max_bias"]
    left_q = np.mean([np.mean(np.array(q_learning(env, config, s)[1].first_actions) == 0) for s in range(20)])
    left_dq = np.mean([np.mean(np.array(double_q_learning(env, config, s)[1].first_actions) == 0)
                       for s in range(20)])
    assert left_dq < left_q - 0.1, (left_q, left_dq)
    assert left_dq < 0.2 < left_q


def test_dyna_q_needs_fewer_real_episodes_than_q_learning():
    env = gym.make("course/LargeMaze-v0")
    config = TD_PRESETS["dyna_large"]
    optimal = bfs_steps(LAYOUTS["large"])
    for seed in range(5):
        Qd, hd = dyna_q(env, config, seed=seed)
        Qq, hq = q_learning(env, replace(config, planning_steps=0), seed=seed)
        assert len(greedy_path(env, Qd)) - 1 == optimal  # Dyna-Q has found the shortest path
        assert len(greedy_path(env, Qq)) - 1 != optimal  # Q-learning, same real experience, has not
        assert sum(hd.lengths) < sum(hq.lengths)


def test_expected_sarsa_and_monte_carlo_learn_the_small_maze():
    env = gym.make("course/MazeRobot-v0")
    optimal = bfs_steps(LAYOUTS["small"])
    Q, _ = expected_sarsa(env, TD_PRESETS["small_maze"], seed=0)
    assert len(greedy_path(env, Q)) - 1 == optimal
    Q, h = mc_control(env, replace(TD_PRESETS["small_maze"], episodes=1000, alpha=0.1), seed=0)
    assert len(greedy_path(env, Q)) - 1 == optimal
    assert np.mean(h.returns[-100:]) > np.mean(h.returns[:100])


def test_truncation_bootstraps_but_termination_does_not():
    """With a 1-step time limit every episode is truncated, and Q-learning must still bootstrap.

    From the start, 'up' bumps into the wall and stays: Q(s0, up) = -1 + 0.5 * max_a Q(s0, a).
    'right' reaches a cell whose values stay 0: Q(s0, right) = -1. So the fixed point is
    Q(s0, up) = -1 + 0.5 * (-1) = -1.5; a learner that stopped bootstrapping on truncation gives -1.
    """
    env = gym.make("course/MazeRobot-v0", max_episode_steps=1)
    Q, _ = q_learning(env, TDConfig(episodes=200, alpha=1.0, gamma=0.5, epsilon=1.0), seed=0)
    s0 = env.unwrapped.start_state
    assert Q[s0, 1] == -1.0
    assert Q[s0, 0] == pytest.approx(-1.5)
    # and on termination: the step onto the cheese is worth its reward alone, whatever gamma
    env = gym.make("course/MazeRobot-v0")
    Q, _ = q_learning(env, TDConfig(episodes=300, alpha=1.0, gamma=0.5, epsilon=0.3), seed=0)
    cheese = next(iter(env.unwrapped.model.terminal_states))
    r, c = env.unwrapped.cell_of(cheese)
    assert Q[env.unwrapped.state_of(r - 1, c), 2] == 10.0


def test_dyna_planning_needs_a_model():
    from course_lib.tabular.td import dyna_planning

    Q = np.zeros((2, 2))
    dyna_planning(Q, {}, 0, 0.5, 0.9, np.random.default_rng(0))  # nothing to do is fine
    with pytest.raises(ValueError, match="model: expected at least one remembered"):
        dyna_planning(Q, {}, 3, 0.5, 0.9, np.random.default_rng(0))
