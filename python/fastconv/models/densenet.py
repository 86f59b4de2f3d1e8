"""DenseNet-121 (Huang et al. 2017) as torchvision builds it — same names and state_dict keys
(``features.denseblock1.denselayer1.norm1.weight`` ...) — with backward.

    features: conv0 7x7/2, norm0, relu0, pool0 3x3/2, then dense blocks (each layer sees the
    concatenation of all earlier outputs) separated by transitions (BN, ReLU, 1x1 conv, 2x2
    average pool), then norm5;  relu -> global average pool -> flatten -> classifier
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import nn
from ._blocks import Network, concat, run, run_backward


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * growth_rate) - BN-ReLU-3x3 conv (growth_rate channels)."""

    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, 1, 1, bias=False)
        self.drop_rate = float(drop_rate)
        object.__setattr__(self, "_dropout", nn.Dropout(self.drop_rate) if drop_rate else None)

    def _steps(self):
        steps = [self.norm1, self.relu1, self.conv1, self.norm2, self.relu2, self.conv2]
        if self._dropout is not None:  # a helper: follow this layer's mode (without train(),
            object.__setattr__(self._dropout, "training", self.training)  # which resets plans)
            steps.append(self._dropout)
        return steps

    def forward(self, x):
        return run(self._steps(), x)

    def backward(self, grad_output):
        return run_backward(self._steps(), grad_output)


class _DenseBlock(nn.Module):
    """Layers ``denselayer1..n``; each appends growth_rate channels to the running
    concatenation, which is the block's output."""

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            _DenseLayer(num_input_features + i * growth_rate, growth_rate,
                                        bn_size, drop_rate))

    def forward(self, x):
        features = np.asarray(x)
        for layer in self.children():
            features = concat([features, layer(features)])
        return features

    def backward(self, grad_output):
        g = np.asarray(grad_output)
        for layer in reversed(list(self.children())):
            k = layer.conv2.out_channels
            g_prev = np.ascontiguousarray(g[:, :-k])
            g_prev += layer.backward(np.ascontiguousarray(g[:, -k:]))
            g = g_prev
        return g


def _transition(num_input_features, num_output_features):
    return nn.Sequential(OrderedDict([
        ("norm", nn.BatchNorm2d(num_input_features)),
        ("relu", nn.ReLU(inplace=True)),
        ("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False)),
        ("pool", nn.AvgPool2d(2, 2)),
    ]))


class DenseNet(Network):
    """torchvision.models.DenseNet with a backward (see the module docstring)."""

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0.0, num_classes=1000):
        super().__init__()
        stem = [("conv0", nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(3, 2, 1))]
        self.features = nn.Sequential(OrderedDict(stem))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(
                num_layers, num_features, bn_size, growth_rate, drop_rate))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         _transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        self._head = (nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def steps(self):
        return [self.features, *self._head, self.classifier]


def densenet121(num_classes=1000):
    """DenseNet-121 (torchvision.models.densenet121): growth rate 32, blocks (6, 12, 24, 16).

    >>> from fastconv import models
    >>> sum(p.size for p in models.densenet121().parameters())
    7978856
    """
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)
