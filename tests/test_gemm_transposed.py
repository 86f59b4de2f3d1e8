"""GEMM convolution's transposed forward product (conv/gemm.cpp) vs the float64 reference.

Where the output positions P fill the GEMM's vectors badly (a 7x7 image: 49 of 64 lanes on
avx512) and the output channels fill them well, the forward computes Y^T = X_col^T W^T with
W^T packed once, into a scratch block that goes back to NCHW rows with bias and clamp through
W x W transposes. The rule (``transposed`` below copies it): the share of useful lanes in whole
vectors of W lanes, Kg / round_up(Kg, W) against P / round_up(P, W), must grow by more than
96 / Kr, Kr the reduction C_per_group x kernel. Tiles (MR, NR) per ISA and dtype: avx512 float32
(12, 32), or (8, 32) on cores with one 512-bit FMA pipe, avx2 float32 (6, 16), everything else
(4, 8); W = NR / 2.

The shapes reach the transposed path on every ISA but one (``P257_1x3``: avx512 and avx2 float32
only; ``test_shapes_take_the_transposed_path`` checks it through ``plan.prepare``'s packed size,
round_up(Kg, NR) x Kr per group rather than round_up(Kg, MR) x Kr) and cover more than one block
of positions (> 256) and of output channels (> 256), groups, stride 2 (positions gathered, not
copied), padding modes, no bias, batch and unbatched input, NaN / Inf, the plan's fused
activations and 1 / 2 threads.
"""

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import fail_if, fma_pipes_of, special_value_problems, tolerance_for
from reference import conv_reference, normalized_error

DTYPES = [np.float32, np.float64]
TILES = {("avx512", "float32"): (12 if fma_pipes_of("avx512") >= 2 else 8, 32),
         ("avx2", "float32"): (6, 16)}
PORTABLE = (4, 8)


def tiles(isa, dtype):
    return TILES.get((isa, np.dtype(dtype).name), PORTABLE)


def ceil_to(n, step):
    return -(-n // step) * step


def transposed(w, P, Kg, Kr):
    """The rule of conv/gemm.cpp's transposed_product, W = w lanes."""
    share = lambda n: n / ceil_to(n, w)  # noqa: E731
    return share(Kg) > (1.0 + 96.0 / Kr) * share(P)


# (name, x shape, weight shape, kwargs): conv2d problems
CASES = [
    ("1x1_5x5", (1, 1400, 5, 5), (64, 1400, 1, 1), {}),
    ("1x1_5x5_N3_nobias", (3, 1300, 5, 5), (96, 1300, 1, 1), {"bias": False}),
    ("3x3_s2_K320", (1, 150, 9, 9), (320, 150, 3, 3), {"stride": 2, "padding": 1}),
    ("groups2_5x5", (1, 3000, 5, 5), (192, 1500, 1, 1), {"groups": 2}),
    # 257 positions: two blocks of rows
    ("P257_1x3", (2, 1400, 1, 257), (16, 1400, 1, 3), {"padding": (0, 1)}),
    ("1x1_s2_gather", (1, 1300, 9, 9), (64, 1300, 1, 1), {"stride": 2}),
    ("reflect_5x5", (1, 60, 5, 5), (32, 60, 5, 5), {"padding": 2, "padding_mode": "reflect"}),
    ("unbatched", (1400, 5, 5), (48, 1400, 1, 1), {}),
    ("P1", (2, 1500, 1, 1), (40, 1500, 1, 1), {}),
]


def problem(case, rng):
    name, xs, ws, kw = case
    kw = dict(kw)
    bias = kw.pop("bias", True)
    x = rng.uniform(-1, 1, xs).astype(np.float32).astype(np.float64)
    w = rng.uniform(-1, 1, ws).astype(np.float32).astype(np.float64)
    b = rng.uniform(-1, 1, ws[0]).astype(np.float32).astype(np.float64) if bias else None
    return x, w, b, kw


def out_positions(x, w, kw):
    ref = conv_reference(x[:1] if x.ndim == 4 else x, w, None, **kw)
    return int(np.prod(ref.shape[-2:]))


def arrays(x, w, b, dtype):
    return x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype)


def forward_problems(name, x, w, b, kw, dtype, isa, record_error, conv=F.conv2d, algo="gemm"):
    """algo's forward of (x, w, b, kw) in dtype against the float64 reference (special values
    where they belong, the normalised error within budget) and a plan's fused relu / relu6
    against clip(conv), bit for bit: the problems found."""
    with np.errstate(invalid="ignore", over="ignore"):
        ref = conv_reference(x, w, b, **kw)
    y = conv(*arrays(x, w, b, dtype), algo=algo, **kw)
    where = f"[isa={isa}, {np.dtype(dtype).name}] {name}"
    problems = special_value_problems(y.astype(np.float64), ref, where, "outputs")
    finite = np.isfinite(ref)
    err = normalized_error(y.astype(np.float64)[finite], ref[finite])
    record_error(dtype, algo, err, isa, name)
    if not err <= tolerance_for(algo, dtype):
        problems.append(f"{where}: normalised error {err:.3e}")
    for act, lo, hi in (("relu", 0, np.inf), ("relu6", 0, 6)):
        yp = fastconv.plan(*arrays(x, w, b, dtype)[1:], algo=algo, activation=act,
                           **kw)(x.astype(dtype))
        with np.errstate(invalid="ignore"):
            want = np.clip(y, lo, hi)
        nan = np.isnan(want)
        if not (np.array_equal(np.isnan(yp), nan) and yp[~nan].tobytes() == want[~nan].tobytes()):
            problems.append(f"{where}: plan {act} differs from clip(conv)")
    return problems


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_transposed_forward(dtype, isa, record_error):
    rng = np.random.default_rng(31)
    problems = []
    for case in CASES:
        x, w, b, kw = problem(case, rng)
        if case[0] == "1x1_5x5_N3_nobias":  # NaN / Inf reach whole output rows and columns
            x[1, 5, 3, 2] = np.nan
            x[2, 7, 0, 0] = np.inf
        problems += forward_problems(case[0], x, w, b, kw, dtype, isa, record_error)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shapes_take_the_transposed_path(dtype, isa):
    """The cases run transposed (all of them on avx512 and avx2 float32, all but P = 257
    elsewhere), per the copied rule, and the packed size the library reports is that of the
    rule's choice."""
    mr, nr = tiles(isa, dtype)
    elem = np.dtype(dtype).itemsize
    rng = np.random.default_rng(32)
    problems, taken = [], 0
    for case in CASES:
        x, w, b, kw = problem(case, rng)
        groups = kw.get("groups", 1)
        Kg, Kr = w.shape[0] // groups, int(np.prod(w.shape[1:]))
        want_t = transposed(nr // 2, out_positions(x, w, kw), Kg, Kr)
        taken += want_t
        rows = ceil_to(Kg, nr) if want_t else ceil_to(Kg, mr)
        want = (groups * rows * Kr + (0 if b is None else b.size)) * elem
        got = fastconv.plan(*arrays(x, w, b, dtype)[1:], algo="gemm", **kw).prepare(x.shape)
        if got["packed_bytes"] != want:
            problems.append(f"[isa={isa}] {case[0]}: packed {got['packed_bytes']} bytes, the "
                            f"rule ({'transposed' if want_t else 'direct'}) packs {want}")
    assert taken >= len(CASES) - 1, taken
    fail_if(problems)


def test_rule_copy_examples():
    """Spot values of the copied rule: ResNet-50's 1x1 layers on avx512 float32 (W = 16)."""
    assert transposed(16, 49, 512, 2048)          # 2048 -> 512 on 7x7
    assert transposed(16, 49, 2048, 512)          # 512 -> 2048 on 7x7
    assert not transposed(16, 196, 256, 1024)     # 1024 -> 256 on 14x14: 196 of 208 lanes
    assert not transposed(16, 3136, 64, 64)       # 56x56: every lane in use already


def threads_problems(cases, seed, dtype, isa, threads_restored, conv=F.conv2d, algo="gemm"):
    """algo's forward of each case on 1 and 2 threads: the cases whose bits differ."""
    rng = np.random.default_rng(seed)
    problems = []
    for case in cases:
        x, w, b, kw = problem(case, rng)
        threads_restored(1)
        y1 = conv(*arrays(x, w, b, dtype), algo=algo, **kw)
        threads_restored(2)
        y2 = conv(*arrays(x, w, b, dtype), algo=algo, **kw)
        if y1.tobytes() != y2.tobytes():
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}: 1 and 2 threads differ")
    return problems


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_transposed_threads_bit_identical(dtype, isa, threads_restored):
    fail_if(threads_problems((CASES[2], CASES[3], CASES[4]), 33, dtype, isa, threads_restored))
