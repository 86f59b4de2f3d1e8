"""Winograd convolution F(m, 3), m = 2, 4, 6 (conv/winograd.cpp) against the float64 reference.

- matrices:   AT, G, BT as the library generates them equal an independent construction here
              from the interpolation points (exact fractions), and y = AT((G g) * (BT d)) is the
              3-tap correlation in float64;
- kernels:    every transform kernel (input, weight, output; 2-D, along W, along H; every ISA and
              dtype) equals its explicit matrix product, lane by lane;
- accuracy:   >= 200 random configurations per variant (1-D and 2-D, groups, padding forms and
              modes, bias, batch, odd sizes that leave partial tiles) forward and data gradient,
              and the ResNet-50 / VGG-16 3x3 layers at full channel counts (spatial size capped),
              within DESIGN.md's budget: F(2,3) <= 2e-6, F(4,3) and F(6,3) <= 5e-5 (float32),
              1e-12 (float64); the worst error per variant is reported in the session summary;
- NaN / Inf:  a non-finite input reaches exactly the outputs that the transform rows connect it
              to in each tile whose input span holds it (|AT| |BT| > 0; never fewer outputs than
              the definition); `auto` keeps the definition's pattern, in both directions, for
              stateless calls and plans; a non-finite weight in the data gradient falls back to
              the direct algorithm;
- domain:     the registry declines stride, dilation, kernel and channel counts outside it, with
              the reason, and backward-weights (not implemented);
- strided:    forwards whose stride s meets 2s + 1 to 3s taps run as their polyphase components'
              stride-1 problem: 60 random configurations (1-D and 2-D, mixed strides and 1-tap
              phases, groups, padding modes), a 3-D one, AlexNet's conv1 with bits equal across
              threads, chunks of images and plans; the data gradient declines strides;
- execution:  results bit-identical on 1 and 2 threads and under a workspace limit that forces
              bands of tile rows; plans equal the functional call bit for bit.
"""

from fractions import Fraction

import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv import functional as F
from fastconv import grad as G
from conftest import ISAS, fail_if, tolerance_for
from reference import conv_input_grad, conv_reference, normalized_error

VARIANTS = {2: "winograd_f2x3", 4: "winograd_f4x3", 6: "winograd_f6x3"}
NAMES = list(VARIANTS.values()) + ["winograd"]
POINTS = {2: [0, 1, -1], 4: [0, 1, -1, 2, -2],
          6: [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)]}
CONV = {1: F.conv1d, 2: F.conv2d}
INPUT_GRAD = {1: G.conv1d_input, 2: G.conv2d_input}
DTYPES = [np.float32, np.float64]


def dtype_id(d):
    return np.dtype(d).name


# ------------------------------------------------------------------------------- matrices
def _polymul(a, b):
    r = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            r[i + j] += x * y
    return r


def toom_cook(m):
    """AT, G, BT of F(m, 3) from its points, in exact fractions (Lavin & Gray, section 4)."""
    pts = [Fraction(p) for p in POINTS[m]]
    a = m + 2
    AT = [[Fraction(0)] * a for _ in range(m)]
    Gm = [[Fraction(0)] * 3 for _ in range(a)]
    BT = [[Fraction(0)] * a for _ in range(a)]
    for i, f in enumerate(pts):
        others = [g for j, g in enumerate(pts) if j != i]
        norm = Fraction(1)
        poly = [Fraction(1)]
        for g in others:
            norm *= f - g
            poly = _polymul(poly, [-g, Fraction(1)])
        for k in range(m):
            AT[k][i] = f ** k
        for k in range(3):
            Gm[i][k] = f ** k / norm
        BT[i][:len(poly)] = poly
    full = [Fraction(1)]
    for g in pts:
        full = _polymul(full, [-g, Fraction(1)])
    AT[m - 1][a - 1] = Fraction(1)
    Gm[a - 1][2] = Fraction(1)
    BT[a - 1] = full
    return [np.array([[float(v) for v in row] for row in M]) for M in (AT, Gm, BT)]


@pytest.mark.parametrize("m", [2, 4, 6])
def test_matrices_from_points(m):
    got = _core.winograd_matrices(m)
    AT, Gm, BT = toom_cook(m)
    np.testing.assert_array_equal(got["AT"], AT)
    np.testing.assert_array_equal(got["BT"], BT)
    np.testing.assert_allclose(got["G"], Gm, rtol=1e-15, atol=0)
    rng = np.random.default_rng(m)
    for _ in range(20):
        d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
        y = got["AT"] @ ((got["G"] @ g) * (got["BT"] @ d))
        np.testing.assert_allclose(y, [d[k:k + 3] @ g for k in range(m)], rtol=0, atol=1e-13)


def test_matrices_reject_other_tiles():
    for m in (0, 3, 8):
        with pytest.raises(ValueError, match="expected m in"):
            _core.winograd_matrices(m)


# ------------------------------------------------------------------------------- kernels
def _explicit(kind, m, axes, data):
    """The transform as a matrix product per lane, in float64."""
    mats = _core.winograd_matrices(m)
    L = {"input": mats["BT"], "weight": mats["G"], "output": mats["AT"]}[kind]
    eye = np.ones((1, 1))  # an axis with one tap
    Lh = L if axes != "w" else eye
    Lw = L if axes != "h" else eye
    return np.einsum("ip,pql,jq->ijl", Lh, data.astype(np.float64), Lw)


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_transform_kernels_are_their_matrix_products(isa_name, dtype):
    rng = np.random.default_rng(7)
    lanes = _core.winograd_lanes(isa_name, dtype)
    problems = []
    for m in (2, 4, 6):
        for axes in ("hw", "w", "h"):
            for kind in ("input", "weight", "output"):
                h, w = axes != "w", axes != "h"
                shape = ((3 if h else 1, 3 if w else 1) if kind == "weight"
                         else (m + 2 if h else 1, m + 2 if w else 1))
                data = rng.standard_normal(shape + (lanes,)).astype(dtype)
                got = _core.winograd_transform(isa_name, m, axes, kind, data)
                want = _explicit(kind, m, axes, data)
                scale = np.abs(want).max()
                err = np.abs(got - want).max() / scale
                tol = 1e-6 if dtype == np.float32 else 1e-14
                if not (got.shape == want.shape and err <= tol):
                    problems.append(f"{isa_name} {dtype_id(dtype)} F({m},3) {axes} {kind}: "
                                    f"shape {got.shape} vs {want.shape}, error {err:.2e}")
    fail_if(problems)


def test_transform_rejects_bad_arguments():
    x = np.zeros((6, 6, _core.winograd_lanes("scalar", np.float32)), np.float32)
    with pytest.raises(ValueError, match="expected kind"):
        _core.winograd_transform("scalar", 4, "hw", "forward", x)
    with pytest.raises(ValueError, match="expected axes"):
        _core.winograd_transform("scalar", 4, "wh", "input", x)
    with pytest.raises(ValueError, match="expected data of shape"):
        _core.winograd_transform("scalar", 2, "hw", "input", x)
    with pytest.raises(ValueError):
        _core.winograd_transform("sse9", 4, "hw", "input", x)


# ------------------------------------------------------------------------------- accuracy
def random_config(rng, rank):
    """A 3-tap stride-1 problem Winograd takes: (x_shape, w_shape, kwargs)."""
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    Cg, Kg = int(rng.integers(4, 41)), int(rng.integers(4, 41))
    N = int(rng.choice([1, 1, 2, 3]))
    sp = tuple(int(rng.integers(1, 30)) for _ in range(rank))
    if rank == 2 and rng.random() < 0.2:  # 1 x 3 or 3 x 1 kernels: 1-D along one axis
        kernel = (1, 3) if rng.random() < 0.5 else (3, 1)
    else:
        kernel = (3,) * rank
    padding = tuple(int(rng.integers(0, 3)) if k == 3 else int(rng.integers(0, 2)) for k in kernel)
    mode = str(rng.choice(["zeros", "zeros", "zeros", "reflect", "replicate", "circular"]))
    if mode != "zeros":  # torch's limits on the other modes: padding below the input size
        padding = tuple(min(p, s - 1) for p, s in zip(padding, sp))
    sp = tuple(max(s, k - 2 * p) for s, k, p in zip(sp, kernel, padding))
    kwargs = dict(padding=padding, groups=groups, padding_mode=mode)
    return (N, Cg * groups) + sp, (Kg * groups, Cg) + kernel, kwargs


N_RANDOM = 200


def make_cases(seed, count, config, one_d_every):
    """count cases (rank, x, w, b, kwargs) of config(rng, rank): 1-D every one_d_every-th, bias
    on every other."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        rank = 1 if i % one_d_every == 0 else 2
        x_shape, w_shape, kw = config(rng, rank)
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        b = rng.standard_normal(w_shape[0]) if i % 2 else None
        cases.append((rank, x, w, b, kw))
    return cases


@pytest.fixture(scope="module")
def random_cases():
    return make_cases(2026, N_RANDOM, random_config, 4)


def check_forward(name, dtype, cases, record_error, what):
    """Every case within the budget of `name`, its worst error recorded as `what`."""
    problems, worst = [], 0.0
    for i, (rank, x, w, b, kw) in enumerate(cases):
        ref = conv_reference(x, w, b, **kw)
        bd = None if b is None else b.astype(dtype)
        y = CONV[rank](x.astype(dtype), w.astype(dtype), bd, algo=name, **kw)
        err = normalized_error(y, ref)
        worst = max(worst, err)
        if not (y.dtype == dtype and y.shape == ref.shape and err <= tolerance_for(name, dtype)):
            problems.append(f"case {i}: x{x.shape} w{w.shape} {kw}: error {err:.3e}")
    record_error(dtype, name, worst, fastconv.get_isa(), what)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", NAMES)
def test_random_forward(name, dtype, random_cases, record_error):
    check_forward(name, dtype, random_cases, record_error, f"{N_RANDOM} random configs")


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", NAMES)
def test_random_input_grad(name, dtype, random_cases, record_error):
    problems, worst = [], 0.0
    rng = np.random.default_rng(5)
    for i, (rank, x, w, _, kw) in enumerate(random_cases[::2]):
        gy = rng.standard_normal(conv_reference(x, w, None, **kw).shape)
        ref = conv_input_grad(x.shape, w, gy, **kw)
        gx = INPUT_GRAD[rank](x.shape, w.astype(dtype), gy.astype(dtype), algo=name, **kw)
        err = normalized_error(gx, ref)
        worst = max(worst, err)
        if not err <= tolerance_for(name, dtype, "backward_data"):
            problems.append(f"case {2 * i}: x{x.shape} w{w.shape} {kw}: error {err:.3e}")
    record_error(dtype, name, worst, fastconv.get_isa(), f"{N_RANDOM // 2} random configs",
                 entry="input")
    fail_if(problems)


def layer_cases():
    """The 3x3 stride-1 layers of layers.json with C, K >= 64, channels as they are, spatial
    size capped at 20 (every tile size still meets partial tiles)."""
    from conftest import load_layers
    cases = []
    for l in load_layers("conv"):
        if l["kernel"] != [3, 3] or l["stride"] != [1, 1] or l["groups"] != 1 or l["C"] < 64:
            continue
        H = min(l["input"][0], 20)
        cases.append((l["name"], (min(l["N"], 2), l["C"], H, H), (l["K"], l["C"], 3, 3)))
    return cases


@pytest.mark.parametrize("m", [2, 4, 6])
def test_layers_full_channels(m, record_error):
    """float32 at full channel counts: the longest reductions the budget is stated for."""
    problems = []
    rng = np.random.default_rng(m)
    cases = layer_cases()
    assert len(cases) >= 8
    for name, x_shape, w_shape in cases:
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape) / np.sqrt(9 * w_shape[1])
        ref = conv_reference(x, w, None, padding=1)
        y = F.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1, algo=VARIANTS[m])
        err = normalized_error(y, ref)
        record_error(np.float32, VARIANTS[m], err, fastconv.get_isa(), name)
        if not err <= tolerance_for(VARIANTS[m], np.float32):
            problems.append(f"{name} x{x_shape}: error {err:.3e}")
    fail_if(problems)


# ------------------------------------------------------------------------------- NaN / Inf
def reach(m):
    """reach[k, p]: whether input p of an F(m, 3) tile's span can reach its output k through the
    transforms (the kernels skip zero coefficients: 0 x NaN never happens inside a tile)."""
    mats = _core.winograd_matrices(m)
    return (np.abs(mats["AT"]) @ np.abs(mats["BT"])) > 0


def tile_closure(bad_input, m, padding, out_shape):
    """Outputs that F(m, 3) tiles (anchored at output 0) can make non-finite: those that a
    non-finite input reaches within each tile whose input span holds it. bad_input (C, H, W)
    booleans of the unpadded input, padding (ph, pw)."""
    ph, pw = padding
    OH, OW = out_shape
    R = reach(m)
    hit = np.zeros((OH + m, OW + m), bool)
    rows, cols = np.nonzero(bad_input.any(axis=0))
    for r, c in zip(rows + ph, cols + pw):  # padded coordinates
        for th in range((OH + m - 1) // m):
            for tw in range((OW + m - 1) // m):
                i, j = r - th * m, c - tw * m
                if 0 <= i < m + 2 and 0 <= j < m + 2:
                    hit[th * m:th * m + m, tw * m:tw * m + m] |= np.outer(R[:, i], R[:, j])
    return hit[:OH, :OW]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("m", [2, 4, 6])
def test_non_finite_input_spreads_over_its_tiles(m, value, isa):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 8, 17, 19)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    x[0, 3, 6, 9] = value
    x[0, 5, 16, 0] = value
    y = F.conv2d(x, w, padding=1, algo=VARIANTS[m])
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64), None, padding=1)
    expect = tile_closure(~np.isfinite(x[0]), m, (1, 1), y.shape[2:])
    got = ~np.isfinite(y[0])
    assert (~np.isfinite(ref[0]) <= got).all(), "a non-finite output of the definition was lost"
    assert np.array_equal(got, np.broadcast_to(expect, got.shape)), (
        f"non-finite outputs {int(got.sum())}, tiles' outputs {int(expect.sum()) * 8}")
    fin = ~got
    assert normalized_error(np.where(fin, y, 0), np.where(fin, ref, 0)) <= 5e-5


@pytest.mark.parametrize("direction", ["forward", "backward_data"])
def test_auto_keeps_the_definitions_pattern(direction):
    """A layer where `auto` picks Winograd: with a NaN / Inf in its input, the NaN and Inf
    positions are the reference's (the call is computed by the exact alternative)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 64, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    plan = fastconv.plan(w, padding=1)
    assert plan.prepare(x.shape)["algo"].startswith("winograd")
    resolved = _core.conv_algorithm(2, direction, x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1,
                                    "zeros", np.float32, "auto")
    assert resolved.startswith("winograd"), resolved  # else the fallback would go untested
    gy = rng.standard_normal((1, 64, 24, 24)).astype(np.float32)
    for value in (np.nan, np.inf):
        if direction == "forward":
            xs = x.copy()
            xs[0, 7, 5, 11] = value
            xs[0, 9, 23, 23] = value
            ref = conv_reference(xs.astype(np.float64), w.astype(np.float64), None, padding=1)
            outs = [F.conv2d(xs, w, padding=1), plan(xs)]
        else:
            gs = gy.copy()
            gs[0, 7, 5, 11] = value
            ref = conv_input_grad(x.shape, w.astype(np.float64), gs.astype(np.float64), padding=1)
            outs = [G.conv2d_input(x.shape, w, gs, padding=1)]
        for y in outs:
            for mask in (np.isnan, np.isposinf, np.isneginf):
                assert np.array_equal(mask(y), mask(ref)), (value, mask.__name__)
            fin = np.isfinite(ref)
            assert normalized_error(y[fin], ref[fin]) <= tolerance_for("auto", np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_weight_in_the_data_gradient(name):
    """The data gradient pads dy with zeros that would meet an Inf weight (0 x Inf = NaN where
    the definition has no term): such weights run the direct algorithm."""
    rng = np.random.default_rng(13)
    w = rng.standard_normal((8, 8, 3, 3))
    w[2, 3, 0, 1] = np.inf
    gy = rng.standard_normal((1, 8, 9, 10))
    gx = G.conv2d_input((1, 8, 9, 10), w, gy, padding=1, algo=name)
    direct = G.conv2d_input((1, 8, 9, 10), w, gy, padding=1, algo="direct")
    assert np.array_equal(gx, direct, equal_nan=True)


# ------------------------------------------------------------------------------- domain
DECLINED = [  # (x_shape, w_shape, kwargs, fragment of the reason)
    ((1, 8, 9, 9), (8, 8, 3, 3), dict(stride=2), "polyphase components (kernel [2, 2]"),
    ((1, 8, 9, 9), (8, 8, 5, 5), dict(stride=2, dilation=2), "dilation must be 1 along a strided"),
    ((1, 1, 9, 9), (8, 1, 5, 5), dict(stride=(2, 1)), "C/groups = 2"),
    ((1, 8, 9, 9), (8, 8, 3, 3), dict(dilation=2), "dilation must be 1"),
    ((1, 8, 9, 9), (8, 8, 5, 5), dict(), "needs a 3x3 kernel"),
    ((1, 8, 9, 9), (8, 8, 1, 1), dict(), "needs a 3x3 kernel"),
    ((1, 8, 5, 9, 9), (8, 8, 3, 3, 3), dict(), "needs a 3x3 kernel"),
    ((1, 4, 9, 9), (8, 2, 3, 3), dict(groups=2), "at least 4 of each"),
    ((1, 6, 9, 9), (6, 1, 3, 3), dict(groups=6), "at least 4 of each"),
]


@pytest.mark.parametrize("case", range(len(DECLINED)))
@pytest.mark.parametrize("name", NAMES)
def test_declines_with_the_reason(name, case):
    x_shape, w_shape, kw, fragment = DECLINED[case]
    conv = {4: F.conv2d, 5: F.conv3d}[len(x_shape)]
    with pytest.raises(ValueError, match="does not support this problem") as e:
        conv(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), algo=name, **kw)
    assert fragment in str(e.value)


@pytest.mark.parametrize("name", NAMES)
def test_backward_weights_declined(name):
    assert name not in fastconv.algorithms("backward_weights")
    with pytest.raises(ValueError, match="does not implement backward_weights"):
        G.conv2d_weight(np.zeros((1, 8, 9, 9), np.float32), (8, 8, 3, 3),
                        np.zeros((1, 8, 9, 9), np.float32), padding=1, algo=name)
    dw = G.conv2d_weight(np.ones((1, 8, 9, 9), np.float32), (8, 8, 3, 3),
                         np.ones((1, 8, 9, 9), np.float32), padding=1)  # auto: another algo
    assert dw.shape == (8, 8, 3, 3) and np.isfinite(dw).all()


# ------------------------------------------------------------------------------- execution
@pytest.mark.parametrize("name", NAMES)
def test_threads_and_workspace_limit_do_not_change_bits(name, threads_restored):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 16, 23, 29)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 24, 23, 29)).astype(np.float32)
    old_limit = fastconv.get_workspace_limit()
    outs = []
    try:
        for threads, limit in ((1, 0), (2, 0), (1, 1), (2, 1)):  # 1 byte: bands of tile rows
            fastconv.set_num_threads(threads)
            fastconv.set_workspace_limit(limit)
            outs.append((F.conv2d(x, w, padding=1, algo=name).tobytes(),
                         G.conv2d_input(x.shape, w, gy, padding=1, algo=name).tobytes()))
    finally:
        fastconv.set_workspace_limit(old_limit)
    assert all(o == outs[0] for o in outs[1:])


# With transformed weights over 1 MiB, several threads split each run of tiles by output
# blocks (winograd_plan.hpp, ksplit), each task's M holding only its part: 18 output blocks of
# 16 lanes (36 of 8) in groups of NB, parted unevenly among 2, 3 and 4 threads. The bits equal
# 1 thread's and the plan's.
@pytest.mark.parametrize("name", ["winograd_f2x3", "winograd_f4x3"])
def test_output_blocks_split_among_threads(name, threads_restored, record_error):
    rng = np.random.default_rng(25)
    x = rng.standard_normal((1, 64, 20, 20)).astype(np.float32)
    w = rng.standard_normal((288, 64, 3, 3)).astype(np.float32)
    b = rng.standard_normal(288).astype(np.float32)
    gy = rng.standard_normal((1, 288, 20, 20)).astype(np.float32)
    outs = []
    for threads in (1, 2, 3, 4):
        fastconv.set_num_threads(threads)
        y = F.conv2d(x, w, b, padding=1, algo=name)
        planned = fastconv.plan(w, b, padding=1, algo=name)(x)
        gx = G.conv2d_input(x.shape, w, gy, padding=1, algo=name)
        assert y.tobytes() == planned.tobytes(), threads
        outs.append((y.tobytes(), gx.tobytes()))
    assert all(o == outs[0] for o in outs[1:])
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                         padding=1)
    err = normalized_error(y, ref)
    record_error(np.float32, name, err, fastconv.get_isa(), "output blocks split among threads")
    assert err <= tolerance_for(name, np.float32)


# A stateless forward or data gradient whose tiles fit one task, on one chunk of images,
# transforms the weights in its tasks, NB output blocks x one reduction block of input channels
# at a time, instead of writing U whole first (winograd.cpp, transforms_in_tasks). One image of
# at most 64 tiles takes that path for F(2,3) and F(4,3) on 1 and 2 threads; the channels cover
# more than one chunk (256 on every ISA) with a partial last block, channels short of whole
# blocks, groups, and tiles of more output blocks in the plan than in the tasks. The sums are
# U's in U's order: the bits equal the plan's (U packed once) and those under a 1-byte
# workspace limit (bands of tile rows, U written whole).
IN_TASKS_CASES = [  # (C, K, groups, input H x W, kernel)
    (300, 40, 1, (7, 7), (3, 3)),
    # 4 output blocks of 16 over 4 tiles (F(4,3)): the plan's tiles take NB = 4, the tasks
    # transforming the weights 2 (kChunkNb)
    (300, 64, 1, (7, 7), (3, 3)),
    (540, 40, 2, (9, 8), (3, 3)),
    (260, 24, 1, (1, 20), (1, 3)),
    (264, 18, 1, (12, 1), (3, 1)),
]


@pytest.mark.parametrize("case", IN_TASKS_CASES, ids=lambda c: f"C{c[0]}_K{c[1]}_g{c[2]}_k{c[4][0]}x{c[4][1]}")
@pytest.mark.parametrize("name", ["winograd_f2x3", "winograd_f4x3", "winograd"])
def test_weights_transformed_in_tasks(name, case, isa, threads_restored, record_error):
    C, K, groups, hw, kernel = case
    rng = np.random.default_rng(23)
    x = rng.standard_normal((1, C) + hw).astype(np.float32)
    w = rng.standard_normal((K, C // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    pad = tuple(k // 2 for k in kernel)
    kw = dict(padding=pad, groups=groups)
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
    gy = rng.standard_normal(ref.shape).astype(np.float32)
    ref_gx = conv_input_grad(x.shape, w.astype(np.float64), gy.astype(np.float64), **kw)
    err = err_gx = 0.0
    old_limit = fastconv.get_workspace_limit()
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            y = F.conv2d(x, w, b, algo=name, **kw)
            gx = G.conv2d_input(x.shape, w, gy, algo=name, **kw)
            planned = fastconv.plan(w, b, algo=name, **kw)(x)
            fastconv.set_workspace_limit(1)
            banded = F.conv2d(x, w, b, algo=name, **kw)
            banded_gx = G.conv2d_input(x.shape, w, gy, algo=name, **kw)
            fastconv.set_workspace_limit(old_limit)
            assert y.tobytes() == planned.tobytes() == banded.tobytes(), threads
            assert gx.tobytes() == banded_gx.tobytes(), threads
            err = max(err, normalized_error(y, ref))
            err_gx = max(err_gx, normalized_error(gx, ref_gx))
    finally:
        fastconv.set_workspace_limit(old_limit)
    record_error(np.float32, name, err, isa, "weights transformed in tasks")
    record_error(np.float32, name, err_gx, isa, "weights transformed in tasks", entry="input")
    assert err <= tolerance_for(name, np.float32)
    assert err_gx <= tolerance_for(name, np.float32, "backward_data")


def test_weights_transformed_in_tasks_of_two_blocks(isa, threads_restored):
    """VGG-16's conv4_2 (512 -> 512 on 28 x 28), F(4,3): on 2 threads each task transforms
    its half of the output channels' weights, two output blocks at a time (kChunkNb, where a
    plan's tiles may take four): the bits equal the plan's and those on 1 thread."""
    rng = np.random.default_rng(29)
    x = rng.standard_normal((1, 512, 28, 28)).astype(np.float32)
    w = rng.standard_normal((512, 512, 3, 3)).astype(np.float32)
    fastconv.set_num_threads(2)
    y = F.conv2d(x, w, padding=1, algo="winograd_f4x3")
    planned = fastconv.plan(w, padding=1, algo="winograd_f4x3")(x)
    assert y.tobytes() == planned.tobytes()
    fastconv.set_num_threads(1)
    assert F.conv2d(x, w, padding=1, algo="winograd_f4x3").tobytes() == y.tobytes()


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("name", NAMES)
def test_plan_equals_functional(name, activation):
    rng = np.random.default_rng(22)
    x = (rng.standard_normal((2, 20, 13, 15)) * 4).astype(np.float32)
    w = rng.standard_normal((20, 20, 3, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    y = F.conv2d(x, w, b, padding=1, algo=name)
    if activation:
        y = np.minimum(np.maximum(y, 0), 6 if activation == "relu6" else np.inf).astype(np.float32)
    p = fastconv.plan(w, b, padding=1, algo=name, activation=activation)
    assert p(x).tobytes() == y.tobytes()


# ------------------------------------------------------------------------------- strided
# A stride s along an axis of 2s + 1 to 3s taps leaves 3 taps to each of its polyphase
# components (polyphase.hpp): the forward runs as their stride-1 problem, C x phases channels.
def strided_config(rng, rank):
    """A strided problem Winograd takes: (x_shape, w_shape, kwargs)."""
    while True:
        axes = []  # (stride, kernel) per axis
        for _ in range(rank):
            kind = rng.integers(0, 4)
            if kind == 0:
                s = int(rng.integers(2, 5))
                axes.append((s, int(rng.integers(2 * s + 1, 3 * s + 1))))  # 3 taps per phase
            elif kind == 1:
                s = int(rng.integers(2, 4))
                axes.append((s, int(rng.integers(1, s + 1))))  # 1 tap per phase
            else:
                axes.append((1, 3 if kind == 2 else 1))
        taps = [(k + s - 1) // s for s, k in axes]
        if any(s > 1 for s, _ in axes) and 3 in taps:
            break
    stride = tuple(s for s, _ in axes)
    kernel = tuple(k for _, k in axes)
    phases = int(np.prod([min(s, k) if s > 1 else 1 for s, k in axes]))
    groups = int(rng.choice([1, 1, 2]))
    Cg = max(int(rng.integers(1, 7)), -(-4 // phases))  # at least 4 channels of phases
    Kg = int(rng.integers(4, 13))
    N = int(rng.choice([1, 2]))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    mode = str(rng.choice(["zeros", "zeros", "zeros", "reflect", "replicate", "circular"]))
    sp = tuple(int(rng.integers(1, 40)) for _ in range(rank))
    if mode != "zeros":
        sp = tuple(max(s, p + 1) for s, p in zip(sp, padding))
    sp = tuple(max(s, k - 2 * p) for s, k, p in zip(sp, kernel, padding))
    kwargs = dict(stride=stride, padding=padding, groups=groups, padding_mode=mode)
    return (N, Cg * groups) + sp, (Kg * groups, Cg) + kernel, kwargs


N_STRIDED = 60


@pytest.fixture(scope="module")
def strided_cases():
    return make_cases(2027, N_STRIDED, strided_config, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", NAMES)
def test_strided_forward(name, dtype, strided_cases, record_error):
    check_forward(name, dtype, strided_cases, record_error, f"{N_STRIDED} random strided configs")


def test_strided_3d():
    """Depth strided too: a kernel depth within the stride gives each phase one plane."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 3, 7, 17, 16))
    w = rng.standard_normal((6, 3, 2, 9, 3))
    kw = dict(stride=(2, 3, 1), padding=(1, 2, 1))
    y = F.conv3d(x.astype(np.float32), w.astype(np.float32), algo="winograd", **kw)
    assert normalized_error(y, conv_reference(x, w, None, **kw)) <= tolerance_for("winograd", np.float32)


def test_strided_data_gradient_declined():
    w = np.zeros((8, 3, 11, 11), np.float32)
    with pytest.raises(ValueError, match="stride must be 1 \\(in the data gradient\\)"):
        G.conv2d_input((1, 3, 63, 63), w, np.zeros((1, 8, 14, 14), np.float32), stride=4,
                       algo="winograd")
    gx = G.conv2d_input((1, 3, 63, 63), w, np.ones((1, 8, 14, 14), np.float32), stride=4)
    assert gx.shape == (1, 3, 63, 63)  # auto: another algorithm


# AlexNet's conv1 (11 x 11 / 4 on 3 channels): 16 phases of 3 x 3 on 48 channels.
ALEXNET_CONV1 = ((1, 3, 67, 67), (16, 3, 11, 11), dict(stride=4, padding=2))


@pytest.mark.parametrize("name", NAMES)
def test_strided_threads_limit_and_plan_keep_bits(name, threads_restored):
    """Thread counts, chunks of images (a 1-byte workspace limit: one image at a time) and a
    plan's packed weights give the same bits."""
    rng = np.random.default_rng(32)
    x = rng.standard_normal((3, 3, 67, 67)).astype(np.float32)
    w = rng.standard_normal(ALEXNET_CONV1[1]).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    kw = ALEXNET_CONV1[2]
    old_limit = fastconv.get_workspace_limit()
    outs = []
    try:
        for threads, limit in ((1, 0), (2, 0), (1, 1), (2, 1)):
            fastconv.set_num_threads(threads)
            fastconv.set_workspace_limit(limit)
            outs.append(F.conv2d(x, w, b, algo=name, **kw).tobytes())
            outs.append(fastconv.plan(w, b, algo=name, **kw)(x).tobytes())
    finally:
        fastconv.set_workspace_limit(old_limit)
    assert all(o == outs[0] for o in outs[1:])
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
    assert normalized_error(np.frombuffer(outs[0], np.float32).reshape(ref.shape), ref) <= \
        tolerance_for(name, np.float32)


def test_strided_auto_keeps_the_definitions_pattern():
    """`auto` runs AlexNet's conv1 by Winograd (on AVX-512: its bits are F(4,3)'s); a NaN anywhere
    in the input sends it, stateless or planned, to an exact algorithm, whose outputs are NaN
    only where the definition's are, where Winograd itself spreads the NaN over its tiles."""
    rng = np.random.default_rng(33)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    w = rng.standard_normal((64, 3, 11, 11)).astype(np.float32)
    kw = ALEXNET_CONV1[2]
    if fastconv.get_isa() == "avx512":
        assert np.array_equal(F.conv2d(x, w, **kw), F.conv2d(x, w, algo="winograd_f4x3", **kw))
    x[0, 1, 100, 100] = np.nan
    exact = np.isnan(F.conv2d(x, w, algo="direct", **kw))
    assert exact.any()
    assert np.array_equal(np.isnan(F.conv2d(x, w, **kw)), exact)
    assert np.array_equal(np.isnan(fastconv.plan(w, **kw)(x)), exact)
    assert np.isnan(F.conv2d(x, w, algo="winograd_f4x3", **kw)).sum() > exact.sum()


def test_auto_runs_alexnet_conv1_by_winograd():
    """The cost model picks Winograd on AlexNet's first layer (bench/RESULTS.md: faster than the
    direct algorithm and the peers) where the cores have two FMA pipes, and its packed weights
    are those of the 48-channel polyphase problem."""
    w = np.zeros((64, 3, 11, 11), np.float32)
    info = fastconv.plan(w, stride=4, padding=2).prepare((1, 3, 224, 224))
    if fastconv.get_isa() == "avx512":
        assert info["algo"].startswith("winograd"), info["algo"]
    planned = fastconv.plan(w, stride=4, padding=2, algo="winograd_f4x3").prepare((1, 3, 224, 224))
    assert planned["packed_bytes"] >= 36 * 48 * 64 * 4  # U of F(4,3): 36 points, 48 x 64
