"""Random convolution configurations shared by the forward and gradient test files.

``draw_conv_config`` draws one seeded configuration covering every parameter of the
convolution API (grouping incl. depthwise with channel multipliers, kernel, stride, dilation,
padding forms, the four padding modes within their limits, batched / unbatched / empty batch).
It never imports fastconv.
"""

import numpy as np

from reference import conv_output_shape, resolve_padding

MODES = ["zeros", "reflect", "replicate", "circular"]


def int_or_tuple(rng, vals):
    """Pass a tuple, or (when all entries agree, half of the time) a plain int."""
    vals = tuple(int(v) for v in vals)
    if len(set(vals)) == 1 and rng.random() < 0.5:
        return vals[0]
    return vals


def draw_grouping(rng):
    """(groups, channels per group, output channels per group): plain, grouped, or one input
    channel per group (depthwise, with a channel multiplier)."""
    r = rng.random()
    if r < 0.45:
        return 1, int(rng.integers(1, 9)), int(rng.integers(1, 10))
    if r < 0.7:
        return int(rng.integers(2, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    return int(rng.integers(1, 13)), 1, int(rng.choice([1, 1, 2, 3]))


def draw_conv_config(rng, rank, stride_p=(0.5, 0.3, 0.2)):
    """One random configuration: (x_shape, w_shape, kwargs) for ``conv{rank}d``.

    ``stride_p`` are the probabilities of strides 1, 2, 3 per dimension.
    """
    G, Cg, Kg = draw_grouping(rng)
    C, K = G * Cg, G * Kg
    kmax = {1: 8, 2: 6, 3: 4}[rank]
    kernel = tuple(int(v) for v in rng.integers(1, kmax, size=rank))
    stride = tuple(int(v) for v in rng.choice([1, 2, 3], p=list(stride_p), size=rank))
    dilation = tuple(int(v) for v in rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2], size=rank))
    mode = str(rng.choice(MODES, p=[0.4, 0.2, 0.2, 0.2]))
    pk = rng.choice(["int", "tuple", "same", "valid"], p=[0.35, 0.3, 0.2, 0.15])
    if pk == "int":
        padding = int(rng.integers(0, 4))
    elif pk == "tuple":
        padding = tuple(int(v) for v in rng.integers(0, 4, size=rank))
    else:
        padding = str(pk)
        if pk == "same":
            stride = (1,) * rank
    pads = resolve_padding(padding, kernel, dilation, rank)
    extra = {1: 24, 2: 9, 3: 5}[rank]
    spatial = []
    for k, d, (pl, pr) in zip(kernel, dilation, pads):
        lo = max(1, d * (k - 1) + 1 - pl - pr)
        if mode == "reflect":
            lo = max(lo, pl + 1, pr + 1)
        elif mode == "circular":
            lo = max(lo, pl, pr)
        spatial.append(lo + int(rng.integers(0, extra)))
    u = rng.random()
    batch = () if u < 0.2 else (0,) if u < 0.26 else (int(rng.integers(1, 4)),)
    kwargs = {}
    s = int_or_tuple(rng, stride)
    if s != 1 or rng.random() < 0.3:
        kwargs["stride"] = s
    kwargs["padding"] = padding
    d = int_or_tuple(rng, dilation)
    if d != 1 or rng.random() < 0.3:
        kwargs["dilation"] = d
    if G != 1 or rng.random() < 0.3:
        kwargs["groups"] = G
    if mode != "zeros" or rng.random() < 0.3:
        kwargs["padding_mode"] = mode
    return batch + (C,) + tuple(spatial), (K, Cg) + kernel, kwargs


def scale_conv_layer(layer, spatial_cap, mac_budget):
    """A layers.json conv entry scaled down: (x_shape, w_shape, kwargs) keeping kernel, stride,
    dilation, padding and the kind of grouping (depthwise stays depthwise), with spatial sizes
    capped at spatial_cap[rank] (but the padded input holds the dilated kernel plus 3 strides),
    batch at most 2, and channels halved until the problem has at most mac_budget MACs."""
    rank = len(layer["input"])
    kernel, stride = list(layer["kernel"]), list(layer["stride"])
    padding, dilation = list(layer["padding"]), list(layer["dilation"])
    C, K, G = layer["C"], layer["K"], layer["groups"]
    if G > 1 and G == C:  # depthwise (with channel multiplier K // C): stays depthwise
        G2, Cg, Kg = min(G, 12), 1, K // C
    else:
        G2, Cg, Kg = min(G, 4), min(C // G, 16), min(K // G, 16)
    sp = []
    for L, k, s, d, p in zip(layer["input"], kernel, stride, dilation, padding):
        span = d * (k - 1) + 1
        sp.append(max(min(L, spatial_cap[rank]), span - 2 * p + 3 * s))
    N = min(layer["N"], 2)

    def macs(Cg_, Kg_):
        out = conv_output_shape((N, Cg_ * G2) + tuple(sp), (Kg_ * G2, Cg_) + tuple(kernel),
                                stride, padding, dilation)
        return N * int(np.prod(out[1:])) * Cg_ * int(np.prod(kernel))

    while macs(Cg, Kg) > mac_budget and (Cg > 1 or Kg > 1):
        if Cg >= Kg:
            Cg = (Cg + 1) // 2
        else:
            Kg = (Kg + 1) // 2
    kwargs = dict(stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
                  groups=G2)
    return (N, G2 * Cg) + tuple(sp), (G2 * Kg, Cg) + tuple(kernel), kwargs
