"""DPO's checkpoints on the tiny model: a resumed run equals a straight one, periodic saves, Ctrl-C saves the
finished step, a resume with another config, other pairs or another model is refused, and non-finite reference
log-probs are blamed on the input."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from course_lib.data.preferences import PreferencePair
from course_lib.llm.dpo import DPOConfig, reference_logps, train_dpo
from course_lib.llm.models import tiny_model
from conftest import assert_same_parameters, saved_step

# 5 pairs in batches of 2: 3 steps per epoch (the last of one pair), 2 epochs: 6 steps
CONFIG = DPOConfig(beta=0.5, epochs=2, batch_size=2, learning_rate=1e-2, weight_decay=0.01)
PAIRS = [PreferencePair(f"Story {i}:", " cheese" * (i + 1), " wall" * (3 - i % 3)) for i in range(5)]


def fresh(tokenizer):
    return tiny_model(seed=1, tokenizer=tokenizer)[0]


class AfterEachStep:
    """Calls ``fn(step)`` after every optimiser step (1, 2, ...) while active."""

    def __init__(self, fn):
        self.fn, self.step = fn, 0

    def __enter__(self):
        self.handle = register_optimizer_step_post_hook(self._hook)
        return self

    def _hook(self, optimizer, args, kwargs):
        self.step += 1
        self.fn(self.step)

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module")
def straight(tokenizer):
    model = fresh(tokenizer)
    result = train_dpo(model, tokenizer, PAIRS, CONFIG, seed=3, progress=False)
    return model, result


def test_ctrl_c_saves_the_finished_step_and_resuming_equals_the_straight_run(tmp_path, tokenizer, straight, capsys):
    """N = 3 steps (one epoch), Ctrl-C, then a resume into a freshly loaded model for 3 more: the same parameters
    (Adam's moments, the next epoch's order and the reference log-probs carry over) and the same metrics as 6
    steps straight."""
    path = tmp_path / "run.pt"

    def ctrl_c_in_step_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does; the step goes on to its end

    interrupted = pytest.raises(KeyboardInterrupt, match=r"interrupted after 3 of 6 steps.*resume=")
    with AfterEachStep(ctrl_c_in_step_3), interrupted:
        train_dpo(fresh(tokenizer), tokenizer, PAIRS, CONFIG, seed=3, checkpoint=path, progress=False)
    assert "finishing the current update" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert saved_step(path, "train_dpo") == 3
    model = fresh(tokenizer)
    resumed = train_dpo(model, tokenizer, PAIRS, CONFIG, seed=99, resume=path, progress=False)  # seed: from the file
    assert resumed.reference_seconds == 0.0 and len(resumed.step_seconds) == 3
    assert_same_parameters(model, straight[0])
    np.testing.assert_allclose(resumed.logger.as_arrays("dpo/loss")[1], straight[1].logger.as_arrays("dpo/loss")[1],
                               rtol=0, atol=1e-6)


def test_checkpoint_every_k_steps_and_a_resume_from_the_middle_of_an_epoch(tmp_path, tokenizer, straight):
    path, seen = tmp_path / "run.pt", []

    def look(step):  # after the optimiser step, before that step's save
        seen.append(saved_step(path, "train_dpo"))
        if step == 3:  # the file holds step 2: the middle of epoch 0
            shutil.copy(path, tmp_path / "step2.pt")

    model = fresh(tokenizer)
    with AfterEachStep(look):
        train_dpo(model, tokenizer, PAIRS, CONFIG, seed=3, checkpoint=path, checkpoint_every=2, progress=False)
    assert seen == [None, None, 2, 2, 4, 4] and saved_step(path, "train_dpo") == 6
    assert_same_parameters(model, straight[0])  # saving changes no number
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt", "step2.pt"]  # no temporary file left
    model = fresh(tokenizer)
    train_dpo(model, tokenizer, PAIRS, CONFIG, resume=tmp_path / "step2.pt", progress=False)
    assert_same_parameters(model, straight[0])


def test_a_resume_with_another_config_pairs_or_model_is_refused(tmp_path, tokenizer):
    path = tmp_path / "run.pt"
    trained = fresh(tokenizer)
    train_dpo(trained, tokenizer, PAIRS, replace(CONFIG, epochs=1), checkpoint=path, progress=False)
    with pytest.raises(ValueError, match=r"config: expected the configuration saved in .*changes in \['beta'\]"):
        train_dpo(fresh(tokenizer), tokenizer, PAIRS, replace(CONFIG, epochs=1, beta=0.2), resume=path,
                  progress=False)
    with pytest.raises(ValueError, match="pairs: expected the 5 pairs, in the same order, that the run saved in"):
        train_dpo(fresh(tokenizer), tokenizer, PAIRS[::-1], replace(CONFIG, epochs=1), resume=path, progress=False)
    with pytest.raises(ValueError, match="model: expected the starting model the run saved in .* load it again"):
        train_dpo(trained, tokenizer, PAIRS, replace(CONFIG, epochs=1), resume=path, progress=False)


def test_checkpoint_every_needs_checkpoint_and_a_positive_int(tmp_path, tokenizer):
    model = fresh(tokenizer)
    with pytest.raises(ValueError, match="checkpoint_every: .*without checkpoint"):
        train_dpo(model, tokenizer, PAIRS, CONFIG, checkpoint_every=1, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every: expected an int >= 1, got 0"):
        train_dpo(model, tokenizer, PAIRS, CONFIG, checkpoint=tmp_path / "run.pt", checkpoint_every=0,
                  progress=False)
    with pytest.raises(ValueError, match="checkpoint: expected a file path"):
        train_dpo(model, tokenizer, PAIRS, CONFIG, checkpoint=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_reference_log_probs_are_an_input_problem_not_a_learning_rate_one(tokenizer):
    model = fresh(tokenizer)
    ref_chosen, ref_rejected = reference_logps(model, tokenizer, PAIRS)
    ref_chosen[1], ref_rejected[3] = float("nan"), -float("inf")
    with pytest.raises(ValueError) as err:
        train_dpo(model, tokenizer, PAIRS, CONFIG, ref_logps=(ref_chosen, ref_rejected), progress=False)
    message = str(err.value)
    assert "ref_logps: the reference log-probs are not finite for 2 of 5 pairs: pairs 1 (chosen nan" in message
    assert "3 (chosen" in message and "rejected -inf" in message
    assert "not of the learning rate" in message and "lower learning_rate" not in message
    # computed in phase 0 from a broken reference: named as such
    broken = fresh(tokenizer)
    with torch.no_grad():
        broken.model.norm.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="reference: the reference log-probs are not finite for 5 of 5 pairs"):
        train_dpo(model, tokenizer, PAIRS, CONFIG, reference=broken, progress=False)
