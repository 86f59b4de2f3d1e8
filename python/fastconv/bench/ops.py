"""The ops the benchmark can time: one :class:`OpSpec` entry per op in :data:`OPS`.

An entry says which layers of the layers file it runs on (``layer_op``), how to make
seeded inputs, how to call fastconv and PyTorch on them, the FLOPs of one call, the
output size and which registered algorithms to run.  The runner, table and JSON never
name an op, so adding pooling is one new entry here.

The ops:

* ``conv`` -- forward convolution (``fastconv.functional.conv{1,2,3}d`` vs
  ``torch.nn.functional.conv{1,2,3}d``), on the ``conv`` layers;
* ``conv_bwd_data`` -- the input gradient (``fastconv.grad.conv{1,2,3}d_input``), on
  the ``conv`` layers;
* ``conv_bwd_weights`` -- the weight gradient (``fastconv.grad.conv{1,2,3}d_weight``),
  on the ``conv`` layers;
* ``conv_transpose`` -- ``fastconv.functional.conv_transpose{1,2,3}d`` vs
  ``torch.nn.functional.conv_transpose{1,2,3}d``, on the ``conv_transpose`` layers.

The torch peer of a backward direction is ``torch.ops.aten.convolution_backward``
with an output mask selecting that one gradient: the very call autograd makes for
``y.backward(g)`` when only that gradient is required (bit-identical results), without
the graph bookkeeping or the forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from .layers import Layer, conv_flops, conv_output_size, conv_transpose_flops, conv_transpose_output_size

__all__ = ["OPS", "OpSpec", "layer_ops", "ops_for"]


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
    torch : callable(layer, tensors) -> callable() -> torch.Tensor
        A zero-argument closure running the PyTorch equivalent; its result is
        the reference of the mismatch check.
    flops : callable(layer) -> int
        Floating-point operations of one call (multiply + add = 2).
    output_size : callable(layer) -> list of int
        Spatial size of the op's output (of the forward convolution for the
        backward directions), recorded in the JSON ``params``.
    algorithms : callable() -> list of str
        The fastconv algorithm names to run for this op.
    description : str
        One line for ``--list`` and the help.
    """

    layer_op: str
    make_inputs: Callable[[Layer, np.random.Generator], Tuple[np.ndarray, ...]]
    fastconv: Callable[[Layer, Tuple[np.ndarray, ...], str], Callable[[], Any]]
    torch: Callable[[Layer, Tuple[Any, ...]], Callable[[], Any]]
    flops: Callable[[Layer], int]
    output_size: Callable[[Layer], List[int]]
    algorithms: Callable[[], List[str]]
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


def _conv_fastconv(layer: Layer, arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from .. import functional

    fn = getattr(functional, f"conv{len(layer['input'])}d")
    x, w = arrays
    kw = _conv_kwargs(layer)
    return lambda: fn(x, w, None, algo=algo, **kw)


def _conv_torch(layer: Layer, tensors: Tuple[Any, ...]) -> Callable[[], Any]:
    import torch.nn.functional as tF

    fn = getattr(tF, f"conv{len(layer['input'])}d")
    x, w = tensors
    kw = _conv_kwargs(layer)
    return lambda: fn(x, w, None, **kw)


def _registered_algorithms(direction: str) -> Callable[[], List[str]]:
    def names() -> List[str]:
        from .. import algorithms

        return list(algorithms(direction))

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


def _conv_backward_torch(which: int) -> Callable[[Layer, Tuple[Any, ...]], Callable[[], Any]]:
    # which: 0 = input gradient, 1 = weight gradient (aten.convolution_backward's outputs)
    def make(layer: Layer, tensors: Tuple[Any, ...]) -> Callable[[], Any]:
        import torch

        backward = torch.ops.aten.convolution_backward
        x, w, g = tensors
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


def _conv_transpose_torch(layer: Layer, tensors: Tuple[Any, ...]) -> Callable[[], Any]:
    import torch.nn.functional as tF

    fn = getattr(tF, f"conv_transpose{len(layer['input'])}d")
    x, w = tensors
    kw = _conv_transpose_kwargs(layer)
    return lambda: fn(x, w, None, **kw)


#: bench op name -> how to benchmark it, in table order.  Layers whose op no
#: entry runs on (max_pool, avg_pool for now) are listed as skipped.
OPS: Dict[str, OpSpec] = {
    "conv": OpSpec(
        layer_op="conv",
        make_inputs=_conv_inputs,
        fastconv=_conv_fastconv,
        torch=_conv_torch,
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("forward"),
        description="forward convolution: functional.conv*d vs torch.nn.functional.conv*d",
    ),
    "conv_bwd_data": OpSpec(
        layer_op="conv",
        make_inputs=_conv_grad_inputs,
        fastconv=_conv_bwd_data_fastconv,
        torch=_conv_backward_torch(0),
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("backward_data"),
        description="input gradient: grad.conv*d_input vs aten.convolution_backward (input only)",
    ),
    "conv_bwd_weights": OpSpec(
        layer_op="conv",
        make_inputs=_conv_grad_inputs,
        fastconv=_conv_bwd_weights_fastconv,
        torch=_conv_backward_torch(1),
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms("backward_weights"),
        description="weight gradient: grad.conv*d_weight vs aten.convolution_backward (weight only)",
    ),
    "conv_transpose": OpSpec(
        layer_op="conv_transpose",
        make_inputs=_conv_transpose_inputs,
        fastconv=_conv_transpose_fastconv,
        torch=_conv_transpose_torch,
        flops=conv_transpose_flops,
        output_size=conv_transpose_output_size,
        # a transposed convolution is the data gradient of a convolution
        algorithms=_registered_algorithms("backward_data"),
        description="transposed convolution: functional.conv_transpose*d vs torch.nn.functional.conv_transpose*d",
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
    ['conv', 'conv_transpose']
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
