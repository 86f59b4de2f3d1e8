"""The ops the benchmark can time: one :class:`OpSpec` entry per op in :data:`OPS`.

An entry says which layers of the layers file it runs on (``layer_op``), how to make
seeded inputs, how to call fastconv on them, which peers (:class:`~.peers.Peer`:
PyTorch, PyTorch channels_last, ONNX Runtime) to time beside it, the FLOPs of one call
(compute-bound ops) or the bytes it must move (memory-bound ops), the output size and
which registered algorithms to run.  The runner, table and JSON never name an op or a
peer, so adding an op is one new entry here.

The ops:

* ``conv`` -- forward convolution (``fastconv.functional.conv{1,2,3}d`` vs
  ``torch.nn.functional.conv{1,2,3}d`` and an ONNX Runtime ``Conv``), on the ``conv``
  layers;
* ``conv_bwd_data`` -- the input gradient (``fastconv.grad.conv{1,2,3}d_input``), on
  the ``conv`` layers;
* ``conv_bwd_weights`` -- the weight gradient (``fastconv.grad.conv{1,2,3}d_weight``),
  on the ``conv`` layers;
* ``conv_transpose`` -- ``fastconv.functional.conv_transpose{1,2,3}d`` vs
  ``torch.nn.functional.conv_transpose{1,2,3}d`` and an ONNX Runtime ``ConvTranspose``,
  on the ``conv_transpose`` layers;
* ``max_pool``, ``avg_pool`` -- ``fastconv.functional.{max,avg}_pool{1,2,3}d`` vs
  ``torch.nn.functional.{max,avg}_pool{1,2,3}d`` on an NCHW tensor and on a
  channels_last copy, and ONNX Runtime ``MaxPool`` / ``AveragePool``, on the
  ``max_pool`` / ``avg_pool`` layers.  Memory-bound: reported in GB/s, no FLOPs.

The torch peer of a backward direction is ``torch.ops.aten.convolution_backward``
with an output mask selecting that one gradient: the very call autograd makes for
``y.backward(g)`` when only that gradient is required (bit-identical results), without
the graph bookkeeping or the forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .layers import (
    Layer,
    conv_flops,
    conv_output_size,
    conv_transpose_flops,
    conv_transpose_output_size,
    pool_bytes,
)
from .peers import Peer, onnx_pads, ort_session, torch_memory_format

__all__ = ["NO_ALGO", "OPS", "OpSpec", "layer_ops", "ops_for"]

#: The algorithm label of an op fastconv has a single implementation of (pooling).
NO_ALGO = "-"


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """How to benchmark one op.

    Attributes
    ----------
    layer_op : str
        The ``op`` of the layers file this entry runs on (e.g. ``"conv"``).
    make_inputs : callable(layer, rng) -> tuple of np.ndarray
        Seeded float32 inputs (C-contiguous).
    fastconv : callable(layer, arrays, algo) -> callable() -> np.ndarray
        A zero-argument closure running fastconv with algorithm ``algo``.
    peers : tuple of Peer
        What fastconv is compared with, in table order.  The first one that
        runs is the reference of the mismatch check; ``ratio`` is the best
        (fastest) peer's time over fastconv's.
    flops : callable(layer) -> int, or None
        Floating-point operations of one call (multiply + add = 2); None for
        an op whose FLOPs mean nothing (pooling): no GFLOP/s then.
    bytes : callable(layer) -> int, or None
        For a memory-bound op, the bytes one call must move at least (input
        read once + output written once): the GB/s column.  None otherwise.
    output_size : callable(layer) -> list of int
        Spatial size of the op's output (of the forward convolution for the
        backward directions), recorded in the JSON ``params``.
    algorithms : callable() -> list of str
        The fastconv algorithm names to run for this op; ``[NO_ALGO]`` when
        fastconv has a single implementation (``fastconv`` ignores ``algo``).
    description : str
        One line for ``--list`` and the help.
    """

    layer_op: str
    make_inputs: Callable[[Layer, np.random.Generator], Tuple[np.ndarray, ...]]
    fastconv: Callable[[Layer, Tuple[np.ndarray, ...], str], Callable[[], Any]]
    peers: Tuple[Peer, ...]
    flops: Optional[Callable[[Layer], int]]
    output_size: Callable[[Layer], List[int]]
    algorithms: Callable[[], List[str]]
    bytes: Optional[Callable[[Layer], int]] = None
    description: str = ""


# ---- conv (forward) -------------------------------------------------------


def _conv_inputs(layer: Layer, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    # x: (N, C, *input), w: (K, C / groups, *kernel); no bias
    x = rng.standard_normal((layer["N"], layer["C"], *layer["input"]), dtype=np.float32)
    w = rng.standard_normal((layer["K"], layer["C"] // layer["groups"], *layer["kernel"]), dtype=np.float32)
    return x, w


def _conv_kwargs(layer: Layer) -> Dict[str, Any]:
    return dict(
        stride=tuple(layer["stride"]),
        padding=tuple(layer["padding"]),
        dilation=tuple(layer["dilation"]),
        groups=layer["groups"],
    )


#: The conv method that runs a prepacked :func:`fastconv.plan` (algo 'auto') instead of the
#: stateless functional call, which re-lays out the weights on every call.
PLAN = "plan"


def _conv_fastconv(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from .. import functional, plan

    x, w = arrays
    kw = _conv_kwargs(layer)
    if algo == PLAN:
        layer_plan = plan(w, None, **kw)
        layer_plan.prepare(x.shape)  # packing is not timed
        return lambda: layer_plan(x)
    fn = getattr(functional, f"conv{len(layer['input'])}d")
    return lambda: fn(x, w, None, algo=algo, **kw)


def _tensors(arrays: Tuple[np.ndarray, ...]) -> Tuple[Any, ...]:
    # torch tensors sharing the NumPy inputs' memory
    import torch

    return tuple(torch.from_numpy(a) for a in arrays)


def _conv_torch(channels_last: bool) -> Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]:
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
        import torch
        import torch.nn.functional as tF

        rank = len(layer["input"])
        fn = getattr(tF, f"conv{rank}d")
        x, w = _tensors(arrays)
        if channels_last:
            fmt = torch_memory_format(torch, rank)
            if fmt is None:
                raise ValueError(f"torch has no channels_last format for {rank}-D convolution")
            x, w = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)  # before timing
        kw = _conv_kwargs(layer)
        return lambda: fn(x, w, None, **kw)

    return make


def _conv_ort_attrs(layer: Layer, w: np.ndarray) -> Dict[str, Any]:
    return dict(kernel_shape=list(w.shape[2:]), strides=list(layer["stride"]), pads=onnx_pads(layer["padding"]),
                dilations=list(layer["dilation"]), group=layer["groups"])


def _conv_ort(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
    x, w = arrays
    return ort_session("Conv", x, _conv_ort_attrs(layer, w), threads, initializers=[w])


#: Channel pairs above which the per-pair scipy peers are not run (they would take minutes).
SCIPY_MAX_PAIRS = 4096


def _conv_scipy(method: str) -> Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]:
    """scipy.signal per channel pair: ``fftconvolve`` / ``oaconvolve`` of the flipped kernel
    ('fft', 'oa'), or ``correlate(method='direct')`` ('direct', single channel pairs only), on
    the zero-padded input, the dilated kernel spread out with zeros; single-threaded (scipy's
    functions are)."""
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
        import scipy.signal as ss

        x, w = arrays
        if any(s != 1 for s in layer["stride"]) or layer["groups"] != 1:
            raise ValueError("scipy.signal peers run on stride-1 layers without groups")
        pairs = layer["C"] * layer["K"]
        extent = max((k - 1) * d + 1 for k, d in zip(layer["kernel"], layer["dilation"]))
        if extent < 11 and pairs != 1:
            raise ValueError("scipy.signal peers run on kernels spanning >= 11 taps or one channel pair")
        if pairs > SCIPY_MAX_PAIRS or (method == "direct" and pairs != 1):
            raise ValueError(f"too many channel pairs ({pairs}) for a per-pair scipy peer")
        pad = [(0, 0), (0, 0)] + [(p, p) for p in layer["padding"]]
        xp = np.pad(x, pad)
        rank = len(layer["input"])
        dil = layer["dilation"]
        taps = [(k - 1) * d + 1 for k, d in zip(layer["kernel"], dil)]
        wd = np.zeros(w.shape[:2] + tuple(taps), w.dtype)
        wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dil)] = w
        flipped = np.ascontiguousarray(wd[(slice(None), slice(None)) + (slice(None, None, -1),) * rank])
        fn = {"fft": ss.fftconvolve, "oa": ss.oaconvolve}.get(method)

        def run() -> np.ndarray:
            N, K, C = x.shape[0], w.shape[0], x.shape[1]
            out = None
            for n in range(N):
                for k in range(K):
                    acc = 0
                    for c in range(C):
                        if fn is None:
                            acc = acc + ss.correlate(xp[n, c], wd[k, c], mode="valid", method="direct")
                        else:
                            acc = acc + fn(xp[n, c], flipped[k, c], mode="valid")
                    if out is None:
                        out = np.empty((N, K) + acc.shape, np.float32)
                    out[n, k] = acc
            return out

        return run

    return make


def _registered_algorithms(direction: str, extra: Sequence[str] = ()) -> Callable[[], List[str]]:
    """'auto' (what a user gets), every registered algorithm of ``direction``, then ``extra``."""
    def names() -> List[str]:
        from .. import algorithms

        return ["auto"] + list(algorithms(direction)) + list(extra)

    return names


# ---- conv backward: data and weights ----------------------------------------


def _conv_grad_inputs(layer: Layer, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    # x and w as the forward (same draws), then g: (N, K, *output), the output gradient
    x, w = _conv_inputs(layer, rng)
    g = rng.standard_normal((layer["N"], layer["K"], *conv_output_size(layer)), dtype=np.float32)
    return x, w, g


def _conv_bwd_data_fastconv(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from .. import grad

    fn = getattr(grad, f"conv{len(layer['input'])}d_input")
    x, w, g = arrays
    kw = _conv_kwargs(layer)
    return lambda: fn(x.shape, w, g, algo=algo, **kw)


def _conv_bwd_weights_fastconv(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from .. import grad

    fn = getattr(grad, f"conv{len(layer['input'])}d_weight")
    x, w, g = arrays
    kw = _conv_kwargs(layer)
    return lambda: fn(x, w.shape, g, algo=algo, **kw)


def _conv_backward_torch(which: int) -> Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]:
    # which: 0 = input gradient, 1 = weight gradient (aten.convolution_backward's outputs)
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
        import torch

        backward = torch.ops.aten.convolution_backward
        x, w, g = _tensors(arrays)
        rank = len(layer["input"])
        stride, padding, dilation = list(layer["stride"]), list(layer["padding"]), list(layer["dilation"])
        groups = layer["groups"]
        mask = [which == 0, which == 1, False]
        return lambda: backward(g, x, w, None, stride, padding, dilation, False, [0] * rank, groups, mask)[which]

    return make


# ---- conv_transpose (forward) -------------------------------------------------


def _conv_transpose_inputs(layer: Layer, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    # x: (N, C, *input), w: (C, K / groups, *kernel) -- C in, K out, as torch.nn.ConvTranspose*d
    x = rng.standard_normal((layer["N"], layer["C"], *layer["input"]), dtype=np.float32)
    w = rng.standard_normal((layer["C"], layer["K"] // layer["groups"], *layer["kernel"]), dtype=np.float32)
    return x, w


def _conv_transpose_kwargs(layer: Layer) -> Dict[str, Any]:
    return dict(
        stride=tuple(layer["stride"]),
        padding=tuple(layer["padding"]),
        output_padding=tuple(layer.get("output_padding") or [0] * len(layer["input"])),
        groups=layer["groups"],
        dilation=tuple(layer["dilation"]),
    )


def _conv_transpose_fastconv(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from .. import functional

    fn = getattr(functional, f"conv_transpose{len(layer['input'])}d")
    x, w = arrays
    kw = _conv_transpose_kwargs(layer)
    return lambda: fn(x, w, None, algo=algo, **kw)


def _conv_transpose_torch(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
    import torch.nn.functional as tF

    fn = getattr(tF, f"conv_transpose{len(layer['input'])}d")
    x, w = _tensors(arrays)
    kw = _conv_transpose_kwargs(layer)
    return lambda: fn(x, w, None, **kw)


def _conv_transpose_ort(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
    x, w = arrays
    attrs = _conv_ort_attrs(layer, w)
    attrs["output_padding"] = list(_conv_transpose_kwargs(layer)["output_padding"])
    return ort_session("ConvTranspose", x, attrs, threads, initializers=[w])


# ---- pooling: max_pool, avg_pool ----------------------------------------------


def _pool_inputs(layer: Layer, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    # x: (N, C, *input); K == C
    return (rng.standard_normal((layer["N"], layer["C"], *layer["input"]), dtype=np.float32),)


def _pool_kwargs(layer: Layer, kind: str) -> Dict[str, Any]:
    # the layers file's fields, as torch.nn.functional / fastconv.functional spell them
    kw: Dict[str, Any] = dict(kernel_size=tuple(layer["kernel"]), stride=tuple(layer["stride"]),
                              padding=tuple(layer["padding"]))
    dilation = tuple(layer.get("dilation") or [1] * len(layer["input"]))
    if kind == "max":
        kw["dilation"] = dilation
    elif any(d != 1 for d in dilation):  # avg_pool*d has no dilation
        raise ValueError(f"avg_pool has no dilation (layer has {list(dilation)})")
    return kw


def _pool_fastconv(kind: str) -> Callable[[Layer, Tuple[np.ndarray, ...], str], Callable[[], Any]]:
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
        from .. import functional

        fn = getattr(functional, f"{kind}_pool{len(layer['input'])}d")
        (x,) = arrays
        kw = _pool_kwargs(layer, kind)
        return lambda: fn(x, **kw)

    return make


def _pool_torch(kind: str, channels_last: bool) -> Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]:
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
        import torch
        import torch.nn.functional as tF

        rank = len(layer["input"])
        fn = getattr(tF, f"{kind}_pool{rank}d")
        (x,) = _tensors(arrays)
        if channels_last:
            fmt = torch_memory_format(torch, rank)
            if fmt is None:
                raise ValueError(f"torch has no channels_last format for {rank}-D pooling")
            x = x.contiguous(memory_format=fmt)  # once, outside the timing
        kw = _pool_kwargs(layer, kind)
        return lambda: fn(x, **kw)

    return make


def _pool_ort(kind: str) -> Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]:
    def make(layer: Layer, arrays: Tuple[np.ndarray, ...], threads: int) -> Callable[[], Any]:
        (x,) = arrays
        kw = _pool_kwargs(layer, kind)
        attrs: Dict[str, Any] = dict(kernel_shape=list(kw["kernel_size"]), strides=list(kw["stride"]),
                                     pads=onnx_pads(kw["padding"]), ceil_mode=0)
        if kind == "max":
            attrs["dilations"] = list(kw["dilation"])
            return ort_session("MaxPool", x, attrs, threads)
        attrs["count_include_pad"] = 1  # torch's default (ONNX's is 0)
        return ort_session("AveragePool", x, attrs, threads)

    return make


def _single_implementation() -> List[str]:
    return [NO_ALGO]


# ---- peers --------------------------------------------------------------------

_TORCH = "torch"  # the backend names of peers.BACKENDS
_ORT = "onnxruntime"
_SCIPY = "scipy"


def _pool_peers(kind: str) -> Tuple[Peer, ...]:
    op = "MaxPool" if kind == "max" else "AveragePool"
    return (
        Peer("torch", _TORCH, _pool_torch(kind, False), f"torch.nn.functional.{kind}_pool*d, NCHW (contiguous)"),
        Peer("torch_cl", _TORCH, _pool_torch(kind, True),
             f"torch.nn.functional.{kind}_pool*d on a channels_last copy of the input (made before timing)"),
        Peer("ort", _ORT, _pool_ort(kind), f"ONNX Runtime, one {op} node"),
    )


#: bench op name -> how to benchmark it, in table order.  Layers whose op no
#: entry runs on are listed as skipped.
OPS: Dict[str, OpSpec] = {
    "conv": OpSpec(
        layer_op="conv",
        make_inputs=_conv_inputs,
        fastconv=_conv_fastconv,
        peers=(Peer("torch", _TORCH, _conv_torch(False), "torch.nn.functional.conv*d, NCHW (contiguous)"),
               Peer("torch_cl", _TORCH, _conv_torch(True),
                    "torch.nn.functional.conv*d on channels_last copies of input and weight (made before timing)"),
               Peer("ort", _ORT, _conv_ort, "ONNX Runtime, one Conv node, weight an initializer"),
               Peer("scipy_fft", _SCIPY, _conv_scipy("fft"),
                    "scipy.signal.fftconvolve per channel pair (signal-like layers only)"),
               Peer("scipy_oa", _SCIPY, _conv_scipy("oa"),
                    "scipy.signal.oaconvolve per channel pair (signal-like layers only)"),
               Peer("scipy_direct", _SCIPY, _conv_scipy("direct"),
                    "scipy.signal.correlate(method='direct'): correlate2d's sum (one channel pair only)")),
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("forward", extra=(PLAN,)),
        description="forward convolution: functional.conv*d (each algorithm) and fastconv.plan (auto, "
        "weights packed once) vs torch.nn.functional.conv*d",
    ),
    "conv_bwd_data": OpSpec(
        layer_op="conv",
        make_inputs=_conv_grad_inputs,
        fastconv=_conv_bwd_data_fastconv,
        peers=(Peer("torch", _TORCH, _conv_backward_torch(0), "aten.convolution_backward, input gradient only"),),
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("backward_data"),
        description="input gradient: grad.conv*d_input vs aten.convolution_backward (input only)",
    ),
    "conv_bwd_weights": OpSpec(
        layer_op="conv",
        make_inputs=_conv_grad_inputs,
        fastconv=_conv_bwd_weights_fastconv,
        peers=(Peer("torch", _TORCH, _conv_backward_torch(1), "aten.convolution_backward, weight gradient only"),),
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("backward_weights"),
        description="weight gradient: grad.conv*d_weight vs aten.convolution_backward (weight only)",
    ),
    "conv_transpose": OpSpec(
        layer_op="conv_transpose",
        make_inputs=_conv_transpose_inputs,
        fastconv=_conv_transpose_fastconv,
        peers=(Peer("torch", _TORCH, _conv_transpose_torch, "torch.nn.functional.conv_transpose*d"),
               Peer("ort", _ORT, _conv_transpose_ort, "ONNX Runtime, one ConvTranspose node, weight an initializer")),
        flops=conv_transpose_flops,
        output_size=conv_transpose_output_size,
        # a transposed convolution is the data gradient of a convolution
        algorithms=_registered_algorithms("backward_data"),
        description="transposed convolution: functional.conv_transpose*d vs torch.nn.functional.conv_transpose*d",
    ),
    "max_pool": OpSpec(
        layer_op="max_pool",
        make_inputs=_pool_inputs,
        fastconv=_pool_fastconv("max"),
        peers=_pool_peers("max"),
        flops=None,
        bytes=pool_bytes,
        output_size=conv_output_size,
        algorithms=_single_implementation,
        description="max pooling: functional.max_pool*d vs torch (NCHW, channels_last) and ONNX Runtime MaxPool",
    ),
    "avg_pool": OpSpec(
        layer_op="avg_pool",
        make_inputs=_pool_inputs,
        fastconv=_pool_fastconv("avg"),
        peers=_pool_peers("avg"),
        flops=None,
        bytes=pool_bytes,
        output_size=conv_output_size,
        algorithms=_single_implementation,
        description="average pooling: functional.avg_pool*d vs torch (NCHW, channels_last) and ONNX Runtime "
        "AveragePool",
    ),
}


def layer_ops(ops: Sequence[str] = ()) -> List[str]:
    """The layer ops that the entries of :data:`OPS` named in ``ops`` run on.

    Parameters
    ----------
    ops : sequence of str
        Names of :data:`OPS` entries; empty means all of them.

    Returns
    -------
    list of str
        ``op`` values of the layers file, without repeats.

    Examples
    --------
    >>> layer_ops()
    ['conv', 'conv_transpose', 'max_pool', 'avg_pool']
    >>> layer_ops(["conv_bwd_data"])
    ['conv']
    """
    names = list(ops) or list(OPS)
    return list(dict.fromkeys(OPS[n].layer_op for n in names))


def ops_for(layer: Layer, ops: Sequence[str] = ()) -> List[Tuple[str, OpSpec]]:
    """The entries of :data:`OPS` (among ``ops``) that run on ``layer``, in table order.

    Parameters
    ----------
    layer : dict
        A layer of the layers file.
    ops : sequence of str
        Names of :data:`OPS` entries to consider; empty means all of them.

    Returns
    -------
    list of (str, OpSpec)
        Op name and entry; empty when the layer's op is not benchmarked.
    """
    wanted = set(ops) or set(OPS)
    return [(name, spec) for name, spec in OPS.items() if name in wanted and spec.layer_op == layer.get("op")]
