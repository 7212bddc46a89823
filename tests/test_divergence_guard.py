"""The divergence guard: a run whose updates keep moving the policy far from the data-collecting one stops with a
message that says what to change; it never looks at the KL to the reference; it can be switched off."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from conftest import lowercase_share
from course_lib.deep.ppo import PPO_PRESETS, ppo
from course_lib.llm.grpo import GRPO_PRESETS, grpo
from course_lib.llm.models import tiny_model
from course_lib.llm.ppo import RLHF_PRESETS, rlhf_ppo
from course_lib.llm.rollout import PolicyWithValue
from course_lib.rl import DivergenceError, DivergenceGuard

PROMPTS = ["The robot", "The cat", "Cheese is", "A maze"]


@pytest.mark.parametrize("kls, fires_at", [
    ([0.1, 0.1, 0.1, 0.1], None),          # healthy updates
    ([4.0], 0),                            # one collapse: 4 / 3 > 1 at once
    ([1.2, 1.2, 1.2], 2),                  # a run that keeps jumping
    ([2.0, 0.0, 0.0, 2.0, 0.0, 0.0], None),  # an isolated spike now and then: the window's mean stays at 2/3
    ([0.1, math.nan], 1),                  # NaN is beyond any bound
])
def test_the_window_mean_decides(kls, fires_at):
    guard = DivergenceGuard(1.0)
    for i, kl in enumerate(kls):
        if i == fires_at:
            with pytest.raises(DivergenceError, match=rf"over the last 3 updates .*update {i}: .*above "
                                                      r"divergence_kl=1; .*lower learning_rate.*divergence_kl=None"):
                guard.check(kl, f"update {i}")
            return
        guard.check(kl, f"update {i}")
    assert fires_at is None


def test_none_switches_it_off():
    guard = DivergenceGuard(None)
    for kl in (100.0, math.nan, 1e9):
        guard.check(kl, "update")


def test_cartpole_ppo_at_learning_rate_one_stops():
    config = replace(PPO_PRESETS["cartpole_fast"], learning_rate=1.0, anneal_lr=False)
    with pytest.raises(DivergenceError, match="update 0: "):  # the policy collapses in its first update
        ppo(config, seed=0, updates=5, progress=False, live=False)
    run = ppo(replace(config, divergence_kl=None), seed=0, updates=5, progress=False, live=False)
    assert run.updates_done == 5  # switched off, the ruined run goes on as before


@pytest.mark.parametrize("lr", [0.5, 0.9])
def test_rlhf_at_a_huge_learning_rate_stops(lr):
    lm, tok = tiny_model(seed=0)
    config = replace(RLHF_PRESETS["ci"], steps=6, learning_rate=lr, divergence_kl=1.0)  # the cpu presets' bound
    with pytest.raises(DivergenceError, match=r"step \d: "):
        rlhf_ppo(PolicyWithValue(lm), tok, PROMPTS, lowercase_share, config, progress=False)


@pytest.mark.parametrize("update_epochs", [1, 2])
@pytest.mark.parametrize("lr", [0.5, 0.9])
def test_grpo_at_a_huge_learning_rate_stops(lr, update_epochs):
    """With one update per batch the ratio is 1 during the update: the guard's KL is measured after it."""
    lm, tok = tiny_model(seed=0)
    config = replace(GRPO_PRESETS["ci"], steps=6, learning_rate=lr, update_epochs=update_epochs, divergence_kl=1.0)
    with pytest.raises(DivergenceError, match=r"step \d: "):
        grpo(lm, tok, PROMPTS, lowercase_share, config, progress=False)


def test_the_kl_to_the_reference_never_counts():
    """A reference far from the policy (about 9 nats per reply) and no KL penalty: the guard watches old -> new
    only, so a healthy run goes to the end."""
    lm, tok = tiny_model(seed=0)
    reference, _ = tiny_model(seed=1, tokenizer=tok)
    with torch.no_grad():
        reference.model.norm.weight.mul_(30)  # peaked next-token distributions: far from the policy's
    config = replace(RLHF_PRESETS["ci"], steps=4, kl_coef=0.0, divergence_kl=1.0)
    run = rlhf_ppo(PolicyWithValue(lm), tok, PROMPTS, lowercase_share, config, reference=reference, progress=False)
    kl_to_reference = run.logger.as_arrays("rlhf/kl")[1]
    assert len(kl_to_reference) == 4 and kl_to_reference.min() > 5 * config.divergence_kl
