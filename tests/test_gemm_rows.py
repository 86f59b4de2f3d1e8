"""GEMM convolution's forward with B read in place (conv/gemm.cpp's forward_rows) vs the
float64 reference.

At stride 1 along W an output row's positions are consecutive in every row of the im2col
matrix, so a tile of NR positions of one output row reads its B panel in the padded input, at
the offsets of the im2col rows, instead of a packed copy (the microkernel's ``run_rows``; its
partial panels load their last vector under a mask, so nothing past a row's data is read). The
rule (``rows`` below copies it): not the transposed product, stride 1 along W, a kernel of more
than one tap, a reduction C_per_group x kernel of at most 256, output rows of at least NR
positions, and (1 - OW / round_up(OW, W)) * K_per_group < 16. The path needs no scratch, so a
plan's workspace is the padded input alone (none without padding): ``test_shapes_take_the_rows_path``
checks the rule through it.

The cases cover partial panels of positions (rows that are no multiple of NR) and of output
channels, groups, dilation, 1-D and 3-D, reflect padding, no bias, batch and unbatched input,
NaN / Inf, the plan's fused activations and 1 / 2 threads.
"""

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import fail_if
from reference import conv_reference
from test_gemm_transposed import (arrays, ceil_to, forward_problems, problem, threads_problems,
                                  tiles, transposed)

DTYPES = [np.float32, np.float64]
OPS = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}

# (name, x shape, weight shape, kwargs)
CASES = [
    ("first_layer", (2, 3, 9, 70), (64, 3, 3, 3), {"padding": 1}),
    ("K13_W64", (1, 3, 6, 64), (13, 3, 3, 3), {"padding": 1, "bias": False}),
    ("5x5_dilated", (1, 2, 12, 96), (20, 2, 5, 5), {"padding": 4, "dilation": 2}),
    ("groups2", (1, 4, 7, 40), (24, 2, 3, 3), {"padding": 1, "groups": 2}),
    ("reflect", (1, 3, 8, 50), (16, 3, 3, 3), {"padding": 1, "padding_mode": "reflect"}),
    ("no_padding_stride_h2", (1, 3, 11, 67), (8, 3, 3, 3), {"stride": (2, 1)}),
    ("unbatched", (3, 5, 48), (16, 3, 3, 3), {"padding": 1}),
    ("conv1d", (2, 4, 100), (16, 4, 7), {"padding": 3}),
    ("conv3d", (1, 2, 4, 5, 40), (12, 2, 3, 3, 3), {"padding": 1}),
]


def rows(isa, dtype, w, out_shape, kw):
    """The rule of conv/gemm.cpp's rows_in_place for these cases' ISA and dtype."""
    mr, nr = tiles(isa, dtype)
    groups = kw.get("groups", 1)
    Kg, Kr = w.shape[0] // groups, int(np.prod(w.shape[1:]))
    OW = out_shape[-1]
    stride = kw.get("stride", 1)
    stride_w = stride[-1] if isinstance(stride, tuple) else stride
    idle = 1.0 - OW / ceil_to(OW, nr // 2)
    return (not transposed(nr // 2, int(np.prod(out_shape[-(w.ndim - 2):])), Kg, Kr)
            and stride_w == 1 and np.prod(w.shape[2:]) > 1 and Kr <= 256 and OW >= nr
            and idle * Kg < 16.0)


def conv_nd(x, w, b=None, **kw):
    """conv1d, conv2d or conv3d by the rank of w."""
    return OPS[w.ndim](x, w, b, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rows_forward(dtype, isa, record_error):
    rng = np.random.default_rng(41)
    problems = []
    for case in CASES:
        x, w, b, kw = problem(case, rng)
        if case[0] == "first_layer":  # NaN / Inf reach their windows' outputs
            x[1, 2, 4, 33] = np.nan
            x[0, 0, 0, 69] = np.inf
        problems += forward_problems(case[0], x, w, b, kw, dtype, isa, record_error, conv_nd)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shapes_take_the_rows_path(dtype, isa):
    """Every case runs in place on every ISA (the copied rule says so), and its plan's workspace
    is the padded input alone; a layer the rule leaves packed (a reduction of 30 x 3 x 3 = 270)
    has scratch on top."""
    elem = np.dtype(dtype).itemsize
    rng = np.random.default_rng(42)
    problems = []
    for case in CASES + [("packed", (1, 30, 8, 56), (16, 30, 3, 3), {"padding": 1})]:
        x, w, b, kw = problem(case, rng)
        out_shape = conv_reference(x, w, None, **kw).shape
        want_rows = rows(isa, dtype, w, out_shape, kw)
        if want_rows != (case[0] != "packed"):
            problems.append(f"[isa={isa}] {case[0]}: the rule says in place = {want_rows}")
        batch = x.shape if x.ndim == w.ndim else (1,) + x.shape
        pad = kw.get("padding", 0)
        pads = [pad] * (w.ndim - 2) if np.isscalar(pad) else list(pad)
        padded = batch[0] * batch[1] * int(np.prod([n + 2 * q for n, q in zip(batch[2:], pads)]))
        padded_bytes = padded * elem if any(pads) else 0
        got = fastconv.plan(*arrays(x, w, b, dtype)[1:], algo="gemm", **kw).prepare(x.shape)
        if want_rows and got["workspace_bytes"] != padded_bytes:
            problems.append(f"[isa={isa}] {case[0]}: workspace {got['workspace_bytes']} bytes, "
                            f"the padded input alone is {padded_bytes}")
        if not want_rows and got["workspace_bytes"] <= padded_bytes:
            problems.append(f"[isa={isa}] {case[0]}: workspace {got['workspace_bytes']} bytes, "
                            f"no scratch beyond the padded input ({padded_bytes})")
    fail_if(problems)


def test_rule_copy_examples():
    """Spot values of the copied rule on avx512 float32 (NR = 32, W = 16)."""
    kw = {"padding": 1}
    w = np.zeros((64, 3, 3, 3))
    assert rows("avx512", np.float32, w, (1, 64, 224, 224), kw)             # VGG-16 conv1_1
    assert not rows("avx512", np.float32, w, (1, 64, 224, 224), {"stride": 2})
    assert not rows("avx512", np.float32, w, (1, 64, 28, 28), kw)           # rows under NR
    assert not rows("avx512", np.float32, np.zeros((256, 28, 3, 3)), (1, 256, 56, 56), kw)
    assert not rows("avx512", np.float32, np.zeros((64, 64, 3, 3)), (1, 64, 56, 56), kw)  # Kr 576


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rows_threads_bit_identical(dtype, isa, threads_restored):
    cases = (CASES[0], CASES[3], CASES[8])
    fail_if(threads_problems(cases, 43, dtype, isa, threads_restored, conv_nd))
