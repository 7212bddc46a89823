"""One way to check a number argument, so that every function and config says the same thing the same way.

``check_int("steps", steps, 1)`` raises ``ValueError("steps: expected an int >= 1, got 0")`` and
``check_float("clip_eps", clip_eps, "(0, 1)")`` raises ``ValueError("clip_eps: expected a float in (0, 1), got 1.5")``:
the argument's name, what was expected and what came.

``check_int`` takes a Python or numpy integer; a bool, a float such as ``3.0``, a string or ``None`` fails.
``check_float`` takes any real number (an int, a float, a numpy scalar); a bool, a string, ``None`` (unless
``none_ok``) and NaN fail. Its ``interval`` is written as the message shows it: ``"> 0"``, ``">= 0"``, ``"> 1"``
(infinity passes these), or a bracketed interval such as ``"(0, 1]"``, ``"[0, 1]"`` or ``"[0, inf)"`` (an open end
at ``inf`` refuses infinity).
"""

from __future__ import annotations

import functools
import math
import numbers
import re

_BOUND = r"\s*(-?(?:inf|\d+(?:\.\d*)?(?:e-?\d+)?))\s*"
_INTERVAL = re.compile(rf"^([(\[]){_BOUND},{_BOUND}([)\]])$")
_HALF_LINE = re.compile(rf"^(>=|>){_BOUND}$")


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int when it is an integer >= ``minimum``.

    Raises:
        ValueError: naming ``name``, the minimum and the value, for anything else (a bool included).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=None)
def _bounds(interval: str) -> tuple:
    """``interval`` parsed once: ``(low, low_included, high, high_included)``; a malformed interval is a bug here."""
    if m := _HALF_LINE.match(interval):
        return float(m.group(2)), m.group(1) == ">=", math.inf, True
    if m := _INTERVAL.match(interval):
        return float(m.group(2)), m.group(1) == "[", float(m.group(3)), m.group(4) == "]"
    raise ValueError(f"interval: expected '> a', '>= a' or a bracketed interval such as '(0, 1]', got {interval!r}")


def _within(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval`` (see the module's docstring)."""
    low, low_in, high, high_in = _bounds(interval)
    above = value >= low if low_in else value > low
    below = value <= high if high_in else value < high
    return above and below


def check_float(name: str, value, interval: str, *, none_ok: bool = False, note: str = "") -> float | None:
    """``value`` as a float when it is a real number in ``interval`` (``None`` passes through when ``none_ok``).

    Args:
        name: the argument's name, the message's first word.
        value: what was passed.
        interval: ``"> 0"``, ``">= 0"``, or a bracketed interval such as ``"(0, 1]"`` or ``"[0, inf)"``.
        none_ok: ``None`` is allowed (it usually switches a feature off).
        note: a few words the message adds after what is expected, e.g. ``"math.inf: no clipping"``.

    Raises:
        ValueError: ``"{name}: expected a float in (0, 1] or None (note), got {value!r}"`` for anything else.
    """
    if value is None and none_ok:
        return None
    real = not isinstance(value, bool) and isinstance(value, numbers.Real) and not math.isnan(value)
    if not (real and _within(float(value), interval)):
        where = interval if interval[0] in "<>" else f"in {interval}"
        raise ValueError(f"{name}: expected a float {where}{' or None' if none_ok else ''}"
                         f"{f' ({note})' if note else ''}, got {value!r}")
    return float(value)
