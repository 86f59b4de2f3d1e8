"""Argument validation of the issue-3 entry points: the error table of the gradient / transposed
convolution contract, plus the forward rules they share.

Entry points: fastconv.grad.conv{n}d_input / _weight / _bias, fastconv.functional
.conv_transpose{n}d, fastconv.grad.conv_transpose{n}d_input / _weight, and
fastconv.algorithms(direction). Each case breaks exactly one rule of an otherwise valid call
(grad_output always has the forward output shape unless that is the rule being broken) and
asserts the exception type and message fragment; messages of the new rows start with the op
name (e.g. "conv2d_input: expected grad_output of size [...]").
"""

import re

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as fgrad
from conftest import ALGOS_BY_DIRECTION, unless_declined
from reference import conv_output_shape, conv_transpose_output_shape, normalized_error

RANKS = [1, 2, 3]
rank_ids = [f"{r}d" for r in RANKS]
CONV_ENTRIES = ["input", "weight"]  # conv{n}d_input / conv{n}d_weight
TR_ENTRIES = ["transpose", "transpose_input", "transpose_weight"]
ALGO_ENTRIES = CONV_ENTRIES + TR_ENTRIES
# entry -> registry direction of its algorithms
DIRECTION = {"input": "backward_data", "weight": "backward_weights",
             "transpose": "backward_data", "transpose_input": "forward",
             "transpose_weight": "backward_weights"}


def op_name(entry, rank):
    return {"input": f"conv{rank}d_input", "weight": f"conv{rank}d_weight",
            "bias": f"conv{rank}d_bias", "transpose": f"conv_transpose{rank}d",
            "transpose_input": f"conv_transpose{rank}d_input",
            "transpose_weight": f"conv_transpose{rank}d_weight"}[entry]


# ---------------------------------------------------------------- valid base problems
def conv_base(rank, dtype=np.float32, N=2, C=4, K=6, G=2, L=6, k=3, **kw):
    """Valid conv problem: x (N, C, L...), w (K, C/G, k...), grad_output of the output shape."""
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((N, C) + (L,) * rank).astype(dtype)
    w = rng.standard_normal((K, C // G) + (k,) * rank).astype(dtype)
    kw = dict(dict(padding=1, groups=G), **kw)
    out = conv_output_shape(x.shape, w.shape, kw.get("stride", 1), kw["padding"],
                            kw.get("dilation", 1))
    g = rng.standard_normal(out).astype(dtype)
    return x, w, g, kw


def tr_base(rank, dtype=np.float32, N=2, Cin=4, Cog=3, G=2, L=5, k=3, **kw):
    """Valid transposed problem: x (N, Cin, L...), w (Cin, Cog, k...), b (G*Cog,), grad_output."""
    rng = np.random.default_rng(10 + rank)
    x = rng.standard_normal((N, Cin) + (L,) * rank).astype(dtype)
    w = rng.standard_normal((Cin, Cog) + (k,) * rank).astype(dtype)
    b = rng.standard_normal(G * Cog).astype(dtype)
    kw = dict(dict(stride=2, padding=1, output_padding=1, groups=G), **kw)
    g = rng.standard_normal(_tr_out(x.shape, w.shape, kw)).astype(dtype)
    return x, w, b, g, kw


def _tr_out(x_shape, w_shape, kw):
    """Transposed output shape by the formula (no validity asserts: also for broken calls)."""
    rank = len(w_shape) - 2

    def per_dim(v):
        return (v,) * rank if isinstance(v, int) else tuple(v)

    s, p = per_dim(kw.get("stride", 1)), per_dim(kw.get("padding", 0))
    op, d = per_dim(kw.get("output_padding", 0)), per_dim(kw.get("dilation", 1))
    sp = tuple(max((L - 1) * s_ - 2 * p_ + d_ * (k - 1) + o + 1, 1)
               for L, k, s_, p_, o, d_ in zip(x_shape[-rank:], w_shape[2:], s, p, op, d))
    lead = x_shape[:1] if len(x_shape) == rank + 2 else ()
    return lead + (w_shape[1] * kw.get("groups", 1),) + sp


def call(entry, rank, x, w, g, kw, b=None):
    """Call `entry` with the arrays of a (conv or transposed) problem."""
    if entry == "input":
        return getattr(fgrad, f"conv{rank}d_input")(_shape(x), w, g, **kw)
    if entry == "weight":
        return getattr(fgrad, f"conv{rank}d_weight")(x, _shape(w), g, **kw)
    if entry == "transpose":
        return getattr(F, f"conv_transpose{rank}d")(x, w, b, **kw)
    if entry == "transpose_input":
        return getattr(fgrad, f"conv_transpose{rank}d_input")(_shape(x), w, g, **kw)
    assert entry == "transpose_weight"
    return getattr(fgrad, f"conv_transpose{rank}d_weight")(x, _shape(w), g, **kw)


def _shape(a):
    """An array's shape, or the object itself when a test passes a (bad) shape directly."""
    return tuple(a.shape) if isinstance(a, np.ndarray) else a


def base_for(entry, rank, dtype=np.float32, **kw):
    """(x, w, g, kw, b) of a valid call of `entry`."""
    if entry in CONV_ENTRIES:
        x, w, g, kw = conv_base(rank, dtype, **kw)
        return x, w, g, kw, None
    x, w, b, g, kw = tr_base(rank, dtype, **kw)
    return x, w, g, kw, b


def raises(exc, fragment, entry, rank, x, w, g, kw, b=None, op_prefix=False):
    with pytest.raises(exc, match=re.escape(fragment)) as ei:
        call(entry, rank, x, w, g, kw, b)
    if op_prefix:
        op = op_name(entry, rank)
        assert str(ei.value).startswith(op), f"message does not start with {op!r}: {ei.value}"
    return ei


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_base_calls_are_valid(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    y = call(entry, rank, x, w, g, kw, b)
    expected = {"input": x.shape, "weight": w.shape, "transpose": g.shape,
                "transpose_input": x.shape, "transpose_weight": w.shape}[entry]
    assert y.shape == expected and y.dtype == np.float32


# ---------------------------------------------------------------- algorithms(direction)
@pytest.mark.parametrize("direction", ["foo", "backward", "FORWARD", "", "forward "])
def test_unknown_direction(direction):
    with pytest.raises(ValueError, match=re.escape("direction must be one of")):
        fastconv.algorithms(direction)


def test_directions():
    everything = fastconv.algorithms()
    assert fastconv.algorithms(None) == everything
    for d in ("forward", "backward_data", "backward_weights"):
        algos = fastconv.algorithms(d)
        assert isinstance(algos, list) and algos and set(algos) <= set(everything), (d, algos)
        assert all(isinstance(a, str) for a in algos)


# ---------------------------------------------------------------- grad_output shape
GRAD_ENTRIES = ["input", "weight", "transpose_input", "transpose_weight"]
BAD_G = ["spatial+1", "spatial-1", "channels+1", "batch+1", "unbatched", "extra_dim", "0d"]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("how", BAD_G)
@pytest.mark.parametrize("entry", GRAD_ENTRIES)
def test_grad_output_shape(entry, how, rank):
    x, w, g, kw, b = base_for(entry, rank)
    if how == "spatial+1":
        g = np.zeros(g.shape[:-1] + (g.shape[-1] + 1,), g.dtype)
    elif how == "spatial-1":
        g = g[..., :-1]
    elif how == "channels+1":
        g = np.concatenate([g, g[:, :1]], axis=1)
    elif how == "batch+1":
        g = np.concatenate([g, g[:1]], axis=0)
    elif how == "unbatched":  # batched input, unbatched grad_output
        g = g[0]
    elif how == "extra_dim":
        g = g[None]
    else:
        g = np.float32(1.0) * np.ones((), g.dtype)
    raises(ValueError, "expected grad_output of size", entry, rank, x, w, g, kw, op_prefix=True)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", GRAD_ENTRIES)
def test_grad_output_batched_but_input_unbatched(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    x = x[0]  # unbatched problem, grad_output still batched (with a batch of 1 or 2)
    raises(ValueError, "expected grad_output of size", entry, rank, x, w, g[:1], kw,
           op_prefix=True)


# ---------------------------------------------------------------- input_shape / weight_shape
SHAPE_ENTRIES = {"input": "input_shape", "weight": "weight_shape",
                 "transpose_input": "input_shape", "transpose_weight": "weight_shape"}


def _bad_shape(kind, good):
    good = tuple(good)
    return {"int": good[0], "none": None, "str_entry": good[:-1] + ("a",),
            "float_entry": good[:-1] + (1.5,), "none_entry": (None,) + good[1:],
            "string": "abc", "dict": {"a": 1}}[kind]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("kind", ["int", "none", "str_entry", "float_entry", "none_entry",
                                  "string", "dict"])
@pytest.mark.parametrize("entry", list(SHAPE_ENTRIES))
def test_shape_not_a_tuple_of_ints(entry, kind, rank):
    x, w, g, kw, b = base_for(entry, rank)
    if SHAPE_ENTRIES[entry] == "input_shape":
        x = _bad_shape(kind, x.shape)
    else:
        w = _bad_shape(kind, w.shape)
    raises(TypeError, "must be a tuple of integers", entry, rank, x, w, g, kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("where", ["first", "last", "all"])
@pytest.mark.parametrize("entry", list(SHAPE_ENTRIES))
def test_shape_negative_dimension(entry, where, rank):
    x, w, g, kw, b = base_for(entry, rank)
    shape = list(x.shape if SHAPE_ENTRIES[entry] == "input_shape" else w.shape)
    if where == "first":
        shape[0] = -1
    elif where == "last":
        shape[-1] = -3
    else:
        shape = [-2] * len(shape)
    if SHAPE_ENTRIES[entry] == "input_shape":
        x = tuple(shape)
    else:
        w = tuple(shape)
    raises(ValueError, "negative dimension", entry, rank, x, w, g, kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("extra", [-2, -1, 2])  # len(input_shape) = rank + 1 + extra
@pytest.mark.parametrize("entry", ["input", "transpose_input"])
def test_input_shape_wrong_length(entry, extra, rank):
    x, w, g, kw, b = base_for(entry, rank)
    n = rank + 1 + extra
    shape = (tuple(x.shape) * 3)[:n] if n > 0 else ()
    op = "conv" if entry == "input" else "conv_transpose"
    raises(ValueError, f"expected {rank + 1}-D (unbatched) or {rank + 2}-D (batched) input to "
                       f"{op}{rank}d", entry, rank, shape, w, g, kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("delta", [-1, 1])
@pytest.mark.parametrize("entry", ["weight", "transpose_weight"])
def test_weight_shape_wrong_length(entry, delta, rank):
    x, w, g, kw, b = base_for(entry, rank)
    shape = tuple(w.shape)[:-1] if delta < 0 else tuple(w.shape) + (3,)
    raises(ValueError, f"expected weight to be {rank + 2}-D", entry, rank, x, shape, g, kw)


# ---------------------------------------------------------------- output_padding
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("case", ["s1d1_op1", "s2d1_op2", "s2d2_op3", "s3d2_op3_last",
                                  "s1d3_op3"])
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_output_padding_too_large(entry, case, rank):
    s, d, op = (int(v) for v in re.findall(r"\d+", case)[:3])
    x, w, g, kw, b = base_for(entry, rank, stride=s, dilation=d, padding=0)
    if case.endswith("_last"):  # only the last dim is bad
        kw["output_padding"] = (0,) * (rank - 1) + (op,)
    else:
        kw["output_padding"] = op
    g = np.zeros(_tr_out(x.shape, w.shape, kw), g.dtype)  # consistent with the bad parameter
    raises(ValueError, "output padding must be smaller than either stride or dilation", entry,
           rank, x, w, g, kw, b, op_prefix=True)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_output_padding_below_dilation_is_valid(entry, rank):
    """PyTorch's rule: smaller than EITHER stride or dilation (here stride 1, dilation 3)."""
    x, w, g, kw, b = base_for(entry, rank, stride=1, dilation=3, padding=0, output_padding=2)
    y = call(entry, rank, x, w, g, kw, b)
    assert y.shape == {"transpose": g.shape, "transpose_input": x.shape,
                       "transpose_weight": w.shape}[entry]
    assert g.shape == conv_transpose_output_shape(x.shape, w.shape, 1, 0, 2, 3, kw["groups"])


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bad", [-1, "tuple-1"])
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_negative_output_padding(entry, bad, rank):
    x, w, g, kw, b = base_for(entry, rank)
    kw["output_padding"] = -1 if bad == -1 else (0,) * (rank - 1) + (-1,)
    g = np.zeros(_tr_out(x.shape, w.shape, kw), g.dtype)
    raises(ValueError, "negative output_padding is not supported", entry, rank, x, w, g, kw, b,
           op_prefix=True)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("case", ["out0", "out-1", "last_dim"])
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_transposed_output_too_small(entry, case, rank):
    # out = (L-1)*s - 2p + d*(k-1) + op + 1 with s = d = 1, k = 1, op = 0: L - 2p
    L, p = {"out0": (2, 1), "out-1": (1, 1), "last_dim": (2, 1)}[case]
    x, w, g, kw, b = base_for(entry, rank, L=L, k=1, stride=1, padding=p, output_padding=0)
    if case == "last_dim":  # only the last dim is too small
        kw["padding"] = (0,) * (rank - 1) + (p,)
    g = np.zeros(_tr_out(x.shape, w.shape, kw), g.dtype)
    raises(ValueError, "Output size is too small", entry, rank, x, w, g, kw, b, op_prefix=True)


# ---------------------------------------------------------------- transposed shapes
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_transposed_channel_mismatch(entry, batched, rank):
    x, w, g, kw, b = base_for(entry, rank)  # weight.shape[0] = 4
    x = np.concatenate([x, x[:, :2]], axis=1)  # 6 input channels
    if not batched:
        x, g = x[0], g[0]
    raises(ValueError, "to have 4 channels, but got 6 channels instead", entry, rank, x, w, g,
           kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_transposed_weight_not_divisible_by_groups(entry, rank):
    x, w, g, kw, b = base_for(entry, rank, Cin=4, G=2)
    kw["groups"] = 3  # 4 % 3 != 0 (the output shape does not matter: this check comes first)
    g = np.zeros(_tr_out(x.shape, w.shape, kw), g.dtype)
    b = np.zeros(9, np.float32)
    raises(ValueError, "expected weight to be divisible by 3 at dimension 0", entry, rank, x, w,
           g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bshape", [(5,), (7,), (3,), (6, 1), (), (0,)])
def test_transposed_bias_shape(bshape, rank):
    x, w, g, kw, b = base_for("transpose", rank)  # C_out = 2 * 3 = 6
    b = np.ones(bshape, np.float32)
    raises(ValueError, "expected bias to be 1-dimensional with 6 elements", "transpose", rank,
           x, w, g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("padding", ["same", "valid", "foo"])
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_transposed_string_padding(entry, padding, rank):
    x, w, g, kw, b = base_for(entry, rank)
    kw["padding"] = padding
    raises(ValueError, "does not accept string padding", entry, rank, x, w, g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("extra", [-2, -1, 2, 3])
def test_transposed_input_ndim(extra, rank):
    x, w, g, kw, b = base_for("transpose", rank)
    ndim = rank + 1 + extra
    if ndim < 0:
        pytest.skip("no such array")
    x = x[(0,) * (x.ndim - ndim)] if ndim <= x.ndim else x.reshape((1,) * (ndim - x.ndim)
                                                                  + x.shape)
    raises(ValueError, f"expected {rank + 1}-D (unbatched) or {rank + 2}-D (batched) input to "
                       f"conv_transpose{rank}d", "transpose", rank, x, w, g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ["transpose", "transpose_weight"])
def test_transposed_weight_ndim(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    if entry == "transpose":
        w = w[..., 0]
    else:
        w = tuple(w.shape)[:-1]
    raises(ValueError, f"expected weight to be {rank + 2}-D", entry, rank, x, w, g, kw, b)


# ---------------------------------------------------------------- algo
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_unknown_algo(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    raises(ValueError, "unknown algo 'foo'", entry, rank, x, w, g, dict(kw, algo="foo"), b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_algo_lacking_the_direction(entry, rank):
    lacking = [a for a in fastconv.algorithms() if a not in ALGOS_BY_DIRECTION[DIRECTION[entry]]]
    if not lacking:
        pytest.skip(f"every registered algorithm implements {DIRECTION[entry]}")
    x, w, g, kw, b = base_for(entry, rank)
    for algo in lacking:
        raises(ValueError, "does not support", entry, rank, x, w, g, dict(kw, algo=algo), b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_every_algo_of_the_direction_accepted(entry, rank):
    x, w, g, kw, b = base_for(entry, rank, dtype=np.float64)
    # (a named algorithm may refuse this problem as outside its domain: "does not support")
    results = [y for a in ALGOS_BY_DIRECTION[DIRECTION[entry]] + ["auto"]
               if (y := unless_declined(a, lambda: call(entry, rank, x, w, g, dict(kw, algo=a), b)))
               is not None]
    assert len(results) >= 3  # gemm, direct and auto at least
    for y in results[1:]:
        assert normalized_error(y, results[0]) <= 1e-12


# ---------------------------------------------------------------- bias gradient
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("ndim_delta", [-1, 3, 4])  # ndim = rank + ndim_delta (valid: +1, +2)
def test_bias_grad_wrong_ndim(ndim_delta, rank):
    ndim = rank + ndim_delta
    g = np.ones((2,) * ndim, np.float32)
    with pytest.raises(ValueError, match=re.escape("expected grad_output to be")) as ei:
        getattr(fgrad, f"conv{rank}d_bias")(g)
    assert str(ei.value).startswith(f"conv{rank}d_bias"), str(ei.value)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_bias_grad_0d(rank):
    with pytest.raises(ValueError, match=re.escape("expected grad_output to be")):
        getattr(fgrad, f"conv{rank}d_bias")(np.float32(1.0) * np.ones((), np.float32))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_bias_grad_bad_dtype(dtype, rank):
    g = np.ones((2, 3) + (4,) * rank, dtype)
    with pytest.raises(TypeError, match=re.escape("float32 or float64")):
        getattr(fgrad, f"conv{rank}d_bias")(g)


# ---------------------------------------------------------------- shared forward rules
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("stride", [0, -1, "tuple0"])
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_non_positive_stride(entry, stride, rank):
    x, w, g, kw, b = base_for(entry, rank)
    kw["stride"] = (1,) * (rank - 1) + (0,) if stride == "tuple0" else stride
    raises(ValueError, "non-positive stride is not supported", entry, rank, x, w, g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("padding", [-1, "tuple-2"])
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_negative_padding(entry, padding, rank):
    x, w, g, kw, b = base_for(entry, rank)
    kw["padding"] = (0,) * (rank - 1) + (-2,) if padding == "tuple-2" else padding
    raises(ValueError, "negative padding is not supported", entry, rank, x, w, g, kw, b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_non_positive_dilation_and_groups(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    raises(ValueError, "dilation should be greater than zero", entry, rank, x, w, g,
           dict(kw, dilation=0), b)
    raises(ValueError, "non-positive groups is not supported", entry, rank, x, w, g,
           dict(kw, groups=0), b)


PARAM_FORMS = [(e, n) for e in ALGO_ENTRIES for n in ("stride", "padding", "dilation")]
PARAM_FORMS += [(e, "output_padding") for e in TR_ENTRIES]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry,name", PARAM_FORMS, ids=[f"{e}-{n}" for e, n in PARAM_FORMS])
def test_parameter_forms(entry, name, rank):
    """Wrong tuple length -> ValueError; non-integer -> TypeError; beyond int64 ->
    OverflowError: the forward rules, through the new entry points."""
    x, w, g, kw, b = base_for(entry, rank)
    raises(ValueError, f"expected {name} to be a single integer or a tuple of {rank} integers",
           entry, rank, x, w, g, dict(kw, **{name: (1,) * (rank + 1)}), b)
    raises(TypeError, f"{name} must be an integer or a tuple of integers", entry, rank, x, w, g,
           dict(kw, **{name: 1.5}), b)
    raises(OverflowError, "does not fit in a 64-bit integer", entry, rank, x, w, g,
           dict(kw, **{name: 2**64}), b)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", CONV_ENTRIES)
def test_conv_grad_shape_rules(entry, rank):
    """K not divisible by groups, channel mismatch, kernel larger than the padded input."""
    x, w, g, kw, b = base_for(entry, rank)  # C = 4, K = 6, groups = 2
    # K = 6 with groups = 4: not divisible (C = 4 = 1 * 4 would match)
    w4 = w[:, :1]
    g4 = np.zeros(conv_output_shape(x.shape, w4.shape, 1, 1), g.dtype)
    raises(ValueError, "expected weight to be divisible by 4 at dimension 0", entry, rank, x, w4,
           g4, dict(kw, groups=4))
    # 5 input channels, weight wants 2 * 2 = 4
    x5 = np.concatenate([x, x[:, :1]], axis=1)
    raises(ValueError, "to have 4 channels, but got 5 channels instead", entry, rank, x5, w, g,
           kw)
    # kernel 3 on a size-1 input without padding
    x1 = x[(Ellipsis,) + (slice(0, 1),) * rank]
    raises(ValueError, "Kernel size can't be greater than actual input size", entry, rank, x1,
           w, np.zeros(g.shape[:2] + (1,) * rank, g.dtype), dict(kw, padding=0))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", CONV_ENTRIES)
def test_conv_grad_padding_rules(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)  # L = 6
    raises(ValueError, "padding_mode must be one of", entry, rank, x, w, g,
           dict(kw, padding_mode="foo"))
    raises(ValueError, "Invalid padding string 'foo'", entry, rank, x, w, g,
           dict(kw, padding="foo"))
    raises(ValueError, "padding='same' is not supported for strided convolutions", entry, rank,
           x, w, g, dict(kw, padding="same", stride=2))
    big = conv_output_shape(x.shape, w.shape, 1, 6)
    raises(ValueError, "Padding size should be less than the corresponding input dimension",
           entry, rank, x, w, np.zeros(big, g.dtype), dict(kw, padding=6, padding_mode="reflect"))
    big = conv_output_shape(x.shape, w.shape, 1, 7)
    raises(ValueError, "Padding value causes wrapping around more than once", entry, rank, x, w,
           np.zeros(big, g.dtype), dict(kw, padding=7, padding_mode="circular"))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry", TR_ENTRIES)
def test_transposed_takes_no_padding_mode(entry, rank):
    x, w, g, kw, b = base_for(entry, rank)
    with pytest.raises(TypeError):
        call(entry, rank, x, w, g, dict(kw, padding_mode="zeros"), b)


BAD_DTYPES = [np.int32, np.int64, np.float16, np.complex64, np.bool_, object]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("entry", ALGO_ENTRIES)
def test_bad_dtype(entry, dtype, rank):
    x, w, g, kw, b = base_for(entry, rank)
    x, w, g = x.astype(dtype), w.astype(dtype), g.astype(dtype)
    b = None if b is None else b.astype(dtype)
    raises(TypeError, "float32 or float64", entry, rank, x, w, g, kw, b)


# entry -> the arrays it takes (conv_input takes input_shape, not x; conv_weight takes
# weight_shape, not w): x input, w weight, g grad_output, b bias
TAKES = {"input": "wg", "weight": "xg", "transpose": "xwb", "transpose_input": "wg",
         "transpose_weight": "xg"}
MIXED = [(e, f"{a}64") for e in ALGO_ENTRIES for a in TAKES[e]]
MIXED += [(e, "only_g32") for e in ALGO_ENTRIES if "g" in TAKES[e]]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("entry,combo", MIXED, ids=[f"{e}-{c}" for e, c in MIXED])
def test_mixed_dtypes(entry, combo, rank):
    """One array float64 among float32 ones, or grad_output float32 among float64 ones."""
    x, w, g, kw, b = base_for(entry, rank)
    if combo == "only_g32":
        x, w = x.astype(np.float64), w.astype(np.float64)
    elif combo == "x64":
        x = x.astype(np.float64)
    elif combo == "w64":
        w = w.astype(np.float64)
    elif combo == "g64":
        g = g.astype(np.float64)
    else:
        b = b.astype(np.float64)
    raises(TypeError, "same dtype", entry, rank, x, w, g, kw, b)
