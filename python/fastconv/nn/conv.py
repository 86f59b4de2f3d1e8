"""Convolution layers: Conv1d/2d/3d and ConvTranspose1d/2d/3d, forward and backward side by
side on :mod:`fastconv.functional` and :mod:`fastconv.grad`. Parameters and state_dict keys as
``torch.nn`` (``weight``, ``bias``); PyTorch's default initialisation. A fused model (see
:func:`fastconv.nn.fuse`) runs its convolutions as :func:`fastconv.plan` objects, with weights
packed once, in evaluation mode under :func:`fastconv.nn.no_grad`."""

from __future__ import annotations

import numpy as np

from .. import functional as F, grad
from .._plan import plan as make_plan
from . import init
from .module import Module, Parameter, accumulate, is_grad_enabled, weights_version


def _tuple(v, rank):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * rank


class _ConvNd(Module):
    rank = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", output_padding=0, dtype=np.float32):
        super().__init__()
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) and "
                             f"out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{type(self).__name__}: padding_mode must be one of 'zeros', "
                             f"'reflect', 'replicate', 'circular', but got {padding_mode!r}")
        r = self.rank
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, r)
        self.stride = _tuple(stride, r)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, r)
        self.dilation = _tuple(dilation, r)
        self.output_padding = _tuple(output_padding, r)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype))
        self.bias = Parameter(np.empty(out_channels, dtype)) if bias else None
        self.reset_parameters()
        # fused inference (fastconv.nn.fuse): the folded batch norm and activation, and the plan
        object.__setattr__(self, "_fusion", (None, None))
        object.__setattr__(self, "_residual", None)  # (activation name or None) when fused
        object.__setattr__(self, "_plan", None)
        object.__setattr__(self, "_plan_version", -1)

    def reset_parameters(self):
        init.default_layer_init(self.weight, self.bias, int(np.prod(self.weight.shape[1:])))

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0,) * self.rank, "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.rank:
            s += f", dilation={self.dilation}"
        if self.transposed and self.output_padding != (0,) * self.rank:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class _Conv(_ConvNd):
    def forward(self, x):
        x = np.asarray(x)
        if self.fused_active():
            return self._inference_plan()(x)
        self._keep(x=x)
        conv = getattr(F, f"conv{self.rank}d")
        return conv(x, self.weight, self.bias, padding_mode=self.padding_mode, **self._args())

    def backward(self, grad_output):
        x, r, g = self._context()["x"], self.rank, np.asarray(grad_output)
        kw = dict(padding_mode=self.padding_mode, **self._args())
        accumulate(self.weight, getattr(grad, f"conv{r}d_weight")(x, self.weight.shape, g, **kw))
        if self.bias is not None:
            accumulate(self.bias, getattr(grad, f"conv{r}d_bias")(g))
        return getattr(grad, f"conv{r}d_input")(x.shape, self.weight, g, **kw)

    # ---- fused inference (fastconv.nn.fuse)
    def set_fusion(self, bn, act, residual=False, residual_activation=None):
        """Fold batch norm ``bn`` and activation module ``act`` (either may be None) into this
        convolution's inference plan; with ``residual``, the plan also adds a block's shortcut
        and then applies ``residual_activation`` (:meth:`forward_residual`)."""
        object.__setattr__(self, "_fusion", (bn, act))
        object.__setattr__(self, "_residual", (residual_activation,) if residual else None)
        object.__setattr__(self, "_plan", None)
        for m in (bn, act):
            if m is not None:
                object.__setattr__(m, "_folded_into", self)

    def fused_with(self):
        """(batch norm class name or None, activation name or None) folded into the plan."""
        from .fusion import activation_name
        bn, act = self._fusion
        return (type(bn).__name__ if bn is not None else None,
                activation_name(act) if act is not None else None)

    def fused_active(self):
        """True when this call runs the fused plan: evaluation mode (this layer and its folded
        batch norm) under no_grad."""
        bn = self._fusion[0]
        return not (self.training or is_grad_enabled() or (bn is not None and bn.training))

    def _inference_plan(self):
        if self._plan is None or self._plan_version != weights_version():
            from .fusion import activation_name, folded_weights
            bn, act = self._fusion
            w, b = folded_weights(self, bn)
            activation = activation_name(act) if act is not None else None
            if self._residual is not None:
                activation = self._residual[0]
            # The next layer reads the output at once: written through the caches.
            plan = make_plan(w, b, padding_mode=self.padding_mode, activation=activation,
                             output_stores="cache", **self._args())
            object.__setattr__(self, "_plan", plan)
            object.__setattr__(self, "_plan_version", weights_version())
        return self._plan

    def residual_fused_active(self):
        """True when :meth:`forward_residual` runs the fused plan now."""
        return self._residual is not None and self.fused_active()

    def forward_residual(self, x, residual):
        """The fused ``act(conv(x) + bias + residual)`` of a residual block's last convolution
        (only while :meth:`residual_fused_active`)."""
        return self._inference_plan()(np.asarray(x), residual)


def folded_away(module) -> bool:
    """True when ``module`` (a batch norm or activation) is folded into a convolution's plan
    that runs now: it then passes its input through."""
    conv = module.__dict__.get("_folded_into")
    return conv is not None and module in conv._fusion and conv.fused_active()


class Conv1d(_Conv):
    """1-D convolution over (N, C, L), as ``torch.nn.Conv1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.Conv1d(2, 4, 3, padding=1)(np.ones((1, 2, 8), np.float32)).shape
    (1, 4, 8)
    """
    rank = 1


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W), as ``torch.nn.Conv2d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> y = conv(np.ones((1, 3, 16, 16), np.float32))
    >>> y.shape, conv.backward(np.ones_like(y)).shape
    ((1, 8, 8, 8), (1, 3, 16, 16))
    """
    rank = 2


class Conv3d(_Conv):
    """3-D convolution over (N, C, D, H, W), as ``torch.nn.Conv3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.Conv3d(1, 2, 3)(np.ones((1, 1, 4, 4, 4), np.float32)).shape
    (1, 2, 2, 2, 2)
    """
    rank = 3


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype)

    def _targs(self):
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)

    def forward(self, x):
        x = np.asarray(x)
        y = getattr(F, f"conv_transpose{self.rank}d")(x, self.weight, self.bias, **self._targs())
        self._keep(x=x)
        return y

    def backward(self, grad_output):
        x, r, g = self._context()["x"], self.rank, np.asarray(grad_output)
        kw = self._targs()
        accumulate(self.weight,
                   getattr(grad, f"conv_transpose{r}d_weight")(x, self.weight.shape, g, **kw))
        if self.bias is not None:
            accumulate(self.bias, getattr(grad, f"conv{r}d_bias")(g))
        return getattr(grad, f"conv_transpose{r}d_input")(x.shape, self.weight, g, **kw)


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution, as ``torch.nn.ConvTranspose1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.ConvTranspose1d(2, 1, 4, stride=2, padding=1)(np.ones((1, 2, 5), np.float32)).shape
    (1, 1, 10)
    """
    rank = 1


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution, as ``torch.nn.ConvTranspose2d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.ConvTranspose2d(4, 2, 2, stride=2)(np.ones((1, 4, 3, 3), np.float32)).shape
    (1, 2, 6, 6)
    """
    rank = 2


class ConvTranspose3d(_ConvTranspose):
    """Transposed 3-D convolution, as ``torch.nn.ConvTranspose3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.ConvTranspose3d(1, 1, 2, stride=2)(np.ones((1, 1, 2, 2, 2), np.float32)).shape
    (1, 1, 4, 4, 4)
    """
    rank = 3
