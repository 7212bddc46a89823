"""RLHF-PPO's checkpoints on the tiny model in fp32: N steps, a resume and N more equal 2N straight; periodic saves,
Ctrl-C, and the refusals (another config, another reference, another frozen model)."""

from __future__ import annotations

import os
import random
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch

from course_lib.llm.models import tiny_model
from course_lib.llm.ppo import RLHF_PRESETS, rlhf_ppo
from course_lib.llm.rollout import PolicyWithValue
from course_lib.rl import DivergenceError
from course_lib.utils.checkpoint import load_checkpoint, save_checkpoint
from conftest import lowercase_share

# 3 prompts, 2 per step: the order list carries a leftover prompt across steps, and step 2 (the first resumed one)
# takes its prompts from the list without drawing a new permutation
PROMPTS = ["The robot", "The cat", "Cheese is"]
N = 2
CONFIG = replace(RLHF_PRESETS["ci"], steps=2 * N, batch_size=2, num_minibatches=2, max_new_tokens=5,
                 divergence_kl=1.0)  # the guard on, as in the cpu presets: its window is state too


def fresh_policy(tok, seed: int = 0) -> PolicyWithValue:
    """The starting model, as a new process would load it (its value head from whatever torch's RNG holds)."""
    return PolicyWithValue(tiny_model(seed=seed, tokenizer=tok)[0])


@pytest.fixture(scope="module")
def tok(tokenizer):
    return tokenizer


class InterruptAt:
    """A reward function that presses Ctrl-C (SIGINT to this process) while scoring step ``step``."""

    def __init__(self, step: int):
        self.step, self.calls = step, 0

    def __call__(self, prompts, texts):
        if self.calls == self.step:
            os.kill(os.getpid(), signal.SIGINT)
        self.calls += 1
        return lowercase_share(prompts, texts)


@pytest.fixture(scope="module")
def straight(tok):
    """2N steps in one call, no checkpoint: (policy, result)."""
    policy = fresh_policy(tok)
    return policy, rlhf_ppo(policy, tok, PROMPTS, lowercase_share, CONFIG, seed=3, progress=False)


@pytest.fixture(scope="module")
def interrupted(tok, tmp_path_factory):
    """2N steps meant, Ctrl-C while step N-1 is scored: the step finishes, N steps are saved, KeyboardInterrupt."""
    path = tmp_path_factory.mktemp("rlhf") / "run.pt"
    policy = fresh_policy(tok)
    with pytest.raises(KeyboardInterrupt):
        rlhf_ppo(policy, tok, PROMPTS, InterruptAt(N - 1), CONFIG, seed=3, progress=False, checkpoint=path)
    return path, policy


def test_n_steps_interrupted_then_resumed_equal_2n_straight(tok, straight, interrupted):
    path, _ = interrupted
    state = load_checkpoint(path, "rlhf_ppo")
    assert state["step"] == N
    assert [where for where, _ in state["divergence_recent"]] == [f"step {s}" for s in range(N)]
    # a new process: other random states, a new policy object of the same starting model
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    policy = fresh_policy(tok)
    result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, CONFIG, seed=3, progress=False, resume=path)
    straight_policy, straight_result = straight
    for (name, p), q in zip(straight_policy.named_parameters(), policy.parameters()):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=0, msg=name)
    assert result.samples == straight_result.samples
    # the resumed run logs steps N+1..2N, with the straight run's values
    history = straight_result.logger.history["rlhf/reward"]
    assert result.logger.history["rlhf/reward"] == history[N:]
    assert [s for s, _ in history] == list(range(1, 2 * N + 1))
    # the resumed reference is the starting model, not the policy it was handed
    start = fresh_policy(tok).lm.state_dict()
    assert all(torch.equal(v, start[k]) for k, v in result.reference.state_dict().items())


def test_checkpoints_are_written_every_k_steps_and_at_the_end(tok, tmp_path):
    path = tmp_path / "run.pt"
    seen = []

    def reward_fn(prompts, texts):  # what the file holds while each step is scored
        seen.append(load_checkpoint(path, "rlhf_ppo")["step"] if path.exists() else None)
        return lowercase_share(prompts, texts)

    config = replace(CONFIG, steps=3, update_epochs=1)
    rlhf_ppo(fresh_policy(tok), tok, PROMPTS, reward_fn, config, progress=False, checkpoint=path, checkpoint_every=2)
    assert seen == [None, None, 2]
    assert load_checkpoint(path, "rlhf_ppo")["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left behind


def test_bad_checkpoint_arguments_are_named(tok, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every: .*checkpoint"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, CONFIG, progress=False, checkpoint_every=1)
    with pytest.raises(ValueError, match="checkpoint_every: expected an int >= 1, got 0"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, CONFIG, progress=False,
                 checkpoint=tmp_path / "run.pt", checkpoint_every=0)
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint at"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, CONFIG, progress=False, resume=tmp_path / "no.pt")


def test_a_resume_with_another_config_is_refused_naming_the_field(tok, interrupted):
    path, _ = interrupted
    with pytest.raises(ValueError, match=r"config: expected the configuration saved in .*, got changes in \['kl_coef'\]"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, replace(CONFIG, kl_coef=0.1), progress=False,
                 resume=path)


def test_a_resume_with_another_reference_is_refused(tok, interrupted):
    path, trained = interrupted
    # the policy this run already trained would be copied as the reference: refused, saying what to pass
    with pytest.raises(ValueError, match="reference: .*differs from the run's reference.*fresh"):
        rlhf_ppo(trained, tok, PROMPTS, lowercase_share, CONFIG, progress=False, resume=path)
    with pytest.raises(ValueError, match="reference: .*differs from the run's reference"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, CONFIG, progress=False, resume=path,
                 reference=fresh_policy(tok, seed=1).lm)


def test_a_resume_with_another_frozen_model_is_refused(tok, tmp_path):
    path = tmp_path / "run.pt"
    config = replace(CONFIG, steps=1, update_epochs=1, trainable="top:1")
    rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, config, progress=False, checkpoint=path)
    other = fresh_policy(tok, seed=1)  # the right reference, but another model below the top layer
    with pytest.raises(ValueError, match="policy: its frozen parameters differ from the run's"):
        rlhf_ppo(other, tok, PROMPTS, lowercase_share, config, progress=False, resume=path,
                 reference=fresh_policy(tok).lm)


def test_the_divergence_window_carries_over_a_resume(tok, interrupted, tmp_path):
    path, _ = interrupted
    state = load_checkpoint(path, "rlhf_ppo")
    state["divergence_recent"] = [("step 0", 100.0), ("step 1", 100.0)]  # as if the saved updates had jumped
    save_checkpoint(state, tmp_path / "jumpy.pt", "rlhf_ppo")
    with pytest.raises(DivergenceError, match="step 0: 100; step 1: 100; step 2"):
        rlhf_ppo(fresh_policy(tok), tok, PROMPTS, lowercase_share, CONFIG, progress=False, resume=tmp_path / "jumpy.pt")


def test_a_finished_run_resumed_trains_nothing_more(tok, interrupted, tmp_path):
    path, _ = interrupted
    state = load_checkpoint(path, "rlhf_ppo")
    config = replace(CONFIG, steps=N)
    state["config"]["steps"] = N
    save_checkpoint(state, tmp_path / "done.pt", "rlhf_ppo")
    policy = fresh_policy(tok)
    result = rlhf_ppo(policy, tok, PROMPTS, lowercase_share, config, progress=False, resume=tmp_path / "done.pt")
    assert result.logger.history == {}
    for name, saved in state["trainable"].items():
        assert torch.equal(dict(policy.named_parameters())[name], saved)
