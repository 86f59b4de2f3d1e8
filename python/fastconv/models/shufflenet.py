"""ShuffleNet V2 x1.0 (Ma et al. 2018) as torchvision builds it — same names and state_dict keys
— with backward.

    conv1 (3x3/2 conv-BN-ReLU) -> maxpool 3x3/2 -> stage2..stage4 of InvertedResidual blocks
    (channel split, a branch of 1x1 / depthwise 3x3 / 1x1, concatenation, channel shuffle) ->
    conv5 (1x1 conv-BN-ReLU) -> mean over H, W -> fc
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._blocks import Network, concat, split


def _branch_conv(inp, out, kernel, stride=1, groups=1):
    return nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)


class InvertedResidual(nn.Module):
    """stride 1: half the channels pass, the other half go through branch2; stride 2: branch1
    and branch2 both see the input. The halves are concatenated and shuffled in 2 groups."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        if not 1 <= stride <= 3:
            raise ValueError("illegal stride value")
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _branch_conv(inp, inp, 3, stride, groups=inp), nn.BatchNorm2d(inp),
                _branch_conv(inp, bf, 1), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            _branch_conv(inp if stride > 1 else bf, bf, 1), nn.BatchNorm2d(bf),
            nn.ReLU(inplace=True), _branch_conv(bf, bf, 3, stride, groups=bf), nn.BatchNorm2d(bf),
            _branch_conv(bf, bf, 1), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))
        object.__setattr__(self, "_shuffle", nn.ChannelShuffle(2))

    def forward(self, x):
        x = np.asarray(x)
        if self.stride == 1:
            x1, x2 = np.split(x, 2, axis=1)
            out = concat([x1, self.branch2(np.ascontiguousarray(x2))])
        else:
            out = concat([self.branch1(x), self.branch2(x)])
        return self._shuffle(out)

    def backward(self, grad_output):
        g = self._shuffle.backward(grad_output)
        half = g.shape[1] // 2
        g1, g2 = (np.ascontiguousarray(p) for p in split(g, [half, g.shape[1] - half]))
        if self.stride == 1:
            return concat([g1, self.branch2.backward(g2)])
        gx = self.branch1.backward(g1)
        gx += self.branch2.backward(g2)
        return gx


class _MeanHW(nn.Module):
    """x.mean((2, 3)) and its backward (ShuffleNetV2's pooling)."""

    def forward(self, x):
        x = np.asarray(x)
        self._keep(shape=x.shape)
        return x.mean((2, 3), dtype=np.float64).astype(x.dtype)

    def backward(self, grad_output):
        shape = self._context()["shape"]
        g = np.asarray(grad_output) / (shape[2] * shape[3])
        return np.ascontiguousarray(np.broadcast_to(g[:, :, None, None], shape))


class ShuffleNetV2(Network):
    """torchvision.models.ShuffleNetV2 with a backward."""

    def __init__(self, stages_repeats=(4, 8, 4), stages_out_channels=(24, 116, 232, 464, 1024),
                 num_classes=1000):
        super().__init__()
        c = stages_out_channels
        self.conv1 = nn.Sequential(nn.Conv2d(3, c[0], 3, 2, 1, bias=False), nn.BatchNorm2d(c[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = c[0]
        for i, (repeats, out) in enumerate(zip(stages_repeats, c[1:4])):
            blocks = [InvertedResidual(inp, out, 2)]
            blocks += [InvertedResidual(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*blocks))
            inp = out
        self.conv5 = nn.Sequential(nn.Conv2d(inp, c[4], 1, bias=False), nn.BatchNorm2d(c[4]),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Linear(c[4], num_classes)
        self._mean = (_MeanHW(),)

    def steps(self):
        return [self.conv1, self.maxpool, self.stage2, self.stage3, self.stage4, self.conv5,
                self._mean[0], self.fc]


def shufflenet_v2_x1_0(num_classes=1000):
    """ShuffleNet V2 x1.0 (torchvision.models.shufflenet_v2_x1_0).

    >>> from fastconv import models
    >>> sum(p.size for p in models.shufflenet_v2_x1_0().parameters())
    2278604
    """
    return ShuffleNetV2(num_classes=num_classes)
