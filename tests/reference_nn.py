"""Naive float64 NumPy references for the layer ops of issue 8 (the oracle of test_functional_nn).

Each function is written from the operation's textbook / PyTorch definition, independently of
fastconv: normalisations from their statistics (``np.mean`` / ``np.var`` over the reduced axes),
activations from their formulas (erf from ``math.erf``), softmax by explicit exponentials,
cross entropy by explicit per-position loops. Gradients are not here: the tests check them by
central finite differences of these float64 references (``numeric_grad``).
"""

import math

import numpy as np


def batch_norm(x, mean, var, weight, bias, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, mean/var per channel (axis 1)."""
    x = np.asarray(x, np.float64)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - np.reshape(mean, shape)) / np.sqrt(np.reshape(var, shape) + eps)
    if weight is not None:
        y = y * np.reshape(np.asarray(weight, np.float64), shape)
    if bias is not None:
        y = y + np.reshape(np.asarray(bias, np.float64), shape)
    return y


def batch_stats(x):
    """Per-channel mean and biased variance over every axis but 1."""
    x = np.asarray(x, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axes), x.var(axes)


def group_norm(x, groups, weight, bias, eps):
    x = np.asarray(x, np.float64)
    N, C = x.shape[:2]
    g = x.reshape(N, groups, -1)
    y = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * np.reshape(np.asarray(weight, np.float64), shape)
    if bias is not None:
        y = y + np.reshape(np.asarray(bias, np.float64), shape)
    return y


def layer_norm(x, normalized_shape, weight, bias, eps):
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # no overflow for large |x|


ACTIVATIONS = {
    # name: (reference f(x, **params), default params)
    "relu": (lambda x: np.where(x > 0, x, 0.0) + np.where(np.isnan(x), x, 0.0), {}),
    "relu6": (lambda x: np.clip(x, 0, 6), {}),
    "leaky_relu": (lambda x, negative_slope: np.where(x > 0, x, negative_slope * x),
                   {"negative_slope": 0.01}),
    "hardtanh": (lambda x, min_val, max_val: np.clip(x, min_val, max_val),
                 {"min_val": -1.0, "max_val": 1.0}),
    "elu": (lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
            {"alpha": 1.0}),
    "sigmoid": (_sigmoid, {}),
    "tanh": (np.tanh, {}),
    "silu": (lambda x: x * _sigmoid(x), {}),
    "hardsigmoid": (lambda x: np.clip(x + 3, 0, 6) / 6, {}),
    "hardswish": (lambda x: x * np.clip(x + 3, 0, 6) / 6, {}),
    "gelu": (lambda x, approximate: (0.5 * x * (1 + _erf(x / math.sqrt(2))))
             if approximate == "none" else
             0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
             {"approximate": "none"}),
}


def softmax(x, dim, log=False):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(dim, keepdims=True))
    s = e.sum(dim, keepdims=True)
    return (x - x.max(dim, keepdims=True) - np.log(s)) if log else e / s


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Per-position loops over (N, C, *) logits (or (C,))."""
    x = np.asarray(logits, np.float64)
    unbatched = x.ndim == 1
    if unbatched:
        x = x[None]
        target = np.asarray(target)[None]
    C = x.shape[1]
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    lp = softmax(x, 1, log=True)
    lp = np.moveaxis(lp, 1, -1).reshape(-1, C)
    t = np.asarray(target)
    probs = t.dtype.kind == "f"
    t = np.moveaxis(t, 1, -1).reshape(-1, C) if probs else t.reshape(-1)
    losses, denominator = [], 0.0
    for i in range(lp.shape[0]):
        if probs:
            q = t[i] * (1 - label_smoothing) + label_smoothing / C
            losses.append(-float(np.sum(w * q * lp[i])))
            denominator += 1
        elif t[i] == ignore_index:
            losses.append(0.0)
        else:
            c = int(t[i])
            smooth = -float(np.sum(w * lp[i])) / C
            losses.append((1 - label_smoothing) * -w[c] * lp[i, c] + label_smoothing * smooth)
            denominator += w[c]
    losses = np.array(losses)
    if reduction == "none":
        shape = (x.shape[0],) + x.shape[2:]
        out = losses.reshape(shape)
        return out[0] if unbatched else out
    return losses.sum() / denominator if reduction == "mean" else losses.sum()


def numeric_grad(f, x, g, h=1e-6, count=24, rng=None):
    """Central differences of sum(g * f(x)) with respect to `count` random elements of x
    (float64): returns (indices, values)."""
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.array(x, np.float64)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    out = []
    for i in idx:
        keep = flat[i]
        flat[i] = keep + h
        up = np.sum(g * f(x))
        flat[i] = keep - h
        down = np.sum(g * f(x))
        flat[i] = keep
        out.append((up - down) / (2 * h))
    return idx, np.array(out)
