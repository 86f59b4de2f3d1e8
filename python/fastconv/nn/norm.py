"""Normalisation layers — BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm, LayerNorm —
forward and backward side by side on the C++ core's normalisations, with ``torch.nn``'s
arguments, buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) and state_dict
keys. The forward keeps the statistics it normalised with, so the backward reads the input once
more and computes nothing twice."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._ops import norm as ops
from .conv import folded_away
from .module import Module, Parameter, accumulate


class _Norm(Module):
    """Shared by the layers: affine parameters, the kept context and the backward."""

    kind = "batch"

    def _affine(self, shape, affine, bias=True, dtype=np.float32):
        self.weight = Parameter(np.ones(shape, dtype)) if affine else None
        self.bias = Parameter(np.zeros(shape, dtype)) if affine and bias else None
        if not affine:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        elif not bias:
            self.register_parameter("bias", None)

    def _backward(self, grad_output, kind, op, groups=1, normalized_shape=()):
        ctx = self._context()
        dx, dw, db = _core.norm_backward(
            kind, op, ctx["x"], np.asarray(grad_output), self.weight, ctx["mean"], ctx["var"],
            groups, list(normalized_shape), ctx["input_stats"], self.eps, True,
            self.weight is not None, self.bias is not None)
        if dw is not None:
            accumulate(self.weight, dw)
        if db is not None:
            accumulate(self.bias, db)
        return dx


class _RunningNorm(_Norm):
    """Per-channel normalisation with optional running statistics (batch and instance norm)."""

    def _per_channel(self, num_features, eps, momentum, affine, track_running_stats, dtype):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._affine(num_features, affine, dtype=dtype)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_RunningNorm):
    dims = (4,)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        self._per_channel(num_features, eps, momentum, affine, track_running_stats, dtype)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _check(self, x):
        if x.ndim not in self.dims:
            want = " or ".join(f"{d}D" for d in self.dims)
            raise ValueError(f"{type(self).__name__}: expected {want} input (got {x.ndim}D input)")

    def forward(self, x):
        x = np.asarray(x)
        if folded_away(self):  # folded into the convolution before it (fastconv.nn.fuse)
            return x
        self._check(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        y, mean, var = ops.batch_norm_stats(
            x, self.running_mean if update or not batch_stats else None,
            self.running_var if update or not batch_stats else None, self.weight, self.bias,
            batch_stats, factor, self.eps, "batch_norm")
        self._keep(x=x, mean=mean, var=var, input_stats=batch_stats)
        return y

    def backward(self, grad_output):
        return self._backward(grad_output, "batch", "batch_norm_backward")


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d`` over (N, C) or (N, C, L).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> bn = nn.BatchNorm1d(3)
    >>> y = bn(np.random.rand(8, 3).astype(np.float32))
    >>> int(bn.num_batches_tracked), bn.running_mean.shape
    (1, (3,))
    """
    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d`` over (N, C, H, W).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.BatchNorm2d(4).eval()(np.ones((1, 4, 2, 2), np.float32)).shape
    (1, 4, 2, 2)
    """
    dims = (4,)


class BatchNorm3d(_BatchNorm):
    """``torch.nn.BatchNorm3d`` over (N, C, D, H, W).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.BatchNorm3d(2)(np.random.rand(2, 2, 2, 2, 2).astype(np.float32)).shape
    (2, 2, 2, 2, 2)
    """
    dims = (5,)


class _InstanceNorm(_RunningNorm):
    rank = 2

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32):
        super().__init__()
        self._per_channel(num_features, eps, momentum, affine, track_running_stats, dtype)

    def forward(self, x):
        x = np.asarray(x)
        unbatched = x.ndim == self.rank + 1
        if x.ndim != self.rank + 2 and not unbatched:
            raise ValueError(f"{type(self).__name__}: expected {self.rank + 1}D or "
                             f"{self.rank + 2}D input (got {x.ndim}D input)")
        xb = x[None] if unbatched else x
        if xb.shape[1] != self.num_features and (self.affine or self.track_running_stats):
            raise ValueError(f"{type(self).__name__}: expected input's size at dim 1 to match "
                             f"num_features ({self.num_features}), but got {xb.shape[1]}")
        input_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats  # torch: num_batches_tracked stays,
        momentum = 0.0 if self.momentum is None else self.momentum  # momentum None counts as 0
        y, mean, var = ops.instance_norm_stats(
            xb, self.running_mean if update or not input_stats else None,
            self.running_var if update or not input_stats else None, self.weight, self.bias,
            input_stats, momentum, self.eps)
        self._keep(x=xb, mean=mean, var=var, input_stats=input_stats, unbatched=unbatched)
        return y[0] if unbatched else y

    def backward(self, grad_output):
        ctx = self._context()
        g = np.asarray(grad_output)
        g = g[None] if ctx["unbatched"] else g
        if ctx["input_stats"]:
            dx = self._backward(g, "group", "instance_norm_backward", max(ctx["x"].shape[1], 1))
        else:
            dx = self._backward(g, "batch", "instance_norm_backward")
        return dx[0] if ctx["unbatched"] else dx


class InstanceNorm1d(_InstanceNorm):
    """``torch.nn.InstanceNorm1d`` over (N, C, L) or (C, L).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.InstanceNorm1d(3)(np.random.rand(2, 3, 5).astype(np.float32)).shape
    (2, 3, 5)
    """
    rank = 1


class InstanceNorm2d(_InstanceNorm):
    """``torch.nn.InstanceNorm2d`` over (N, C, H, W) or (C, H, W).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.InstanceNorm2d(3, affine=True)(np.random.rand(1, 3, 4, 4).astype(np.float32)).shape
    (1, 3, 4, 4)
    """
    rank = 2


class InstanceNorm3d(_InstanceNorm):
    """``torch.nn.InstanceNorm3d`` over (N, C, D, H, W) or (C, D, H, W).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.InstanceNorm3d(2)(np.random.rand(1, 2, 3, 3, 3).astype(np.float32)).shape
    (1, 2, 3, 3, 3)
    """
    rank = 3


class GroupNorm(_Norm):
    """``torch.nn.GroupNorm``: ``num_channels`` channels in ``num_groups`` groups.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.GroupNorm(2, 4)(np.random.rand(3, 4, 5).astype(np.float32)).shape
    (3, 4, 5)
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        self._affine(num_channels, affine, dtype=dtype)

    def forward(self, x):
        x = np.asarray(x)
        y, mean, var = _core.norm_forward("group", "group_norm", x, self.weight, self.bias, None,
                                          None, self.num_groups, [], True, float(self.eps))
        self._keep(x=x, mean=mean, var=var, input_stats=True)
        return y

    def backward(self, grad_output):
        return self._backward(grad_output, "group", "group_norm_backward", self.num_groups)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(_Norm):
    """``torch.nn.LayerNorm`` over the trailing ``normalized_shape`` dims.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> ln = nn.LayerNorm(6)
    >>> ln(np.random.rand(2, 6).astype(np.float32)).shape, ln.weight.shape
    ((2, 6), (6,))
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self._affine(shape, elementwise_affine, bias, dtype)

    def forward(self, x):
        x = np.asarray(x)
        y, mean, var = _core.norm_forward("layer", "layer_norm", x, self.weight, self.bias, None,
                                          None, 1, list(self.normalized_shape), True,
                                          float(self.eps))
        self._keep(x=x, mean=mean, var=var, input_stats=True)
        return y

    def backward(self, grad_output):
        return self._backward(grad_output, "layer", "layer_norm_backward", 1,
                              self.normalized_shape)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
