"""Activation layers (ReLU ... GELU, Softmax, LogSoftmax), forward and backward side by side on
:mod:`fastconv.functional` and :mod:`fastconv.grad`, with ``torch.nn``'s arguments. The clamps
(ReLU, ReLU6, Hardtanh, LeakyReLU with a non-negative slope) take their gradient from the output,
so ``inplace=True`` costs no copy; the others keep their input (copied first when in place)."""

from __future__ import annotations

import numpy as np

from .. import functional as F, grad
from .conv import folded_away
from .module import Module, is_grad_enabled


class _Activation(Module):
    name = "relu"
    from_output = False  # the gradient can be computed from the output alone

    def __init__(self, inplace=False, **params):
        super().__init__()
        self.inplace = inplace
        self.params = params

    def forward(self, x):
        x = np.asarray(x)
        if folded_away(self):  # fused into the convolution before it (fastconv.nn.fuse)
            return x
        inplace = {"inplace": True} if self.inplace else {}
        keep = is_grad_enabled()
        x_kept = x.copy() if keep and self.inplace and not self.from_output else x
        y = getattr(F, self.name)(x, **self.params, **inplace)
        self._keep(v=y if self.from_output else x_kept)
        return y

    def backward(self, grad_output):
        return getattr(grad, f"{self.name}_input")(grad_output, self._context()["v"], **self.params)

    def extra_repr(self):
        items = [f"{k}={v}" for k, v in self.params.items()]
        if self.inplace:
            items.append("inplace=True")
        return ", ".join(items)


class ReLU(_Activation):
    """``torch.nn.ReLU``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> relu = nn.ReLU()
    >>> y = relu(np.array([-1.0, 2.0]))
    >>> y.tolist(), relu.backward(np.ones(2)).tolist()
    ([0.0, 2.0], [0.0, 1.0])
    """
    name, from_output = "relu", True


class ReLU6(_Activation):
    """``torch.nn.ReLU6``."""
    name, from_output = "relu6", True


class Hardtanh(_Activation):
    """``torch.nn.Hardtanh``."""
    name, from_output = "hardtanh", True

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__(inplace, min_val=min_val, max_val=max_val)


class LeakyReLU(_Activation):
    """``torch.nn.LeakyReLU``."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace, negative_slope=negative_slope)
        self.from_output = negative_slope >= 0  # the output's sign is the input's


class ELU(_Activation):
    """``torch.nn.ELU``."""
    name = "elu"

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(inplace, alpha=alpha)


class Sigmoid(_Activation):
    """``torch.nn.Sigmoid``."""
    name = "sigmoid"

    def __init__(self):
        super().__init__()


class Tanh(_Activation):
    """``torch.nn.Tanh``."""
    name = "tanh"

    def __init__(self):
        super().__init__()


class SiLU(_Activation):
    """``torch.nn.SiLU`` (swish)."""
    name = "silu"


class Hardsigmoid(_Activation):
    """``torch.nn.Hardsigmoid``."""
    name = "hardsigmoid"


class Hardswish(_Activation):
    """``torch.nn.Hardswish``."""
    name = "hardswish"


class GELU(_Activation):
    """``torch.nn.GELU`` (``approximate='none'`` or ``'tanh'``)."""
    name = "gelu"

    def __init__(self, approximate="none"):
        super().__init__(approximate=approximate)


class _Softmax(Module):
    log = False

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = np.asarray(x)
        dim = self.dim
        if dim is None:  # PyTorch's legacy implicit choice
            dim = 0 if x.ndim in (0, 1, 3) else 1
        y = (F.log_softmax if self.log else F.softmax)(x, dim)
        self._keep(y=y, dim=dim)
        return y

    def backward(self, grad_output):
        ctx = self._context()
        fn = grad.log_softmax_input if self.log else grad.softmax_input
        return fn(grad_output, ctx["y"], ctx["dim"])

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_Softmax):
    """``torch.nn.Softmax``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.Softmax(dim=1)(np.zeros((1, 2))).tolist()
    [[0.5, 0.5]]
    """


class LogSoftmax(_Softmax):
    """``torch.nn.LogSoftmax``."""
    log = True
