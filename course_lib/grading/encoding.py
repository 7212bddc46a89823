"""Plain JSON for what crosses the sandbox boundary: the student's results.

Only data crosses: numbers, strings, lists, tuples, named tuples, dicts with
simple keys, numpy arrays and torch tensors. Anything else (an object with a
clever ``__eq__``, a generator, a class) cannot be encoded and counts as a
wrong answer. Non-finite floats are kept (as strings) so that the trusted
comparison can reject them by name.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

MAX_ITEMS = 1_000_000  # numbers per result; more is an error, not a memory bomb in the parent
MAX_DEPTH = 20


class EncodeError(TypeError):
    """A result that is not plain data."""


def _float(x: float) -> Any:
    return x if math.isfinite(x) else repr(float(x))  # 'nan', 'inf', '-inf'


def _unfloat(x: Any) -> float:
    return float(x) if isinstance(x, str) else x


def _encode_array(x: np.ndarray, depth: int) -> dict:
    if x.size > MAX_ITEMS or x.dtype.kind not in "biuf":
        raise EncodeError(f"array of dtype {x.dtype} and size {x.size} is not a plain numeric array")
    data = [_float(v) for v in x.astype(float).ravel().tolist()] if x.dtype.kind == "f" else x.ravel().tolist()
    return {"t": "ndarray", "dtype": str(x.dtype), "shape": list(x.shape), "data": data}


def _encode_tensor(x: Any, depth: int) -> dict:
    arr = x.detach().cpu()
    if arr.numel() > MAX_ITEMS or arr.is_complex():
        raise EncodeError("tensor too large or complex")
    values = arr.double().reshape(-1).tolist() if arr.is_floating_point() else arr.reshape(-1).tolist()
    data = [_float(v) for v in values] if arr.is_floating_point() else values
    return {"t": "tensor", "dtype": str(arr.dtype).replace("torch.", ""), "shape": list(arr.shape), "data": data}


def _encode_items(tag: str) -> Callable[[Any, int], dict]:
    return lambda x, depth: {"t": tag, "v": [encode(v, depth + 1) for v in x]}


def _encode_dict(x: dict, depth: int) -> dict:
    return {"t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}


_ENCODERS: dict[type, Callable[[Any, int], dict]] = {
    type(None): lambda x, depth: {"t": "plain", "v": x},
    bool: lambda x, depth: {"t": "plain", "v": x},
    str: lambda x, depth: {"t": "plain", "v": x},
    int: lambda x, depth: {"t": "int", "v": x},
    float: lambda x, depth: {"t": "float", "v": _float(x)},
    np.ndarray: _encode_array,
    list: _encode_items("list"),
    tuple: _encode_items("tuple"),
    dict: _encode_dict,
}


def encode(x: Any, _depth: int = 0) -> Any:
    """A JSON-ready tagged form of ``x``; raises :class:`EncodeError` for anything but plain data.

    Exact types only (a subclass of ``float`` or ``list`` could carry behaviour): the builtins, numpy arrays and
    scalars, torch tensors, and named tuples (a direct subclass of ``tuple`` with ``_fields``).
    """
    if _depth > MAX_DEPTH:
        raise EncodeError(f"result nested more than {MAX_DEPTH} levels deep")
    t = type(x)
    if t in _ENCODERS:
        return _ENCODERS[t](x, _depth)
    if isinstance(x, np.generic) and t.__module__ == "numpy":
        return {"t": "npscalar", "dtype": str(x.dtype), "v": encode(x.item(), _depth + 1)}
    if t.__module__ == "torch" and t.__name__ == "Tensor":
        return _encode_tensor(x, _depth)
    if isinstance(x, tuple) and hasattr(t, "_fields") and t.__bases__ == (tuple,):
        return {"t": "namedtuple", "name": t.__name__, "v": [encode(v, _depth + 1) for v in x]}
    raise EncodeError(f"a result of type {t.__name__} is not plain data (numbers, arrays, tensors, lists, tuples)")


def _numbers(obj: dict) -> list:
    """An array's ``data`` and ``shape``, checked: a flat list of numbers (or 'nan'/'inf' strings) that fills the
    shape exactly."""
    data, shape = obj.get("data"), obj.get("shape")
    if not (isinstance(shape, list) and all(type(n) is int and 0 <= n for n in shape) and len(shape) <= MAX_DEPTH):
        raise ValueError("bad shape")
    if not isinstance(data, list) or len(data) > MAX_ITEMS or math.prod(shape) != len(data):
        raise ValueError("data does not fill the shape")
    if not all(type(v) in (bool, int, float) or v in ("nan", "inf", "-inf") for v in data):
        raise ValueError("data holds something other than numbers")
    return [_unfloat(v) for v in data]


_NUMPY_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                           "float16", "float32", "float64"})
_TORCH_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16", "float32",
                           "float64"})


def _decode_ndarray(obj: dict, like: Any) -> np.ndarray:
    if obj.get("dtype") not in _NUMPY_DTYPES:
        raise ValueError("bad dtype")
    return np.array(_numbers(obj), dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])


def _decode_tensor(obj: dict, like: Any) -> Any:
    import torch

    if obj.get("dtype") not in _TORCH_DTYPES:
        raise ValueError("bad dtype")
    return torch.tensor(_numbers(obj), dtype=getattr(torch, obj["dtype"])).reshape(obj["shape"])


def _decode_plain(obj: dict, like: Any) -> Any:
    if obj["v"] is not None and type(obj["v"]) not in (bool, str):
        raise ValueError("bad plain value")
    return obj["v"]


def _decode_int(obj: dict, like: Any) -> int:
    if type(obj["v"]) is not int:
        raise ValueError("bad int")
    return obj["v"]


def _decode_float(obj: dict, like: Any) -> float:
    if type(obj["v"]) not in (int, float) and obj["v"] not in ("nan", "inf", "-inf"):
        raise ValueError("bad float")
    return float(_unfloat(obj["v"]))


def _decode_npscalar(obj: dict, like: Any) -> Any:
    if obj.get("dtype") not in _NUMPY_DTYPES:
        raise ValueError("bad dtype")
    return np.dtype(obj["dtype"]).type(decode(obj["v"]))


def _decode_items(obj: dict, like: Any) -> Any:
    values = obj["v"]
    if not isinstance(values, list):
        raise ValueError("bad items")
    likes = list(like) if isinstance(like, (list, tuple)) and len(like) == len(values) else [None] * len(values)
    items = [decode(v, lk, obj["_depth"] + 1) for v, lk in zip(values, likes)]
    t = obj["t"]
    if t == "list":
        return items
    if t == "namedtuple" and isinstance(like, tuple) and type(like).__name__ == obj.get("name"):
        return type(like)(*items)
    if t == "namedtuple":
        return ("namedtuple", str(obj.get("name")), tuple(items))  # a different named tuple: compares unequal
    return tuple(items)


def _decode_dict(obj: dict, like: Any) -> dict:
    pairs = obj["v"]
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError("bad dict")
    depth = obj["_depth"] + 1
    return {_hashable(decode(k, None, depth)): decode(v, None, depth) for k, v in pairs}


_DECODERS: dict[str, Callable[[dict, Any], Any]] = {
    "plain": _decode_plain, "int": _decode_int, "float": _decode_float, "npscalar": _decode_npscalar,
    "ndarray": _decode_ndarray, "tensor": _decode_tensor, "list": _decode_items, "tuple": _decode_items,
    "namedtuple": _decode_items, "dict": _decode_dict,
}


def decode(obj: Any, like: Any = None, _depth: int = 0) -> Any:
    """Rebuild a value from :func:`encode`'s form, strictly: an unknown tag, dtype or shape, a wrong type anywhere,
    or nesting deeper than :data:`MAX_DEPTH` raises ValueError (the student's process wrote it: never trust it).
    ``like`` (the expected value) supplies the named-tuple class, so a student's ``Episode`` compares with the
    reference's ``Episode``."""
    if _depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    if not isinstance(obj, dict) or obj.get("t") not in _DECODERS or "v" not in obj and "data" not in obj:
        raise ValueError("not an encoded value")
    return _DECODERS[obj["t"]]({**obj, "_depth": _depth}, like)


def _hashable(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_hashable(v) for v in x)
    return x
