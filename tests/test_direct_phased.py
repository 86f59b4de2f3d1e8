"""The data gradient of strided dense layers as stride-1 phases (conv/direct.cpp) vs the float64
reference.

algo='direct' computes the input gradient of a dense layer strided along H or W as s_h x s_w
forward convolutions of the output gradient ("phases": positions j = s*i + r of the input,
each summing the taps t with t*dilation = r mod s, reversed, channels swapped) on the
channel-blocked kernels, each phase's outputs put back into its positions. The cases are built
per W (the blocked kernels' lanes: scalar 4, avx2 8, avx512 16 float32; float64 4) with at
least W/2 channels per group both ways, so every phase forward takes the blocked path. They
cover strides 2 and 3 along H and W (and 1 along one of them), kernels 1 to 5 (a 1x1 kernel at
stride 2 leaves phases that no tap reaches: zeros), dilation 2 (phases of dilated taps, and
dilation 2 at stride 2: taps of one residue only), groups, every padding mode (the kept box of
'zeros', the folded padded gradient of the others), padding beyond the kernel's reach (a phase
with negative padding: the row kernels instead), 1-D and 3-D (stride 1 along D), batch 3 and
unbatched, NaN / Inf in the output gradient, non-finite weights (the row kernels instead), the
same bits on 1 and 2 threads, and `auto` choosing this path.
"""

import numpy as np
import pytest

from fastconv import grad as fgrad
from conftest import fail_if, special_value_problems, tolerance_for
from reference import conv_input_grad, conv_output_shape, normalized_error

DTYPES = [np.float32, np.float64]
GRAD = {1: fgrad.conv1d_input, 2: fgrad.conv2d_input, 3: fgrad.conv3d_input}


def lanes(isa, dtype):
    if np.dtype(dtype) == np.float64:
        return 4
    return {"avx512": 16, "avx2": 8}.get(isa, 4)


def cases(w):
    """(name, input shape, weight shape, kwargs, specials) per W."""
    h = w // 2 + 1  # channels per group: partial blocks
    return [
        ("3x3_s2", (1, w + 3, 13, 11), (2 * w, w + 3, 3, 3), dict(stride=2, padding=1), None),
        ("3x3_s2_b3_nan", (3, w, 9, 10), (w + 1, w, 3, 3), dict(stride=2, padding=1),
         ("gy", (1, 2, 3, 1), np.nan)),
        ("1x1_s2", (1, 2 * w, 9, 8), (w, 2 * w, 1, 1), dict(stride=2), None),
        ("5x5_s3_pad2", (1, h, 14, 16), (w, h, 5, 5), dict(stride=3, padding=2), None),
        ("2x4_s12", (1, w, 8, 13), (w + 2, w, 2, 4), dict(stride=(1, 2), padding=(1, 2)), None),
        ("3x1_s21_dil2", (1, w, 15, 7), (w, w, 3, 1), dict(stride=(2, 1), dilation=2,
                                                           padding=(2, 0)), None),
        ("3x3_s2_dil2", (1, w, 12, 12), (w, w, 3, 3), dict(stride=2, dilation=2, padding=2),
         ("gy", (0, 1, 1, 1), np.inf)),
        ("groups2", (1, 2 * h, 10, 10), (2 * w, h, 3, 3), dict(stride=2, padding=1, groups=2),
         None),
        ("reflect", (1, w, 11, 12), (w, w, 3, 3), dict(stride=2, padding=1,
                                                       padding_mode="reflect"), None),
        ("circular", (1, w, 10, 9), (w, w, 3, 3), dict(stride=(2, 3), padding=(1, 2),
                                                       padding_mode="circular"), None),
        ("replicate", (1, w, 9, 9), (w, w, 4, 4), dict(stride=2, padding=1,
                                                       padding_mode="replicate"), None),
        ("pad_beyond", (1, w, 7, 7), (w, w, 2, 2), dict(stride=2, padding=3), None),
        ("unbatched", (w, 12, 9), (w, w, 3, 3), dict(stride=2, padding=1), None),
        ("1d", (2, w, 41), (w, w, 5), dict(stride=3, padding=2), None),
        ("3d", (1, w, 3, 8, 9), (w, w, 2, 3, 3), dict(stride=(1, 2, 2), padding=(0, 1, 1)), None),
        ("w_nan", (1, w, 9, 9), (w, w, 3, 3), dict(stride=2, padding=1), ("w", (1, 2, 0, 2), np.nan)),
    ]


def problem(case, rng):
    name, xs, ws, kw, special = case
    w = rng.uniform(-1, 1, ws).astype(np.float32).astype(np.float64)
    out = conv_output_shape(xs, ws, kw.get("stride", 1), kw.get("padding", 0),
                            kw.get("dilation", 1))
    gy = rng.uniform(-1, 1, out).astype(np.float32).astype(np.float64)
    if special:  # (array, index into its 4-D shape, value)
        (gy if special[0] == "gy" else w)[special[1]] = special[2]
    return xs, w, gy, kw


def run(xs, w, gy, kw, dtype, algo="direct"):
    return GRAD[w.ndim - 2](xs, w.astype(dtype), gy.astype(dtype), algo=algo, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_phased_input_grad(dtype, isa, record_error):
    rng = np.random.default_rng(41)
    problems = []
    for case in cases(lanes(isa, dtype)):
        xs, w, gy, kw = problem(case, rng)
        with np.errstate(invalid="ignore", over="ignore"):
            ref = conv_input_grad(xs, w, gy, **kw)
        got = run(xs, w, gy, kw, dtype).astype(np.float64)
        where = f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}"
        problems += special_value_problems(got, ref, where, "input-gradient elements")
        finite = np.isfinite(ref)
        err = normalized_error(got[finite], ref[finite])
        record_error(dtype, "direct", err, isa, case[0], entry="input")
        if not err <= tolerance_for("direct", dtype):
            problems.append(f"{where}: normalised error {err:.3e}")
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_phased_threads_bit_identical(dtype, isa, threads_restored):
    rng = np.random.default_rng(42)
    problems = []
    for case in cases(lanes(isa, dtype))[:2]:  # batch 1 (rows shared) and 3 (image per thread)
        xs, w, gy, kw = problem(case, rng)
        threads_restored(1)
        g1 = run(xs, w, gy, kw, dtype)
        threads_restored(2)
        g2 = run(xs, w, gy, kw, dtype)
        if g1.tobytes() != g2.tobytes():
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}: 1 and 2 threads differ")
    fail_if(problems)


def test_auto_takes_the_phases():
    """ResNet-50's 3x3 / 2 layer: auto's data gradient is algo='direct''s bit for bit and not
    GEMM's (another summation order): the registry sends it to the direct algorithm, whose data
    gradient there is the phases (finite weights, padding within the kernel's reach). On a
    smaller map (rows of 14) auto keeps GEMM."""
    rng = np.random.default_rng(43)
    w = rng.uniform(-1, 1, (128, 128, 3, 3)).astype(np.float32)
    for size, phases in ((56, True), (28, False)):
        gy = rng.uniform(-1, 1, (1, 128, size // 2, size // 2)).astype(np.float32)
        args = ((1, 128, size, size), w, gy)
        auto = fgrad.conv2d_input(*args, stride=2, padding=1)
        direct = fgrad.conv2d_input(*args, stride=2, padding=1, algo="direct")
        gemm = fgrad.conv2d_input(*args, stride=2, padding=1, algo="gemm")
        assert (auto.tobytes() == direct.tobytes()) == phases, size
        assert (auto.tobytes() == gemm.tobytes()) != phases, size
        assert np.allclose(direct, gemm, rtol=1e-4, atol=1e-3)
