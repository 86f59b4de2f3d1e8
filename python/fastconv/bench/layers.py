"""The benchmark layer set: find, load and select layers, and their shape arithmetic.

The layers come from ``shared/shapes/layers.json`` (DESIGN.md, "Benchmark layers"), so
figures stay comparable from one change to the next.  Each layer is a plain dict as in
the file: name, net, op, N, C, K, input, kernel, stride, padding, dilation, groups.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "LAYERS_ENV",
    "QUICK_LAYERS",
    "conv_flops",
    "conv_output_size",
    "conv_transpose_flops",
    "conv_transpose_output_size",
    "find_layers_file",
    "load_layers",
    "pool_bytes",
    "select_layers",
]

LAYERS_ENV = "FASTCONV_LAYERS"

# The quick default subset: one of each kind of layer (every op of OPS runs on the
# layers of its kind: forward and both backward directions on the conv layers),
# well under a minute on 2 cores.
QUICK_LAYERS: Tuple[str, ...] = (
    "resnet50_3x3_64_56",  # the classic 3x3, 64 channels, 56x56
    "resnet50_1x1_64_56",  # pointwise 1x1
    "resnet50_3x3_512_7",  # deep, small spatial, many channels
    "resnet50_stem7x7s2",  # large kernel, stride 2, 3 input channels
    "mobilenetv2_dw3x3_144_56",  # depthwise (groups == channels)
    "conv1d_k3_128_4096",  # 1-D
    "dcgan_tconv4x4s2_256to128_16",  # transposed convolution, stride 2
    "resnet_maxpool3x3s2_64_112",  # max pooling 3x3 stride 2, padded (after the ResNet stem)
    "avgpool2x2_256_56",  # average pooling 2x2 stride 2
)

Layer = Dict[str, Any]


def find_layers_file(path: Optional[str] = None, start: Optional[Path] = None) -> Tuple[Any, str]:
    """Locate the benchmark layers file.

    Parameters
    ----------
    path : str, optional
        An explicit file (``--layers``); used as is when given.
    start : pathlib.Path, optional
        Directory the upward search starts from (default: the current one).

    Returns
    -------
    source : pathlib.Path or importlib.resources.abc.Traversable
        Something with ``read_text()``.
    description : str
        Where it came from, for printing.

    Raises
    ------
    FileNotFoundError
        If an explicit path or ``FASTCONV_LAYERS`` names a missing file, or no
        layers file can be found at all.

    Notes
    -----
    Order: ``path``; the ``FASTCONV_LAYERS`` environment variable;
    ``shared/shapes/layers.json`` in ``start`` or any directory above it (so
    ``./shared/shapes`` and ``../shared/shapes`` from a checkout); finally the
    copy packaged with fastconv (``fastconv/data/layers.json``).

    Examples
    --------
    >>> source, where = find_layers_file()
    >>> where.endswith(("layers.json", "(packaged copy)"))
    True
    """
    for given, label in ((path, "--layers"), (os.environ.get(LAYERS_ENV), LAYERS_ENV)):
        if given:
            p = Path(given)
            if not p.is_file():
                raise FileNotFoundError(f"{label}: no such file: {given}")
            return p, str(p) if label == "--layers" else f"{p} (from {LAYERS_ENV})"
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        p = d / "shared" / "shapes" / "layers.json"
        if p.is_file():
            return p, str(p)
    packaged = resources.files("fastconv").joinpath("data", "layers.json")
    if packaged.is_file():
        return packaged, f"{packaged} (packaged copy)"
    raise FileNotFoundError(
        "no layers file: pass --layers PATH or set FASTCONV_LAYERS "
        "(looked for shared/shapes/layers.json above the current directory "
        "and for fastconv/data/layers.json)"
    )


def load_layers(source: Any) -> List[Layer]:
    """Read the list of layers from a layers file.

    Parameters
    ----------
    source : str, path-like or Traversable
        The file (anything :func:`find_layers_file` returns).

    Returns
    -------
    list of dict
        One dict per layer, as in the file.

    Raises
    ------
    ValueError
        If the file holds no list of layers.
    """
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
    data = json.loads(source.read_text())
    layers = data["layers"] if isinstance(data, dict) else data
    if not isinstance(layers, list):
        raise ValueError("layers file: expected a list of layers under 'layers'")
    return layers


def select_layers(
    layers: Sequence[Layer],
    *,
    ops: Collection[str],
    all_layers: bool = False,
    filters: Sequence[str] = (),
    quick: Sequence[str] = QUICK_LAYERS,
) -> Tuple[List[Layer], List[Layer], str]:
    """Choose the layers to run.

    Parameters
    ----------
    layers : sequence of dict
        Every layer of the file.
    ops : collection of str
        The layer ops that can be benchmarked (``op`` values of the file).
    all_layers : bool
        Take every layer (``--all``).
    filters : sequence of str
        Substrings (``--filter``); a layer is taken when its name contains any
        of them.  Filters search every layer, not only the quick subset.
    quick : sequence of str
        Names of the default subset.

    Returns
    -------
    selected : list of dict
        Matching layers whose op is in ``ops``, in file order.
    skipped : list of dict
        Matching layers whose op is not benchmarked yet.
    how : str
        A short description of the selection, for printing.

    Examples
    --------
    >>> layers = [{"name": "a", "op": "conv"}, {"name": "b", "op": "max_pool"}]
    >>> select_layers(layers, ops={"conv"}, all_layers=True)
    ([{'name': 'a', 'op': 'conv'}], [{'name': 'b', 'op': 'max_pool'}], 'all')
    """
    if filters:
        matched = [l for l in layers if any(f in l["name"] for f in filters)]
        how = "matching " + ", ".join(repr(f) for f in filters)
    elif all_layers:
        matched = list(layers)
        how = "all"
    else:
        wanted = set(quick)
        matched = [l for l in layers if l["name"] in wanted]
        how = "quick subset; --all for every layer"
        if not matched:  # a different layers file: take its first few runnable layers
            matched = [l for l in layers if l.get("op") in ops][: len(quick)]
            how = "first conv layers (quick subset names not in this file); --all for every layer"
    selected = [l for l in matched if l.get("op") in ops]
    skipped = [l for l in matched if l.get("op") not in ops]
    return selected, skipped, how


def conv_output_size(layer: Layer) -> List[int]:
    """Spatial output size of a convolution layer.

    Parameters
    ----------
    layer : dict
        A layer with ``input``, ``kernel``, ``stride``, ``padding`` and
        ``dilation`` (one entry per spatial dimension).

    Returns
    -------
    list of int
        ``(in + 2 p - d (k - 1) - 1) // s + 1`` per dimension.

    Examples
    --------
    >>> conv_output_size({"input": [56, 56], "kernel": [3, 3], "stride": [2, 2],
    ...                   "padding": [1, 1], "dilation": [1, 1]})
    [28, 28]
    """
    dims = zip(layer["input"], layer["kernel"], layer["stride"], layer["padding"], layer["dilation"])
    return [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in dims]


def conv_flops(layer: Layer) -> int:
    """FLOPs of one convolution call (multiply + add = 2).

    Parameters
    ----------
    layer : dict
        A conv layer of the layers file.

    Returns
    -------
    int
        ``2 * N * K * prod(out) * (C / groups) * prod(kernel)``, the formula of
        the layers file's ``about``, whatever the algorithm does internally.

    Examples
    --------
    >>> conv_flops({"N": 1, "C": 64, "K": 64, "groups": 1, "input": [56, 56], "kernel": [3, 3],
    ...             "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1]})
    231211008
    """
    out = math.prod(conv_output_size(layer))
    return 2 * layer["N"] * layer["K"] * out * (layer["C"] // layer["groups"]) * math.prod(layer["kernel"])


def conv_transpose_output_size(layer: Layer) -> List[int]:
    """Spatial output size of a transposed convolution layer.

    Parameters
    ----------
    layer : dict
        A ``conv_transpose`` layer: ``input`` is the transposed convolution's
        input; ``output_padding`` (optional) defaults to 0 per dimension.

    Returns
    -------
    list of int
        ``(in - 1) s - 2 p + d (k - 1) + output_padding + 1`` per dimension, as
        ``torch.nn.ConvTranspose*d``.

    Examples
    --------
    >>> conv_transpose_output_size({"input": [16, 16], "kernel": [4, 4], "stride": [2, 2],
    ...                             "padding": [1, 1], "dilation": [1, 1]})
    [32, 32]
    """
    op = layer.get("output_padding") or [0] * len(layer["input"])
    dims = zip(layer["input"], layer["kernel"], layer["stride"], layer["padding"], layer["dilation"], op)
    return [(i - 1) * s - 2 * p + d * (k - 1) + o + 1 for i, k, s, p, d, o in dims]


def conv_transpose_flops(layer: Layer) -> int:
    """FLOPs of one transposed convolution call (multiply + add = 2).

    Parameters
    ----------
    layer : dict
        A ``conv_transpose`` layer: ``C`` input channels, ``K`` output channels,
        weight ``(C, K / groups, *kernel)``.

    Returns
    -------
    int
        ``2 * N * C * prod(input) * (K / groups) * prod(kernel)``: every input
        element meets every weight of its group once.  This is the forward
        FLOP count of the convolution it is the transpose (the data gradient) of,
        i.e. :func:`conv_flops` with C and K swapped and ``input`` as its output.

    Examples
    --------
    >>> conv_transpose_flops({"N": 1, "C": 256, "K": 128, "groups": 1, "input": [16, 16],
    ...                       "kernel": [4, 4]})
    268435456
    """
    return (2 * layer["N"] * layer["C"] * math.prod(layer["input"]) * (layer["K"] // layer["groups"])
            * math.prod(layer["kernel"]))


def pool_bytes(layer: Layer, itemsize: int = 4) -> int:
    """Bytes one pooling call must move at least: its input read once, its output written once.

    Parameters
    ----------
    layer : dict
        A ``max_pool`` / ``avg_pool`` layer (``K == C``; output size as
        :func:`conv_output_size`, i.e. ``ceil_mode=False``).
    itemsize : int
        Bytes per element (4: float32).

    Returns
    -------
    int
        ``itemsize * N * C * (prod(input) + prod(out))``; divided by the time,
        the GB/s the table reports against the memory bandwidth.

    Examples
    --------
    >>> pool_bytes({"N": 1, "C": 64, "input": [112, 112], "kernel": [3, 3], "stride": [2, 2],
    ...             "padding": [1, 1], "dilation": [1, 1]})
    4014080
    """
    planes = layer["N"] * layer["C"]
    return itemsize * planes * (math.prod(layer["input"]) + math.prod(conv_output_size(layer)))
