"""fastconv.plan / ConvPlan: prepacked forward convolution with fused bias and activation.

(1) Seeded random configurations (conv_configs.draw_conv_config, 200 per spatial rank) over
    every forward algorithm plus 'auto', every ISA, float32/float64, each activation (None,
    'relu', 'relu6'): the plan's output equals act(float64 reference) within the forward
    accuracy budget of DESIGN.md (conftest.tolerance_for), and is bit-identical to
    act(functional.conv<N>d(..., algo=algo)) (for activation None: to the functional result
    itself), i.e. the plan runs the same kernels and the fused clamp is the exact max/min. For
    'auto' the functional call names the algorithm the plan resolved (prepare()['algo']): a plan
    packs its weights once, so `auto` may pick an algorithm whose weight packing a stateless call
    would not repay (Winograd's weight transform).
(2) NaN: NaN in the input (or bias) stays NaN under relu / relu6; large values clamp to 6.
(3) Reuse: repeated calls, several input shapes, more than ConvPlan.max_shapes shapes (LRU),
    the plan's own copies of weight / bias, prepare()'s report.
(4) The plan keeps the ISA it was created with.
(5) Concurrent calls from Python threads give the serial results.
(6) Argument validation (exception type and message).
(7) Empty batch; zero input channels (output = activated bias).

Errors of (1) are normalised by the *pre-activation* reference scale: relu / relu6 are
1-Lipschitz, so |act(y) - act(ref)| <= |y - ref| and the forward budget applies unchanged (the
clamped reference alone can be much smaller than the values the rounding error scales with).
They are recorded under the entry point 'plan' of the worst-error summary.
"""

import threading

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import (ALGOS_BY_DIRECTION, ISAS, fail_if, layout_problems, skip_if_declined,
                      spreads_non_finite, tolerance_for, unless_declined)
from conv_configs import draw_conv_config
from reference import conv_output_shape, conv_reference, normalized_error

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DTYPES = [np.float32, np.float64]
FWD_ALGOS = list(ALGOS_BY_DIRECTION["forward"])
PLAN_ALGOS = FWD_ALGOS + ["auto"]
ACTIVATIONS = [None, "relu", "relu6"]
HIGHEST_ISA = ISAS[-1]  # info()['isas'] lists scalar first, the widest ISA last


def dtype_id(d):
    return np.dtype(d).name


def act_ref(y, activation):
    """The activation in float64 (NaN stays NaN: np.maximum / np.minimum propagate it)."""
    if activation is None:
        return y
    y = np.maximum(y, 0.0)
    return np.minimum(y, 6.0) if activation == "relu6" else y


def plan_algo(algo, w, b, x_shape, **kwargs):
    """The algorithm a plan of (w, b, kwargs) runs on x_shape: algo itself unless 'auto'."""
    if algo != "auto":
        return algo
    return fastconv.plan(w, b, algo="auto", **kwargs).prepare(x_shape)["algo"]


def act_same_dtype(y, activation):
    """The activation applied to a fastconv result in its own dtype (exact, NaN kept)."""
    if activation is None:
        return y
    y = np.maximum(y, y.dtype.type(0))
    return np.minimum(y, y.dtype.type(6)) if activation == "relu6" else y


def f32(a):
    """float64 array holding float32-representable values (one reference for both dtypes)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# =========================================================================== (1) random configs
N_RANDOM = 200
RANDOM_MAC_BUDGET = 60_000


def _macs(x_shape, w_shape, kwargs, rank):
    kw = {k: kwargs[k] for k in ("stride", "padding", "dilation") if k in kwargs}
    out = conv_output_shape(x_shape, w_shape, **kw)
    n = out[0] if len(x_shape) == rank + 2 else 1
    return n * int(np.prod(out[-rank - 1:])) * int(np.prod(w_shape[1:]))


def random_plan_case(rank, index):
    """Seeded configuration `index` of spatial rank `rank`: (x, w, b, kwargs) as float64 arrays
    of float32-representable values. Weights are scaled by the fan-in so that outputs have a
    standard deviation of about 4: relu clamps about half of them and relu6 a good share."""
    rng = np.random.default_rng([20250301, rank, index])
    for _ in range(1000):
        x_shape, w_shape, kwargs = draw_conv_config(rng, rank)
        if _macs(x_shape, w_shape, kwargs, rank) <= RANDOM_MAC_BUDGET:
            break
    else:  # pragma: no cover - the generator's sizes are small
        raise RuntimeError("could not draw a configuration within the MAC budget")
    fan_in = max(1, int(np.prod(w_shape[1:])))
    x = f32(rng.uniform(-1.0, 1.0, size=x_shape))
    w = f32(rng.uniform(-1.0, 1.0, size=w_shape) * (12.0 / np.sqrt(fan_in)))
    b = f32(rng.uniform(-3.0, 3.0, size=w_shape[0])) if rng.random() < 0.5 else None
    return x, w, b, kwargs


def _describe(rank, index, x, w, b, kwargs):
    return (f"random_plan_case({rank}, {index}): conv{rank}d(x{x.shape}, w{w.shape}, "
            f"bias={None if b is None else b.shape}, "
            f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")


RANDOM_IDS = [(r, i) for r in (1, 2, 3) for i in range(N_RANDOM)]


@pytest.mark.parametrize("rank,index", RANDOM_IDS, ids=[f"r{r}-{i:03d}" for r, i in RANDOM_IDS])
def test_random(rank, index, record_error, record_declined):
    x64, w64, b64, kwargs = random_plan_case(rank, index)
    case = _describe(rank, index, x64, w64, b64, kwargs)
    ref = conv_reference(x64, w64, b64, **kwargs)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    conv = CONV[rank]
    problems = []
    prev = fastconv.get_isa()
    try:
        for isa in ISAS:
            fastconv.set_isa(isa)
            for dtype in DTYPES:
                x, w = x64.astype(dtype), w64.astype(dtype)
                b = None if b64 is None else b64.astype(dtype)
                for algo in PLAN_ALGOS:
                    where = f"[algo={algo}, isa={isa}, dtype={dtype_id(dtype)}] {case}"
                    try:
                        y_fun = conv(x, w, b, algo=plan_algo(algo, w, b, x.shape, **kwargs),
                                     **kwargs)
                    except ValueError as e:
                        if algo != "auto" and "does not support" in str(e):
                            record_declined(algo)  # documented refusal, the plan must agree
                            with pytest.raises(ValueError, match="does not support"):
                                fastconv.plan(w, b, algo=algo, **kwargs)(x)
                            continue
                        raise
                    tol = tolerance_for(algo, dtype)
                    for act in ACTIVATIONS:
                        wh = f"{where} activation={act!r}"
                        try:
                            y = fastconv.plan(w, b, algo=algo, activation=act, **kwargs)(x)
                        except Exception as e:  # noqa: BLE001 - report with the config
                            problems.append(f"{wh}: raised {type(e).__name__}: {e}")
                            continue
                        probs, err = _check_plan_output(y, ref, scale, act, dtype, tol, wh)
                        problems += probs
                        if err is not None:
                            record_error(dtype, algo, err, isa, f"r{rank}-{index:03d} {act}",
                                         entry="plan")
                        if y.shape != ref.shape:
                            continue
                        expect = act_same_dtype(y_fun, act)
                        if y.tobytes() != expect.tobytes():
                            diff = int(np.sum(y != expect))
                            fun = f"functional.conv{rank}d(algo={algo!r})"
                            problems.append(f"{wh}: not bit-identical to "
                                            f"{fun if act is None else f'{act}({fun})'} "
                                            f"({diff} of {y.size} elements differ)")
    finally:
        fastconv.set_isa(prev)
    fail_if(problems)


def _check_plan_output(y, ref, scale, act, dtype, tol, where):
    """ndarray of the dtype, reference shape, C-contiguous, NaN-free, and
    err = max|y - act(ref)| / max|ref| <= tol (pre-activation scale; absolute when ref == 0).
    Returns (problems, err); err is None when it could not be measured."""
    problems = layout_problems(y, ref, dtype, where)
    if problems:
        return problems, None
    if y.size == 0:
        return problems, 0.0
    if np.isnan(y).any():
        return problems + [f"{where}: NaN in output at "
                           f"{np.argwhere(np.isnan(y))[:5].tolist()}"], None
    target = act_ref(ref, act)
    diff = np.abs(y.astype(np.float64) - target)
    err = float(np.max(diff)) / (scale if scale > 0 else 1.0)
    if not err <= tol:
        idx = np.unravel_index(np.argmax(diff), ref.shape)
        problems.append(f"{where}: normalised error {err:.3e} > {tol:.1e} (worst at "
                        f"{tuple(int(i) for i in idx)}: got {y[idx]!r}, ref {target[idx]!r}, "
                        f"pre-activation ref {ref[idx]!r})")
    if act is not None and (y < 0).any():
        problems.append(f"{where}: negative output after {act}")
    if act == "relu6" and (y > 6).any():
        problems.append(f"{where}: output above 6 after relu6")
    return problems, err


def test_random_configs_cover_everything():
    """The random set exercises every parameter and both clamps of relu6."""
    seen = {"mode": set(), "pad": set(), "stride": set(), "dilation": set(), "batch": set(),
            "bias": set(), "grouped": 0, "depthwise": 0}
    clamped_low = clamped_high = 0
    for rank, index in RANDOM_IDS:
        x, w, b, kw = random_plan_case(rank, index)
        seen["mode"].add(kw.get("padding_mode", "zeros"))
        p = kw["padding"]
        seen["pad"].add(p if isinstance(p, str) else type(p).__name__)
        for key in ("stride", "dilation"):
            v = kw.get(key, 1)
            seen[key].update([v] if isinstance(v, int) else v)
        seen["batch"].add("unbatched" if x.ndim == rank + 1 else
                          ("N0" if x.shape[0] == 0 else "batched"))
        seen["bias"].add(b is not None)
        G = kw.get("groups", 1)
        seen["depthwise" if G > 1 and w.shape[1] == 1 else "grouped"] += G > 1
        if index % 10 == 0 and x.size:
            ref = conv_reference(x, w, b, **kw)
            clamped_low += int((ref < 0).sum())
            clamped_high += int((ref > 6).sum())
    assert seen["mode"] == {"zeros", "reflect", "replicate", "circular"}
    assert seen["pad"] == {"int", "tuple", "same", "valid"}
    assert seen["stride"] == {1, 2, 3} and seen["dilation"] == {1, 2, 3}
    assert seen["batch"] == {"unbatched", "N0", "batched"}
    assert seen["bias"] == {True, False}
    assert seen["grouped"] >= 10 and seen["depthwise"] >= 10, seen
    assert clamped_low > 100 and clamped_high > 100, (clamped_low, clamped_high)


# ------------------------------------------------- long reductions (several GEMM K blocks)
LONG_CASES = {
    # name: (x_shape, w_shape, kwargs); C/groups x kernel > 256 = the GEMM reduction block, so
    # the clamp must wait for the last block (a clamped partial sum would be wrong)
    "2d_C64_3x3": ((1, 64, 7, 9), (12, 64, 3, 3), dict(padding=1)),
    "1d_C40_k17": ((2, 40, 30), (9, 40, 17), dict(padding=8)),
    "3d_C12_3x3x3": ((1, 12, 4, 5, 5), (5, 12, 3, 3, 3), dict(padding=(1, 1, 1))),
    "2d_g2_C2x80_3x3": ((1, 160, 6, 6), (6, 80, 3, 3), dict(padding=1, groups=2)),
}
# Outputs over kStreamOutputBytes (512 KiB) in float32, which gemm writes with non-temporal
# stores where the rows start on vector boundaries (64 x 64 planes) and with plain stores where
# they do not (61 x 67); the bias and clamp must be those of the plain path.
LARGE_OUTPUT_CASES = {
    "2d_large_aligned_rows": ((1, 3, 64, 64), (48, 3, 3, 3), dict(padding=1)),
    "2d_large_unaligned_rows": ((1, 3, 61, 67), (40, 3, 3, 3), dict(padding=1)),
}


def test_outputs_are_vector_aligned():
    """New arrays start on a 64-byte boundary (what the non-temporal stores need)."""
    x = np.ones((1, 2, 5, 7), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    for y in (F.conv2d(x, w), F.max_pool2d(x, 2), fastconv.plan(w)(x)):
        assert y.ctypes.data % 64 == 0 and y.flags.c_contiguous and y.flags.owndata is False
        assert y.base is not None  # the memory's owner


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(LONG_CASES) + sorted(LARGE_OUTPUT_CASES))
def test_long_reduction_and_large_output(name, dtype, isa, record_error):
    x_shape, w_shape, kwargs = {**LONG_CASES, **LARGE_OUTPUT_CASES}[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = f32(rng.uniform(-1, 1, x_shape))
    w = f32(rng.uniform(-1, 1, w_shape) * 12.0 / np.sqrt(np.prod(w_shape[1:])))
    b = f32(rng.uniform(-3, 3, w_shape[0]))
    ref = conv_reference(x, w, b, **kwargs)
    scale = float(np.max(np.abs(ref)))
    assert (ref < 0).any() and (ref > 6).any()
    rank = len(w_shape) - 2
    xd, wd, bd = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    problems = []
    for algo in PLAN_ALGOS:
        y_fun = unless_declined(algo, lambda: CONV[rank](
            xd, wd, bd, algo=plan_algo(algo, wd, bd, xd.shape, **kwargs), **kwargs))
        if y_fun is None:
            continue
        for act in ACTIVATIONS:
            where = f"[{name}, algo={algo}, isa={isa}, {dtype_id(dtype)}, activation={act!r}]"
            y = fastconv.plan(wd, bd, algo=algo, activation=act, **kwargs)(xd)
            probs, err = _check_plan_output(y, ref, scale, act, dtype,
                                            tolerance_for(algo, dtype), where)
            problems += probs
            if err is not None:
                record_error(dtype, algo, err, isa, f"{name} {act}", entry="plan")
            if y.tobytes() != act_same_dtype(y_fun, act).tobytes():
                problems.append(f"{where}: not bit-identical to act(functional)")
    fail_if(problems)


# Outputs over 512 KiB: written past the caches by default, through them with
# output_stores='cache' (fastconv.nn's layers); GEMM by packed and in-place B, the direct
# algorithm's blocked path, Winograd; a residual and a second-pass activation.
OUTPUT_STORES_CASES = {
    "1x1_64to256": ((2, 64, 56, 56), (256, 64, 1, 1), dict()),
    "1x1_144to24": ((2, 144, 56, 56), (24, 144, 1, 1), dict()),
    "3x3_32to64": ((1, 32, 60, 61), (64, 32, 3, 3), dict(padding=1)),
    "3x3_s2_64to128": ((2, 64, 58, 56), (128, 64, 3, 3), dict(stride=2, padding=1)),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(OUTPUT_STORES_CASES))
def test_output_stores_write_the_same_values(name, threads, threads_restored):
    """output_stores='cache' changes how a large output is written, not its values: bit for
    bit those of the default 'stream', for each algorithm that takes the layer."""
    x_shape, w_shape, kwargs = OUTPUT_STORES_CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    threads_restored(threads)
    problems, ran = [], 0
    for algo in ["auto"] + ALGOS_BY_DIRECTION["forward"]:
        try:
            stream = fastconv.plan(w, b, algo=algo, activation="relu", **kwargs)
        except ValueError:  # an algorithm that does not take this layer
            continue
        cache = fastconv.plan(w, b, algo=algo, activation="relu", output_stores="cache",
                              **kwargs)
        assert (stream.output_stores, cache.output_stores) == ("stream", "cache")
        y = stream(x)
        assert y.nbytes > 512 << 10
        r = rng.standard_normal(y.shape).astype(np.float32)
        for what, a, c in (("plain", y, cache(x)), ("residual", stream(x, residual=r),
                                                     cache(x, residual=r))):
            if a.tobytes() != c.tobytes():
                problems.append(f"[{name}, algo={algo}, {threads} threads, {what}] 'cache' "
                                "output differs from 'stream'")
        ran += 1
    assert ran >= 2
    fail_if(problems)


def test_output_stores_invalid():
    for bad in ("Cache", "none", None, 1):
        with pytest.raises(ValueError, match="output_stores must be 'stream' or 'cache'"):
            fastconv.plan(W32, output_stores=bad)


def test_nn_layers_write_outputs_through_the_caches():
    """A layer inside a network: its next layer reads the output at once."""
    from fastconv import nn
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.eval()
    with nn.no_grad():
        conv(np.ones((1, 3, 8, 8), np.float32))
    assert conv._plan is not None and conv._plan.output_stores == "cache"


# =========================================================================== (2) NaN and clamps
NAN_CASES = {
    # name: (x_shape, w_shape, kwargs): GEMM full and partial tiles, direct (packed and
    # depthwise planes), 1-D / 3-D, a long reduction, padding modes that copy the NaN
    "2d_C5_K7": ((2, 5, 9, 11), (7, 5, 3, 3), dict(padding=1)),
    "2d_C3_K20_s2": ((1, 3, 12, 13), (20, 3, 3, 3), dict(stride=2, padding=(1, 2))),
    "2d_dw": ((1, 6, 8, 9), (12, 1, 3, 3), dict(padding=1, groups=6)),
    "2d_reflect": ((1, 4, 7, 8), (5, 4, 3, 3), dict(padding=1, padding_mode="reflect")),
    "1d_k5_d2": ((2, 3, 30), (4, 3, 5), dict(padding="same", dilation=2)),
    "3d": ((1, 3, 4, 5, 6), (4, 3, 2, 3, 3), dict(padding=1, padding_mode="circular")),
    "2d_long_C40": ((1, 40, 6, 7), (9, 40, 3, 3), dict(padding=1)),
}


def _nan_case(name):
    x_shape, w_shape, kwargs = NAN_CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    x = f32(rng.uniform(-1, 1, x_shape))
    # weights without zeros (0 * NaN is NaN in the reference: every tap must reach the NaN)
    w = f32(rng.uniform(0.25, 1.0, w_shape) * rng.choice([-1.0, 1.0], w_shape)
            * 10.0 / np.sqrt(np.prod(w_shape[1:])))
    b = f32(rng.uniform(-3, 3, w_shape[0]))
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, size=2, replace=False):
        flat[i] = np.nan
    return x, w, b, kwargs


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(NAN_CASES))
def test_nan_input(name, dtype, isa):
    """NaN in the input: NaN exactly where the reference is NaN, for every activation (relu
    must not turn NaN into 0, relu6 not into 0 or 6); elsewhere within the budget. Algorithms
    whose transforms spread a NaN over a tile (Winograd, named) keep every NaN of the reference
    and may add some (test_winograd.py pins down where); `auto` never spreads."""
    x, w, b, kwargs = _nan_case(name)
    ref = conv_reference(x, w, b, **kwargs)
    nan_ref = np.isnan(ref)
    assert nan_ref.any() and not nan_ref.all()
    rank = w.ndim - 2
    scale = float(np.nanmax(np.abs(ref)))
    problems = []
    for algo in PLAN_ALGOS:
        for act in ACTIVATIONS:
            where = f"[{name}, algo={algo}, isa={isa}, {dtype_id(dtype)}, activation={act!r}]"
            y = unless_declined(algo, lambda: fastconv.plan(
                w.astype(dtype), b.astype(dtype), algo=algo, activation=act,
                **kwargs)(x.astype(dtype)))
            if y is None:
                break
            nan_y = np.isnan(y)
            lost, added = int((nan_ref & ~nan_y).sum()), int((nan_y & ~nan_ref).sum())
            if lost or (added and not spreads_non_finite(algo)):
                problems.append(f"{where}: NaN pattern differs: {lost} NaN lost (values there: "
                                f"{y[nan_ref & ~nan_y][:5]}), {added} NaN added")
                continue
            target = act_ref(ref, act)
            finite = ~nan_y
            err = float(np.max(np.abs(y[finite] - target[finite]), initial=0.0)) / scale
            if not err <= tolerance_for(algo, dtype):
                problems.append(f"{where}: normalised error {err:.3e} on the finite outputs")
            y_fun = CONV[rank](x.astype(dtype), w.astype(dtype), b.astype(dtype), algo=algo,
                               **kwargs)
            if not np.array_equal(y, act_same_dtype(y_fun, act), equal_nan=True):
                problems.append(f"{where}: differs from act(functional)")
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_nan_bias(dtype, isa):
    """A NaN bias entry makes its whole output channel NaN, also under relu / relu6."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (2, 4, 6, 7)).astype(dtype)
    w = rng.uniform(-1, 1, (9, 4, 3, 3)).astype(dtype)
    b = rng.uniform(-1, 1, 9).astype(dtype)
    b[3] = np.nan
    for algo in PLAN_ALGOS:
        for act in ACTIVATIONS:
            y = fastconv.plan(w, b, padding=1, algo=algo, activation=act)(x)
            assert np.isnan(y[:, 3]).all(), (algo, act)
            assert not np.isnan(np.delete(y, 3, axis=1)).any(), (algo, act)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_relu6_clamps_large_values(dtype, isa):
    """Large positive sums become exactly 6 under relu6 (and stay under relu); negative ones 0."""
    rng = np.random.default_rng(12)
    x = rng.uniform(100.0, 1000.0, (2, 6, 7, 9)).astype(dtype)
    w = rng.uniform(0.5, 1.0, (10, 6, 3, 3)).astype(dtype)
    w[1::2] *= -1  # odd output channels: large negative sums
    moderate = x.copy()
    big = np.float32(3e30) if dtype == np.float32 else 1e300
    x[0, 0, 3, 4] = big  # a huge value: still exactly 6 (finite sum, no overflow in float32)
    b = np.linspace(-2, 2, 10).astype(dtype)
    for algo in PLAN_ALGOS:
        p6 = fastconv.plan(w, b, padding=1, algo=algo, activation="relu6")
        # A transform's rounding error scales with its tile's largest input: next to 3e30 the
        # other outputs of a Winograd tile are noise (within the normalised budget, but no
        # longer sure to be > 6), so those algorithms get the moderate values only.
        xa = moderate if spreads_non_finite(p6.prepare(x.shape)["algo"]) else x
        y6 = p6(xa)
        y = fastconv.plan(w, b, padding=1, algo=algo, activation="relu")(xa)
        yn = fastconv.plan(w, b, padding=1, algo=algo)(xa)
        assert (y6[:, 0::2] == 6).all(), algo
        assert (y6[:, 1::2] == 0).all() and not np.signbit(y6).any(), algo
        assert (y[:, 1::2] == 0).all(), algo
        assert np.array_equal(y[:, 0::2], yn[:, 0::2]) and (y[:, 0::2] > 6).all(), algo


# =========================================================================== (3) reuse
def _small_layer(rng, rank=2, C=5, K=7, k=3, dtype=np.float32):
    w = rng.uniform(-1, 1, (K, C) + (k,) * rank).astype(dtype)
    b = rng.uniform(-1, 1, K).astype(dtype)
    return w, b


@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_repeated_calls_identical(algo):
    rng = np.random.default_rng(21)
    w, b = _small_layer(rng)
    x = rng.uniform(-3, 3, (2, 5, 13, 11)).astype(np.float32)
    p = fastconv.plan(w, b, padding=1, algo=algo, activation="relu6")
    y1, y2 = p(x), p(x)
    assert y1 is not y2 and y1.tobytes() == y2.tobytes()
    assert p.forward(x).tobytes() == y1.tobytes()
    y1[...] = -1  # the output is a fresh array, not a buffer the plan reuses
    assert p(x).tobytes() == y2.tobytes()


SHAPES_2D = [(1, 5, 8, 8), (2, 5, 8, 8), (5, 8, 8), (1, 5, 3, 17), (3, 5, 12, 5), (1, 5, 1, 1),
             (2, 5, 9, 10), (1, 5, 16, 16), (4, 5, 2, 3), (1, 5, 7, 4), (2, 5, 5, 5),
             (1, 5, 20, 2)]


@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_several_shapes_and_lru(algo):
    """More distinct input shapes than max_shapes: every call right; evicted shapes (packed
    again) give the same bits as before."""
    assert fastconv.ConvPlan.max_shapes == 8
    assert len(SHAPES_2D) > fastconv.ConvPlan.max_shapes
    rng = np.random.default_rng(22)
    w, b = _small_layer(rng)
    kwargs = dict(padding=1, padding_mode="replicate")
    p = fastconv.plan(w, b, algo=algo, activation="relu", **kwargs)
    xs = [rng.uniform(-1, 1, s).astype(np.float32) for s in SHAPES_2D]
    first = []
    for x in xs:
        y = p(x)
        expect = act_same_dtype(
            F.conv2d(x, w, b, algo=plan_algo(algo, w, b, x.shape, **kwargs), **kwargs), "relu")
        assert y.shape == expect.shape and y.tobytes() == expect.tobytes(), x.shape
        ref = act_ref(conv_reference(x, w, b, **kwargs), "relu")
        assert normalized_error(y, ref) <= tolerance_for(algo, np.float32), x.shape
        first.append(y)
    for _ in range(2):  # the first shapes were evicted long ago; then reverse order
        for x, y in zip(xs, first):
            assert p(x).tobytes() == y.tobytes(), x.shape
        xs, first = xs[::-1], first[::-1]


@pytest.mark.parametrize("prepared", [False, True], ids=["lazy", "prepared"])
@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_plan_owns_weight_and_bias(algo, prepared):
    """Changing the caller's weight / bias after plan() changes nothing, whether the shape was
    packed before the change (prepared) or only after it (lazy), or is yet another shape."""
    rng = np.random.default_rng(23)
    w, b = _small_layer(rng, rank=1, C=4, K=6, k=5)
    w0, b0 = w.copy(), b.copy()
    x = rng.uniform(-1, 1, (2, 4, 19)).astype(np.float32)
    x2 = rng.uniform(-1, 1, (3, 4, 11)).astype(np.float32)
    with skip_if_declined(algo):
        p = fastconv.plan(w, b, padding=2, algo=algo, activation="relu6")
    if prepared:
        p.prepare(x.shape)
    w[...] = 100.0
    b[...] = -50.0
    w[0, 0, 0] = np.nan
    for xi in (x, x2):
        expect = act_same_dtype(F.conv1d(xi, w0, b0, padding=2, algo=algo), "relu6")
        assert p(xi).tobytes() == expect.tobytes(), xi.shape


def test_plan_owns_weight_copy_of_list_and_views():
    """Non-contiguous views and Python lists are accepted and copied too."""
    rng = np.random.default_rng(24)
    big = rng.uniform(-1, 1, (6, 8, 3, 6)).astype(np.float32)
    w = big[:, ::2, :, ::2]  # (6, 4, 3, 3) strided view
    b = [0.5, -0.25, 1.0, 0.0, -1.0, 2.0]
    x = rng.uniform(-1, 1, (1, 4, 6, 6)).astype(np.float32)
    expect = F.conv2d(x, np.ascontiguousarray(w), np.asarray(b, np.float32))
    p = fastconv.plan(w, np.asarray(b, np.float32))
    big[...] = 0.0
    assert p(x).tobytes() == expect.tobytes()


@pytest.mark.parametrize("algo", PLAN_ALGOS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_prepare_report(rank, algo):
    rng = np.random.default_rng(25 + rank)
    w, b = _small_layer(rng, rank=rank, C=4, K=6, k=3, dtype=np.float64)
    x_shape = (2, 4) + (7, 6, 5)[:rank]
    kwargs = dict(stride=2, padding=1, dilation=1)
    with skip_if_declined(algo):
        p = fastconv.plan(w, b, algo=algo, **kwargs)
    info = p.prepare(x_shape)
    assert set(info) == {"algo", "isa", "input_shape", "output_shape", "packed_bytes",
                         "workspace_bytes"}
    assert info["isa"] == fastconv.get_isa()
    assert info["algo"] in fastconv.algorithms("forward")
    if algo != "auto":
        assert info["algo"] == algo
    assert tuple(info["input_shape"]) == x_shape
    x = rng.uniform(-1, 1, x_shape)
    y = CONV[rank](x, w, b, algo=algo, **kwargs)
    assert tuple(info["output_shape"]) == y.shape
    assert isinstance(info["packed_bytes"], int) and info["packed_bytes"] >= w.nbytes
    assert isinstance(info["workspace_bytes"], int) and info["workspace_bytes"] >= 0
    assert p.prepare(list(x_shape)) == info  # prepare again: the same report
    assert p(x).tobytes() == y.tobytes()  # the prepared pack is the one used


# =========================================================================== (4) ISA kept
@pytest.mark.parametrize("act", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_plan_keeps_isa_of_creation(algo, act, isa_restored):
    """Created and first run under the widest ISA; after set_isa('scalar') the plan still gives
    the same bits (the functional path switches to the scalar kernels)."""
    rng = np.random.default_rng(31)
    w = rng.uniform(-1, 1, (20, 13, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, 20).astype(np.float32)
    x = rng.uniform(-2, 2, (2, 13, 11, 17)).astype(np.float32)
    isa_restored(HIGHEST_ISA)
    p = fastconv.plan(w, b, padding=1, algo=algo, activation=act)
    y_hi = p(x)
    expect_hi = act_same_dtype(
        F.conv2d(x, w, b, padding=1, algo=plan_algo(algo, w, b, x.shape, padding=1)), act)
    assert y_hi.tobytes() == expect_hi.tobytes()
    isa_restored("scalar")
    assert fastconv.get_isa() == "scalar"
    assert p(x).tobytes() == y_hi.tobytes()
    assert p(x).tobytes() == y_hi.tobytes()  # and again


@pytest.mark.parametrize("algo", FWD_ALGOS)
@pytest.mark.skipif(HIGHEST_ISA == "scalar", reason="one ISA only (FASTCONV_ISA=scalar): nothing "
                    "to switch between")
def test_plan_keeps_isa_for_new_shapes(algo, isa_restored):
    """Created under the widest ISA, first run (shape never seen before) after
    set_isa('scalar'): should still run the widest ISA's kernels."""
    rng = np.random.default_rng(32)
    w = rng.uniform(-1, 1, (20, 13, 3, 3)).astype(np.float32)
    x = rng.uniform(-2, 2, (2, 13, 11, 17)).astype(np.float32)
    isa_restored(HIGHEST_ISA)
    p = fastconv.plan(w, padding=1, algo=algo)
    y_hi = F.conv2d(x, w, padding=1, algo=algo)
    isa_restored("scalar")
    y_scalar = F.conv2d(x, w, padding=1, algo=algo)
    assert y_hi.tobytes() != y_scalar.tobytes()  # else this test could not tell them apart
    assert p(x).tobytes() == y_hi.tobytes()


# =========================================================================== (5) threads
@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_concurrent_calls(algo):
    """8 Python threads call one plan at the same time on different inputs (two shapes),
    several times each: every result equals the serial one bit for bit."""
    rng = np.random.default_rng(41)
    w = rng.uniform(-1, 1, (24, 16, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, 24).astype(np.float32)
    p = fastconv.plan(w, b, padding=1, algo=algo, activation="relu")
    shapes = [(2, 16, 20, 19), (1, 16, 13, 24)]
    xs = [rng.uniform(-1, 1, shapes[i % 2]).astype(np.float32) for i in range(8)]
    serial = [p(x) for x in xs]
    barrier = threading.Barrier(8)
    results = [[] for _ in xs]
    errors = []

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                results[i].append(p(xs[i]))
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (s, rs) in enumerate(zip(serial, results)):
        assert len(rs) == 5
        for r in rs:
            assert r.tobytes() == s.tobytes(), f"thread {i}"
    expect = act_same_dtype(
        F.conv2d(xs[0], w, b, padding=1, algo=plan_algo(algo, w, b, xs[0].shape, padding=1)),
        "relu")
    assert serial[0].tobytes() == expect.tobytes()


# =========================================================================== (6) validation
W32 = np.ones((4, 3, 3, 3), np.float32)
X32 = np.ones((1, 3, 8, 8), np.float32)


def _create_and_call(*args, **kwargs):
    """plan(*args, **kwargs): every value is validated at creation (the call is not reached)."""
    fastconv.plan(*args, **kwargs)
    raise AssertionError("fastconv.plan accepted invalid arguments")


def test_activation_invalid():
    with pytest.raises(ValueError, match="activation"):
        fastconv.plan(W32, activation="softplus")
    with pytest.raises(ValueError, match="activation"):
        fastconv.plan(W32, activation="none")  # the string 'none' is the core's, not the API's


def test_weight_rank_invalid():
    with pytest.raises(ValueError, match=r"weight.*2-D"):
        fastconv.plan(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"weight.*6-D"):
        fastconv.plan(np.ones((1,) * 6, np.float32))


def test_input_dtype_mismatch():
    p = fastconv.plan(W32)
    with pytest.raises(TypeError, match="dtype"):
        p(X32.astype(np.float64))
    p64 = fastconv.plan(W32.astype(np.float64))
    with pytest.raises(TypeError, match="dtype"):
        p64(X32)


def test_input_channels_mismatch():
    p = fastconv.plan(W32)
    with pytest.raises(ValueError, match="channels"):
        p(np.ones((1, 5, 8, 8), np.float32))
    with pytest.raises(ValueError, match="channels"):
        p.prepare((1, 5, 8, 8))
    assert p(X32).shape == (1, 4, 6, 6)  # a failed shape leaves the plan usable


def test_bias_shape_invalid():
    with pytest.raises(ValueError, match="bias"):
        _create_and_call(W32, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="bias"):
        _create_and_call(W32, np.ones((4, 1), np.float32))


def test_bias_dtype_mismatch():
    with pytest.raises(TypeError, match="dtype"):
        _create_and_call(W32, np.ones(4, np.float64))


def test_unknown_algo():
    with pytest.raises(ValueError, match="unknown algo"):
        _create_and_call(W32, algo="winograd_nope")


def test_stride_zero():
    with pytest.raises(ValueError, match="stride"):
        _create_and_call(W32, stride=0)
    with pytest.raises(ValueError, match="stride"):
        _create_and_call(W32, stride=(1, 0))


# =========================================================================== (7) empty cases
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_empty_batch(algo, dtype):
    rng = np.random.default_rng(51)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(dtype)
    b = rng.uniform(-1, 1, 4).astype(dtype)
    with skip_if_declined(algo):
        p = fastconv.plan(w, b, padding=1, stride=2, algo=algo, activation="relu")
    y = p(np.ones((0, 3, 9, 8), dtype))
    assert isinstance(y, np.ndarray) and y.shape == (0, 4, 5, 4) and y.dtype == dtype
    assert p.prepare((0, 3, 9, 8))["output_shape"] == (0, 4, 5, 4)
    assert p(np.ones((1, 3, 9, 8), dtype)).shape == (1, 4, 5, 4)  # still usable


@pytest.mark.parametrize("act", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("algo", PLAN_ALGOS)
def test_zero_input_channels(algo, dtype, act):
    """weight (K, 0, 3, 3): the output is the activated bias (zeros without bias)."""
    b = np.array([-1.5, 0.5, 7.0, np.nan, 3.0], dtype)
    w = np.ones((5, 0, 3, 3), dtype)
    x = np.ones((2, 0, 6, 7), dtype)
    y = fastconv.plan(w, b, padding=1, algo=algo, activation=act)(x)
    assert y.shape == (2, 5, 6, 7) and y.dtype == dtype
    expect = np.broadcast_to(act_ref(b.astype(np.float64), act)[None, :, None, None], y.shape)
    assert np.array_equal(y, expect, equal_nan=True)
    y0 = fastconv.plan(w, None, padding=1, algo=algo, activation=act)(x)
    assert y0.shape == (2, 5, 6, 7) and (y0 == 0).all()
    assert np.array_equal(y0, F.conv2d(x, w, None, padding=1,
                                       algo=plan_algo(algo, w, None, x.shape, padding=1)))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "silu", "hardsigmoid", "hardswish",
                                        "gelu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_activations_equal_the_functional_ops(activation, dtype):
    """Activations that are not clamps run after the convolution: the plan's output equals the
    functional activation of the functional convolution, bit for bit."""
    from fastconv import functional as F
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 9, 8)).astype(dtype)
    w = rng.standard_normal((7, 5, 3, 3)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    layer = fastconv.plan(w, b, padding=1, algo="gemm", activation=activation)
    want = getattr(F, activation)(F.conv2d(x, w, b, padding=1, algo="gemm"))
    assert np.array_equal(layer(x), want)


def test_activations_with_parameters_are_refused():
    w = np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="activation must be None or one of"):
        fastconv.plan(w, activation="leaky_relu")


# The residual blocks' layers, (x_shape, w_shape, kwargs): a 3x3 layer, and 1x1 layers whose
# GEMM adds the residual in its stores: read in place with the narrow last tile (14 x 14),
# packed over two reduction blocks (300 channels), an output over 512 KiB (streamed stores),
# im2col rows read in place (3x3, 16 channels), and 7 x 7, whose transposed product adds it in
# a pass of its own.
RESIDUAL_CASES = {
    "3x3_8": ((2, 8, 10, 9), (8, 8, 3, 3), dict(padding=1)),
    "1x1_64to72_14": ((2, 64, 14, 14), (72, 64, 1, 1), dict()),
    "1x1_300to40_11": ((1, 300, 11, 13), (40, 300, 1, 1), dict()),
    "1x1_64to256_28": ((1, 64, 28, 28), (256, 64, 1, 1), dict()),
    "3x3_16to24_40": ((1, 16, 40, 40), (24, 16, 3, 3), dict(padding=1)),
    "1x1_128to256_7": ((2, 128, 7, 7), (256, 128, 1, 1), dict()),
}


@pytest.mark.parametrize("case", sorted(RESIDUAL_CASES))
@pytest.mark.parametrize("activation", [None, "relu", "relu6", "silu"])
@pytest.mark.parametrize("algo", ["auto"] + ALGOS_BY_DIRECTION["forward"])
def test_residual_is_added_before_the_activation(case, activation, algo):
    """plan(x, residual=r) = act(conv(x) + bias + r), bit for bit the sum of the plan's own
    output and r with the activation after it (the residual blocks' fused form), whether the
    algorithm adds r in its stores or in a pass after them."""
    from fastconv import functional as F
    x_shape, w_shape, kwargs = RESIDUAL_CASES[case]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    try:
        plain = fastconv.plan(w, b, algo=algo, **kwargs)
        y = plain(x)
    except ValueError as e:  # an algorithm that does not take this layer
        pytest.skip(str(e))
    r = rng.standard_normal(y.shape).astype(np.float32)
    want = y + r
    if activation is not None:
        want = getattr(F, activation)(want)
    for stores in ("stream", "cache"):
        got = fastconv.plan(w, b, algo=algo, activation=activation, output_stores=stores,
                            **kwargs)(x, residual=r)
        assert np.array_equal(got, want), stores
    with pytest.raises(ValueError, match="residual"):
        plain(x, residual=r[:, :4])
