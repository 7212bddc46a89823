"""Lesson 5's checks pass the references and fail plausible wrong versions with a useful message."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from course_lib.checks import CheckFailed
from course_lib.checks.lesson05 import (
    EXERCISES,
    check_dyna_planning,
    check_dyna_q_agent,
    dyna_planning_cases,
    dyna_q_agent,
)
from course_lib.envs.maze import MazeRobotEnv
from course_lib.tabular.td import TDConfig, dyna_planning, dyna_q, epsilon_greedy

# ---- dyna_planning ---------------------------------------------------------------------


def test_dyna_planning_reference_passes(capsys):
    result = check_dyna_planning(dyna_planning)
    assert result.status == "pass" and result.passed == result.total == len(dyna_planning_cases())
    assert f"[x] dyna_planning: all {result.total} cases passed" in capsys.readouterr().out


def test_dyna_planning_cases_leave_their_inputs_alone():
    cases = dyna_planning_cases()
    before = [(c.args[0].copy(), dict(c.args[1])) for c in cases]
    check_dyna_planning(dyna_planning)
    for case, (q, model) in zip(cases, before):
        np.testing.assert_array_equal(case.args[0], q)
        assert case.args[1] == model


def _target(Q, r, s2, gamma, terminated):
    return r if terminated else r + gamma * Q[s2].max()


def choice_sampler(Q, model, n, alpha, gamma, rng):
    """A correct variant: rng.choice(len(keys)) draws the same index as rng.integers(len(keys))."""
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.choice(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] = Q[s, a] + alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])
    return Q  # returning the same array it updated is harmless


def bootstraps_on_terminal(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, _ = model[(s, a)]
        Q[s, a] += alpha * (r + gamma * Q[s2].max() - Q[s, a])


def samples_all_pairs(Q, model, n, alpha, gamma, rng):
    for _ in range(n):
        s, a = int(rng.integers(Q.shape[0])), int(rng.integers(Q.shape[1]))
        if (s, a) not in model:
            continue
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def samples_all_pairs_crashes(Q, model, n, alpha, gamma, rng):
    for _ in range(n):
        s, a = int(rng.integers(Q.shape[0])), int(rng.integers(Q.shape[1]))
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def wrong_sign(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] -= alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def forgets_alpha(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] = _target(Q, r, s2, gamma, terminated)


def forgets_gamma(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, 1.0, terminated) - Q[s, a])


def batched_targets(Q, model, n, alpha, gamma, rng):
    """All targets from the Q before planning: later samples do not see earlier updates."""
    keys = list(model)
    old = Q.copy()
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(old, r, s2, gamma, terminated) - Q[s, a])


def returns_new_table(Q, model, n, alpha, gamma, rng):
    Q = Q.copy()
    dyna_planning(Q, model, n, alpha, gamma, rng)
    return Q


def one_step_too_many(Q, model, n, alpha, gamma, rng):
    dyna_planning(Q, model, n + 1, alpha, gamma, rng)


def test_an_equivalent_sampler_passes():
    assert check_dyna_planning(choice_sampler, ).status == "pass"


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (bootstraps_on_terminal, r"case 3 of 7 \(every remembered transition ends the episode: the target is r alone"
                                 r".*first mismatch at index \[\d+, \d\]"),
        (samples_all_pairs, r"case 1 of 7 .*result: first mismatch at index \[\d, \d\]"),
        (samples_all_pairs_crashes, r"case 1 of 7 .* raised KeyError"),
        (wrong_sign, r"case 1 of 7 \(one planning step.*first mismatch at index \[\d, \d\]: expected -?\d.*, got -?\d"),
        (forgets_alpha, r"case 1 of 7 \(one planning step.*first mismatch"),
        (forgets_gamma, r"case 1 of 7 .*first mismatch"),
        (batched_targets, r"case 5 of 7 \(a corridor 0 -> 1 -> 2 -> cheese.*first mismatch"),
        (returns_new_table, r"case 1 of 7 .* raised TypeError: dyna_planning should update Q in place"),
        (one_step_too_many, r"case 1 of 7 .*first mismatch"),
    ],
)
def test_dyna_planning_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_dyna_planning(wrong)
    assert "Hint:" in str(err.value)


def test_dyna_planning_wrong_sign_names_the_update_in_its_hint():
    with pytest.raises(CheckFailed, match=r"Hint: the one-step Q-learning target of the remembered outcome"):
        check_dyna_planning(wrong_sign)


def test_dyna_planning_stub_propagates(capsys):
    def stub(Q, model, n, alpha, gamma, rng):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_dyna_planning(stub)
    assert "not implemented yet" in capsys.readouterr().out


# ---- dyna_q_agent: the whole algorithm --------------------------------------------------


def test_dyna_q_agent_reference_passes(capsys):
    result = check_dyna_q_agent(dyna_q_agent)
    assert result.status == "pass" and result.passed == result.total == 6


def _agent(*, done_in_target=False, done_in_model=False, reseed_every_episode=False, plan_before_update=False,
           new_rng_for_planning=False):
    """Dyna-Q with one switch per plausible mistake."""

    def agent(env, config, seed=0):
        rng = np.random.default_rng(seed)
        plan_rng = np.random.default_rng(seed + 1) if new_rng_for_planning else rng
        Q = np.zeros((env.observation_space.n, env.action_space.n))
        model, valid, lengths = {}, np.ones(env.action_space.n, dtype=bool), []
        for episode in range(config.episodes):
            s, _ = env.reset(seed=seed if episode == 0 or reseed_every_episode else None)
            steps, done = 0, False
            while not done:
                a = epsilon_greedy(Q[s], valid, config.epsilon, rng)
                s2, r, terminated, truncated, _ = env.step(a)
                stop = (terminated or truncated) if done_in_target else terminated
                if plan_before_update:
                    dyna_planning(Q, model, config.planning_steps if model else 0, config.alpha, config.gamma, plan_rng)
                Q[s, a] += config.alpha * (r + (0.0 if stop else config.gamma * Q[s2].max()) - Q[s, a])
                model[(s, a)] = (r, s2, (terminated or truncated) if done_in_model else terminated)
                if not plan_before_update:
                    dyna_planning(Q, model, config.planning_steps, config.alpha, config.gamma, plan_rng)
                s, steps, done = s2, steps + 1, terminated or truncated
            lengths.append(steps)
        return Q, lengths

    return agent


def test_a_correct_agent_written_out_passes():
    assert check_dyna_q_agent(_agent()).status == "pass"


@pytest.mark.parametrize("wrong, expected_message", [
    (_agent(done_in_target=True), r"case 4 of 6 \(a 3-step time limit in the corridor.*result\[0\] \(Q\)"),
    (_agent(done_in_model=True), r"case 4 of 6 \(a 3-step time limit in the corridor.*result\[0\] \(Q\)"),
    (_agent(reseed_every_episode=True), r"case 6 of 6 \(slip 0.2: only the first episode's reset gets the seed"),
    (_agent(plan_before_update=True), r"case 2 of 6 \(the corridor with 5 planning steps"),
    (_agent(new_rng_for_planning=True), r"case 2 of 6 \(the corridor with 5 planning steps"),
])
def test_dyna_q_agent_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_dyna_q_agent(wrong)
    assert "Hint:" in str(err.value)


def test_dyna_q_agent_hidden_cases_catch_truncation_as_termination():
    spec = EXERCISES["dyna_q_agent"]
    wrong, right = spec.call(_agent(done_in_target=True)), spec.call(dyna_q_agent)
    caught = [c.about for c in spec.hidden_cases()
              if spec.compare(right(*c.args, **c.kwargs), wrong(*c.args, **c.kwargs)) is not None]
    assert caught


def test_dyna_q_stop_hook_ends_the_run_without_changing_it():
    env = gym.wrappers.TimeLimit(MazeRobotEnv("small"), max_episode_steps=100)
    config = TDConfig(episodes=5, alpha=0.5, gamma=0.95, epsilon=0.1, planning_steps=5)
    Q_full, full = dyna_q(env, config, seed=3)
    Q_never, never = dyna_q(env, config, seed=3, stop=lambda Q: False)
    assert np.array_equal(Q_full, Q_never) and full.lengths == never.lengths and not never.stopped
    Q_stop, stopped = dyna_q(env, config, seed=3, stop=lambda Q: Q.max() > 0)  # the first reward reaches Q
    assert stopped.stopped and Q_stop.max() > 0 and sum(stopped.lengths) <= sum(full.lengths)
    assert len(stopped.lengths) <= len(full.lengths)
