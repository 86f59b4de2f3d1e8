"""The direct convolution's narrow layout (conv/direct_blocked.cpp) and its row pieces vs the
float64 reference.

Layers with fewer input channels per group than half a vector (2 * C_per_group < W: a
network's first layer, 3 colour channels) and at least half a vector of output channels per
group run on the narrow layout: the input interleaved C_per_group channels per pixel, any
stride, and a tile kernel summing one (tap, channel) term per step (``blocked_conv_tile<..., 0>``
of kernels/generic/blocked_ukernel.hpp). Its tiling prefers NB = 4 output blocks and keeps the
NB weight vectors and the broadcast in registers beside the accumulators:
NB x (UR + 1) + 1 <= MaxAcc + 4 (``narrow_tiling`` below copies the rule).

Every blocked forward (narrow or not) computes a row in pieces of at most 256 outputs
(kRowPiece), each at least UR long, transposed back to NCHW a piece at a time; the ``wide``
family has rows of 256 to 1000 outputs (one to four pieces) on both layouts.

The shapes here reach every narrow tile kernel the rule can pick, at strides 1 to 4 along W
(``test_narrow_shapes_cover_the_tiling``), and ``test_narrow_shapes_take_the_narrow_path``
checks through ``plan.prepare``'s packed size (C_per_group x taps x W weights per output block,
not W x W) that the library runs them on the narrow layout. The checks are those of
test_direct_blocked.py: the float64 reference within the accuracy budget, NaN / Inf patterns,
bit-identical results on 1 and 2 threads, and the plan's fused ReLU.
"""

import functools
import itertools

import numpy as np
import pytest

import fastconv
from conftest import fail_if
from test_direct_blocked import (ALGO, ALL_KERNELS, DTYPE_IDS, DTYPES, MAX_UR, MIN_CHAINS,
                                 REDUCTION_BLOCK, blocked_applies, build, check, kernels_of,
                                 lanes_to_test, listed_kernels, run_direct)

ROW_PIECE = 256  # kRowPiece of direct_blocked.cpp


def narrow_applies(w, cg, kg):
    return 2 * cg < w and 2 * kg >= w


def narrow_tiling(w, max_acc, kg, ow):
    """(NB, UR, output blocks per group rounded up to NB) of direct_blocked.cpp's Tiling on the
    narrow layout: the cycle model of test_direct_blocked.tiling, NB tried in the order 4, 2, 1,
    and NB x (UR + 1) + 1 vector registers at most (MaxAcc + 4 of them)."""
    blocks = -(-kg // w)
    best, best_acc, nb, ur = 0.0, 0, 1, 1
    for n in (4, 2, 1):
        if n > 1 and n > blocks:
            continue
        for u in range(1, min(MAX_UR, ow) + 1):
            if n * u > max_acc or n * (u + 1) + 1 > max_acc + 4:
                break
            rate = float(n * ow) / (float(-(-ow // u)) * float(max(n * u, MIN_CHAINS)))
            if rate > best * 1.0001 or (rate > best * 0.9999 and n * u > best_acc):
                best, best_acc, nb, ur = rate, n * u, n, u
    return nb, ur, -(-blocks // nb) * nb


def narrow_table_tiles(max_acc):
    """The (NB, UR) the narrow rule may pick: a kernel in the table and within the registers."""
    return {(nb, ur) for nb in (1, 2, 4) for ur in range(1, MAX_UR + 1)
            if nb * ur <= max_acc and nb * (ur + 1) + 1 <= max_acc + 4}


def narrow_packed_bytes(case, nkb, w, elem, b):
    """What a plan holds on the narrow layout: groups x nkb output blocks of taps x C_per_group
    x W weights of `elem` bytes (the standard layout would hold W x W per tap), and the bias b."""
    weights = case.groups * nkb * int(np.prod(case.w.shape[2:])) * case.cg() * w
    return weights * elem + (0 if b is None else b.nbytes)


def narrow_channels(w):
    """Input channels per group on the narrow layout for W lanes: 1 .. W/2 - 1, 3 included."""
    return [c for c in (1, 2, 3, w // 2 - 1) if 2 * c < w] or [1]


# --------------------------------------------------------------------------- shape families
def _family_narrow_width(w):
    """1-D: every output-block count 1..5 and output width 1..16, 29, 57 at strides 1 to 4."""
    rng = np.random.default_rng([11, w])
    ks = [w // 2, w, 3 * w // 2, 2 * w + 1, 4 * w, 4 * w + 3]  # 1, 1, 2, 3, 4, 5 blocks
    cs = narrow_channels(w)
    kernels, dils = [3, 1, 2, 5, 11], [1, 2, 3]
    cases, i = [], 0
    for s in (1, 2, 3, 4):
        for kg in ks:
            for ow in list(range(1, 17)) + [29, 57]:
                k, d = kernels[i % 5], dils[i % 3]
                pad = [0, 1, 2][(i // 2) % 3]
                n = 3 if i % 7 == 0 else 1
                cases.append(build(f"narrow_s{s}_K{kg}_ow{ow}", rng, n, 1, cs[i % len(cs)], kg,
                                   (k,), (ow,), stride=s, dilation=d, padding=pad,
                                   bias=i % 2 == 0, extra=i % 3))
                i += 1
    return cases


def _family_narrow_layers(w):
    """2-D / 3-D first layers, groups, padding modes, unbatched, long reductions, NaN / Inf."""
    rng = np.random.default_rng([12, w])
    c = narrow_channels(w)[-1]
    spb = REDUCTION_BLOCK  # narrow terms summed in registers between flushes
    nan, inf = float("nan"), float("inf")
    return [
        # the shapes of AlexNet's and ResNet's first layers, smaller images
        build("stem_11x11_s4", rng, 2, 1, c, 4 * w, (11, 11), (5, 13), stride=4, padding=2),
        build("stem_7x7_s2", rng, 1, 1, c, 4 * w, (7, 7), (6, 20), stride=2, padding=3),
        build("stem_3x3_s1", rng, None, 1, c, 4 * w, (3, 3), (4, 33), padding=1, bias=False),
        build("grouped_G2", rng, 1, 2, c, w // 2 + 1, (3, 3), (3, 9), stride=(1, 3), padding=1),
        build("grouped_G3_3d", rng, 3, 3, 1, w + 1, (2, 3, 3), (2, 3, 7), stride=(2, 1, 2),
              dilation=(1, 2, 1), padding=(0, 1, 1)),
        build("same_even", rng, 1, 1, c, 2 * w, (2, 4), (4, 13), padding="same",
              dilation=(1, 2)),
        build("reflect", rng, 1, 1, c, 2 * w + 1, (3, 5), (5, 9), padding=2,
              padding_mode="reflect"),
        build("replicate_s3", rng, 2, 1, c, w, (3, 3), (3, 7), padding=(1, 3), stride=3,
              padding_mode="replicate"),
        build("circular", rng, 1, 1, c, w // 2, (3, 3), (3, 9), padding=(1, 3),
              padding_mode="circular"),
        # terms (taps x channels) past several flushes; exactly 2 flushes; one term more
        build("long_1d", rng, 1, 1, c, 2 * w + 1, (1000 // c,), (15,), padding=3),
        build("long_exact", rng, 1, 1, 1, w, (2 * spb,), (9,), stride=2),
        build("long_exact_p1", rng, 1, 1, 1, 3 * w, (2 * spb + 1,), (14,), dilation=2),
        build("nan_input", rng, 1, 1, c, 2 * w + 1, (3, 3), (5, 29), stride=(1, 2), padding=1,
              specials=[("x", (0, 0, 0, 0), nan), ("x", (0, c - 1, 2, -1), nan),
                        ("x", (0, 0, 4, 20), inf), ("x", (0, c - 1, 1, 24), -inf)]),
        build("nan_weight", rng, 1, 1, c, 3 * w // 2, (3, 3), (3, 7), padding=1,
              specials=[("w", (w // 2, c - 1, 2, 0), nan)]),
    ]


def _family_wide(w):
    """Rows of 256 to 1000 outputs (1 to 4 pieces), standard and narrow layouts."""
    rng = np.random.default_rng([13, w])
    c = narrow_channels(w)[-1]
    cases = []
    for i, ow in enumerate([256, 257, 300, 513, 1000]):
        s = 1 + i % 2
        cases.append(build(f"wide_std_ow{ow}", rng, 1, 1, w + 1, 2 * w + 1, (3,), (ow,),
                           stride=s, padding=1, bias=i % 2 == 0))
        cases.append(build(f"wide_narrow_ow{ow}", rng, 1 + i % 2, 1, c, 4 * w, (5,), (ow,),
                           stride=1 + i % 4, padding=2, bias=i % 2 == 1,
                           specials=[("x", (0, 0, -1), float("nan"))] if i == 3 else ()))
    cases.append(build("wide_std_2d", rng, 1, 1, w, 4 * w, (3, 3), (2, 300), padding=1))
    return cases


FAMILIES = {
    "narrow_width": _family_narrow_width,
    "narrow_layers": _family_narrow_layers,
    "wide": _family_wide,
}


@functools.lru_cache(maxsize=None)
def family_cases(family, w):
    return FAMILIES[family](w)


def narrow_cases(w):
    return [c for f in FAMILIES for c in family_cases(f, w) if narrow_applies(w, c.cg(), c.kg())]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_narrow_forward(family, dtype, isa, record_error):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in family_cases(family, w):
            problems += check(case, dtype, isa, record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- the shapes' reach
@pytest.mark.parametrize("w,max_acc", ALL_KERNELS, ids=lambda v: str(v))
def test_narrow_shapes_cover_the_tiling(w, max_acc):
    """Every narrow tile the rule may pick runs at strides 1 to 4 along W, each NB also with an
    narrower last tile; the wide family splits rows into 1 to 4 pieces on both layouts.
    Pure Python: guards the shape families themselves."""
    tiles, short_last, pieces = set(), set(), set()
    for c in narrow_cases(w):
        nb, ur, _ = narrow_tiling(w, max_acc, c.kg(), c.ow())
        tiles.add((nb, ur, c.stride()[-1]))
        if c.ow() % ur:
            short_last.add(nb)
    for c in family_cases("wide", w):
        assert narrow_applies(w, c.cg(), c.kg()) or blocked_applies(w, c.cg(), c.kg(),
                                                                    c.stride()[-1])
        pieces.add((-(-c.ow() // ROW_PIECE), narrow_applies(w, c.cg(), c.kg())))
    want = {(nb, ur, s) for nb, ur in narrow_table_tiles(max_acc) for s in (1, 2, 3, 4)
            if nb == 1 or any(narrow_tiling(w, max_acc, kg, ur)[0] == nb
                              for kg in range(1, 8 * w))}
    assert want <= tiles, f"narrow tiles (NB, UR, stride) never run: {sorted(want - tiles)}"
    assert short_last >= {1, 2} & {nb for nb, _, _ in want}, short_last
    assert pieces >= set(itertools.product((1, 2, 3, 4), (False, True))), pieces
    lanes = {c.cg() for c in narrow_cases(w)}
    assert lanes == set(narrow_channels(w)), lanes
    assert any(c.cg() * np.prod(c.w.shape[2:]) > 3 * REDUCTION_BLOCK for c in narrow_cases(w))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_narrow_shapes_take_the_narrow_path(dtype, isa):
    """plan.prepare's packed size is the narrow layout's (narrow_packed_bytes) for some NB."""
    w, _ = listed_kernels(isa, dtype)
    elem = np.dtype(dtype).itemsize
    problems, checked = [], 0
    for c in narrow_cases(w):
        x, wt, b = c.arrays(dtype)
        info = fastconv.plan(wt, b, algo=ALGO, **c.call_kwargs()).prepare(x.shape)
        blocks = -(-c.kg() // w)
        allowed = {narrow_packed_bytes(c, -(-blocks // nb) * nb, w, elem, b) for nb in (1, 2, 4)}
        checked += 1
        if info["algo"] != ALGO or info["packed_bytes"] not in allowed:
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {c.describe()}: prepare gave "
                            f"{info}; the narrow layout holds one of {sorted(allowed)} bytes")
    assert checked >= 100
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_auto_picks_narrow_direct_when_strided(dtype, isa):
    """auto runs first layers strided along W on the narrow direct path, and stride-1 ones on
    GEMM (registry.cpp's exact_choice)."""
    k = kernels_of(isa, dtype)
    if k is None or k[0] < 8:
        pytest.skip("3 input channels are not narrow for these lanes")
    w = np.zeros((64, 3, 7, 7), dtype)
    assert fastconv.plan(w, stride=2, padding=3).prepare((1, 3, 64, 64))["algo"] == "direct"
    w3 = np.zeros((64, 3, 3, 3), dtype)
    assert fastconv.plan(w3, padding=1).prepare((1, 3, 64, 64))["algo"] == "gemm"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_narrow_threads_bit_identical(dtype, isa, threads_restored):
    problems = []
    for w in lanes_to_test(isa, dtype):
        rng = np.random.default_rng([14, w])
        c = narrow_channels(w)[-1]
        cases = [build("threads_stem", rng, 2, 1, c, 4 * w + 1, (7, 7), (6, 29), stride=2,
                       padding=3, specials=[("x", (1, 0, 5, -1), float("nan"))]),
                 build("threads_wide", rng, 3, 1, c, 8 * w, (9,), (600,), stride=3)]
        for case in cases:
            assert case.macs() >= 2 << 16, case.describe()
            threads_restored(1)
            y1 = run_direct(case, dtype)
            threads_restored(2)
            y2 = run_direct(case, dtype)
            if y1.tobytes() != y2.tobytes():
                problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case.describe()}: "
                                f"1 and 2 threads differ")
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_narrow_plan_relu_matches_functional(dtype, isa):
    """plan(w, b, algo='direct', activation='relu')(x) == np.maximum(conv(x), 0), bit for bit."""
    problems = []
    for w in lanes_to_test(isa, dtype):
        picks = family_cases("narrow_width", w)[::37] + family_cases("narrow_layers", w)
        picks += family_cases("wide", w)
        for case in picks:
            x, wt, b = case.arrays(dtype)
            y = fastconv.plan(wt, b, algo=ALGO, activation="relu", **case.call_kwargs())(x)
            want = np.maximum(run_direct(case, dtype), 0)
            nan = np.isnan(want)
            if not (np.array_equal(np.isnan(y), nan) and y[~nan].tobytes() == want[~nan].tobytes()):
                problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case.describe()}: plan "
                                f"relu differs from np.maximum(conv, 0)")
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_narrow_tiling_copy_matches_library(dtype, isa):
    """Where NBs give different packed sizes (output blocks rounded up to NB), the library's is
    that of ``narrow_tiling``'s NB. A failure means the rule changed: update the copy."""
    w, max_acc = listed_kernels(isa, dtype)
    elem = np.dtype(dtype).itemsize
    problems, compared = [], 0
    for c in narrow_cases(w):
        blocks = -(-c.kg() // w)
        nb, ur, nkb = narrow_tiling(w, max_acc, c.kg(), c.ow())
        sizes = {n: -(-blocks // n) * n for n in (1, 2, 4) if n == 1 or n <= blocks}
        if list(sizes.values()).count(nkb) > 1:
            continue
        compared += 1
        x, wt, b = c.arrays(dtype)
        got = fastconv.plan(wt, b, algo=ALGO, **c.call_kwargs()).prepare(x.shape)["packed_bytes"]
        want = narrow_packed_bytes(c, nkb, w, elem, b)
        if got != want:
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {c.describe()}: packed {got} "
                            f"bytes, the copied rule's (NB, UR) = {(nb, ur)} packs {want}")
    assert compared >= 10
    fail_if(problems)
