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
