"""Shared fixtures. The default model must be prepared (``make test`` does it first)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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
