"""The channel-blocked direct convolution (conv/direct_blocked.cpp) vs the float64 reference.

algo='direct' runs dense layers on the blocked kernels (kernels/generic/blocked_ukernel.hpp)
when the stride along the last spatial dim is 1 or 2 and 2*C_per_group >= W and
2*K_per_group >= W, W being the lanes of the ISA's blocked kernels (layers with fewer input
channels take the narrow layout, tested in test_direct_narrow.py):

    ISA      float32            float64 (always the portable kernels)
    scalar   W = 4,  MaxAcc 8   W = 4, MaxAcc 8
    avx2     W = 8,  MaxAcc 12  W = 4, MaxAcc 8
    avx512   W = 16, MaxAcc 28  W = 4, MaxAcc 8
             (MaxAcc 16 on cores with one 512-bit FMA pipe)

A tile is NB blocks of W output channels (NB in {1, 2, 4}) times UR outputs along the row; the
table holds a kernel for every NB x UR <= MaxAcc with UR <= 14 (commit d46324b had UR in
{1..7, 14}), at stride 1 and 2 along W. ``tiling`` below copies the rule of direct_blocked.cpp's
Tiling that picks (NB, UR) (the cycle model of commit 7a86a54). The last tile of a row is a
narrower kernel when UR does not divide the width (it overlapped the one before it up to commit
e84d7f8); channels beyond a group's count are zero-padded blocks; the reduction goes to memory
every 256 terms (kBlockedReductionBlock, i.e. every 256 / W (channel block, tap) steps), and runs
in chunks of such blocks over bands of output rows (each chunk added to the tile kept between
calls).

The shapes are built per W so that, for every ISA / dtype, the rule sends them to every tile
kernel of the table, at stride 1 and 2, each NB also with a narrower last tile
(``test_shapes_cover_the_tiling``). They do not lean on the rule much: every output-block count
1..5 meets every output width 1..16, 19, 29, 57 at both strides (d46324b's rule was covered
too).
``test_shapes_take_the_blocked_path`` checks through ``plan.prepare``'s packed size that the
library runs the blocked kernels on every shape, and ``test_tiling_copy_matches_library`` that
it picks the NB of the copy wherever the packed size tells NBs apart. Families:

- width:   1-D, K per group W/2 .. 4W+3 (1 to 5 blocks, multiples of W or not), output widths
           1..16, 19, 29, 57, stride 1 and 2, kernel 1/2/3/5, dilation 1-3, padding 0/1/2/'same'
- grouped: 2-D, groups 2-3 with C/K per group W/2, W/2+1, 3W/2+1 (and K 4W+1), stride 1-3
           along H, dilation 1-3
- padding: numbers, tuples, 'same' (asymmetric with even kernels), 'valid', and the padding
           modes reflect / replicate / circular
- ranks:   1-D, 2-D, 3-D; batch 1 and 3 and unbatched; stride 2 / 3 along D and H
- long:    reductions of C x kernel > 1000 terms crossing several 256-term flushes, and ones
           of exactly 4 flushes and one step less / more; 2-D ones of several chunks over bands
           of rows with a narrower last tile
- nan:     NaN / +-Inf in the input (and one NaN weight): the output is NaN (+-Inf) exactly where
           the reference computed on the same input is

Then: results are bit-identical on 1 and 2 threads, and ``fastconv.plan(..., algo='direct',
activation='relu')`` equals ``np.maximum(functional result, 0)`` bit for bit.
Accuracy budget (DESIGN.md, as the forward tests): normalised error <= 2e-6 float32,
<= 1e-12 float64; each error is reported through ``record_error`` (algo 'direct').
"""

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import (ConvCaseShape, fail_if, fma_pipes_of, layout_problems, special_value_problems,
                      tolerance_for)
from reference import conv_output_shape, conv_reference, normalized_error, resolve_padding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DTYPES = [np.float32, np.float64]
DTYPE_IDS = lambda d: np.dtype(d).name  # noqa: E731
ALGO = "direct"

# (lanes W, accumulators MaxAcc) of the blocked kernels, per ISA and dtype (kernels/*/kernels_*.cpp)
PORTABLE = (4, 8)
BLOCKED_KERNELS = {
    "scalar": {"float32": PORTABLE, "float64": PORTABLE},
    "avx2": {"float32": (8, 12), "float64": PORTABLE},
    "avx512": {"float32": (16, 28 if fma_pipes_of("avx512") >= 2 else 16), "float64": PORTABLE},
}
ALL_KERNELS = sorted({k for per_isa in BLOCKED_KERNELS.values() for k in per_isa.values()})
REDUCTION_BLOCK = 256  # kBlockedReductionBlock (terms summed in registers between flushes)
CHUNK_WEIGHT_BYTES = 32 << 10  # kChunkWeightBytes of direct_blocked.cpp
MAX_UR = 14  # BlockedConvUkernel::kMaxUr
MIN_CHAINS = 8  # kMinChains of Tiling


def kernels_of(isa, dtype):
    """(W, MaxAcc) of `isa`'s blocked kernels for `dtype`, or None for an ISA not listed."""
    return BLOCKED_KERNELS.get(isa, {}).get(np.dtype(dtype).name)


def listed_kernels(isa, dtype):
    """kernels_of(isa, dtype); the calling test is skipped for an ISA not listed."""
    k = kernels_of(isa, dtype)
    if k is None:
        pytest.skip(f"blocked kernels of {isa!r} not listed in BLOCKED_KERNELS")
    return k


def lanes_to_test(isa, dtype):
    """The W whose shapes run on (isa, dtype): its own, or every known one for an unknown ISA."""
    k = kernels_of(isa, dtype)
    return [k[0]] if k else sorted({w for w, _ in ALL_KERNELS})


# --------------------------------------------------------------------------- the tiling rule
def tiling(w, max_acc, cg, kg, ow):
    """(NB, UR, output blocks per group rounded up to NB, input blocks per group): the rule of
    direct_blocked.cpp's Tiling (7a86a54), same double arithmetic. The (NB, UR) with the most
    useful outputs per cycle, a row taking ceil(OW / UR) tiles of max(NB x UR, 8) cycles; ties
    (within 1e-4) go to the larger tile, then to the first NB of 2, 4, 1."""
    blocks = -(-kg // w)
    best, best_acc, nb, ur = 0.0, 0, 1, 1
    for n in (2, 4, 1):
        if n > 1 and n > blocks:
            continue
        for u in range(1, min(MAX_UR, ow) + 1):
            if n * u > max_acc:
                break
            rate = float(n * ow) / (float(-(-ow // u)) * float(max(n * u, MIN_CHAINS)))
            if rate > best * 1.0001 or (rate > best * 0.9999 and n * u > best_acc):
                best, best_acc, nb, ur = rate, n * u, n, u
    return nb, ur, -(-blocks // nb) * nb, -(-cg // w)


def chunks(w, nb, steps, elem):
    """Chunks of the reduction's `steps` (channel block, tap) steps, as direct_blocked.cpp cuts
    them: whole blocks of REDUCTION_BLOCK / W steps, NB x W x W weights of `elem` bytes a step,
    at most CHUNK_WEIGHT_BYTES a chunk (at least one block)."""
    per_block = max(1, REDUCTION_BLOCK // w)
    chunk = min(steps, max(1, CHUNK_WEIGHT_BYTES // (per_block * nb * w * w * elem)) * per_block)
    return -(-steps // chunk)


def table_tiles(max_acc):
    """Every (NB, UR) with a kernel in the table (blocked_conv_kernels<V, MaxAcc>)."""
    return {(nb, ur) for nb in (1, 2, 4) for ur in range(1, MAX_UR + 1) if nb * ur <= max_acc}


def blocked_applies(w, cg, kg, stride_w):
    return stride_w in (1, 2) and 2 * cg >= w and 2 * kg >= w


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case(ConvCaseShape):
    """One problem; x / w / b are float64 arrays of float32-representable values (one reference
    serves both dtypes). `special`: the input (or weight) holds NaN / Inf on purpose."""

    name: str
    x: np.ndarray
    w: np.ndarray
    b: object  # ndarray or None
    groups: int = 1
    kwargs: dict = field(default_factory=dict)  # stride / padding / dilation / padding_mode
    special: bool = False

    def call_kwargs(self):
        return dict(self.kwargs, groups=self.groups)

    @functools.cached_property
    def ref(self):
        with np.errstate(invalid="ignore", over="ignore"):
            return conv_reference(self.x, self.w, self.b, **self.call_kwargs())

    @property
    def out_shape(self):
        kw = {k: self.kwargs[k] for k in ("stride", "padding", "dilation") if k in self.kwargs}
        return conv_output_shape(self.x.shape, self.w.shape, **kw)

    def cg(self):
        return self.w.shape[1]

    def kg(self):
        return self.w.shape[0] // self.groups

    def stride(self):
        s = self.kwargs.get("stride", 1)
        return (s,) * self.rank if isinstance(s, int) else tuple(s)

    def ow(self):
        return self.out_shape[-1]

    def macs(self):
        n = self.x.shape[0] if self.batched else 1
        return n * int(np.prod(self.out_shape[-self.rank - 1:])) * int(np.prod(self.w.shape[1:]))

    def tile(self, w, max_acc):
        """(NB, UR, nkb, ncb) the library uses for this case with W lanes."""
        return tiling(w, max_acc, self.cg(), self.kg(), self.ow())

    def describe(self):
        b = None if self.b is None else self.b.shape
        kw = ", ".join(f"{k}={v!r}" for k, v in self.call_kwargs().items())
        return f"{self.name}: conv{self.rank}d(x{self.x.shape}, w{self.w.shape}, bias={b}, {kw})"

    def arrays(self, dtype):
        return (self.x.astype(dtype), self.w.astype(dtype),
                None if self.b is None else self.b.astype(dtype))


def _data(rng, shape):
    """Uniform(-1, 1) rounded to float32 (so float32 and float64 runs see the same values)."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)


def build(name, rng, n, groups, cg, kg, kernel, out, stride=1, dilation=1, padding=0,
          padding_mode="zeros", bias=True, extra=0, specials=()):
    """A Case whose output has spatial size `out` (one entry per dim).

    n: batch (None: unbatched input); extra: input elements added past the last window along
    each dim (< stride: dropped by the floor of the output size); specials: (array name 'x' or
    'w', index, value) written after the random fill.
    """
    rank = len(kernel)
    tup = lambda v: (v,) * rank if isinstance(v, int) else tuple(v)  # noqa: E731
    s, d = tup(stride), tup(dilation)
    pads = resolve_padding(padding, kernel, d, rank)
    spatial = []
    for o, k, si, di, (pl, pr) in zip(out, kernel, s, d, pads):
        if padding == "same":
            L = o
        else:
            L = (o - 1) * si + di * (k - 1) + 1 - pl - pr + min(extra, si - 1)
        assert L >= 1, (name, o, k, si, di, pl, pr)
        if padding_mode == "reflect":
            assert max(pl, pr) < L, (name, L, pl, pr)
        if padding_mode == "circular":
            assert max(pl, pr) <= L, (name, L, pl, pr)
        spatial.append(L)
    C, K = groups * cg, groups * kg
    x_shape = ((n,) if n is not None else ()) + (C,) + tuple(spatial)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation}
    if padding_mode != "zeros":
        kwargs["padding_mode"] = padding_mode
    case = Case(name, _data(rng, x_shape), _data(rng, (K, cg) + tuple(kernel)),
                _data(rng, (K,)) if bias else None, groups, kwargs, special=bool(specials))
    for which, index, value in specials:
        getattr(case, which)[index] = value
    assert tuple(case.out_shape[-rank:]) == tuple(out), (name, case.out_shape, out)
    return case


# --------------------------------------------------------------------------- shape families
def _family_width(w):
    """1-D: every output-block count and output width 1..16, 19, 29, 57, at stride 1 and 2."""
    rng = np.random.default_rng([1, w])
    ks = [w // 2, w, 3 * w // 2, 2 * w + 1, 4 * w, 4 * w + 3]  # 1, 1, 2, 3, 4, 5 blocks
    cs = [w // 2, w // 2 + 1, w, 3 * w // 2 + 1]
    kernels, dils = [3, 1, 2, 5], [1, 2, 3]
    cases, i = [], 0
    for s in (1, 2):
        pad_choices = [0, 1, "same"] if s == 1 else [0, 1, 2]
        for kg in ks:
            for ow in list(range(1, 17)) + [29, 57]:
                k, d = kernels[i % 4], dils[i % 3]
                pad = pad_choices[(i // 2) % 3]
                n = 3 if i % 7 == 0 else 1
                cases.append(build(f"width_s{s}_K{kg}_ow{ow}", rng, n, 1, cs[i % 4], kg, (k,),
                                   (ow,), stride=s, dilation=d, padding=pad, bias=i % 2 == 0,
                                   extra=i % 2))
                i += 1
        for kg in ks:  # width 19: NB 4 x UR 4 with a narrower last tile (W 16, MaxAcc 16)
            cases.append(build(f"width_s{s}_K{kg}_ow19", rng, 1, 1, w, kg, (3,), (19,), stride=s,
                               padding=1))
    return cases


def _family_grouped(w):
    """2-D, groups 2 and 3, channels per group not multiples of W on either side."""
    rng = np.random.default_rng([2, w])
    cgs = [w // 2, w // 2 + 1, 3 * w // 2 + 1]
    kgs = [w // 2, w // 2 + 1, 3 * w // 2 + 1, 4 * w + 1]
    ows = [5, 7, 14, 15, 3, 1, 29, 9, 2, 6, 13, 4]
    cases = []
    for j, (cg, kg) in enumerate(itertools.product(cgs, kgs)):
        kernel = [(3, 3), (2, 3), (1, 2), (3, 1)][j % 4]
        stride = (1 + j % 3, 1 + (j // 3) % 2)
        dilation = (1 + (j + 1) % 3, 1 + j % 3)
        padding = [0, 1, (2, 1), (0, 2)][(j + 1) % 4]
        cases.append(build(f"grouped_G{2 + j % 2}_Cg{cg}_Kg{kg}", rng, 1 + 2 * (j % 2),
                           2 + j % 2, cg, kg, kernel, (2 + j % 2, ows[j]), stride=stride,
                           dilation=dilation, padding=padding, bias=j % 3 != 0, extra=j % 2))
    return cases


def _family_padding(w):
    """2-D padding forms and modes."""
    rng = np.random.default_rng([3, w])
    cg, kg = 3 * w // 2 + 1, 2 * w + 1
    specs = [  # name, kernel, out, kwargs
        ("tuple", (3, 3), (3, 15), dict(padding=(1, 2))),
        ("int_s2", (3, 5), (3, 7), dict(padding=2, stride=(1, 2))),
        ("same_even", (2, 4), (4, 13), dict(padding="same", dilation=(1, 2))),
        ("same_odd", (3, 3), (3, 29), dict(padding="same")),
        ("valid", (3, 3), (2, 6), dict(padding="valid", dilation=(2, 1))),
        ("reflect", (3, 5), (5, 9), dict(padding=2, padding_mode="reflect")),
        ("reflect_same", (3, 3), (4, 11), dict(padding="same", dilation=2,
                                               padding_mode="reflect")),
        ("replicate", (3, 3), (3, 15), dict(padding=(1, 3), stride=(2, 2),
                                            padding_mode="replicate")),
        ("circular", (3, 3), (3, 5), dict(padding=(1, 3), stride=(1, 2),
                                          padding_mode="circular")),
        ("circular_same", (4, 2), (3, 14), dict(padding="same", padding_mode="circular")),
    ]
    return [build(f"padding_{name}", rng, 1 + 2 * (i % 2), 1 + (i % 3 == 2), cg, kg, kernel,
                  out, bias=i % 2 == 0, **kw)
            for i, (name, kernel, out, kw) in enumerate(specs)]


def _family_ranks(w):
    """1-D / 2-D / 3-D, batch 1 / 3 / unbatched, strides 2 and 3 along D and H."""
    rng = np.random.default_rng([4, w])
    h, h1 = w // 2, w // 2 + 1
    return [
        build("ranks_1d_N3", rng, 3, 1, w + 1, 3 * w, (3,), (15,), padding=1),
        build("ranks_1d_unbatched", rng, None, 2, h1, h, (4,), (7,), stride=2, dilation=2,
              bias=False),
        build("ranks_2d_N3_sh2", rng, 3, 1, w, 2 * w + 1, (3, 3), (3, 6), stride=(2, 1),
              padding=1),
        build("ranks_2d_unbatched_sh3", rng, None, 1, 3 * w // 2 + 1, 4 * w + 3, (2, 3),
              (2, 14), stride=(3, 2), dilation=(2, 1), extra=2),
        build("ranks_3d_sd2_sh3", rng, 1, 1, h1, 3 * w // 2 + 1, (2, 3, 3), (2, 2, 7),
              stride=(2, 3, 1), dilation=(1, 2, 1), padding=(0, 1, 1)),
        build("ranks_3d_N3_sd3", rng, 3, 1, w, 4 * w, (3, 2, 3), (2, 3, 5),
              stride=(3, 1, 2), padding=1, bias=False, extra=1),
        build("ranks_3d_unbatched_groups", rng, None, 2, h1, h1, (2, 2, 3), (2, 2, 15),
              dilation=(2, 1, 3), padding=(1, 0, 2)),
        build("ranks_3d_same_circular", rng, 1, 1, w, 2 * w, (3, 3, 3), (3, 4, 6),
              padding="same", padding_mode="circular"),
    ]


def _family_long(w):
    """Reductions of more than 1000 terms, and ones ending exactly on / next to a flush."""
    rng = np.random.default_rng([5, w])
    spb = REDUCTION_BLOCK // w  # (channel block, tap) steps per flush
    return [
        # C x kernel = 1984: ncb * taps = 7.75 flushes
        build("long_1d_C64_k31", rng, 1, 1, 64, 2 * w + 1, (31,), (15,), padding=3),
        # exactly 4 flushes (1024 terms), one step less, one step more
        build("long_1d_4flush", rng, 1, 1, w, w // 2, (4 * spb,), (9,), stride=2),
        build("long_1d_4flush_m1", rng, 2, 1, w, 4 * w, (4 * spb - 1,), (7,)),
        build("long_1d_4flush_p1", rng, 1, 1, w, 2 * w, (4 * spb + 1,), (14,), dilation=2),
        build("long_2d_G2_C41_5x5", rng, 1, 2, 41, w + 3, (5, 5), (3, 14), stride=(2, 1),
              dilation=(1, 2), padding=2),
        build("long_3d_C40_3x3x3", rng, 1, 1, 40, 3 * w // 2 + 1, (3, 3, 3), (2, 2, 7),
              stride=(1, 2, 2), padding=1),
        # 2-D, several rows a band and several chunks of the reduction (a partial last input
        # block), widths that UR does not divide: the narrower last tile adds to the tile
        # (13 blocks x 25 taps: 2 to 21 chunks on every ISA and dtype)
        build("long_2d_bands", rng, 1, 1, 12 * w + 1, 2 * w + 1, (5, 5), (9, 19), padding=2),
        build("long_2d_bands_s2", rng, 2, 1, 4 * w + 1, 4 * w, (3, 3), (11, 29), stride=2,
              padding=1),
    ]


def _family_nan(w):
    """NaN / +-Inf in the input (one NaN weight): compare the masks with the reference's."""
    rng = np.random.default_rng([6, w])
    nan, inf = float("nan"), float("inf")
    return [
        # 1-D: first element, last element (only the narrower last tile covers it), +-Inf
        # (stride 2, dilation 2: odd input positions reach no output)
        build("nan_1d", rng, 1, 1, w + 1, 2 * w + 1, (3,), (29,), stride=2, dilation=2,
              specials=[("x", (0, 0, 0), nan), ("x", (0, w, -1), nan), ("x", (0, 2, 31), nan),
                        ("x", (0, 3, 20), inf), ("x", (0, 1, 24), -inf)]),
        # 2-D, stride 2 along H with a 1-row kernel: odd input rows reach no output
        build("nan_2d_skipped_rows", rng, 2, 2, w // 2 + 1, 4 * w + 1, (1, 3), (3, 15),
              stride=(2, 1), dilation=(1, 3), padding=(0, 2),
              specials=[("x", (0, 0, 1, 5), nan),      # odd row: no NaN anywhere
                        ("x", (1, 1, 2, -1), nan),     # row end, group 0
                        ("x", (1, w, 4, 7), nan),      # group 1
                        ("x", (0, 2, 2, 0), inf), ("x", (0, 2, 2, 1), -inf)]),
        # +Inf and -Inf in one window: NaN where both are covered, +-Inf where one is
        build("nan_2d_inf_pairs", rng, 1, 1, w, 3 * w // 2 + 1, (3, 3), (4, 14),
              specials=[("x", (0, 1, 2, 6), inf), ("x", (0, w - 1, 3, 7), -inf),
                        ("x", (0, 0, 5, 15), inf)]),
        # reflect padding copies a border NaN into the padded frame
        build("nan_2d_reflect", rng, 1, 1, w // 2, w, (3, 3), (4, 13), padding=1,
              padding_mode="reflect",
              specials=[("x", (0, 0, 1, 1), nan), ("x", (0, w // 2 - 1, 2, -2), nan)]),
        build("nan_3d", rng, None, 1, w + 1, w + 1, (2, 3, 3), (2, 3, 6), stride=(2, 1, 1),
              padding=1, specials=[("x", (0, 1, 1, -1), nan), ("x", (w, 0, 0, 0), -inf)]),
        # a NaN weight: its output channel is NaN everywhere (0 * NaN on zero padding too)
        build("nan_weight", rng, 1, 1, w // 2 + 1, 3 * w // 2, (3, 3), (3, 7), padding=1,
              specials=[("w", (w // 2, 1, 2, 0), nan)]),
    ]


FAMILIES = {
    "width": _family_width,
    "grouped": _family_grouped,
    "padding": _family_padding,
    "ranks": _family_ranks,
    "long": _family_long,
    "nan": _family_nan,
}


@functools.lru_cache(maxsize=None)
def family_cases(family, w):
    return FAMILIES[family](w)


def all_cases(w):
    return [c for f in FAMILIES for c in family_cases(f, w)]


# --------------------------------------------------------------------------- checks
def run_direct(case, dtype):
    x, wt, b = case.arrays(dtype)
    return CONV[case.rank](x, wt, b, algo=ALGO, **case.call_kwargs())


def check(case, dtype, isa, record_error):
    """Problems of fastconv's direct forward on `case` against the float64 reference."""
    where = f"[isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}"
    try:
        y = run_direct(case, dtype)
    except Exception as e:  # noqa: BLE001 - report any exception with the configuration
        return [f"{where}: raised {type(e).__name__}: {e}"]
    ref = case.ref
    problems = layout_problems(y, ref, dtype, where)
    if problems:
        return problems
    yd = y.astype(np.float64)
    problems = special_value_problems(yd, ref, where, "outputs")
    if problems:
        return problems
    if case.special:
        assert np.isnan(ref).any() or np.isinf(ref).any(), f"{case.name}: no NaN/Inf reached"
    finite = np.isfinite(ref)
    err = normalized_error(yd[finite], ref[finite])
    record_error(dtype, ALGO, err, isa, case.name)
    WORST[(isa, np.dtype(dtype).name)] = max(WORST.get((isa, np.dtype(dtype).name), (0.0, "")),
                                              (err, case.name))
    tol = tolerance_for(ALGO, dtype)
    if not err <= tol:
        diff = np.where(finite, np.abs(yd - np.where(finite, ref, 0.0)), 0.0)
        idx = np.unravel_index(np.argmax(diff), ref.shape)
        problems.append(f"{where}: normalised error {err:.3e} > {tol:.1e} (worst at "
                        f"{tuple(int(i) for i in idx)}: got {y[idx]!r}, ref {ref[idx]!r})")
    return problems


# (isa, dtype name) -> (worst normalised error, case): for reports (record_error keeps one per
# dtype and algorithm only)
WORST = {}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_blocked_forward(family, dtype, isa, record_error):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in family_cases(family, w):
            problems += check(case, dtype, isa, record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- the shapes' reach
@pytest.mark.parametrize("w,max_acc", ALL_KERNELS, ids=lambda v: str(v))
def test_shapes_cover_the_tiling(w, max_acc):
    """For W lanes and MaxAcc accumulators, the shapes (all of them on the blocked path) run
    every tile kernel of the table (per the copy of the rule) at stride 1 and 2 along W, each NB
    with a narrower last tile at both strides, and every other feature the module docstring
    lists. Pure Python: guards the shape families themselves."""
    cases = all_cases(w)
    tiles, short_last = set(), set()
    seen = {k: set() for k in ("stride_h", "stride_d", "dilation", "batch", "rank", "mode",
                               "pad", "bias")}
    flushes, exact, kg_over_4w, odd_groups = [], 0, 0, 0
    spb = REDUCTION_BLOCK // w
    for c in cases:
        s = c.stride()
        assert blocked_applies(w, c.cg(), c.kg(), s[-1]), c.describe()
        nb, ur, _, ncb = c.tile(w, max_acc)
        tiles.add((nb, ur, s[-1]))
        if c.ow() % ur:
            short_last.add((nb, s[-1]))
        steps = ncb * int(np.prod(c.w.shape[2:]))
        flushes.append(steps / spb)
        exact += steps % spb == 0 and steps > spb
        kg_over_4w += c.kg() > 4 * w and c.kg() % w != 0
        odd_groups += c.groups > 1 and c.cg() % w != 0 and c.kg() % w != 0
        if c.rank >= 2:
            seen["stride_h"].add(s[-2])
        if c.rank == 3:
            seen["stride_d"].add(s[0])
        d = c.kwargs.get("dilation", 1)
        seen["dilation"].update([d] if isinstance(d, int) else d)
        seen["batch"].add(c.x.shape[0] if c.batched else "unbatched")
        seen["rank"].add(c.rank)
        seen["mode"].add(c.kwargs.get("padding_mode", "zeros"))
        p = c.kwargs.get("padding", 0)
        seen["pad"].add(p if isinstance(p, str) else type(p).__name__)
        seen["bias"].add(c.b is not None)
    # rule-independent: every block count 1..5 x width 1..16, 29, 57 x stride 1, 2 (1-D)
    grid = {(-(-c.kg() // w), c.ow(), c.stride()[-1]) for c in family_cases("width", w)}
    assert grid >= set(itertools.product(range(1, 6), list(range(1, 17)) + [29, 57], (1, 2)))
    want = {(nb, ur, s) for nb, ur in table_tiles(max_acc) for s in (1, 2)}
    assert want <= tiles, f"tile kernels (NB, UR, stride) never run: {sorted(want - tiles)}"
    assert short_last == {(nb, s) for nb in (1, 2, 4) for s in (1, 2)}, short_last
    assert max(flushes) > 6 and exact >= 1 and kg_over_4w >= 1 and odd_groups >= 3
    # several chunks of the reduction over a band of several rows, at either element size
    for elem in (4, 8):
        assert any(c.rank >= 2 and int(np.prod(c.out_shape[-c.rank:-1])) > 1 and
                   chunks(w, c.tile(w, max_acc)[0], c.tile(w, max_acc)[3] *
                          int(np.prod(c.w.shape[2:])), elem) > 1 for c in cases), elem
    assert any(c.cg() * np.prod(c.w.shape[2:]) > 1000 for c in cases)
    assert seen["stride_h"] >= {1, 2, 3} and seen["stride_d"] >= {1, 2, 3}
    assert seen["dilation"] == {1, 2, 3}
    assert seen["batch"] >= {1, 3, "unbatched"} and seen["rank"] == {1, 2, 3}
    assert seen["mode"] == {"zeros", "reflect", "replicate", "circular"}
    assert seen["pad"] == {"int", "tuple", "same", "valid"} and seen["bias"] == {True, False}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_shapes_take_the_blocked_path(dtype, isa):
    """plan.prepare's packed size is that of the blocked layout (and not of the row kernels'):
    groups x nkb x ncb x taps x W x W weights plus the bias, nkb the output blocks rounded up
    to the tile's NB. NB itself is not pinned (any of 1, 2, 4 is accepted), so that a change of
    the tiling rule alone does not fail this check."""
    w, _ = listed_kernels(isa, dtype)
    elem = np.dtype(dtype).itemsize
    problems = []
    for c in all_cases(w):
        x, wt, b = c.arrays(dtype)
        info = fastconv.plan(wt, b, algo=ALGO, **c.call_kwargs()).prepare(x.shape)
        blocks, ncb = -(-c.kg() // w), -(-c.cg() // w)
        per_block = c.groups * ncb * int(np.prod(c.w.shape[2:])) * w * w * elem
        bias = 0 if b is None else b.nbytes
        allowed = {(-(-blocks // nb) * nb) * per_block + bias for nb in (1, 2, 4)}
        if info["algo"] != ALGO or info["packed_bytes"] not in allowed:
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {c.describe()}: prepare "
                            f"gave {info}; the blocked layout holds one of {sorted(allowed)} "
                            f"bytes")
    fail_if(problems)


# --------------------------------------------------------------------------- threads, plan
def _thread_cases(w):
    rng = np.random.default_rng([7, w])
    return [
        build("threads_2d", rng, 2, 2, 3 * w // 2 + 1, 4 * w + 3, (3, 3), (6, 29),
              stride=(1, 2), padding=1, specials=[("x", (1, 2, 5, -1), float("nan"))]),
        build("threads_1d_long", rng, 1, 1, 64, 2 * w + 1, (31,), (57,), padding=5),
        # bands of rows, chunks of the reduction: fewer rows a band on 2 threads
        build("threads_2d_bands", rng, 1, 1, 12 * w + 1, 2 * w + 1, (5, 5), (9, 19), padding=2),
        # a batch of at least the thread count: an image per thread, 3 over 2 threads
        build("threads_batch3", rng, 3, 1, w, 2 * w, (3, 3), (14, 17), stride=2, padding=1),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_threads_bit_identical(dtype, isa, threads_restored):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in _thread_cases(w):
            # the library starts a thread per 2^16 multiply-adds: 2 threads really run
            assert case.macs() >= 2 << 16, case.describe()
            threads_restored(1)
            y1 = run_direct(case, dtype)
            threads_restored(2)
            y2 = run_direct(case, dtype)
            if y1.tobytes() != y2.tobytes():
                diff = np.argwhere(~((y1 == y2) | (np.isnan(y1) & np.isnan(y2))))
                problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case.describe()}: "
                                f"1 and 2 threads differ at {len(diff)} outputs, e.g. "
                                f"{diff[:4].tolist()}")
    fail_if(problems)


def _plan_cases(w):
    picks = [family_cases("width", w)[i] for i in (3, 20, 47, 70, 90, 150, 200)]
    picks += [c for f in ("grouped", "padding", "ranks", "long", "nan")
              for c in family_cases(f, w)[:2]]
    return picks + [_thread_cases(w)[0]]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_plan_relu_matches_functional(dtype, isa):
    """plan(w, b, algo='direct', activation='relu')(x) == np.maximum(conv(x), 0), bit for bit
    (NaN stays NaN; its payload is not compared)."""
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in _plan_cases(w):
            x, wt, b = case.arrays(dtype)
            y = fastconv.plan(wt, b, algo=ALGO, activation="relu", **case.call_kwargs())(x)
            want = np.maximum(run_direct(case, dtype), 0)
            nan = np.isnan(want)
            same = (y.shape == want.shape and y.dtype == want.dtype
                    and np.array_equal(np.isnan(y), nan)
                    and y[~nan].tobytes() == want[~nan].tobytes())
            if not same:
                problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {case.describe()}: "
                                f"plan relu differs from np.maximum(conv, 0)")
    fail_if(problems)


def test_tiling_copy_examples():
    """Spot values of the copied rule (guards the copy against edits by mistake)."""
    # W 4, 4 blocks, OW 57: NB 2 x UR 4 = 15 tiles x 8 cycles for 114 outputs (0.95 per cycle),
    # NB 4 x UR 2 = 29 x 8 for 228 (0.98)
    assert tiling(4, 8, 4, 16, 57) == (4, 2, 4, 1)
    assert tiling(4, 8, 4, 4, 57)[:2] == (1, 8)
    # OW 3: NB 2 x UR 3 and NB 4 x UR 2 both 0.75 per cycle; the larger tile wins
    assert tiling(4, 8, 4, 16, 3)[:2] == (4, 2)
    assert tiling(8, 12, 8, 32, 6)[:2] == (2, 6)
    assert tiling(16, 28, 16, 64, 14)[:2] == (2, 14)
    assert tiling(16, 28, 16, 64, 7)[:2] == (4, 7)
    assert tiling(16, 28, 16, 16, 15)[:2] == (1, 8)  # 2 tiles of 8 cycles beat 2 of 14
    assert tiling(16, 28, 16, 40, 15) == (2, 5, 4, 1)  # 3 blocks rounded up to NB = 2
    # a table of at most 16 accumulators (avx512's from c37e265 to the tile kernel that keeps
    # its accumulators in registers)
    assert tiling(16, 16, 16, 64, 28)[:2] == (4, 4)  # ties (2, 7): the larger tile
    assert tiling(16, 16, 16, 64, 14)[:2] == (2, 7)
    assert tiling(16, 16, 16, 64, 56)[:2] == (2, 8)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_tiling_copy_matches_library(dtype, isa):
    """Where NBs give different packed sizes (output blocks rounded up to NB), the library's is
    that of the copied rule's NB. A failure here means the rule changed: update ``tiling`` (and
    check test_shapes_cover_the_tiling still holds)."""
    w, max_acc = listed_kernels(isa, dtype)
    elem = np.dtype(dtype).itemsize
    problems, compared = [], 0
    for c in all_cases(w):
        blocks = -(-c.kg() // w)
        nb, ur, nkb, ncb = c.tile(w, max_acc)
        sizes = {n: -(-blocks // n) * n for n in (1, 2, 4) if n == 1 or n <= blocks}
        if list(sizes.values()).count(nkb) > 1:
            continue  # this shape's packed size does not tell NB apart
        compared += 1
        x, wt, b = c.arrays(dtype)
        got = fastconv.plan(wt, b, algo=ALGO, **c.call_kwargs()).prepare(x.shape)["packed_bytes"]
        want = (c.groups * nkb * ncb * int(np.prod(c.w.shape[2:])) * w * w * elem
                + (0 if b is None else b.nbytes))
        if got != want:
            problems.append(f"[isa={isa}, {np.dtype(dtype).name}] {c.describe()}: packed "
                            f"{got} bytes, the copied rule's (NB, UR) = {(nb, ur)} packs {want}")
    assert compared >= 10
    fail_if(problems)
