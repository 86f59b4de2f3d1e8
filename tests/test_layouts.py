"""Memory layouts: any strides, byte orders and flags give the result of the contiguous copy.

For every rank, algorithm (and 'auto') and dtype, each variant below passes views (negative
strides, Fortran order, slices, zero-stride broadcasts, channels-last transposes, unaligned
buffers, big-endian and read-only arrays) for input, weight and/or bias. The output must be
bit-identical to the one computed from C-contiguous native copies, be a new C-contiguous array
that shares no memory with the arguments, and the arguments must be left unmodified.
"""

import numpy as np
import pytest

from fastconv import functional as F
from conftest import ALGOS, skip_if_declined, tolerance_for
from reference import conv_reference, normalized_error

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
RANKS = [1, 2, 3]
DTYPES = [np.float32, np.float64]
N, C, K, G, L, KS = 2, 4, 6, 2, 7, 3  # batch, in/out channels, groups, spatial size, kernel


def _rand(rng, shape, dtype):
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def _unaligned(a):
    """A copy of `a` whose data pointer is 1 byte off its natural alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert u.ctypes.data % a.dtype.itemsize != 0
    return u


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _channels_last(rng, shape, dtype):
    """A (N, C, *sp) view of memory laid out (N, *sp, C)."""
    nd = len(shape)
    base = _rand(rng, (shape[0],) + tuple(shape[2:]) + (shape[1],), dtype)
    return np.moveaxis(base, nd - 1, 1)


def make_variant(variant, rank, dtype, rng):
    """Returns (x, w, b) views for the variant (unchanged arguments are contiguous)."""
    sp = (L,) * rank
    ks = (KS,) * rank
    x = _rand(rng, (N, C) + sp, dtype)
    w = _rand(rng, (K, C // G) + ks, dtype)
    b = _rand(rng, (K,), dtype)
    if variant == "x_negative_last":
        x = _rand(rng, (N, C) + sp, dtype)[..., ::-1]
    elif variant == "x_negative_all":
        x = _rand(rng, (N, C) + sp, dtype)[(slice(None, None, -1),) * (rank + 2)]
    elif variant == "x_fortran":
        x = np.asfortranarray(x)
    elif variant == "x_sliced":
        x = _rand(rng, (N + 1, 2 * C) + tuple(2 * s + 1 for s in sp), dtype)
        x = x[1:, ::2][(Ellipsis,) + (slice(1, None, 2),) * rank]
    elif variant == "x_channels_last":
        x = _channels_last(rng, (N, C) + sp, dtype)
    elif variant == "x_broadcast_batch":
        x = np.broadcast_to(_rand(rng, (1, C) + sp, dtype), (N, C) + sp)
    elif variant == "x_broadcast_spatial":
        x = np.broadcast_to(_rand(rng, (N, C) + (1,) * rank, dtype), (N, C) + sp)
    elif variant == "x_broadcast_scalar":
        x = np.broadcast_to(np.asarray(0.75, dtype), (N, C) + sp)
    elif variant == "x_unbatched_negative":
        x = _rand(rng, (C,) + sp, dtype)[::-1, ..., ::-1]
    elif variant == "w_negative":
        w = _rand(rng, (K, C // G) + ks, dtype)[::-1, :, ..., ::-1]
    elif variant == "w_fortran":
        w = np.asfortranarray(w)
    elif variant == "w_sliced":
        w = _rand(rng, (2 * K, C // G) + tuple(2 * k for k in ks), dtype)
        w = w[::2][(Ellipsis,) + (slice(None, None, 2),) * rank]
    elif variant == "w_broadcast":
        w = np.broadcast_to(_rand(rng, (1, C // G) + ks, dtype), (K, C // G) + ks)
    elif variant == "b_sliced":
        b = _rand(rng, (2 * K,), dtype)[1::2]
    elif variant == "b_negative":
        b = b[::-1]
    elif variant == "b_broadcast":
        b = np.broadcast_to(np.asarray(0.25, dtype), (K,))
    elif variant == "big_endian":
        bo = np.dtype(dtype).newbyteorder(">")
        x, w, b = x.astype(bo), w.astype(bo), b.astype(bo)
    elif variant == "readonly":
        x, w, b = _readonly(x), _readonly(w), _readonly(b)
    elif variant == "unaligned":
        x, w, b = _unaligned(x), _unaligned(w), _unaligned(b)
    elif variant == "everything":  # non-native, non-contiguous and read-only at once
        bo = np.dtype(dtype).newbyteorder(">")
        x = np.asfortranarray(_rand(rng, (N, C) + sp, dtype).astype(bo))[..., ::-1]
        w = _rand(rng, (K, C // G) + ks, dtype).astype(bo)[::-1]
        b = _rand(rng, (2 * K,), dtype)[::2]
        for a in (x, w, b):
            a.setflags(write=False)
    else:  # pragma: no cover
        raise AssertionError(variant)
    return x, w, b


VARIANTS = ["x_negative_last", "x_negative_all", "x_fortran", "x_sliced", "x_channels_last",
            "x_broadcast_batch", "x_broadcast_spatial", "x_broadcast_scalar",
            "x_unbatched_negative", "w_negative", "w_fortran", "w_sliced", "w_broadcast",
            "b_sliced", "b_negative", "b_broadcast", "big_endian", "readonly", "unaligned",
            "everything"]


def _native_contiguous(a):
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("algo", ALGOS + ["auto"])
@pytest.mark.parametrize("rank", RANKS, ids=[f"conv{r}d" for r in RANKS])
def test_layout_variant(rank, algo, variant, dtype):
    rng = np.random.default_rng([rank, VARIANTS.index(variant)])
    x, w, b = make_variant(variant, rank, dtype, rng)
    if not variant.startswith(("x_broadcast", "x_unbatched", "b_", "w_", "big", "read",
                               "unal", "every")):
        assert not x.flags.c_contiguous, "variant should give a non-contiguous input"
    saved = [np.array(a, copy=True) for a in (x, w, b)]
    xc, wc, bc = (_native_contiguous(a) for a in (x, w, b))
    for mode in ("zeros", "circular"):
        kw = dict(padding=1, groups=G, padding_mode=mode, algo=algo)
        with skip_if_declined(algo):
            expected = CONV[rank](xc, wc, bc, **kw)
        y = CONV[rank](x, w, b, **kw)
        assert isinstance(y, np.ndarray)
        assert y.dtype == np.dtype(dtype) and y.dtype.isnative
        assert y.shape == expected.shape
        assert y.flags.c_contiguous and y.flags.writeable
        for a in (x, w, b):
            assert not np.shares_memory(y, a)
        assert y.tobytes() == expected.tobytes(), (
            f"{variant}: differs from the contiguous copy by "
            f"{np.max(np.abs(y.astype(np.float64) - expected)):.3e}")
        ref = conv_reference(xc, wc, bc, padding=1, groups=G, padding_mode=mode)
        assert normalized_error(y, ref) <= tolerance_for(algo, dtype)
    for a, s in zip((x, w, b), saved):
        assert a.dtype == s.dtype
        assert np.array_equal(a, s), "an argument was modified by the call"


@pytest.mark.parametrize("algo", ALGOS + ["auto"])
def test_contiguous_inputs_not_modified(algo):
    """Plain writeable contiguous arguments are not written to either."""
    rng = np.random.default_rng(3)
    x = _rand(rng, (2, 4, 9, 8), np.float32)
    w = _rand(rng, (6, 2, 3, 3), np.float32)
    b = _rand(rng, (6,), np.float32)
    saved = [a.copy() for a in (x, w, b)]
    for mode in ("zeros", "reflect", "replicate", "circular"):
        with skip_if_declined(algo):
            y = F.conv2d(x, w, b, padding=2, groups=2, padding_mode=mode, algo=algo)
        assert not any(np.shares_memory(y, a) for a in (x, w, b))
        for a, s in zip((x, w, b), saved):
            assert a.tobytes() == s.tobytes()


def test_output_is_a_new_array_each_call():
    rng = np.random.default_rng(4)
    x = _rand(rng, (1, 2, 5, 5), np.float32)
    w = _rand(rng, (3, 2, 1, 1), np.float32)
    y1 = F.conv2d(x, w)
    y2 = F.conv2d(x, w)
    assert not np.shares_memory(y1, y2)
    y1[...] = np.nan  # writing to one result does not touch the next
    assert not np.isnan(F.conv2d(x, w)).any()
