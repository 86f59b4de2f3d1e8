"""Bounded scratch memory: fastconv.set_workspace_limit and the per-call copies it bounds.

A call copies its operands (padded inputs, their gradients) for runs of whole images that fit
the limit (default max(16 MiB, input size)); results must not depend on it: forward and input
gradient bit for bit, the weight gradient within the accuracy budget (runs are summed one after
another). The plan reports what a forward call allocates; on every convolution layer of the
standard set it stays within the default bound.
"""

import json
from importlib import resources

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as G
from conftest import tolerance_for, unless_declined
from reference import conv_weight_grad, normalized_error

MIB = 1 << 20


@pytest.fixture
def limit_restored():
    old = fastconv.get_workspace_limit()
    yield fastconv.set_workspace_limit
    fastconv.set_workspace_limit(old)


def test_limit_setting(limit_restored):
    assert fastconv.get_workspace_limit() == 0
    limit_restored(5 * MIB)
    assert fastconv.get_workspace_limit() == 5 * MIB
    assert fastconv.info()["workspace_limit"] == 5 * MIB
    with pytest.raises(ValueError, match="set_workspace_limit"):
        fastconv.set_workspace_limit(-1)
    with pytest.raises(TypeError, match="nbytes must be an integer"):
        fastconv.set_workspace_limit(1.5)
    assert fastconv.get_workspace_limit() == 5 * MIB  # a rejected value changes nothing


CASES = [  # (input shape, weight shape, kwargs)
    ((5, 6, 11, 9), (8, 6, 3, 3), dict(padding=1)),
    ((4, 8, 10, 12), (8, 4, 3, 2), dict(padding=(2, 1), groups=2, dilation=(1, 2))),
    ((3, 6, 13), (5, 6, 5), dict(padding=2, padding_mode="reflect")),
    ((3, 4, 6, 7, 5), (4, 4, 3, 3, 3), dict(padding=1, padding_mode="circular")),
    ((6, 16, 9, 9), (16, 16, 3, 3), dict(padding="same")),  # the blocked direct path
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_results_do_not_depend_on_the_limit(case, dtype, limit_restored):
    x_shape, w_shape, kw = CASES[case]
    rank = len(x_shape) - 2
    rng = np.random.default_rng(case)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    conv = getattr(F, f"conv{rank}d")
    grad_input = getattr(G, f"conv{rank}d_input")
    grad_weight = getattr(G, f"conv{rank}d_weight")
    dy = None
    for algo in fastconv.algorithms():  # each direction it implements and applies to
        limit_restored(0)
        y = unless_declined(algo, lambda: conv(x, w, algo=algo, **kw))
        if dy is None:
            dy = rng.uniform(-1, 1, conv(x, w, **kw).shape).astype(dtype)
        dx = unless_declined(algo, lambda: grad_input(x_shape, w, dy, algo=algo, **kw))
        dw = unless_declined(algo, lambda: grad_weight(x, w_shape, dy, algo=algo, **kw))
        limit_restored(1)  # every image its own run
        if y is not None:
            assert conv(x, w, algo=algo, **kw).tobytes() == y.tobytes(), algo
        if dx is not None:
            assert grad_input(x_shape, w, dy, algo=algo, **kw).tobytes() == dx.tobytes(), algo
        if dw is None:
            continue
        dw_runs = grad_weight(x, w_shape, dy, algo=algo, **kw)
        ref = conv_weight_grad(x.astype(np.float64), w_shape, dy.astype(np.float64),
                               **{k: v for k, v in kw.items()})
        tol = tolerance_for(algo, dtype, "backward_weights")
        assert normalized_error(dw_runs, ref) <= tol, algo
        assert normalized_error(dw, ref) <= tol, algo


def _layers():
    text = resources.files("fastconv").joinpath("data/layers.json").read_text()
    doc = json.loads(text)
    layers = doc["layers"] if isinstance(doc, dict) else doc
    return [l for l in layers if l["op"] == "conv"]


@pytest.mark.parametrize("layer", _layers(), ids=lambda l: l["name"])
def test_forward_workspace_within_default_bound(layer):
    """Every forward algorithm's per-call allocation (padded copy + scratch, as the plan
    reports it) stays within max(16 MiB, input size) on the standard layers."""
    x_shape = (layer["N"], layer["C"], *layer["input"])
    w = np.zeros((layer["K"], layer["C"] // layer["groups"], *layer["kernel"]), np.float32)
    bound = max(16 * MIB, int(np.prod(x_shape)) * 4)
    for algo in fastconv.algorithms("forward"):
        p = unless_declined(algo, lambda: fastconv.plan(
            w, stride=layer["stride"], padding=layer["padding"], dilation=layer["dilation"],
            groups=layer["groups"], algo=algo))
        if p is None:
            continue
        info = p.prepare(x_shape)
        assert 0 <= info["workspace_bytes"] <= bound, (algo, info["workspace_bytes"], bound)


def test_reported_workspace_follows_the_limit(limit_restored):
    """With padding and a batch, the padded copy is for one run of images: a limit of one
    image's copy shrinks the report."""
    w = np.zeros((8, 8, 3, 3), np.float32)
    p = fastconv.plan(w, padding=1, algo="gemm")
    full = p.prepare((8, 8, 32, 32))["workspace_bytes"]
    limit_restored(8 * 34 * 34 * 4)  # one padded image
    one = p.prepare((8, 8, 32, 32))["workspace_bytes"]
    assert full - one == 7 * 8 * 34 * 34 * 4


def test_release_memory():
    """Large scratch buffers are kept per thread for the next call; release_memory() frees the
    calling thread's (and no other thread's), and later calls give the same bits."""
    import threading

    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (2, 64, 40, 40)).astype(np.float32)
    w = rng.uniform(-1, 1, (64, 64, 3, 3)).astype(np.float32)
    fastconv.release_memory()  # the process's FFT tables, from earlier tests
    y = F.conv2d(x, w, padding=1)
    freed = []
    t = threading.Thread(target=lambda: freed.append(fastconv.release_memory()))
    t.start()
    t.join()
    assert freed == [0]  # another thread holds none of this thread's buffers
    assert fastconv.release_memory() >= MIB
    assert fastconv.release_memory() == 0
    assert F.conv2d(x, w, padding=1).tobytes() == y.tobytes()


def test_release_memory_frees_fft_tables():
    """The FFT's tables are the process's: any thread's release_memory() frees them, and the
    next call makes them again with the same bits."""
    import threading

    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (1, 1, 300, 300)).astype(np.float32)
    w = rng.uniform(-1, 1, (1, 1, 31, 31)).astype(np.float32)
    fastconv.release_memory()
    y = F.conv2d(x, w, algo="fft")
    freed = []
    t = threading.Thread(target=lambda: freed.append(fastconv.release_memory()))
    t.start()
    t.join()
    assert freed[0] > 0  # tables of the call's transform sizes
    assert F.conv2d(x, w, algo="fft").tobytes() == y.tobytes()
    fastconv.release_memory()
    assert fastconv.release_memory() == 0
