"""SqueezeNet 1.1 (Iandola et al. 2016) as torchvision builds it — same names and state_dict
keys — with backward.

    features: 3x3/2 conv, ReLU, max pools (ceil mode) and Fire modules (1x1 squeeze, then 1x1
    and 3x3 expands concatenated) -> classifier: dropout, 1x1 conv to the classes, ReLU, global
    average pool -> flatten
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._blocks import Network, concat, split


class Fire(nn.Module):
    """relu(squeeze(x)) fed to relu(expand1x1) and relu(expand3x3), concatenated."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        s = self.squeeze_activation(self.squeeze(x))
        return concat([self.expand1x1_activation(self.expand1x1(s)),
                       self.expand3x3_activation(self.expand3x3(s))])

    def backward(self, grad_output):
        g1, g3 = split(grad_output, [self.expand1x1.out_channels, self.expand3x3.out_channels])
        gs = self.expand1x1.backward(self.expand1x1_activation.backward(np.ascontiguousarray(g1)))
        gs += self.expand3x3.backward(self.expand3x3_activation.backward(np.ascontiguousarray(g3)))
        return self.squeeze.backward(self.squeeze_activation.backward(gs))


class SqueezeNet(Network):
    """torchvision.models.SqueezeNet, version 1.1, with a backward."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256))
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        self._flatten = (nn.Flatten(),)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def steps(self):
        return [self.features, self.classifier, self._flatten[0]]


def squeezenet1_1(num_classes=1000):
    """SqueezeNet 1.1 (torchvision.models.squeezenet1_1).

    >>> from fastconv import models
    >>> sum(p.size for p in models.squeezenet1_1().parameters())
    1235496
    """
    return SqueezeNet(num_classes)
