"""MobileNetV2 (Sandler et al. 2018) as torchvision builds it — same names and state_dict keys
(``features.1.conv.0.0.weight`` ...) — with backward.

    features: 3x3/2 conv-BN-ReLU6, inverted residual blocks (1x1 expand, 3x3 depthwise,
    1x1 linear projection; a shortcut when shapes allow), 1x1 conv-BN-ReLU6 to 1280
    -> global average pool -> flatten -> classifier (dropout, linear)
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._blocks import Network, conv_norm_act, make_divisible, run


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: ``conv`` (a Sequential), plus x when use_res_connect."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(inp, hidden, 1, activation=nn.ReLU6))
        layers += [conv_norm_act(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.out_channels, self.stride = oup, stride

    def fusion_residual(self):
        return (self.conv[-2], self.conv[-1], None) if self.use_res_connect else None

    def forward(self, x):
        x = np.asarray(x)
        if self.use_res_connect and self.conv[-2].residual_fused_active():
            return self.conv[-2].forward_residual(run(list(self.conv)[:-2], x), x)
        y = self.conv(x)
        if self.use_res_connect:
            y += x
        return y

    def backward(self, grad_output):
        gx = self.conv.backward(grad_output)
        if self.use_res_connect:
            gx += grad_output
        return gx


class MobileNetV2(Network):
    """torchvision.models.MobileNetV2 with a backward (see the module docstring)."""

    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                    [6, 160, 3, 2], [6, 320, 1, 1]]
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_norm_act(3, input_channel, 3, 2, activation=nn.ReLU6)]
        for t, c, n, s in settings:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(conv_norm_act(input_channel, self.last_channel, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(self.last_channel, num_classes))
        self._head = (nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def steps(self):
        return [self.features, *self._head, self.classifier]


def mobilenet_v2(num_classes=1000):
    """MobileNetV2 (torchvision.models.mobilenet_v2).

    >>> from fastconv import models
    >>> sum(p.size for p in models.mobilenet_v2().parameters())
    3504872
    """
    return MobileNetV2(num_classes)
