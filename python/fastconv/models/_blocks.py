"""Shared pieces of the model zoo: running a list of layers forward and backward, a network
whose forward is a fixed list of steps, Conv2dNormActivation (torchvision's conv + BN +
activation Sequential), concatenation along channels, and _make_divisible."""

from __future__ import annotations

import numpy as np

from .. import nn


def run(steps, x):
    """x through the modules of ``steps`` in order."""
    for s in steps:
        x = s(x)
    return x


def run_backward(steps, g):
    """The gradient through ``steps`` in reverse (each module's backward)."""
    for s in reversed(steps):
        g = s.backward(g)
    return g


def concat(parts):
    """Channel concatenation (axis 1) of the branch outputs, as a C-contiguous array."""
    return np.concatenate(parts, axis=1)


def split(g, sizes):
    """The gradient of :func:`concat` cut back into the branches' channel counts."""
    return np.split(np.asarray(g), np.cumsum(sizes)[:-1], axis=1)


class Network(nn.Module):
    """A model whose forward is the fixed list ``self.steps()`` of modules: registered children
    and parameter-free helpers (pooling, flatten) created once, so that their kept contexts
    survive until the backward."""

    def steps(self):
        raise NotImplementedError

    def fusion_chains(self):
        return [self.steps()]

    def forward(self, x):
        return run(self.steps(), np.asarray(x))

    def backward(self, grad_output):
        return run_backward(self.steps(), grad_output)


class Branches(nn.Module):
    """Children whose outputs on the same input are concatenated along channels (Inception's
    branches); subclasses register them in order and list their names in ``branch_names``."""

    branch_names: tuple = ()

    def forward(self, x):
        outs = [getattr(self, n)(x) for n in self.branch_names]
        self._keep(sizes=[o.shape[1] for o in outs])
        return concat(outs)

    def backward(self, grad_output):
        parts = split(grad_output, self._context()["sizes"])
        total = None
        for n, g in zip(self.branch_names, parts):
            gx = getattr(self, n).backward(np.ascontiguousarray(g))
            total = gx if total is None else total + gx
        return total


def conv_norm_act(in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                  activation=nn.ReLU, eps=1e-5, momentum=0.1):
    """torchvision's Conv2dNormActivation: Sequential(conv without bias, BatchNorm2d,
    activation) with 'same'-style padding (kernel_size - 1) // 2; no activation when None."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                        groups=groups, bias=False),
              nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def make_divisible(v, divisor=8, min_value=None):
    """The channel count nearest v that divides by ``divisor`` and loses at most 10 % (the
    rounding of the MobileNet / EfficientNet reference code)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def init_conv_bn_linear(model, linear_std=None):
    """torchvision's common initialisation: convolutions kaiming_normal_(fan_out, relu), batch
    norms weight 1 / bias 0, linear layers normal(0, linear_std) (default init when None),
    biases 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
