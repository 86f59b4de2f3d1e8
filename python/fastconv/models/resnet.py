"""ResNet (He et al. 2016) and ResNeXt (Xie et al. 2017) as torchvision builds them — same
modules, names and state_dict keys (V1.5: the stride in the bottleneck's 3x3) — with backward.

    conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 -> layer1..layer4 -> avgpool -> flatten -> fc
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._blocks import Network, init_conv_bn_linear, run, run_backward


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self._out = nn.ReLU(inplace=True)  # the activation after the sum (not registered)

    def _main(self):
        return [self.conv1, self.bn1, self.relu, self.conv2, self.bn2]

    def fusion_chains(self):
        return [self._main()]

    def fusion_residual(self):
        conv, bn = self._main()[-2:]
        return conv, bn, "relu"

    def forward(self, x):
        x = np.asarray(x)
        main = self._main()
        if main[-2].residual_fused_active():  # the sum and the ReLU in the last conv's plan
            shortcut = self.downsample(x) if self.downsample is not None else x
            return main[-2].forward_residual(run(main[:-2], x), shortcut)
        out = run(main, x)
        out += self.downsample(x) if self.downsample is not None else x
        return self._out(out)

    def backward(self, grad_output):
        g = self._out.backward(grad_output)
        gx = run_backward(self._main(), g)
        gx += self.downsample.backward(g) if self.downsample is not None else g
        return gx

    def __setattr__(self, name, value):
        if name == "_out":  # a helper, kept out of the registered children
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class Bottleneck(BasicBlock):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided), 1x1 expand by 4, plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        nn.Module.__init__(self)
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        object.__setattr__(self, "_relu2", nn.ReLU(inplace=True))
        self._out = nn.ReLU(inplace=True)

    def _main(self):
        return [self.conv1, self.bn1, self.relu, self.conv2, self.bn2, self._relu2, self.conv3,
                self.bn3]


class ResNet(Network):
    """torchvision.models.ResNet with a backward (see the module docstring)."""

    def __init__(self, block, layers, num_classes=1000, groups=1, width_per_group=64,
                 zero_init_residual=False):
        super().__init__()
        self.inplanes, self.groups, self.base_width = 64, groups, width_per_group
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._flatten = (nn.Flatten(),)
        init_conv_bn_linear(self)
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, BasicBlock) and last is not None:
                    nn.init.zeros_(last.weight)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width))
        return nn.Sequential(*layers)

    def steps(self):
        return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2,
                self.layer3, self.layer4, self.avgpool, self._flatten[0], self.fc]


def resnet18(num_classes=1000):
    """ResNet-18 (torchvision.models.resnet18's modules and state_dict keys).

    >>> import numpy as np
    >>> from fastconv import models
    >>> net = models.resnet18(num_classes=10).eval()
    >>> net(np.zeros((1, 3, 64, 64), np.float32)).shape
    (1, 10)
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet34(num_classes=1000):
    """ResNet-34 (torchvision.models.resnet34)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50(num_classes=1000):
    """ResNet-50 V1.5 (torchvision.models.resnet50)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


def resnext50_32x4d(num_classes=1000):
    """ResNeXt-50 32x4d (torchvision.models.resnext50_32x4d): 32 groups of width 4."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, groups=32, width_per_group=4)
