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


def test_smooth_is_a_trailing_moving_average():
    from course_lib.utils.plotting import smooth

    np.testing.assert_allclose(smooth([0, 2, 4, 6], window=2), [0, 1, 3, 5])
    np.testing.assert_allclose(smooth([1, 2, 3], window=1), [1, 2, 3])
    with pytest.raises(ValueError, match="window: expected an int >= 1, got 0"):
        smooth([1.0], window=0)


def test_maze_plots_draw(tmp_path):
    import gymnasium as gym
    import matplotlib

    matplotlib.use("Agg")
    import course_lib.envs  # noqa: F401
    from course_lib.tabular.dp import value_iteration
    from course_lib.utils.plotting import plot_learning_curves, plot_paths, plot_regret, plot_value_heatmap

    env = gym.make("course/MazeRobot-v0").unwrapped
    vi = value_iteration(env.model)
    walls = env.grid == "#"
    fig = plot_value_heatmap(vi.V, walls, vi.policy, terminals=env.grid == "C")
    n_arrows = len([p for p in fig.axes[0].patches])
    assert n_arrows == (~walls).sum() - 1  # one arrow per open cell but the cheese
    fig = plot_paths(walls, {"a": [8, 9, 10]}, env.width)
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "a (2 steps)"
    fig = plot_learning_curves({"x": np.zeros((3, 20))}, window=5)
    assert fig.axes[0].get_lines()[0].get_ydata().shape == (20,)
    fig = plot_regret({"ucb": np.ones((4, 10)).cumsum(axis=1)})
    assert "ucb (10.0)" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_stepper_and_policy_player_widgets():
    import gymnasium as gym

    import course_lib.envs  # noqa: F401
    from course_lib.utils.widgets import env_stepper, policy_player

    env = gym.make("course/MazeRobot-v0", render_mode="rgb_array")
    box = env_stepper(env)
    first_image = box.image.value
    box.buttons[1].click()  # right
    assert "action right, reward -1, return so far -1" in box.status.value
    assert box.image.value != first_image  # the maze was redrawn with the robot moved
    box.reset_button.click()
    assert box.episode["return"] == 0.0 and box.episode["steps"] == 0
    for a in (1, 1, 2, 2, 2, 1, 1):  # no path through walls: bumps keep costing -1
        box.buttons[a].click()
    assert box.episode["steps"] == 7

    player = policy_player(gym.make("course/MazeRobot-v0", render_mode="rgb_array"), policy=lambda s: 1)
    player.next_button.click()
    assert player.episode["steps"] == 1 and "step 1: action 1" in player.status.value
    player.play_button.click()
    assert player.episode["done"]  # the time limit ends a policy that never reaches the cheese


def test_matching_quiz():
    from course_lib.utils.widgets import Matching, matching_quiz

    quiz = Matching("match", ["robot", "cheese"], ["agent", "reward"], ["agent", "reward"],
                    explanations=["It acts.", "It is the signal."])
    assert quiz.feedback(["agent", "reward"])[0] == 2
    correct, lines = quiz.feedback(["reward", None])
    assert correct == 0 and lines == ["✗ robot: not reward. It acts.", "? cheese: not answered yet"]
    box = matching_quiz(quiz)
    box.dropdowns[0].value = "agent"
    box.dropdowns[1].value = "agent"
    box.check_button.click()
    assert "1/2 correct" in box.feedback.value and "✗ cheese: not agent. It is the signal." in box.feedback.value
    with pytest.raises(ValueError, match=r"answers: expected labels from \['agent', 'reward'\], got \['cat'\]"):
        Matching("m", ["a"], ["agent", "reward"], ["cat"])


def test_default_profile_does_not_import_torch_on_a_cpu_machine():
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('COURSE_PROFILE', None);"
            "from course_lib.utils import get_profile; print(get_profile().name, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "cpu" and not torch.cuda.is_available():
        assert out[1] == "False"


def test_course_device_is_named_when_it_cannot_be_used(monkeypatch):
    import torch

    from course_lib.deep.ppo import PPOConfig, ppo
    from course_lib.llm.models import tiny_model
    from course_lib.utils.device import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: COURSE_DEVICE=cuda is valid here")
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    message = r"COURSE_DEVICE: expected an available device \(cpu here\), got 'cuda': CUDA is not available; unset"
    with pytest.raises(ValueError, match=message):
        pick_device()
    with pytest.raises(ValueError, match=message):  # the small nets no longer ignore it
        tiny_model(seed=0)
    with pytest.raises(ValueError, match=message):
        ppo(PPOConfig(total_timesteps=1024))
    with pytest.raises(ValueError, match=r"^device: expected an available device"):
        pick_device("cuda")
    monkeypatch.setenv("COURSE_DEVICE", "gpu0")
    with pytest.raises(ValueError, match=r"COURSE_DEVICE: expected a device such as 'cpu'.*got 'gpu0'"):
        pick_device()
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert tiny_model(seed=0)[0].device.type == "cpu"
