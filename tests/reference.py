"""Naive float64 NumPy reference for N-d convolution (the oracle of the fastconv tests).

What it computes: ``torch.nn.functional.conv{1,2,3}d`` semantics, i.e. CNN "convolution" =
cross-correlation, input (N, C, *spatial) or unbatched (C, *spatial), weight (K, C/groups, *kernel),
optional bias (K,), stride, padding (int, tuple, 'same', 'valid'), dilation, groups (depthwise
included) and padding_mode zeros | reflect | replicate | circular (as torch.nn.ConvNd: pad the
input with np.pad 'constant' / 'reflect' / 'edge' / 'wrap', then convolve without padding).
'same' pads dilation*(k-1) in total per dim, left = total // 2, right = total - left (PyTorch).

How: everything is cast to float64; the input is padded with ``np.pad``; then for every kernel
offset the strided window of the padded input is sliced out and contracted with the weight tap
over the input channels of each group (one ``np.einsum``), accumulating into the output.
Nothing here imports or shares code with fastconv: it is the independent side of the comparison.
Only valid arguments are expected (the tests generate valid ones); a few asserts guard misuse.
"""

import itertools

import numpy as np

__all__ = ["conv_reference", "conv_output_shape", "resolve_padding", "normalized_error"]

_NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _tuple(v, rank, name):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * rank
    v = tuple(int(e) for e in v)
    assert len(v) == rank, f"{name} needs {rank} entries, got {v}"
    return v


def resolve_padding(padding, kernel, dilation, rank=None):
    """Per-dim (left, right) padding for int / tuple / 'same' / 'valid' (PyTorch's split)."""
    kernel = tuple(kernel)
    rank = len(kernel) if rank is None else rank
    dilation = _tuple(dilation, rank, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in range(rank))
        assert padding == "same", padding
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return tuple((p, p) for p in _tuple(padding, rank, "padding"))


def conv_output_shape(in_shape, w_shape, stride=1, padding=0, dilation=1):
    """Output shape for input shape (N, C, *sp) or (C, *sp) and weight shape (K, Cg, *kernel)."""
    rank = len(w_shape) - 2
    batched = len(in_shape) == rank + 2
    sp = in_shape[-rank:]
    stride = _tuple(stride, rank, "stride")
    dilation = _tuple(dilation, rank, "dilation")
    pads = resolve_padding(padding, w_shape[2:], dilation, rank)
    out = []
    for L, k, s, d, (pl, pr) in zip(sp, w_shape[2:], stride, dilation, pads):
        span = d * (k - 1) + 1
        assert L + pl + pr >= span, "kernel larger than padded input"
        out.append((L + pl + pr - span) // s + 1)
    lead = (in_shape[0], w_shape[0]) if batched else (w_shape[0],)
    return lead + tuple(out)


def conv_reference(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """float64 N-d convolution (cross-correlation), PyTorch semantics. Returns a new float64 array.

    x: (N, C, *sp) or (C, *sp); w: (K, C // groups, *kernel); b: (K,) or None.
    """
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    assert rank >= 1
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == rank + 2
    assert batched or x.ndim == rank + 1, (x.shape, w.shape)
    if not batched:
        x = x[None]
    N, C = x.shape[:2]
    K, Cg = w.shape[:2]
    kernel = w.shape[2:]
    G = int(groups)
    assert G >= 1 and C == Cg * G and K % G == 0, (x.shape, w.shape, groups)
    Kg = K // G
    stride = _tuple(stride, rank, "stride")
    dilation = _tuple(dilation, rank, "dilation")
    pads = resolve_padding(padding, kernel, dilation, rank)

    # 1. pad the spatial dims (batch and channel dims untouched)
    pad_width = ((0, 0), (0, 0)) + tuple(pads)
    if any(p for pr in pads for p in pr):
        mode = _NP_PAD_MODE[padding_mode]
        for L, (pl, pr) in zip(x.shape[2:], pads):
            if padding_mode == "reflect":
                assert max(pl, pr) < L, "reflect padding must be < input size"
            if padding_mode == "circular":
                assert max(pl, pr) <= L, "circular padding must be <= input size"
        if mode == "constant":
            xp = np.pad(x, pad_width, mode="constant", constant_values=0.0)
        else:
            xp = np.pad(x, pad_width, mode=mode)
    else:
        xp = x

    # 2. output size per dim
    out_sp = []
    for Lp, k, s, d in zip(xp.shape[2:], kernel, stride, dilation):
        span = d * (k - 1) + 1
        assert Lp >= span, "kernel larger than padded input"
        out_sp.append((Lp - span) // s + 1)

    # 3. y[n, g*Kg + o, p] += sum_c xp[n, g*Cg + c, p*s + t*d] * w[g*Kg + o, c, t]  for each tap t
    y = np.zeros((N, G, Kg) + tuple(out_sp), dtype=np.float64)
    wg = w.reshape((G, Kg, Cg) + tuple(kernel))
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(
            slice(t * d, t * d + s * (o - 1) + 1, s)
            for t, d, s, o in zip(tap, dilation, stride, out_sp)
        )
        xs = xp[(slice(None), slice(None)) + window]  # (N, C, *out)
        xs = xs.reshape((N, G, Cg) + tuple(out_sp))
        wt = wg[(Ellipsis,) + tap]  # (G, Kg, Cg)
        y += np.einsum("ngc...,gkc->ngk...", xs, wt)
    y = y.reshape((N, K) + tuple(out_sp))
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        assert b.shape == (K,)
        y += b.reshape((1, K) + (1,) * rank)
    return y if batched else y[0]


def normalized_error(y, ref):
    """max|y - ref| / max|ref| (the accuracy measure of DESIGN.md); absolute error if ref == 0.

    Computed in float64; 0.0 for empty arrays; inf if y has a NaN/inf where ref is finite.
    """
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    if ref.size == 0:
        return 0.0
    diff = np.abs(y - ref)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    scale = float(np.max(np.abs(ref)))
    num = float(np.max(diff))
    return num / scale if scale > 0.0 else num
