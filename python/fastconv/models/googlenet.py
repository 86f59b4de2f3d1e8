"""GoogLeNet / Inception v1 (Szegedy et al. 2015) as torchvision builds it — same names and
state_dict keys, auxiliary classifiers included (torchvision's 3x3 convolution in the "5x5"
branch too) — with backward.

    conv1 7x7/2, maxpool1, conv2 1x1, conv3 3x3, maxpool2, inception 3a 3b, maxpool3,
    4a (-> aux1) 4b 4c 4d (-> aux2) 4e, maxpool4, 5a 5b, avgpool, flatten, dropout, fc

In training with ``aux_logits`` the forward returns ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)`` and the backward takes the three gradients (a single array: the logits' only).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import nn
from ._blocks import Branches, Network, run, run_backward

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(Network):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self._relu = (nn.ReLU(inplace=True),)

    def steps(self):
        return [self.conv, self.bn, self._relu[0]]


class Inception(Branches):
    """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1."""

    branch_names = ("branch1", "branch2", "branch3", "branch4")

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))


class InceptionAux(Network):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv, fc1 + ReLU, dropout, fc2."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)
        self._helpers = (nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.ReLU(inplace=True))

    def steps(self):
        pool, flatten, relu = self._helpers
        return [pool, self.conv, flatten, self.fc1, relu, self.dropout, self.fc2]


class GoogLeNet(nn.Module):
    """torchvision.models.GoogLeNet (transform_input=False) with a backward."""

    def __init__(self, num_classes=1000, aux_logits=True, dropout=0.2, dropout_aux=0.7):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._flatten = (nn.Flatten(),)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, 0.0, 0.01, -2, 2)

    def _segments(self):
        """The trunk cut where the auxiliary classifiers tap it (after 4a and after 4d)."""
        return ([self.conv1, self.maxpool1, self.conv2, self.conv3, self.maxpool2,
                 self.inception3a, self.inception3b, self.maxpool3, self.inception4a],
                [self.inception4b, self.inception4c, self.inception4d],
                [self.inception4e, self.maxpool4, self.inception5a, self.inception5b,
                 self.avgpool, self._flatten[0], self.dropout, self.fc])

    def _with_aux(self):
        return self.training and self.aux_logits

    def forward(self, x):
        s1, s2, s3 = self._segments()
        x = run(s1, np.asarray(x))
        aux1 = self.aux1(x) if self._with_aux() else None
        x = run(s2, x)
        aux2 = self.aux2(x) if self._with_aux() else None
        logits = run(s3, x)
        return GoogLeNetOutputs(logits, aux2, aux1) if self._with_aux() else logits

    def backward(self, grad_output):
        s1, s2, s3 = self._segments()
        if isinstance(grad_output, tuple):
            g_logits, g_aux2, g_aux1 = grad_output
        else:
            g_logits, g_aux2, g_aux1 = grad_output, None, None
        g = run_backward(s3, g_logits)
        if g_aux2 is not None:
            g = g + self.aux2.backward(g_aux2)
        g = run_backward(s2, g)
        if g_aux1 is not None:
            g = g + self.aux1.backward(g_aux1)
        return run_backward(s1, g)


def googlenet(num_classes=1000, aux_logits=True):
    """GoogLeNet (torchvision.models.googlenet, without pretrained weights' input transform).

    >>> from fastconv import models
    >>> sum(p.size for p in models.googlenet().parameters())
    13004888
    """
    return GoogLeNet(num_classes, aux_logits)
