"""Depthwise 3x3 convolution by strips of row vectors (kernels/generic/direct_ukernel.hpp's
``depthwise_plane_3x3``) vs the float64 reference.

On avx512 float32 (the table that enables strips: 32 registers), the direct algorithm's
whole-plane depthwise kernel takes a 3x3 kernel at stride 1 or 2 along both axes without
dilation, on rows of at least W = 16 outputs, in strips of output vectors that roll down the
plane, with the zero padding folded into its loads: no padded copy of a plane, so a plan's
workspace is empty (``test_shapes_take_the_strips_path`` checks that through ``plan.prepare``).
Rows of fewer than 3W/2 outputs at stride 1 go to the channel-blocked kernels instead
(``strips`` below copies the rule of conv/direct.cpp). The other ISAs and float64 run the same
cases on their copying plane kernels.

The cases cover strips with vectors at both ends of a row and inside it, a row's last vector
overlapping the one before, padding wider than a vector (whole vectors of zeros), no padding,
reflect padding (padded before the kernel), odd extents at stride 2, batch and unbatched input,
NaN / Inf in the input and an infinite weight (0 x Inf in the padding is NaN, as in the
reference), the plan's fused activations, 1 / 2 threads, and the data gradient, whose stride-1
phases are forwards of dy on the same kernel.
"""

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad
from conftest import fail_if, tolerance_for
from reference import conv_input_grad, conv_reference, normalized_error
from test_gemm_transposed import arrays, forward_problems, problem, threads_problems

DTYPES = [np.float32, np.float64]


# (name, x shape, weight shape, kwargs): depthwise 3x3 problems
CASES = [
    ("s1_56", (1, 6, 20, 56), (6, 1, 3, 3), {"padding": 1, "groups": 6}),
    ("s2_odd", (2, 5, 21, 57), (5, 1, 3, 3), {"padding": 1, "stride": 2, "groups": 5}),
    ("s1_wide", (1, 3, 5, 83), (3, 1, 3, 3), {"padding": 1, "groups": 3}),
    ("s1_no_padding", (1, 4, 9, 40), (4, 1, 3, 3), {"groups": 4}),
    ("s1_pad_beyond_vector", (1, 2, 4, 20), (2, 1, 3, 3), {"padding": (3, 18), "groups": 2}),
    ("s2_pad_beyond_vector", (1, 2, 7, 30), (2, 1, 3, 3),
     {"padding": (2, 17), "stride": 2, "groups": 2}),
    ("s1_rows_26", (1, 5, 7, 26), (5, 1, 3, 3), {"padding": 1, "groups": 5, "bias": False}),
    ("reflect", (1, 4, 10, 50), (4, 1, 3, 3),
     {"padding": 1, "padding_mode": "reflect", "groups": 4}),
    ("unbatched", (4, 12, 34), (4, 1, 3, 3), {"padding": 1, "groups": 4}),
    ("multiplier2", (1, 3, 6, 45), (6, 1, 3, 3), {"padding": 1, "groups": 3}),  # not depthwise
]


def strips(isa, dtype, w, out_shape, kw):
    """Whether conv/direct.cpp runs the case's planes in strips, for this ISA and dtype."""
    if isa != "avx512" or np.dtype(dtype) != np.float32:
        return False
    lane = 16
    stride = kw.get("stride", 1)
    ow = out_shape[-1]
    plane_kernel = ow >= 2 * lane or 2 * ow >= 3 * lane or (stride == 2 and ow >= lane)
    depthwise = w.shape[1] == 1 and w.shape[0] == kw.get("groups", 1)
    return depthwise and w.shape[2:] == (3, 3) and ow >= lane and plane_kernel


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_strips_forward(dtype, isa, record_error):
    rng = np.random.default_rng(51)
    problems = []
    for case in CASES:
        x, w, b, kw = problem(case, rng)
        if case[0] == "s1_56":  # NaN / Inf at a row's ends and inside it
            x[0, 1, 0, 0] = np.nan
            x[0, 2, 19, 55] = np.inf
            x[0, 3, 10, 30] = -np.inf
        if case[0] == "s2_odd":  # an infinite tap meets the zero padding: NaN there
            w[2, 0, 0, 0] = np.inf
        problems += forward_problems(case[0], x, w, b, kw, dtype, isa, record_error,
                                     algo="direct")
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shapes_take_the_strips_path(dtype, isa):
    """The cases run in strips on every ISA where the copied rule says so, with an empty
    workspace (reflect padding: the padded input alone); a 5x5 kernel keeps its padded copy of
    the planes (workspace beyond zero)."""
    rng = np.random.default_rng(52)
    problems = []
    for case in CASES + [("5x5", (1, 3, 9, 40), (3, 1, 5, 5), {"padding": 2, "groups": 3})]:
        x, w, b, kw = problem(case, rng)
        out_shape = conv_reference(x, w, None, **kw).shape
        want = strips(isa, dtype, w, out_shape, kw)
        got = fastconv.plan(*arrays(x, w, b, dtype)[1:], algo="direct", **kw).prepare(x.shape)
        where = f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}"
        padded = 0
        if kw.get("padding_mode", "zeros") != "zeros":
            q = 2 * kw["padding"]  # the input padded by the wrapper, before the kernel
            padded = x.size // (x.shape[-1] * x.shape[-2]) * (x.shape[-2] + q) * (x.shape[-1] + q)
        if want and got["workspace_bytes"] != padded * np.dtype(dtype).itemsize:
            problems.append(f"{where}: in strips, yet a workspace of {got['workspace_bytes']}")
        if case[0] == "5x5" and (want or got["workspace_bytes"] == 0):
            problems.append(f"{where}: the 5x5 kernel should copy its planes")
    fail_if(problems)


def test_rule_copy_examples():
    """Spot values of the copied rule (MobileNetV2's layers on avx512 float32, W = 16)."""
    w = np.zeros((144, 1, 3, 3))
    f32 = np.float32
    dw = {"padding": 1, "groups": 144}
    assert strips("avx512", f32, w, (1, 144, 56, 56), dw)
    assert strips("avx512", f32, w, (1, 144, 28, 28), dict(dw, stride=2))
    assert strips("avx512", f32, w, (1, 144, 28, 28), dw)                  # 28 >= 24
    assert not strips("avx512", f32, w, (1, 144, 16, 16), dw)              # blocked
    assert not strips("avx512", f32, w, (1, 144, 7, 7), dw)                # under a vector
    assert not strips("avx2", f32, w, (1, 144, 56, 56), dw)                # no strips there
    assert not strips("avx512", f32, w, (1, 144, 56, 56), {"padding": 1})  # not depthwise
    assert not strips("avx512", f32, np.zeros((3, 1, 5, 5)), (1, 3, 40, 40),
                      {"padding": 2, "groups": 3})


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_strips_threads_bit_identical(dtype, isa, threads_restored):
    fail_if(threads_problems(CASES[:3], 53, dtype, isa, threads_restored, algo="direct"))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_strips_data_gradient(dtype, isa):
    """The data gradient of stride-1 and stride-2 depthwise layers (forwards of dy by the
    strips, one per stride phase) against the reference."""
    rng = np.random.default_rng(54)
    problems = []
    for case in (CASES[0], CASES[1], CASES[4]):
        x, w, _, kw = problem(case, rng)
        kw.pop("bias", None)
        gy = rng.uniform(-1, 1, conv_reference(x, w, None, **kw).shape)
        ref = conv_input_grad(x.shape, w, gy, **kw)
        got = grad.conv2d_input(x.shape, w.astype(dtype), gy.astype(dtype), algo="direct", **kw)
        err = normalized_error(got.astype(np.float64), ref)
        if not err <= tolerance_for("direct", dtype, "backward_data"):
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case[0]}: error {err:.3e}")
    fail_if(problems)
