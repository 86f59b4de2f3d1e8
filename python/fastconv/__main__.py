"""Command line of fastconv: ``fastconv SUBCOMMAND ...`` or ``python -m fastconv SUBCOMMAND ...``.

Subcommands
-----------
bench
    Time every registered convolution algorithm (and PyTorch, when
    installed) on the standard benchmark layers; see :mod:`fastconv.bench`.
demo digits
    Train LeNet-5 on scikit-learn's handwritten digits; see :mod:`fastconv.demo`.

Each subcommand lives in its own module, imported only when it is chosen, so
that ``fastconv --help`` stays fast.  To add one, add an entry to
``_SUBCOMMANDS``: name -> (module, one-line help); the module provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

__all__ = ["main"]

# name -> (module relative to the fastconv package, help line)
_SUBCOMMANDS = {
    "bench": (".bench", "benchmark convolution, its gradients and pooling against peers on the standard layers"),
    "demo": (".demo", "train LeNet-5 on scikit-learn's handwritten digits and classify with it"),
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("fastconv")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the fastconv command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success; 2 on a usage error or a missing subcommand;
        otherwise what the subcommand returns.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line tools.")
    parser.add_argument("--version", action="version", version=f"fastconv {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Build only the chosen subcommand's options (importing its module); the
    # others are listed by name and help line.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_line) in _SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name == chosen:
            importlib.import_module(module, __package__ or "fastconv").add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    module = importlib.import_module(_SUBCOMMANDS[args.command][0], __package__ or "fastconv")
    try:
        return int(module.run(args) or 0)
    except BrokenPipeError:  # e.g. `fastconv bench --list | head`
        try:
            sys.stdout = open(os.devnull, "w")  # keep the interpreter's final flush quiet
        except OSError:
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
