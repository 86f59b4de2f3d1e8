"""Fuzz harness over fastconv's public Python API (atheris / libFuzzer).

Every input picks one operation of fastconv.functional, fastconv.grad, fastconv.signal or
fastconv.plan and builds its arguments from the fuzzer's bytes: arrays of 0-6 dims (at most
4096 elements) of any dtype (floats, half, integers, bool, complex, big-endian), in any layout
(C or Fortran order, negative and zero strides, slices, unaligned, read-only, 0-d), holding any
values (NaN, Inf, subnormals, huge); integer parameters from the whole range Python has (the
boundaries 2**31 - 1, 2**31, 2**62, 2**63 - 1, 2**64 and their negatives, arbitrary 72-bit
values, small values) in every form an argument takes (int, tuple of any length, string, None,
float, bool). An operation may return or raise one of the documented exceptions (ValueError,
TypeError, OverflowError, MemoryError, NotImplementedError); anything else — another
exception, a crash, a sanitizer report, a hang past libFuzzer's -timeout — is a finding.

Run it on the sanitizer build (tools/sanitize.sh build first):

    fuzz/run.sh 1800      # 30 minutes; it builds the sanitizer venv when missing

Findings are written to fuzz/findings/ (crash-*, timeout-*); each one, once fixed, becomes a
case of tests/test_bad_inputs.py, written out as the call it made (the suite does not need
atheris). A finding replays with `tools/sanitize.sh python fuzz/fuzz_ops.py FILE`.
"""

import random
import sys
import warnings

import atheris

with atheris.instrument_imports():
    import numpy as np

    import fastconv
    from fastconv import functional as F
    from fastconv import grad as G
    from fastconv import signal as S

EXPECTED = (ValueError, TypeError, OverflowError, MemoryError, NotImplementedError)

EDGE_INTS = [0, 1, 2, 3, -1, -2, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64,
             -(2**31), -(2**63), -(2**63) - 1, 10**6]
DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float16, np.int32, np.int64,
          np.uint8, np.bool_, np.complex64, np.dtype(">f4"), np.dtype(">f8"), object]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 3.4e38, -3.4e38, 1e308]
ALGOS = ["auto", "direct", "gemm", "winograd", "fft", "bogus"]
MAX_ELEMENTS = 4096


class Gen:
    """Argument builder over a FuzzedDataProvider."""

    def __init__(self, data):
        self.fdp = atheris.FuzzedDataProvider(data)

    def pick(self, seq):
        return seq[self.fdp.ConsumeIntInRange(0, len(seq) - 1)]

    def flag(self):
        return self.fdp.ConsumeBool()

    def int_(self):
        kind = self.fdp.ConsumeIntInRange(0, 9)
        if kind <= 5:
            return self.fdp.ConsumeIntInRange(-2, 8)
        if kind <= 7:
            return self.pick(EDGE_INTS)
        if kind == 8:
            return self.fdp.ConsumeIntInRange(-300, 300)
        return self.fdp.ConsumeInt(9)  # any 72-bit signed value

    def float_(self):
        kind = self.fdp.ConsumeIntInRange(0, 3)
        if kind == 0:
            return self.pick(SPECIAL)
        if kind == 1:
            return self.fdp.ConsumeFloat()
        return self.fdp.ConsumeFloatInRange(-2.0, 2.0)

    def ints(self, rank):
        """An integer parameter in one of the forms callers pass."""
        form = self.fdp.ConsumeIntInRange(0, 12)
        if form <= 5:
            return self.int_()
        if form <= 9:
            n = rank if form <= 8 else self.fdp.ConsumeIntInRange(0, 5)
            return tuple(self.int_() for _ in range(n))
        if form == 10:
            return [self.int_() for _ in range(rank)]
        return self.pick([None, "same", "valid", "bogus", 1.5, True, np.int64(2), (1.0,) * rank])

    def shape(self, ndim, limit=MAX_ELEMENTS):
        dims = []
        total = 1
        for _ in range(ndim):
            d = self.fdp.ConsumeIntInRange(0, 9)
            if total * max(d, 1) > limit:
                d = 1
            total *= max(d, 1)
            dims.append(d)
        return tuple(dims)

    def array(self, ndim=None, shape=None):
        if shape is None:
            if ndim is None:
                ndim = self.fdp.ConsumeIntInRange(0, 6)
            shape = self.shape(ndim)
        dtype = self.pick(DTYPES) if self.fdp.ConsumeIntInRange(0, 5) == 0 else self.pick(
            [np.float32, np.float64])
        n = int(np.prod(shape))
        values = np.array(self.fdp.ConsumeFloatListInRange(min(n, 64), -4.0, 4.0) or [0.0])
        a = np.resize(values, n).reshape(shape)
        for _ in range(self.fdp.ConsumeIntInRange(0, 2)):
            if n:
                a.flat[self.fdp.ConsumeIntInRange(0, n - 1)] = self.pick(SPECIAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = a.astype(dtype)
        return self.layout(a)

    def layout(self, a):
        kind = self.fdp.ConsumeIntInRange(0, 9)
        if kind == 1:
            return np.asfortranarray(a)
        if kind == 2 and a.ndim:
            return np.flip(a, axis=self.fdp.ConsumeIntInRange(0, a.ndim - 1))
        if kind == 3 and a.ndim:
            big = np.repeat(a, 2, axis=-1)
            return big[..., ::2]
        if kind == 4 and a.ndim and a.size:
            return np.broadcast_to(a[..., :1], a.shape)
        if kind == 5 and a.dtype != object:
            buf = np.zeros(a.nbytes + 1, np.uint8)
            u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
            u[...] = a
            return u
        if kind == 6:
            a = a.copy()
            a.flags.writeable = False
            return a
        if kind == 7 and a.ndim >= 2:
            return np.swapaxes(a, 0, -1).copy().swapaxes(0, -1)
        return a


def _conv(g, rank):
    x = g.array(rank + 2 if g.fdp.ConsumeIntInRange(0, 4) else None)
    w = g.array(rank + 2 if g.fdp.ConsumeIntInRange(0, 4) else None)
    b = g.array(1) if g.flag() else None
    fn = g.pick([F.conv1d, F.conv2d, F.conv3d][rank - 1:rank] * 3 + [S.conv1d])
    return fn(x, w, b, g.ints(rank), g.ints(rank), g.ints(rank), g.int_(),
              padding_mode=g.pick(["zeros", "reflect", "replicate", "circular", "bad"]),
              algo=g.pick(ALGOS))


def _conv_grad(g, rank):
    x = g.array(rank + 2)
    w = g.array(rank + 2)
    dy = g.array(rank + 2)
    args = (g.ints(rank), g.ints(rank), g.ints(rank), g.int_())
    algo = g.pick(ALGOS)
    if g.flag():
        shape = tuple(g.int_() for _ in range(rank + 2)) if g.flag() else x.shape
        return getattr(G, f"conv{rank}d_input")(shape, w, dy, *args, algo=algo)
    shape = tuple(g.int_() for _ in range(rank + 2)) if g.flag() else w.shape
    return getattr(G, f"conv{rank}d_weight")(x, shape, dy, *args, algo=algo)


def _conv_transpose(g, rank):
    x = g.array(rank + 2)
    w = g.array(rank + 2)
    b = g.array(1) if g.flag() else None
    args = (g.ints(rank), g.ints(rank), g.ints(rank), g.int_(), g.ints(rank))
    which = g.fdp.ConsumeIntInRange(0, 2)
    if which == 0:
        return getattr(F, f"conv_transpose{rank}d")(x, w, b, *args, algo=g.pick(ALGOS))
    dy = g.array(rank + 2)
    if which == 1:
        shape = tuple(g.int_() for _ in range(rank + 2)) if g.flag() else x.shape
        return getattr(G, f"conv_transpose{rank}d_input")(shape, w, dy, *args)
    return getattr(G, f"conv_transpose{rank}d_weight")(x, w.shape, dy, *args)


def _pool(g, rank):
    x = g.array(rank + g.fdp.ConsumeIntInRange(0, 2))
    kind = g.fdp.ConsumeIntInRange(0, 5)
    if kind == 0:
        y = getattr(F, f"max_pool{rank}d")(x, g.ints(rank), g.ints(rank), g.ints(rank),
                                            g.ints(rank), g.flag(), return_indices=True)
        if isinstance(y, tuple) and g.flag():
            dy = g.array(shape=y[0].shape) if g.flag() else g.array()
            idx = y[1] if g.flag() else g.array(shape=y[1].shape).astype(np.int64)
            return getattr(G, f"max_pool{rank}d_input")(dy, idx, x.shape)
        return y
    if kind == 1:
        args = (g.ints(rank), g.ints(rank), g.ints(rank), g.flag(), g.flag(),
                g.pick([None, 0, 1, 3, -1, 2**63 - 1]))
        if g.flag():
            return getattr(F, f"avg_pool{rank}d")(x, *args)
        return getattr(G, f"avg_pool{rank}d_input")(g.array(), x.shape, *args)
    if kind == 2:
        return getattr(F, f"adaptive_avg_pool{rank}d")(x, g.ints(rank))
    if kind == 3:
        y = getattr(F, f"adaptive_max_pool{rank}d")(x, g.ints(rank), return_indices=True)
        if isinstance(y, tuple) and g.flag():
            return getattr(G, f"adaptive_max_pool{rank}d_input")(g.array(shape=y[0].shape),
                                                                 y[1], x.shape)
        return y
    if kind == 4:
        return getattr(G, f"adaptive_avg_pool{rank}d_input")(g.array(), g.ints(rank + 2))
    return getattr(G, f"max_pool{rank}d_input")(g.array(), g.array().astype(np.int64),
                                                g.ints(rank + 2))


def _norm(g):
    x = g.array()
    c = x.shape[1] if x.ndim >= 2 else g.int_()
    vec = (lambda: g.array(shape=(c,)) if g.flag() and isinstance(c, int) and 0 <= c < 4096
           else g.array() if g.flag() else None)
    kind = g.fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return F.batch_norm(x, vec(), vec(), vec(), vec(), g.flag(), g.float_(), g.float_())
    if kind == 1:
        return F.instance_norm(x, vec(), vec(), vec(), vec(), g.flag(), g.float_(), g.float_())
    if kind == 2:
        return F.group_norm(x, g.int_(), vec(), vec(), g.float_())
    if kind == 3:
        return F.layer_norm(x, g.ints(g.fdp.ConsumeIntInRange(0, 3)), g.array() if g.flag()
                            else None, None, g.float_())
    dy = g.array(shape=x.shape) if g.flag() else g.array()
    if kind == 4:
        return G.batch_norm_backward(dy, x, vec(), vec(), vec(), g.flag(), g.float_())
    if kind == 5:
        return G.group_norm_backward(dy, x, g.int_(), vec(), g.float_())
    if kind == 6:
        return G.instance_norm_backward(dy, x, vec(), g.float_())
    return G.layer_norm_backward(dy, x, g.ints(g.fdp.ConsumeIntInRange(0, 3)), None, g.float_())


ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "elu",
               "leaky_relu", "hardtanh", "gelu"]


def _activation(g):
    name = g.pick(ACTIVATIONS)
    x = g.array()
    if g.flag():
        if name == "gelu":
            return F.gelu(x, g.pick(["none", "tanh", "bad"]))
        if name in ("elu", "leaky_relu"):
            return getattr(F, name)(x, g.float_())
        if name == "hardtanh":
            return F.hardtanh(x, g.float_(), g.float_())
        return getattr(F, name)(x)
    dy = g.array(shape=x.shape) if g.flag() else g.array()
    return getattr(G, f"{name}_input")(dy, x)


def _softmax_linear_loss(g):
    kind = g.fdp.ConsumeIntInRange(0, 6)
    x = g.array()
    if kind == 0:
        return g.pick([F.softmax, F.log_softmax])(x, g.pick([None, g.int_()]))
    if kind == 1:
        return g.pick([G.softmax_input, G.log_softmax_input])(g.array(shape=x.shape), x,
                                                             g.int_())
    if kind == 2:
        return F.linear(x, g.array(2), g.array(1) if g.flag() else None)
    if kind == 3:
        return g.pick([G.linear_input, G.linear_weight])(x, g.array())
    target = g.array(1).astype(np.int64) if g.flag() else g.array()
    if kind == 4:
        return F.cross_entropy(x, target, g.array(1) if g.flag() else None,
                               ignore_index=g.int_(), reduction=g.pick(["mean", "sum", "none", "x"]),
                               label_smoothing=g.float_())
    if kind == 5:
        return F.nll_loss(x, target, None, ignore_index=g.int_(),
                          reduction=g.pick(["mean", "sum", "none"]))
    return F.dropout(x, g.float_(), g.flag())


def _signal(g):
    a = g.array()
    b = g.array()
    kind = g.fdp.ConsumeIntInRange(0, 4)
    mode = g.pick(["full", "same", "valid", "bad"])
    if kind == 0:
        return g.pick([S.correlate, S.convolve])(a, b, mode, g.pick(["auto", "direct", "fft", "x"]))
    if kind == 1:
        return g.pick([S.correlate2d, S.convolve2d])(a, b, mode, g.pick(["fill", "wrap", "symm", "x"]),
                                                     g.float_())
    if kind == 2:
        return S.choose_conv_method(a, b, mode)
    return S.match_template(a, b, g.flag())


def _plan(g):
    rank = g.fdp.ConsumeIntInRange(1, 3)
    w = g.array(rank + 2)
    p = fastconv.plan(w, g.array(1) if g.flag() else None, g.ints(rank), g.ints(rank),
                      g.ints(rank), g.int_(), algo=g.pick(ALGOS),
                      activation=g.pick([None, "relu", "relu6", "silu", "gelu", "bad"]))
    x = g.array(rank + 2)
    return p(x) if g.flag() else p(x, residual=g.array())


OPS = ([lambda g, r=r: _conv(g, r) for r in (1, 2, 3)] * 2 +
       [lambda g, r=r: _conv_grad(g, r) for r in (1, 2, 3)] +
       [lambda g, r=r: _conv_transpose(g, r) for r in (1, 2, 3)] +
       [lambda g, r=r: _pool(g, r) for r in (1, 2, 3)] +
       [_norm, _activation, _softmax_linear_loss, _signal, _plan])


def test_one_input(data):
    g = Gen(data)
    fastconv.set_num_threads(g.fdp.ConsumeIntInRange(1, 2))
    op = g.pick(OPS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op(g)
    except EXPECTED:
        pass


def fresh_or_mutated(data, max_size, seed):
    """Custom mutator: half the inputs are fresh random bytes of a random length, half
    libFuzzer's mutations of the given input. On the sanitizer build libFuzzer gets no coverage
    feedback (fuzz/run.sh says why), so its corpus never grows past one unit and its own
    mutations alone would keep the inputs, and with them the arrays and parameters, small."""
    rng = random.Random(seed)
    if data and rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    return rng.randbytes(rng.choice([16, 64, 256, 1024, 4096, max_size]) if max_size else 0)[
        :max_size]


def main():
    atheris.Setup(sys.argv, test_one_input, custom_mutator=fresh_or_mutated)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
