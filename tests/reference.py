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

Gradients and transposed convolution (second half of this file), written from their definitions
rather than from each other:

- ``conv_input_grad``: scatter form of the data gradient. For every kernel offset, the gradient
  of each output element is scattered (``+=`` on a strided slice) into a gradient buffer of the
  *padded* input; that buffer is then folded back into the input through the index map of
  ``np.pad`` (``np.pad`` applied to the array of flat input indices tells which input element
  each padded position copies; ``np.add.at`` sums the padded gradient into it; zero padding maps
  to nothing).
- ``conv_weight_grad``: for every kernel offset, the strided window of the padded input
  contracted with the output gradient over batch and output positions.
- ``conv_bias_grad``: the output gradient summed over batch and spatial positions.
- ``conv_transpose``: PyTorch's ``conv_transpose{1,2,3}d`` by scattering: every input element
  adds ``x * w[c, o, tap]`` at position ``i*stride + tap*dilation`` of an uncropped output, which
  is then cropped by ``padding`` on both sides (``output_padding`` extends the right end).
- ``conv_transpose_input_grad`` / ``conv_transpose_weight_grad``: gather forms of the same
  index relation (the output gradient is placed into the uncropped buffer first).
"""

import itertools

import numpy as np

__all__ = [
    "conv_reference",
    "conv_output_shape",
    "resolve_padding",
    "normalized_error",
    # gradients and transposed convolution (issue 3)
    "conv_input_grad",
    "conv_weight_grad",
    "conv_bias_grad",
    "conv_transpose",
    "conv_transpose_output_shape",
    "conv_transpose_input_grad",
    "conv_transpose_weight_grad",
]

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



# =============================================================================================
# gradients of the convolution (issue 3)
# =============================================================================================
def _pad_spatial(a, pads, padding_mode):
    """np.pad of the spatial dims of a (N, C, *sp) array with the ConvNd padding_mode."""
    if not any(p for pr in pads for p in pr):
        return a
    pad_width = ((0, 0), (0, 0)) + tuple(pads)
    mode = _NP_PAD_MODE[padding_mode]
    if mode == "constant":
        return np.pad(a, pad_width, mode="constant", constant_values=0.0)
    return np.pad(a, pad_width, mode=mode)


def _pad_index_map(spatial, pads, padding_mode):
    """Flat input index that each position of the padded grid copies (np.pad's own mapping).

    np.pad is applied to the array of flat indices 0 .. prod(spatial)-1 with the same mode as
    the data; zero padding gets -1 (the position copies no input element).
    """
    idx = np.arange(int(np.prod(spatial)), dtype=np.int64).reshape(tuple(spatial))
    if padding_mode == "zeros":
        return np.pad(idx, tuple(pads), mode="constant", constant_values=-1)
    return np.pad(idx, tuple(pads), mode=_NP_PAD_MODE[padding_mode])


def _windows(kernel, dilation, stride, count):
    """(tap, slices): for every kernel offset, the strided window p*s + tap*d, p < count."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        yield tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                         for t, d, s, o in zip(tap, dilation, stride, count))


def conv_input_grad(input_shape, w, gy, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """float64 gradient of sum(conv_reference(x, w, ...) * gy) w.r.t. x, of shape input_shape.

    input_shape: (N, C, *sp) or (C, *sp); w: (K, C // groups, *kernel); gy: the output's shape.
    """
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    input_shape = tuple(int(v) for v in input_shape)
    batched = len(input_shape) == rank + 2
    assert batched or len(input_shape) == rank + 1, (input_shape, w.shape)
    gy = np.asarray(gy, dtype=np.float64)
    out_shape = conv_output_shape(input_shape, w.shape, stride, padding, dilation)
    assert gy.shape == out_shape, (gy.shape, out_shape)
    if not batched:
        input_shape, gy = (1,) + input_shape, gy[None]
    N, C = input_shape[:2]
    sp = input_shape[2:]
    K, Cg = w.shape[:2]
    kernel = w.shape[2:]
    G = int(groups)
    assert G >= 1 and C == Cg * G and K % G == 0, (input_shape, w.shape, groups)
    Kg = K // G
    stride = _tuple(stride, rank, "stride")
    dilation = _tuple(dilation, rank, "dilation")
    pads = resolve_padding(padding, kernel, dilation, rank)
    padded = tuple(L + pl + pr for L, (pl, pr) in zip(sp, pads))
    out_sp = gy.shape[2:]

    # 1. scatter: gxp[n, g*Cg + c, p*s + t*d] += gy[n, g*Kg + o, p] * w[g*Kg + o, c, t]
    gxp = np.zeros((N, G, Cg) + padded, dtype=np.float64)
    gyg = gy.reshape((N, G, Kg) + out_sp)
    wg = w.reshape((G, Kg, Cg) + kernel)
    for tap, window in _windows(kernel, dilation, stride, out_sp):
        gxp[(slice(None),) * 3 + window] += np.einsum("ngk...,gkc->ngc...", gyg,
                                                      wg[(Ellipsis,) + tap])

    # 2. fold the padded gradient back through np.pad's index map
    idx = _pad_index_map(sp, pads, padding_mode).reshape(-1)
    keep = idx >= 0
    gx = np.zeros((N, C, int(np.prod(sp))), dtype=np.float64)
    np.add.at(gx, (slice(None), slice(None), idx[keep]),
              gxp.reshape((N, C, int(np.prod(padded))))[:, :, keep])
    gx = gx.reshape((N, C) + sp)
    return gx if batched else gx[0]


def conv_weight_grad(x, weight_shape, gy, stride=1, padding=0, dilation=1, groups=1,
                     padding_mode="zeros"):
    """float64 gradient of sum(conv_reference(x, w, ...) * gy) w.r.t. w, of shape weight_shape.

    x: (N, C, *sp) or (C, *sp); weight_shape: (K, C // groups, *kernel); gy: the output's shape.
    """
    weight_shape = tuple(int(v) for v in weight_shape)
    rank = len(weight_shape) - 2
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == rank + 2
    assert batched or x.ndim == rank + 1, (x.shape, weight_shape)
    gy = np.asarray(gy, dtype=np.float64)
    out_shape = conv_output_shape(x.shape, weight_shape, stride, padding, dilation)
    assert gy.shape == out_shape, (gy.shape, out_shape)
    if not batched:
        x, gy = x[None], gy[None]
    N, C = x.shape[:2]
    K, Cg = weight_shape[:2]
    kernel = weight_shape[2:]
    G = int(groups)
    assert G >= 1 and C == Cg * G and K % G == 0, (x.shape, weight_shape, groups)
    Kg = K // G
    stride = _tuple(stride, rank, "stride")
    dilation = _tuple(dilation, rank, "dilation")
    pads = resolve_padding(padding, kernel, dilation, rank)
    xp = _pad_spatial(x, pads, padding_mode)
    out_sp = gy.shape[2:]

    # gw[g*Kg + o, c, t] = sum_{n, p} xp[n, g*Cg + c, p*s + t*d] * gy[n, g*Kg + o, p]
    gw = np.zeros((G, Kg, Cg) + kernel, dtype=np.float64)
    P = int(np.prod(out_sp))  # (explicit sizes: reshape cannot infer -1 when N = 0)
    gyg = gy.reshape((N, G, Kg, P))
    for tap, window in _windows(kernel, dilation, stride, out_sp):
        xs = xp[(slice(None), slice(None)) + window].reshape((N, G, Cg, P))
        gw[(Ellipsis,) + tap] = np.einsum("ngcp,ngkp->gkc", xs, gyg)
    return gw.reshape(weight_shape)


def conv_bias_grad(gy, batched):
    """float64 gradient w.r.t. the bias: gy (N, K, *sp) or (K, *sp) summed to shape (K,)."""
    gy = np.asarray(gy, dtype=np.float64)
    axes = (0,) + tuple(range(2, gy.ndim)) if batched else tuple(range(1, gy.ndim))
    return gy.sum(axis=axes)


# =============================================================================================
# transposed convolution and its gradients (issue 3)
# =============================================================================================
def _transpose_params(rank, stride, padding, output_padding, dilation):
    stride = _tuple(stride, rank, "stride")
    assert not isinstance(padding, str), "transposed convolution takes integer padding"
    padding = _tuple(padding, rank, "padding")
    output_padding = _tuple(output_padding, rank, "output_padding")
    dilation = _tuple(dilation, rank, "dilation")
    for s, d, op in zip(stride, dilation, output_padding):
        assert 0 <= op and (op < s or op < d), "output_padding must be < stride or < dilation"
    return stride, padding, output_padding, dilation


def conv_transpose_output_shape(in_shape, w_shape, stride=1, padding=0, output_padding=0,
                                dilation=1, groups=1):
    """Output shape of conv_transpose for input (N, C_in, *sp) / (C_in, *sp), weight
    (C_in, C_out // groups, *kernel): (L-1)*s - 2p + d*(k-1) + output_padding + 1 per dim."""
    rank = len(w_shape) - 2
    batched = len(in_shape) == rank + 2
    stride, padding, output_padding, dilation = _transpose_params(
        rank, stride, padding, output_padding, dilation)
    out = []
    for L, k, s, p, op, d in zip(in_shape[-rank:], w_shape[2:], stride, padding,
                                 output_padding, dilation):
        o = (L - 1) * s - 2 * p + d * (k - 1) + op + 1
        assert o >= 1, "output size too small"
        out.append(o)
    lead = (in_shape[0], w_shape[1] * groups) if batched else (w_shape[1] * groups,)
    return lead + tuple(out)


def _transpose_geometry(in_sp, kernel, stride, padding, output_padding, dilation):
    """Output sizes and the uncropped scatter buffer: output = buffer[p : p + out] per dim."""
    out_sp, full = [], []
    for L, k, s, p, op, d in zip(in_sp, kernel, stride, padding, output_padding, dilation):
        o = (L - 1) * s - 2 * p + d * (k - 1) + op + 1
        assert o >= 1, "output size too small"
        out_sp.append(o)
        # every scattered position i*s + t*d < (L-1)*s + d*(k-1) + 1; the crop needs p + o
        full.append(max((L - 1) * s + d * (k - 1) + 1, p + o))
    crop = tuple(slice(p, p + o) for p, o in zip(padding, out_sp))
    return tuple(out_sp), tuple(full), crop


def conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """float64 transposed convolution, torch.nn.functional.conv_transpose{1,2,3}d semantics.

    x: (N, C_in, *sp) or (C_in, *sp); w: (C_in, C_out // groups, *kernel); b: (C_out,) or None.
    Argument order as PyTorch (groups before dilation).
    """
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == rank + 2
    assert batched or x.ndim == rank + 1, (x.shape, w.shape)
    if not batched:
        x = x[None]
    N, Cin = x.shape[:2]
    Cog = w.shape[1]
    kernel = w.shape[2:]
    G = int(groups)
    assert G >= 1 and w.shape[0] == Cin and Cin % G == 0, (x.shape, w.shape, groups)
    Cig, Cout = Cin // G, Cog * G
    stride, padding, output_padding, dilation = _transpose_params(
        rank, stride, padding, output_padding, dilation)
    in_sp = x.shape[2:]
    out_sp, full, crop = _transpose_geometry(in_sp, kernel, stride, padding, output_padding,
                                             dilation)

    # scatter: yfull[n, g*Cog + o, i*s + t*d] += x[n, g*Cig + c, i] * w[g*Cig + c, o, t]
    yfull = np.zeros((N, G, Cog) + full, dtype=np.float64)
    xg = x.reshape((N, G, Cig) + in_sp)
    wg = w.reshape((G, Cig, Cog) + kernel)
    for tap, window in _windows(kernel, dilation, stride, in_sp):
        yfull[(slice(None),) * 3 + window] += np.einsum("ngc...,gco->ngo...", xg,
                                                        wg[(Ellipsis,) + tap])
    y = yfull[(slice(None),) * 3 + crop].reshape((N, Cout) + out_sp)
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        assert b.shape == (Cout,)
        y = y + b.reshape((1, Cout) + (1,) * rank)
    return y if batched else y[0]


def _uncropped_grad(gy, G, Cog, full, crop):
    """The output gradient placed into the uncropped scatter buffer (zeros elsewhere)."""
    N = gy.shape[0]
    gfull = np.zeros((N, G, Cog) + full, dtype=np.float64)
    gfull[(slice(None),) * 3 + crop] = gy.reshape((N, G, Cog) + gy.shape[2:])
    return gfull


def conv_transpose_input_grad(input_shape, w, gy, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """float64 gradient of sum(conv_transpose(x, w, ...) * gy) w.r.t. x (shape input_shape)."""
    w = np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    input_shape = tuple(int(v) for v in input_shape)
    batched = len(input_shape) == rank + 2
    assert batched or len(input_shape) == rank + 1, (input_shape, w.shape)
    gy = np.asarray(gy, dtype=np.float64)
    if not batched:
        input_shape, gy = (1,) + input_shape, gy[None]
    N, Cin = input_shape[:2]
    Cog = w.shape[1]
    kernel = w.shape[2:]
    G = int(groups)
    assert G >= 1 and w.shape[0] == Cin and Cin % G == 0, (input_shape, w.shape, groups)
    Cig = Cin // G
    stride, padding, output_padding, dilation = _transpose_params(
        rank, stride, padding, output_padding, dilation)
    in_sp = input_shape[2:]
    out_sp, full, crop = _transpose_geometry(in_sp, kernel, stride, padding, output_padding,
                                             dilation)
    assert gy.shape == (N, Cog * G) + out_sp, (gy.shape, out_sp)

    # gather: gx[n, g*Cig + c, i] = sum_{o, t} gyfull[n, g*Cog + o, i*s + t*d] * w[g*Cig + c, o, t]
    gfull = _uncropped_grad(gy, G, Cog, full, crop)
    wg = w.reshape((G, Cig, Cog) + kernel)
    gx = np.zeros((N, G, Cig) + in_sp, dtype=np.float64)
    for tap, window in _windows(kernel, dilation, stride, in_sp):
        gx += np.einsum("ngo...,gco->ngc...", gfull[(slice(None),) * 3 + window],
                        wg[(Ellipsis,) + tap])
    gx = gx.reshape(input_shape)
    return gx if batched else gx[0]


def conv_transpose_weight_grad(x, weight_shape, gy, stride=1, padding=0, output_padding=0,
                               groups=1, dilation=1):
    """float64 gradient of sum(conv_transpose(x, w, ...) * gy) w.r.t. w (shape weight_shape)."""
    weight_shape = tuple(int(v) for v in weight_shape)
    rank = len(weight_shape) - 2
    x = np.asarray(x, dtype=np.float64)
    batched = x.ndim == rank + 2
    assert batched or x.ndim == rank + 1, (x.shape, weight_shape)
    gy = np.asarray(gy, dtype=np.float64)
    if not batched:
        x, gy = x[None], gy[None]
    N, Cin = x.shape[:2]
    Cog = weight_shape[1]
    kernel = weight_shape[2:]
    G = int(groups)
    assert G >= 1 and weight_shape[0] == Cin and Cin % G == 0, (x.shape, weight_shape, groups)
    Cig = Cin // G
    stride, padding, output_padding, dilation = _transpose_params(
        rank, stride, padding, output_padding, dilation)
    in_sp = x.shape[2:]
    out_sp, full, crop = _transpose_geometry(in_sp, kernel, stride, padding, output_padding,
                                             dilation)
    assert gy.shape == (N, Cog * G) + out_sp, (gy.shape, out_sp)

    # gw[g*Cig + c, o, t] = sum_{n, i} x[n, g*Cig + c, i] * gyfull[n, g*Cog + o, i*s + t*d]
    gfull = _uncropped_grad(gy, G, Cog, full, crop)
    P = int(np.prod(in_sp))  # (explicit sizes: reshape cannot infer -1 when N = 0)
    xg = x.reshape((N, G, Cig, P))
    gw = np.zeros((G, Cig, Cog) + kernel, dtype=np.float64)
    for tap, window in _windows(kernel, dilation, stride, in_sp):
        gs = gfull[(slice(None),) * 3 + window].reshape((N, G, Cog, P))
        gw[(Ellipsis,) + tap] = np.einsum("ngcp,ngop->gco", xg, gs)
    return gw.reshape(weight_shape)


# =============================================================================================
# pooling (issue 4): max, average, adaptive average, adaptive max, 1-D/2-D/3-D, and gradients
# =============================================================================================
# Semantics are PyTorch's (CPU kernels), written from their definitions:
#
# - output size per dim: out = floor((L + 2p - d(k-1) - 1) / s) + 1, or ceil(...) + 1 with
#   ceil_mode, where with ceil_mode the last window must start inside the input or the left
#   padding (if (out-1)*s >= L + p then out -= 1). stride None / () = kernel_size.
# - a "window table" per spatial dim lists, for every output position o, the input positions
#   o*s - p + t*d of its taps t < k (adaptive: floor(o*L/O) .. ceil((o+1)*L/O) - 1) and which of
#   them lie inside the input; the N-d window is the product of the per-dim tables, its taps
#   in row-major order (depth, then height, then width), i.e. PyTorch's loop order.
# - max: scan the taps in that order starting from maxval = -inf and maxindex = the first valid
#   tap (PyTorch CPU: each dim's start advanced by the dilation while < 0); a tap replaces the
#   candidate when `val > maxval or isnan(val)`. So: first maximum on ties, the LAST NaN of the
#   window when there is one, -inf with the first valid index for an all -inf window. Indices
#   are flat within each (n, c) plane: (d*H + h)*W + w.
# - avg: sum of the taps inside the input / divisor; divisor = divisor_override, else (with
#   count_include_pad) the window size clipped to [-p, L + p) per dim, else the number of taps
#   inside the input.
# - adaptive avg: mean over the adaptive window; adaptive max: as max (no padding).
# - gradients: max / adaptive max scatter grad_output to the index (sums on collisions); avg /
#   adaptive avg spread grad_output / divisor over the window's taps inside the input.
# Inputs (N, C, *sp) or unbatched (C, *sp); `rank` is the number of spatial dims. All arithmetic
# in float64. Only valid arguments are expected (the tests generate valid ones).

def _pool_rank_tuple(v, rank, name):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * rank
    v = tuple(int(e) for e in v)
    if len(v) == 1 and rank > 1:
        v = v * rank
    assert len(v) == rank, f"{name} needs {rank} entries, got {v}"
    return v


def _pool_params(rank, kernel_size, stride, padding, dilation):
    kernel = _pool_rank_tuple(kernel_size, rank, "kernel_size")
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    stride = _pool_rank_tuple(stride, rank, "stride")
    padding = _pool_rank_tuple(padding, rank, "padding")
    dilation = _pool_rank_tuple(dilation, rank, "dilation")
    return kernel, stride, padding, dilation


def pool_output_size(L, k, s, p, d=1, ceil_mode=False):
    """One spatial dim of a max/avg pooling output (PyTorch's pooling_output_shape)."""
    num = L + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        out = -(-num // s) + 1  # ceil division (num may be negative only for invalid args)
        if (out - 1) * s >= L + p:  # the last window would start in the right padding
            out -= 1
    else:
        out = num // s + 1
    return out


def pool_output_shape(in_shape, rank, kernel_size, stride=None, padding=0, dilation=1,
                      ceil_mode=False):
    """Output shape of max/avg pooling for an input (N, C, *sp) or (C, *sp)."""
    kernel, stride, padding, dilation = _pool_params(rank, kernel_size, stride, padding,
                                                     dilation)
    in_shape = tuple(int(v) for v in in_shape)
    out = tuple(pool_output_size(L, k, s, p, d, ceil_mode)
                for L, k, s, p, d in zip(in_shape[-rank:], kernel, stride, padding, dilation))
    return in_shape[:-rank] + out


def adaptive_output_shape(in_shape, rank, output_size):
    """Output shape of adaptive pooling: None entries keep the input size."""
    in_shape = tuple(int(v) for v in in_shape)
    if output_size is None or isinstance(output_size, (int, np.integer)):
        output_size = (output_size,) * rank
    output_size = tuple(output_size)
    if len(output_size) == 1 and rank > 1:
        output_size = output_size * rank
    assert len(output_size) == rank, output_size
    sp = in_shape[-rank:]
    return in_shape[:-rank] + tuple(L if o is None else int(o) for L, o in zip(sp, output_size))


def _regular_table(L, O, k, s, p, d):
    """Window table of one dim: positions (O, k), valid (O, k), first (O,), pad_count (O,)."""
    starts = np.arange(O, dtype=np.int64) * s - p
    pos = starts[:, None] + np.arange(k, dtype=np.int64)[None, :] * d
    valid = (pos >= 0) & (pos < L)
    # PyTorch: while (start < 0) start += dilation
    first = np.where(starts < 0, starts + d * (-(starts) // d + ((-starts) % d != 0)), starts)
    # window clipped to [-p, L + p) (the count_include_pad divisor); avg only (d == 1)
    pad_count = np.minimum(starts + k, L + p) - starts
    return pos, valid, first, pad_count


def _adaptive_table(L, O):
    """Window table of one adaptive dim: [floor(o*L/O), ceil((o+1)*L/O))."""
    o = np.arange(O, dtype=np.int64)
    starts = (o * L) // O
    ends = -((-(o + 1) * L) // O)
    T = int((ends - starts).max()) if O > 0 else 1
    pos = starts[:, None] + np.arange(T, dtype=np.int64)[None, :]
    valid = pos < ends[:, None]
    return pos, valid, starts, ends - starts


def _windows_nd(sp, tables):
    """Combine per-dim tables -> flat (P_out, T) indices, valid (P_out, T), first (P_out,).

    Output positions in row-major order of the output, taps in row-major order of the window.
    Invalid taps get index 0 (they are masked out).
    """
    rank = len(sp)
    plane_strides = [int(np.prod(sp[i + 1:])) for i in range(rank)]
    flat = np.zeros((1,) * (2 * rank), dtype=np.int64)
    valid = np.ones((1,) * (2 * rank), dtype=bool)
    first = np.zeros((1,) * rank, dtype=np.int64)
    out_sizes, taps = [], []
    for i, (pos, val, fst) in enumerate(tables):
        O, T = pos.shape
        out_sizes.append(O)
        taps.append(T)
        shape = [1] * (2 * rank)
        shape[i], shape[rank + i] = O, T
        flat = flat + (pos * plane_strides[i]).reshape(shape)
        valid = valid & val.reshape(shape)
        fshape = [1] * rank
        fshape[i] = O
        first = first + (fst * plane_strides[i]).reshape(fshape)
    P, T = int(np.prod(out_sizes)), int(np.prod(taps))
    flat = np.broadcast_to(flat, tuple(out_sizes) + tuple(taps)).reshape(P, T)
    valid = np.broadcast_to(valid, tuple(out_sizes) + tuple(taps)).reshape(P, T)
    first = np.broadcast_to(first, tuple(out_sizes)).reshape(P)
    return np.where(valid, flat, 0), valid, first, tuple(out_sizes)


def _as_planes(x, rank):
    """float64 (planes, prod(sp)) view of x plus (lead dims, spatial dims)."""
    x = np.asarray(x, dtype=np.float64)
    assert x.ndim in (rank + 1, rank + 2), (x.shape, rank)
    lead, sp = x.shape[:-rank], x.shape[-rank:]
    return x.reshape((int(np.prod(lead)), int(np.prod(sp)))), lead, sp


def _max_over_windows(xf, flat, valid, first):
    """PyTorch's max scan over the taps: returns values (planes, P_out), indices (planes, P_out)."""
    planes = xf.shape[0]
    P = flat.shape[0]
    best = np.full((planes, P), -np.inf, dtype=np.float64)
    best_idx = np.broadcast_to(first, (planes, P)).copy()
    for t in range(flat.shape[1]):
        v = xf[:, flat[:, t]]  # (planes, P_out)
        take = valid[None, :, t] & ((v > best) | np.isnan(v))
        best = np.where(take, v, best)
        best_idx = np.where(take, flat[None, :, t], best_idx)
    return best, best_idx


def max_pool_reference(x, rank, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False):
    """float64 max pooling: returns (y float64, indices int64), PyTorch CPU semantics."""
    kernel, stride, padding, dilation = _pool_params(rank, kernel_size, stride, padding,
                                                     dilation)
    xf, lead, sp = _as_planes(x, rank)
    tables = []
    for L, k, s, p, d in zip(sp, kernel, stride, padding, dilation):
        O = pool_output_size(L, k, s, p, d, ceil_mode)
        assert O >= 1, "output size too small"
        pos, val, first, _ = _regular_table(L, O, k, s, p, d)
        tables.append((pos, val, first))
    flat, valid, first, out_sp = _windows_nd(sp, tables)
    y, idx = _max_over_windows(xf, flat, valid, first)
    return y.reshape(lead + out_sp), idx.reshape(lead + out_sp)


def max_pool_empty_windows(in_shape, rank, kernel_size, stride=None, padding=0, dilation=1,
                           ceil_mode=False):
    """bool array of the output's spatial shape: True where no tap of the (dilated) window lies
    inside the input (possible with dilation, e.g. L=1, k=2, d=2, p=1). PyTorch gives -inf there,
    with an index outside the plane (the first tap at or after 0)."""
    kernel, stride, padding, dilation = _pool_params(rank, kernel_size, stride, padding,
                                                     dilation)
    sp = tuple(int(v) for v in in_shape[-rank:])
    empty = np.zeros((1,) * rank, dtype=bool)
    for i, (L, k, s, p, d) in enumerate(zip(sp, kernel, stride, padding, dilation)):
        O = pool_output_size(L, k, s, p, d, ceil_mode)
        _, val, _, _ = _regular_table(L, O, k, s, p, d)
        shape = [1] * rank
        shape[i] = O
        empty = empty | ~val.any(axis=1).reshape(shape)
    out = tuple(pool_output_size(L, k, s, p, d, ceil_mode)
                for L, k, s, p, d in zip(sp, kernel, stride, padding, dilation))
    return np.broadcast_to(empty, out).copy()


def avg_pool_reference(x, rank, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    """float64 average pooling, PyTorch semantics (no dilation)."""
    kernel, stride, padding, _ = _pool_params(rank, kernel_size, stride, padding, 1)
    xf, lead, sp = _as_planes(x, rank)
    flat, valid, div, out_sp = _avg_windows(sp, kernel, stride, padding, ceil_mode,
                                            count_include_pad, divisor_override)
    with np.errstate(invalid="ignore"):  # inf - inf in a window is NaN, as in PyTorch
        y = np.where(valid[None], xf[:, flat], 0.0).sum(axis=2) / div[None]
    return y.reshape(lead + out_sp)


def _avg_windows(sp, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    tables, counts = [], []
    for L, k, s, p in zip(sp, kernel, stride, padding):
        O = pool_output_size(L, k, s, p, 1, ceil_mode)
        assert O >= 1, "output size too small"
        pos, val, first, pad_count = _regular_table(L, O, k, s, p, 1)
        tables.append((pos, val, first))
        counts.append(pad_count if count_include_pad else val.sum(axis=1))
    flat, valid, _, out_sp = _windows_nd(sp, tables)
    if divisor_override is not None:
        div = np.full(flat.shape[0], float(divisor_override))
    else:
        div = np.ones((1,) * len(sp), dtype=np.float64)
        for i, c in enumerate(counts):
            shape = [1] * len(sp)
            shape[i] = c.size
            div = div * c.reshape(shape).astype(np.float64)
        div = np.broadcast_to(div, out_sp).reshape(-1)
    return flat, valid, div, out_sp


def _adaptive_windows(sp, out_sp):
    tables, counts = [], []
    for L, O in zip(sp, out_sp):
        assert O >= 0, O
        pos, val, first, count = _adaptive_table(L, O)
        tables.append((pos, val, first))
        counts.append(count)
    flat, valid, first, _ = _windows_nd(sp, tables)
    div = np.ones((1,) * len(sp), dtype=np.float64)
    for i, c in enumerate(counts):
        shape = [1] * len(sp)
        shape[i] = c.size
        div = div * c.reshape(shape).astype(np.float64)
    div = np.broadcast_to(div, tuple(out_sp)).reshape(-1)
    return flat, valid, first, div


def adaptive_avg_pool_reference(x, rank, output_size):
    """float64 adaptive average pooling (output_size int / tuple, None keeps the input size)."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = adaptive_output_shape(x.shape, rank, output_size)
    xf, lead, sp = _as_planes(x, rank)
    out_sp = out_shape[-rank:]
    if int(np.prod(out_sp)) == 0:
        return np.zeros(out_shape)
    flat, valid, _, div = _adaptive_windows(sp, out_sp)
    with np.errstate(invalid="ignore"):  # inf - inf in a window is NaN, as in PyTorch
        y = np.where(valid[None], xf[:, flat], 0.0).sum(axis=2) / div[None]
    return y.reshape(out_shape)


def adaptive_max_pool_reference(x, rank, output_size):
    """float64 adaptive max pooling: (y float64, indices int64), PyTorch CPU semantics."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = adaptive_output_shape(x.shape, rank, output_size)
    xf, lead, sp = _as_planes(x, rank)
    out_sp = out_shape[-rank:]
    if int(np.prod(out_sp)) == 0:
        return np.zeros(out_shape), np.zeros(out_shape, dtype=np.int64)
    flat, valid, first, _ = _adaptive_windows(sp, out_sp)
    y, idx = _max_over_windows(xf, flat, valid, first)
    return y.reshape(out_shape), idx.reshape(out_shape)


def _scatter_planes(values, positions, planes, plane_size):
    """Sum values (planes, M) into (planes, plane_size) at positions (planes, M) or (M,)."""
    positions = np.broadcast_to(positions, values.shape)
    offsets = np.arange(planes, dtype=np.int64)[:, None] * plane_size
    out = np.bincount((positions + offsets).reshape(-1), weights=values.reshape(-1),
                      minlength=planes * plane_size)
    return out.reshape(planes, plane_size)


def max_pool_input_grad(gy, indices, input_shape, rank):
    """float64 gradient of max pooling w.r.t. its input: grad_output scattered (summed) to the
    flat per-plane indices the forward chose. Also the adaptive max pooling gradient."""
    input_shape = tuple(int(v) for v in input_shape)
    gy = np.asarray(gy, dtype=np.float64)
    indices = np.asarray(indices)
    assert gy.shape == indices.shape and gy.ndim == len(input_shape), (gy.shape, input_shape)
    lead, sp = input_shape[:-rank], input_shape[-rank:]
    assert gy.shape[:-rank] == lead
    planes, S = int(np.prod(lead)), int(np.prod(sp))
    P = int(np.prod(gy.shape[-rank:]))
    idx = indices.reshape(planes, P).astype(np.int64)
    assert idx.size == 0 or (idx.min() >= 0 and idx.max() < S), "index outside the plane"
    gx = _scatter_planes(gy.reshape(planes, P), idx, planes, S)
    return gx.reshape(input_shape)


adaptive_max_pool_input_grad = max_pool_input_grad


def avg_pool_input_grad(gy, input_shape, rank, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """float64 gradient of average pooling w.r.t. its input (shape input_shape)."""
    kernel, stride, padding, _ = _pool_params(rank, kernel_size, stride, padding, 1)
    input_shape = tuple(int(v) for v in input_shape)
    gy = np.asarray(gy, dtype=np.float64)
    lead, sp = input_shape[:-rank], input_shape[-rank:]
    flat, valid, div, out_sp = _avg_windows(sp, kernel, stride, padding, ceil_mode,
                                            count_include_pad, divisor_override)
    assert gy.shape == lead + out_sp, (gy.shape, lead + out_sp)
    planes, S = int(np.prod(lead)), int(np.prod(sp))
    share = gy.reshape(planes, div.size) / div[None]  # (planes, P_out)
    vals = np.where(valid[None], share[:, :, None], 0.0)  # (planes, P_out, T)
    gx = _scatter_planes(vals.reshape(planes, vals.shape[1] * vals.shape[2]), flat.reshape(-1),
                         planes, S)
    return gx.reshape(input_shape)


def adaptive_avg_pool_input_grad(gy, input_shape, rank):
    """float64 gradient of adaptive average pooling w.r.t. its input (shape input_shape)."""
    input_shape = tuple(int(v) for v in input_shape)
    gy = np.asarray(gy, dtype=np.float64)
    lead, sp = input_shape[:-rank], input_shape[-rank:]
    out_sp = gy.shape[-rank:]
    assert gy.shape[:-rank] == lead, (gy.shape, input_shape)
    planes, S = int(np.prod(lead)), int(np.prod(sp))
    if int(np.prod(out_sp)) == 0:
        return np.zeros(input_shape)
    flat, valid, _, div = _adaptive_windows(sp, out_sp)
    share = gy.reshape(planes, div.size) / div[None]
    vals = np.where(valid[None], share[:, :, None], 0.0)
    gx = _scatter_planes(vals.reshape(planes, vals.shape[1] * vals.shape[2]), flat.reshape(-1),
                         planes, S)
    return gx.reshape(input_shape)


__all__ += [
    "pool_output_size",
    "pool_output_shape",
    "adaptive_output_shape",
    "max_pool_reference",
    "max_pool_empty_windows",
    "avg_pool_reference",
    "adaptive_avg_pool_reference",
    "adaptive_max_pool_reference",
    "max_pool_input_grad",
    "adaptive_max_pool_input_grad",
    "avg_pool_input_grad",
    "adaptive_avg_pool_input_grad",
]
