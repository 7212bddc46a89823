"""One seed for Python, NumPy and torch.

Gymnasium environments keep their own random generators. Seed them at the
first reset and seed the action space if you sample from it::

    set_seed(0)
    obs, info = env.reset(seed=0)        # seeds env.np_random
    env.action_space.seed(0)             # seeds action_space.sample()
    # later resets: env.reset() without a seed continues the same stream

A vectorised env takes one seed per copy: ``envs.reset(seed=[0, 1, 2, 3])``.
"""

from __future__ import annotations

import random
import sys

import numpy as np


def set_seed(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch (CPU and all GPUs).

    torch is seeded only when it is already imported, so calling this in a
    torch-free lesson does not import it.

    Raises:
        ValueError: ``seed`` is not an int in [0, 2**32 - 1].
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed: expected an int in [0, 2**32 - 1], got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device
