"""Inference fusion: batch norm folded into the convolution before it, the activation after it
fused into the convolution's output, and the result run as a :func:`fastconv.plan` with its
weights packed once (Jacob et al. 2018, sec. 3.2, for the folding).

A model links its chains when it enters evaluation mode (``model.eval()``): in every sequence
of layers a container runs (``Sequential``, a model's steps, a residual block's main path),
``Conv -> BatchNorm -> activation`` and ``Conv -> activation`` are marked; a residual block's
last convolution (and its batch norm) also takes the shortcut's sum and the activation after
it (``Module.fusion_residual``). Under
:func:`fastconv.nn.no_grad` in evaluation mode the convolution then computes

    W' = W gamma / sqrt(var + eps),   b' = (b - mean) gamma / sqrt(var + eps) + beta,
    y  = act(conv(x, W') + b')

and the batch norm and activation pass their input through. With gradients enabled, or in
training mode, every layer runs as defined, so backward and running statistics are unaffected.
The plans are rebuilt after anything that may change weights (optimiser steps, load_state_dict,
mode switches, parameter assignment); after editing parameters in place in evaluation mode,
call :func:`fuse` again. The state_dict never changes. Limits: 1-D/2-D/3-D convolutions (not
transposed); batch norms with running statistics; activations without parameters.
"""

from __future__ import annotations

import numpy as np

from .activation import GELU, Hardsigmoid, Hardswish, ReLU, ReLU6, SiLU, Sigmoid, Tanh
from .conv import _Conv
from .module import Module, no_grad
from .norm import _BatchNorm

_ACTIVATIONS = {ReLU: "relu", ReLU6: "relu6", Sigmoid: "sigmoid", Tanh: "tanh", SiLU: "silu",
                Hardsigmoid: "hardsigmoid", Hardswish: "hardswish"}


def activation_name(m):
    """The plan activation a module computes, or None when it is not one a plan fuses."""
    if isinstance(m, GELU):
        return "gelu" if m.params.get("approximate", "none") == "none" else None
    return _ACTIVATIONS.get(type(m))


def link(model: Module) -> Module:
    """Mark the foldable ``Conv -> BatchNorm -> activation`` runs of every chain of ``model``."""
    for m in model.modules():
        for chain in m.fusion_chains():
            chain = list(chain)
            for i, conv in enumerate(chain):
                if not isinstance(conv, _Conv):
                    continue
                j = i + 1
                bn = None
                if j < len(chain) and isinstance(chain[j], _BatchNorm) and \
                        chain[j].track_running_stats and chain[j].num_features == conv.out_channels:
                    bn, j = chain[j], j + 1
                act = chain[j] if j < len(chain) and activation_name(chain[j]) else None
                conv.set_fusion(bn, act)
        residual = m.fusion_residual()
        if residual is not None:  # a block's last conv (+ BN) adds the shortcut, then act
            conv, bn, act = residual
            if isinstance(conv, _Conv) and (bn is None or bn.track_running_stats):
                conv.set_fusion(bn, None, residual=True, residual_activation=act)
    return model


def folded_weights(conv, bn):
    """(W', b') of ``conv`` with ``bn`` folded in (computed in float64, cast back)."""
    w = conv.weight.view(np.ndarray)
    b = None if conv.bias is None else conv.bias.view(np.ndarray)
    if bn is None:
        return w, b
    scale = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.astype(np.float64)
    shift = -bn.running_mean.astype(np.float64) * scale
    if b is not None:
        shift = shift + b.astype(np.float64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.astype(np.float64)
    shape = (-1,) + (1,) * (w.ndim - 1)
    return (w.astype(np.float64) * scale.reshape(shape)).astype(w.dtype), shift.astype(w.dtype)


def fuse(model: Module, example_input=None) -> Module:
    """Put ``model`` in evaluation mode with its chains linked for fused inference (see the
    module docstring) and, given an ``example_input``, pack every plan now for that input
    shape; returns the model.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    >>> x = np.random.rand(1, 3, 16, 16).astype(np.float32)
    >>> with nn.no_grad():
    ...     y = nn.fuse(net, x)(x)
    >>> net[0].fused_with()
    ('BatchNorm2d', 'relu')
    """
    model.eval()
    if example_input is not None:
        with no_grad():
            model(example_input)
    return model
