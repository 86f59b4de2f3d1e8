"""Stateless operations on NumPy arrays with ``torch.nn.functional``'s signatures and semantics.

Layout is NC[D]HW for activations and OI[D]HW for weights; convolution is cross-correlation,
as in PyTorch. float32 is the fast path, float64 is computed in double precision; outputs are
new C-contiguous arrays of the input's dtype. Gradients live in :mod:`fastconv.grad`.

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
]
