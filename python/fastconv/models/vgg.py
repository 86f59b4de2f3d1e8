"""AlexNet (Krizhevsky et al. 2012, torchvision's single-GPU variant) and VGG-11 / VGG-16 with
and without batch norm (Simonyan & Zisserman 2015) as torchvision builds them — same names and
state_dict keys — with backward.

    features (convolutions, ReLU, max pooling) -> avgpool (adaptive) -> flatten -> classifier
"""

from __future__ import annotations

from .. import nn
from ._blocks import Network


class _FeaturesClassifier(Network):
    def steps(self):
        return [self.features, self.avgpool, self._flatten[0], self.classifier]


class AlexNet(_FeaturesClassifier):
    """torchvision.models.AlexNet with a backward."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))
        self._flatten = (nn.Flatten(),)


_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(_FeaturesClassifier):
    """torchvision.models.VGG with a backward."""

    def __init__(self, cfg, batch_norm=False, num_classes=1000, dropout=0.5):
        super().__init__()
        layers, channels = [], 3
        for v in _CFGS[cfg]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes))
        self._flatten = (nn.Flatten(),)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


def alexnet(num_classes=1000):
    """AlexNet (torchvision.models.alexnet): 61 M parameters, inputs of at least 63 x 63.

    >>> import numpy as np
    >>> from fastconv import models
    >>> models.alexnet(num_classes=10).eval()(np.zeros((1, 3, 64, 64), np.float32)).shape
    (1, 10)
    """
    return AlexNet(num_classes)


def vgg11(num_classes=1000):
    """VGG-11 (torchvision.models.vgg11)."""
    return VGG("A", False, num_classes)


def vgg11_bn(num_classes=1000):
    """VGG-11 with batch norm (torchvision.models.vgg11_bn)."""
    return VGG("A", True, num_classes)


def vgg16(num_classes=1000):
    """VGG-16 (torchvision.models.vgg16): 138 M parameters."""
    return VGG("D", False, num_classes)


def vgg16_bn(num_classes=1000):
    """VGG-16 with batch norm (torchvision.models.vgg16_bn)."""
    return VGG("D", True, num_classes)
