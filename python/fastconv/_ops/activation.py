"""Activations and softmax — forward (re-exported by :mod:`fastconv.functional`) and gradients
(re-exported by :mod:`fastconv.grad`), side by side, with PyTorch's definitions and its choices
at the kinks. The C++ core computes; ``inplace=True`` writes into the input array."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .. import _args, _core


def _real(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    return float(value)


def _apply(kind, op, input, inplace=False, alpha=0.0, beta=0.0):
    if not inplace:
        return _core.activation_forward(kind, op, _args.array(input), alpha, beta, None)
    if not isinstance(input, np.ndarray):
        raise TypeError(f"{op}: inplace=True needs a numpy array, got {type(input).__name__}")
    if not input.flags.writeable:
        raise ValueError(f"{op}: inplace=True needs a writable array")
    if (input.flags.c_contiguous and input.flags.aligned and input.dtype.isnative
            and input.dtype in (np.float32, np.float64)):
        return _core.activation_forward(kind, op, input, alpha, beta, input)
    np.copyto(input, _core.activation_forward(kind, op, input, alpha, beta, None))
    return input


def _grad(kind, op, grad_output, input, alpha=0.0, beta=0.0):
    return _core.activation_backward(kind, op, _args.array(input), _args.array(grad_output),
                                     alpha, beta)


def _gelu_kind(approximate, op):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', but got {approximate!r}")
    return "gelu" if approximate == "none" else "gelu_tanh"


def _hardtanh_limits(min_val, max_val, op):
    lo, hi = _real(min_val, "min_val", op), _real(max_val, "max_val", op)
    if lo > hi:
        raise ValueError(f"{op}: min_val cannot be greater than max_val")
    return lo, hi


def relu(input, inplace=False):
    """``max(input, 0)`` elementwise (NaN stays NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.relu(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    return _apply("relu", "relu", input, inplace)


def relu6(input, inplace=False):
    """``min(max(input, 0), 6)`` elementwise.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.relu6(np.array([-1.0, 7.0])).tolist()
    [0.0, 6.0]
    """
    return _apply("relu6", "relu6", input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``input`` where positive, ``negative_slope * input`` elsewhere.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.leaky_relu(np.array([-1.0, 2.0]), 0.5).tolist()
    [-0.5, 2.0]
    """
    op = "leaky_relu"
    return _apply(op, op, input, inplace, _real(negative_slope, "negative_slope", op))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``input`` clamped to ``[min_val, max_val]``.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.hardtanh(np.array([-3.0, 0.5, 3.0])).tolist()
    [-1.0, 0.5, 1.0]
    """
    op = "hardtanh"
    return _apply(op, op, input, inplace, *_hardtanh_limits(min_val, max_val, op))


def elu(input, alpha=1.0, inplace=False):
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere (Clevert et al. 2015).

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.elu(np.array([0.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    return _apply("elu", "elu", input, inplace, _real(alpha, "alpha", "elu"))


def sigmoid(input):
    """``1 / (1 + exp(-input))``.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.sigmoid(np.array([0.0])).tolist()
    [0.5]
    """
    return _apply("sigmoid", "sigmoid", input)


def tanh(input):
    """Hyperbolic tangent.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.tanh(np.array([0.0])).tolist()
    [0.0]
    """
    return _apply("tanh", "tanh", input)


def silu(input, inplace=False):
    """``input * sigmoid(input)`` (swish; Ramachandran et al. 2017).

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.silu(np.array([0.0])).tolist()
    [0.0]
    """
    return _apply("silu", "silu", input, inplace)


def hardsigmoid(input, inplace=False):
    """``relu6(input + 3) / 6``.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.hardsigmoid(np.array([0.0, 3.0])).tolist()
    [0.5, 1.0]
    """
    return _apply("hardsigmoid", "hardsigmoid", input, inplace)


def hardswish(input, inplace=False):
    """``input * relu6(input + 3) / 6`` (Howard et al. 2019).

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.hardswish(np.array([-4.0, 3.0])).tolist()
    [0.0, 3.0]
    """
    return _apply("hardswish", "hardswish", input, inplace)


def gelu(input, approximate="none"):
    """``input * Phi(input)``, Phi the standard normal CDF (Hendrycks & Gimpel 2016);
    ``approximate='tanh'`` uses the tanh approximation.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.gelu(np.array([0.0])).tolist()
    [0.0]
    """
    return _apply(_gelu_kind(approximate, "gelu"), "gelu", input)


# ---- gradients with respect to the activation's input: grad_output * f'(input)

def relu_input(grad_output, input):
    """Gradient of :func:`relu` (0 where ``input <= 0``).

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.relu_input(np.ones(2), np.array([-1.0, 2.0])).tolist()
    [0.0, 1.0]
    """
    return _grad("relu", "relu_input", grad_output, input)


def relu6_input(grad_output, input):
    """Gradient of :func:`relu6`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.relu6_input(np.ones(len(np.array([1.0, 7.0]))), np.array([1.0, 7.0])).tolist()
    [1.0, 0.0]
    """
    return _grad("relu6", "relu6_input", grad_output, input)


def leaky_relu_input(grad_output, input, negative_slope=0.01):
    """Gradient of :func:`leaky_relu`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.leaky_relu_input(np.ones(len(np.array([-1.0, 2.0]))), np.array([-1.0, 2.0])).tolist()
    [0.01, 1.0]
    """
    op = "leaky_relu_input"
    return _grad("leaky_relu", op, grad_output, input, _real(negative_slope, "negative_slope", op))


def hardtanh_input(grad_output, input, min_val=-1.0, max_val=1.0):
    """Gradient of :func:`hardtanh` (0 at and beyond the limits).

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.hardtanh_input(np.ones(len(np.array([-2.0, 0.5]))), np.array([-2.0, 0.5])).tolist()
    [0.0, 1.0]
    """
    op = "hardtanh_input"
    return _grad("hardtanh", op, grad_output, input, *_hardtanh_limits(min_val, max_val, op))


def elu_input(grad_output, input, alpha=1.0):
    """Gradient of :func:`elu`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.elu_input(np.ones(len(np.array([0.0, 2.0]))), np.array([0.0, 2.0])).tolist()
    [1.0, 1.0]
    """
    op = "elu_input"
    return _grad("elu", op, grad_output, input, _real(alpha, "alpha", op))


def sigmoid_input(grad_output, input):
    """Gradient of :func:`sigmoid`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.sigmoid_input(np.ones(len(np.array([0.0]))), np.array([0.0])).tolist()
    [0.25]
    """
    return _grad("sigmoid", "sigmoid_input", grad_output, input)


def tanh_input(grad_output, input):
    """Gradient of :func:`tanh`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.tanh_input(np.ones(len(np.array([0.0]))), np.array([0.0])).tolist()
    [1.0]
    """
    return _grad("tanh", "tanh_input", grad_output, input)


def silu_input(grad_output, input):
    """Gradient of :func:`silu`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.silu_input(np.ones(len(np.array([0.0]))), np.array([0.0])).tolist()
    [0.5]
    """
    return _grad("silu", "silu_input", grad_output, input)


def hardsigmoid_input(grad_output, input):
    """Gradient of :func:`hardsigmoid`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.hardsigmoid_input(np.ones(len(np.array([0.0, 4.0]))), np.array([0.0, 4.0])).round(4).tolist()
    [0.1667, 0.0]
    """
    return _grad("hardsigmoid", "hardsigmoid_input", grad_output, input)


def hardswish_input(grad_output, input):
    """Gradient of :func:`hardswish`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.hardswish_input(np.ones(len(np.array([0.0, 4.0]))), np.array([0.0, 4.0])).tolist()
    [0.5, 1.0]
    """
    return _grad("hardswish", "hardswish_input", grad_output, input)


def gelu_input(grad_output, input, approximate="none"):
    """Gradient of :func:`gelu`.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.gelu_input(np.ones(len(np.array([0.0]))), np.array([0.0])).tolist()
    [0.5]
    """
    op = "gelu_input"
    return _grad(_gelu_kind(approximate, op), op, grad_output, input)


# ---- softmax

def _softmax_dim(dim, ndim, op):
    if dim is None:  # PyTorch's legacy implicit choice, with its warning
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call "
                      "to include dim=X as an argument.", UserWarning, stacklevel=3)
        return 0 if ndim in (0, 1, 3) else 1
    return _args.integer(dim, "dim", op)


def _softmax(op, input, dim, dtype, log):
    x = _args.array(input)
    if dtype is not None:
        x = x.astype(dtype, copy=False)
    return _core.softmax_forward(op, x, _softmax_dim(dim, x.ndim, op), log)


def softmax(input, dim=None, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed with the maximum subtracted); ``dtype``
    casts the input first.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.softmax(np.zeros((1, 4)), dim=1).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """
    return _softmax("softmax", input, dim, dtype, False)


def log_softmax(input, dim=None, dtype=None):
    """``x - log(sum(exp(x)))`` along ``dim``, without overflow.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.log_softmax(np.array([[0.0, 0.0]]), dim=1).round(4).tolist()
    [[-0.6931, -0.6931]]
    """
    return _softmax("log_softmax", input, dim, dtype, True)


def softmax_input(grad_output, output, dim):
    """Gradient of :func:`softmax` from its output: ``output * (g - sum(g * output))``.

    >>> import numpy as np
    >>> from fastconv import functional as F, grad
    >>> y = F.softmax(np.array([[1.0, 2.0]]), dim=1)
    >>> grad.softmax_input(np.ones_like(y), y, 1).tolist()
    [[0.0, 0.0]]
    """
    op = "softmax_input"
    return _core.softmax_backward(op, _args.array(output), _args.array(grad_output),
                                  _args.integer(dim, "dim", op), False)


def log_softmax_input(grad_output, output, dim):
    """Gradient of :func:`log_softmax` from its output: ``g - exp(output) * sum(g)``.

    >>> import numpy as np
    >>> from fastconv import functional as F, grad
    >>> y = F.log_softmax(np.array([[0.0, 0.0]]), dim=1)
    >>> grad.log_softmax_input(np.array([[1.0, 0.0]]), y, 1).tolist()
    [[0.5, -0.5]]
    """
    op = "log_softmax_input"
    return _core.softmax_backward(op, _args.array(output), _args.array(grad_output),
                                  _args.integer(dim, "dim", op), True)
