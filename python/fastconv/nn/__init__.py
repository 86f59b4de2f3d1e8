"""Layers with explicit forward and backward on NumPy arrays, mirroring ``torch.nn``.

Every layer is a :class:`Module`: parameters are :class:`Parameter` arrays with a ``.grad``;
``state_dict()`` uses PyTorch's key names, so weights move between the two; ``forward(x)``
keeps what ``backward(grad_output)`` needs, and ``backward`` returns the input's gradient while
adding the parameters' gradients to their ``.grad``. There is no general autograd: a model
composes its layers' backward calls (containers and the models of :mod:`fastconv.models` do it).

>>> import numpy as np
>>> from fastconv import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
>>> x = np.random.rand(8, 1, 28, 28).astype(np.float32)
>>> logits = net(x)
>>> criterion = nn.CrossEntropyLoss()
>>> loss = criterion(logits, np.arange(8))
>>> dx = net.backward(criterion.backward())
>>> logits.shape, dx.shape, net[0].weight.grad.shape
((8, 10), (8, 1, 28, 28), (4, 1, 3, 3))
"""

from . import init
from .activation import (ELU, GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, ReLU,
                         ReLU6, SiLU, Sigmoid, Softmax, Tanh)
from .blocks import ChannelShuffle, SqueezeExcitation, StochasticDepth, channel_shuffle
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .fusion import fuse
from .linear import Dropout, Linear
from .loss import CrossEntropyLoss, NLLLoss
from .module import (Flatten, Identity, Module, ModuleList, Parameter, Sequential,
                     is_grad_enabled, no_grad)
from .norm import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d,
                   InstanceNorm2d, InstanceNorm3d, LayerNorm)
from .pool import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d,
                   AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d,
                   MaxPool1d, MaxPool2d, MaxPool3d)

__all__ = [name for name in dir() if not name.startswith("_") and name not in ("init",)]
