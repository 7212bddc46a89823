"""Shared fixtures. The default model must be prepared (``make test`` does it first)."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The checkpoint tests press Ctrl-C (SIGINT to this process) and expect Python's KeyboardInterrupt, as in a terminal
# or a notebook. A shell that starts the suite as a background job hands it SIGINT ignored, and Python then keeps it
# ignored: give SIGINT back to Python, whatever the runner inherited.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tokenizer():
    from course_lib.llm.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny(tokenizer):
    """(model, tokenizer): the tiny random SmolLM2-family model."""
    from course_lib.llm.models import tiny_model

    return tiny_model(seed=0, tokenizer=tokenizer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def course_kit() -> str:
    return str(BIN / "course-kit")


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def lowercase_share(prompts, texts):
    """A toy reward for RL tests on the tiny model: the share of lower-case characters of each text."""
    return [sum(c.islower() for c in t) / max(len(t), 1) for t in texts]


def snapshot(module):
    """A copy of every tensor of ``module``'s state, to see later what training changed."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module):
    """The names of the state tensors of ``module`` that differ from the ``snapshot`` ``before``."""
    import torch

    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def assert_same_parameters(a, b, atol: float = 1e-6):
    """Every state tensor of modules ``a`` and ``b`` equal to ``atol`` (a resumed run against a straight one)."""
    import torch

    a, b = a.state_dict(), b.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def saved_step(path, kind: str):
    """The step a checkpoint of ``kind`` at ``path`` holds, or None when there is no file."""
    from course_lib.utils.checkpoint import load_checkpoint

    return load_checkpoint(path, kind)["step"] if path.exists() else None
