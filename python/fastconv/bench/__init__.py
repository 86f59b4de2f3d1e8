"""Benchmark fastconv's convolution algorithms and pooling on the standard layer set.

``fastconv bench`` (also ``python -m fastconv bench``) runs every registered
algorithm (:func:`fastconv.algorithms` of the op's direction) on the layers of
``shared/shapes/layers.json`` -- a quick subset by default, ``--all`` for every
layer -- for each op of :data:`OPS` (``--op`` to choose): forward convolution,
its data and weight gradients, transposed convolution, max and average pooling.
It prints, per op, layer, thread count and algorithm: the median time in ms,
GFLOP/s and the percentage of this machine's fp32 peak (compute-bound ops) or
GB/s and the percentage of its memory bandwidth (pooling), each peer's time
(:class:`Peer`: PyTorch, PyTorch on channels_last, ONNX Runtime -- those installed)
and the ratio ``best peer ms / fastconv ms`` (> 1 means fastconv is faster).
The torch peer of a backward direction is ``aten.convolution_backward`` with a
one-gradient output mask, the call autograd makes.

Method (see shared/DESIGN.md, "The machine": machines are shared and noisy, so
compare ratios measured in the same run, interleaved, median of several):

* inputs are seeded random float32 arrays, prepared once per layer (torch
  tensors share their memory via ``torch.from_numpy``);
* each method (every fastconv algorithm, and each peer) is prepared outside the
  timing (an ONNX Runtime session, a channels_last copy) and called once to warm up;
* then rounds are run: every round times each method once with
  :func:`time.perf_counter`, in an order shuffled afresh each round (seeded;
  ``--prime``: each timed call right after an untimed call of the same method); the
  reported figure is the median over rounds.  Without ``--repeat`` the number of
  rounds adapts: at least 5, and until about ``--budget`` seconds (0.3) per
  method have been spent.

Modules: :mod:`.layers` (the layers file), :mod:`.ops` (what is timed, one entry per
op), :mod:`.peers` (the peers and their backends, the one-node ONNX models),
:mod:`.timing` (interleaved rounds, busy-CPU detection), :mod:`.peak` (the peak FLOP
and bandwidth table), :mod:`.report` (table, progress bar, JSON), :mod:`.cli` (options)
and :mod:`.runner` (the run).  Adding an op means adding one entry to :data:`OPS`;
adding a peer, one :class:`Peer` in its ``peers``; the loop, table and JSON do not
change.
"""

from .cli import add_arguments, build_parser
from .layers import (
    QUICK_LAYERS,
    conv_flops,
    conv_output_size,
    conv_transpose_flops,
    conv_transpose_output_size,
    find_layers_file,
    load_layers,
    pool_bytes,
    select_layers,
)
from .ops import OPS, OpSpec
from .peak import PEAK_GBPS, peak_gbps, peak_gflops
from .peers import Peer
from .runner import main, run
from .timing import measure

__all__ = [
    "PEAK_GBPS",
    "QUICK_LAYERS",
    "OPS",
    "OpSpec",
    "Peer",
    "add_arguments",
    "build_parser",
    "conv_flops",
    "conv_output_size",
    "conv_transpose_flops",
    "conv_transpose_output_size",
    "find_layers_file",
    "load_layers",
    "main",
    "measure",
    "peak_gbps",
    "peak_gflops",
    "pool_bytes",
    "run",
    "select_layers",
]
