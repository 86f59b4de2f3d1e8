"""Normalisation of argument *forms* shared by the public modules: an int or a tuple of ints
becomes a list of Python ints within int64, with TypeError / OverflowError naming the argument.
Values are validated by the C++ core."""

from __future__ import annotations

import operator

import numpy as np

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _is_integer(x) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def int_list(value, name: str, op: str) -> list[int]:
    """An int or a sequence of ints as a list of Python ints that fit in int64."""
    # Plain ints (the common form) first: these checks cost a small layer's call a few
    # microseconds otherwise.
    kind = type(value)
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return [value]
    if (kind is tuple or kind is list) and all(
            type(v) is int and _INT64_MIN <= v <= _INT64_MAX for v in value):
        return list(value)
    items = value if isinstance(value, (tuple, list)) else (value,)
    out = []
    for item in items:
        if not _is_integer(item):
            raise TypeError(f"{op}: {name} must be an integer or a tuple of integers, got {value!r}")
        v = operator.index(item)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise OverflowError(f"{op}: {name} value {v} does not fit in a 64-bit integer")
        out.append(v)
    return out


def integer(value, name: str, op: str) -> int:
    """A single int within int64."""
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}")
    return int_list(value, name, op)[0]


def shape(value, name: str, op: str) -> list[int]:
    """A shape: a sequence of ints (e.g. ``input_shape`` of a gradient)."""
    if isinstance(value, np.ndarray) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be a tuple of integers, got {value!r}")
    if not all(_is_integer(v) for v in value):
        raise TypeError(f"{op}: {name} must be a tuple of integers, got {value!r}")
    return int_list(list(value), name, op)


def padding(value, op: str):
    """'same' / 'valid' stay strings; anything else is an int list."""
    if isinstance(value, str):
        return value
    return int_list(value, "padding", op)


def string(value, name: str, op: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a str, got {type(value).__name__}")
    return value


def array(value):
    """Anything array-like as an ndarray (no copy for ndarrays); dtype checks are the core's."""
    return value if type(value) is np.ndarray else np.asarray(value)


def optional_array(value):
    return None if value is None else array(value)


def float_array(value, name: str, op: str) -> np.ndarray:
    """An array of dtype float32 or float64 (for ops computed in Python, such as linear), with the
    core's TypeError wording otherwise."""
    a = np.asarray(value)
    if a.dtype.kind == "f" and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))  # big-endian data: the native copy
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected {name} to have dtype float32 or float64, but got {a.dtype}")
    return a


def same_dtype(op: str, **arrays) -> np.dtype:
    """The common dtype of the named arrays (None entries skipped); TypeError if they differ."""
    given = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in given.values()}
    if len(dtypes) > 1:
        got = ", ".join(f"{k} {v.dtype}" for k, v in given.items())
        raise TypeError(f"{op}: expected all arrays to have the same dtype, but got {got}")
    return dtypes.pop()
