"""Concurrency (reliability issue, point 6): calls from many Python threads at once.

- 16 Python threads x 200 calls of a mixed op set (conv1d/2d/3d by every registered algorithm
  that applies, their gradients, transposed convolution, pooling, normalisations, activations,
  softmax, linear, fastconv.signal, plans) on shared inputs give the bytes of a serial run, at
  the default thread count and at one thread; repeated runs too.
- The GIL is released during compute: a Python thread keeps running while another one is inside
  a long call of each kind (the throughput this buys is measured by bench/concurrency.py, not
  here: timings do not belong in unit tests on a shared machine).
- An exception inside a parallel region (an allocation failing in one, under an address-space
  limit) reaches Python as MemoryError instead of aborting the process.
- Many calling threads do not multiply OpenMP threads: callers computing at once share the
  thread count (fastconv::ThreadShare, tested in cpp/tests/test_api.cpp: a call gets
  max(1, n / callers) threads), so P callers inside long calls run about max(P, n) compute
  threads, not P x n. libgomp keeps an idle team per calling thread that once ran one, so the
  process holds at most baseline + P * n threads, and the workers go away with the callers.

``mixed_ops`` is shared with tests/test_fork.py.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as G
from fastconv import signal as S

SEED = 20240611
N_THREADS = 16
N_CALLS = 200


def mixed_ops(seed=SEED):
    """[(name, fn)]: fn() computes one op on inputs fixed here and shared by every caller.

    Sizes keep each call around a millisecond, so 16 x 200 calls take seconds on 2 cores.
    Convolutions run every algorithm of the registry for their direction; an algorithm that
    declines a problem (ValueError) is left out, except that conv2d's 3x3 case must take all.
    """
    rng = np.random.default_rng(seed)

    def arr(*shape, dtype=np.float32):
        return rng.uniform(-1, 1, shape).astype(dtype)

    ops = []
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    sizes = {1: (2, 16, 64), 2: (2, 16, 20, 18), 3: (1, 8, 8, 9, 10)}
    for rank, xshape in sizes.items():
        x = arr(*xshape)
        c = xshape[1]
        w = arr(c, c // 2, *(3,) * rank)  # groups=2
        b = arr(c)
        kw = dict(padding=1, groups=2)
        dy = conv[rank](x, w, b, **kw)
        for algo in fastconv.algorithms("forward"):
            ops.append((f"conv{rank}d[{algo}]",
                        lambda f=conv[rank], x=x, w=w, b=b, a=algo: f(x, w, b, algo=a, **kw)))
        for algo in fastconv.algorithms("backward_data"):
            ops.append((f"conv{rank}d_input[{algo}]",
                        lambda f=getattr(G, f"conv{rank}d_input"), s=x.shape, w=w, dy=dy, a=algo:
                        f(s, w, dy, algo=a, **kw)))
        for algo in fastconv.algorithms("backward_weights"):
            ops.append((f"conv{rank}d_weight[{algo}]",
                        lambda f=getattr(G, f"conv{rank}d_weight"), x=x, s=w.shape, dy=dy, a=algo:
                        f(x, s, dy, algo=a, **kw)))
        ops.append((f"conv{rank}d_bias", lambda f=getattr(G, f"conv{rank}d_bias"), dy=dy: f(dy)))
    # a strided, dilated, reflect-padded float64 case
    x64, w64 = arr(2, 6, 15, 14, dtype=np.float64), arr(4, 6, 3, 3, dtype=np.float64)
    ops.append(("conv2d[f64,reflect]", lambda: F.conv2d(x64, w64, stride=2, padding=2, dilation=2,
                                                         padding_mode="reflect")))
    xt, wt = arr(2, 8, 9, 10), arr(8, 4, 3, 3)
    ops.append(("conv_transpose2d", lambda: F.conv_transpose2d(xt, wt, stride=2, padding=1,
                                                               output_padding=1)))
    ops.append(("conv_transpose2d_weight",
                lambda: G.conv_transpose2d_weight(xt, wt.shape, F.conv_transpose2d(xt, wt, stride=2),
                                                  stride=2)))

    # pooling, forward and backward
    xp = arr(2, 16, 24, 22)
    xp3 = arr(2, 8, 6, 12, 11)
    yp, ip = F.max_pool2d(xp, 3, 2, 1, return_indices=True)
    ops += [
        ("max_pool2d", lambda: F.max_pool2d(xp, 3, 2, 1, return_indices=True)),
        ("max_pool2d[ceil,dilation]", lambda: F.max_pool2d(xp, 2, 2, 0, 2, ceil_mode=True)),
        ("avg_pool2d", lambda: F.avg_pool2d(xp, 3, 2, 1, count_include_pad=False)),
        ("max_pool1d", lambda: F.max_pool1d(xp[:, :, 0], 3)),
        ("avg_pool3d", lambda: F.avg_pool3d(xp3, 2)),
        ("adaptive_avg_pool2d", lambda: F.adaptive_avg_pool2d(xp, (5, 7))),
        ("adaptive_max_pool2d", lambda: F.adaptive_max_pool2d(xp, (5, 7), return_indices=True)),
        ("max_pool2d_input", lambda: G.max_pool2d_input(yp, ip, xp.shape)),
        ("avg_pool2d_input", lambda: G.avg_pool2d_input(yp, xp.shape, 3, 2, 1)),
    ]

    # normalisations (no running statistics are updated: inputs stay shared and unchanged)
    xn, gn = arr(4, 16, 12, 12), arr(4, 16, 12, 12)
    wn, bn = arr(16), arr(16)
    rm, rv = arr(16, dtype=np.float64), rng.uniform(0.5, 2, 16)
    ops += [
        ("batch_norm[eval]", lambda: F.batch_norm(xn, rm, rv, wn, bn)),
        ("batch_norm[train]", lambda: F.batch_norm(xn, None, None, wn, bn, training=True)),
        ("layer_norm", lambda: F.layer_norm(xn, (12, 12))),
        ("group_norm", lambda: F.group_norm(xn, 4, wn, bn)),
        ("instance_norm", lambda: F.instance_norm(xn)),
        ("batch_norm_backward", lambda: G.batch_norm_backward(gn, xn, weight=wn, training=True)),
        ("layer_norm_backward", lambda: G.layer_norm_backward(gn, xn, (12, 12))),
        ("group_norm_backward", lambda: G.group_norm_backward(gn, xn, 4, wn)),
    ]

    # activations, softmax, linear
    xa, ga = arr(64, 1000), arr(64, 1000)
    for name in ("relu", "gelu", "silu", "sigmoid", "tanh", "hardswish"):
        ops.append((name, lambda f=getattr(F, name): f(xa)))
        ops.append((f"{name}_input", lambda f=getattr(G, f"{name}_input"): f(ga, xa)))
    ops.append(("leaky_relu", lambda: F.leaky_relu(xa, 0.2)))
    sm = F.softmax(xa, dim=1)
    ops += [
        ("softmax", lambda: F.softmax(xa, dim=1)),
        ("softmax[dim0]", lambda: F.softmax(xa, dim=0)),
        ("log_softmax", lambda: F.log_softmax(xn, dim=1)),
        ("softmax_input", lambda: G.softmax_input(ga, sm, 1)),
    ]
    xl, wl, bl = arr(32, 256), arr(128, 256), arr(128)
    gl = arr(32, 128)
    ops += [
        ("linear", lambda: F.linear(xl, wl, bl)),
        ("linear_input", lambda: G.linear_input(gl, wl)),
        ("linear_weight", lambda: G.linear_weight(gl, xl)),
    ]

    # fastconv.signal
    s1, s2 = arr(3000, dtype=np.float64), arr(41, dtype=np.float64)
    i1, i2 = arr(40, 50), arr(7, 6)
    ops += [
        ("correlate[direct]", lambda: S.correlate(s1, s2, method="direct")),
        ("correlate[fft]", lambda: S.correlate(s1, s2, mode="same", method="fft")),
        ("correlate2d[auto]", lambda: S.correlate(i1, i2, mode="valid")),
        ("convolve[complex]", lambda: S.convolve(i1 + 1j * i1[::-1], i2, method="fft")),
        ("correlate2d[symm]", lambda: S.correlate2d(i1, i2, boundary="symm", mode="same")),
    ]

    # plans: shared ones (prepared here; concurrent calls share the packed weights) and a new
    # one made on every call (weights packed concurrently)
    xq, wq, bq = arr(2, 16, 14, 14), arr(24, 16, 3, 3), arr(24)
    rq = arr(2, 24, 14, 14)
    for algo in ("winograd", "gemm", "fft", "direct"):
        p = fastconv.plan(wq, bq, padding=1, algo=algo, activation="relu")
        p.prepare(xq.shape)
        ops.append((f"plan[{algo}]", lambda p=p: p(xq)))
    pr = fastconv.plan(wq, bq, padding=1, activation="silu")
    pr.prepare(xq.shape)
    ops.append(("plan[residual,silu]", lambda: pr(xq, rq)))
    ops.append(("plan[new,winograd]", lambda: fastconv.plan(wq, padding=1, algo="winograd")(xq)))
    w1, x1 = arr(8, 4, 5), arr(2, 4, 100)
    ops.append(("plan[new,conv1d,fft]", lambda: fastconv.plan(w1, algo="fft")(x1)))

    # keep the ops an algorithm supports; conv2d 3x3 must be supported by every one
    kept = []
    for name, fn in ops:
        try:
            fn()
        except ValueError as e:
            if "does not support" not in str(e) or name.startswith("conv2d["):
                raise
            continue
        kept.append((name, fn))
    return kept


def as_bytes(result):
    """The exact content of an op's result: dtype, shape and bytes of each array in it."""
    if isinstance(result, tuple):
        return tuple(as_bytes(r) for r in result)
    r = np.asarray(result)
    return (r.dtype.str, r.shape, r.tobytes())


def process_threads():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line in /proc/self/status")


@pytest.fixture
def restore_threads():
    n = fastconv.get_num_threads()
    yield n
    fastconv.set_num_threads(n)


@pytest.fixture(scope="module")
def ops():
    return mixed_ops()


def test_mixed_ops_cover_the_issue(ops):
    names = " ".join(n for n, _ in ops)
    for algo in ("direct", "gemm", "winograd", "fft"):
        assert f"conv2d[{algo}]" in names and f"conv2d_input[{algo}]" in names
    for part in ("conv1d[", "conv3d[", "_weight[", "pool", "norm", "softmax", "linear",
                 "correlate", "plan[", "relu"):
        assert part in names, part
    assert len(ops) >= 60


def run_concurrently(ops, expected, n_threads=N_THREADS, n_calls=N_CALLS, sample=False):
    """Each Python thread makes n_calls calls in its own seeded order; returns the mismatches,
    the errors and (sample=True) the largest process thread count seen meanwhile."""
    mismatches, errors, peak = [], [], [0]
    start = threading.Barrier(n_threads + 1)
    done = threading.Event()

    def work(t):
        order = np.random.default_rng(SEED + t).integers(0, len(ops), n_calls)
        try:
            start.wait()
            for i in order:
                name, fn = ops[i]
                if as_bytes(fn()) != expected[i]:
                    mismatches.append((t, name))
        except Exception as e:  # noqa: BLE001 -- reported by the test
            errors.append((t, repr(e)))

    def sampler():
        while not done.is_set():
            peak[0] = max(peak[0], process_threads())
            time.sleep(0.002)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    watcher = threading.Thread(target=sampler) if sample else None
    if watcher:
        watcher.start()
    start.wait()
    for t in threads:
        t.join(timeout=300)
    done.set()
    if watcher:
        watcher.join()
    assert not any(t.is_alive() for t in threads), "a calling thread hung"
    return mismatches, errors, peak[0]


def test_threads_give_serial_results_and_bounded_thread_count(ops, restore_threads):
    """16 Python threads x 200 mixed calls = the serial bytes, at the default thread count and
    at 1 thread; meanwhile the process never holds more than baseline + 16 * n threads."""
    default = restore_threads
    expected = [as_bytes(fn()) for _, fn in ops]
    # repeated serial runs are identical too
    assert [as_bytes(fn()) for _, fn in ops] == expected
    for n in sorted({default, 1}, reverse=True):
        fastconv.set_num_threads(n)
        serial = [as_bytes(fn()) for _, fn in ops]
        if n != default:  # no op depends on the thread count
            assert [name for (name, _), s, e in zip(ops, serial, expected) if s != e] == []
        baseline = process_threads()
        mismatches, errors, peak = run_concurrently(ops, serial, sample=True)
        assert not errors, errors[:5]
        assert not mismatches, sorted(set(name for _, name in mismatches))
        # 16 callers, the sampler, and per caller at most a team of n - 1 OpenMP workers (a
        # caller's team stays, idle, once it had one: short calls often run alone)
        bound = baseline + N_THREADS + 1 + N_THREADS * (n - 1)
        assert peak <= bound, f"{peak} threads at {n} threads per call (bound {bound})"
        # the callers' OpenMP workers leave with them
        deadline = time.monotonic() + 10
        while process_threads() > baseline and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process_threads() <= baseline


# ---------------------------------------------------------------- the GIL is released
def _long_calls():
    """One long call (tens of ms at 1 thread) per kind of binding: {name: fn}."""
    rng = np.random.default_rng(SEED)

    def arr(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)

    x, w = arr(12, 64, 56, 56), arr(64, 64, 3, 3)
    dy = F.conv2d(x, w, padding=1, algo="gemm")
    xb = arr(16, 64, 64, 64)
    huge = arr(64, 64, 64, 64)
    yb, ib = F.max_pool2d(huge, 2, return_indices=True)
    big = arr(2048, 2048)
    xl, wl = arr(512, 1024), arr(1024, 1024)
    wp = arr(512, 512, 3, 3)
    calls = [(f"conv2d[{a}]", lambda a=a: F.conv2d(x, w, padding=1, algo=a))
             for a in ("direct", "gemm", "winograd", "fft")]
    calls += [
        ("conv2d_input", lambda: G.conv2d_input(x.shape, w, dy, padding=1)),
        ("conv2d_weight", lambda: G.conv2d_weight(x, w.shape, dy, padding=1)),
        ("conv_transpose2d", lambda: F.conv_transpose2d(dy, w, padding=1)),
        ("plan: packing", lambda: fastconv.plan(wp, padding=1, algo="fft")
         .prepare((1, 512, 28, 28))),
        ("plan forward", lambda: fastconv.plan(w, padding=1)(x)),
        ("max_pool2d", lambda: F.max_pool2d(xb, 3, 2, 1, return_indices=True)),
        ("max_pool2d_input", lambda: G.max_pool2d_input(yb, ib, huge.shape)),
        ("avg_pool2d", lambda: F.avg_pool2d(xb, 5, 1, 2)),
        ("adaptive_max_pool2d", lambda: F.adaptive_max_pool2d(xb, (29, 31))),
        ("batch_norm", lambda: F.batch_norm(huge, None, None, training=True)),
        ("layer_norm_backward", lambda: G.layer_norm_backward(big, big, (2048,))),
        ("gelu", lambda: F.gelu(big)),
        ("softmax", lambda: F.softmax(xb[:4], dim=1)),
        ("linear", lambda: F.linear(xl, wl)),
        ("correlate", lambda: S.correlate(xb[0, :48], x[0, :4, :11, :11], method="direct")),
    ]
    return dict(calls)


LONG_CALLS = ["conv2d[direct]", "conv2d[gemm]", "conv2d[winograd]", "conv2d[fft]", "conv2d_input",
              "conv2d_weight", "conv_transpose2d", "plan: packing", "plan forward", "max_pool2d",
              "max_pool2d_input", "avg_pool2d", "adaptive_max_pool2d", "batch_norm",
              "layer_norm_backward", "gelu", "softmax", "linear", "correlate"]


@pytest.fixture(scope="module")
def long_calls():
    calls = _long_calls()
    assert sorted(calls) == sorted(LONG_CALLS)
    yield calls
    calls.clear()


def _max_gap_inside(fn):
    """Run fn on this thread while another Python thread ticks; returns (call seconds, the
    longest the ticker went without running during the call)."""
    gaps = []  # (from, to) of every pause of the ticker longer than 0.2 ms
    stop = threading.Event()
    started = threading.Event()

    def ticker():
        last = time.perf_counter()
        started.set()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > 2e-4:
                gaps.append((last, now))
            last = now
        gaps.append((last, time.perf_counter()))

    t = threading.Thread(target=ticker)
    t.start()
    started.wait()
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    stop.set()
    t.join()
    inside = [min(b, t1) - max(a, t0) for a, b in gaps if b > t0 and a < t1]
    return t1 - t0, max(inside, default=0.0)


@pytest.mark.parametrize("name", LONG_CALLS)
def test_gil_released_during_compute(name, long_calls, restore_threads):
    """A ticking Python thread is never stopped for most of a long call. Holding the GIL for
    the compute would stop it for the whole compute (a gap of nearly the call's duration).
    One OpenMP thread, so the ticker has the other core; a short switch interval, so the
    Python parts of the call let the ticker in too; five tries against scheduling noise."""
    fastconv.set_num_threads(1)
    fn = long_calls[name]
    fn()  # warm up (buffer caches)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    results = []
    try:
        for _ in range(5):
            duration, gap = _max_gap_inside(fn)
            results.append((round(duration * 1e3, 1), round(gap * 1e3, 1)))
            # 2 ms is 20 switch intervals: a call holding the GIL would stop the ticker for all
            # of it; one that releases it stops the ticker only when the OS gives this process
            # a single core (then for a time slice, not the whole call)
            if duration >= 0.002 and gap < 0.5 * duration:
                return
    finally:
        sys.setswitchinterval(interval)
    pytest.fail(f"{name}: (call ms, longest ticker gap ms) = {results}: "
                "the GIL is held during compute (or the call is too short to tell)")


# ---------------------------------------------------------------- exceptions in parallel regions
_OOM_CHILD = textwrap.dedent("""
    import re, resource, sys
    import numpy as np, fastconv
    from fastconv import functional as F, grad as G
    fastconv.set_num_threads(int(sys.argv[1]))
    inner = 20_000_000
    x = np.ones((2, inner), np.float32)          # 160 MB
    y = F.softmax(x[:, :1000], dim=0)
    status = open("/proc/self/status").read()
    vm = int(re.search(r"VmSize:\\s+(\\d+)", status).group(1)) * 1024
    # room for the 160 MB output, not for the per-thread scratch of 2 x 8 bytes per column
    resource.setrlimit(resource.RLIMIT_AS, (vm + (400 << 20), resource.RLIM_INFINITY))
    for name, f in [("softmax", lambda: F.softmax(x, dim=0)),
                    ("log_softmax", lambda: F.log_softmax(x, dim=0)),
                    ("softmax_input", lambda: G.softmax_input(x, x, 0))]:
        try:
            f()
            print(name, "computed")
        except MemoryError as e:
            print(name, "MemoryError", e)
    print("alive")
""")


@pytest.mark.parametrize("threads", [1, 2])
def test_exception_inside_parallel_region_becomes_python_exception(threads):
    """softmax along an axis with a large inner extent allocates per-thread scratch for the
    parallel region over the outer index. When that allocation fails it must be a MemoryError,
    not std::terminate (an exception leaving an OpenMP region aborts the process). This is the
    one allocation reachable from Python that sat inside a parallel region; other errors
    detected in regions (non-finite weights in winograd/fft) are flags reduced after them."""
    p = subprocess.run([sys.executable, "-c", _OOM_CHILD, str(threads)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"child died ({p.returncode}):\n{p.stdout}\n{p.stderr[-2000:]}"
    lines = p.stdout.splitlines()
    assert lines[-1] == "alive"
    for name in ("softmax", "log_softmax", "softmax_input"):
        line = next(l for l in lines if l.startswith(name + " "))
        assert "MemoryError" in line, line


def test_errors_in_threads_are_python_exceptions(ops, restore_threads):
    """Invalid arguments raise ValueError in each calling thread, interleaved with valid calls,
    and leave the others' results intact."""
    x, w = np.ones((1, 4, 8, 8), np.float32), np.ones((4, 4, 3, 3), np.float32)
    good = F.conv2d(x, w, padding=1).tobytes()
    errors, wrong, bad = [], [], []

    def work(t):
        for i in range(50):
            try:
                if (t + i) % 2:
                    F.conv2d(x, w, stride=0)
                    bad.append(t)
                elif F.conv2d(x, w, padding=1).tobytes() != good:
                    wrong.append(t)
            except ValueError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not bad and not wrong
    assert len(errors) == 8 * 25 and all("stride" in e for e in errors)


# ---------------------------------------------------------------- one plan, many threads
def test_plan_cache_lookup_is_atomic(restore_threads):
    """A plan's cache of packed shapes is updated under a lock: another thread that packs new
    shapes (evicting the oldest) right between one thread's lookup of a shape and its move to
    the front must wait. The other thread is started inside the lookup, deterministically;
    without the lock it evicts the shape being looked up and the caller fails (KeyError)."""
    fastconv.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    plan = fastconv.plan(rng.uniform(-1, 1, (3, 2, 3, 3)).astype(np.float32), padding=1)
    shapes = [(1, 2, 4 + i, 5) for i in range(plan.max_shapes + 1)]
    inputs = {s: rng.uniform(-1, 1, s).astype(np.float32) for s in shapes}
    for s in shapes[:plan.max_shapes]:
        plan(inputs[s])  # the cache is full; shapes[0] is the oldest entry
    expected = fastconv.plan(plan.weight, padding=1)(inputs[shapes[0]]).tobytes()
    evictor = threading.Thread(target=lambda: plan(inputs[shapes[-1]]))  # evicts shapes[0]

    class Cache(type(plan._plans)):
        def get(self, key, default=None):
            found = super().get(key, default)
            if key == shapes[0] and evictor.ident is None:
                evictor.start()
                evictor.join(timeout=0.5)  # finishes here only if nothing holds it back
            return found

    plan._plans = Cache(plan._plans)
    assert plan(inputs[shapes[0]]).tobytes() == expected
    evictor.join(timeout=60)
    assert not evictor.is_alive()
    assert len(plan._plans) <= plan.max_shapes


def test_plan_shared_by_threads_over_more_shapes_than_it_keeps(restore_threads):
    """Threads calling one plan with more input shapes than it keeps packed (max_shapes):
    the cache's evictions race with the other threads' lookups; every call must still return
    the serial bytes (a stress test; test_plan_cache_lookup_is_atomic forces the race)."""
    fastconv.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    plan = fastconv.plan(rng.uniform(-1, 1, (3, 2, 3, 3)).astype(np.float32), padding=1)
    inputs = [rng.uniform(-1, 1, (1, 2, 4 + i, 5)).astype(np.float32)
              for i in range(plan.max_shapes + 4)]
    expected = [plan(x).tobytes() for x in inputs]
    errors, mismatches = [], []

    def caller(k):
        try:
            for i in range(2000):
                j = (i * 7 + k) % len(inputs)
                if plan(inputs[j]).tobytes() != expected[j]:
                    mismatches.append(j)
        except Exception as e:  # noqa: BLE001 - any exception is the failure
            errors.append(repr(e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert not mismatches
    assert len(plan._plans) <= plan.max_shapes
