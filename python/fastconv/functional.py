"""Stateless operations on NumPy arrays with ``torch.nn.functional``'s signatures and semantics.

Layout is NC[D]HW for activations and OI[D]HW for weights; convolution is cross-correlation,
as in PyTorch. float32 is the fast path, float64 is computed in double precision; outputs are
new C-contiguous arrays of the input's dtype (``inplace=True`` writes into the input array).
Besides convolution and pooling: normalisations, activations, softmax, linear, dropout and the
losses. Gradients live in :mod:`fastconv.grad`.

>>> import numpy as np
>>> from fastconv import functional as F
>>> x = np.random.rand(1, 3, 32, 32).astype(np.float32)
>>> y = F.max_pool2d(F.conv2d(x, np.ones((8, 3, 3, 3), np.float32), padding=1), 2)
>>> y.shape
(1, 8, 16, 16)
"""

from ._ops.conv import (
    conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d,
)
from ._ops.activation import (
    elu, gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, relu, relu6, sigmoid,
    silu, softmax, tanh,
)
from ._ops.linear import dropout, linear
from ._ops.loss import cross_entropy, nll_loss
from ._ops.norm import batch_norm, group_norm, instance_norm, layer_norm
from ._ops.pool import (
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
    adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
    avg_pool1d, avg_pool2d, avg_pool3d,
    max_pool1d, max_pool2d, max_pool3d,
)

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "batch_norm", "instance_norm", "group_norm", "layer_norm",
    "relu", "relu6", "leaky_relu", "hardtanh", "elu", "sigmoid", "tanh", "silu", "hardsigmoid",
    "hardswish", "gelu", "softmax", "log_softmax",
    "linear", "dropout", "cross_entropy", "nll_loss",
]
