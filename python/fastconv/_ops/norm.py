"""Normalisation: batch, instance, group and layer norm — forward (re-exported by
:mod:`fastconv.functional`) and gradients (re-exported by :mod:`fastconv.grad`), side by side.
Semantics are PyTorch's. The C++ core computes (statistics in float64, fixed reduction order)
and validates shapes; here argument forms are normalised and running statistics updated."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _args, _core


def _eps(eps, op):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{op}: eps must be a float, got {eps!r}")
    return float(eps)


def _momentum(momentum, op):
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a float, got {momentum!r}")
    return float(momentum)


def _normalized_shape(value, op):
    return _args.int_list(value, "normalized_shape", op)


def update_running(running, value, momentum, name, op):
    """``running = (1 - momentum) running + momentum value`` in place (PyTorch's update)."""
    if not isinstance(running, np.ndarray) or not running.flags.writeable:
        raise TypeError(f"{op}: {name} must be a writable numpy array to be updated in training")
    running *= 1 - momentum
    running += (momentum * value).astype(running.dtype, copy=False)


def _unbiased(var, count):
    return var * (count / (count - 1)) if count > 1 else np.full_like(var, np.nan)


def batch_norm_stats(input, running_mean, running_var, weight, bias, training, momentum, eps,
                     op="batch_norm"):
    """batch_norm, returning also the (mean, var) it normalised with (float64)."""
    x = _args.array(input)
    y, mean, var = _core.norm_forward(
        "batch", op, x, _args.optional_array(weight), _args.optional_array(bias),
        _args.optional_array(running_mean), _args.optional_array(running_var), 1, [],
        bool(training), _eps(eps, op))
    if training and running_mean is not None:
        count = x.size // x.shape[1] if x.shape[1] else 0
        update_running(running_mean, mean, _momentum(momentum, op), "running_mean", op)
        update_running(running_var, _unbiased(var, count), momentum, "running_var", op)
    return y, mean, var


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over (N, C, *) per channel, as ``torch.nn.functional.batch_norm``.

    In training the batch's statistics normalise the input and, when given, ``running_mean`` /
    ``running_var`` (NumPy arrays of C values) are updated in place:
    ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased); otherwise
    the running statistics normalise it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> x = np.random.rand(8, 3, 4, 4).astype(np.float32)
    >>> y = F.batch_norm(x, None, None, training=True)
    >>> bool(abs(y.mean()) < 1e-5)
    True
    """
    return batch_norm_stats(input, running_mean, running_var, weight, bias, training, momentum,
                            eps)[0]


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance normalisation: each (n, c) plane of (N, C, *) normalised by its own statistics,
    as ``torch.nn.functional.instance_norm``; with ``use_input_stats=False`` the running
    statistics are used instead, and in the other case they are updated (when given) with the
    batch average of the instances' statistics.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> y = F.instance_norm(np.random.rand(2, 3, 8, 8).astype(np.float32))
    >>> bool(abs(y[1, 2].mean()) < 1e-5)
    True
    """
    return instance_norm_stats(input, running_mean, running_var, weight, bias, use_input_stats,
                               momentum, eps)[0]


def instance_norm_stats(input, running_mean, running_var, weight, bias, use_input_stats,
                        momentum, eps, op="instance_norm"):
    """instance_norm, returning also the (mean, var) it normalised with (float64): per (n, c)
    with the input's statistics, per channel with the running ones."""
    x = _args.array(input)
    if not use_input_stats:
        return batch_norm_stats(x, running_mean, running_var, weight, bias, False, momentum,
                                eps, op)
    channels = x.shape[1] if x.ndim >= 2 else 0
    if x.ndim >= 2 and int(np.prod(x.shape[2:])) <= 1:
        raise ValueError(f"{op}: Expected more than 1 spatial element when training, got input "
                         f"size {list(x.shape)}")
    y, mean, var = _core.norm_forward(
        "group", op, x, _args.optional_array(weight), _args.optional_array(bias), None, None,
        max(channels, 1), [], True, _eps(eps, op))
    if running_mean is not None:
        count = x.size // (x.shape[0] * channels) if x.shape[0] * channels else 0
        m = _momentum(momentum, op)
        update_running(running_mean, mean.reshape(x.shape[0], -1).mean(0), m, "running_mean", op)
        update_running(running_var, _unbiased(var, count).reshape(x.shape[0], -1).mean(0), m,
                       "running_var", op)
    return y, mean, var


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (Wu & He 2018): the channels of (N, C, *) in ``num_groups`` groups,
    each (n, group) normalised by its statistics; per-channel ``weight`` and ``bias``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> F.group_norm(np.random.rand(2, 6, 5).astype(np.float32), 3).shape
    (2, 6, 5)
    """
    op = "group_norm"
    return _core.norm_forward("group", op, _args.array(input), _args.optional_array(weight),
                              _args.optional_array(bias), None, None,
                              _args.integer(num_groups, "num_groups", op), [], True,
                              _eps(eps, op))[0]


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation (Ba et al. 2016) over the trailing ``normalized_shape`` dims, with
    elementwise ``weight`` and ``bias`` of that shape, as ``torch.nn.functional.layer_norm``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> y = F.layer_norm(np.random.rand(4, 10).astype(np.float32), (10,))
    >>> bool(abs(y[0].mean()) < 1e-5)
    True
    """
    op = "layer_norm"
    return _core.norm_forward("layer", op, _args.array(input), _args.optional_array(weight),
                              _args.optional_array(bias), None, None, 1,
                              _normalized_shape(normalized_shape, op), True, _eps(eps, op))[0]


# ---- gradients: (grad_input, grad_weight, grad_bias); the statistics are recomputed from input

def norm_backward(kind, op, grad_output, input, weight, mean, var, groups, normalized_shape,
                  use_input_stats, eps):
    return _core.norm_backward(kind, op, _args.array(input), _args.array(grad_output),
                               _args.optional_array(weight), mean, var, groups, normalized_shape,
                               use_input_stats, eps, True, True, True)


def batch_norm_backward(grad_output, input, running_mean=None, running_var=None, weight=None,
                        training=False, eps=1e-5):
    """Gradients of :func:`fastconv.functional.batch_norm`: ``(grad_input, grad_weight,
    grad_bias)``. In training they flow through the batch statistics (recomputed from input);
    otherwise the running statistics are constants. grad_weight and grad_bias are returned even
    without a weight (as for a weight of ones).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import grad
    >>> x = np.random.rand(4, 3, 5, 5)
    >>> dx, dw, db = grad.batch_norm_backward(np.ones_like(x), x, training=True)
    >>> bool(abs(dx).max() < 1e-12), db.tolist()
    (True, [100.0, 100.0, 100.0])
    """
    op = "batch_norm_backward"
    x = _args.array(input)
    eps = _eps(eps, op)
    if training:
        mean, var = _core.norm_statistics("batch", op, x, 1, [])
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: running_mean and running_var must be given when not training")
        mean, var = _args.array(running_mean), _args.array(running_var)
    return norm_backward("batch", op, grad_output, x, weight, mean, var, 1, [], bool(training),
                         eps)


def instance_norm_backward(grad_output, input, weight=None, eps=1e-5):
    """Gradients of :func:`fastconv.functional.instance_norm` with the instances' own statistics:
    ``(grad_input, grad_weight, grad_bias)``.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> x = np.random.rand(2, 3, 4)
    >>> grad.instance_norm_backward(np.ones_like(x), x)[2].tolist()
    [8.0, 8.0, 8.0]
    """
    op = "instance_norm_backward"
    x = _args.array(input)
    groups = max(x.shape[1] if x.ndim >= 2 else 0, 1)
    mean, var = _core.norm_statistics("group", op, x, groups, [])
    return norm_backward("group", op, grad_output, x, weight, mean, var, groups, [], True,
                         _eps(eps, op))


def group_norm_backward(grad_output, input, num_groups, weight=None, eps=1e-5):
    """Gradients of :func:`fastconv.functional.group_norm`: ``(grad_input, grad_weight,
    grad_bias)``.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> x = np.random.rand(2, 4, 3)
    >>> [a.shape for a in grad.group_norm_backward(np.ones_like(x), x, 2, np.ones(4))]
    [(2, 4, 3), (4,), (4,)]
    """
    op = "group_norm_backward"
    x = _args.array(input)
    groups = _args.integer(num_groups, "num_groups", op)
    mean, var = _core.norm_statistics("group", op, x, groups, [])
    return norm_backward("group", op, grad_output, x, weight, mean, var, groups, [], True,
                         _eps(eps, op))


def layer_norm_backward(grad_output, input, normalized_shape, weight=None, eps=1e-5):
    """Gradients of :func:`fastconv.functional.layer_norm`: ``(grad_input, grad_weight,
    grad_bias)``, the last two of ``normalized_shape``.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> x = np.random.rand(5, 3)
    >>> grad.layer_norm_backward(np.ones_like(x), x, (3,))[2].tolist()
    [5.0, 5.0, 5.0]
    """
    op = "layer_norm_backward"
    x = _args.array(input)
    shape = _normalized_shape(normalized_shape, op)
    mean, var = _core.norm_statistics("layer", op, x, 1, shape)
    return norm_backward("layer", op, grad_output, x, weight, mean, var, 1, shape, True,
                         _eps(eps, op))
