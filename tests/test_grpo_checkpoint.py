"""GRPO's checkpoints on the tiny model: a resumed run equals a straight one (the reference, the prompt order, the
sampling, Adam and the divergence guard's window carry over), periodic saves, Ctrl-C saves the finished step, and a
resume with another config, other prompts or another model is refused."""

from __future__ import annotations

import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from course_lib.llm.grpo import GRPO_PRESETS, grpo
from course_lib.llm.models import tiny_model
from course_lib.rl import DivergenceError
from course_lib.utils.checkpoint import load_checkpoint, save_checkpoint
from conftest import assert_same_parameters, lowercase_share, saved_step

# 3 prompts, 2 per step: a shuffled pass ends in the middle of a step, so the leftover order must carry over.
# Two updates per batch and a KL to the reference: old log-probs, the reference and the guard all take part.
PROMPTS = ["The robot", "The cat", "Cheese is"]
CONFIG = replace(GRPO_PRESETS["ci"], steps=6, prompts_per_step=2, group_size=4, max_new_tokens=4,
                 learning_rate=1e-2, update_epochs=2, kl_coef=0.05, divergence_kl=5.0)


def fresh(tokenizer):
    return tiny_model(seed=0, tokenizer=tokenizer)[0]


class Reward:
    """lowercase_share, calling ``at_step(step)`` (0, 1, ...) first: the reward program runs in the middle of a step."""

    def __init__(self, at_step):
        self.at_step, self.step = at_step, 0

    def __call__(self, prompts, texts):
        self.at_step(self.step)
        self.step += 1
        return lowercase_share(prompts, texts)


@pytest.fixture(scope="module")
def straight(tokenizer):
    lm = fresh(tokenizer)
    result = grpo(lm, tokenizer, PROMPTS, lowercase_share, CONFIG, seed=3, progress=False)
    return lm, result


def test_ctrl_c_saves_the_finished_step_and_resuming_equals_the_straight_run(tmp_path, tokenizer, straight, capsys):
    """N = 3 steps, Ctrl-C in the reward program of step 3, then a resume into a freshly loaded model for 3 more:
    the same parameters and the same metrics as 6 steps straight."""
    path = tmp_path / "run.pt"

    def ctrl_c(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does; the step goes on to its end

    with pytest.raises(KeyboardInterrupt, match=r"interrupted after 3 of 6 steps.*resume="):
        grpo(fresh(tokenizer), tokenizer, PROMPTS, Reward(ctrl_c), CONFIG, seed=3, checkpoint=path, progress=False)
    assert "finishing the current update" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert saved_step(path, "grpo") == 3
    lm = fresh(tokenizer)
    resumed = grpo(lm, tokenizer, PROMPTS, lowercase_share, CONFIG, seed=99, resume=path, progress=False)
    assert_same_parameters(lm, straight[0])
    assert_same_parameters(resumed.reference, fresh(tokenizer))  # the starting model, not the trained one
    for name in straight[1].logger.names():
        np.testing.assert_allclose(resumed.logger.as_arrays(name)[1], straight[1].logger.as_arrays(name)[1],
                                   rtol=0, atol=1e-6, err_msg=name)
    assert resumed.samples == straight[1].samples
    assert (resumed.stopped_early, resumed.skipped_updates) == (straight[1].stopped_early, straight[1].skipped_updates)


def test_checkpoint_every_k_steps_and_the_end_of_the_call(tmp_path, tokenizer, straight):
    path, seen = tmp_path / "run.pt", []
    lm = fresh(tokenizer)  # the reward program runs before its step's save: it sees the file as it was before
    grpo(lm, tokenizer, PROMPTS, Reward(lambda step: seen.append(saved_step(path, "grpo"))), CONFIG, seed=3,
         checkpoint=path, checkpoint_every=2, progress=False)
    assert seen == [None, None, 2, 2, 4, 4] and saved_step(path, "grpo") == 6
    assert_same_parameters(lm, straight[0])  # saving changes no number
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left


def test_the_divergence_guards_window_carries_over(tmp_path, tokenizer):
    path = tmp_path / "run.pt"
    config = replace(CONFIG, steps=4)
    grpo(fresh(tokenizer), tokenizer, PROMPTS, lowercase_share, config, seed=3, checkpoint=path,
         checkpoint_every=3, progress=False)
    state = load_checkpoint(path, "grpo")
    assert state["step"] == 4 and [where for where, _ in state["guard"]] == ["step 1", "step 2", "step 3"]
    # a window of two huge updates before the save: the first resumed step must see them and stop the run
    state["step"], state["guard"] = 2, [("step 0", 30.0), ("step 1", 30.0)]
    save_checkpoint(state, path, "grpo")
    with pytest.raises(DivergenceError, match=r"step 0: 30; step 1: 30; step 2: "):
        grpo(fresh(tokenizer), tokenizer, PROMPTS, lowercase_share, config, resume=path, progress=False)


def test_a_resume_with_another_config_prompts_or_model_is_refused(tmp_path, tokenizer):
    path = tmp_path / "run.pt"
    config = replace(CONFIG, steps=1)
    trained = fresh(tokenizer)
    grpo(trained, tokenizer, PROMPTS, lowercase_share, config, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match=r"config: expected the configuration saved in .*changes in \['kl_coef'\]"):
        grpo(fresh(tokenizer), tokenizer, PROMPTS, lowercase_share, replace(config, kl_coef=0.1), resume=path,
             progress=False)
    with pytest.raises(ValueError, match="prompts: expected the 3 prompts, in the same order, that the run saved in"):
        grpo(fresh(tokenizer), tokenizer, PROMPTS[::-1], lowercase_share, config, resume=path, progress=False)
    with pytest.raises(ValueError, match="lm: expected the starting model the run saved in .* load it again"):  # the trained one
        grpo(trained, tokenizer, PROMPTS, lowercase_share, config, resume=path, progress=False)


def test_checkpoint_every_needs_checkpoint_and_a_positive_int(tmp_path, tokenizer):
    lm = fresh(tokenizer)
    with pytest.raises(ValueError, match="checkpoint_every: .*without checkpoint"):
        grpo(lm, tokenizer, PROMPTS, lowercase_share, CONFIG, checkpoint_every=1, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every: expected an int >= 1, got 0"):
        grpo(lm, tokenizer, PROMPTS, lowercase_share, CONFIG, checkpoint=tmp_path / "run.pt", checkpoint_every=0,
             progress=False)
    with pytest.raises(ValueError, match="checkpoint: expected a file path"):
        grpo(lm, tokenizer, PROMPTS, lowercase_share, CONFIG, checkpoint=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
