"""Reusable forward convolutions: :func:`fastconv.plan` packs a layer's weights once.

``fastconv.functional.conv2d`` is stateless, so every call re-lays out the weights for the
algorithm it runs. A :class:`ConvPlan` keeps them packed (one C++ ``fastconv::ConvPlan`` per
input shape, created on first use) and fuses bias and an activation into the output.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from . import _args, _core
from ._ops.conv import _conv_params

# Activations without parameters (fastconv::has_parameters): relu and relu6 are clamped in the
# output stores, the others applied in one pass over the output just written.
_ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "gelu")
# How a large output is written (fastconv::OutputStores).
_OUTPUT_STORES = ("stream", "cache")


class ConvPlan:
    """A forward convolution with prepacked weights; see :func:`fastconv.plan`."""

    #: Input shapes whose packed weights are kept (least recently used dropped first).
    max_shapes = 8

    def __init__(self, weight, bias, stride, padding, dilation, groups, padding_mode, algo,
                 activation, output_stores="stream"):
        op = "plan"
        weight = _args.array(weight)
        if weight.ndim not in (3, 4, 5):
            raise ValueError(f"{op}: expected weight to be 3-D, 4-D or 5-D (conv1d, conv2d or "
                             f"conv3d), but got {weight.ndim}-D")
        if activation is not None and activation not in _ACTIVATIONS:
            raise ValueError(f"{op}: activation must be None or one of {', '.join(_ACTIVATIONS)}, "
                             f"but got {activation!r}")
        if not isinstance(output_stores, str) or output_stores not in _OUTPUT_STORES:
            raise ValueError(f"{op}: output_stores must be 'stream' or 'cache', but got "
                             f"{output_stores!r}")
        self.rank = weight.ndim - 2
        # Own copies, so later changes to the caller's arrays do not reach new input shapes.
        self.weight = np.array(weight, copy=True)
        self.bias = None if bias is None else np.array(_args.array(bias), copy=True)
        self._params = _conv_params(op, stride, padding, dilation, groups, padding_mode, algo) + (
            activation or "none",)
        self.activation = activation
        #: How outputs too large to stay in cache are written: 'stream' (past the caches) or
        #: 'cache' (for an output read again at once, such as a network's next layer's input).
        self.output_stores = output_stores
        #: The instruction set whose kernels every input shape's packed plan uses: the one
        #: active when the plan was made, whatever :func:`fastconv.set_isa` chooses later.
        self.isa = _core.get_isa()
        self._plans: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()
        probe = self._probe_shape()
        if probe is not None:  # validates every argument now rather than at the first call
            self._core_plan(probe)

    def _probe_shape(self):
        """A small input shape the parameters accept, or None when they are too large to try."""
        stride, padding, dilation, groups, *_ = self._params
        kernel = self.weight.shape[2:]
        pads = [0] if isinstance(padding, str) else padding
        spatial = []
        def entry(values, d):  # a list of the wrong length is the core's error to report
            return values[d] if len(values) == len(kernel) else values[0] if len(values) else 1

        for d, k in enumerate(kernel):
            dil, pad = entry(dilation, d), entry(pads, d)
            size = abs(dil) * max(k - 1, 0) + 1 + 2 * abs(pad) + 1
            if size > 1 << 16:
                return None
            spatial.append(size)
        if abs(groups) > 1 << 16:
            return None
        return (1, self.weight.shape[1] * max(groups, 1), *spatial)

    def prepare(self, input_shape) -> dict:
        """Pack the weights for inputs of ``input_shape`` (done by the first call otherwise).

        Returns
        -------
        dict
            ``algo`` (the algorithm chosen), ``isa`` (its kernels), ``input_shape``, ``output_shape``,
            ``packed_bytes`` (weights and bias held) and ``workspace_bytes`` (what one call
            allocates for its duration at the current thread count).
        """
        core = self._core_plan(tuple(_args.shape(input_shape, "input_shape", "plan")))
        return {
            "algo": core.algo,
            "isa": core.isa,
            "input_shape": tuple(core.input_shape),
            "output_shape": tuple(core.output_shape),
            "packed_bytes": core.packed_bytes,
            "workspace_bytes": core.workspace_bytes,
        }

    def __call__(self, input, residual=None):
        """``activation(conv(input, weight) + bias)``, as ``functional.conv<rank>d`` computes it;
        with ``residual`` (an array of the output's shape), ``activation(conv(input, weight) +
        bias + residual)``: a residual block's shortcut added before the activation."""
        x = _args.array(input)
        return self._core_plan(x.shape).forward(x, _args.optional_array(residual))

    forward = __call__

    def _core_plan(self, shape: tuple):
        # The cache is shared by the threads that call the plan: its updates hold a lock (the
        # packing itself runs outside it, without the GIL; two threads may pack one new shape
        # at once, and one of the two packs is kept).
        with self._lock:
            core = self._plans.get(shape)
            if core is not None:
                self._plans.move_to_end(shape)
                return core
        core = _core.ConvPlan(self.rank, list(shape), self.weight, self.bias, *self._params,
                              self.isa, self.output_stores)
        with self._lock:
            self._plans[shape] = core
            self._plans.move_to_end(shape)
            while len(self._plans) > self.max_shapes:
                self._plans.popitem(last=False)
        return core

    def __repr__(self) -> str:
        stride, padding, dilation, groups, padding_mode, algo, _ = self._params
        return (f"ConvPlan(conv{self.rank}d, weight={self.weight.shape}, "
                f"bias={self.bias is not None}, stride={stride}, padding={padding}, "
                f"dilation={dilation}, groups={groups}, padding_mode={padding_mode!r}, "
                f"algo={algo!r}, activation={self.activation!r}, "
                f"output_stores={self.output_stores!r})")


def plan(weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros",
         algo="auto", activation=None, output_stores="stream") -> ConvPlan:
    """Prepare a forward convolution whose weights are packed once and reused by every call.

    The parameters are those of :func:`fastconv.functional.conv2d` (the rank comes from
    ``weight``: 3-D for conv1d, 4-D conv2d, 5-D conv3d) and are validated here. The plan copies
    ``weight`` and ``bias``; for each input shape it meets it packs them once in the layout of
    the algorithm it runs there, for the instruction set active when the plan was made.
    ``activation`` is applied to the output as it is written: relu and relu6 in the store of
    the algorithm's last stage, the others in one pass over the output while it is in cache
    (as :mod:`fastconv.functional` defines them; gelu is the erf form); NaN stays NaN. With ``algo='auto'`` the choice leaves out the cost
    of packing the weights, which the plan pays once: it may run an algorithm a stateless call
    would not (Winograd, whose weight transform a stateless call repeats); ``prepare`` names it.
    An output too large to stay in cache (over 512 KiB) is written past the caches
    (``output_stores='stream'``: nothing read before it is written, the caches keep weights and
    input), or through them (``'cache'``) where the next operation reads it at once, as the
    layers of :mod:`fastconv.nn` do (ResNet-50 inference 4 % faster on one core, 6 % on two); a
    ``residual`` or an activation applied after the convolution writes through the caches
    either way.

    Parameters
    ----------
    weight : ndarray, (out_channels, in_channels / groups, *kernel_size)
    bias : ndarray or None, (out_channels,)
    stride, padding, dilation, groups, padding_mode, algo
        As in :func:`fastconv.functional.conv2d`.
    activation : {None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', 'hardsigmoid', 'hardswish', 'gelu'}
    output_stores : {'stream', 'cache'}
        How a large output is written; the values computed are the same.

    Returns
    -------
    ConvPlan
        Callable on inputs of any shape the weights allow; ``plan.prepare(input_shape)`` packs
        ahead of the first call and reports the algorithm and memory.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.ones((4, 3, 3, 3), np.float32)
    >>> layer = fastconv.plan(w, np.full(4, -20, np.float32), padding=1, activation="relu")
    >>> y = layer(np.ones((1, 3, 8, 8), np.float32))
    >>> float(y[0, 0, 4, 4]), float(y[0, 0, 0, 0])  # 27 - 20, relu(12 - 20)
    (7.0, 0.0)
    >>> layer.prepare((1, 3, 8, 8))["algo"]
    'gemm'
    """
    return ConvPlan(weight, bias, stride, padding, dilation, groups, padding_mode, algo,
                    activation, output_stores)
