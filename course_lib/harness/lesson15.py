"""How lesson 15's exercises are run: on copies of numpy inputs, and an index read as an int."""

from __future__ import annotations

import numpy as np


def copied(fn):
    """Call ``fn`` on copies of its array arguments, so an in-place edit cannot change the case for others."""

    def run(*args):
        return fn(*(a.copy() if isinstance(a, np.ndarray) else list(a) if isinstance(a, list) else a for a in args))

    return run


def int_result(fn):
    """Accept a Python or numpy integer for the index, but not a float (an index is a whole number)."""

    def run(*args):
        out = fn(*args)
        if isinstance(out, np.integer):
            return int(out)
        if isinstance(out, float) or isinstance(out, np.floating):
            return f"a float ({out!r}); return an int index"
        return out

    return run


def copied_index(fn):
    """:func:`int_result` of :func:`copied`: the ``adapt`` of ``early_stop_index``."""
    return int_result(copied(fn))
