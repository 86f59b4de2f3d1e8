"""Command-line options of ``fastconv bench`` (argparse).

:func:`add_arguments` extends a parser, as ``fastconv``'s subcommand table expects;
:func:`build_parser` makes the standalone parser of bench/conv_bench.py.
"""

from __future__ import annotations

import argparse
from typing import List

from .layers import LAYERS_ENV
from .ops import OPS
from .peers import peer_names
from .timing import DEFAULT_BUDGET_S, MIN_ROUNDS

__all__ = ["add_arguments", "build_parser"]


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

    Examples
    --------
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["--threads", "1,2"])
    >>> args.threads, args.budget
    ([1, 2], 0.3)
    """
    parser.add_argument("--all", action="store_true", help="run every layer (default: a quick subset)")
    parser.add_argument("--models", action="store_true",
                        help="benchmark whole networks instead of layers: ResNet-18/50 inference at "
                        "batch 1 and 8 and a ResNet-18 training step, against torch and ONNX Runtime")
    parser.add_argument(
        "--filter", action="append", default=[], metavar="SUBSTR",
        help="run the layers whose name contains SUBSTR (repeatable; searches all layers)",
    )
    parser.add_argument(
        "--op", action="append", default=[], metavar="NAME",
        help="run only these ops (repeatable or comma list): " + ", ".join(OPS)
        + " (default: all of them, each on the layers of its kind)",
    )
    parser.add_argument(
        "--algo", action="append", default=[], metavar="NAME",
        help="run only this fastconv algorithm (repeatable or comma list; 'auto' allowed); "
        "each op runs those of them its direction implements",
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
    parser.add_argument(
        "--prime", action="store_true",
        help="precede each timed call by an untimed call of the same method (every method in its "
        "own steady state; default: right after whichever method the round ran before it)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every result to PATH as JSON")
    parser.add_argument("--markdown", metavar="PATH",
                        help="write the run as a Markdown report (machine, versions, command, tables), "
                        "e.g. bench/RESULTS.md")
    parser.add_argument("--plot", metavar="PATH",
                        help="plot the conv layers' GFLOP/s against the FMA peak to PATH (PNG; needs matplotlib)")
    parser.add_argument(
        "--layers", metavar="PATH",
        help=f"layers file (default: ${LAYERS_ENV}, else shared/shapes/layers.json above the "
        "current directory, else the packaged copy)",
    )
    parser.add_argument(
        "--peak", type=_positive_float, default=None, metavar="GFLOPS",
        help="fp32 peak in GFLOP/s for %%peak (default: measured by an FMA probe of the active ISA)",
    )
    parser.add_argument(
        "--peak-bw", type=_positive_float, default=None, metavar="GB/S",
        help="memory bandwidth in GB/s for %%bw of the memory-bound ops (default: DESIGN.md's figure "
        "for the thread count)",
    )
    parser.add_argument(
        "--peer", action="append", default=[], metavar="NAME",
        help="compare only with these peers (repeatable or comma list): "
        + ", ".join(peer_names([p for spec in OPS.values() for p in spec.peers]))
        + " (default: every peer of each op whose library is installed)",
    )
    parser.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch (torch, torch_cl)")
    parser.add_argument("--no-ort", action="store_true", help="do not compare with ONNX Runtime (ort)")
    parser.add_argument("--no-scipy", action="store_true",
                        help="do not compare with scipy.signal (scipy_fft, scipy_oa, scipy_direct)")
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
        description="Time fastconv's convolution algorithms and pooling (against PyTorch and ONNX Runtime) "
        "on the standard benchmark layers: forward, backward-data, backward-weights and transposed "
        "convolution, max and average pooling.",
    )
    return add_arguments(parser)
