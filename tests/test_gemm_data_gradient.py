"""The data gradient of a 1x1 layer at stride 1 without padding as a forward convolution
(conv/gemm.cpp's backward_data_by_forward) vs the float64 reference.

dX_g = W_g^T dY_g is the forward of dy by the transposed weights (C and K swapped): GEMM packs
W^T straight from w (A panels, or B panels where the forward computes the product transposed:
7x7 maps with many channels) and runs its forward, which writes every element of dx once. The
entry point then leaves dx as it finds it (no zeroing): the C++ API test (cpp/tests/test_api.cpp)
hands the algorithms a dx full of canaries. `auto` sends these layers to gemm and keeps the
strided or padded 1x1 layers elsewhere.
"""

import numpy as np
import pytest

from fastconv import _core
from fastconv import grad
from conftest import fail_if, special_value_problems, tolerance_for
from reference import conv_input_grad, normalized_error

DTYPES = [np.float32, np.float64]
OPS = {3: grad.conv1d_input, 4: grad.conv2d_input, 5: grad.conv3d_input}

# (name, input shape, weight shape, groups)
CASES = [
    ("64_to_256", (1, 64, 20, 20), (256, 64, 1, 1), 1),
    ("batch_groups", (3, 30, 9, 11), (12, 10, 1, 1), 3),
    ("7x7_transposed", (2, 300, 7, 7), (1030, 300, 1, 1), 1),  # many channels on 49 positions
    ("unbatched", (40, 6, 6), (24, 40, 1, 1), 1),
    ("conv1d", (2, 9, 70), (17, 9, 1), 1),
    ("conv3d", (1, 12, 3, 4, 5), (20, 6, 1, 1, 1), 2),
]


def problem(case, rng):
    name, xs, ws, groups = case
    batch = xs[:1] if len(xs) == len(ws) else ()
    ys = batch + (ws[0],) + xs[-(len(ws) - 2):]  # a 1x1 kernel at stride 1: the input's extents
    w = rng.uniform(-1, 1, ws).astype(np.float32).astype(np.float64)
    gy = rng.uniform(-1, 1, ys).astype(np.float32).astype(np.float64)
    return xs, w, gy, groups


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_data_gradient_by_forward(dtype, isa, record_error, threads_restored):
    rng = np.random.default_rng(51)
    problems = []
    for case in CASES:
        xs, w, gy, groups = problem(case, rng)
        if case[0] == "64_to_256":  # a NaN and an Inf reach their columns of dx
            gy[0, 3, 4, 5] = np.nan
            gy[0, 200, 0, 19] = np.inf
        with np.errstate(invalid="ignore", over="ignore"):
            ref = conv_input_grad(xs, w, gy, groups=groups)
        op = OPS[w.ndim]
        where = f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}"
        results = []
        for threads in (1, 2):
            threads_restored(threads)
            results.append(op(xs, w.astype(dtype), gy.astype(dtype), groups=groups, algo="gemm"))
        y = results[0]
        if y.tobytes() != results[1].tobytes():
            problems.append(f"{where}: 1 and 2 threads differ")
        problems += special_value_problems(y.astype(np.float64), ref, where, "input gradients")
        finite = np.isfinite(ref)
        err = normalized_error(y.astype(np.float64)[finite], ref[finite])
        record_error(dtype, "gemm", err, isa, case[0], entry="input")
        if not err <= tolerance_for("gemm", dtype, "backward_data"):
            problems.append(f"{where}: normalised error {err:.3e}")
    fail_if(problems)


def resolved(xs, ws, stride=1, padding=0):
    rank = len(ws) - 2
    return _core.conv_algorithm(rank, "backward_data", xs, ws, (stride,) * rank,
                                (padding,) * rank, (1,) * rank, 1, "zeros", np.float32, "auto")


def test_auto_sends_unpadded_unit_stride_1x1_to_gemm():
    assert resolved((1, 256, 56, 56), (64, 256, 1, 1)) == "gemm"      # ResNet-50's 1x1 layers
    assert resolved((1, 1024, 14, 14), (256, 1024, 1, 1)) == "gemm"
    assert resolved((1, 256, 56, 56), (64, 256, 1, 1), padding=1) == "direct"  # padded: blocked
    assert resolved((1, 256, 56, 56), (64, 256, 3, 3), padding=1) != "gemm"
