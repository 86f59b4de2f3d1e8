"""The ops the benchmark can time: one :class:`OpSpec` entry per op in :data:`OPS`.

An entry says which layers of the layers file it runs on (``layer_op``), how to make
seeded inputs, how to call fastconv and PyTorch on them, the FLOPs of one call and the
output size.  The runner, table and JSON never name an op, so adding conv_transpose,
pooling or a backward direction (``conv_bwd_data`` running on the ``conv`` layers) is
one new entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from .layers import Layer, conv_flops, conv_output_size

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
        A zero-argument closure running the PyTorch equivalent.
    flops : callable(layer) -> int
        Floating-point operations of one call (multiply + add = 2).
    output_size : callable(layer) -> list of int
        Spatial size of the result, recorded in the JSON ``params``.
    algorithms : callable() -> list of str
        The fastconv algorithm names to run for this op.
    """

    layer_op: str
    make_inputs: Callable[[Layer, np.random.Generator], Tuple[np.ndarray, ...]]
    fastconv: Callable[[Layer, Tuple[np.ndarray, ...], str], Callable[[], Any]]
    torch: Callable[[Layer, Tuple[Any, ...]], Callable[[], Any]]
    flops: Callable[[Layer], int]
    output_size: Callable[[Layer], List[int]]
    algorithms: Callable[[], List[str]]


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


def _registered_algorithms() -> List[str]:
    from .. import algorithms

    return list(algorithms())


#: bench op name -> how to benchmark it.  Layers whose op no entry runs on
#: (conv_transpose, max_pool, avg_pool for now) are listed as skipped.
OPS: Dict[str, OpSpec] = {
    "conv": OpSpec(
        layer_op="conv",
        make_inputs=_conv_inputs,
        fastconv=_conv_fastconv,
        torch=_conv_torch,
        flops=conv_flops,
        output_size=conv_output_size,
        algorithms=_registered_algorithms,
    ),
}


def layer_ops() -> List[str]:
    """The layer ops that some entry of :data:`OPS` runs on.

    Returns
    -------
    list of str
        ``op`` values of the layers file, without repeats.

    Examples
    --------
    >>> layer_ops()
    ['conv']
    """
    return list(dict.fromkeys(spec.layer_op for spec in OPS.values()))


def ops_for(layer: Layer) -> List[Tuple[str, OpSpec]]:
    """The entries of :data:`OPS` that run on ``layer``, in table order.

    Parameters
    ----------
    layer : dict
        A layer of the layers file.

    Returns
    -------
    list of (str, OpSpec)
        Op name and entry; empty when the layer's op is not benchmarked.
    """
    return [(name, spec) for name, spec in OPS.items() if spec.layer_op == layer.get("op")]
