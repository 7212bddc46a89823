"""course_lib.utils.checkpoint: atomic saves, clear loads, picklability up front, Ctrl-C deferred to the update's end."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from course_lib.utils.checkpoint import (DeferredInterrupt, check_picklable, load_checkpoint, rng_states,
                                         save_checkpoint, set_rng_states)


def test_a_save_cut_short_by_a_file_size_limit_leaves_the_previous_checkpoint(tmp_path):
    """The child saves a small checkpoint, then a 4 MB one under a 1 MB file-size limit (the save fails with
    EFBIG): the small one must still load, and no temporary file may be left."""
    path = tmp_path / "run.pt"
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from course_lib.utils.checkpoint import save_checkpoint
        save_checkpoint({{"step": 1, "w": torch.ones(10)}}, {str(path)!r}, "test")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            save_checkpoint({{"step": 2, "w": torch.ones(1 << 20)}}, {str(path)!r}, "test")
        except (OSError, RuntimeError) as err:  # torch reports the short write as a RuntimeError
            print("failed as expected:", type(err).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "failed as expected" in out.stdout, out.stderr
    state = load_checkpoint(path, "test")
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_a_truncated_or_foreign_file_is_named(tmp_path):
    path = tmp_path / "run.pt"
    save_checkpoint({"step": 3}, path, "ppo")
    assert load_checkpoint(path, "ppo") == {"step": 3}
    with pytest.raises(ValueError, match="expected a checkpoint of grpo, got one of 'ppo'"):
        load_checkpoint(path, "grpo")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="is not a complete checkpoint"):
        load_checkpoint(path, "ppo")
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt", "ppo")
    with pytest.raises(ValueError, match="checkpoint: expected a file path, got the folder"):
        save_checkpoint({}, tmp_path, "ppo")


def test_random_states_round_trip():
    states = rng_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_states(states)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_something_unpicklable_is_named_before_training():
    assert check_picklable("env_fn", len)
    with pytest.raises(ValueError, match="env_fn: expected something picklable .*lambda"):
        check_picklable("env_fn", lambda: None)


def test_the_first_interrupt_is_deferred_and_the_second_is_not(capsys):
    with DeferredInterrupt("PPO") as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested  # the loop would now finish its update, save and stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert "finishing the current update" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
