"""Benchmark fastconv's convolution algorithms on the standard layer set.

``fastconv bench`` (also ``python -m fastconv bench``) runs every registered
algorithm (:func:`fastconv.algorithms`) on the convolution layers of
``shared/shapes/layers.json`` -- a quick subset by default, ``--all`` for every
layer -- and prints, per layer, thread count and algorithm: the median time in
ms, GFLOP/s, the percentage of this machine's fp32 peak and, where PyTorch is
installed, torch's time and the ratio ``torch_ms / fastconv_ms`` (> 1 means
fastconv is faster).

Method (see shared/DESIGN.md, "The machine": machines are shared and noisy, so
compare ratios measured in the same run, interleaved, median of several):

* inputs are seeded random float32 arrays, prepared once per layer (torch
  tensors share their memory via ``torch.from_numpy``);
* each method (every fastconv algorithm, and torch) is called once to warm up;
* then rounds are run: every round times each method once with
  :func:`time.perf_counter`, the order rotating from round to round; the
  reported figure is the median over rounds.  Without ``--repeat`` the number of
  rounds adapts: at least 5, and until about ``--budget`` seconds (0.3) per
  method have been spent.

Adding an op (conv_transpose, pooling, ...) means adding one entry to
:data:`OPS`; the loop, table and JSON do not change.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "PEAK_GFLOPS",
    "QUICK_LAYERS",
    "OPS",
    "OpSpec",
    "add_arguments",
    "conv_flops",
    "conv_output_size",
    "find_layers_file",
    "load_layers",
    "main",
    "measure",
    "peak_gflops",
    "run",
    "select_layers",
]

# ---------------------------------------------------------------------------
# fp32 peak of the development machine.  THE ONE TABLE OF THESE NUMBERS.
#
# Source: shared/DESIGN.md, section "The machine" (2 cores, x86-64 AVX-512):
#   "Measured fp32 FMA peak here: ≈239 GFLOP/s on 1 core, ≈470 on 2 (AVX-512);
#    ≈128 / 258 with AVX2."
#
# Key: the ISA fastconv reports active (fastconv.info()['isa'], which
# FASTCONV_ISA / fastconv.set_isa can cap) -> {threads: GFLOP/s}.  %peak is
# therefore "fraction of what the active ISA can do on this machine".
#
# * 'scalar' has no measured figure.  The portable kernels are compiled for
#   baseline x86-64 (SSE2 at most, no FMA), so any figure is an upper bound;
#   we report scalar runs against the AVX2 figure (SCALAR_PEAK_ISA), the
#   ceiling of the nearest measured ISA, and the header says so.
# * An ISA missing from the table (a future one) uses the AVX-512 figure.
# * Thread counts not in the table: threads beyond the usable cores add no
#   peak (3 threads on 2 cores -> the 2-thread figure); otherwise the
#   1-thread figure times min(threads, usable cores).
# * These are this machine's numbers; on other hardware pass --peak GFLOPS
#   (the fp32 peak for the thread count being run), which overrides all this.
# ---------------------------------------------------------------------------
PEAK_GFLOPS: Dict[str, Dict[int, float]] = {
    "avx512": {1: 239.0, 2: 470.0},
    "avx2": {1: 128.0, 2: 258.0},
}
SCALAR_PEAK_ISA = "avx2"  # scalar runs are reported against this ISA's figure
DEFAULT_PEAK_ISA = "avx512"  # ISAs not in PEAK_GFLOPS
PEAK_SOURCE = 'shared/DESIGN.md "The machine"'

# The quick default subset: one of each kind of layer, ~1-2 minutes on 2 cores.
QUICK_LAYERS: Tuple[str, ...] = (
    "resnet50_3x3_64_56",  # the classic 3x3, 64 channels, 56x56
    "resnet50_1x1_64_56",  # pointwise 1x1
    "resnet50_3x3_512_7",  # deep, small spatial, many channels
    "resnet50_stem7x7s2",  # large kernel, stride 2, 3 input channels
    "mobilenetv2_dw3x3_144_56",  # depthwise (groups == channels)
    "conv1d_k3_128_4096",  # 1-D
)

DEFAULT_BUDGET_S = 0.3  # adaptive timing: seconds per method per layer
MIN_ROUNDS = 5
MAX_ROUNDS = 1000
MISMATCH_TOL = 1e-3  # max|y - y_torch| / max|y_torch| above this is flagged
LAYERS_ENV = "FASTCONV_LAYERS"


# ---------------------------------------------------------------------------
# Layers file
# ---------------------------------------------------------------------------
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

    Notes
    -----
    Order: ``path``; the ``FASTCONV_LAYERS`` environment variable;
    ``shared/shapes/layers.json`` in ``start`` or any directory above it (so
    ``./shared/shapes`` and ``../shared/shapes`` from a checkout); finally the
    copy packaged with fastconv (``fastconv/data/layers.json``).

    Raises
    ------
    FileNotFoundError
        If an explicit path or ``FASTCONV_LAYERS`` names a missing file, or no
        layers file can be found at all.
    """
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--layers: no such file: {path}")
        return p, str(p)
    env = os.environ.get(LAYERS_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise FileNotFoundError(f"{LAYERS_ENV}: no such file: {env}")
        return p, f"{p} (from {LAYERS_ENV})"
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        p = d / "shared" / "shapes" / "layers.json"
        if p.is_file():
            return p, str(p)
    try:
        from importlib import resources

        p = resources.files("fastconv").joinpath("data", "layers.json")
        if p.is_file():
            return p, f"{p} (packaged copy)"
    except (ImportError, ModuleNotFoundError, AttributeError, TypeError):
        pass
    raise FileNotFoundError(
        "no layers file: pass --layers PATH or set FASTCONV_LAYERS "
        "(looked for shared/shapes/layers.json above the current directory "
        "and for fastconv/data/layers.json)"
    )


def load_layers(source: Any) -> List[Dict[str, Any]]:
    """Read the list of layers from a layers file.

    Parameters
    ----------
    source : path-like or Traversable
        The file (anything :func:`find_layers_file` returns).

    Returns
    -------
    list of dict
        One dict per layer, as in the file (name, net, op, N, C, K, input,
        kernel, stride, padding, dilation, groups).
    """
    data = json.loads(Path(source).read_text() if isinstance(source, (str, os.PathLike)) else source.read_text())
    layers = data["layers"] if isinstance(data, dict) else data
    if not isinstance(layers, list):
        raise ValueError("layers file: expected a list of layers under 'layers'")
    return layers


def select_layers(
    layers: Sequence[Dict[str, Any]],
    *,
    all_layers: bool = False,
    filters: Sequence[str] = (),
    quick: Sequence[str] = QUICK_LAYERS,
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], str]:
    """Choose the layers to run.

    Parameters
    ----------
    layers : sequence of dict
        Every layer of the file.
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
        Layers whose op is in :data:`OPS`, in file order.
    skipped : list of dict
        Layers that matched but whose op is not benchmarked yet.
    how : str
        A short description of the selection, for printing.
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
        if not matched:  # a different layers file: take its first few convs
            matched = [l for l in layers if l.get("op") in OPS][: len(quick)]
            how = "first conv layers (quick subset names not in this file); --all for every layer"
    selected = [l for l in matched if l.get("op") in OPS]
    skipped = [l for l in matched if l.get("op") not in OPS]
    return selected, skipped, how


# ---------------------------------------------------------------------------
# Ops: op name -> how to build inputs, the fastconv and torch calls, FLOPs
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OpSpec:
    """How to benchmark one ``op`` of the layers file.

    Attributes
    ----------
    make_inputs : callable(layer, rng) -> tuple of np.ndarray
        Seeded float32 inputs (C-contiguous).
    fastconv : callable(layer, arrays, algo) -> callable() -> np.ndarray
        A zero-argument closure running fastconv with algorithm ``algo``.
    torch : callable(layer, tensors) -> callable() -> torch.Tensor
        A zero-argument closure running the PyTorch equivalent.
    flops : callable(layer) -> int
        Floating-point operations of one call (multiply + add = 2).
    algorithms : callable() -> list of str
        The algorithm names to run for this op.
    """

    make_inputs: Callable[[Dict[str, Any], np.random.Generator], Tuple[np.ndarray, ...]]
    fastconv: Callable[[Dict[str, Any], Tuple[np.ndarray, ...], str], Callable[[], Any]]
    torch: Callable[[Dict[str, Any], Tuple[Any, ...]], Callable[[], Any]]
    flops: Callable[[Dict[str, Any]], int]
    algorithms: Callable[[], List[str]]


def conv_output_size(layer: Dict[str, Any]) -> List[int]:
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
    """
    return [
        (i + 2 * p - d * (k - 1) - 1) // s + 1
        for i, k, s, p, d in zip(layer["input"], layer["kernel"], layer["stride"], layer["padding"], layer["dilation"])
    ]


def conv_flops(layer: Dict[str, Any]) -> int:
    """FLOPs of one convolution call.

    Parameters
    ----------
    layer : dict
        A conv layer of the layers file.

    Returns
    -------
    int
        ``2 * N * K * prod(out) * (C / groups) * prod(kernel)``, the formula of
        the layers file's ``about``.
    """
    return (
        2
        * layer["N"]
        * layer["K"]
        * math.prod(conv_output_size(layer))
        * (layer["C"] // layer["groups"])
        * math.prod(layer["kernel"])
    )


def _conv_inputs(layer: Dict[str, Any], rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    x = rng.standard_normal((layer["N"], layer["C"], *layer["input"]), dtype=np.float32)
    w = rng.standard_normal((layer["K"], layer["C"] // layer["groups"], *layer["kernel"]), dtype=np.float32)
    return x, w


def _conv_args(layer: Dict[str, Any]) -> Dict[str, Any]:
    return dict(
        stride=tuple(layer["stride"]),
        padding=tuple(layer["padding"]),
        dilation=tuple(layer["dilation"]),
        groups=layer["groups"],
    )


def _conv_fastconv(layer: Dict[str, Any], arrays: Tuple[np.ndarray, ...], algo: str) -> Callable[[], Any]:
    from . import functional

    fn = getattr(functional, f"conv{len(layer['input'])}d")
    x, w = arrays
    kw = _conv_args(layer)
    return lambda: fn(x, w, None, algo=algo, **kw)


def _conv_torch(layer: Dict[str, Any], tensors: Tuple[Any, ...]) -> Callable[[], Any]:
    import torch.nn.functional as tF

    fn = getattr(tF, f"conv{len(layer['input'])}d")
    x, w = tensors
    kw = _conv_args(layer)
    return lambda: fn(x, w, None, **kw)


def _registered_algorithms() -> List[str]:
    import fastconv

    return list(fastconv.algorithms())


#: op of the layers file -> how to benchmark it.  conv_transpose, max_pool and
#: avg_pool layers are skipped (with a note) until they get an entry here.
OPS: Dict[str, OpSpec] = {
    "conv": OpSpec(
        make_inputs=_conv_inputs,
        fastconv=_conv_fastconv,
        torch=_conv_torch,
        flops=conv_flops,
        algorithms=_registered_algorithms,
    ),
}


# ---------------------------------------------------------------------------
# Peak
# ---------------------------------------------------------------------------
def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def peak_gflops(isa: str, threads: int, override: Optional[float] = None) -> Tuple[float, str]:
    """fp32 peak to report against.

    Parameters
    ----------
    isa : str
        The ISA fastconv reports active (``fastconv.info()['isa']``).
    threads : int
        Thread count of the run.
    override : float, optional
        ``--peak``: used as is.

    Returns
    -------
    gflops : float
        The peak in GFLOP/s.
    note : str
        How it was obtained, for the header.
    """
    if override is not None:
        return float(override), "--peak"
    table_isa, note = isa, ""
    if isa == "scalar":
        table_isa, note = SCALAR_PEAK_ISA, f"scalar ISA: reported against the {SCALAR_PEAK_ISA} peak"
    elif isa not in PEAK_GFLOPS:
        table_isa, note = DEFAULT_PEAK_ISA, f"no figure for {isa!r}: reported against the {DEFAULT_PEAK_ISA} peak"
    row = PEAK_GFLOPS[table_isa]
    if threads in row:
        return row[threads], note
    n = min(threads, _usable_cores())  # threads beyond the cores add no peak
    if n in row:
        extra = f"{threads} threads on {n} cores"
        return row[n], f"{note}; {extra}" if note else extra
    extra = f"{row[1]:g} x {n} cores"
    return row[1] * n, f"{note}; {extra}" if note else extra


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def measure(
    methods: Dict[str, Callable[[], Any]],
    *,
    rounds: Optional[int] = None,
    budget_s: float = DEFAULT_BUDGET_S,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
) -> Dict[str, List[float]]:
    """Time several methods in interleaved rounds.

    Every round calls each method once, timed with :func:`time.perf_counter`;
    the order rotates by one from round to round so that no method always runs
    right after the same neighbour.  The garbage collector is off meanwhile.
    Methods should already be warmed up.

    Parameters
    ----------
    methods : dict of str -> callable
        Zero-argument callables.
    rounds : int, optional
        Exactly this many rounds.  Default: adaptive.
    budget_s : float
        Adaptive mode: run rounds until about ``budget_s`` seconds per method
        have been spent (and at least ``min_rounds``, at most ``max_rounds``).
    min_rounds, max_rounds : int
        Bounds of the adaptive mode.

    Returns
    -------
    dict of str -> list of float
        Per method, the time of each round in milliseconds.
    """
    names = list(methods)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    if not names:
        return samples
    budget = budget_s * len(names)
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t_start = clock()
        r = 0
        while True:
            if rounds is not None:
                if r >= rounds:
                    break
            elif r >= max_rounds or (r >= min_rounds and clock() - t_start >= budget):
                break
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn = methods[name]
                t0 = clock()
                fn()
                samples[name].append((clock() - t0) * 1e3)
            r += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _rel_diff(a: Any, ref: Any) -> float:
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return math.inf
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(a - ref))) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


# ---------------------------------------------------------------------------
# Progress and output
# ---------------------------------------------------------------------------
class _Progress:
    """A progress bar on stderr: tqdm if importable, else rich, else a counter."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.kind = total, 0, "none"
        self._text = ""
        if not enabled:
            return
        try:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal.
            self._bar = tqdm(total=total, unit="layer", file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
            self.kind = "tqdm"
            return
        except ImportError:
            pass
        try:
            from rich.console import Console
            from rich.progress import Progress

            console = Console(file=sys.stderr)
            if console.is_terminal:
                self._bar = Progress(console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
                self._task = self._bar.add_task("", total=total)
                self._bar.start()
                self.kind = "rich"
            return
        except ImportError:
            pass
        if sys.stderr.isatty():
            self.kind = "counter"

    def _draw_counter(self) -> None:
        sys.stderr.write(f"\r\x1b[K[{self.done}/{self.total}] {self._text}")
        sys.stderr.flush()

    def describe(self, text: str) -> None:
        self._text = text
        if self.kind == "tqdm":
            self._bar.set_description_str(text)
        elif self.kind == "rich":
            self._bar.update(self._task, description=text)
        elif self.kind == "counter":
            self._draw_counter()

    def advance(self) -> None:
        self.done += 1
        if self.kind == "tqdm":
            self._bar.update(1)
        elif self.kind == "rich":
            self._bar.advance(self._task)
        elif self.kind == "counter":
            self._draw_counter()

    def write(self, line: str) -> None:
        if self.kind == "tqdm":
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)
        elif self.kind == "rich":
            self._bar.stop()
            print(line, flush=True)
            self._bar.start()
        elif self.kind == "counter":
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            print(line, flush=True)
            self._draw_counter()
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.kind == "tqdm":
            self._bar.close()
        elif self.kind == "rich":
            self._bar.stop()
        elif self.kind == "counter":
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        self.kind = "none"


def _fmt_ms(ms: Optional[float]) -> str:
    if ms is None:
        return ""
    if ms < 1:
        return f"{ms:.4f}"
    if ms < 100:
        return f"{ms:.3f}"
    return f"{ms:.1f}"


class _Table:
    COLS = ("layer", "thr", "algo", "ms", "GFLOP/s", "%peak", "torch ms", "ratio")

    def __init__(self, name_width: int, algo_width: int) -> None:
        self.w = (max(name_width, 5), 3, max(algo_width + 2, 4), 10, 8, 6, 10, 6)

    def _line(self, cells: Sequence[str]) -> str:
        parts = []
        for i, (c, w) in enumerate(zip(cells, self.w)):
            parts.append(c.ljust(w) if i in (0, 2) else c.rjust(w))
        return "  ".join(parts).rstrip()

    def header(self) -> List[str]:
        line = self._line(self.COLS)
        return [line, "-" * len(line)]

    def row(self, r: Dict[str, Any]) -> str:
        algo = r["algo"] + (" *" if r.get("best") else "")
        torch_ms = _fmt_ms(r.get("torch_ms"))
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ""
        if r["status"] != "ok":
            cells = [r["layer"], str(r["threads"]), algo, r["status"]]
            reason = (r.get("reason") or "").splitlines()[0][:80] if r.get("reason") else ""
            return self._line(cells) + f"  ({reason})"
        cells = [
            r["layer"],
            str(r["threads"]),
            algo,
            _fmt_ms(r["median_ms"]),
            f"{r['gflops']:.1f}",
            f"{r['pct_peak']:.1f}%",
            torch_ms,
            ratio,
        ]
        line = self._line(cells)
        if r.get("mismatch"):
            line += f"  MISMATCH vs torch (rel diff {r['max_rel_diff_vs_torch']:.1e})"
        return line


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _thread_list(text: str) -> List[int]:
    try:
        values = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of thread counts, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``bench`` options to an argument parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser (or subcommand parser) to extend.

    Returns
    -------
    argparse.ArgumentParser
        The same parser.
    """
    parser.add_argument("--all", action="store_true", help="run every layer (default: a quick subset)")
    parser.add_argument(
        "--filter", action="append", default=[], metavar="SUBSTR",
        help="run the layers whose name contains SUBSTR (repeatable; searches all layers)",
    )
    parser.add_argument(
        "--algo", action="append", default=[], metavar="NAME",
        help="run only this fastconv algorithm (repeatable or comma list; 'auto' allowed)",
    )
    parser.add_argument(
        "--threads", type=_thread_list, default=None, metavar="N[,N...]",
        help="thread counts to run, e.g. 1,2 (default: fastconv.get_num_threads())",
    )
    parser.add_argument(
        "--repeat", type=_positive_int, default=None, metavar="N",
        help=f"timed rounds per layer (default: adaptive, >= {MIN_ROUNDS}, ~--budget s per method)",
    )
    parser.add_argument(
        "--budget", type=_positive_float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
        help=f"adaptive timing: seconds per method per layer (default {DEFAULT_BUDGET_S})",
    )
    parser.add_argument("--json", metavar="PATH", help="write every result to PATH as JSON")
    parser.add_argument(
        "--layers", metavar="PATH",
        help=f"layers file (default: ${LAYERS_ENV}, else shared/shapes/layers.json above the "
        "current directory, else the packaged copy)",
    )
    parser.add_argument(
        "--peak", type=_positive_float, default=None, metavar="GFLOPS",
        help="fp32 peak in GFLOP/s for %%peak (default: DESIGN.md's figure for the active ISA and thread count)",
    )
    parser.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--list", action="store_true", help="list the selected layers and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_parser(prog: str = "fastconv bench") -> argparse.ArgumentParser:
    """Build the standalone ``bench`` argument parser.

    Parameters
    ----------
    prog : str
        Program name shown in usage.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time fastconv's convolution algorithms (and PyTorch) on the standard benchmark layers.",
    )
    return add_arguments(parser)


def _import_torch(disabled: bool) -> Tuple[Any, str]:
    if disabled:
        return None, "torch comparison off (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "torch not installed: no comparison"
    return torch, f"torch {torch.__version__}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _proc_stat() -> Optional[Tuple[int, int]]:
    """(total, idle) jiffies of all CPUs from /proc/stat; None where unavailable."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v[:8]), v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait


def _others_busy(before: Optional[Tuple[int, int]], own_cpu_s: float, wall_s: float) -> Optional[float]:
    """Cores' worth of CPU used by other processes since ``before``.

    ``own_cpu_s`` is this process's CPU time over the same ``wall_s`` seconds.
    """
    after = _proc_stat()
    if before is None or after is None or after[0] <= before[0] or wall_s <= 0:
        return None
    total, idle = after[0] - before[0], after[1] - before[1]
    ncpu = os.cpu_count() or 1
    busy_cores = ncpu * (total - idle) / total
    return max(0.0, busy_cores - own_cpu_s / wall_s)


def _cpu_busy(interval: float = 0.25) -> Optional[float]:
    """Cores' worth of CPU used by other processes over ``interval`` seconds.

    This process sleeps meanwhile (Linux only; None elsewhere).
    """
    before, t0, c0 = _proc_stat(), time.perf_counter(), _own_cpu()
    time.sleep(interval)
    return _others_busy(before, _own_cpu() - c0, time.perf_counter() - t0)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _layer_seed(seed: int, name: str) -> np.random.Generator:
    # Depends on the layer name, not its position: the same layer gets the
    # same inputs whatever the selection.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed ``bench`` arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser extended by :func:`add_arguments`.

    Returns
    -------
    int
        Exit code: 0 on success, 1 when a method failed unexpectedly or nothing
        was selected, 2 on bad arguments.
    """
    import fastconv

    try:
        source, where = find_layers_file(args.layers)
        all_layers = load_layers(source)
    except (OSError, ValueError, KeyError) as e:
        print(f"fastconv bench: {e}", file=sys.stderr)
        return 2
    layers, skipped, how = select_layers(all_layers, all_layers=args.all, filters=args.filter)

    if args.list:
        print(f"layers: {where} ({len(layers)} of {len(all_layers)} layers: {how})")
        for l in layers:
            print(f"  {l['name']:<32} {l['op']:<5} N={l['N']} C={l['C']} K={l['K']} input={l['input']} "
                  f"kernel={l['kernel']} stride={l['stride']} groups={l['groups']}  "
                  f"{OPS[l['op']].flops(l) / 1e6:.0f} MFLOP")
        for l in skipped:
            print(f"  {l['name']:<32} {l['op']} (not benchmarked yet)")
        return 0

    registered = list(fastconv.algorithms())
    algos: Optional[List[str]] = None
    if args.algo:
        algos = [a for spec in args.algo for a in spec.replace(" ", "").split(",") if a]
        unknown = [a for a in algos if a not in registered and a != "auto"]
        if unknown:
            print(f"fastconv bench: unknown algo {', '.join(map(repr, unknown))}; "
                  f"registered: {', '.join(registered)} (or 'auto')", file=sys.stderr)
            return 2

    torch, torch_line = _import_torch(args.no_torch)
    info = dict(fastconv.info())
    isa = info.get("isa", "?")
    fc_threads0 = fastconv.get_num_threads()
    torch_threads0 = torch.get_num_threads() if torch is not None else None
    thread_counts = args.threads or [fc_threads0]

    # ---- header ----
    isas = info.get("isas")
    print(f"fastconv {info.get('version', '?')} | isa {isa}"
          + (f" (available: {', '.join(isas)})" if isas else "")
          + f" | threads {fc_threads0}"
          + (f" | {info['compiler']}" if info.get("compiler") else "")
          + f" | {_cpu_model()}, {_usable_cores()} cores")
    print(torch_line + (f" (threads {torch_threads0})" if torch is not None else ""))
    busy = _cpu_busy()
    if busy is not None and busy > 0.25:
        print(f"WARNING: the machine is busy: other processes used {busy:.1f} of {os.cpu_count()} cores "
              "just before the run; timings will be noisy and thread scaling meaningless")
    print(f"layers: {where} ({len(layers)} of {len(all_layers)} layers: {how})")
    if skipped:
        ops = sorted({l["op"] for l in skipped})
        print(f"skipping {len(skipped)} layer(s) with op {', '.join(ops)} (not benchmarked yet)")
    peaks = {n: peak_gflops(isa, n, args.peak) for n in thread_counts}
    peak_text = ", ".join(f"{p:g} GFLOP/s at {n} thread{'s' if n > 1 else ''}" for n, (p, _) in peaks.items())
    notes: List[str] = []
    for _, note in peaks.values():
        notes += [part for part in note.split("; ") if part and part not in notes]
    peak_isa = SCALAR_PEAK_ISA if isa == "scalar" else isa if isa in PEAK_GFLOPS else DEFAULT_PEAK_ISA
    src = "--peak" if args.peak is not None else f"fp32 FMA peak of {peak_isa}, {PEAK_SOURCE}"
    print(f"peak: {peak_text} ({src}" + ("; " + "; ".join(notes) if notes and args.peak is None else "") + ")")
    print("timing: warm-up, then interleaved rounds, median"
          + (f" of {args.repeat}" if args.repeat else f" (>= {MIN_ROUNDS} rounds, ~{args.budget:g} s per method)")
          + "; * = fastest fastconv algorithm"
          + ("; ratio = torch ms / fastconv ms (> 1: fastconv faster)" if torch is not None else ""))
    if not layers:
        print("no layers selected", file=sys.stderr)
        return 1

    layer_algos = {id(l): (algos if algos is not None else OPS[l["op"]].algorithms()) for l in layers}
    table = _Table(max(len(l["name"]) for l in layers), max(len(a) for v in layer_algos.values() for a in v))
    for line in table.header():
        print(line)
    sys.stdout.flush()

    results: List[Dict[str, Any]] = []
    failed = False
    t_begin, cpu_begin, stat_begin = time.perf_counter(), _own_cpu(), _proc_stat()
    progress = _Progress(len(layers) * len(thread_counts), enabled=not args.no_progress)
    no_grad = torch.no_grad() if torch is not None else None
    try:
        for layer in layers:
            spec = OPS[layer["op"]]
            flops = spec.flops(layer)
            arrays = spec.make_inputs(layer, _layer_seed(args.seed, layer["name"]))
            tensors = tuple(torch.from_numpy(a) for a in arrays) if torch is not None else None
            params = {k: layer[k] for k in ("N", "C", "K", "input", "kernel", "stride", "padding", "dilation", "groups") if k in layer}
            if layer["op"] == "conv":
                params["output"] = conv_output_size(layer)
            for n in thread_counts:
                progress.describe(f"{layer['name']} x{n}")
                fastconv.set_num_threads(n)
                if torch is not None:
                    torch.set_num_threads(n)
                peak, _ = peaks[n]
                rows: List[Dict[str, Any]] = []
                methods: Dict[str, Callable[[], Any]] = {}
                outputs: Dict[str, Any] = {}
                for algo in layer_algos[id(layer)]:
                    row = {"layer": layer["name"], "net": layer.get("net"), "op": layer["op"], "params": params,
                           "flops": flops, "threads": n, "algo": algo, "status": "ok", "reason": None,
                           "samples_ms": None, "median_ms": None, "min_ms": None, "rounds": 0, "gflops": None,
                           "peak_gflops": peak, "pct_peak": None, "max_rel_diff_vs_torch": None, "mismatch": False}
                    call = spec.fastconv(layer, arrays, algo)
                    try:
                        outputs[algo] = call()  # warm-up
                        methods[algo] = call
                    except ValueError as e:  # "does not support": not applicable, not a failure
                        row.update(status="n/a", reason=str(e))
                    except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
                        row.update(status="error", reason=f"{type(e).__name__}: {e}")
                        failed = True
                    rows.append(row)
                torch_status, torch_reason = (None, None)
                if torch is not None:
                    tcall = spec.torch(layer, tensors)
                    try:
                        with no_grad:
                            outputs["torch"] = tcall().numpy()
                        methods["torch"] = tcall
                        torch_status = "ok"
                    except Exception as e:  # noqa: BLE001
                        torch_status, torch_reason = "error", f"{type(e).__name__}: {e}"
                if no_grad is not None:
                    with no_grad:
                        samples = measure(methods, rounds=args.repeat, budget_s=args.budget)
                else:
                    samples = measure(methods, rounds=args.repeat, budget_s=args.budget)
                rounds = len(next(iter(samples.values()))) if samples else 0
                torch_ms = statistics.median(samples["torch"]) if "torch" in samples else None
                ok = [r for r in rows if r["status"] == "ok"]
                for r in ok:
                    s = samples[r["algo"]]
                    med = statistics.median(s)
                    gflops = flops / (med * 1e-3) / 1e9
                    r.update(samples_ms=s, median_ms=med, min_ms=min(s), rounds=rounds, gflops=gflops,
                             peak_gflops=peak, pct_peak=100.0 * gflops / peak)
                    if torch_ms is not None:
                        diff = _rel_diff(outputs[r["algo"]], outputs["torch"])
                        r.update(max_rel_diff_vs_torch=diff, mismatch=not diff <= MISMATCH_TOL)
                if ok:
                    min(ok, key=lambda r: r["median_ms"])["best"] = True
                for r in rows:
                    r.setdefault("best", False)
                    r.update(torch_status=torch_status, torch_reason=torch_reason, torch_ms=torch_ms,
                             torch_samples_ms=samples.get("torch"),
                             torch_gflops=(flops / (torch_ms * 1e-3) / 1e9) if torch_ms else None,
                             ratio=(torch_ms / r["median_ms"]) if torch_ms and r.get("median_ms") else None)
                    progress.write(table.row(r))
                if torch_status == "error":
                    progress.write(f"  torch failed on {layer['name']}: {torch_reason}")
                results.extend(rows)
                progress.advance()
                del outputs
    except KeyboardInterrupt:
        progress.close()
        print("interrupted", file=sys.stderr)
        failed = True
    finally:
        progress.close()
        fastconv.set_num_threads(fc_threads0)
        if torch is not None:
            torch.set_num_threads(torch_threads0)
    elapsed = time.perf_counter() - t_begin
    busy_during = _others_busy(stat_begin, _own_cpu() - cpu_begin, elapsed)

    # ---- summary ----
    for n in thread_counts:
        best = [r for r in results if r["threads"] == n and r.get("best") and r.get("ratio")]
        if best:
            gm = math.exp(sum(math.log(r["ratio"]) for r in best) / len(best))
            print(f"threads {n}: geometric mean of torch ms / best fastconv ms over {len(best)} layer(s): {gm:.2f}")
    mism = [r for r in results if r.get("mismatch")]
    if mism:
        print(f"WARNING: {len(mism)} result(s) differ from torch by more than {MISMATCH_TOL:g} (relative)")
    if busy_during is not None and busy_during > 0.25:
        print(f"WARNING: other processes used {busy_during:.1f} of {os.cpu_count()} cores during the run; "
              "timings are noisy (2-thread figures especially)")
    print(f"done in {elapsed:.1f} s")

    if args.json:
        doc = {
            "machine": {
                "fastconv": info,
                "torch": getattr(torch, "__version__", None),
                "cpu": _cpu_model(),
                "usable_cores": _usable_cores(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "platform": platform.platform(),
                "busy_cores_before_run": busy,
                "busy_cores_during_run": busy_during,
                "peak_gflops": {str(n): p for n, (p, _) in peaks.items()},
                "peak_source": "--peak" if args.peak is not None else PEAK_SOURCE,
            },
            "layers_file": where,
            "selection": how,
            "settings": {
                "threads": thread_counts,
                "repeat": args.repeat,
                "budget_s": args.budget,
                "seed": args.seed,
                "algorithms": algos or registered,
            },
            "elapsed_s": elapsed,
            "results": results,
        }
        try:
            Path(args.json).write_text(json.dumps(_json_safe(doc), indent=1) + "\n")
        except OSError as e:
            print(f"fastconv bench: cannot write {args.json}: {e}", file=sys.stderr)
            return 1
        print(f"results written to {args.json}")
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``fastconv bench`` used standalone (bench/conv_bench.py).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code.
    """
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
