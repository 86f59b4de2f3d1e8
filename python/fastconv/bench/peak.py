"""fp32 peak and memory bandwidth of the development machine: the denominators of
``%peak`` (compute-bound ops) and ``%bw`` (memory-bound ops: pooling).

THE ONE PLACE FOR THESE NUMBERS.  Source: shared/DESIGN.md, section "The machine"
(2 cores, x86-64 AVX-512): "Measured fp32 FMA peak here: ≈239 GFLOP/s on 1 core,
≈470 on 2 (AVX-512); ≈128 / 258 with AVX2.  Memory bandwidth ≈14 GB/s (1 core),
≈30 GB/s (2)."  The bandwidth (:data:`PEAK_GBPS`) does not depend on the ISA; thread
counts not in its table follow the same rule as the FLOP peak below.

Key: the ISA fastconv reports active (``fastconv.info()['isa']``, which
``FASTCONV_ISA`` / ``fastconv.set_isa`` can cap) -> {threads: GFLOP/s}.  ``%peak`` is
therefore "fraction of what the active ISA can do on this machine".

* ``scalar`` has no measured figure.  The portable kernels are compiled for baseline
  x86-64 (SSE2 at most, no FMA), so any figure is an upper bound; scalar runs are
  reported against the AVX2 figure (:data:`SCALAR_PEAK_ISA`), the ceiling of the
  nearest measured ISA, and the header says so.
* An ISA missing from the table (a future one) uses the AVX-512 figure.
* Thread counts not in the table: threads beyond the usable cores add no peak
  (3 threads on 2 cores -> the 2-thread figure); otherwise the 1-thread figure times
  min(threads, usable cores).
* These are this machine's numbers; on other hardware pass ``--peak GFLOPS`` (the
  fp32 peak for the thread count being run), which overrides all this.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["PEAK_GBPS", "PEAK_GFLOPS", "PEAK_SOURCE", "bandwidth_line", "peak_gbps", "peak_gflops", "peak_line",
           "usable_cores"]

PEAK_GFLOPS: Dict[str, Dict[int, float]] = {
    "avx512": {1: 239.0, 2: 470.0},
    "avx2": {1: 128.0, 2: 258.0},
}
#: Memory bandwidth, GB/s per thread count (DESIGN.md "The machine"): the limit of the
#: memory-bound ops.
PEAK_GBPS: Dict[int, float] = {1: 14.0, 2: 30.0}
SCALAR_PEAK_ISA = "avx2"  # scalar runs are reported against this ISA's figure
DEFAULT_PEAK_ISA = "avx512"  # ISAs not in PEAK_GFLOPS
PEAK_SOURCE = 'shared/DESIGN.md "The machine"'


def usable_cores() -> int:
    """Number of CPUs this process may run on.

    Returns
    -------
    int
        The size of the affinity mask where available, else ``os.cpu_count()``.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _table_isa(isa: str) -> Tuple[str, str]:
    """The row of :data:`PEAK_GFLOPS` used for ``isa``, and a note when it is another ISA's."""
    if isa == "scalar":
        return SCALAR_PEAK_ISA, f"scalar ISA: reported against the {SCALAR_PEAK_ISA} peak"
    if isa not in PEAK_GFLOPS:
        return DEFAULT_PEAK_ISA, f"no figure for {isa!r}: reported against the {DEFAULT_PEAK_ISA} peak"
    return isa, ""


def _by_threads(row: Dict[int, float], threads: int, unit: str) -> Tuple[float, str]:
    """``row[threads]``, or the rule for thread counts not in the table (module docstring)."""
    if threads in row:
        return row[threads], ""
    n = min(threads, usable_cores())  # threads beyond the cores add no peak
    if n in row:
        return row[n], f"{threads} threads on {n} cores"
    return row[1] * n, f"{row[1]:g} {unit} x {n} cores"


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
        How it was obtained ("; "-separated parts), or "" for a plain table entry.

    Examples
    --------
    >>> peak_gflops("avx512", 2)
    (470.0, '')
    >>> peak_gflops("scalar", 1)
    (128.0, 'scalar ISA: reported against the avx2 peak')
    """
    if override is not None:
        return float(override), "--peak"
    table_isa, note = _table_isa(isa)
    gflops, extra = _by_threads(PEAK_GFLOPS[table_isa], threads, "GFLOP/s")
    return gflops, "; ".join(p for p in (note, extra) if p)


def peak_line(isa: str, thread_counts: Sequence[int], override: Optional[float] = None) -> Tuple[Dict[int, float], str]:
    """Peaks of every thread count, and the header line that states them.

    Parameters
    ----------
    isa : str
        The active ISA.
    thread_counts : sequence of int
        Thread counts of the run.
    override : float, optional
        ``--peak``.

    Returns
    -------
    peaks : dict of int -> float
        GFLOP/s per thread count.
    line : str
        ``peak: ... (source; notes)``.

    Examples
    --------
    >>> peak_line("avx512", [1, 2])[1]
    'peak: 239 GFLOP/s at 1 thread, 470 GFLOP/s at 2 threads (fp32 FMA peak of avx512, shared/DESIGN.md "The machine")'
    """
    peaks: Dict[int, float] = {}
    notes: List[str] = []
    for n in thread_counts:
        peaks[n], note = peak_gflops(isa, n, override)
        notes += [part for part in note.split("; ") if part and part not in notes]
    text = ", ".join(f"{p:g} GFLOP/s at {n} thread{'s' if n > 1 else ''}" for n, p in peaks.items())
    if override is not None:
        return peaks, f"peak: {text} (--peak)"
    source = f"fp32 FMA peak of {_table_isa(isa)[0]}, {PEAK_SOURCE}"
    return peaks, f"peak: {text} ({'; '.join([source, *notes])})"


def peak_gbps(threads: int, override: Optional[float] = None) -> Tuple[float, str]:
    """Memory bandwidth to report memory-bound ops against.

    Parameters
    ----------
    threads : int
        Thread count of the run.
    override : float, optional
        ``--peak-bw``: used as is.

    Returns
    -------
    gbps : float
        The bandwidth in GB/s (:data:`PEAK_GBPS`).
    note : str
        How it was obtained, or "" for a plain table entry.

    Examples
    --------
    >>> peak_gbps(1), peak_gbps(2), peak_gbps(2, 20)
    ((14.0, ''), (30.0, ''), (20.0, '--peak-bw'))
    """
    if override is not None:
        return float(override), "--peak-bw"
    return _by_threads(PEAK_GBPS, threads, "GB/s")


def bandwidth_line(thread_counts: Sequence[int], override: Optional[float] = None) -> Tuple[Dict[int, float], str]:
    """Bandwidths of every thread count, and the header line that states them.

    Parameters
    ----------
    thread_counts : sequence of int
        Thread counts of the run.
    override : float, optional
        ``--peak-bw``.

    Returns
    -------
    peaks : dict of int -> float
        GB/s per thread count.
    line : str
        ``bandwidth: ... (source; notes)``.

    Examples
    --------
    >>> bandwidth_line([1, 2])[1]
    'bandwidth: 14 GB/s at 1 thread, 30 GB/s at 2 threads (memory bandwidth, shared/DESIGN.md "The machine")'
    """
    peaks: Dict[int, float] = {}
    notes: List[str] = []
    for n in thread_counts:
        peaks[n], note = peak_gbps(n, override)
        notes += [part for part in note.split("; ") if part and part not in notes]
    text = ", ".join(f"{p:g} GB/s at {n} thread{'s' if n > 1 else ''}" for n, p in peaks.items())
    if override is not None:
        return peaks, f"bandwidth: {text} (--peak-bw)"
    return peaks, f"bandwidth: {text} ({'; '.join(['memory bandwidth, ' + PEAK_SOURCE, *notes])})"
