"""Building blocks of the model zoo that are layers of their own: channel shuffle (ShuffleNet),
squeeze-and-excitation (Hu et al. 2018; torchvision.ops.SqueezeExcitation's names), stochastic
depth (Huang et al. 2016; torchvision.ops.StochasticDepth), each with its backward."""

from __future__ import annotations

import numpy as np

from .. import _random
from .activation import ReLU, Sigmoid
from .conv import Conv2d
from .module import Module
from .pool import AdaptiveAvgPool2d


def channel_shuffle(x, groups):
    """(N, C, *) with channels (g, C/g) reordered to (C/g, g) (Zhang et al. 2018)."""
    x = np.asarray(x)
    n, c = x.shape[:2]
    return np.ascontiguousarray(
        x.reshape(n, groups, c // groups, *x.shape[2:]).swapaxes(1, 2)).reshape(x.shape)


class ChannelShuffle(Module):
    """``torch.nn.ChannelShuffle``: interleaves the channels of ``groups`` groups.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.ChannelShuffle(2)(np.arange(4.0).reshape(1, 4, 1)).ravel().tolist()
    [0.0, 2.0, 1.0, 3.0]
    """

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim < 3 or x.shape[1] % self.groups:
            raise ValueError(f"ChannelShuffle: expected (N, C, *) input with C divisible by "
                             f"groups={self.groups}, but got {x.shape}")
        return channel_shuffle(x, self.groups)

    def backward(self, grad_output):
        g = np.asarray(grad_output)
        return channel_shuffle(g, g.shape[1] // self.groups)  # the inverse permutation

    def extra_repr(self):
        return f"groups={self.groups}"


class SqueezeExcitation(Module):
    """Channel attention: ``x * scale_activation(fc2(activation(fc1(avgpool(x)))))`` with 1x1
    convolutions ``fc1`` (C -> squeeze_channels) and ``fc2`` (back to C).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> se = nn.SqueezeExcitation(8, 2)
    >>> y = se(np.ones((1, 8, 4, 4), np.float32))
    >>> y.shape, se.backward(np.ones_like(y)).shape
    ((1, 8, 4, 4), (1, 8, 4, 4))
    """

    def __init__(self, input_channels, squeeze_channels, activation=ReLU,
                 scale_activation=Sigmoid):
        super().__init__()
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, x):
        s = self.avgpool(x)
        return self.scale_activation(self.fc2(self.activation(self.fc1(s))))

    def forward(self, x):
        x = np.asarray(x)
        scale = self._scale(x)
        self._keep(x=x, scale=scale)
        return x * scale

    def backward(self, grad_output):
        ctx = self._context()
        g = np.asarray(grad_output)
        x, scale = ctx["x"], ctx["scale"]
        gs = (g * x).sum(axis=(2, 3), keepdims=True, dtype=np.float64).astype(g.dtype)
        gs = self.scale_activation.backward(gs)
        gs = self.fc1.backward(self.activation.backward(self.fc2.backward(gs)))
        return g * scale + self.avgpool.backward(gs)


class StochasticDepth(Module):
    """torchvision.ops.StochasticDepth: in training, drops the whole input of a sample ('row')
    or of the batch ('batch') with probability ``p`` and scales survivors by ``1 / (1 - p)``;
    the identity in evaluation mode.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> nn.StochasticDepth(0.2, "row").eval()(np.ones((2, 3))).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, p, mode):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
        if mode not in ("batch", "row"):
            raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
        self.p, self.mode = p, mode

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0:
            self._keep(scale=None)
            return x
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        survival = 1.0 - self.p
        keep = _random.generator().random(shape) < survival
        scale = (keep / survival if survival > 0 else keep * 0.0).astype(x.dtype)
        self._keep(scale=scale)
        return x * scale

    def backward(self, grad_output):
        scale = self._context()["scale"]
        return grad_output if scale is None else np.asarray(grad_output) * scale

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"
