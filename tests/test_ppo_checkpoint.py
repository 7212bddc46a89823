"""PPO's checkpoints: resume equals a straight run, periodic saves, atomic saves under a file-size limit, Ctrl-C
saves the finished update, what cannot be pickled fails before training, and a NaN observation is blamed on the env."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch

from course_lib.deep.ppo import PPO_PRESETS, PPOConfig, ppo
from course_lib.utils.checkpoint import load_checkpoint

CI = PPO_PRESETS["cartpole_ci"]
SHORT = replace(CI, total_timesteps=CI.batch_size * 5)  # 5 updates of 4 x 16 steps


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def saved_update(path) -> int | None:
    """The update count stored in the checkpoint at ``path``, or None when there is none yet."""
    return load_checkpoint(path, "ppo")["counters"]["update"] if path.exists() else None


# ---- resume equals a straight run ---------------------------------------------------------


def test_n_updates_then_save_resume_n_updates_equals_2n_straight(tmp_path):
    """Mid-episode envs, Adam's moments, the RNG states and the annealing schedule all carry over."""
    config = PPOConfig(num_envs=4, num_steps=48, total_timesteps=4 * 48 * 6, update_epochs=3, num_minibatches=2,
                       ent_coef=0.01, clip_vloss=True, hidden=32)
    straight = ppo(config, seed=3, progress=False)
    first = ppo(config, seed=3, updates=3, checkpoint=tmp_path / "ckpt.pt", progress=False)
    assert first.updates_done == 3
    resumed = ppo(config, seed=99, resume=tmp_path / "ckpt.pt", progress=False)  # the seed is taken from the file
    assert resumed.updates_done == 6 and resumed.global_step == straight.global_step
    assert same_parameters(straight.agent, resumed.agent)
    # and the second half logged the same episodes as the straight run did
    steps, returns = straight.logger.as_arrays("charts/episodic_return")
    r_steps, r_returns = resumed.logger.as_arrays("charts/episodic_return")
    late = steps > first.global_step
    assert np.array_equal(steps[late], r_steps) and np.array_equal(returns[late], r_returns)


def test_resume_refuses_a_changed_config(tmp_path):
    ppo(CI, seed=0, updates=1, checkpoint=tmp_path / "ckpt.pt", progress=False)
    with pytest.raises(ValueError, match=r"config: expected the configuration saved in .*changes in \['gamma'\]"):
        ppo(replace(CI, gamma=0.5), resume=tmp_path / "ckpt.pt", progress=False)


def test_the_checkpoint_after_n_resume_n_equals_the_one_after_2n(tmp_path):
    """Everything a checkpoint holds carries over, the divergence guard's window of recent KLs included (a
    resumed run must remember the updates before the save to stop when a straight run would)."""
    ppo(SHORT, seed=0, checkpoint=tmp_path / "straight.pt", progress=False)
    ppo(SHORT, seed=0, updates=3, checkpoint=tmp_path / "half.pt", progress=False)
    ppo(SHORT, resume=tmp_path / "half.pt", checkpoint=tmp_path / "resumed.pt", progress=False)
    a, b = load_checkpoint(tmp_path / "straight.pt", "ppo"), load_checkpoint(tmp_path / "resumed.pt", "ppo")
    assert a.keys() == b.keys() == {"config", "agent", "optimizer", "envs", "next_obs", "counters", "rng", "guard"}
    assert [where for where, _ in a["guard"]] == ["update 2", "update 3", "update 4"]
    assert a["guard"] == b["guard"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]) and a["rng"]["python"] == b["rng"]["python"]
    assert all(np.array_equal(x, y) for x, y in zip(a["rng"]["numpy"], b["rng"]["numpy"]))
    assert np.array_equal(a["next_obs"], b["next_obs"]) and a["counters"]["update"] == b["counters"]["update"] == 5
    assert all(torch.equal(a["agent"][k], b["agent"][k]) for k in a["agent"])
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg_sq"], b["optimizer"]["state"][0]["exp_avg_sq"])


# ---- periodic saves and the end of the call -------------------------------------------------


def test_checkpoint_every_k_updates_saves_update_k(tmp_path):
    path, seen = tmp_path / "run.pt", []
    # the callback runs after each update, before that update's save: it sees the file as it was before
    result = ppo(SHORT, seed=0, checkpoint=path, checkpoint_every=2, progress=False,
                 callback=lambda step, agent: seen.append(saved_update(path)))
    assert seen == [None, None, 2, 2, 4]
    assert saved_update(path) == result.updates_done == 5  # and the end of the call saves the rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left


def test_checkpoint_every_needs_checkpoint_and_a_positive_int(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every: .*without checkpoint"):
        ppo(CI, checkpoint_every=1, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every: expected an int >= 1, got 0"):
        ppo(CI, checkpoint=tmp_path / "run.pt", checkpoint_every=0, progress=False)
    with pytest.raises(ValueError, match="checkpoint: expected a file path"):
        ppo(CI, checkpoint=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_save_cut_short_by_a_file_size_limit_leaves_the_previous_checkpoint(tmp_path):
    """A child process runs PPO saving after every update; its callback lowers the file-size limit after the
    first save, so the second save fails mid-write. The first checkpoint must still load and resume to the end
    of the run, equal to a straight run."""
    path = tmp_path / "run.pt"
    script = textwrap.dedent(f"""
        import resource, signal
        from dataclasses import replace
        import torch
        from course_lib.deep.ppo import PPO_PRESETS, ppo
        torch.set_num_threads({torch.get_num_threads()})  # this process's: the sums, so the numbers, depend on it
        path = {str(path)!r}
        config = replace(PPO_PRESETS["cartpole_ci"], total_timesteps=PPO_PRESETS["cartpole_ci"].batch_size * 5)

        def limit_after_the_first_save(step, agent):
            if step == 2 * config.batch_size:  # update 1 is done; the file holds update 0's end
                import os
                size = os.path.getsize(path)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
                resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

        try:
            ppo(config, seed=0, checkpoint=path, checkpoint_every=1, callback=limit_after_the_first_save,
                progress=False)
        except (OSError, RuntimeError) as err:  # torch reports the short write as a RuntimeError
            print("failed as expected:", type(err).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "failed as expected" in out.stdout, out.stdout + out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # the cut temporary file was removed
    assert saved_update(path) == 1
    resumed = ppo(SHORT, resume=path, progress=False)
    straight = ppo(SHORT, seed=0, progress=False)
    assert resumed.updates_done == 5 and same_parameters(straight.agent, resumed.agent)


# ---- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_finishes_the_update_saves_it_and_resuming_equals_the_straight_run(tmp_path, capsys):
    path = tmp_path / "run.pt"

    def ctrl_c_after_update_2(step, agent):
        if step == 2 * SHORT.batch_size:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C in the terminal (or a notebook's interrupt) does
            # the handler only took note: this callback, and the update, go on to their end

    with pytest.raises(KeyboardInterrupt, match=r"interrupted after update 2.*resume="):
        ppo(SHORT, seed=0, checkpoint=path, callback=ctrl_c_after_update_2, progress=False)
    assert "finishing the current update" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert saved_update(path) == 2
    resumed = ppo(SHORT, resume=path, progress=False)
    straight = ppo(SHORT, seed=0, progress=False)
    assert resumed.updates_done == 5 and same_parameters(straight.agent, resumed.agent)


# ---- checked before training ---------------------------------------------------------------


class Unpicklable(gym.Wrapper):
    """CartPole holding something pickle refuses (a lock, as a renderer or a socket would)."""

    def __init__(self):
        import threading

        super().__init__(gym.make("CartPole-v1"))
        self.lock = threading.Lock()


def test_an_unpicklable_env_factory_fails_before_any_update(tmp_path):
    updates = []
    with pytest.raises(ValueError, match=r"env_fn: expected something picklable .*lambda"):
        ppo(CI, env_fn=lambda: gym.make("CartPole-v1"), checkpoint=tmp_path / "run.pt", progress=False,
            callback=lambda step, agent: updates.append(step))
    # a picklable factory whose envs are not: named too, also before the first update
    with pytest.raises(ValueError, match=r"env_fn: expected something picklable \(a checkpoint stores the envs"):
        ppo(CI, env_fn=Unpicklable, checkpoint=tmp_path / "run.pt", progress=False,
            callback=lambda step, agent: updates.append(step))
    assert updates == [] and list(tmp_path.iterdir()) == []
    ppo(CI, env_fn=lambda: gym.make("CartPole-v1"), updates=1, progress=False)  # without a checkpoint: fine


# ---- a non-finite observation --------------------------------------------------------------


class NaNObservationAfter(gym.Wrapper):
    """CartPole whose observations become NaN from the ``after``-th step of an episode on."""

    def __init__(self, after: int):
        super().__init__(gym.make("CartPole-v1"))
        self.after, self.t = after, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t >= self.after:
            obs = np.full_like(obs, math.nan)
        return obs, reward, terminated, truncated, info


def test_a_nan_observation_is_blamed_on_the_env_not_the_learning_rate():
    with pytest.raises(FloatingPointError) as err:
        ppo(CI, env_fn=partial(NaNObservationAfter, 3), progress=False)
    message = str(err.value)
    assert "update 0, global step 12: env 0 (CartPole-v1) returned a non-finite observation [nan" in message
    assert "not a learning-rate problem" in message and "lower learning_rate" not in message
