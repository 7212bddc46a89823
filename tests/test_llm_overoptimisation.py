"""Lesson 15's library pieces: win rate, ensemble rewards, early stopping (GoldCheck), reward-head ensembles."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from course_lib.llm.models import tiny_model
from course_lib.llm.overoptimisation import (
    GoldCheck,
    RewardEnsemble,
    early_stop_index,
    ensemble_reward,
    fit_ensemble_heads,
    win_rate,
)
from course_lib.llm.ppo import RLHF_PRESETS, rlhf_ppo
from course_lib.llm.reward_model import RewardModel, score_responses
from course_lib.llm.rollout import PolicyWithValue
from conftest import lowercase_share

PROMPTS = ["The robot", "The cat", "Cheese is", "A maze"]
STEPS = replace(RLHF_PRESETS["ci"], steps=3, batch_size=2, max_new_tokens=4, update_epochs=1, learning_rate=1e-2,
                trainable="top:1")


# ---- win_rate -----------------------------------------------------------------------------------


def test_win_rate_counts_ties_half_and_is_symmetric():
    a, b = np.array([0.0, 0.5, 0.2, 0.0]), np.array([0.0, 0.1, 0.3, 0.0])
    rate, se = win_rate(a, b)
    assert rate == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert se == pytest.approx(np.std([0.5, 1, 0, 0.5], ddof=1) / 2)
    assert win_rate(b, a)[0] == pytest.approx(1 - rate)
    assert win_rate(a, a) == (0.5, 0.0)


def test_win_rate_rejects_bad_input():
    with pytest.raises(ValueError, match="scores_a, scores_b: expected two non-empty 1-d arrays"):
        win_rate([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        win_rate([np.nan], [0.0])


# ---- ensemble_reward ------------------------------------------------------------------------------


def test_ensemble_reward_is_invariant_to_each_models_scale_and_offset():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20, 3))
    scaled = s * np.array([1.0, 10.0, 0.1]) + np.array([0.0, -5.0, 3.0])
    for how in ("mean", "min"):
        assert np.allclose(ensemble_reward(s, how), ensemble_reward(scaled, how))
    z = (s - s.mean(0)) / s.std(0)
    assert np.allclose(ensemble_reward(s, "min"), z.min(1)) and np.allclose(ensemble_reward(s, "mean"), z.mean(1))
    assert (ensemble_reward(s, "min") <= ensemble_reward(s, "mean") + 1e-12).all()


def test_ensemble_reward_uses_given_statistics_and_validates():
    s = np.array([[1.0, 2.0], [3.0, 6.0]])
    assert np.allclose(ensemble_reward(s, "mean", [1.0, 2.0], [2.0, 4.0]), [0.0, 1.0])
    with pytest.raises(ValueError, match="how: expected 'mean' or 'min', got 'max'"):
        ensemble_reward(s, "max")
    with pytest.raises(ValueError, match=r"std: expected every model's std > 0"):
        ensemble_reward(np.array([[1.0, 2.0], [1.0, 3.0]]), "mean")
    with pytest.raises(ValueError, match=r"scores: expected an \(N, K\) array"):
        ensemble_reward(np.ones(3), "mean")
    with pytest.raises(ValueError, match=r"mean, std: expected shape \(2,\)"):
        ensemble_reward(s, "mean", [0.0], [1.0])


# ---- early_stop_index -----------------------------------------------------------------------------


def test_early_stop_index_keeps_the_best_before_patience_runs_out():
    assert early_stop_index([0.1, 0.3, 0.2, 0.25, 0.4], 2) == 1
    assert early_stop_index([0.1, 0.3, 0.2, 0.25, 0.4], 3) == 4
    assert early_stop_index([0.1, 0.3, 0.3], 5) == 1
    with pytest.raises(ValueError, match="patience: expected an int >= 1, got 0"):
        early_stop_index([0.1], 0)
    with pytest.raises(ValueError, match="history: expected a non-empty"):
        early_stop_index([], 1)


# ---- GoldCheck ------------------------------------------------------------------------------------


def _trained_state(policy):
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


def test_gold_check_records_checks_keeps_the_best_state_and_restores_it():
    lm, tok = tiny_model(seed=0)
    policy = PolicyWithValue(lm)
    check = GoldCheck(policy, tok, lowercase_share, PROMPTS[:2], every=1, max_new_tokens=4, keep_all=True)
    check.check(0)
    rlhf_ppo(policy, tok, PROMPTS, lowercase_share, STEPS, seed=0, gold_fn=check, progress=False)
    assert check.steps == [0, 1, 2, 3] and len(check.scores) == 4 and sorted(check.states) == [0, 1, 2, 3]
    assert [r.shape for r in check.per_reply] == [(2,)] * 4  # one gold score per check prompt, per check
    np.testing.assert_allclose([r.mean() for r in check.per_reply], check.scores)
    final = _trained_state(policy)
    assert any(not torch.equal(final[n], check.states[1][n]) for n in final)  # training moved the parameters
    assert check.restore(1) == 1
    assert all(torch.equal(p, check.states[1][n]) for n, p in _trained_state(policy).items())
    best = check.restore()
    assert best == check.steps[int(np.argmax(check.scores))]
    assert all(torch.equal(p, check.best_state[n]) for n, p in _trained_state(policy).items())
    with pytest.raises(ValueError, match=r"step: expected a step with a kept state \[0, 1, 2, 3\]"):
        check.restore(7)


def test_gold_check_does_not_change_what_training_samples():
    """The checks sample with their own seed inside a forked RNG: training with them equals training without."""
    results = []
    for with_check in (False, True):
        lm, tok = tiny_model(seed=0)
        policy = PolicyWithValue(lm)
        gold = GoldCheck(policy, tok, lowercase_share, PROMPTS[:2], every=1, max_new_tokens=4) if with_check \
            else lowercase_share
        run = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, STEPS, seed=0, gold_fn=gold, progress=False)
        results.append(([t for _, t, _ in run.samples], _trained_state(policy)))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][n], results[1][1][n]) for n in results[0][1])


def test_gold_check_validates():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(ValueError, match="every: expected an int >= 1, got 0"):
        GoldCheck(PolicyWithValue(lm), tok, lowercase_share, PROMPTS, every=0)
    with pytest.raises(ValueError, match="check_prompts: expected a non-empty list"):
        GoldCheck(PolicyWithValue(lm), tok, lowercase_share, [])
    with pytest.raises(RuntimeError, match="no check has run yet"):
        GoldCheck(PolicyWithValue(lm), tok, lowercase_share, PROMPTS).restore()


# ---- RewardEnsemble -------------------------------------------------------------------------------


def test_reward_ensemble_starts_as_copies_of_the_head_and_refits_from_features():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(copy.deepcopy(lm)).eval()
    ens = RewardEnsemble(rm, k=3)
    replies = ["the robot finds the cheese", "no", "A cat sat", "cheese!"]
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[2]]
    single = score_responses(rm, tok, prompts, replies)  # (N,)
    scores = ens.scores(tok, prompts, replies)  # (N, K)
    assert scores.shape == (4, 3) and torch.allclose(scores, single[:, None].expand(4, 3), atol=1e-5)
    feats = ens.features(tok, prompts, replies)  # (N, H)
    assert feats.shape == (4, rm.head.in_features)
    assert torch.allclose(ens.head(feats), scores, atol=1e-5)
    chosen, rejected = feats[:2], feats[2:]
    w0 = ens.head.weight.detach().clone()
    picked = fit_ensemble_heads(ens, chosen, rejected, seed=0, iterations=20, learning_rate=1e-2)
    assert torch.equal(ens.head.weight[0], w0[0])  # head 0 kept: the original reward model
    assert not torch.equal(ens.head.weight[1], w0[1]) and not torch.equal(ens.head.weight[2], w0[2])
    assert len(picked) == 3 and list(picked[0]) == [0, 1]
    margin = lambda w: float(((chosen - rejected) @ w).mean())
    assert margin(ens.head.weight[1].detach()) > margin(w0[1])  # refitting raised the chosen-minus-rejected margin
    with pytest.raises(ValueError, match="chosen, rejected: expected two"):
        fit_ensemble_heads(ens, chosen, rejected[:1])
    with pytest.raises(ValueError, match="k: expected an int >= 1, got 0"):
        RewardEnsemble(rm, k=0)
