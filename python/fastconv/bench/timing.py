"""Timing on a shared, noisy machine: interleaved rounds, and how busy the CPUs are.

DESIGN.md ("The machine"): compare ratios measured in the same run, interleaved,
median of several.  :func:`measure` runs the rounds; the caller takes medians.
:func:`cpu_busy` and :func:`others_busy` read ``/proc/stat`` (Linux; ``None``
elsewhere) to warn when other processes compete for the cores: on the 2-core machine a
second process makes 2-thread OpenMP timings jump to multiples of the scheduler slice.
"""

from __future__ import annotations

import gc
import os
import random
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = [
    "DEFAULT_BUDGET_S",
    "MAX_ROUNDS",
    "MIN_ROUNDS",
    "cpu_busy",
    "measure",
    "others_busy",
    "own_cpu",
    "proc_stat",
]

DEFAULT_BUDGET_S = 0.3  # adaptive timing: seconds per method per layer
MIN_ROUNDS = 5
MAX_ROUNDS = 1000


def measure(
    methods: Dict[str, Callable[[], Any]],
    *,
    rounds: Optional[int] = None,
    budget_s: float = DEFAULT_BUDGET_S,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    prime: bool = False,
) -> Dict[str, List[float]]:
    """Time several methods in interleaved rounds.

    Every round calls each method once, timed with :func:`time.perf_counter`,
    in an order shuffled afresh each round (seeded: the same sequence every
    run), so that no method always runs right after the same neighbour: one
    that always followed a method reading the same operands would find them in
    the caches, and one that always followed a peer would not.  (A rotation of
    one fixed order keeps each method's predecessor: it measured Winograd
    F(4,3) 37 % faster right after F(2,3) than the same algorithm resolved by
    `auto` after the plan.)  With ``prime``, each timed call comes right after
    an untimed call of the same method: every method is then timed in its own
    steady state (its threads awake, its operands and buffers in the caches)
    rather than in the state the method before it left (another library's
    idle OpenMP workers may still spin on the cores).  The garbage collector is
    off meanwhile.  Methods should already be warmed up.

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
    prime : bool
        Precede each timed call by an untimed call of the same method (its
        time counts against the budget).

    Returns
    -------
    dict of str -> list of float
        Per method, the time of each round in milliseconds.

    Examples
    --------
    >>> samples = measure({"a": lambda: None, "b": lambda: None}, rounds=3)
    >>> [len(s) for s in samples.values()]
    [3, 3]
    >>> calls = []
    >>> samples = measure({"a": lambda: calls.append("a")}, rounds=3, prime=True)
    >>> len(samples["a"]), len(calls)  # each timed call after an untimed one
    (3, 6)
    """
    names = list(methods)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    if not names:
        return samples
    if rounds is not None:
        min_rounds = max_rounds = rounds
    budget = budget_s * len(names)
    clock = time.perf_counter
    order = random.Random(len(names))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t_start = clock()
        r = 0
        while r < max_rounds and (r < min_rounds or clock() - t_start < budget):
            order.shuffle(names)
            for name in names:
                fn = methods[name]
                if prime:
                    fn()
                t0 = clock()
                fn()
                samples[name].append((clock() - t0) * 1e3)
            r += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def proc_stat() -> Optional[Tuple[int, int]]:
    """Total and idle jiffies of all CPUs so far.

    Returns
    -------
    (int, int) or None
        ``(total, idle + iowait)`` from the first line of ``/proc/stat``;
        None where it cannot be read.
    """
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v[:8]), v[3] + (v[4] if len(v) > 4 else 0)


def own_cpu() -> float:
    """CPU seconds (user + system) used by this process so far.

    Returns
    -------
    float
    """
    t = os.times()
    return t.user + t.system


def others_busy(before: Optional[Tuple[int, int]], own_cpu_s: float, wall_s: float) -> Optional[float]:
    """Cores' worth of CPU used by other processes since ``before``.

    Parameters
    ----------
    before : (int, int) or None
        :func:`proc_stat` at the start of the interval.
    own_cpu_s : float
        This process's CPU seconds over the same interval.
    wall_s : float
        Length of the interval in seconds.

    Returns
    -------
    float or None
        Busy cores minus this process's share; None where unknown.
    """
    after = proc_stat()
    if before is None or after is None or after[0] <= before[0] or wall_s <= 0:
        return None
    total, idle = after[0] - before[0], after[1] - before[1]
    busy_cores = (os.cpu_count() or 1) * (total - idle) / total
    return max(0.0, busy_cores - own_cpu_s / wall_s)


def cpu_busy(interval: float = 0.25) -> Optional[float]:
    """Cores' worth of CPU used by other processes over the next ``interval`` seconds.

    Parameters
    ----------
    interval : float
        Seconds to sample for; this process sleeps meanwhile.

    Returns
    -------
    float or None
        As :func:`others_busy`.
    """
    before, t0, c0 = proc_stat(), time.perf_counter(), own_cpu()
    time.sleep(interval)
    return others_busy(before, own_cpu() - c0, time.perf_counter() - t0)
