"""Throughput of fastconv calls from several Python threads (the GIL released during compute).

Each Python thread makes the same sequence of calls (convolutions by each algorithm, their
gradients, a plan, pooling, a normalisation, softmax, linear) on its own inputs; throughput is
calls per second of all threads together. With one OpenMP thread per call, C Python threads
should give close to C times the throughput of one, up to the cores: the ratio is the share of
each call spent without the GIL. Configurations are interleaved within each repeat and the
median over repeats is reported (the machine is shared and noisy).

    python bench/concurrency.py                      # 1 vs 2 Python threads, 1 OpenMP thread each
    python bench/concurrency.py --callers 1,2,4,16 --omp 1,2 --repeats 7

The figure of the issue (point 6) is the "ratio" column of callers=2 at omp=1: >= 1.7 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import numpy as np

try:
    import fastconv
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
    import fastconv
from fastconv import functional as F
from fastconv import grad as G


def workload(seed: int):
    """A list of calls of a few ms each (at one thread) on inputs of their own."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)

    x, w = arr(2, 64, 28, 28), arr(64, 64, 3, 3)
    dy = F.conv2d(x, w, padding=1)
    xp = arr(4, 64, 56, 56)
    xs = arr(256, 1000)
    xl, wl = arr(256, 512), arr(512, 512)
    plan = fastconv.plan(w, padding=1, activation="relu")
    plan.prepare(x.shape)
    calls = [lambda a=a: F.conv2d(x, w, padding=1, algo=a)
             for a in ("direct", "gemm", "winograd", "fft")]
    calls += [
        lambda: G.conv2d_input(x.shape, w, dy, padding=1),
        lambda: G.conv2d_weight(x, w.shape, dy, padding=1),
        lambda: plan(x),
        lambda: F.max_pool2d(xp, 3, 2, 1),
        lambda: F.batch_norm(xp, None, None, training=True),
        lambda: F.softmax(xs, dim=1),
        lambda: F.linear(xl, wl),
    ]
    return calls


def run(callers: int, per_thread: list, rounds: int) -> tuple[float, float]:
    """Calls per second of `callers` Python threads each running its workload `rounds` times,
    and the cores the process used meanwhile (CPU seconds per second)."""
    start = threading.Barrier(callers + 1)
    errors = []

    def work(calls):
        try:
            start.wait()
            for _ in range(rounds):
                for c in calls:
                    c()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(per_thread[i],)) for i in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if errors:
        raise errors[0]
    return callers * rounds * len(per_thread[0]) / elapsed, cpu / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--callers", default="1,2", help="Python thread counts (default 1,2)")
    ap.add_argument("--omp", default="1", help="fastconv.set_num_threads values (default 1)")
    ap.add_argument("--repeats", type=int, default=7, help="repeats; the median is reported")
    ap.add_argument("--rounds", type=int, default=8, help="workload rounds per thread per run")
    args = ap.parse_args(argv)
    callers = [int(c) for c in args.callers.split(",")]
    omps = [int(n) for n in args.omp.split(",")]

    per_thread = [workload(seed) for seed in range(max(callers))]
    default_threads = fastconv.get_num_threads()
    for calls in per_thread:  # warm up: buffer caches, OpenMP teams, page faults
        for c in calls:
            c()
    samples = {(n, c): [] for n in omps for c in callers}
    for _ in range(args.repeats):
        for n in omps:  # interleaved: every configuration once per repeat
            fastconv.set_num_threads(n)
            for c in callers:
                samples[(n, c)].append(run(c, per_thread, args.rounds))
    fastconv.set_num_threads(default_threads)

    info = fastconv.info()
    print(f"fastconv {info['version']}, isa {info['isa']}, {os.cpu_count()} CPUs "
          f"(affinity {len(os.sched_getaffinity(0))}), {len(per_thread[0])} calls per round, "
          f"{args.rounds} rounds per thread, median of {args.repeats}")
    print(f"{'omp':>4} {'callers':>8} {'calls/s':>10} {'min':>10} {'max':>10} {'ratio':>7} "
          f"{'cores used':>11}")
    for n in omps:
        base = statistics.median(r for r, _ in samples[(n, callers[0])])
        for c in callers:
            rates = [r for r, _ in samples[(n, c)]]
            med = statistics.median(rates)
            cores = statistics.median(u for _, u in samples[(n, c)])
            print(f"{n:>4} {c:>8} {med:>10.1f} {min(rates):>10.1f} {max(rates):>10.1f} "
                  f"{med / base:>7.2f} {cores:>11.2f}")
    print(f"ratio: throughput / throughput of {callers[0]} caller(s), same omp. cores used: CPU "
          "seconds per second of the process; when 2 callers at omp 1 use well under 2 cores "
          "while the GIL is released, other processes hold the CPUs (Linux autogroup shares "
          "them per session, not per thread) and the ratio measures the machine, not fastconv.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
