"""Argument validation of fastconv.functional.conv{1,2,3}d: the error table of the API contract.

Every bad argument raises ValueError / TypeError / OverflowError (MemoryError only where the
request is representable but too big) with a PyTorch-like message naming the argument; never a
crash, abort or hang; huge sizes are rejected before any allocation. Each case below breaks
exactly one rule of an otherwise valid call. Also: empty batch (N = 0), no output channels
(K = 0) and unbatched inputs give outputs of the right shape.
"""

import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastconv import functional as F
from conftest import ALGOS, skip_if_declined
from reference import conv_output_shape, conv_reference, normalized_error

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
RANKS = [1, 2, 3]
rank_ids = [f"conv{r}d" for r in RANKS]


def base(rank, dtype=np.float32, N=2, C=4, K=6, G=2, L=6, k=3):
    """A valid call: x (N, C, L...), w (K, C/G, k...), b (K,), groups G."""
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((N, C) + (L,) * rank).astype(dtype)
    w = rng.standard_normal((K, C // G) + (k,) * rank).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, dict(groups=G)


def raises(exc, fragment, rank, x, w, b=None, **kw):
    with pytest.raises(exc, match=re.escape(fragment)):
        CONV[rank](x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_base_call_is_valid(rank):
    x, w, b, kw = base(rank)
    y = CONV[rank](x, w, b, **kw)
    assert y.shape == conv_output_shape(x.shape, w.shape)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("extra", [-2, -1, 2, 3])  # ndim = rank + 1 + extra (never rank+1/+2)
def test_input_ndim(rank, extra):
    x, w, b, kw = base(rank)
    ndim = rank + 1 + extra
    if ndim < 0:
        pytest.skip("no such array")
    if ndim <= x.ndim:
        x = x[(0,) * (x.ndim - ndim)]
    else:
        x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    assert x.ndim == ndim
    raises(ValueError, f"expected {rank + 1}-D (unbatched) or {rank + 2}-D (batched) input "
                       f"to conv{rank}d", rank, x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("delta", [-1, 1])
def test_weight_ndim(rank, delta):
    x, w, b, kw = base(rank)
    w = w[..., 0] if delta < 0 else w[..., None]
    raises(ValueError, f"expected weight to be {rank + 2}-D", rank, x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_weight_not_divisible_by_groups(rank):
    x, w, b, kw = base(rank, C=4, K=6, G=2)
    w = w[:5]
    raises(ValueError, "expected weight to be divisible by 2 at dimension 0", rank, x, w, b[:5],
           **kw)
    x, w, b, kw = base(rank, C=3, K=4, G=1)
    raises(ValueError, "expected weight to be divisible by 3 at dimension 0", rank, x,
           w[:, :1], b, groups=3)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_channel_mismatch(rank, batched):
    x, w, b, kw = base(rank, C=4, K=6, G=2)
    x = np.concatenate([x, x[:, :1]], axis=1)  # 5 channels, weight wants 2 * 2 = 4
    if not batched:
        x = x[0]
    raises(ValueError, "to have 4 channels, but got 5 channels instead", rank, x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bshape", [(5,), (7,), (6, 1), (1, 6), (), (0,)])
def test_bias_shape(rank, bshape):
    x, w, _, kw = base(rank, K=6)
    b = np.ones(bshape, np.float32)
    raises(ValueError, "expected bias to be 1-dimensional with 6 elements", rank, x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("case", ["small_input", "dilated", "padded_still_small", "stride"])
def test_kernel_larger_than_input(rank, case):
    if case == "small_input":
        x, w, b, kw = base(rank, L=2, k=3)
    elif case == "dilated":  # span 3*(3-1)+1 = 7 > 6
        x, w, b, kw = base(rank, L=6, k=3)
        kw["dilation"] = 3
    elif case == "padded_still_small":  # 1 + 2*1 < 5
        x, w, b, kw = base(rank, L=1, k=5)
        kw["padding"] = 1
    else:  # stride does not matter for the check
        x, w, b, kw = base(rank, L=2, k=3)
        kw["stride"] = 2
    raises(ValueError, "Kernel size can't be greater than actual input size", rank, x, w, b, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_kernel_larger_than_input_empty_batch(rank):
    x, w, b, kw = base(rank, N=0, L=2, k=3)
    raises(ValueError, "Kernel size can't be greater than actual input size", rank, x, w, b, **kw)


# ---------------------------------------------------------------- parameter values
def _bad_tuple(rank, bad, good=1):
    return (good,) * (rank - 1) + (bad,)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bad", [0, -1, "tuple0", "tuple-2"])
def test_non_positive_stride(rank, bad):
    x, w, b, kw = base(rank)
    s = _bad_tuple(rank, int(bad[5:])) if isinstance(bad, str) else bad
    raises(ValueError, "non-positive stride is not supported", rank, x, w, b, stride=s, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bad", [0, -1, "tuple0", "tuple-3"])
def test_non_positive_dilation(rank, bad):
    x, w, b, kw = base(rank)
    d = _bad_tuple(rank, int(bad[5:])) if isinstance(bad, str) else bad
    raises(ValueError, "dilation should be greater than zero", rank, x, w, b, dilation=d, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("groups", [0, -1, -2])
def test_non_positive_groups(rank, groups):
    x, w, b, _ = base(rank)
    raises(ValueError, "non-positive groups is not supported", rank, x, w, b, groups=groups)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bad", [-1, "tuple-1"])
def test_negative_padding(rank, bad):
    x, w, b, kw = base(rank)
    p = _bad_tuple(rank, -1) if isinstance(bad, str) else bad
    raises(ValueError, "negative padding is not supported", rank, x, w, b, padding=p, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("stride", [2, "last2"])
def test_same_padding_strided(rank, stride):
    x, w, b, kw = base(rank)
    s = _bad_tuple(rank, 2) if stride == "last2" else stride
    raises(ValueError, "padding='same' is not supported for strided convolutions", rank, x, w, b,
           stride=s, padding="same", **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_invalid_padding_string(rank):
    x, w, b, kw = base(rank)
    raises(ValueError, "Invalid padding string 'foo'", rank, x, w, b, padding="foo", **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("mode", ["foo", "zero", "REFLECT", ""])
def test_invalid_padding_mode(rank, mode):
    x, w, b, kw = base(rank)
    raises(ValueError, "padding_mode must be one of", rank, x, w, b, padding=1,
           padding_mode=mode, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_unknown_algo(rank):
    x, w, b, kw = base(rank)
    raises(ValueError, "unknown algo 'foo'", rank, x, w, b, algo="foo", **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("padding", [6, 7, "tuple6", "same_k13"])
def test_reflect_padding_too_large(rank, padding):
    x, w, b, kw = base(rank, L=6)
    if padding == "same_k13":  # 'same' with k=13 pads 6 on each side of a size-6 input
        w = np.ones((6, 2) + (13,) * rank, np.float32)
        padding = "same"
    elif isinstance(padding, str):
        padding = _bad_tuple(rank, 6, good=0)
    raises(ValueError, "Padding size should be less than the corresponding input dimension",
           rank, x, w, b, padding=padding, padding_mode="reflect", **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("padding", [7, 12, "tuple7"])
def test_circular_padding_wraps_twice(rank, padding):
    x, w, b, kw = base(rank, L=6)
    if isinstance(padding, str):
        padding = _bad_tuple(rank, 7, good=0)
    raises(ValueError, "Padding value causes wrapping around more than once", rank, x, w, b,
           padding=padding, padding_mode="circular", **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("mode,padding", [("reflect", 5), ("circular", 6), ("replicate", 9)])
def test_padding_at_the_limit_is_valid(rank, mode, padding):
    """reflect allows padding = size - 1, circular padding = size; replicate any amount."""
    x, w, b, kw = base(rank, L=6, C=2, K=2, G=1, dtype=np.float64)
    y = CONV[rank](x, w, b, padding=padding, padding_mode=mode, **kw)
    ref = conv_reference(x, w, b, padding=padding, padding_mode=mode, **kw)
    assert y.shape == ref.shape
    assert normalized_error(y, ref) <= 1e-12


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
@pytest.mark.parametrize("length", ["empty", "short", "long"])
def test_tuple_wrong_length(rank, name, length):
    n = {"empty": 0, "short": rank - 1, "long": rank + 1}[length]
    if length == "short" and n <= 1:
        pytest.skip("0 entries is the empty case; 1 entry is PyTorch's single-value form")
    x, w, b, kw = base(rank)
    raises(ValueError, f"expected {name} to be a single integer or a tuple of {rank} integers",
           rank, x, w, b, **{name: (1,) * n}, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("form", ["tuple1", "list1", "list"])
def test_single_entry_and_list_forms(rank, form):
    """As PyTorch: a 1-entry tuple/list means that value in every dim; lists work like tuples."""
    x, w, b, kw = base(rank, dtype=np.float64)
    if form == "list":
        args = dict(stride=[2] * rank, padding=[1] * rank, dilation=[2] * rank)
    else:
        seq = tuple if form == "tuple1" else list
        args = dict(stride=seq([2]), padding=seq([1]), dilation=seq([2]))
    y = CONV[rank](x, w, b, **args, **kw)
    ref = conv_reference(x, w, b, stride=2, padding=1, dilation=2, **kw)
    assert y.shape == ref.shape and normalized_error(y, ref) <= 1e-12


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
@pytest.mark.parametrize("bad", [1.5, None, "a", "tuple1.5", "tupleNone", 2.0])
def test_non_integer_parameter(rank, name, bad):
    if name == "padding" and bad == "a":
        pytest.skip("a string padding is the 'Invalid padding string' case")
    x, w, b, kw = base(rank)
    if isinstance(bad, str) and bad.startswith("tuple"):
        bad = _bad_tuple(rank, None if bad == "tupleNone" else 1.5)
    raises(TypeError, f"{name} must be an integer or a tuple of integers", rank, x, w, b,
           **{name: bad}, **kw)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("bad", [1.5, None, "a"])
def test_non_integer_groups(rank, bad):
    x, w, b, _ = base(rank)
    with pytest.raises(TypeError):
        CONV[rank](x, w, b, groups=bad)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
def test_numpy_integer_parameters_accepted(rank):
    x, w, b, _ = base(rank, dtype=np.float64)
    y = CONV[rank](x, w, b, stride=np.int64(2), padding=np.int32(1), dilation=np.int16(1),
                   groups=np.int64(2))
    ref = conv_reference(x, w, b, stride=2, padding=1, groups=2)
    assert normalized_error(y, ref) <= 1e-12


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("name", ["stride", "padding", "dilation", "groups"])
@pytest.mark.parametrize("value", [2**63, 2**64, 2**70, -(2**63) - 1, "tuple2**63"])
def test_parameter_outside_int64(rank, name, value):
    x, w, b, kw = base(rank)
    if isinstance(value, str):
        if name == "groups":
            pytest.skip("groups is a single integer")
        value = _bad_tuple(rank, 2**63)
    if name != "groups":
        kwargs = dict(kw, **{name: value})
    else:
        kwargs = {"groups": value}
    raises(OverflowError, "does not fit in a 64-bit integer", rank, x, w, b, **kwargs)


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("padding", [2**62, 2**63 - 1, "tuple"], ids=["2^62", "2^63-1", "tuple"])
def test_size_overflow_padding(rank, padding):
    """Sizes whose arithmetic overflows int64: OverflowError, quickly, nothing allocated."""
    x, w, b, kw = base(rank)
    if padding == "tuple":
        padding = _bad_tuple(rank, 2**62, good=0)
    t0 = time.perf_counter()
    raises(OverflowError, "overflows", rank, x, w, b, padding=padding, **kw)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("dilation", [2**62, 2**63 - 1], ids=["2^62", "2^63-1"])
def test_size_overflow_dilation(rank, dilation):
    """dilation*(k-1)+1 overflows int64: an OverflowError, or the (overflow-safe) kernel check."""
    x, w, b, kw = base(rank)
    t0 = time.perf_counter()
    with pytest.raises((OverflowError, ValueError)) as ei:
        CONV[rank](x, w, b, dilation=dilation, **kw)
    msg = str(ei.value)
    if ei.type is OverflowError:
        assert "overflows" in msg, msg
    else:
        assert ei.type is ValueError and "Kernel size can't be greater" in msg, msg
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("mode", ["zeros", "replicate"])
def test_padding_2pow62_is_overflow_not_memory(rank, mode):
    x, w, b, kw = base(rank)
    t0 = time.perf_counter()
    try:
        CONV[rank](x, w, b, padding=2**62, padding_mode=mode, **kw)
    except OverflowError:
        pass
    except MemoryError as e:  # pragma: no cover - the failure we test against
        pytest.fail(f"MemoryError instead of OverflowError (an allocation was tried): {e}")
    else:
        pytest.fail("no error for padding=2**62")
    assert time.perf_counter() - t0 < 1.0


def test_padding_2pow31_no_crash():
    """padding 2**31-1 on a small 2-D input: OverflowError or MemoryError, never a crash.

    Run in a child process so that a crash (or a runaway allocation) fails this test only.
    """
    code = textwrap.dedent("""
        import numpy as np
        from fastconv import functional as F
        x = np.ones((1, 1, 3, 3), np.float32)
        w = np.ones((1, 1, 3, 3), np.float32)
        for mode in ("zeros", "replicate"):
            try:
                F.conv2d(x, w, padding=2**31 - 1, padding_mode=mode)
            except (OverflowError, MemoryError) as e:
                print(mode, type(e).__name__, e)
            else:
                print(mode, "NO ERROR")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"child died with {p.returncode}:\n{p.stdout}\n{p.stderr}"
    assert "NO ERROR" not in p.stdout, p.stdout
    assert p.stdout.count("Error") == 2, p.stdout


# ---------------------------------------------------------------- dtypes
BAD_DTYPES = [np.int32, np.int64, np.float16, np.complex64, np.complex128, np.bool_, object,
              np.uint8]


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("which", ["all", "input", "weight"])
def test_bad_dtype(rank, dtype, which):
    x, w, b, kw = base(rank)
    if which in ("all", "input"):
        x = x.astype(dtype)
    if which in ("all", "weight"):
        w = w.astype(dtype)
    if which == "all":
        b = b.astype(dtype)
    with pytest.raises(TypeError) as ei:
        CONV[rank](x, w, b if which == "all" else None, **kw)
    msg = str(ei.value)
    if which == "all":
        assert "float32 or float64" in msg, msg
    else:  # one bad array among float32 ones: either complaint is right
        assert "float32 or float64" in msg or "same dtype" in msg, msg


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("combo", ["x64_w32", "x32_w64", "bias64", "bias32"])
def test_mixed_dtypes(rank, combo):
    x, w, b, kw = base(rank, dtype=np.float32)
    if combo == "x64_w32":
        x = x.astype(np.float64)
    elif combo == "x32_w64":
        w = w.astype(np.float64)
    elif combo == "bias64":
        b = b.astype(np.float64)
    else:
        x, w = x.astype(np.float64), w.astype(np.float64)
    raises(TypeError, "same dtype", rank, x, w, b, **kw)


# ---------------------------------------------------------------- empty and unbatched
@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("algo", ALGOS + ["auto"])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_empty_batch(rank, algo, mode):
    x, w, b, kw = base(rank, N=0)
    with skip_if_declined(algo):
        y = CONV[rank](x, w, b, stride=2, padding=1, padding_mode=mode, algo=algo, **kw)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert y.shape == conv_output_shape(x.shape, w.shape, 2, 1) == (0, 6) + (3,) * rank


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("algo", ALGOS + ["auto"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_no_output_channels(rank, algo, batched):
    x, w, _, kw = base(rank, K=6, G=2)
    w = w[:0]
    if not batched:
        x = x[0]
    with skip_if_declined(algo):
        y = CONV[rank](x, w, np.zeros(0, np.float32), padding=1, algo=algo, **kw)
    expected = ((2,) if batched else ()) + (0,) + (6,) * rank
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == expected


@pytest.mark.parametrize("rank", RANKS, ids=rank_ids)
@pytest.mark.parametrize("algo", ALGOS + ["auto"])
def test_unbatched(rank, algo):
    x, w, b, kw = base(rank, dtype=np.float64)
    with skip_if_declined(algo):
        yb = CONV[rank](x[:1], w, b, padding=1, algo=algo, **kw)
    yu = CONV[rank](x[0], w, b, padding=1, algo=algo, **kw)
    assert yu.shape == yb.shape[1:] == (6,) + (6,) * rank
    assert yu.flags.c_contiguous
    np.testing.assert_array_equal(yu, yb[0])
    assert normalized_error(yu, conv_reference(x[0], w, b, padding=1, **kw)) <= 1e-12
