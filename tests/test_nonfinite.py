"""NaN and Inf semantics of every op (docs/RELIABILITY.md states them; this file holds them).

The rule: an output is NaN exactly where the float64 definition is NaN, for every algorithm
except the transform ones (winograd*, fft: their transforms mix a whole tile, so a non-finite
value may reach more outputs of the tile — never fewer — and an infinity may come out as NaN),
and 'auto' keeps the definition's pattern in every direction. Infinities follow IEEE arithmetic of the definition (Inf x 0 is
NaN; Inf - Inf is NaN). Beyond convolution (whose forward pattern test_plan.py pins for every
activation): the gradients of convolution, pooling, normalisation (a non-finite value poisons
exactly the statistics it enters), activations (elementwise, PyTorch's values at +-Inf),
softmax (its row), linear (its row / column) and the signal functions.
"""

import numpy as np
import pytest

from fastconv import functional as F
from fastconv import grad as G
from fastconv import signal as S
from conftest import ALGOS_BY_DIRECTION, spreads_non_finite, unless_declined
import reference as R


def _poison(a, values, seed):
    a = a.copy()
    flat = a.reshape(-1)
    rng = np.random.default_rng(seed)
    for i, v in zip(rng.choice(flat.size, size=len(values), replace=False), values):
        flat[i] = v
    return a


def _check_pattern(got, want, spreads, where):
    bad_got, bad_want = ~np.isfinite(got), ~np.isfinite(want)
    assert bad_want.any(), f"{where}: the case has no non-finite output"
    lost = bad_want & ~bad_got
    assert not lost.any(), f"{where}: {int(lost.sum())} non-finite outputs lost"
    added = bad_got & ~bad_want
    assert spreads or not added.any(), f"{where}: {int(added.sum())} non-finite outputs added"
    if spreads:
        return  # a transform may also turn an infinity into NaN (Inf - Inf in its sums)
    same = bad_want & bad_got
    # where both are infinite, the same infinity; NaN where the definition has NaN
    assert np.array_equal(np.isnan(got[same]), np.isnan(want[same])), f"{where}: NaN vs Inf"
    inf = same & np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"{where}: the sign of an infinity"


VALUES = {"nan": [np.nan], "inf": [np.inf, -np.inf]}
KW = dict(stride=1, padding=1)


@pytest.mark.parametrize("kind", list(VALUES))
@pytest.mark.parametrize("algo", ALGOS_BY_DIRECTION["backward_data"])
def test_conv_input_grad(algo, kind):
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (6, 4, 3, 3))
    gy = _poison(rng.uniform(-1, 1, (2, 6, 9, 9)), VALUES[kind], 2)
    want = R.conv_input_grad((2, 4, 9, 9), w, gy, **KW)
    got = unless_declined(algo, lambda: G.conv2d_input((2, 4, 9, 9), w, gy, **KW, algo=algo))
    if got is not None:
        _check_pattern(got, want, spreads_non_finite(algo), f"conv2d_input {algo} {kind}")


@pytest.mark.parametrize("kind", list(VALUES))
@pytest.mark.parametrize("algo", ALGOS_BY_DIRECTION["backward_weights"])
def test_conv_weight_grad(algo, kind):
    rng = np.random.default_rng(3)
    x = _poison(rng.uniform(-1, 1, (2, 4, 9, 9)), VALUES[kind], 4)
    gy = rng.uniform(-1, 1, (2, 6, 9, 9))
    want = R.conv_weight_grad(x, (6, 4, 3, 3), gy, **KW)
    got = unless_declined(algo, lambda: G.conv2d_weight(x, (6, 4, 3, 3), gy, **KW, algo=algo))
    if got is not None:
        _check_pattern(got, want, spreads_non_finite(algo), f"conv2d_weight {algo} {kind}")


@pytest.mark.parametrize("kind", list(VALUES))
def test_pooling(kind):
    x = _poison(np.random.default_rng(5).uniform(-1, 1, (2, 3, 8, 8)), VALUES[kind], 6)
    _check_pattern(F.max_pool2d(x, 3, 2, 1), R.max_pool_reference(x, 2, 3, 2, 1)[0], False,
                   "max_pool2d")
    _check_pattern(F.avg_pool2d(x, 3, 2, 1), R.avg_pool_reference(x, 2, 3, 2, 1), False,
                   "avg_pool2d")
    _check_pattern(F.adaptive_avg_pool2d(x, 3), R.adaptive_avg_pool_reference(x, 2, 3), False,
                   "adaptive_avg_pool2d")
    g = _poison(np.ones((2, 3, 4, 4)), VALUES[kind], 7)
    _check_pattern(G.avg_pool2d_input(g, x.shape, 3, 2, 1),
                   R.avg_pool_input_grad(g, x.shape, 2, 3, 2, 1), False, "avg_pool2d_input")


def test_norms_poison_their_statistics_only():
    """A NaN enters one statistic: batch norm its channel, group norm its (sample, group),
    layer norm its row; every other output stays finite."""
    x = np.random.default_rng(8).uniform(-1, 1, (3, 4, 5, 5))
    x[1, 2, 3, 4] = np.nan
    bad = ~np.isfinite(F.batch_norm(x, None, None, training=True))
    assert bad[:, 2].all() and not bad[:, [0, 1, 3]].any()
    bad = ~np.isfinite(F.group_norm(x, 2))
    assert bad[1, 2:].all() and bad.sum() == 2 * 25
    bad = ~np.isfinite(F.layer_norm(x, (5, 5)))
    assert bad[1, 2].all() and bad.sum() == 25
    y = F.batch_norm(x, np.zeros(4), np.ones(4))  # running statistics: elementwise
    assert np.isnan(y[1, 2, 3, 4]) and np.isfinite(np.delete(y.ravel(), 1 * 100 + 2 * 25 + 19)).all()
    gx, gw, gb = G.batch_norm_backward(np.ones_like(x), x, None, None, np.ones(4), True)
    assert (~np.isfinite(gx[:, 2])).all() and np.isfinite(gx[:, [0, 1, 3]]).all()
    assert np.isnan(gw[2]) and np.isfinite(gw[[0, 1, 3]]).all() and np.isfinite(gb).all()


ACTS = {
    "relu": (F.relu, [np.nan, np.inf, 0.0]),
    "relu6": (F.relu6, [np.nan, 6.0, 0.0]),
    "leaky_relu": (F.leaky_relu, [np.nan, np.inf, -np.inf]),
    "hardtanh": (F.hardtanh, [np.nan, 1.0, -1.0]),
    "elu": (F.elu, [np.nan, np.inf, -1.0]),
    "sigmoid": (F.sigmoid, [np.nan, 1.0, 0.0]),
    "tanh": (F.tanh, [np.nan, 1.0, -1.0]),
    "silu": (F.silu, [np.nan, np.inf, np.nan]),  # -Inf x sigmoid(-Inf) = -Inf x 0
    "hardsigmoid": (F.hardsigmoid, [np.nan, 1.0, 0.0]),
    "hardswish": (F.hardswish, [np.nan, np.inf, 0.0]),  # PyTorch: NaN at -Inf (x < -3: 0 here)
    "gelu": (F.gelu, [np.nan, np.inf, np.nan]),  # PyTorch: NaN at +Inf (Inf x Phi(Inf) = Inf)
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_at_nan_and_infinities(name, dtype):
    """f(NaN) = NaN (no clamp swallows it), f(+Inf), f(-Inf) as PyTorch gives them."""
    fn, want = ACTS[name]
    got = fn(np.array([np.nan, np.inf, -np.inf], dtype))
    np.testing.assert_array_equal(got, np.array(want, dtype))


def test_softmax_and_linear_rows():
    x = np.random.default_rng(9).uniform(-1, 1, (4, 6))
    x[2, 3] = np.nan
    for fn in (F.softmax, F.log_softmax):
        bad = np.isnan(fn(x, 1))
        assert bad[2].all() and bad.sum() == 6
    y = F.softmax(np.array([[np.inf, 0.0], [-np.inf, 0.0]]), 1)
    np.testing.assert_array_equal(y, [[np.nan, np.nan], [0.0, 1.0]])  # as torch: inf - inf
    bad = np.isnan(F.linear(x, np.ones((5, 6))))
    assert bad[2].all() and bad.sum() == 5


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_signal(method):
    a = _poison(np.random.default_rng(10).uniform(-1, 1, (16, 16)), [np.nan], 11)
    b = np.random.default_rng(12).uniform(-1, 1, (3, 3))
    got = S.correlate(a, b, "same", method=method)
    want = S.correlate(np.nan_to_num(a, nan=1e300), b, "same", method="direct")
    _check_pattern(got, np.where(np.abs(want) > 1e200, np.nan, want), method == "fft",
                   f"correlate {method}")
