"""Pooling gradients vs the float64 reference: fastconv.grad.max_pool{n}d_input,
avg_pool{n}d_input, adaptive_avg_pool{n}d_input, adaptive_max_pool{n}d_input.

(a) 200 seeded random configurations per function and spatial rank (drawn by test_pool's
    generator with its own seed stream: kernel, stride incl. None, padding up to the limit,
    dilation, ceil_mode edges, count_include_pad, divisor_override, adaptive sizes with None
    entries / larger than the input, batched / unbatched / N = 0), every ISA x float32/float64.
    The max gradients take the reference's indices (test_pool proves fastconv's are the same).
(b) overlapping windows (stride < kernel) accumulate: counts checked exactly;
(c) float64 finite-difference gradcheck of the average and adaptive-average gradients, and of
    the max gradients on distinct values (gaps far larger than the step, so no tie flips);
(d) determinism: repeated calls and 1 vs 2 threads give bit-identical gradients;
(e) windows lying entirely in the padding (dilated max pooling): forward -> backward round trip.

Checks: ndarray of grad_output's dtype, shape input_shape, C-contiguous, NaN-free, arguments
untouched, normalised error <= 1e-6 (float32) / 1e-12 (float64) against the reference.
"""

import functools

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as G
from conftest import ISAS, compare_with_reference, fail_if, pool_tolerance
from reference import (
    adaptive_avg_pool_input_grad,
    adaptive_max_pool_input_grad,
    avg_pool_input_grad,
    max_pool_empty_windows,
    max_pool_input_grad,
)
from test_pool import (
    DEFAULT_ISA,
    DTYPES,
    KINDS,
    MAX_KINDS,
    N_RANDOM,
    RANKS,
    Case,
    check_sweep,
    data,
    dtype_ids,
    pool_fn,
    random_case,
)

ENTRY = {k: f"{k}_pool_input" for k in KINDS}  # conftest.POOL_ENTRY_POINTS


def grad_fn(kind, rank):
    return getattr(G, f"{kind}_pool{rank}d_input")


def _avg_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if k in ("kernel_size", "stride", "padding",
                                                       "ceil_mode", "count_include_pad",
                                                       "divisor_override")}


class GradCase:
    """A pooling Case plus a grad_output of the forward output's shape; the reference gradient
    is computed once."""

    def __init__(self, case, gy):
        self.case, self.gy = case, gy

    @functools.cached_property
    def ref(self):
        c = self.case
        if c.kind == "max":
            return max_pool_input_grad(self.gy, c.ref[1], c.x.shape, c.rank)
        if c.kind == "adaptive_max":
            return adaptive_max_pool_input_grad(self.gy, c.ref[1], c.x.shape, c.rank)
        if c.kind == "avg":
            return avg_pool_input_grad(self.gy, c.x.shape, c.rank, **_avg_kwargs(c.kwargs))
        return adaptive_avg_pool_input_grad(self.gy, c.x.shape, c.rank)

    def call(self, dtype):
        """fastconv's gradient for this case in dtype (indices: the reference's)."""
        c = self.case
        gy = self.gy.astype(dtype)
        fn = grad_fn(c.kind, c.rank)
        if c.kind in MAX_KINDS:
            return fn(gy, c.ref[1], c.x.shape)
        if c.kind == "avg":
            return fn(gy, c.x.shape, **_avg_kwargs(c.kwargs))
        return fn(gy, c.x.shape)

    def describe(self):
        return f"{self.case.kind}_pool{self.case.rank}d_input of {self.case.describe()}"


def grad_case(case, seed):
    rng = np.random.default_rng(seed)
    return GradCase(case, data(rng, case.ref[0].shape, "uniform"))


def run_grad_check(gcase, dtype, isa, record_error):
    """Run the fastconv gradient and return a list of problems (empty when right)."""
    c = gcase.case
    where = f"[isa={isa}, dtype={np.dtype(dtype).name}] {gcase.describe()}"
    gy_before = gcase.gy.copy()
    idx_before = c.ref[1].copy() if c.kind in MAX_KINDS else None
    try:
        gx = gcase.call(dtype)
    except Exception as e:  # noqa: BLE001 - report any exception with the config
        return [f"{where}: raised {type(e).__name__}: {e}"]
    problems, err = compare_with_reference(gx, gcase.ref, dtype, pool_tolerance(dtype), where)
    if err is not None:
        record_error(dtype, f"{c.rank}d", err, isa, c.name, entry=ENTRY[c.kind])
    if not np.array_equal(gcase.gy, gy_before) or (
            idx_before is not None and not np.array_equal(c.ref[1], idx_before)):
        problems.append(f"{where}: an argument was modified")
    return problems


# --------------------------------------------------------------------------- (a) random configs
@functools.lru_cache(maxsize=None)
def random_grad_case(kind, rank, index):
    """Gradient configuration `index` (test_pool's generator, seed stream salt=1)."""
    return grad_case(random_case(kind, rank, index, salt=1), [7, KINDS.index(kind), rank, index])


RANDOM_IDS = [(k, r, i) for k in KINDS for r in RANKS for i in range(N_RANDOM)]


@pytest.mark.parametrize("kind,rank,index", RANDOM_IDS,
                         ids=[f"{k}-r{r}-{i:03d}" for k, r, i in RANDOM_IDS])
def test_random(kind, rank, index, record_error):
    """One reference gradient, then every ISA x dtype."""
    gcase = random_grad_case(kind, rank, index)
    gcase.ref  # noqa: B018 - computed once
    fail_if(check_sweep(gcase, index, record_error, run=run_grad_check))


# --------------------------------------------------------------------------- (b) overlap
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
@pytest.mark.parametrize("rank", RANKS)
def test_overlapping_windows_accumulate(rank, dtype, isa, record_error):
    """stride < kernel: every input receives the sum over all windows that use it."""
    sp = {1: (11,), 2: (7, 8), 3: (5, 4, 6)}[rank]
    shape = (2, 3) + sp
    n = int(np.prod(sp))
    # strictly increasing values: each max window picks its last tap inside the input
    x = np.broadcast_to(np.arange(n, dtype=np.float64).reshape(sp), shape).copy()
    problems = []
    kw = {"kernel_size": 3, "stride": 1, "padding": 1}
    for kind in KINDS:
        fkw = {"output_size": tuple(L + 2 for L in sp)} if kind.startswith("adaptive") else kw
        if kind == "avg":
            fkw = dict(kw, divisor_override=1)  # gradient = number of windows covering x
        case = Case(f"overlap_{kind}_r{rank}", kind, rank, x, fkw)
        y = case.ref[0]
        gcase = GradCase(case, np.ones_like(y))
        problems += run_grad_check(gcase, dtype, isa, record_error)
        gx = gcase.call(dtype)
        # independent count: how many windows cover / choose each input element
        if kind == "max":
            counts = np.zeros(n)
            np.add.at(counts, case.ref[1].reshape(2 * 3, -1)[0], 1.0)
        elif kind == "avg":
            counts = np.ones((1,) * rank)
            for i, L in enumerate(sp):  # windows [o-1, o+1] clipped: 2 at the ends, else 3
                c = np.full(L, 3.0)
                c[0] = c[-1] = 2.0
                counts = counts * c.reshape([L if j == i else 1 for j in range(rank)])
        else:
            counts = None
        if counts is not None:
            want = np.broadcast_to(counts.reshape(sp), shape)
            if not np.array_equal(gx, want):
                problems.append(f"{kind}{rank}d isa={isa} {np.dtype(dtype).name}: overlapping "
                                f"windows do not accumulate: {gx.reshape(-1)[:8]} vs "
                                f"{want.reshape(-1)[:8]}")
        assert counts is None or counts.max() > 1  # the windows do overlap
    fail_if(problems)


# --------------------------------------------------------------------------- (c) gradcheck
FD_STEP = 1e-5
FD_TOL = 1e-7


def _gradcheck_cases(rank):
    sp = {1: (9,), 2: (5, 6), 3: (3, 4, 3)}[rank]
    rng = np.random.default_rng(40 + rank)
    n = 2 * int(np.prod(sp))
    smooth = rng.uniform(-1, 1, size=(1, 2) + sp)
    # distinct values 0.01 apart: max windows keep their argmax under a +-1e-5 step
    distinct = (rng.permutation(n).reshape((1, 2) + sp) * 0.01 - 0.3
                + rng.uniform(0, 1e-3, size=(1, 2) + sp))
    return [
        Case(f"fd_avg_ceil_r{rank}", "avg", rank, smooth,
             {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
              "count_include_pad": False}),
        Case(f"fd_avg_div_r{rank}", "avg", rank, smooth,
             {"kernel_size": 2, "stride": 1, "divisor_override": 3}),
        Case(f"fd_avg_cip_r{rank}", "avg", rank, smooth,
             {"kernel_size": 3, "stride": 2, "padding": 1}),
        Case(f"fd_aavg_r{rank}", "adaptive_avg", rank, smooth,
             {"output_size": tuple(L // 2 + 1 for L in sp)}),
        Case(f"fd_aavg_up_r{rank}", "adaptive_avg", rank, smooth,
             {"output_size": tuple(L + 2 for L in sp)}),
        Case(f"fd_max_r{rank}", "max", rank, distinct,
             {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
        Case(f"fd_max_dil_r{rank}", "max", rank, distinct,
             {"kernel_size": 2, "stride": 1, "padding": 1, "dilation": 2}),
        Case(f"fd_amax_r{rank}", "adaptive_max", rank, distinct,
             {"output_size": tuple(L // 2 + 1 for L in sp)}),
    ]


@pytest.mark.parametrize("rank", RANKS)
def test_gradcheck_float64(rank, threads_restored):
    """Central differences of sum(pool(x) * gy) against fastconv's float64 gradient, element
    by element (max: through fastconv's own forward indices)."""
    threads_restored(1)  # ~100 tiny forward calls per case
    problems = []
    for case in _gradcheck_cases(rank):
        x = case.x
        gy = np.random.default_rng(9).uniform(-1, 1, size=case.ref[0].shape)
        fwd = pool_fn(case.kind, rank)

        def f(v, case=case, fwd=fwd, gy=gy):
            return float(np.sum(fwd(v, **case.kwargs) * gy))

        if case.kind in MAX_KINDS:
            _, idx = fwd(x, return_indices=True, **case.kwargs)
            g = grad_fn(case.kind, rank)(gy, idx, x.shape)
        elif case.kind == "avg":
            g = grad_fn("avg", rank)(gy, x.shape, **case.kwargs)
        else:
            g = grad_fn("adaptive_avg", rank)(gy, x.shape)
        num = np.empty_like(x)
        for i in range(x.size):
            xp, xm = x.copy(), x.copy()
            xp.flat[i] += FD_STEP
            xm.flat[i] -= FD_STEP
            num.flat[i] = (f(xp) - f(xm)) / (2 * FD_STEP)
        err = float(np.max(np.abs(num - g)) / np.max(np.abs(g)))
        if not err <= FD_TOL:
            problems.append(f"{case.describe()}: finite differences differ by {err:.2e} "
                            f"(> {FD_TOL:.0e})")
    fail_if(problems)


# --------------------------------------------------------------------------- (d) determinism
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_grad_deterministic(kind, dtype, threads_restored):
    """A problem split across threads (overlapping windows, collisions in the max gradient):
    repeated calls and 1 vs 2 threads are bit-identical."""
    rng = np.random.default_rng(17)
    x = data(rng, (2, 16, 33, 35), "ints")  # ties: max windows share their argmax
    kw = ({"output_size": (21, 50)} if kind.startswith("adaptive")
          else {"kernel_size": 3, "stride": 1, "padding": 1, "ceil_mode": True})
    case = Case(f"det_{kind}", kind, 2, x, kw)
    gcase = GradCase(case, data(rng, case.ref[0].shape, "uniform"))
    threads_restored(2)
    a, b = gcase.call(dtype), gcase.call(dtype)
    threads_restored(1)
    c = gcase.call(dtype)
    assert a.tobytes() == b.tobytes(), "two calls with 2 threads differ"
    assert a.tobytes() == c.tobytes(), "1 thread and 2 threads differ"
    assert np.max(np.abs(a - gcase.ref)) <= pool_tolerance(dtype) * np.max(np.abs(gcase.ref))


# --------------------------------------------------------------------------- (e) round trip
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("empty_windows", [False, True], ids=["regular", "empty_windows"])
def test_max_round_trip(rank, empty_windows):
    """max_pool{n}d(..., return_indices=True) -> max_pool{n}d_input: the backward accepts the
    indices its forward produced, also where a dilated window lies entirely in the padding
    (PyTorch: -inf there; such an output has no input to send its gradient to. PyTorch's CPU
    backward skips the index -1; its forward, though, reports an index past the plane)."""
    rng = np.random.default_rng(31 + rank)
    if empty_windows:  # dim 0: L=3, kernel 2, dilation 4, padding 2 -> middle window empty
        sp = (3,) + (4,) * (rank - 1)
        kw = {"kernel_size": 2, "stride": 1, "padding": (2,) + (1,) * (rank - 1),
              "dilation": (4,) + (1,) * (rank - 1)}
        assert max_pool_empty_windows((2, 3) + sp, rank, **kw).any()
    else:
        sp = (6,) * rank
        kw = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    x = data(rng, (2, 3) + sp, "ints")
    case = Case(f"round_trip_r{rank}", "max", rank, x, kw)
    problems = []
    for isa, dtype in [(i, d) for i in ISAS for d in DTYPES]:
        where = f"[isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}"
        prev = fastconv.set_isa(isa)
        try:
            y, idx = pool_fn("max", rank)(x.astype(dtype), return_indices=True, **kw)
        finally:
            fastconv.set_isa(prev)
        gy = np.ones(y.shape, dtype)
        try:
            gx = grad_fn("max", rank)(gy, idx, x.shape)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{where}: backward rejected the forward's indices: "
                            f"{type(e).__name__}: {e}")
            continue
        empty = np.broadcast_to(max_pool_empty_windows(x.shape, rank, **kw), y.shape)
        ref_idx = np.where(empty, 0, case.ref[1])  # empty windows send nothing
        want = max_pool_input_grad(np.where(empty, 0.0, 1.0), ref_idx, x.shape, rank)
        if not np.array_equal(gx, want):
            problems.append(f"{where}: round-trip gradient differs from the reference")
    fail_if(problems)


def test_functional_and_grad_export_every_pool():
    for kind in KINDS:
        for rank in RANKS:
            assert callable(getattr(F, f"{kind}_pool{rank}d"))
            assert callable(getattr(G, f"{kind}_pool{rank}d_input"))
    assert DEFAULT_ISA in ISAS
