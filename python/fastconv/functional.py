"""Stateless operations on NumPy arrays with ``torch.nn.functional``'s signatures and semantics.

Layout is NC[D]HW for activations and OI[D]HW for weights; convolution is cross-correlation,
as in PyTorch. float32 is the fast path, float64 is computed in double precision; outputs are
new C-contiguous arrays of the input's dtype. This module only normalises argument *forms*
(an int or a tuple); every value is validated by the C++ core.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _core

__all__ = ["conv1d", "conv2d", "conv3d"]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _int_list(value, name: str, op: str) -> list[int]:
    """An int or a sequence of ints as a list of Python ints that fit in int64."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    out = []
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not _is_integer(item):
            raise TypeError(
                f"{op}: {name} must be an integer or a tuple of integers, got {value!r}"
            )
        v = operator.index(item)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise OverflowError(f"{op}: {name} value {v} does not fit in a 64-bit integer")
        out.append(v)
    return out


def _is_integer(x) -> bool:
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _padding(padding, op: str):
    if isinstance(padding, str):
        return padding
    return _int_list(padding, "padding", op)


def _conv(rank, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    op = f"conv{rank}d"
    if not isinstance(padding_mode, str):
        raise TypeError(f"{op}: padding_mode must be a str, got {type(padding_mode).__name__}")
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a str, got {type(algo).__name__}")
    if isinstance(groups, (tuple, list)):
        raise TypeError(f"{op}: groups must be an integer, got {groups!r}")
    (groups,) = _int_list(groups, "groups", op)
    return _core.conv_forward(
        rank,
        np.asarray(input),
        np.asarray(weight),
        None if bias is None else np.asarray(bias),
        _int_list(stride, "stride", op),
        _padding(padding, op),
        _int_list(dilation, "dilation", op),
        groups,
        padding_mode,
        algo,
    )


_CONV_DOC = """{rank}-D convolution (cross-correlation) over a batch of {what}, as
    ``torch.nn.functional.conv{rank}d``.

    Parameters
    ----------
    input : ndarray, shape (N, C, {spatial}) or (C, {spatial})
        float32 or float64; any memory layout (copied to C order when needed).
    weight : ndarray, shape (K, C / groups, {kernel})
        Same dtype as ``input``.
    bias : ndarray, shape (K,), optional
    stride, dilation : int or tuple of {rank} ints
    padding : int, tuple of {rank} ints, 'same' or 'valid'
        Implicit padding on both sides. 'same' keeps the input size (stride 1 only), putting the
        odd element of an even total on the right, as PyTorch does.
    groups : int
        Split input and output channels into ``groups`` independent convolutions
        (``groups == C == K`` is depthwise).
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
        How padding is filled (``torch.nn.Conv{rank}d``'s ``padding_mode``).
    algo : str
        ``'auto'`` or a name from :func:`fastconv.algorithms`. A named algorithm that does not
        apply raises ``ValueError`` with the reason.

    Returns
    -------
    ndarray, shape (N, K, {out}) or (K, {out})
        New C-contiguous array of the input's dtype.

    Raises
    ------
    ValueError
        Inconsistent shapes or invalid parameter values (the message names the argument).
    TypeError
        dtype other than float32/float64, mixed dtypes, non-integer parameters.
    OverflowError
        Sizes whose arithmetic overflows 64 bits.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import conv{rank}d
    >>> x = np.ones({example_x}, np.float32)
    >>> w = np.ones({example_w}, np.float32)
    >>> conv{rank}d(x, w, padding=1).shape
    {example_y}
"""


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


conv1d.__doc__ = _CONV_DOC.format(
    rank=1, what="sequences", spatial="L", kernel="kL", out="L_out",
    example_x="(2, 3, 10)", example_w="(4, 3, 3)", example_y="(2, 4, 10)")
conv2d.__doc__ = _CONV_DOC.format(
    rank=2, what="images", spatial="H, W", kernel="kH, kW", out="H_out, W_out",
    example_x="(2, 3, 8, 8)", example_w="(4, 3, 3, 3)", example_y="(2, 4, 8, 8)")
conv3d.__doc__ = _CONV_DOC.format(
    rank=3, what="volumes", spatial="D, H, W", kernel="kD, kH, kW", out="D_out, H_out, W_out",
    example_x="(1, 2, 4, 5, 6)", example_w="(3, 2, 3, 3, 3)", example_y="(1, 3, 4, 5, 6)")
