"""Profiles, device and dtype choice, seeding, widgets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from course_lib.utils import by_profile, get_profile, pick_device, pick_dtype, set_seed
from course_lib.utils.widgets import Question, multiple_choice


@pytest.mark.parametrize("name", ["ci", "cpu", "gpu"])
def test_profile_from_env(monkeypatch, name):
    monkeypatch.setenv("COURSE_PROFILE", name)
    assert get_profile().name == name
    assert by_profile(ci=1, cpu=2, gpu=3) == {"ci": 1, "cpu": 2, "gpu": 3}[name]


def test_gpu_value_defaults_to_cpu_value(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    assert by_profile(ci=1, cpu=2) == 2


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_bad_profile_names_variable_and_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match=r"COURSE_PROFILE must be one of \['ci', 'cpu', 'gpu'\], got 'laptop'"):
        get_profile()


def test_pick_device_and_dtype_on_this_machine():
    dev = pick_device()
    if not torch.cuda.is_available():
        assert dev.type in ("cpu", "mps")
        assert pick_dtype(dev) == torch.float32
        with pytest.raises(ValueError, match="device: .*got 'cuda'"):
            pick_device("cuda")
    assert pick_dtype(dev, "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype: .*got 'int8'"):
        pick_dtype(dev, "int8")


def test_set_seed_reproduces_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    set_seed(123)
    first = draw()
    set_seed(123)
    assert draw() == first
    set_seed(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed: expected an int"):
        set_seed(bad)


def test_question_feedback_and_widget():
    q = Question("pick b", ["a", "b"], answer=1, explanation="b is right.")
    assert q.feedback(1) == (True, "Correct. b is right.")
    ok, text = q.feedback(0)
    assert not ok and "'a' is not it" in text
    assert q.feedback(None)[0] is False
    box = multiple_choice(q)
    radio, button, feedback = box.children[1:]
    radio.value = "b"
    button.click()
    assert "Correct" in feedback.value
    with pytest.raises(ValueError, match=r"answer: expected an index in \[0, 1\], got 2"):
        Question("?", ["a", "b"], answer=2, explanation="")
