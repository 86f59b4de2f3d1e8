"""Pooling: max, average, adaptive average and adaptive max, 1-D/2-D/3-D — forward (re-exported
by :mod:`fastconv.functional`) and gradients (re-exported by :mod:`fastconv.grad`), side by side.
Semantics are PyTorch's; only argument *forms* are normalised here, the C++ core validates."""

from __future__ import annotations

import operator

from .. import _args, _core


def _output_size(value, op: str):
    """int, None, or a tuple of ints / Nones -> list of int-or-None."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    return [None if v is None else _args.int_list(v, "output_size", op)[0] for v in items]


def _flag(value, name: str, op: str) -> bool:
    try:
        return operator.truth(value)
    except Exception:  # noqa: BLE001 - e.g. an ambiguous array truth value
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}") from None


def _divisor(value, op: str):
    return None if value is None else _args.integer(value, "divisor_override", op)


def _stride(stride, op: str) -> list[int]:
    # None or an empty tuple means "the kernel size", as in PyTorch
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return []
    return _args.int_list(stride, "stride", op)


def _max_pool(rank, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    op = f"max_pool{rank}d"
    return _core.pool_forward(
        "max", rank, _args.array(input), _args.int_list(kernel_size, "kernel_size", op),
        _stride(stride, op), _args.int_list(padding, "padding", op),
        _args.int_list(dilation, "dilation", op), _flag(ceil_mode, "ceil_mode", op), True, None,
        _flag(return_indices, "return_indices", op))


def _avg_pool(rank, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    op = f"avg_pool{rank}d"
    return _core.pool_forward(
        "avg", rank, _args.array(input), _args.int_list(kernel_size, "kernel_size", op),
        _stride(stride, op), _args.int_list(padding, "padding", op), [1],
        _flag(ceil_mode, "ceil_mode", op), _flag(count_include_pad, "count_include_pad", op),
        _divisor(divisor_override, op), False)


def _adaptive(kind, rank, input, output_size, return_indices):
    op = f"{kind}_pool{rank}d"
    return _core.adaptive_pool_forward(kind, rank, _args.array(input),
                                       _output_size(output_size, op),
                                       _flag(return_indices, "return_indices", op))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive("adaptive_avg", 1, input, output_size, False)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive("adaptive_avg", 2, input, output_size, False)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive("adaptive_avg", 3, input, output_size, False)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive("adaptive_max", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive("adaptive_max", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive("adaptive_max", 3, input, output_size, return_indices)


# ---- gradients

def _max_input(kind, rank, grad_output, indices, input_shape):
    op = f"{kind}_pool{rank}d_input"
    return _core.pool_backward_max(kind, rank, _args.array(grad_output), _args.array(indices),
                                   _args.shape(input_shape, "input_shape", op))


def _avg_input(rank, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
               count_include_pad, divisor_override):
    op = f"avg_pool{rank}d_input"
    return _core.pool_backward_avg(
        "avg", rank, _args.array(grad_output), _args.shape(input_shape, "input_shape", op),
        _args.int_list(kernel_size, "kernel_size", op), _stride(stride, op),
        _args.int_list(padding, "padding", op), _flag(ceil_mode, "ceil_mode", op),
        _flag(count_include_pad, "count_include_pad", op), _divisor(divisor_override, op), [])


def _adaptive_avg_input(rank, grad_output, input_shape):
    op = f"adaptive_avg_pool{rank}d_input"
    g = _args.array(grad_output)
    # the output size is grad_output's trailing dims
    out = [int(s) for s in g.shape[-rank:]] if g.ndim >= rank else [0]
    return _core.pool_backward_avg("adaptive_avg", rank, g,
                                   _args.shape(input_shape, "input_shape", op), [1], [], [0],
                                   False, True, None, out)


def max_pool1d_input(grad_output, indices, input_shape):
    return _max_input("max", 1, grad_output, indices, input_shape)


def max_pool2d_input(grad_output, indices, input_shape):
    return _max_input("max", 2, grad_output, indices, input_shape)


def max_pool3d_input(grad_output, indices, input_shape):
    return _max_input("max", 3, grad_output, indices, input_shape)


def adaptive_max_pool1d_input(grad_output, indices, input_shape):
    return _max_input("adaptive_max", 1, grad_output, indices, input_shape)


def adaptive_max_pool2d_input(grad_output, indices, input_shape):
    return _max_input("adaptive_max", 2, grad_output, indices, input_shape)


def adaptive_max_pool3d_input(grad_output, indices, input_shape):
    return _max_input("adaptive_max", 3, grad_output, indices, input_shape)


def avg_pool1d_input(grad_output, input_shape, kernel_size, stride=None, padding=0,
                     ceil_mode=False, count_include_pad=True, divisor_override=None):
    return _avg_input(1, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                      count_include_pad, divisor_override)


def avg_pool2d_input(grad_output, input_shape, kernel_size, stride=None, padding=0,
                     ceil_mode=False, count_include_pad=True, divisor_override=None):
    return _avg_input(2, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                      count_include_pad, divisor_override)


def avg_pool3d_input(grad_output, input_shape, kernel_size, stride=None, padding=0,
                     ceil_mode=False, count_include_pad=True, divisor_override=None):
    return _avg_input(3, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                      count_include_pad, divisor_override)


def adaptive_avg_pool1d_input(grad_output, input_shape):
    return _adaptive_avg_input(1, grad_output, input_shape)


def adaptive_avg_pool2d_input(grad_output, input_shape):
    return _adaptive_avg_input(2, grad_output, input_shape)


def adaptive_avg_pool3d_input(grad_output, input_shape):
    return _adaptive_avg_input(3, grad_output, input_shape)


# ---- docstrings (one template per function family, filled per rank)

_SP = {1: ("L", "(2, 3, 16)", "(2, 3, 8)"), 2: ("H, W", "(2, 3, 16, 16)", "(2, 3, 8, 8)"),
       3: ("D, H, W", "(1, 3, 8, 8, 8)", "(1, 3, 4, 4, 4)")}

_MAX_DOC = """{r}-D max pooling, as ``torch.nn.functional.max_pool{r}d``.

    Parameters
    ----------
    input : ndarray, shape (N, C, {sp}) or (C, {sp})
        float32 or float64; any memory layout.
    kernel_size, stride, padding, dilation : int or tuple of {r} ints
        ``stride`` defaults to ``kernel_size``; ``padding`` is at most half the dilated kernel
        and pads with -inf.
    ceil_mode : bool
        Round the output size up; the last window must still start inside the input or the
        left padding.
    return_indices : bool
        Also return the argmax: the flat index within each (n, c) plane of the first maximum
        (a NaN in the window wins, as in PyTorch; -1 where a dilated window lies entirely in
        the padding, whose value is -inf).

    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import max_pool{r}d
    >>> y, idx = max_pool{r}d(np.ones({x}, np.float32), 2, return_indices=True)
    >>> y.shape, idx.dtype
    ({y}, dtype('int64'))
"""

_AVG_DOC = """{r}-D average pooling, as ``torch.nn.functional.avg_pool{r}d``.

    Parameters
    ----------
    input : ndarray, shape (N, C, {sp}) or (C, {sp})
    kernel_size, stride, padding : int or tuple of {r} ints
        ``stride`` defaults to ``kernel_size``; ``padding`` is at most half the kernel.
    ceil_mode : bool
    count_include_pad : bool
        Divide by the window clipped to the padded input (True) or to the input (False).
    divisor_override : int, optional
        Divide every window sum by this instead.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import avg_pool{r}d
    >>> avg_pool{r}d(np.ones({x}, np.float32), 2).shape
    {y}
"""

_ADAPTIVE_DOC = """{r}-D adaptive {what} pooling, as ``torch.nn.functional.adaptive_{kind}_pool{r}d``.

    Output position o along an axis pools input positions [floor(o*in/out), ceil((o+1)*in/out)).

    Parameters
    ----------
    input : ndarray, shape (N, C, {sp}) or (C, {sp})
    output_size : int, None or tuple of {r} ints / Nones
        None keeps that input size.{extra}

    Returns
    -------
    ndarray{ret}

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import adaptive_{kind}_pool{r}d
    >>> adaptive_{kind}_pool{r}d(np.ones({x}, np.float32), 1).shape[-1]
    1
"""

_GRAD_DOC = """Gradient of ``{op}`` with respect to its input.

    {how}

    Parameters
    ----------
{params}
    Returns
    -------
    ndarray of shape ``input_shape``

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F, grad
    >>> x = np.random.rand{x}.astype(np.float32)
{example}
"""

_GRAD_PARAMS = {
    "indices": ("    grad_output : ndarray\n        Gradient with respect to the pooling output.\n"
                "    indices : ndarray of int64\n        The indices the forward returned "
                "(same shape as grad_output).\n    input_shape : tuple of ints\n"),
    "avg": ("    grad_output : ndarray\n        Gradient with respect to the pooling output.\n"
            "    input_shape : tuple of ints\n    kernel_size, stride, padding, ceil_mode, "
            "count_include_pad, divisor_override\n        The forward call's parameters.\n"),
    "adaptive_avg": ("    grad_output : ndarray\n        Gradient with respect to the pooling "
                     "output (its trailing sizes are the output size).\n"
                     "    input_shape : tuple of ints\n"),
}


def _fill_docs():
    g = globals()
    for r, (sp, x, y) in _SP.items():
        fields = dict(r=r, sp=sp, x=x, y=y)
        g[f"max_pool{r}d"].__doc__ = _MAX_DOC.format(**fields)
        g[f"avg_pool{r}d"].__doc__ = _AVG_DOC.format(**fields)
        g[f"adaptive_avg_pool{r}d"].__doc__ = _ADAPTIVE_DOC.format(
            what="average", kind="avg", extra="", ret="", **fields)
        g[f"adaptive_max_pool{r}d"].__doc__ = _ADAPTIVE_DOC.format(
            what="max", kind="max", ret=", or (ndarray, ndarray of int64)",
            extra="\n    return_indices : bool\n        Also return the argmax (flat index within"
                  " each plane, first maximum; a NaN wins).", **fields)
        ex = {
            "max": f"    >>> y, idx = F.max_pool{r}d(x, 2, return_indices=True)\n"
                   f"    >>> grad.max_pool{r}d_input(np.ones_like(y), idx, x.shape).shape == x.shape\n    True",
            "adaptive_max": f"    >>> y, idx = F.adaptive_max_pool{r}d(x, 1, return_indices=True)\n"
                            f"    >>> float(grad.adaptive_max_pool{r}d_input(np.ones_like(y), idx, x.shape).sum())\n    {_planes(x)}.0",
            "avg": f"    >>> y = F.avg_pool{r}d(x, 2)\n"
                   f"    >>> float(grad.avg_pool{r}d_input(np.ones_like(y), x.shape, 2).sum()) == y.size\n    True",
            "adaptive_avg": f"    >>> y = F.adaptive_avg_pool{r}d(x, 1)\n"
                            f"    >>> round(float(grad.adaptive_avg_pool{r}d_input(np.ones_like(y), x.shape).sum()), 3)\n    {float(_planes(x))}",
        }
        for kind, how, params in (
                ("max", "Each output gradient goes to the input element its index names; "
                        "overlapping windows accumulate.", "indices"),
                ("adaptive_max", "Each output gradient goes to the input element its index "
                                 "names; overlapping windows accumulate.", "indices"),
                ("avg", "Each output gradient is spread evenly (divided by the forward's "
                        "divisor) over its window.", "avg"),
                ("adaptive_avg", "Each output gradient is spread evenly over its window.",
                 "adaptive_avg")):
            g[f"{kind}_pool{r}d_input"].__doc__ = _GRAD_DOC.format(
                op=f"{kind}_pool{r}d", how=how, params=_GRAD_PARAMS[params], x=x,
                example=ex[kind])


def _planes(shape_text):
    dims = [int(v) for v in shape_text.strip("()").split(",")]
    return dims[0] * dims[1]


_fill_docs()
