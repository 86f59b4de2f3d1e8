"""Gradients of the convolution ops, with ``torch.nn.grad``'s signatures plus fastconv's keywords.

For ``y = conv2d(x, w, b, ...)`` and an upstream gradient ``g = dL/dy``:

- ``conv2d_input(x.shape, w, g, ...)`` is ``dL/dx`` (gradients through reflect / replicate /
  circular padding are folded back into it);
- ``conv2d_weight(x, w.shape, g, ...)`` is ``dL/dw`` — deterministic: the reduction over the batch
  has a fixed order, so repeated calls give the same bits for any thread count;
- ``conv2d_bias(g)`` is ``dL/db``.

``conv_transpose2d_input`` / ``conv_transpose2d_weight`` are the same for
``y = conv_transpose2d(x, w, ...)``. Every function takes the forward call's parameters and
accepts ``algo=`` (see :func:`fastconv.algorithms` with a direction).
"""

from __future__ import annotations

from . import _args, _core

__all__ = [f"{op}{r}d_{what}" for op in ("conv", "conv_transpose") for r in (1, 2, 3)
           for what in ("input", "weight")] + [f"conv{r}d_bias" for r in (1, 2, 3)]


def _conv_params(op, stride, padding, dilation, groups, padding_mode, algo):
    return (
        _args.int_list(stride, "stride", op),
        _args.padding(padding, op),
        _args.int_list(dilation, "dilation", op),
        _args.integer(groups, "groups", op),
        _args.string(padding_mode, "padding_mode", op),
        _args.string(algo, "algo", op),
    )


def _transpose_params(op, stride, padding, output_padding, groups, dilation, algo):
    return (
        _args.int_list(stride, "stride", op),
        _args.padding(padding, op),
        _args.int_list(output_padding, "output_padding", op),
        _args.integer(groups, "groups", op),
        _args.int_list(dilation, "dilation", op),
        _args.string(algo, "algo", op),
    )


def _conv_input(rank, input_shape, weight, grad_output, stride, padding, dilation, groups,
                padding_mode, algo):
    op = f"conv{rank}d_input"
    return _core.conv_backward_data(
        rank, _args.shape(input_shape, "input_shape", op), _args.array(weight),
        _args.array(grad_output),
        *_conv_params(op, stride, padding, dilation, groups, padding_mode, algo))


def _conv_weight(rank, input, weight_shape, grad_output, stride, padding, dilation, groups,
                 padding_mode, algo):
    op = f"conv{rank}d_weight"
    return _core.conv_backward_weights(
        rank, _args.array(input), _args.shape(weight_shape, "weight_shape", op),
        _args.array(grad_output),
        *_conv_params(op, stride, padding, dilation, groups, padding_mode, algo))


def _transpose_input(rank, input_shape, weight, grad_output, stride, padding, output_padding,
                     groups, dilation, algo):
    op = f"conv_transpose{rank}d_input"
    return _core.conv_transpose_backward_data(
        rank, _args.shape(input_shape, "input_shape", op), _args.array(weight),
        _args.array(grad_output),
        *_transpose_params(op, stride, padding, output_padding, groups, dilation, algo))


def _transpose_weight(rank, input, weight_shape, grad_output, stride, padding, output_padding,
                      groups, dilation, algo):
    op = f"conv_transpose{rank}d_weight"
    return _core.conv_transpose_backward_weights(
        rank, _args.array(input), _args.shape(weight_shape, "weight_shape", op),
        _args.array(grad_output),
        *_transpose_params(op, stride, padding, output_padding, groups, dilation, algo))


def conv1d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros", algo="auto"):
    return _conv_input(1, input_shape, weight, grad_output, stride, padding, dilation, groups,
                       padding_mode, algo)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros", algo="auto"):
    return _conv_input(2, input_shape, weight, grad_output, stride, padding, dilation, groups,
                       padding_mode, algo)


def conv3d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros", algo="auto"):
    return _conv_input(3, input_shape, weight, grad_output, stride, padding, dilation, groups,
                       padding_mode, algo)


def conv1d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  padding_mode="zeros", algo="auto"):
    return _conv_weight(1, input, weight_shape, grad_output, stride, padding, dilation, groups,
                        padding_mode, algo)


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  padding_mode="zeros", algo="auto"):
    return _conv_weight(2, input, weight_shape, grad_output, stride, padding, dilation, groups,
                        padding_mode, algo)


def conv3d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                  padding_mode="zeros", algo="auto"):
    return _conv_weight(3, input, weight_shape, grad_output, stride, padding, dilation, groups,
                        padding_mode, algo)


def conv1d_bias(grad_output):
    return _core.conv_backward_bias(1, _args.array(grad_output))


def conv2d_bias(grad_output):
    return _core.conv_backward_bias(2, _args.array(grad_output))


def conv3d_bias(grad_output):
    return _core.conv_backward_bias(3, _args.array(grad_output))


def conv_transpose1d_input(input_shape, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_input(1, input_shape, weight, grad_output, stride, padding, output_padding,
                            groups, dilation, algo)


def conv_transpose2d_input(input_shape, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_input(2, input_shape, weight, grad_output, stride, padding, output_padding,
                            groups, dilation, algo)


def conv_transpose3d_input(input_shape, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_input(3, input_shape, weight, grad_output, stride, padding, output_padding,
                            groups, dilation, algo)


def conv_transpose1d_weight(input, weight_shape, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_weight(1, input, weight_shape, grad_output, stride, padding, output_padding,
                             groups, dilation, algo)


def conv_transpose2d_weight(input, weight_shape, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_weight(2, input, weight_shape, grad_output, stride, padding, output_padding,
                             groups, dilation, algo)


def conv_transpose3d_weight(input, weight_shape, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, algo="auto"):
    return _transpose_weight(3, input, weight_shape, grad_output, stride, padding, output_padding,
                             groups, dilation, algo)


# ---- docstrings (one template per family, filled per rank)

_SHAPES = {1: ("L", "(2, 3, 10)", "(4, 3, 3)", "(2, 4, 10)"),
           2: ("H, W", "(2, 3, 8, 8)", "(4, 3, 3, 3)", "(2, 4, 8, 8)"),
           3: ("D, H, W", "(1, 3, 4, 5, 6)", "(2, 3, 3, 3, 3)", "(1, 2, 4, 5, 6)")}

_INPUT_DOC = """Gradient of ``conv{r}d`` with respect to its input, as ``torch.nn.grad.conv{r}d_input``.

    Parameters
    ----------
    input_shape : tuple of ints
        Shape of the forward input, (N, C, {sp}) or (C, {sp}).
    weight : ndarray, shape (K, C / groups, ...)
    grad_output : ndarray
        Gradient of the loss with respect to the forward output (exactly its shape).
    stride, padding, dilation, groups, padding_mode
        The forward call's parameters (see :func:`fastconv.functional.conv{r}d`).
    algo : str
        ``'auto'`` or a name from ``fastconv.algorithms('backward_data')``.

    Returns
    -------
    ndarray of shape ``input_shape``, the dtype of ``weight``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> w, g = np.ones({w}, np.float32), np.ones({y}, np.float32)
    >>> grad.conv{r}d_input({x}, w, g, padding=1).shape
    {x}
"""

_WEIGHT_DOC = """Gradient of ``conv{r}d`` with respect to its weight, as ``torch.nn.grad.conv{r}d_weight``.

    Deterministic: the sum over batch and positions has a fixed order, whatever the thread count.

    Parameters
    ----------
    input : ndarray, shape (N, C, {sp}) or (C, {sp})
        The forward input.
    weight_shape : tuple of ints
        (K, C / groups, kernel...).
    grad_output : ndarray
        Gradient of the loss with respect to the forward output.
    stride, padding, dilation, groups, padding_mode
        The forward call's parameters.
    algo : str
        ``'auto'`` or a name from ``fastconv.algorithms('backward_weights')``.

    Returns
    -------
    ndarray of shape ``weight_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> x, g = np.ones({x}, np.float32), np.ones({y}, np.float32)
    >>> grad.conv{r}d_weight(x, {w}, g, padding=1).shape
    {w}
"""

_BIAS_DOC = """Gradient of ``conv{r}d`` with respect to its bias: ``grad_output`` summed over the batch
    and every position.

    Parameters
    ----------
    grad_output : ndarray, shape (N, K, {sp}) or (K, {sp})

    Returns
    -------
    ndarray, shape (K,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.conv{r}d_bias(np.ones({y}, np.float32)).shape[0]
    {k}
"""

_T_INPUT_DOC = """Gradient of ``conv_transpose{r}d`` with respect to its input: the forward convolution of
    ``grad_output`` with ``weight``.

    Parameters
    ----------
    input_shape : tuple of ints
        Shape of the transposed convolution's input, (N, C_in, {sp}) or (C_in, {sp}).
    weight : ndarray, shape (C_in, C_out / groups, ...)
    grad_output : ndarray
        Gradient with respect to the transposed convolution's output.
    stride, padding, output_padding, groups, dilation
        The forward call's parameters (see :func:`fastconv.functional.conv_transpose{r}d`).
    algo : str
        ``'auto'`` or a name from ``fastconv.algorithms('forward')``.

    Returns
    -------
    ndarray of shape ``input_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> w, g = np.ones({w}, np.float32), np.ones({x}, np.float32)
    >>> grad.conv_transpose{r}d_input({y}, w, g, padding=1).shape
    {y}
"""

_T_WEIGHT_DOC = """Gradient of ``conv_transpose{r}d`` with respect to its weight (deterministic).

    Parameters
    ----------
    input : ndarray, shape (N, C_in, {sp}) or (C_in, {sp})
        The transposed convolution's input.
    weight_shape : tuple of ints
        (C_in, C_out / groups, kernel...).
    grad_output : ndarray
        Gradient with respect to the transposed convolution's output.
    stride, padding, output_padding, groups, dilation
        The forward call's parameters.
    algo : str
        ``'auto'`` or a name from ``fastconv.algorithms('backward_weights')``.

    Returns
    -------
    ndarray of shape ``weight_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> x, g = np.ones({y}, np.float32), np.ones({x}, np.float32)
    >>> grad.conv_transpose{r}d_weight(x, {w}, g, padding=1).shape
    {w}
"""


def _fill_docs():
    g = globals()
    for r, (sp, x, w, y) in _SHAPES.items():
        k = w.strip("()").split(",")[0]
        # a transposed convolution maps y-shaped inputs to x-shaped outputs with weight (K, C, ...)
        fields = dict(r=r, sp=sp, x=x, w=w, y=y, k=k)
        g[f"conv{r}d_input"].__doc__ = _INPUT_DOC.format(**fields)
        g[f"conv{r}d_weight"].__doc__ = _WEIGHT_DOC.format(**fields)
        g[f"conv{r}d_bias"].__doc__ = _BIAS_DOC.format(**fields)
        g[f"conv_transpose{r}d_input"].__doc__ = _T_INPUT_DOC.format(**fields)
        g[f"conv_transpose{r}d_weight"].__doc__ = _T_WEIGHT_DOC.format(**fields)


_fill_docs()
