"""EfficientNet-B0 (Tan & Le 2019) as torchvision builds it — same names and state_dict keys
(``features.1.0.block.0.0.weight`` ...) — with backward.

    features: 3x3/2 conv-BN-SiLU; seven stages of MBConv blocks (1x1 expand, k x k depthwise,
    squeeze-excitation, 1x1 projection; stochastic depth on the residual); 1x1 conv-BN-SiLU
    to 1280 -> avgpool -> flatten -> classifier (dropout, linear)
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ._blocks import Network, conv_norm_act, make_divisible, run


class MBConv(nn.Module):
    """torchvision's MBConv: ``block`` (a Sequential) and ``stochastic_depth`` on the residual."""

    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels,
                 stochastic_depth_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and input_channels == out_channels
        expanded = make_divisible(input_channels * expand_ratio, 8)
        layers = []
        if expanded != input_channels:
            layers.append(conv_norm_act(input_channels, expanded, 1, activation=nn.SiLU))
        layers.append(conv_norm_act(expanded, expanded, kernel, stride, groups=expanded,
                                    activation=nn.SiLU))
        layers.append(nn.SqueezeExcitation(expanded, max(1, input_channels // 4),
                                           activation=nn.SiLU))
        layers.append(conv_norm_act(expanded, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = out_channels

    def fusion_residual(self):
        project = self.block[-1]  # conv + BN, no activation
        return (project[0], project[1], None) if self.use_res_connect else None

    def forward(self, x):
        x = np.asarray(x)
        project = self.block[-1]
        if self.use_res_connect and project[0].residual_fused_active():
            # stochastic depth is the identity in evaluation mode
            return project[0].forward_residual(run(list(self.block)[:-1], x), x)
        y = self.block(x)
        if self.use_res_connect:
            y = self.stochastic_depth(y)
            y += x
        return y

    def backward(self, grad_output):
        g = np.asarray(grad_output)
        if not self.use_res_connect:
            return self.block.backward(g)
        gx = self.block.backward(self.stochastic_depth.backward(g))
        gx += g
        return gx


# (expand_ratio, kernel, stride, input_channels, out_channels, num_layers) of B0
_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
       (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class EfficientNet(Network):
    """torchvision.models.EfficientNet (B0's configuration) with a backward."""

    def __init__(self, num_classes=1000, dropout=0.2, stochastic_depth_prob=0.2):
        super().__init__()
        layers = [conv_norm_act(3, _B0[0][3], 3, 2, activation=nn.SiLU)]
        total = sum(c[5] for c in _B0)
        block_id = 0
        for expand, kernel, stride, cin, cout, n in _B0:
            stage = []
            for i in range(n):
                p = stochastic_depth_prob * float(block_id) / total
                stage.append(MBConv(expand, kernel, stride if i == 0 else 1,
                                    cin if i == 0 else cout, cout, p))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_in = _B0[-1][4]
        layers.append(conv_norm_act(last_in, 4 * last_in, 1, activation=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True),
                                        nn.Linear(4 * last_in, num_classes))
        self._flatten = (nn.Flatten(),)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def steps(self):
        return [self.features, self.avgpool, self._flatten[0], self.classifier]


def efficientnet_b0(num_classes=1000):
    """EfficientNet-B0 (torchvision.models.efficientnet_b0).

    >>> from fastconv import models
    >>> sum(p.size for p in models.efficientnet_b0().parameters())
    5288548
    """
    return EfficientNet(num_classes)
