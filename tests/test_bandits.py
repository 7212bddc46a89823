"""Lesson 2: the cat-feeder bandit env, the bandit math, the agents and the regret comparison."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from course_lib.envs.bandit import CatFeederBandit
from course_lib.tabular.bandits import (
    BANDIT_PRESETS,
    BanditConfig,
    EpsilonGreedyAgent,
    GreedyAgent,
    ThompsonAgent,
    UCB1Agent,
    compare_agents,
    epsilon_greedy_action,
    incremental_mean,
    make_agent,
    run_bandit,
    ucb_scores,
)

# ---------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("payout", ["bernoulli", "gaussian"])
def test_env_passes_gymnasium_checker_without_warnings(payout):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make("course/CatFeeder-v0", payout=payout)  # the registered id
        check_env(env.unwrapped)
        env.close()


def _pulls(env: CatFeederBandit, seed: int, actions: list[int]) -> list[float]:
    env.reset(seed=seed)
    return [env.step(a)[1] for a in actions]


@pytest.mark.parametrize("payout", ["bernoulli", "gaussian"])
def test_same_seed_same_problem_and_rewards_different_seed_different_means(payout):
    actions = [0, 3, 3, 9, 1, 5] * 5
    a, b = CatFeederBandit(payout=payout), CatFeederBandit(payout=payout)
    assert _pulls(a, 7, actions) == _pulls(b, 7, actions)
    np.testing.assert_array_equal(a.means, b.means)
    assert a.best_mean == b.means.max()
    means_7 = a.means.copy()
    a.reset(seed=8)
    assert not np.allclose(a.means, means_7)


def test_means_are_drawn_from_the_right_distribution_and_kept_without_a_seed():
    bern = CatFeederBandit(k=2000, payout="bernoulli")
    bern.reset(seed=0)
    assert bern.means.min() >= 0.0 and bern.means.max() <= 1.0
    assert abs(bern.means.mean() - 0.5) < 0.03  # U(0, 1): mean 1/2, std 0.29/sqrt(2000) = 0.0065
    gauss = CatFeederBandit(k=2000, payout="gaussian")
    gauss.reset(seed=0)
    assert abs(gauss.means.mean()) < 0.1 and abs(gauss.means.std() - 1.0) < 0.1  # N(0, 1)
    first = gauss.means.copy()
    gauss.reset()  # no seed: the same levers
    np.testing.assert_array_equal(gauss.means, first)


def test_fixed_means_are_used_and_hidden_from_the_observation():
    env = CatFeederBandit(k=3, means=[0.2, 0.9, 0.5])
    obs, info = env.reset(seed=123)
    assert obs == 0 and info == {}
    np.testing.assert_array_equal(env.means, [0.2, 0.9, 0.5])
    assert env.best_mean == 0.9
    obs, _, _, _, info = env.step(0)
    assert obs == 0
    assert info == {"regret": pytest.approx(0.7), "optimal": False}
    assert env.step(1)[4] == {"regret": 0.0, "optimal": True}
    with pytest.raises(ValueError):  # read-only: a student cannot change the truth by accident
        env.means[0] = 1.0


def test_truncates_after_steps_pulls_and_never_terminates():
    env = CatFeederBandit(k=4, steps=5)
    env.reset(seed=0)
    flags = [env.step(1)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


@pytest.mark.parametrize("payout, tol", [("bernoulli", 0.03), ("gaussian", 0.07)])
def test_empirical_mean_reward_per_arm_matches_the_true_means(payout, tol):
    means = [0.05, 0.3, 0.5, 0.7, 0.95]
    n = 5000  # standard error <= 0.5/sqrt(n) = 0.007 (bernoulli), 1/sqrt(n) = 0.014 (gaussian)
    env = CatFeederBandit(k=5, payout=payout, means=means, steps=n * 5)
    env.reset(seed=1)
    empirical = [np.mean([env.step(a)[1] for _ in range(n)]) for a in range(5)]
    np.testing.assert_allclose(empirical, means, atol=tol)  # ~4-5 standard errors


def test_step_before_reset_and_bad_action():
    env = CatFeederBandit(k=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action: expected an int in \[0, 2\], got 3"):
        env.step(3)


# ---------------------------------------------------------------------------
# The math
# ---------------------------------------------------------------------------


def test_epsilon_zero_is_argmax_with_ties_broken_over_all_tied_arms():
    rng = np.random.default_rng(0)
    assert all(epsilon_greedy_action(np.array([0.1, 0.9, 0.3]), 0.0, rng) == 1 for _ in range(50))
    q = np.array([0.1, 0.5, 0.5, 0.2, 0.5])
    picks = np.array([epsilon_greedy_action(q, 0.0, rng) for _ in range(3000)])
    counts = np.bincount(picks, minlength=5)
    assert counts[[0, 3]].sum() == 0
    np.testing.assert_allclose(counts[[1, 2, 4]] / 3000, 1 / 3, atol=0.04)  # std 0.009


def test_epsilon_one_is_uniform_chi_square():
    rng = np.random.default_rng(1)
    q = np.array([5.0, 0.0, 0.0, 0.0, 0.0])  # the greedy arm gets no extra weight
    n = 10_000
    observed = np.bincount([epsilon_greedy_action(q, 1.0, rng) for _ in range(n)], minlength=5)
    expected = n / 5
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 18.47, observed  # chi-square, 4 degrees of freedom: P(chi2 > 18.47) = 0.001


def test_ucb_scores_hand_computed_and_inf_for_unpulled_arms():
    q = np.array([0.5, 0.2, 0.0])
    counts = np.array([2, 8, 0])
    # t = 10, c = 2: ln 10 = 2.302585; 0.5 + 2 sqrt(2.302585 / 2) = 2.645966; 0.2 + 2 sqrt(2.302585 / 8) = 1.272983
    scores = ucb_scores(q, counts, 10, 2.0)
    np.testing.assert_allclose(scores[:2], [2.645966, 1.272983], atol=1e-6)
    assert scores[2] == np.inf
    np.testing.assert_array_equal(ucb_scores(q, np.array([1, 1, 1]), 1, 2.0), q)  # ln 1 = 0: no bonus yet
    np.testing.assert_array_equal(ucb_scores(q, counts, 10, 0.0)[:2], q[:2])


def test_incremental_mean_equals_np_mean():
    rewards = np.random.default_rng(2).normal(3.0, 2.0, size=200)
    q = 0.0
    for n, r in enumerate(rewards, start=1):
        q = incremental_mean(q, n, r)
    assert q == pytest.approx(np.mean(rewards), rel=1e-12)


# ---------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent", [GreedyAgent(4), EpsilonGreedyAgent(4, 0.1), UCB1Agent(4, 1.0), ThompsonAgent(4, "bernoulli")]
)
def test_agents_keep_sample_means_and_counts(agent):
    pulls = [(0, 1.0), (2, 0.0), (0, 0.0), (0, 1.0), (3, 1.0)]
    for a, r in pulls:
        agent.update(a, r)
    np.testing.assert_array_equal(agent.counts, [3, 0, 1, 1])
    np.testing.assert_allclose(agent.q, [2 / 3, 0.0, 0.0, 1.0])
    assert 0 <= agent.select(np.random.default_rng(0)) < 4


def test_greedy_exploits_and_ucb_tries_every_arm_once_first():
    rng = np.random.default_rng(0)
    greedy = GreedyAgent(3)
    greedy.update(1, 1.0)
    assert {greedy.select(rng) for _ in range(20)} == {1}
    ucb = UCB1Agent(5, 2.0)
    first = []
    for _ in range(5):
        a = ucb.select(rng)
        first.append(a)
        ucb.update(a, 0.5)
    assert sorted(first) == [0, 1, 2, 3, 4]


def test_thompson_posteriors_are_the_conjugate_updates():
    bern = ThompsonAgent(3, "bernoulli")
    for a, r in [(0, 1.0), (0, 1.0), (0, 0.0), (2, 0.0)]:
        bern.update(a, r)
    alpha, beta = bern.posterior()
    np.testing.assert_allclose(alpha, [1 + 2, 1, 1 + 0])  # Beta(1 + successes, 1 + failures)
    np.testing.assert_allclose(beta, [1 + 1, 1, 1 + 1])

    gauss = ThompsonAgent(2, "gaussian")
    rewards = [0.4, 1.2, 2.0]
    for r in rewards:
        gauss.update(1, r)
    mean, std = gauss.posterior()
    # prior N(0, 1), unit-variance likelihood: precision 1 + n, mean sum(r) / (1 + n)
    np.testing.assert_allclose(mean, [0.0, sum(rewards) / 4])
    np.testing.assert_allclose(std, [1.0, 0.5])


# ---------------------------------------------------------------------------
# The loop and the comparison
# ---------------------------------------------------------------------------


def test_run_bandit_records_a_consistent_reproducible_history():
    config = BanditConfig("epsilon-greedy", epsilon=0.1, steps=250)
    h = run_bandit(CatFeederBandit(k=5, steps=100), config, seed=3, progress=False)  # runs past the env's limit
    assert h.rewards.shape == h.actions.shape == h.regret.shape == h.optimal.shape == (250,)
    assert h.optimal.dtype == bool and h.actions.dtype == np.int64
    np.testing.assert_allclose(h.regret, h.means.max() - h.means[h.actions])
    np.testing.assert_array_equal(h.optimal, h.means[h.actions] == h.means.max())
    np.testing.assert_allclose(h.cumulative_regret, np.cumsum(h.regret))
    assert set(np.unique(h.rewards)) <= {0.0, 1.0}
    again = run_bandit(CatFeederBandit(k=5, steps=100), config, seed=3, progress=False)
    np.testing.assert_array_equal(again.actions, h.actions)
    np.testing.assert_array_equal(again.rewards, h.rewards)


def test_compare_agents_shapes_and_same_problem_per_seed():
    configs = {"eps": BanditConfig("epsilon-greedy", steps=50), "ts": BanditConfig("thompson", steps=30)}
    curves = compare_agents(lambda: CatFeederBandit(k=4), configs, seeds=[0, 1, 2], progress=False)
    assert curves["eps"].shape == (3, 50) and curves["ts"].shape == (3, 30)
    assert np.all(np.diff(curves["eps"], axis=1) >= 0)  # cumulative regret never decreases

    source = np.random.default_rng(0)  # a factory that ignores the seed: a different problem every call

    def bad_factory():
        return CatFeederBandit(k=4, means=source.uniform(size=4))

    with pytest.raises(ValueError, match="env_factory: expected the same true means for seed 0"):
        compare_agents(bad_factory, configs, seeds=[0], progress=False)


def test_presets_name_the_four_agents():
    for name, lineup in BANDIT_PRESETS.items():
        assert {c.agent for c in lineup.values()} == {"greedy", "epsilon-greedy", "ucb1", "thompson"}, name
    assert all(c.steps == 1000 for c in BANDIT_PRESETS["lesson2"].values())


def test_acceptance_ucb1_and_thompson_beat_epsilon_greedy_and_greedy():
    """Default bandit (bernoulli, k=10, 1,000 pulls), 20 seeds: mean final cumulative regret."""
    configs = {
        "greedy": BanditConfig("greedy"),
        "epsilon-greedy": BanditConfig("epsilon-greedy", epsilon=0.1),
        "ucb1": BanditConfig("ucb1"),
        "thompson": BanditConfig("thompson"),
    }
    curves = compare_agents(CatFeederBandit, configs, seeds=range(20), progress=False)
    final = {name: c[:, -1].mean() for name, c in curves.items()}
    assert all(c.shape == (20, 1000) for c in curves.values())
    assert final["ucb1"] < final["epsilon-greedy"], final
    assert final["thompson"] < final["epsilon-greedy"], final
    assert final["ucb1"] < final["greedy"], final


# ---------------------------------------------------------------------------
# Validation: every message names the argument and the bad value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 1}, r"k: expected an int >= 2, got 1"),
        ({"k": 2.5}, r"k: expected an int >= 2, got 2.5"),
        ({"payout": "poisson"}, r"payout: expected one of \['bernoulli', 'gaussian'\], got 'poisson'"),
        ({"k": 3, "means": [0.1, 0.2]}, r"means: expected a sequence of k=3 numbers .*got shape \(2,\)"),
        ({"k": 2, "means": [0.1, 1.5]}, r"means: expected probabilities in \[0, 1\] .*got \[0.1, 1.5\]"),
        ({"k": 2, "payout": "gaussian", "means": [0.0, np.nan]}, r"means: expected finite numbers, got \[0.0, nan\]"),
        ({"steps": 0}, r"steps: expected an int >= 1, got 0"),
    ],
)
def test_env_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CatFeederBandit(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"agent": "softmax"}, r"agent: expected one of \['greedy', 'epsilon-greedy', 'ucb1', 'thompson'\], got 'softmax'"),
        ({"epsilon": 1.5}, r"epsilon: expected a float in \[0, 1\], got 1.5"),
        ({"epsilon": -0.1}, r"epsilon: expected a float in \[0, 1\], got -0.1"),
        ({"epsilon": True}, r"epsilon: expected a float in \[0, 1\], got True"),
        ({"c": -1.0}, r"c: expected a float in \[0, inf\), got -1.0"),
        ({"c": math.inf}, r"c: expected a float in \[0, inf\), got inf"),
        ({"steps": 0}, r"steps: expected an int >= 1, got 0"),
        ({"steps": 10.0}, r"steps: expected an int >= 1, got 10.0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BanditConfig(**kwargs)


def test_function_and_agent_validation():
    rng = np.random.default_rng(0)
    q = np.zeros(3)
    cases = [
        (lambda: epsilon_greedy_action(q, 1.5, rng), r"epsilon: expected a float in \[0, 1\], got 1.5"),
        (lambda: epsilon_greedy_action(np.zeros((2, 2)), 0.1, rng), r"q: expected a 1-D array .*got shape \(2, 2\)"),
        (lambda: ucb_scores(q, np.zeros(2), 1, 1.0), r"counts: expected shape \(3,\) \(q.shape\), got \(2,\)"),
        (lambda: ucb_scores(q, np.array([1, -1, 0]), 1, 1.0), r"counts: expected non-negative counts, got \[1, -1, 0\]"),
        (lambda: ucb_scores(q, np.zeros(3), 0, 1.0), r"t: expected an int >= 1, got 0"),
        (lambda: ucb_scores(q, np.zeros(3), 1, -2.0), r"c: expected a float in \[0, inf\), got -2.0"),
        (lambda: incremental_mean(0.0, 0, 1.0), r"n: expected an int >= 1, got 0"),
        (lambda: GreedyAgent(1), r"k: expected an int >= 2, got 1"),
        (lambda: EpsilonGreedyAgent(3, 2.0), r"epsilon: expected a float in \[0, 1\], got 2.0"),
        (lambda: UCB1Agent(3, math.inf), r"c: expected a float in \[0, inf\), got inf"),
        (lambda: ThompsonAgent(3, "poisson"), r"payout: expected one of \['bernoulli', 'gaussian'\], got 'poisson'"),
        (lambda: GreedyAgent(3).update(3, 1.0), r"action: expected an int in \[0, 2\], got 3"),
        (lambda: GreedyAgent(3).update(0, math.nan), r"reward: expected a finite float, got nan"),
        (lambda: ThompsonAgent(3).update(0, 2.0),
         r"reward: expected a float in \[0, 1\] \(payout='bernoulli'\), got 2.0"),
        (lambda: ThompsonAgent(3).update(0, "1"), r"reward: expected a float in \[0, 1\] \(payout='bernoulli'\), got '1'"),
        (lambda: make_agent({"agent": "ucb1"}, 3), r"config: expected a BanditConfig, got dict"),
        (lambda: run_bandit(CatFeederBandit(), BanditConfig(), seed=-1), r"seed: expected an int >= 0, got -1"),
        (lambda: compare_agents(CatFeederBandit, {"g": BanditConfig()}, seeds=[]), r"seeds: expected at least one seed, got \[\]"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_part_one_modules_do_not_import_torch():
    code = "import sys, course_lib.envs.bandit, course_lib.tabular.bandits; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
