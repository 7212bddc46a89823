"""Checkpoints that survive a kill, a full disk and Ctrl-C, shared by every training loop that saves one.

* :func:`save_checkpoint` writes to a temporary file in the same folder, flushes it to disk, then renames it over
  the old checkpoint: a save cut short (a kill, a full disk, a file-size limit) leaves the previous checkpoint as it
  was, never a half-written one.
* :func:`load_checkpoint` reads one back and says clearly when the file is missing, damaged or of another loop.
* :func:`rng_states` / :func:`set_rng_states`: every random state a run draws from (Python, NumPy's global state,
  torch on the CPU and on each CUDA device), so that a resumed run draws the same numbers a straight run would.
* :func:`check_picklable`: what a checkpoint must pickle (an environment factory, a config), checked before the
  first update rather than after the whole run.
* :class:`DeferredInterrupt`: Ctrl-C during a run lets the current update finish, so that the checkpoint written
  then is a consistent one; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import sys
import tempfile
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1
"""Bumped when what :func:`save_checkpoint` writes changes incompatibly."""


def save_checkpoint(state: dict, path: str | os.PathLike, kind: str) -> Path:
    """Write ``state`` (``torch.save``-able) to ``path`` atomically, tagged with ``kind`` (e.g. ``"rlhf_ppo"``).

    The bytes go to a temporary file beside ``path``, are flushed and fsync'ed, and the file is renamed over
    ``path`` (atomic on POSIX and Windows); the folder is fsync'ed too where the platform allows. If anything
    fails before the rename, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint: expected a file path, got the folder {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "kind": kind, "state": state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def check_checkpoint_args(checkpoint, checkpoint_every, config) -> None:
    """The checks every loop's ``checkpoint=`` / ``checkpoint_every=`` pair shares: an int >= 1, only with a file to
    save to, that file not a folder, and a ``config`` that pickles (checked now, not at the first save)."""
    from course_lib.utils.validation import check_int

    if checkpoint_every is not None:
        if checkpoint is None:
            raise ValueError(f"checkpoint_every: expected it only together with checkpoint (the file to save to), "
                             f"got checkpoint_every={checkpoint_every!r} without checkpoint")
        check_int("checkpoint_every", checkpoint_every, 1)
    if checkpoint is not None:
        if Path(checkpoint).is_dir():
            raise ValueError(f"checkpoint: expected a file path, got the folder {str(checkpoint)!r}")
        check_picklable("config", config)


def resume_state(resume, kind: str, config) -> dict:
    """The state a checkpoint of ``kind`` at ``resume`` holds, after checking that it was written with ``config``
    (:func:`check_same_config`)."""
    state = load_checkpoint(resume, kind)
    check_same_config(config, state["config"], resume)
    return state


def check_same_config(config, saved: dict, path) -> None:
    """Raise a ValueError naming each field of the dataclass ``config`` that differs from ``saved`` (the
    ``asdict`` of the config a checkpoint was written with): a resumed run must compute what the first part did."""
    if saved != asdict(config):
        changed = [f.name for f in fields(config) if saved.get(f.name) != getattr(config, f.name)]
        shown = "; ".join(f"{n}: saved {saved.get(n)!r}, given {getattr(config, n)!r}" for n in changed)
        raise ValueError(f"config: expected the configuration saved in {str(path)!r}, got changes in {changed} "
                         f"({shown})")


def check_same_as_saved(name: str, given: str, saved: str, path, expected: str, fix: str = "") -> None:
    """Raise a ValueError naming the argument ``name`` when the fingerprint ``given`` of what was passed differs from
    the ``saved`` one: ``"{name}: expected {expected} the run saved in {path} used ({saved}), got another ({given})"``
    and the ``fix``, if any."""
    if given != saved:
        raise ValueError(f"{name}: expected {expected} the run saved in {str(path)!r} used (fingerprint {saved}), got "
                         f"another one ({given}){'; ' + fix if fix else ''}")


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict:
    """The ``state`` a :func:`save_checkpoint` call with the same ``kind`` wrote to ``path``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a complete checkpoint (truncated, another format) or was written by another
            training loop; the message names the file and what it holds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
    try:
        body = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated zip, a pickle error: the same fix
        raise ValueError(f"resume: {str(path)!r} is not a complete checkpoint ({type(err).__name__}: {err}); "
                         "resume from an earlier one, or start again") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT or "state" not in body:
        raise ValueError(f"resume: {str(path)!r} is not a checkpoint of this kit (format {FORMAT})")
    if body.get("kind") != kind:
        raise ValueError(f"resume: expected a checkpoint of {kind}, got one of {body.get('kind')!r} in {str(path)!r}")
    return body["state"]


def rng_states() -> dict:
    """Every random state a training run draws from: Python's, NumPy's global one, torch's on the CPU and on every
    CUDA device (when CUDA is initialised)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def check_picklable(name: str, value: Any, why: str = "a checkpoint stores it") -> bytes:
    """``pickle.dumps(value)``, or a ValueError naming ``name`` and what could not be pickled.

    Call it before training, so that a run that will save a checkpoint fails in its first second, not at its end.
    """
    try:
        return pickle.dumps(value)
    except Exception as err:
        raise ValueError(f"{name}: expected something picklable ({why}), got {value!r:.80}: "
                         f"{type(err).__name__}: {err}. Use a module-level function or functools.partial "
                         "instead of a lambda or a local function") from None


class DeferredInterrupt:
    """``with DeferredInterrupt("PPO") as interrupt:`` around a training loop; check ``interrupt.requested`` at the
    end of each update.

    The first Ctrl-C (SIGINT) only sets ``requested`` and says so on stderr: the loop finishes its update, saves a
    consistent checkpoint and raises KeyboardInterrupt itself. A second Ctrl-C raises KeyboardInterrupt at once.
    With ``enabled=False`` (a run that saves no checkpoint) and outside the main thread (where signal handlers
    cannot be set) it changes nothing: Ctrl-C stops at once.
    """

    def __init__(self, what: str, enabled: bool = True):
        self.what, self.enabled = what, enabled
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.what}: interrupted; finishing the current update, then saving the checkpoint "
              "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> DeferredInterrupt:
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
