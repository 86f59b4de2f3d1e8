"""Pooling layers — MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool in 1-D/2-D/3-D — forward
and backward side by side on :mod:`fastconv.functional` and :mod:`fastconv.grad`, with
``torch.nn``'s arguments. Max pooling keeps its argmax indices for the backward."""

from __future__ import annotations

import numpy as np

from .. import functional as F, grad
from .module import Module, is_grad_enabled


class _MaxPool(Module):
    rank = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        x = np.asarray(x)
        need = self.return_indices or is_grad_enabled()
        out = getattr(F, f"max_pool{self.rank}d")(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, need)
        y, idx = out if need else (out, None)
        self._keep(idx=idx, shape=x.shape)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        ctx = self._context()
        return getattr(grad, f"max_pool{self.rank}d_input")(grad_output, ctx["idx"], ctx["shape"])

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPool):
    """``torch.nn.MaxPool1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.MaxPool1d(2)(np.arange(4, dtype=np.float32).reshape(1, 1, 4)).tolist()
    [[[1.0, 3.0]]]
    """
    rank = 1


class MaxPool2d(_MaxPool):
    """``torch.nn.MaxPool2d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.MaxPool2d(3, stride=2, padding=1)(np.ones((1, 4, 8, 8), np.float32)).shape
    (1, 4, 4, 4)
    """
    rank = 2


class MaxPool3d(_MaxPool):
    """``torch.nn.MaxPool3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.MaxPool3d(2)(np.ones((1, 1, 4, 4, 4), np.float32)).shape
    (1, 1, 2, 2, 2)
    """
    rank = 3


class _AvgPool(Module):
    rank = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def _kw(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                    divisor_override=self.divisor_override)

    def forward(self, x):
        x = np.asarray(x)
        self._keep(shape=x.shape)
        return getattr(F, f"avg_pool{self.rank}d")(x, **self._kw())

    def backward(self, grad_output):
        return getattr(grad, f"avg_pool{self.rank}d_input")(grad_output, self._context()["shape"],
                                                            **self._kw())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPool):
    """``torch.nn.AvgPool1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AvgPool1d(2)(np.arange(4, dtype=np.float32).reshape(1, 1, 4)).tolist()
    [[[0.5, 2.5]]]
    """
    rank = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPool):
    """``torch.nn.AvgPool2d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AvgPool2d(2)(np.ones((1, 3, 4, 4), np.float32)).shape
    (1, 3, 2, 2)
    """
    rank = 2


class AvgPool3d(_AvgPool):
    """``torch.nn.AvgPool3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AvgPool3d(2)(np.ones((1, 1, 2, 2, 2), np.float32)).shape
    (1, 1, 1, 1, 1)
    """
    rank = 3


class _AdaptiveAvgPool(Module):
    rank = 2

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        x = np.asarray(x)
        self._keep(shape=x.shape)
        return getattr(F, f"adaptive_avg_pool{self.rank}d")(x, self.output_size)

    def backward(self, grad_output):
        return getattr(grad, f"adaptive_avg_pool{self.rank}d_input")(grad_output,
                                                                     self._context()["shape"])

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """``torch.nn.AdaptiveAvgPool1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveAvgPool1d(1)(np.arange(4, dtype=np.float32).reshape(1, 1, 4)).tolist()
    [[[1.5]]]
    """
    rank = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """``torch.nn.AdaptiveAvgPool2d`` (``(1, 1)``: global average pooling).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveAvgPool2d((1, 1))(np.ones((2, 8, 7, 7), np.float32)).shape
    (2, 8, 1, 1)
    """
    rank = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """``torch.nn.AdaptiveAvgPool3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveAvgPool3d(1)(np.ones((1, 2, 3, 3, 3), np.float32)).shape
    (1, 2, 1, 1, 1)
    """
    rank = 3


class _AdaptiveMaxPool(Module):
    rank = 2

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        x = np.asarray(x)
        y, idx = getattr(F, f"adaptive_max_pool{self.rank}d")(x, self.output_size, True)
        self._keep(idx=idx, shape=x.shape)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        ctx = self._context()
        return getattr(grad, f"adaptive_max_pool{self.rank}d_input")(grad_output, ctx["idx"],
                                                                     ctx["shape"])

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """``torch.nn.AdaptiveMaxPool1d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveMaxPool1d(1)(np.arange(4, dtype=np.float32).reshape(1, 1, 4)).tolist()
    [[[3.0]]]
    """
    rank = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """``torch.nn.AdaptiveMaxPool2d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveMaxPool2d(2)(np.ones((1, 1, 5, 5), np.float32)).shape
    (1, 1, 2, 2)
    """
    rank = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """``torch.nn.AdaptiveMaxPool3d``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.AdaptiveMaxPool3d(1)(np.ones((1, 1, 2, 2, 2), np.float32)).shape
    (1, 1, 1, 1, 1)
    """
    rank = 3
