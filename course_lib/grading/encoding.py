"""Plain JSON for what crosses the sandbox boundary: the student's results.

Only data crosses: numbers, strings, lists, tuples, named tuples, dicts with
simple keys, numpy arrays and torch tensors. Anything else (an object with a
clever ``__eq__``, a generator, a class) cannot be encoded and counts as a
wrong answer. Non-finite floats are kept (as strings) so that the trusted
comparison can reject them by name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_ITEMS = 1_000_000  # numbers per result; more is an error, not a memory bomb in the parent


class EncodeError(TypeError):
    """A result that is not plain data."""


def _float(x: float) -> Any:
    return x if math.isfinite(x) else repr(float(x))  # 'nan', 'inf', '-inf'


def _unfloat(x: Any) -> float:
    return float(x) if isinstance(x, str) else x


def encode(x: Any, _depth: int = 0) -> Any:
    """A JSON-ready tagged form of ``x``; raises :class:`EncodeError` for anything but plain data."""
    if _depth > 20:
        raise EncodeError("result nested more than 20 levels deep")
    t = type(x)
    if x is None or t is bool or t is str:
        return {"t": "plain", "v": x}
    if t is int:
        return {"t": "int", "v": x}
    if t is float:
        return {"t": "float", "v": _float(x)}
    if isinstance(x, np.generic) and t.__module__ == "numpy":
        return {"t": "npscalar", "dtype": str(x.dtype), "v": encode(x.item(), _depth + 1)}
    if t is np.ndarray:
        if x.size > MAX_ITEMS or x.dtype.kind not in "biuf":
            raise EncodeError(f"array of dtype {x.dtype} and size {x.size} is not a plain numeric array")
        data = [_float(v) for v in x.astype(float).ravel().tolist()] if x.dtype.kind == "f" else x.ravel().tolist()
        return {"t": "ndarray", "dtype": str(x.dtype), "shape": list(x.shape), "data": data}
    if t.__module__ == "torch" and t.__name__ == "Tensor":
        arr = x.detach().cpu()
        if arr.numel() > MAX_ITEMS or arr.is_complex():
            raise EncodeError("tensor too large or complex")
        values = arr.double().reshape(-1).tolist() if arr.is_floating_point() else arr.reshape(-1).tolist()
        data = [_float(v) for v in values] if arr.is_floating_point() else values
        return {"t": "tensor", "dtype": str(arr.dtype).replace("torch.", ""), "shape": list(arr.shape), "data": data}
    if t is list:
        return {"t": "list", "v": [encode(v, _depth + 1) for v in x]}
    if t is tuple:
        return {"t": "tuple", "v": [encode(v, _depth + 1) for v in x]}
    if isinstance(x, tuple) and hasattr(t, "_fields") and t.__bases__ == (tuple,):
        return {"t": "namedtuple", "name": t.__name__, "v": [encode(v, _depth + 1) for v in x]}
    if t is dict:
        items = []
        for k, v in x.items():
            items.append([encode(k, _depth + 1), encode(v, _depth + 1)])
        return {"t": "dict", "v": items}
    raise EncodeError(f"a result of type {t.__name__} is not plain data (numbers, arrays, tensors, lists, tuples)")


def decode(obj: Any, like: Any = None) -> Any:
    """Rebuild a value from :func:`encode`'s form. ``like`` (the expected value) supplies the
    named-tuple class, so a student's ``Episode`` compares with the reference's ``Episode``."""
    if not isinstance(obj, dict) or "t" not in obj:
        raise ValueError("not an encoded value")
    t = obj["t"]
    if t == "plain":
        if obj["v"] is not None and type(obj["v"]) not in (bool, str):
            raise ValueError("bad plain value")
        return obj["v"]
    if t == "int":
        if type(obj["v"]) is not int:
            raise ValueError("bad int")
        return obj["v"]
    if t == "float":
        return float(_unfloat(obj["v"]))
    if t == "npscalar":
        return np.dtype(obj["dtype"]).type(decode(obj["v"]))
    if t == "ndarray":
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in "biuf":
            raise ValueError("bad dtype")
        data = [_unfloat(v) for v in obj["data"]]
        return np.array(data, dtype=dtype).reshape(obj["shape"])
    if t == "tensor":
        import torch

        dtype = getattr(torch, obj["dtype"])
        data = [_unfloat(v) for v in obj["data"]]
        return torch.tensor(data, dtype=dtype).reshape(obj["shape"])
    if t in ("list", "tuple", "namedtuple"):
        likes = list(like) if isinstance(like, (list, tuple)) and len(like) == len(obj["v"]) else [None] * len(obj["v"])
        items = [decode(v, lk) for v, lk in zip(obj["v"], likes)]
        if t == "list":
            return items
        if t == "namedtuple" and isinstance(like, tuple) and type(like).__name__ == obj["name"]:
            return type(like)(*items)
        if t == "namedtuple":
            return ("namedtuple", obj["name"], tuple(items))  # a different named tuple: compares unequal
        return tuple(items)
    if t == "dict":
        return {_hashable(decode(k)): decode(v) for k, v in obj["v"]}
    raise ValueError(f"unknown tag {t!r}")


def _hashable(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_hashable(v) for v in x)
    return x
