"""One way to check an integer argument, so that every function and config says the same thing the same way.

``check_int("steps", steps, 1)`` raises ``ValueError("steps: expected an int >= 1, got 0")``: the argument's name,
what was expected and what came. A Python or numpy integer passes; a bool, a float such as ``3.0``, a string or
``None`` does not.
"""

from __future__ import annotations

import numbers


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int when it is an integer >= ``minimum``.

    Raises:
        ValueError: naming ``name``, the minimum and the value, for anything else (a bool included).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)
