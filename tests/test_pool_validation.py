"""Argument validation and memory layouts of the pooling entry points (issue 4).

Entry points: fastconv.functional.{max,avg,adaptive_avg,adaptive_max}_pool{1,2,3}d and
fastconv.grad.{max,avg,adaptive_avg,adaptive_max}_pool{1,2,3}d_input.

- Every error row of the pooling contract, for each rank where it means something: each case
  breaks exactly one rule of an otherwise valid call and asserts the exception type, the message
  fragment (pytest.raises(..., match=re.escape(fragment))) and the "<op>: " prefix of the
  message; positive controls next to the limits (e.g. padding exactly at the limit passes).
- Any strides: negative, Fortran order, zero-stride broadcast, step slices, swapped axes,
  big-endian and read-only inputs give results bit-identical to the contiguous native copy, as
  new C-contiguous arrays; no argument is modified.
"""

import re

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as G
from reference import max_pool_reference, pool_output_shape

KINDS = ("max", "avg", "adaptive_avg", "adaptive_max")
FIXED = ("max", "avg")
ADAPTIVE = ("adaptive_avg", "adaptive_max")
MAX_KINDS = ("max", "adaptive_max")
RANKS = [1, 2, 3]
rank_ids = [f"{r}d" for r in RANKS]


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny problems: one thread (layouts and validation do not depend on the thread count,
    and 2-thread calls on a busy 2-core machine cost a scheduler slice each)."""
    prev = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    try:
        yield
    finally:
        fastconv.set_num_threads(prev)


def fwd(kind, rank):
    return getattr(F, f"{kind}_pool{rank}d")


def bwd(kind, rank):
    return getattr(G, f"{kind}_pool{rank}d_input")


def op_name(kind, rank, grad=False):
    return f"{kind}_pool{rank}d" + ("_input" if grad else "")


def expect(exc, fragment, op, fn, *args, **kwargs):
    """fn(*args, **kwargs) raises exc whose message contains fragment and starts with 'op: '."""
    with pytest.raises(exc, match=re.escape(fragment)) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg.startswith(f"{op}: "), f"message does not start with '{op}: ': {msg!r}"
    return msg


def base_x(rank, dtype=np.float32, N=2, C=3, L=6):
    rng = np.random.default_rng(rank)
    return rng.uniform(-1, 1, size=(N, C) + (L,) * rank).astype(dtype)


def valid_kwargs(kind, rank):
    """A valid call's keyword arguments (every error case below breaks one rule of it)."""
    if kind == "max":
        return {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1}
    if kind == "avg":
        return {"kernel_size": 3, "stride": 2, "padding": 1}
    return {"output_size": 3}


def pairs(kinds):
    return [(k, r) for k in kinds for r in RANKS]


def pair_ids(kinds):
    return [f"{k}-{r}d" for k, r in pairs(kinds)]


def test_valid_base_calls():
    for kind, rank in pairs(KINDS):
        fwd(kind, rank)(base_x(rank), **valid_kwargs(kind, rank))


# =============================================================================================
# forward rows
# =============================================================================================
@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_input_ndim(kind, rank):
    kw = valid_kwargs(kind, rank)
    for shape in [(6,) * rank, (1, 2, 3) + (6,) * rank, ()]:
        msg = expect(ValueError, "-D (batched) input", op_name(kind, rank), fwd(kind, rank),
                     np.zeros(shape, np.float32), **kw)
        assert f"{rank + 1}-D (unbatched) or {rank + 2}-D (batched) input" in msg


@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_zero_size_non_batch_dim(kind, rank):
    kw = valid_kwargs(kind, rank)
    frag = "non-zero sizes in its non-batch dimensions"
    shapes = [(2, 0) + (6,) * rank, (0,) + (6,) * rank]  # C = 0 (batched, unbatched)
    for d in range(rank):  # one spatial dim 0
        sp = [6] * rank
        sp[d] = 0
        shapes += [(2, 3) + tuple(sp), (3,) + tuple(sp)]
    for shape in shapes:
        expect(ValueError, frag, op_name(kind, rank), fwd(kind, rank),
               np.zeros(shape, np.float32), **kw)
    # N = 0 is allowed
    y = fwd(kind, rank)(np.zeros((0, 3) + (6,) * rank, np.float32), **kw)
    assert y.shape[0] == 0


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_kernel_size_nonpositive(kind, rank):
    kw = valid_kwargs(kind, rank)
    for k in [0, -1, (3,) * (rank - 1) + (0,)]:
        expect(ValueError, "kernel size should be greater than zero", op_name(kind, rank),
               fwd(kind, rank), base_x(rank), **dict(kw, kernel_size=k, padding=0))


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_stride_nonpositive(kind, rank):
    kw = valid_kwargs(kind, rank)
    for s in [0, -2, (0,) + (2,) * (rank - 1)]:
        expect(ValueError, "stride should be greater than zero", op_name(kind, rank),
               fwd(kind, rank), base_x(rank), **dict(kw, stride=s))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_dilation_nonpositive(rank):
    kw = valid_kwargs("max", rank)
    for d in [0, -1, (1,) * (rank - 1) + (0,)]:
        expect(ValueError, "dilation should be greater than zero", op_name("max", rank),
               fwd("max", rank), base_x(rank), **dict(kw, dilation=d))


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_negative_padding(kind, rank):
    kw = valid_kwargs(kind, rank)
    for p in [-1, (1,) * (rank - 1) + (-1,)]:
        expect(ValueError, "pad must be non-negative", op_name(kind, rank), fwd(kind, rank),
               base_x(rank), **dict(kw, padding=p))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_max_padding_limit(rank):
    """max: padding <= (dilation*(kernel-1) + 1) // 2, per dim."""
    x, fn, op = base_x(rank, L=9), fwd("max", rank), op_name("max", rank)
    frag = "pad should be at most half of effective kernel size"
    for k, d, p_ok in [(3, 1, 1), (2, 1, 1), (3, 2, 2), (2, 3, 2), (1, 1, 0), (4, 1, 2)]:
        y = fn(x, k, stride=1, padding=p_ok, dilation=d)  # at the limit: fine
        assert y.shape == pool_output_shape(x.shape, rank, k, 1, p_ok, d)
        expect(ValueError, frag, op, fn, x, k, stride=1, padding=p_ok + 1, dilation=d)
        expect(ValueError, frag, op, fn, x, k, stride=1, dilation=d,
               padding=(p_ok,) * (rank - 1) + (p_ok + 1,))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_avg_padding_limit(rank):
    """avg: padding <= kernel // 2, per dim."""
    x, fn, op = base_x(rank, L=9), fwd("avg", rank), op_name("avg", rank)
    frag = "pad should be at most half of kernel size"
    for k, p_ok in [(3, 1), (2, 1), (4, 2), (5, 2), (1, 0)]:
        fn(x, k, stride=1, padding=p_ok)
        expect(ValueError, frag, op, fn, x, k, stride=1, padding=p_ok + 1)
        expect(ValueError, frag, op, fn, x, k, stride=1,
               padding=(p_ok + 1,) + (p_ok,) * (rank - 1))


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_output_size_too_small(kind, rank):
    x, fn, op = base_x(rank, L=4), fwd(kind, rank), op_name(kind, rank)
    frag = "Output size is too small"
    for ceil_mode in (False, True):
        expect(ValueError, frag, op, fn, x, 5, stride=1, ceil_mode=ceil_mode)  # kernel > input
        expect(ValueError, frag, op, fn, x, (4,) * (rank - 1) + (7,), stride=1,
               ceil_mode=ceil_mode)
        fn(x, 4, ceil_mode=ceil_mode)  # kernel == input: one output
    expect(ValueError, frag, op, fn, x, 5)
    # PyTorch's ceil_mode gives a window larger than the input an output when the stride is
    # large enough: ceil((4 - 5) / 5) + 1 = 1 (not an error)
    want = pool_output_shape(x.shape, rank, 5, ceil_mode=True)
    assert want[2:] == (1,) * rank and fn(x, 5, ceil_mode=True).shape == want
    if kind == "max":
        expect(ValueError, frag, op, fn, x, 3, dilation=2)  # effective kernel 5 > 4
        assert fn(x, 3, stride=1, dilation=2, padding=1).shape[-1] == 2


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_tuple_wrong_length(kind, rank):
    kw = valid_kwargs(kind, rank)
    names = ["kernel_size", "stride", "padding"] + (["dilation"] if kind == "max" else [])
    bad_lengths = [rank + 1] + ([2] if rank == 3 else [])
    for name in names:
        for n in bad_lengths:
            expect(ValueError, f"{name} must either be a single int, or a tuple of",
                   op_name(kind, rank), fwd(kind, rank), base_x(rank),
                   **dict(kw, **{name: (1,) * n}))
        # one entry broadcasts (as in PyTorch); rank entries are the normal form
        fwd(kind, rank)(base_x(rank), **dict(kw, **{name: (kw[name],)}))
        fwd(kind, rank)(base_x(rank), **dict(kw, **{name: (kw[name],) * rank}))


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_divisor_override_zero(rank):
    x = base_x(rank)
    expect(ValueError, "divisor must be not zero", op_name("avg", rank), fwd("avg", rank), x, 3,
           divisor_override=0)
    for dv in (1, 7, -2):  # anything else is a divisor (PyTorch accepts negative ones)
        fwd("avg", rank)(x, 3, divisor_override=dv)


@pytest.mark.parametrize("kind,rank", pairs(ADAPTIVE), ids=pair_ids(ADAPTIVE))
def test_adaptive_output_size_negative(kind, rank):
    for out in [-1, (2,) * (rank - 1) + (-3,)]:
        expect(ValueError, "output_size must be non-negative", op_name(kind, rank),
               fwd(kind, rank), base_x(rank), out)


@pytest.mark.parametrize("kind,rank", pairs(ADAPTIVE), ids=pair_ids(ADAPTIVE))
def test_adaptive_output_size_wrong_length(kind, rank):
    for n in [rank + 1] + ([2] if rank == 3 else []):
        expect(ValueError, "output_size must either be a single int, or a tuple of",
               op_name(kind, rank), fwd(kind, rank), base_x(rank), (2,) * n)
    assert fwd(kind, rank)(base_x(rank), (None,) * rank).shape == base_x(rank).shape


BAD_DTYPES = [np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.longdouble]


@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_bad_dtype(kind, rank):
    kw = valid_kwargs(kind, rank)
    for dt in BAD_DTYPES:
        if np.dtype(dt) == np.dtype(np.float64):  # longdouble is double on some platforms
            continue
        expect(TypeError, "float32 or float64", op_name(kind, rank), fwd(kind, rank),
               base_x(rank).astype(dt), **kw)


@pytest.mark.parametrize("kind,rank", pairs(FIXED), ids=pair_ids(FIXED))
def test_non_integer_arguments(kind, rank):
    kw = valid_kwargs(kind, rank)
    frag = "must be an integer or a tuple of integers"
    names = ["kernel_size", "stride", "padding"] + (["dilation"] if kind == "max" else [])
    for name in names:
        good = kw[name]
        for bad in [float(good), str(good), (good,) * (rank - 1) + (good + 0.5,)]:
            msg = expect(TypeError, frag, op_name(kind, rank), fwd(kind, rank), base_x(rank),
                         **dict(kw, **{name: bad}))
            assert name in msg
        # NumPy integers and lists are integers
        fwd(kind, rank)(base_x(rank), **dict(kw, **{name: np.int64(good)}))
        fwd(kind, rank)(base_x(rank), **dict(kw, **{name: [good] * rank}))


@pytest.mark.parametrize("kind,rank", pairs(ADAPTIVE), ids=pair_ids(ADAPTIVE))
def test_adaptive_non_integer_output_size(kind, rank):
    for bad in [2.5, "2", (2,) * (rank - 1) + (1.5,)]:
        expect(TypeError, "must be an integer or a tuple of integers", op_name(kind, rank),
               fwd(kind, rank), base_x(rank), bad)
    fwd(kind, rank)(base_x(rank), np.int32(2))


# =============================================================================================
# gradient rows
# =============================================================================================
def grad_base(kind, rank, dtype=np.float32):
    """(x, grad_output, indices or None, avg keyword arguments) of a valid gradient call."""
    x = base_x(rank, dtype)
    kw = valid_kwargs(kind, rank)
    if kind in MAX_KINDS:
        y, idx = fwd(kind, rank)(x, return_indices=True, **kw)
    else:
        y, idx = fwd(kind, rank)(x, **kw), None
    g = np.random.default_rng(5).uniform(-1, 1, size=y.shape).astype(dtype)
    return x, g, idx, (kw if kind == "avg" else {})


def call_grad(kind, rank, g, idx, input_shape, kw):
    if kind in MAX_KINDS:
        return bwd(kind, rank)(g, idx, input_shape)
    if kind == "avg":
        return bwd(kind, rank)(g, input_shape, **kw)
    return bwd(kind, rank)(g, input_shape)


def test_valid_grad_calls():
    for kind, rank in pairs(KINDS):
        x, g, idx, kw = grad_base(kind, rank)
        assert call_grad(kind, rank, g, idx, x.shape, kw).shape == x.shape


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_grad_output_shape_avg(rank):
    x, g, _, kw = grad_base("avg", rank)
    op = op_name("avg", rank, grad=True)
    for bad in [g[..., :-1], g[:1], g[:, :2], g[..., None]]:
        expect(ValueError, "expected grad_output of size", op, bwd("avg", rank), bad, x.shape,
               **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_grad_output_shape_adaptive_avg(rank):
    """The output size is grad_output's trailing dims; batch / channel must match input_shape."""
    x, g, _, _ = grad_base("adaptive_avg", rank)
    op = op_name("adaptive_avg", rank, grad=True)
    for bad in [g[:1], g[:, :2], g[0, 0]]:
        expect(ValueError, "expected grad_output of size", op, bwd("adaptive_avg", rank), bad,
               x.shape)


@pytest.mark.parametrize("kind,rank", pairs(MAX_KINDS), ids=pair_ids(MAX_KINDS))
def test_grad_indices_shape(kind, rank):
    x, g, idx, _ = grad_base(kind, rank)
    for bad in [idx[..., :-1], idx[:1], idx[..., None]]:
        expect(ValueError, "expected indices of size", op_name(kind, rank, True), bwd(kind, rank),
               g, bad, x.shape)


@pytest.mark.parametrize("kind,rank", pairs(MAX_KINDS), ids=pair_ids(MAX_KINDS))
def test_grad_indices_dtype(kind, rank):
    x, g, idx, _ = grad_base(kind, rank)
    for dt in [np.int32, np.uint64, np.float64, np.int16]:
        expect(TypeError, "expected indices to have dtype int64", op_name(kind, rank, True),
               bwd(kind, rank), g, idx.astype(dt), x.shape)


@pytest.mark.parametrize("kind,rank", pairs(MAX_KINDS), ids=pair_ids(MAX_KINDS))
def test_grad_index_outside_plane(kind, rank):
    x, g, idx, _ = grad_base(kind, rank)
    plane = int(np.prod(x.shape[2:]))
    # (-1 is left out on purpose: it is PyTorch's "no input" index, which its backward skips;
    # a max window lying entirely in the padding may produce it, see test_pool_grad)
    for value in [-2, plane, plane + 7, -(2 ** 40), 2 ** 62]:
        bad = idx.copy()
        bad.reshape(-1)[bad.size // 2] = value
        expect(ValueError, "found an index outside the input plane", op_name(kind, rank, True),
               bwd(kind, rank), g, bad, x.shape)
    # the largest in-plane index is fine
    ok = idx.copy()
    ok.reshape(-1)[0] = plane - 1
    bwd(kind, rank)(g, ok, x.shape)


@pytest.mark.parametrize("kind,rank", pairs(MAX_KINDS), ids=pair_ids(MAX_KINDS))
def test_grad_batch_channel_mismatch(kind, rank):
    x, g, idx, _ = grad_base(kind, rank)
    N, C = x.shape[:2]
    sp = x.shape[2:]
    for shape in [(N + 1, C) + sp, (N, C + 1) + sp, (C,) + sp, (N - 1, C) + sp]:
        expect(ValueError, "expected grad_output with the batch and channel sizes",
               op_name(kind, rank, True), bwd(kind, rank), g, idx, shape)


@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_grad_bad_dtype_and_input_shape(kind, rank):
    x, g, idx, kw = grad_base(kind, rank)
    op = op_name(kind, rank, True)
    for dt in [np.float16, np.int32, np.complex64]:
        expect(TypeError, "float32 or float64", op, call_grad, kind, rank, g.astype(dt), idx,
               x.shape, kw)
    expect(ValueError, "-D (batched) input", op, call_grad, kind, rank, g, idx, x.shape[2:], kw)
    zero = (x.shape[0], 0) + x.shape[2:]
    expect(ValueError, "non-zero sizes in its non-batch dimensions", op, call_grad, kind, rank,
           g, idx, zero, kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_avg_grad_shares_forward_rules(rank):
    """avg_pool{n}d_input validates kernel / stride / padding / divisor like the forward."""
    x, g, _, kw = grad_base("avg", rank)
    op, fn = op_name("avg", rank, True), bwd("avg", rank)
    rows = [
        (ValueError, "kernel size should be greater than zero", dict(kw, kernel_size=0,
                                                                     padding=0)),
        (ValueError, "stride should be greater than zero", dict(kw, stride=0)),
        (ValueError, "pad must be non-negative", dict(kw, padding=-1)),
        (ValueError, "pad should be at most half of kernel size", dict(kw, padding=2)),
        (ValueError, "divisor must be not zero", dict(kw, divisor_override=0)),
        (ValueError, "must either be a single int, or a tuple of", dict(kw, stride=(2,) *
                                                                         (rank + 1))),
        (TypeError, "must be an integer or a tuple of integers", dict(kw, kernel_size=3.0)),
    ]
    for exc, frag, bad in rows:
        expect(exc, frag, op, fn, g, x.shape, **bad)
    small = x.shape[:2] + (2,) * rank
    expect(ValueError, "Output size is too small", op, fn, g, small, 5)


# =============================================================================================
# memory layouts
# =============================================================================================
def _native(a):
    """Contiguous native-byte-order copy with the same values."""
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("="))


def layout_variants(x):
    """{name: array} with x's values (or a subset of them) in unusual layouts."""
    rank_axes = x.ndim
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    swapped = np.ascontiguousarray(np.swapaxes(x, 0, 1)).swapaxes(0, 1)
    ro = x.copy()
    ro.setflags(write=False)
    variants = {
        "negative": np.flip(x, axis=-1),
        "negative_all": x[(slice(None, None, -1),) * rank_axes],
        "fortran": np.asfortranarray(x),
        "broadcast_batch": np.broadcast_to(x[:1], x.shape),
        "broadcast_spatial": np.broadcast_to(x[..., :1], x.shape),
        "step": big[..., ::2],
        "swapped_nc": swapped,
        "big_endian": x.astype(x.dtype.newbyteorder(">")),
        "read_only": ro,
    }
    return variants


def _results(res):
    return res if isinstance(res, tuple) else (res,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_any_strides_forward(kind, rank, dtype):
    rng = np.random.default_rng(77)
    x = rng.integers(-4, 5, size=(2, 3) + {1: (11,), 2: (7, 6), 3: (4, 5, 4)}[rank])
    x = (x + rng.uniform(-0.5, 0.5, size=x.shape) * (rng.random(x.shape) < 0.5)).astype(dtype)
    kw = ({"output_size": 3} if kind in ADAPTIVE
          else {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True})
    if kind in MAX_KINDS:
        kw["return_indices"] = True
    fn = fwd(kind, rank)
    problems = []
    for name, v in layout_variants(x).items():
        before = v.copy()
        got = _results(fn(v, **kw))
        want = _results(fn(_native(v), **kw))
        for g, w in zip(got, want):
            if not (g.flags.c_contiguous and g.dtype == w.dtype and g.shape == w.shape
                    and g.tobytes() == w.tobytes()):
                problems.append(f"{name}: result differs from the contiguous copy's")
            if g.dtype.kind == "f" and g.dtype != np.dtype(dtype):
                problems.append(f"{name}: output dtype {g.dtype} (input {v.dtype})")
        if not np.array_equal(v, before) or v.dtype != before.dtype:
            problems.append(f"{name}: input modified")
    if kind == "max":  # and the values are right (the layouts do not all share x's values)
        y, idx = fn(x[..., ::-1], **kw)
        ry, ri = max_pool_reference(np.asarray(x[..., ::-1], np.float64), rank,
                                    **{k: v for k, v in kw.items() if k != "return_indices"})
        if not (np.array_equal(y, ry) and np.array_equal(idx, ri)):
            problems.append("negative strides: values/indices differ from the reference")
    assert not problems, problems


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_any_strides_grad(kind, rank, dtype):
    x, g, idx, kw = grad_base(kind, rank, dtype)
    problems = []
    idx_variants = {"contiguous": idx} if idx is None else dict(
        contiguous=idx, negative=np.ascontiguousarray(idx[..., ::-1])[..., ::-1],
        fortran=np.asfortranarray(idx), broadcast_batch=np.broadcast_to(idx[:1], idx.shape),
        big_endian=idx.astype(">i8"))
    g_variants = layout_variants(g)
    for gname, gv in g_variants.items():
        for iname, iv in idx_variants.items():
            if kind in MAX_KINDS and iname == "broadcast_batch" and gname != "broadcast_batch":
                continue  # keep the pairs few; broadcast indices are tried with broadcast g
            g_before = gv.copy()
            i_before = None if iv is None else iv.copy()
            got = call_grad(kind, rank, gv, iv, x.shape, kw)
            want = call_grad(kind, rank, _native(gv), None if iv is None else _native(iv),
                             x.shape, kw)
            if not (got.flags.c_contiguous and got.dtype == np.dtype(dtype)
                    and got.tobytes() == want.tobytes()):
                problems.append(f"grad_output {gname}, indices {iname}: result differs from "
                                f"the contiguous copy's")
            if not np.array_equal(gv, g_before) or (iv is not None
                                                    and not np.array_equal(iv, i_before)):
                problems.append(f"grad_output {gname}, indices {iname}: argument modified")
    assert not problems, problems


@pytest.mark.parametrize("kind,rank", pairs(KINDS), ids=pair_ids(KINDS))
def test_outputs_are_new_arrays(kind, rank):
    """Outputs never alias the input, and later writes to them leave the input alone."""
    x = base_x(rank)
    before = x.copy()
    kw = valid_kwargs(kind, rank)
    if kind in MAX_KINDS:
        kw["return_indices"] = True
    for out in _results(fwd(kind, rank)(x, **kw)):
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, x)
        out[...] = 0
    assert np.array_equal(x, before)


def test_reference_shape_helper_agrees():
    """pool_output_shape (the reference) and fastconv agree on a few hand-picked shapes."""
    x = base_x(2, L=7)
    for kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=(3, 2), stride=None, padding=(1, 0), dilation=(2, 1))]:
        assert F.max_pool2d(x, **kw).shape == pool_output_shape(x.shape, 2, **kw)
