"""Parameter initialisation (``torch.nn.init``'s schemes) with fastconv's generator
(:func:`fastconv.manual_seed`). Each function fills its array in place and returns it."""

from __future__ import annotations

import math

import numpy as np

from .. import _random


def _fans(a):
    if a.ndim < 2:
        raise ValueError("fan in and fan out can not be computed for an array with fewer than 2 "
                         "dimensions")
    receptive = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(a, low=0.0, high=1.0):
    a[...] = _random.generator().uniform(low, high, a.shape)
    return a


def normal_(a, mean=0.0, std=1.0):
    a[...] = _random.generator().normal(mean, std, a.shape)
    return a


def constant_(a, value):
    a[...] = value
    return a


def zeros_(a):
    return constant_(a, 0)


def ones_(a):
    return constant_(a, 1)


def kaiming_uniform_(a, alpha=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b), b = gain * sqrt(3 / fan) (He et al. 2015); ``alpha`` is torch's ``a``."""
    fan_in, fan_out = _fans(a)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, alpha) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(a, -bound, bound)


def kaiming_normal_(a, alpha=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std), std = gain / sqrt(fan) (He et al. 2015)."""
    fan_in, fan_out = _fans(a)
    fan = fan_in if mode == "fan_in" else fan_out
    return normal_(a, 0.0, calculate_gain(nonlinearity, alpha) / math.sqrt(fan) if fan else 0.0)


def xavier_uniform_(a, gain=1.0):
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(a)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(a, -bound, bound)


def trunc_normal_(a, mean=0.0, std=1.0, low=-2.0, high=2.0):
    """N(mean, std) redrawn outside [low, high]."""
    gen = _random.generator()
    out = gen.normal(mean, std, a.shape)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = gen.normal(mean, std, int(bad.sum()))
        bad = (out < low) | (out > high)
    a[...] = out
    return a


def default_layer_init(weight, bias, fan_in):
    """PyTorch's default for convolution and linear layers: kaiming_uniform_(a=sqrt(5)) on the
    weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    uniform_(weight, -bound, bound)  # = kaiming_uniform_(a=sqrt(5))
    if bias is not None:
        uniform_(bias, -bound, bound)
