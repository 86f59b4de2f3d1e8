"""fp32 peak and memory bandwidth: the denominators of ``%peak`` (compute-bound ops) and
``%bw`` (memory-bound ops: pooling).

The fp32 peak is MEASURED at the start of a run, per thread count, with the active ISA's
vectors: ``fastconv._core.measure_fma_peak(threads)`` runs 16 independent FMA chains per thread
(kernels/generic/peak_ukernel.hpp) for about 0.2 s. That is what this machine's cores execute
with the kernels fastconv would run, so ``%peak`` means "share of the FMA throughput the active
ISA reaches here". (shared/DESIGN.md, "The machine", states ≈239 GFLOP/s on 1 core and ≈470 on
2 with AVX-512, ≈128 / 258 with AVX2; measured on the development machine the probe gives
≈117 / 230 with AVX-512 and ≈67 / 134 with AVX2 — half the stated figures — so the
benchmark trusts the measurement.) ``--peak GFLOPS`` overrides it.

The memory bandwidth (:data:`PEAK_GBPS`) is DESIGN.md's: ≈14 GB/s (1 core), ≈30 GB/s (2);
thread counts not in the table follow the rule of :func:`peak_gbps`.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["BANDWIDTH_SOURCE", "PEAK_GBPS", "PEAK_SOURCE", "bandwidth_line", "peak_gbps", "peak_gflops", "peak_line",
           "usable_cores"]

#: Memory bandwidth, GB/s per thread count (DESIGN.md "The machine"): the limit of the
#: memory-bound ops.
PEAK_GBPS: Dict[int, float] = {1: 14.0, 2: 30.0}
PEAK_SOURCE = "measured: FMA probe of the active ISA"
BANDWIDTH_SOURCE = 'shared/DESIGN.md "The machine"'
_measured: Dict[Tuple[str, int], float] = {}


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


def _by_threads(row: Dict[int, float], threads: int, unit: str) -> Tuple[float, str]:
    """``row[threads]``, or the rule for thread counts not in the table (module docstring)."""
    if threads in row:
        return row[threads], ""
    n = min(threads, usable_cores())  # threads beyond the cores add no peak
    if n in row:
        return row[n], f"{threads} threads on {n} cores"
    return row[1] * n, f"{row[1]:g} {unit} x {n} cores"


def peak_gflops(isa: str, threads: int, override: Optional[float] = None) -> Tuple[float, str]:
    """fp32 peak to report against: measured once per (ISA, thread count) and cached.

    Parameters
    ----------
    isa : str
        The ISA fastconv reports active (``fastconv.info()['isa']``); the probe runs its
        vectors.
    threads : int
        Thread count of the run (threads beyond the usable cores add no peak).
    override : float, optional
        ``--peak``: used as is.

    Returns
    -------
    gflops : float
        The peak in GFLOP/s.
    note : str
        How it was obtained, or "" for a plain measurement.

    Examples
    --------
    >>> import fastconv
    >>> peak_gflops(fastconv.get_isa(), 1)[0] > 0
    True
    """
    if override is not None:
        return float(override), "--peak"
    from fastconv import _core

    n = min(threads, usable_cores())
    key = (isa, n)
    if key not in _measured:
        _measured[key] = _core.measure_fma_peak(n)
    return _measured[key], (f"{threads} threads on {n} cores" if n != threads else "")


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
    >>> import fastconv
    >>> peak_line(fastconv.get_isa(), [1])[1].startswith("peak: ")
    True
    """
    peaks: Dict[int, float] = {}
    notes: List[str] = []
    for n in thread_counts:
        peaks[n], note = peak_gflops(isa, n, override)
        notes += [part for part in note.split("; ") if part and part not in notes]
    text = ", ".join(f"{p:.0f} GFLOP/s at {n} thread{'s' if n > 1 else ''}" for n, p in peaks.items())
    if override is not None:
        return peaks, f"peak: {text} (--peak)"
    source = f"fp32 FMA peak of {isa}, {PEAK_SOURCE}"
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
    return peaks, f"bandwidth: {text} ({'; '.join(['memory bandwidth, ' + BANDWIDTH_SOURCE, *notes])})"
