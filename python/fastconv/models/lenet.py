"""LeNet-5 (LeCun et al. 1998) in its common modern form, for 1 x 28 x 28 images:

    features: conv1 5x5 (pad 2) 6 ch, ReLU, 2x2 max pool, conv2 5x5 16 ch, ReLU, 2x2 max pool
    classifier: 400 -> 120 -> 84 -> classes (ReLU between)
"""

from __future__ import annotations

from .. import nn
from ._blocks import Network


class LeNet5(Network):
    """LeNet-5 with ReLU and max pooling (see the module docstring)."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
            nn.ReLU(inplace=True), nn.Linear(84, num_classes))
        self._flatten = (nn.Flatten(),)

    def steps(self):
        return [self.features, self._flatten[0], self.classifier]


def lenet5(num_classes=10, in_channels=1):
    """LeNet-5 for (N, in_channels, 28, 28) inputs.

    >>> import numpy as np
    >>> from fastconv import models
    >>> models.lenet5()(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """
    return LeNet5(num_classes, in_channels)
