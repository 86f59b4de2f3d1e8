"""Layer ops of issue 8 — normalisations, activations, softmax, linear, dropout, losses — forward
against the float64 references of reference_nn.py, gradients against central finite
differences of those references (float64) and against the float64 gradients (float32), bad
arguments, and, where torch is installed, every op and gradient against torch's autograd."""

import numpy as np
import pytest

import fastconv
from fastconv import functional as F, grad
from reference import normalized_error
import reference_nn as R

DTYPES = (np.float32, np.float64)
TOL = {np.float32: 2e-6, np.float64: 1e-12}
FD_TOL = 1e-6  # finite differences of float64 references: relative to max |gradient|


def rand(shape, dtype=np.float64, seed=0, scale=1.0, offset=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(dtype)


def check_close(y, ref, dtype, tol=None):
    assert isinstance(y, np.ndarray) and y.dtype == dtype, (type(y), getattr(y, "dtype", None))
    assert y.shape == np.shape(ref)
    err = normalized_error(y, ref)
    assert err <= (tol or TOL[dtype]), err


def check_fd(f, x, analytic, g, tol=FD_TOL):
    """analytic (d sum(g f(x)) / dx) against central differences at random elements."""
    idx, numeric = R.numeric_grad(f, x, g)
    got = np.asarray(analytic, np.float64).reshape(-1)[idx]
    scale = max(np.abs(numeric).max(), 1e-3)
    assert np.abs(got - numeric).max() / scale <= tol, (got, numeric)


# ---------------------------------------------------------------------------------------------
# normalisations

NORM_SHAPES = [(4, 3), (2, 5, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4)]


@pytest.mark.parametrize("shape", NORM_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_training_and_running_stats(shape, dtype, affine):
    C = shape[1]
    x = rand(shape, dtype, scale=3, offset=5)
    w = rand(C, dtype, 1) if affine else None
    b = rand(C, dtype, 2) if affine else None
    rm, rv = rand(C, np.float32, 3), np.abs(rand(C, np.float32, 4)) + 1
    rm0, rv0 = rm.copy(), rv.copy()
    y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3)
    mean, var = R.batch_stats(x)
    check_close(y, R.batch_norm(x, mean, var, w, b, 1e-3), dtype)
    count = x.size // C
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mean, rtol=1e-6)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * count / (count - 1), rtol=1e-6)
    y = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3)  # running statistics
    check_close(y, R.batch_norm(x, rm.astype(np.float64), rv.astype(np.float64), w, b, 1e-3), dtype)


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((3, 4, 3, 3), 1), ((2, 4, 3, 3), 4),
                                          ((1, 8, 2, 2, 2), 2), ((5, 3), 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm(shape, groups, dtype):
    C = shape[1]
    x = rand(shape, dtype, scale=2, offset=-3)
    w, b = rand(C, dtype, 1), rand(C, dtype, 2)
    check_close(F.group_norm(x, groups, w, b, eps=1e-4), R.group_norm(x, groups, w, b, 1e-4), dtype)
    check_close(F.group_norm(x, groups), R.group_norm(x, groups, None, None, 1e-5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm(dtype):
    x = rand((3, 4, 5, 6), dtype, offset=2)
    w, b = rand(4, dtype, 1), rand(4, dtype, 2)
    check_close(F.instance_norm(x, weight=w, bias=b), R.group_norm(x, 4, w, b, 1e-5), dtype)
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    F.instance_norm(x, rm, rv, momentum=0.5)
    inst = x.astype(np.float64).reshape(3, 4, -1)
    np.testing.assert_allclose(rm, 0.5 * inst.mean(-1).mean(0), rtol=1e-6)
    np.testing.assert_allclose(rv, 0.5 + 0.5 * inst.var(-1, ddof=1).mean(0), rtol=1e-6)
    y = F.instance_norm(x, rm, rv, w, b, use_input_stats=False)
    check_close(y, R.batch_norm(x, rm.astype(np.float64), rv.astype(np.float64), w, b, 1e-5), dtype)


@pytest.mark.parametrize("shape,normalized", [((4, 10), (10,)), ((2, 3, 4, 5), (4, 5)),
                                              ((7,), (7,)), ((2, 3, 4), (2, 3, 4))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(shape, normalized, dtype):
    x = rand(shape, dtype, scale=4, offset=10)
    w, b = rand(normalized, dtype, 1), rand(normalized, dtype, 2)
    check_close(F.layer_norm(x, normalized, w, b), R.layer_norm(x, normalized, w, b, 1e-5), dtype)
    check_close(F.layer_norm(x, normalized), R.layer_norm(x, normalized, None, None, 1e-5), dtype)


def _norm_cases():
    C = 4
    w, b = rand(C, seed=1), rand(C, seed=2)
    yield ("batch_train", (3, C, 5),
           lambda x, w, b: R.batch_norm(x, *R.batch_stats(x), w, b, 1e-5),
           lambda g, x, w: grad.batch_norm_backward(g, x, weight=w, training=True), w, b)
    rm, rv = rand(C, seed=3), np.abs(rand(C, seed=4)) + 0.5
    yield ("batch_eval", (3, C, 5),
           lambda x, w, b: R.batch_norm(x, rm, rv, w, b, 1e-5),
           lambda g, x, w: grad.batch_norm_backward(g, x, rm, rv, weight=w), w, b)
    yield ("group", (3, C, 2, 3),
           lambda x, w, b: R.group_norm(x, 2, w, b, 1e-5),
           lambda g, x, w: grad.group_norm_backward(g, x, 2, weight=w), w, b)
    yield ("instance", (2, C, 6),
           lambda x, w, b: R.group_norm(x, C, w, b, 1e-5),
           lambda g, x, w: grad.instance_norm_backward(g, x, weight=w), w, b)
    lw, lb = rand((2, 3), seed=5), rand((2, 3), seed=6)
    yield ("layer", (4, 2, 3),
           lambda x, w, b: R.layer_norm(x, (2, 3), w, b, 1e-5),
           lambda g, x, w: grad.layer_norm_backward(g, x, (2, 3), weight=w), lw, lb)


@pytest.mark.parametrize("case", list(_norm_cases()), ids=lambda c: c[0])
def test_norm_gradients_by_finite_differences(case):
    _, shape, ref, backward, w, b = case
    x = rand(shape, seed=7, scale=2, offset=1)
    g = rand(shape, seed=8)
    dx, dw, db = backward(g, x, w)
    check_fd(lambda v: ref(v, w, b), x, dx, g)
    check_fd(lambda v: ref(x, v, b), w, dw, g)
    check_fd(lambda v: ref(x, w, v), b, db, g)
    # the float32 path agrees with the float64 one
    f32 = backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32))
    for got, want in zip(f32, (dx, dw, db)):
        check_close(got, want, np.float32, 2e-5)


def test_norms_do_not_depend_on_thread_count():
    x = rand((8, 16, 17, 19), np.float32, offset=3)
    g = rand(x.shape, np.float32, 1)
    runs = []
    before = fastconv.get_num_threads()
    try:
        for t in (1, 2):
            fastconv.set_num_threads(t)
            runs.append([F.batch_norm(x, None, None, training=True), F.group_norm(x, 4),
                         *grad.batch_norm_backward(g, x, training=True),
                         *grad.layer_norm_backward(g, x, (17, 19))])
    finally:
        fastconv.set_num_threads(before)
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_norm_bad_arguments():
    x = rand((2, 6, 4), np.float32)
    with pytest.raises(ValueError, match="num_groups"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match="weight of size"):
        F.batch_norm(x, None, None, np.ones(5, np.float32), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(x[:1, :, :1], None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.group_norm(x.astype(np.int32), 2)
    with pytest.raises(TypeError, match="same dtype"):
        F.layer_norm(x, (4,), np.ones(4))
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.batch_norm(np.ones(3, np.float32), None, None, training=True)
    with pytest.raises(TypeError, match="writable numpy array"):
        F.batch_norm(x, [0.0] * 6, [1.0] * 6, training=True)


# ---------------------------------------------------------------------------------------------
# activations

ACT_NAMES = sorted(R.ACTIVATIONS)
ACT_PARAMS = {"leaky_relu": {"negative_slope": 0.2}, "hardtanh": {"min_val": -0.5, "max_val": 2.0},
              "elu": {"alpha": 0.7}, "gelu": {"approximate": "tanh"}}


def _act(name, x, **params):
    return getattr(F, name)(x, **params)


@pytest.mark.parametrize("name", ACT_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", ["default", "custom"])
def test_activation_forward(name, dtype, params):
    ref, defaults = R.ACTIVATIONS[name]
    kw = dict(defaults, **(ACT_PARAMS.get(name, {}) if params == "custom" else {}))
    call = {k: v for k, v in kw.items() if params == "custom"}
    x = np.concatenate([rand(4000, dtype, scale=4), np.array([0, -3, 3, 6, -1, 1, 50, -50], dtype)])
    y = _act(name, x, **call)
    check_close(y, ref(x.astype(np.float64), **kw), dtype, 4e-7 if dtype == np.float32 else 1e-14)
    nan = _act(name, np.array([np.nan], dtype), **call)
    assert np.isnan(nan[0]), name


@pytest.mark.parametrize("name", ACT_NAMES)
@pytest.mark.parametrize("params", ["default", "custom"])
def test_activation_gradient(name, params):
    ref, defaults = R.ACTIVATIONS[name]
    kw = dict(defaults, **(ACT_PARAMS.get(name, {}) if params == "custom" else {}))
    x = rand(500, scale=3)
    x = x[np.min(np.abs(x[:, None] - np.array([0, -3, 3, 6, -0.5, 2, -1, 1])), 1) > 1e-3]  # no kinks
    g = rand(x.shape, seed=1)
    dx = getattr(grad, f"{name}_input")(g, x, **kw)
    check_fd(lambda v: ref(v, **kw), x, dx, g)
    dx32 = getattr(grad, f"{name}_input")(g.astype(np.float32), x.astype(np.float32), **kw)
    check_close(dx32, dx, np.float32, 2e-6)


def test_activation_kinks_follow_pytorch():
    x = np.array([-3.0, 0.0, 3.0, 6.0, -1.0, 1.0])
    g = np.ones_like(x)
    assert grad.relu_input(g, x).tolist() == [0, 0, 1, 1, 0, 1]
    assert grad.relu6_input(g, x).tolist() == [0, 0, 1, 0, 0, 1]
    assert grad.hardtanh_input(g, x).tolist() == [0, 1, 0, 0, 0, 0]
    assert grad.hardswish_input(g, x).tolist() == pytest.approx([0, 0.5, 1, 1, 1 / 6, 5 / 6])
    assert grad.hardsigmoid_input(g, x).tolist() == [0, 1 / 6, 0, 0, 1 / 6, 1 / 6]
    assert grad.leaky_relu_input(g, x).tolist() == [0.01, 0.01, 1, 1, 0.01, 1]


def test_activation_inplace():
    x = rand((3, 4), np.float32)
    want = F.relu(x)
    y = F.relu(x, inplace=True)
    assert y is x and np.array_equal(x, want)
    base = rand((4, 6), np.float64)
    view = base[:, ::2]  # not contiguous: computed, then copied back
    want = F.silu(view)
    assert F.silu(view, inplace=True) is view and np.array_equal(base[:, ::2], want)
    ro = rand(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        F.relu(ro, inplace=True)


def test_activation_bad_arguments():
    with pytest.raises(TypeError, match="float32 or float64"):
        F.relu(np.arange(3))
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(np.ones(2), approximate="fast")
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(np.ones(2), 2.0, 1.0)
    with pytest.raises(ValueError, match="grad_output of size"):
        grad.relu_input(np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="negative_slope"):
        F.leaky_relu(np.ones(2), "0.1")


# ---------------------------------------------------------------------------------------------
# softmax

@pytest.mark.parametrize("shape,dim", [((5, 7), 1), ((5, 7), 0), ((2, 3, 4, 5), 1), ((2, 3, 4), -1),
                                       ((6,), 0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax(shape, dim, dtype, log):
    x = rand(shape, dtype, scale=10)
    y = (F.log_softmax if log else F.softmax)(x, dim)
    check_close(y, R.softmax(x, dim, log), dtype)
    g = rand(shape, seed=1)
    x64 = x.astype(np.float64)
    y64 = (F.log_softmax if log else F.softmax)(x64, dim)
    dx = (grad.log_softmax_input if log else grad.softmax_input)(g, y64, dim)
    check_fd(lambda v: R.softmax(v, dim, log), x64, dx, g)


def test_softmax_special_values_and_arguments():
    y = F.softmax(np.array([[1.0, np.nan], [1000.0, 1000.0]]), 1)
    assert np.isnan(y[0]).all() and y[1].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="Dimension out of range"):
        F.softmax(np.ones((2, 3)), 2)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(np.ones((2, 4)))
    assert y.tolist() == [[0.25] * 4] * 2
    assert F.softmax(np.ones(3, np.float32), 0, dtype=np.float64).dtype == np.float64


# ---------------------------------------------------------------------------------------------
# linear, dropout

@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(dtype):
    x, w, b = rand((2, 3, 5), dtype), rand((4, 5), dtype, 1), rand(4, dtype, 2)
    ref = x.astype(np.float64) @ w.astype(np.float64).T + b
    check_close(F.linear(x, w, b), ref, dtype)
    g = rand((2, 3, 4), seed=3)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    check_fd(lambda v: v @ w64.T + b64, x64, grad.linear_input(g, w64), g)
    check_fd(lambda v: x64 @ v.T + b64, w64, grad.linear_weight(g, x64), g)
    check_fd(lambda v: x64 @ w64.T + v, b64, grad.linear_bias(g), g)
    with pytest.raises(ValueError, match="cannot be multiplied"):
        F.linear(x, w.T)
    with pytest.raises(TypeError, match="same dtype"):
        F.linear(x, w.astype(np.float64 if dtype == np.float32 else np.float32))


def test_dropout():
    x = np.ones((200, 500), np.float32)
    fastconv.manual_seed(1)
    y = F.dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert np.allclose(y[kept], 1 / 0.7)
    fastconv.manual_seed(1)
    assert np.array_equal(F.dropout(x, 0.3), y)
    assert np.array_equal(F.dropout(x, 0.3, training=False), x)
    assert not F.dropout(x, 1.0).any()
    g = np.full_like(x, 2)
    assert np.array_equal(grad.dropout_input(g, kept, 0.3), 2 * y)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------------------------------------
# cross entropy

CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight="w"),
    dict(weight="w", ignore_index=1),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, weight="w", ignore_index=2, reduction="mean"),
    dict(probs=True),
    dict(probs=True, label_smoothing=0.3, weight="w", reduction="none"),
]


@pytest.mark.parametrize("case", CE_CASES, ids=str)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (4,)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(case, shape, dtype):
    case = dict(case)
    probs = case.pop("probs", False)
    rng = np.random.default_rng(0)
    x = rand(shape, dtype, scale=2)
    C = shape[0] if len(shape) == 1 else shape[1]
    if case.get("weight") == "w":
        case["weight"] = rng.random(C) + 0.5
    if probs:
        t = rng.random(shape)
        t /= t.sum(0 if len(shape) == 1 else 1, keepdims=True)
    else:
        t = rng.integers(0, C, (shape[0],) + shape[2:] if len(shape) > 1 else ())
    loss = F.cross_entropy(x, t, **case)
    ref = R.cross_entropy(x, t, **case)
    check_close(np.asarray(loss), np.asarray(ref), dtype)
    g = rand(np.shape(ref), seed=4) if case.get("reduction") == "none" else np.float64(1.7)
    x64 = x.astype(np.float64)
    dx = grad.cross_entropy_input(g, x64, t, **case)
    check_fd(lambda v: R.cross_entropy(v, t, **case), x64, dx, g)


def test_cross_entropy_bad_arguments():
    x = rand((3, 4))
    with pytest.raises(ValueError, match="out of bounds"):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="target of size"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="class indices"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=2.0)
    assert float(F.nll_loss(np.log(np.full((2, 2), 0.5)), np.array([1, 0]))) == pytest.approx(np.log(2))


# ---------------------------------------------------------------------------------------------
# against torch's autograd (float64), where torch is installed

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _torch_grads(fn, *arrays):
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    g = torch.tensor(rand(tuple(out.shape), seed=11))
    out.backward(g)
    return out.detach().numpy(), g.numpy(), [None if t is None else t.grad.numpy() for t in ts]


@needs_torch
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(training):
    x, w, b = rand((4, 3, 5, 5), offset=2), rand(3, seed=1), rand(3, seed=2)
    rm, rv = rand(3, seed=3), np.abs(rand(3, seed=4)) + 0.5
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    out, g, (tdx, tdw, tdb) = _torch_grads(
        lambda x, w, b: torch.nn.functional.batch_norm(x, trm, trv, w, b, training, 0.2, 1e-3),
        x, w, b)
    y = F.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-3)
    np.testing.assert_allclose(y, out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)
    if not training:
        dx, dw, db = grad.batch_norm_backward(g, x, rm, rv, w, False, 1e-3)
    else:
        dx, dw, db = grad.batch_norm_backward(g, x, weight=w, training=True, eps=1e-3)
    for got, want in ((dx, tdx), (dw, tdw), (db, tdb)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@needs_torch
def test_group_layer_instance_norm_match_torch():
    tf = torch.nn.functional
    x = rand((3, 6, 4, 5), offset=1)
    w, b = rand(6, seed=1), rand(6, seed=2)
    out, g, (tdx, tdw, tdb) = _torch_grads(lambda x, w, b: tf.group_norm(x, 3, w, b), x, w, b)
    np.testing.assert_allclose(F.group_norm(x, 3, w, b), out, rtol=1e-10, atol=1e-12)
    for got, want in zip(grad.group_norm_backward(g, x, 3, w), (tdx, tdw, tdb)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    lw, lb = rand((4, 5), seed=3), rand((4, 5), seed=4)
    out, g, (tdx, tdw, tdb) = _torch_grads(lambda x, w, b: tf.layer_norm(x, (4, 5), w, b), x, lw, lb)
    np.testing.assert_allclose(F.layer_norm(x, (4, 5), lw, lb), out, rtol=1e-10, atol=1e-12)
    for got, want in zip(grad.layer_norm_backward(g, x, (4, 5), lw), (tdx, tdw, tdb)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    out, g, (tdx, tdw, tdb) = _torch_grads(
        lambda x, w, b: tf.instance_norm(x, weight=w, bias=b), x, w, b)
    np.testing.assert_allclose(F.instance_norm(x, weight=w, bias=b), out, rtol=1e-10, atol=1e-12)
    for got, want in zip(grad.instance_norm_backward(g, x, w), (tdx, tdw, tdb)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@needs_torch
@pytest.mark.parametrize("name", ACT_NAMES)
def test_activations_match_torch(name):
    kw = ACT_PARAMS.get(name, {})
    x = np.concatenate([rand(300, scale=4), [0.0, -3.0, 3.0, 6.0, -1.0, 1.0, -0.5, 2.0]])
    tfn = getattr(torch.nn.functional, name) if name != "sigmoid" else torch.sigmoid
    tfn = torch.tanh if name == "tanh" else tfn
    out, g, (tdx,) = _torch_grads(lambda t: tfn(t, **kw), x)
    np.testing.assert_allclose(getattr(F, name)(x, **kw), out, rtol=1e-14, atol=1e-15)
    # torch's hardsigmoid gradient multiplies by 1/6 rounded to float32, even in float64
    rtol = 1e-7 if name == "hardsigmoid" else 1e-12
    np.testing.assert_allclose(getattr(grad, f"{name}_input")(g, x, **kw), tdx, rtol=rtol,
                               atol=1e-14)


@needs_torch
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_matches_torch(case):
    case = dict(case)
    probs = case.pop("probs", False)
    rng = np.random.default_rng(5)
    x = rand((5, 4, 3))
    if case.get("weight") == "w":
        case["weight"] = rng.random(4) + 0.5
    t = rng.random((5, 4, 3)) if probs else rng.integers(0, 4, (5, 3))
    if probs:
        t /= t.sum(1, keepdims=True)
    tcase = dict(case)
    if "weight" in tcase:
        tcase["weight"] = torch.tensor(tcase["weight"])
    out, g, (tdx,) = _torch_grads(
        lambda v: torch.nn.functional.cross_entropy(v, torch.tensor(t), **tcase), x)
    np.testing.assert_allclose(F.cross_entropy(x, t, **case), out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad.cross_entropy_input(g, x, t, **case), tdx, rtol=1e-10,
                               atol=1e-13)


@needs_torch
def test_softmax_and_linear_match_torch():
    x = rand((3, 5, 4))
    for log in (False, True):
        tfn = torch.nn.functional.log_softmax if log else torch.nn.functional.softmax
        out, g, (tdx,) = _torch_grads(lambda t: tfn(t, 1), x)
        y = (F.log_softmax if log else F.softmax)(x, 1)
        np.testing.assert_allclose(y, out, rtol=1e-13, atol=1e-15)
        dx = (grad.log_softmax_input if log else grad.softmax_input)(g, y, 1)
        np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-14)
    w, b = rand((6, 4), seed=1), rand(6, seed=2)
    out, g, (tdx, tdw, tdb) = _torch_grads(torch.nn.functional.linear, x, w, b)
    np.testing.assert_allclose(F.linear(x, w, b), out, rtol=1e-13)
    np.testing.assert_allclose(grad.linear_input(g, w), tdx, rtol=1e-12)
    np.testing.assert_allclose(grad.linear_weight(g, x), tdw, rtol=1e-12)
    np.testing.assert_allclose(grad.linear_bias(g), tdb, rtol=1e-12)
