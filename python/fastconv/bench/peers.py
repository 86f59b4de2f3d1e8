"""The libraries fastconv is compared with: :class:`Peer` entries, and their backends.

An op (:data:`~fastconv.bench.ops.OPS`) lists its peers in table order; the first one
that runs is the reference of the mismatch check, and the table's ``ratio`` is
``best peer ms / fastconv ms`` over all of them.  A peer belongs to a *backend* -- a
library that may be missing or switched off (``--no-torch``, ``--no-ort``) -- and is
built per layer and thread count by ``make(layer, arrays, threads)``, which does its
one-off preparation (tensor wrapping, memory-format conversion, an ONNX Runtime session)
outside the timing and returns the zero-argument closure that is timed.

Backends:

* ``torch`` -- PyTorch; the runner sets ``torch.set_num_threads`` and runs it under
  ``torch.no_grad()``.  Tensors share the NumPy inputs' memory (``torch.from_numpy``).
* ``scipy`` -- ``scipy.signal`` applied per (image, output channel, input channel) pair and
  summed over the input channels (its functions are single-channel); only on signal-like
  layers (stride 1, a kernel of at least 11 taps or a single channel pair).
* ``onnxruntime`` -- a one-node ONNX model (:func:`ort_session`) on the CPU execution
  provider with ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1`` and
  sequential execution, idle workers not spin-waiting (``session.intra_op.allow_spinning
  = 0``: spinning steals a core from the next method of the interleaved round); the
  timed call is ``session.run(None, feed)`` with a feed dict made beforehand.  Weights
  are initializers (constants of the model), as in ONNX inference, so ONNX Runtime may
  pre-pack them when the session is made.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .layers import Layer

__all__ = ["BACKENDS", "ONNX_OPSET", "Peer", "backend_versions", "onnx_pads", "ort_session", "peer_names", "to_numpy",
           "torch_memory_format"]

#: backend name -> the modules it needs (the first one's version is shown)
BACKENDS: Dict[str, Tuple[str, ...]] = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"),
                                        "scipy": ("scipy",)}

#: Opset of the one-node models: 19 is the first with AveragePool ``dilations``.
ONNX_OPSET = 19
#: IR version of the models (9 goes with opset 19), so that older ONNX Runtimes load them.
ONNX_IR_VERSION = 9


@dataclasses.dataclass(frozen=True)
class Peer:
    """One implementation fastconv is timed against.

    Attributes
    ----------
    name : str
        Short name: the table's ``<name> ms`` column and the key in the JSON ``peers``.
    backend : str
        Key of :data:`BACKENDS`: the library it needs.
    make : callable(layer, arrays, threads) -> callable() -> array-like
        Prepares the peer for one layer at one thread count (not timed) and
        returns the timed closure.  Its result is a ``torch.Tensor``, a NumPy
        array, or a list whose first element is the output (ONNX Runtime).
        Raising means the peer cannot run this layer; the row shows the reason.
    description : str
        One line for the README and ``--help``.
    """

    name: str
    backend: str
    make: Callable[[Layer, Tuple[np.ndarray, ...], int], Callable[[], Any]]
    description: str = ""


def peer_names(peers: Sequence[Peer]) -> List[str]:
    """Names of ``peers`` without repeats, grouped by backend in :data:`BACKENDS` order.

    Examples
    --------
    >>> mk = lambda name, backend: Peer(name, backend, lambda *a: None)
    >>> peer_names([mk("torch", "torch"), mk("ort", "onnxruntime"), mk("torch_cl", "torch")])
    ['torch', 'torch_cl', 'ort']
    """
    order = list(BACKENDS)
    first = list(dict.fromkeys(p.name for p in peers))
    backend = {p.name: p.backend for p in peers}
    return sorted(first, key=lambda n: (order.index(backend[n]) if backend[n] in order else len(order),
                                        first.index(n)))


def to_numpy(out: Any) -> np.ndarray:
    """A peer's (or fastconv's) result as a NumPy array.

    Parameters
    ----------
    out : torch.Tensor, numpy.ndarray or list
        A list is ONNX Runtime's list of outputs: its first element is taken.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> to_numpy([np.zeros(2)]).shape
    (2,)
    """
    if isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):  # torch.Tensor (any memory format: .numpy() keeps the strides)
        out = out.detach().numpy()
    return np.asarray(out)


def backend_versions(disabled: Sequence[str] = ()) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Import the backends that are not switched off.

    Parameters
    ----------
    disabled : sequence of str
        Backend names not to use.

    Returns
    -------
    modules : dict of str -> module
        The usable, enabled backends (their first module).
    notes : dict of str -> str
        Per backend, ``"<name> <version>"`` or why it is not used.
    """
    modules: Dict[str, Any] = {}
    notes: Dict[str, str] = {}
    for name, needed in BACKENDS.items():
        if name in disabled:
            notes[name] = f"{name} off"
            continue
        try:
            mods = [importlib.import_module(m) for m in needed]
        except ImportError as e:
            notes[name] = f"{name} not usable ({e.name or needed[0]} not installed)"
            continue
        modules[name] = mods[0]
        notes[name] = f"{name} {getattr(mods[0], '__version__', '?')}"
    return modules, notes


def ort_session(
    op_type: str, x: np.ndarray, attrs: Dict[str, Any], threads: int,
    initializers: Sequence[np.ndarray] = (),
) -> Callable[[], Any]:
    """A one-node ONNX Runtime model, ready to time.

    Parameters
    ----------
    op_type : str
        The ONNX operator (``MaxPool``, ``AveragePool``, ``Conv``, ``ConvTranspose``).
    x : numpy.ndarray
        The (float32) input; its shape is fixed in the model.
    attrs : dict
        The node's attributes.
    threads : int
        ``intra_op_num_threads``.
    initializers : sequence of numpy.ndarray
        Constant inputs after ``x`` (weights), stored in the model.

    Returns
    -------
    callable
        ``lambda: session.run(None, {"x": x})`` -- a list holding the output.

    Raises
    ------
    Exception
        Whatever onnx or ONNX Runtime raise for a node they cannot build or run.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    names = ["x"] + [f"w{i}" for i in range(len(initializers))]
    node = helper.make_node(op_type, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], f"fastconv_bench_{op_type}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * x.ndim)],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(w), name=n)
                     for n, w in zip(names[1:], initializers)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No spin-waiting of idle intra-op workers after a run: in interleaved rounds on
    # 2 cores a spinning worker takes a core from the method timed next.  Measured at
    # 2 threads (bench/README.md, "Peers"): fastconv gemm on resnet50_3x3_64_56 1.8 ->
    # 4.4-5.3 ms, max pool 0.29 -> 3.9 ms, and ONNX Runtime itself was slower too
    # (conv 1.2 -> 2.2 ms, max pool 0.38 -> 0.50 ms).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x}
    run = session.run
    return lambda: run(None, feed)


def onnx_pads(padding: Sequence[int]) -> List[int]:
    """ONNX ``pads`` (all begins, then all ends) for symmetric ``padding``.

    Examples
    --------
    >>> onnx_pads([1, 2])
    [1, 2, 1, 2]
    """
    return list(padding) + list(padding)


def torch_memory_format(torch: Any, rank: int) -> Optional[Any]:
    """``torch.channels_last`` (2-D) / ``channels_last_3d`` (3-D); None for 1-D (no such format)."""
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(rank)
