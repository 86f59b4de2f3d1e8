"""Linear (fully connected) layer and dropout — forward (re-exported by
:mod:`fastconv.functional`) and gradients (:mod:`fastconv.grad`), side by side. The products
run on the C++ core's GEMM; dropout masks come from fastconv's generator (fastconv.manual_seed)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _args, _core, _random


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` over the last dim of input (*, in_features); weight is
    (out_features, in_features), as ``torch.nn.functional.linear``. Computed on fastconv's
    GEMM (its OpenMP threads; no BLAS thread pool).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    return _core.linear_forward(_args.array(input), _args.array(weight),
                                _args.optional_array(bias))


def linear_input(grad_output, weight):
    """Gradient of :func:`linear` with respect to its input: ``grad_output @ weight``.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.linear_input(np.ones((1, 2)), np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[4.0, 6.0]]
    """
    return _core.linear_backward_data(_args.array(grad_output), _args.array(weight))


def linear_weight(grad_output, input):
    """Gradient of :func:`linear` with respect to its weight: ``grad_output^T @ input`` summed
    over the leading dims, (out_features, in_features); deterministic.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.linear_weight(np.ones((3, 1)), np.ones((3, 2))).tolist()
    [[3.0, 3.0]]
    """
    return _core.linear_backward_weights(_args.array(grad_output), _args.array(input), False)[0]


def linear_weight_and_bias(grad_output, input):
    """(:func:`linear_weight`, :func:`linear_bias`) in one call."""
    return _core.linear_backward_weights(_args.array(grad_output), _args.array(input), True)


def linear_bias(grad_output):
    """Gradient of :func:`linear` with respect to its bias: grad_output summed over the leading
    dims.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.linear_bias(np.ones((3, 2))).tolist()
    [3.0, 3.0]
    """
    g = _args.float_array(grad_output, "grad_output", "linear_bias")
    return g.reshape(-1, g.shape[-1]).sum(0, dtype=np.float64).astype(g.dtype)


def _probability(p, op):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


def dropout_mask(shape, p, op="dropout"):
    """A boolean mask of ``shape`` keeping each element with probability ``1 - p``."""
    return _random.generator().random(shape) >= _probability(p, op)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)`` in
    training; the identity otherwise. The mask comes from fastconv's generator
    (:func:`fastconv.manual_seed`); :class:`fastconv.nn.Dropout` keeps it for the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.dropout(np.ones(4), p=0.0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    op = "dropout"
    x = _args.float_array(input, "input", op)
    p = _probability(p, op)
    if not training:
        return x if inplace else x.copy()
    return apply_dropout(x, dropout_mask(x.shape, p, op), p, x if inplace else None)


def apply_dropout(x, mask, p, out=None):
    """``x * mask / (1 - p)`` (zeros when p = 1), into ``out`` when given."""
    scale = x.dtype.type(0 if p >= 1 else 1 / (1 - p))
    return np.multiply(x, mask * scale, out=out, dtype=x.dtype)


def dropout_input(grad_output, mask, p):
    """Gradient of :func:`dropout` in training, given the ``mask`` of kept elements (boolean).

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.dropout_input(np.ones(2), np.array([True, False]), 0.5).tolist()
    [2.0, 0.0]
    """
    g = _args.float_array(grad_output, "grad_output", "dropout_input")
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.shape != g.shape:
        raise ValueError(f"dropout_input: expected mask a boolean array of shape {g.shape}, "
                         f"but got {m.dtype} {m.shape}")
    return apply_dropout(g, m, _probability(p, "dropout_input"))
