"""Convolution and transposed convolution: forward (re-exported by :mod:`fastconv.functional`)
and gradients (re-exported by :mod:`fastconv.grad`), side by side. Only argument *forms* are
normalised here; the C++ core validates every value."""

from __future__ import annotations

from .. import _args, _core

def _conv(rank, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    op = f"conv{rank}d"
    return _core.conv_forward(
        rank,
        _args.array(input),
        _args.array(weight),
        _args.optional_array(bias),
        _args.int_list(stride, "stride", op),
        _args.padding(padding, op),
        _args.int_list(dilation, "dilation", op),
        _args.integer(groups, "groups", op),
        _args.string(padding_mode, "padding_mode", op),
        _args.string(algo, "algo", op),
    )


def _conv_transpose(rank, input, weight, bias, stride, padding, output_padding, groups, dilation,
                    algo):
    op = f"conv_transpose{rank}d"
    return _core.conv_transpose_forward(
        rank,
        _args.array(input),
        _args.array(weight),
        _args.optional_array(bias),
        _args.int_list(stride, "stride", op),
        _args.padding(padding, op),
        _args.int_list(output_padding, "output_padding", op),
        _args.integer(groups, "groups", op),
        _args.int_list(dilation, "dilation", op),
        _args.string(algo, "algo", op),
    )


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", algo="auto"):
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algo="auto"):
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algo="auto"):
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algo="auto"):
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, algo)


# ---- forward docstrings

_DIMS = {
    1: dict(what="sequences", spatial="L", kernel="kL", out="L_out"),
    2: dict(what="images", spatial="H, W", kernel="kH, kW", out="H_out, W_out"),
    3: dict(what="volumes", spatial="D, H, W", kernel="kD, kH, kW", out="D_out, H_out, W_out"),
}

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
        ``'auto'`` or a name from ``fastconv.algorithms('forward')``. A named algorithm that
        does not apply raises ``ValueError`` with the reason.

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

_CONV_TRANSPOSE_DOC = """{rank}-D transposed convolution over a batch of {what}, as
    ``torch.nn.functional.conv_transpose{rank}d`` (the gradient of ``conv{rank}d`` with respect
    to its input; sometimes called deconvolution).

    Parameters
    ----------
    input : ndarray, shape (N, C_in, {spatial}) or (C_in, {spatial})
        float32 or float64; any memory layout.
    weight : ndarray, shape (C_in, C_out / groups, {kernel})
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation : int or tuple of {rank} ints
        As PyTorch: ``padding`` crops the output by that many elements on both sides.
    output_padding : int or tuple of {rank} ints
        Extra size added on one side of the output; must be smaller than ``stride`` or
        ``dilation``.
    groups : int
    algo : str
        ``'auto'`` or a name from ``fastconv.algorithms('backward_data')``.

    Returns
    -------
    ndarray, shape (N, C_out, {out}) or (C_out, {out})
        Each output size is ``(in - 1) * stride - 2 * padding + dilation * (kernel - 1) +
        output_padding + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import conv_transpose{rank}d
    >>> x = np.ones({example_x}, np.float32)
    >>> w = np.ones({example_wt}, np.float32)
    >>> conv_transpose{rank}d(x, w, stride=2, padding=1, output_padding=1).shape
    {example_yt}
"""

_EXAMPLES = {
    1: dict(example_x="(2, 3, 10)", example_w="(4, 3, 3)", example_y="(2, 4, 10)",
            example_wt="(3, 4, 3)", example_yt="(2, 4, 20)"),
    2: dict(example_x="(2, 3, 8, 8)", example_w="(4, 3, 3, 3)", example_y="(2, 4, 8, 8)",
            example_wt="(3, 4, 3, 3)", example_yt="(2, 4, 16, 16)"),
    3: dict(example_x="(1, 3, 4, 5, 6)", example_w="(2, 3, 3, 3, 3)", example_y="(1, 2, 4, 5, 6)",
            example_wt="(3, 2, 3, 3, 3)", example_yt="(1, 2, 8, 10, 12)"),
}

for _rank, _f, _ft in ((1, conv1d, conv_transpose1d), (2, conv2d, conv_transpose2d),
                       (3, conv3d, conv_transpose3d)):
    _f.__doc__ = _CONV_DOC.format(rank=_rank, **_DIMS[_rank], **_EXAMPLES[_rank])
    _ft.__doc__ = _CONV_TRANSPOSE_DOC.format(rank=_rank, **_DIMS[_rank], **_EXAMPLES[_rank])
del _rank, _f, _ft


# ---- gradients

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
