"""Linear, Dropout and the shape layers' cousins: forward and backward side by side, with
``torch.nn``'s arguments and state_dict keys."""

from __future__ import annotations

import numpy as np

from .. import functional as F, grad
from .._ops.linear import apply_dropout, dropout_mask, linear_weight_and_bias
from . import init
from .module import Module, Parameter, accumulate


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dim, as ``torch.nn.Linear`` (its default
    initialisation).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> fc = nn.Linear(4, 3)
    >>> y = fc(np.ones((2, 4), np.float32))
    >>> y.shape, fc.backward(np.ones_like(y)).shape, fc.weight.grad.shape
    ((2, 3), (2, 4), (3, 4))
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        init.default_layer_init(self.weight, self.bias, in_features)

    def forward(self, x):
        x = np.asarray(x)
        self._keep(x=x)
        return F.linear(x, self.weight, self.bias)

    def backward(self, grad_output):
        x = self._context()["x"]
        g = np.asarray(grad_output)
        dw, db = linear_weight_and_bias(g, x)
        accumulate(self.weight, dw)
        if self.bias is not None:
            accumulate(self.bias, db)
        return grad.linear_input(g, self.weight)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Dropout(Module):
    """``torch.nn.Dropout``: in training, zeroes elements with probability ``p`` and scales the
    rest by ``1 / (1 - p)``; the identity in evaluation mode. The mask comes from fastconv's
    generator (:func:`fastconv.manual_seed`) and is kept for the backward.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.Dropout(0.5).eval()(np.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        dropout_mask((), p)  # validates p
        self.p, self.inplace = p, inplace

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0:
            self._keep(mask=None)
            return x
        mask = dropout_mask(x.shape, self.p)
        self._keep(mask=mask)
        return apply_dropout(x, mask, self.p, x if self.inplace else None)

    def backward(self, grad_output):
        mask = self._context()["mask"]
        return grad_output if mask is None else grad.dropout_input(grad_output, mask, self.p)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
