"""The bad-input catalogue beyond convolution: every other public op, layer constructor and
runtime setting, and the memory layouts of every op's arrays.

Convolution's own table (forward and both gradients, pooling) lives in test_conv_validation.py,
test_grad_validation.py and test_pool_validation.py; layouts of convolution in
test_layouts.py. Here:

- CASES: one bad argument per call (wrong ndim, mismatched sizes, zero / negative / huge
  parameters 2**31 - 1, 2**31, 2**62, 2**63 - 1, 2**63, outputs whose size overflows, wrong
  dtypes and types) -> the exception type and a message naming the argument, raised before
  any allocation: each call must fail within a bound far below what allocating or computing
  the requested size would take (a hang guard, not a speed measurement).
- LAYOUTS: each op on arrays that are non-contiguous, negative-stride, zero-stride, Fortran
  order, unaligned, big-endian or read-only gives the bits of the call on contiguous native
  copies, and leaves its arguments untouched.
"""

import re
import time

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as G
from fastconv import nn
from fastconv import signal as S
from test_layouts import _readonly, _unaligned

X4 = np.linspace(-2, 2, 2 * 4 * 8 * 8, dtype=np.float32).reshape(2, 4, 8, 8)
X2 = np.linspace(-1, 1, 15, dtype=np.float32).reshape(3, 5)
ONES4 = np.ones(4, np.float32)
HUGE = [2**31 - 1, 2**31, 2**62, 2**63 - 1]

# (id, call, exception, message fragment)
CASES = [
    # normalisations
    ("group_norm groups 0", lambda: F.group_norm(X4, 0), ValueError, "num_groups must be positive"),
    ("group_norm groups -1", lambda: F.group_norm(X4, -1), ValueError, "num_groups must be positive"),
    ("group_norm groups 3", lambda: F.group_norm(X4, 3), ValueError, "divisible by num_groups"),
    ("group_norm groups 2**31", lambda: F.group_norm(X4, 2**31), ValueError, "divisible by num_groups"),
    ("group_norm groups 2**63", lambda: F.group_norm(X4, 2**63), OverflowError, "num_groups"),
    ("group_norm 1-d input", lambda: F.group_norm(ONES4, 2), ValueError, "group_norm"),
    ("group_norm weight size", lambda: F.group_norm(X4, 2, np.ones(3, np.float32)), ValueError, "weight"),
    ("layer_norm empty shape", lambda: F.layer_norm(X4, ()), ValueError, "normalized_shape"),
    ("layer_norm negative", lambda: F.layer_norm(X4, (-8,)), ValueError, "normalized_shape"),
    ("layer_norm 2**62", lambda: F.layer_norm(X4, (2**62, 8)), ValueError, "normalized_shape"),
    ("layer_norm 2**63", lambda: F.layer_norm(X4, (2**63,)), OverflowError, "normalized_shape"),
    ("layer_norm eps < 0", lambda: F.layer_norm(X4, (8,), eps=-1.0), ValueError, "eps"),
    ("layer_norm eps str", lambda: F.layer_norm(X4, (8,), eps="a"), TypeError, "eps"),
    ("batch_norm 1-d input", lambda: F.batch_norm(ONES4, ONES4, ONES4), ValueError, "batch_norm"),
    ("batch_norm running size", lambda: F.batch_norm(X4, np.ones(3), np.ones(4)), ValueError,
     "running_mean"),
    ("batch_norm one value", lambda: F.batch_norm(X4[:1, :, :1, :1], None, None, training=True),
     ValueError, "more than 1 value per channel"),
    ("batch_norm momentum str", lambda: F.batch_norm(X4, np.zeros(4), np.ones(4), training=True,
                                                     momentum="x"), TypeError, "momentum"),
    ("batch_norm int input", lambda: F.batch_norm(X4.astype(np.int32), ONES4, ONES4), TypeError,
     "dtype"),
    ("instance_norm 2-d input", lambda: F.instance_norm(X2), ValueError, "more than 1 spatial"),
    ("instance_norm 1x1 planes", lambda: F.instance_norm(X4[:, :, :1, :1]), ValueError,
     "more than 1 spatial"),
    ("batch_norm_backward shape", lambda: G.batch_norm_backward(X4[:1], X4, training=True),
     ValueError, "grad_output"),
    ("layer_norm_backward dtype", lambda: G.layer_norm_backward(X4.astype(np.float64), X4, (8,)),
     TypeError, "dtype"),
    # activations, softmax
    ("softmax dim 5", lambda: F.softmax(X4, 5), ValueError, "Dimension out of range"),
    ("softmax dim -5", lambda: F.softmax(X4, -5), ValueError, "Dimension out of range"),
    ("softmax dim 2**63", lambda: F.softmax(X4, 2**63), OverflowError, "dim"),
    ("softmax dim 1.5", lambda: F.softmax(X4, 1.5), TypeError, "dim"),
    ("softmax_input shape", lambda: G.softmax_input(X4[:1], X4, 1), ValueError, "grad_output"),
    ("relu int", lambda: F.relu(X4.astype(np.int64)), TypeError, "dtype"),
    ("relu complex", lambda: F.relu(X4.astype(np.complex64)), TypeError, "dtype"),
    ("relu object", lambda: F.relu(np.array([None])), TypeError, "dtype"),
    ("relu inplace read-only", lambda: F.relu(np.frombuffer(b"\0" * 12, np.float32), inplace=True),
     ValueError, "writable"),
    ("elu alpha str", lambda: F.elu(X2, "a"), TypeError, "alpha"),
    ("hardtanh min > max", lambda: F.hardtanh(X2, 2.0, 1.0), ValueError, "min_val"),
    ("gelu approximate", lambda: F.gelu(X2, "fast"), ValueError, "approximate"),
    ("silu_input shape", lambda: G.silu_input(X2[:1], X2), ValueError, "grad_output"),
    # linear, dropout, losses
    ("linear mismatch", lambda: F.linear(X2, np.ones((4, 6), np.float32)), ValueError,
     "cannot be multiplied"),
    ("linear 1-d weight", lambda: F.linear(X2, np.ones(5, np.float32)), ValueError, "weight"),
    ("linear 0-d input", lambda: F.linear(np.float32(1), np.ones((4, 1), np.float32)), ValueError,
     "input"),
    ("linear int input", lambda: F.linear(X2.astype(int), np.ones((4, 5))), TypeError, "dtype"),
    ("linear bias size", lambda: F.linear(X2, np.ones((4, 5), np.float32), np.ones(3, np.float32)),
     ValueError, "bias"),
    ("dropout p 2", lambda: F.dropout(X2, 2.0), ValueError, "between 0 and 1"),
    ("dropout p nan", lambda: F.dropout(X2, float("nan")), ValueError, "between 0 and 1"),
    ("cross_entropy target 7", lambda: F.cross_entropy(X2, np.array([0, 7, 1])), ValueError,
     "out of bounds"),
    ("cross_entropy target -7", lambda: F.cross_entropy(X2, np.array([0, -7, 1])), ValueError,
     "out of bounds"),
    ("cross_entropy target 2**63-1", lambda: F.cross_entropy(X2, np.array([0, 2**63 - 1, 1])),
     ValueError, "out of bounds"),
    ("cross_entropy target shape", lambda: F.cross_entropy(X2, np.array([0, 1])), ValueError,
     "target"),
    ("cross_entropy reduction", lambda: F.cross_entropy(X2, np.array([0, 1, 1]), reduction="avg"),
     ValueError, "reduction"),
    ("cross_entropy no classes", lambda: F.cross_entropy(np.ones((3, 0), np.float32),
                                                         np.zeros((3, 0), np.float32),
                                                         label_smoothing=0.1),
     ValueError, "at least one class"),  # fuzz finding: ZeroDivisionError
    ("nll_loss no classes", lambda: F.nll_loss(np.ones((3, 0), np.float32), np.zeros(3, int)),
     ValueError, "at least one class"),
    ("group_norm C = 0, groups 2**63-1", lambda: F.group_norm(np.ones((5, 0, 3), np.float32),
                                                              2**63 - 1),
     OverflowError, "statistics"),  # fuzz finding: signed overflow (UBSan) in the statistics count
    ("nll_loss ignore_index 2**70", lambda: F.nll_loss(X2, np.array([0, 1, 1]), ignore_index=2**70),
     OverflowError, "ignore_index"),
    # pooling parameters whose arithmetic overflowed int64 (fuzz findings: a wrong output size)
    ("max_pool kernel 2**63-1", lambda: F.max_pool2d(X4, 2**63 - 1), ValueError,
     "Output size is too small"),
    ("max_pool stride 2**63-1 padding 1", lambda: F.max_pool2d(X4, 3, 2**63 - 1, 1), None, None),
    ("avg_pool stride 2**63-1 padding 1", lambda: F.avg_pool2d(X4, 3, 2**63 - 1, 1), None, None),
    ("max_pool kernel 2**31", lambda: F.max_pool2d(X4, 2**31), ValueError, "too small"),
    ("avg_pool divisor 0", lambda: F.avg_pool2d(X4, 2, divisor_override=0), ValueError, "divisor"),
    ("avg_pool divisor 2**63", lambda: F.avg_pool2d(X4, 2, divisor_override=2**63), OverflowError,
     "divisor_override"),
    ("adaptive output 2**31", lambda: F.adaptive_max_pool2d(X4, 2**31), OverflowError, "overflows"),
    ("adaptive output 2**62", lambda: F.adaptive_avg_pool2d(X4, 2**62), OverflowError, "overflows"),
    ("adaptive output 2**63", lambda: F.adaptive_avg_pool2d(X4, 2**63), OverflowError, "output_size"),
    ("adaptive output (0, 2**31, 2**32)", lambda: F.adaptive_max_pool3d(
        np.ones((9, 9, 8, 1)), (0, 2**31, 2**32), return_indices=True), ValueError,
     "strides do not fit"),  # fuzz finding: an empty output whose strides overflowed (UBSan)
    ("adaptive output -1", lambda: F.adaptive_avg_pool2d(X4, -1), ValueError, "output_size"),
    ("max_pool_input index 2**40", lambda: G.max_pool2d_input(
        np.ones((2, 4, 4, 4), np.float32), np.full((2, 4, 4, 4), 2**40, np.int64), X4.shape),
     ValueError, "outside the input plane"),
    ("max_pool_input float indices", lambda: G.max_pool2d_input(
        np.ones((2, 4, 4, 4), np.float32), np.zeros((2, 4, 4, 4)), X4.shape), TypeError, "int64"),
    # signal
    ("correlate ndim mismatch", lambda: S.correlate(X4, X2), ValueError, "dimensionality"),
    ("correlate empty", lambda: S.correlate(np.ones(0), np.ones(3)), ValueError, "empty"),
    ("correlate mode", lambda: S.correlate(X2, X2, "middle"), ValueError, "mode"),
    ("correlate method", lambda: S.correlate(X2, X2, method="winograd"), ValueError, "method"),
    ("correlate2d boundary", lambda: S.correlate2d(X2, X2, boundary="mirror"), ValueError,
     "boundary"),
    ("correlate2d 3-d", lambda: S.correlate2d(X4[0], X4[0]), ValueError, "2-D"),
    ("correlate2d valid, neither larger", lambda: S.correlate2d(np.ones((2, 6)), X2, "valid"),
     ValueError, "at least as large as the other in every dimension"),
    ("match_template larger", lambda: S.match_template(X2, np.ones((6, 6))), ValueError,
     "larger than template"),
    ("match_template 4-d", lambda: S.match_template(X4, X2), ValueError, "2-D or 3-D"),
    # plans, layers, runtime
    ("plan stride 2**63", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32), stride=2**63),
     OverflowError, "stride"),
    ("plan residual shape", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32))(
        np.ones((1, 1, 5, 5), np.float32), residual=np.ones((1, 1, 2, 2), np.float32)),
     ValueError, "residual"),
    ("plan dilation ()", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32), dilation=()),
     ValueError, "dilation"),  # fuzz finding: an IndexError before the argument was checked
    ("plan padding ()", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32), padding=()),
     ValueError, "padding"),
    ("plan activation", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32),
                                              activation="swish2"), ValueError, "activation"),
    ("plan output_stores", lambda: fastconv.plan(np.ones((1, 1, 3, 3), np.float32),
                                                 output_stores=b"cache"), ValueError,
     "output_stores"),
    ("Conv2d kernel 2**62", lambda: nn.Conv2d(1, 1, 2**62), (ValueError, MemoryError), None),
    ("Conv2d channels 2**31", lambda: nn.Conv2d(2**31, 1, 3), (ValueError, MemoryError), None),
    ("Conv2d channels -1", lambda: nn.Conv2d(-1, 1, 3), ValueError, None),
    ("Conv2d groups 0", lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, "groups"),
    ("Linear 2**31", lambda: nn.Linear(2**31, 2**31), (ValueError, MemoryError), None),
    ("BatchNorm2d -1", lambda: nn.BatchNorm2d(-1), ValueError, None),
    ("MaxPool2d kernel 0", lambda: nn.MaxPool2d(0)(X4), ValueError, "kernel size"),
    ("set_num_threads 0", lambda: fastconv.set_num_threads(0), ValueError, "set_num_threads"),
    ("set_num_threads 2**63", lambda: fastconv.set_num_threads(2**63), ValueError,
     "set_num_threads"),
    ("set_workspace_limit -1", lambda: fastconv.set_workspace_limit(-1), ValueError,
     "set_workspace_limit"),
    ("set_workspace_limit 2**64", lambda: fastconv.set_workspace_limit(2**64), ValueError,
     "set_workspace_limit"),
    ("set_isa unknown", lambda: fastconv.set_isa("sse9"), ValueError, "not available"),
]


@pytest.mark.parametrize("call, exc, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument(call, exc, fragment):
    threads = fastconv.get_num_threads()
    start = time.perf_counter()
    try:
        if exc is None:
            # valid but extreme: a correct (tiny) result, not an overflow into a wrong answer
            out = call()
            assert out.shape[2:] == (1, 1)
        else:
            with pytest.raises(exc, match=re.escape(fragment) if fragment else None):
                call()
    finally:
        fastconv.set_num_threads(threads)
    assert time.perf_counter() - start < 2.0, "rejecting took long enough to be an allocation"


def test_extreme_stride_gives_pytorchs_single_window():
    """stride 2**63 - 1 with padding 1: one window per axis, at the padded origin."""
    y = F.max_pool2d(X4, 3, 2**63 - 1, 1)
    np.testing.assert_array_equal(y[..., 0, 0], X4[..., :2, :2].max(axis=(2, 3)))
    a = F.avg_pool2d(X4, 3, 2**63 - 1, 1)
    np.testing.assert_allclose(a[..., 0, 0], X4[..., :2, :2].sum(axis=(2, 3)) / 9, rtol=1e-6)


# --- layouts ------------------------------------------------------------------------------

def _strided(a):
    big = np.repeat(a, 2, axis=-1)
    return big[..., ::2]


def _negative(a):
    flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
    return flipped[(slice(None, None, -1),) * a.ndim]


def _zero_stride(a):
    """A broadcast (zero-stride) view holding a's values along the broadcast axis only."""
    return np.broadcast_to(a[:1], a.shape)


LAYOUTS = {
    "fortran": np.asfortranarray,
    "negative": _negative,
    "strided": _strided,
    "zero_stride": _zero_stride,
    "unaligned": _unaligned,
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "readonly": _readonly,
}

rng = np.random.default_rng(7)
A4 = rng.uniform(-2, 2, (3, 4, 6, 6)).astype(np.float32)
B4 = rng.uniform(-2, 2, (3, 4, 6, 6)).astype(np.float32)
V4 = rng.uniform(0.5, 2, 4).astype(np.float32)
M2 = rng.uniform(-2, 2, (5, 7)).astype(np.float32)
W2 = rng.uniform(-2, 2, (3, 7)).astype(np.float32)
T2 = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
IDX = F.max_pool2d(A4, 2, return_indices=True)[1]
G4 = rng.uniform(-1, 1, (3, 4, 3, 3)).astype(np.float32)

# op name -> (function, arguments): every array argument is varied in turn
OPS = {
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True), (A4,)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (A4,)),
    "adaptive_max_pool2d": (lambda x: F.adaptive_max_pool2d(x, (4, 5), True), (A4,)),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (4, 5)), (A4,)),
    "max_pool2d_input": (lambda g, i: G.max_pool2d_input(g, i, A4.shape), (G4, IDX)),
    "avg_pool2d_input": (lambda g: G.avg_pool2d_input(g, A4.shape, 2), (G4,)),
    "batch_norm_eval": (lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b), (A4, V4 - 1, V4, V4, V4)),
    "batch_norm_train": (lambda x, w: F.batch_norm(x, None, None, w, None, True), (A4, V4)),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b), (A4, V4, V4)),
    "instance_norm": (lambda x: F.instance_norm(x), (A4,)),
    "layer_norm": (lambda x: F.layer_norm(x, (6, 6)), (A4,)),
    "batch_norm_backward": (lambda g, x, w: G.batch_norm_backward(g, x, None, None, w, True),
                            (B4, A4, V4)),
    "group_norm_backward": (lambda g, x: G.group_norm_backward(g, x, 2), (B4, A4)),
    "layer_norm_backward": (lambda g, x: G.layer_norm_backward(g, x, (6,)), (B4, A4)),
    "silu": (F.silu, (A4,)),
    "gelu": (F.gelu, (A4,)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), (A4,)),
    "hardswish_input": (G.hardswish_input, (B4, A4)),
    "softmax": (lambda x: F.softmax(x, 1), (A4,)),
    "log_softmax_input": (lambda g, y: G.log_softmax_input(g, y, 3), (B4, A4)),
    "linear": (F.linear, (M2, W2, V4[:3])),
    "linear_weight": (G.linear_weight, (rng.uniform(-1, 1, (5, 3)).astype(np.float32), M2)),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([0, 2, 1, 6, 3])), (M2,)),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2), (A4, rng.uniform(-1, 1, (4, 2, 3, 3)).astype(np.float32))),
    "correlate": (lambda a, b: S.correlate(a, b, method="fft"), (M2, T2)),
    "convolve2d": (lambda a, b: S.convolve2d(a, b, boundary="symm"), (M2, T2)),
    "match_template": (S.match_template, (M2, T2)),
    "plan": (lambda x: fastconv.plan(B4[:2, :4, :3, :3], padding=1, activation="relu")(x), (A4,)),
}


def _flat(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("op", list(OPS))
def test_layout_gives_the_contiguous_bits(op, layout):
    fn, args = OPS[op]
    want = _flat(fn(*[a.copy() for a in args]))
    for i, a in enumerate(args):
        if layout == "zero_stride" and a.dtype.kind != "f":
            continue  # indices are computed per position
        base = _zero_stride(a) if layout == "zero_stride" else a
        varied = LAYOUTS[layout](a)
        snapshot = varied.copy()
        expect = want if layout != "zero_stride" else _flat(
            fn(*[np.ascontiguousarray(base) if j == i else b.copy() for j, b in enumerate(args)]))
        got = _flat(fn(*[varied if j == i else b.copy() for j, b in enumerate(args)]))
        for g, e in zip(got, expect):
            assert g.dtype == e.dtype and g.shape == e.shape
            assert np.array_equal(g, e, equal_nan=True) and g.tobytes() == e.tobytes(), (op, i)
            assert not np.shares_memory(g, varied)
        np.testing.assert_array_equal(varied, snapshot)
