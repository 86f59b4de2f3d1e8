"""Gradients of the channel-blocked direct convolution vs the float64 reference.

algo='direct' computes the convolution gradients of dense layers on channel-blocked layouts:

- input gradient (conv/direct_blocked.cpp, run_backward_data): at stride 1 in every dim, when
  2*C_per_group >= W and 2*K_per_group >= W, as the forward convolution of the output gradient
  padded by (kernel - 1) * dilation with the flipped, channel-swapped weights
  (data_gradient_problem: its output channels are C, its input channels K, its output the padded
  input). With padding_mode 'zeros' only the interior of the padded input's gradient is computed
  (execute.cpp's keep_lo / keep_hi, a window of the tiled rows), with the other modes the whole
  padded gradient, which is then folded back into the input. The tile (NB, UR) is chosen by the
  forward's rule for a row as wide as that window.
- weight gradient (conv/direct_blocked_wgrad.cpp): stride 1 or 2 along W (any along H / D), when
  2*C_per_group >= W and 2*K_per_group >= W. A task owns UR = W/2 output channels times a group
  of NB <= 3 input-channel blocks (ncb blocks spread evenly over ceil(ncb / 3) groups: ncb 1, 2, 3
  -> NB 1, 2, 3; 4 -> 2+2; 5 -> 3+2; 7 -> 3+3+1), and sums runs of at most 256 positions in
  registers (a run is min(OH, 256 // OW) rows, at least one) before adding them to its
  accumulators.

W are the lanes of the ISA's blocked kernels: scalar 4, avx2 8, avx512 16 for float32; float64
always runs the portable W = 4 kernels. The shapes are built per W (``lanes_to_test``) so that
every case takes the blocked path of its direction (``blocked_data_applies`` /
``blocked_weight_applies``, copies of the library's conditions) and the families reach:

- channels per group W/2 .. 6W+1, mostly not multiples of W (partial blocks), so that the data
  gradient's output-block counts 1..5 and the weight gradient's NB = 1, 2, 3 groups all occur;
- groups 1-3, kernel sizes 1, 2, 3, 5 (even ones too), dilation 1-3, padding numbers / tuples /
  'same' (asymmetric for even kernels) / 'valid', padding modes zeros, reflect, replicate,
  circular (the window of the data gradient and the fold of the full padded gradient);
- the data gradient: every (NB, UR) tile kernel of the table (per the copied tiling rule), with
  computed-row widths 1..16, 29, 60 and output-gradient widths 1..60;
- the weight gradient: stride 1 and 2 along W, 2 and 3 along H and D, output widths 1..60 and
  300, 7x7 and 1-wide images, images of more than 256 positions (several runs per image: runs of
  one row when OW > 256, runs ending one row past a multiple, exactly 256 positions), uncovered
  input tails (stride 2 with an extra element);
- 1-D, 2-D, 3-D; batch 1 and 3 and unbatched;
- NaN / +-Inf in the output gradient (both directions) and in the input (weight gradient): the
  NaN, +Inf and -Inf masks must equal those of the reference computed on the same values,
  including NaNs that reach nothing (skipped by the stride, beyond the last window).

Also: results bit-identical on 1 and 2 threads, agreement with algo='gemm' on the same problems,
and the guard ``test_shapes_cover_the_blocked_paths`` (pure Python) that the families keep all
of the above. Accuracy budget as the backward tests (conftest.tolerance_for): normalised error
max|y - ref| / max|ref| <= 2e-6 float32, <= 1e-12 float64, recorded with ``record_error``
(entries 'input' / 'weight', algo 'direct').
"""

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import grad as fgrad
from conftest import ConvCaseShape, fail_if, layout_problems, special_value_problems, tolerance_for
from reference import (conv_input_grad, conv_output_shape, conv_weight_grad, normalized_error,
                       resolve_padding)

INPUT_GRAD = {r: getattr(fgrad, f"conv{r}d_input") for r in (1, 2, 3)}
WEIGHT_GRAD = {r: getattr(fgrad, f"conv{r}d_weight") for r in (1, 2, 3)}
DTYPES = [np.float32, np.float64]
DTYPE_IDS = lambda d: np.dtype(d).name  # noqa: E731
ALGO = "direct"
ENTRIES = ("input", "weight")
DIRECTION = {"input": "backward_data", "weight": "backward_weights"}
MODES = ("zeros", "reflect", "replicate", "circular")

# The blocked kernels' table and the tiling rule, as test_direct_blocked.py copies them.
from test_direct_blocked import (ALL_KERNELS, BLOCKED_KERNELS, MAX_UR, MIN_CHAINS,  # noqa: E402
                                 kernels_of, lanes_to_test, tiling)

POSITIONS_PER_RUN = 256  # kPositionsPerRun of direct_blocked_wgrad.cpp


def table_tiles(max_acc):
    """Every (NB, UR) with a forward tile kernel (blocked_conv_kernels<V, MaxAcc>)."""
    return {(nb, ur) for nb in (1, 2, 4) for ur in range(1, MAX_UR + 1) if nb * ur <= max_acc}


def wgrad_nb_groups(w, cg):
    """NB of each input-block group of a weight-gradient task (WgradTiling)."""
    ncb = -(-cg // w)
    groups = -(-ncb // 3)
    per = -(-ncb // groups)
    return [min(per, ncb - g * per) for g in range(groups)]


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case(ConvCaseShape):
    """conv(x, w) with output gradient gy (float64 arrays of float32-representable values, so one
    reference serves both dtypes). `special`: x / gy hold NaN / Inf on purpose."""

    name: str
    x: np.ndarray
    w: np.ndarray
    gy: np.ndarray
    kwargs: dict = field(default_factory=dict)  # stride/padding/dilation/groups/padding_mode
    special: bool = False

    @property
    def groups(self):
        return self.kwargs.get("groups", 1)

    def cg(self):
        return self.w.shape[1]

    def kg(self):
        return self.w.shape[0] // self.groups

    def _per_dim(self, key, default):
        v = self.kwargs.get(key, default)
        return (v,) * self.rank if isinstance(v, int) else tuple(v)

    def stride(self):
        return self._per_dim("stride", 1)

    def dilation(self):
        return self._per_dim("dilation", 1)

    def mode(self):
        return self.kwargs.get("padding_mode", "zeros")

    def pads(self):
        return resolve_padding(self.kwargs.get("padding", 0), self.w.shape[2:], self.dilation(),
                               self.rank)

    def size(self):
        return self.x.shape[-self.rank:]

    def out(self):
        return self.gy.shape[-self.rank:]

    def n(self):
        return self.x.shape[0] if self.batched else 1

    def window_width(self):
        """Width of the rows the blocked data gradient computes: the input's with 'zeros'
        (interior only), the padded input's with the other modes."""
        pl, pr = self.pads()[-1]
        return self.size()[-1] + (0 if self.mode() == "zeros" else pl + pr)

    def runs_per_image(self):
        """Position runs of the weight gradient per image (and per tap)."""
        oh, ow = (self.out()[-2] if self.rank >= 2 else 1), self.out()[-1]
        chunk = max(1, min(oh, POSITIONS_PER_RUN // max(ow, 1)))
        od = self.out()[0] if self.rank == 3 else 1
        return od * -(-oh // chunk)

    def macs(self):
        return self.n() * int(np.prod(self.gy.shape[-self.rank - 1:])) * int(
            np.prod(self.w.shape[1:]))

    @functools.cached_property
    def refs(self):
        kw = self.kwargs
        with np.errstate(invalid="ignore", over="ignore"):
            return {"input": conv_input_grad(self.x.shape, self.w, self.gy, **kw),
                    "weight": conv_weight_grad(self.x, self.w.shape, self.gy, **kw)}

    def call(self, entry, dtype, algo=ALGO):
        r, kw = self.rank, self.kwargs
        if entry == "input":
            return INPUT_GRAD[r](tuple(self.x.shape), self.w.astype(dtype),
                                 self.gy.astype(dtype), algo=algo, **kw)
        return WEIGHT_GRAD[r](self.x.astype(dtype), tuple(self.w.shape), self.gy.astype(dtype),
                              algo=algo, **kw)

    def describe(self):
        kw = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return (f"{self.name}: conv{self.rank}d(x{self.x.shape}, w{self.w.shape}, {kw}), "
                f"grad_output{self.gy.shape}")


def blocked_data_applies(w, c):
    """blocked::applies_backward_data: stride 1 everywhere, 2*Cg >= W and 2*Kg >= W."""
    return all(s == 1 for s in c.stride()) and 2 * c.cg() >= w and 2 * c.kg() >= w


def blocked_weight_applies(w, c):
    """blocked::applies_backward_weights: stride 1 or 2 along W, 2*Cg >= W and 2*Kg >= W."""
    return c.stride()[-1] in (1, 2) and 2 * c.cg() >= w and 2 * c.kg() >= w


def _data(rng, shape):
    """Uniform(-1, 1) rounded to float32 (so float32 and float64 runs see the same values)."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)


def _tup(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def valid_geometry(size, kernel, stride, dilation, padding, mode):
    """True when conv of an input of spatial `size` is valid (output >= 1 per dim, reflect pad
    < size, circular pad <= size, 'same' only at stride 1)."""
    rank = len(kernel)
    s, d = _tup(stride, rank), _tup(dilation, rank)
    if padding == "same" and any(v != 1 for v in s):
        return False
    for L, k, di, (pl, pr) in zip(size, kernel, d, resolve_padding(padding, kernel, d, rank)):
        if L < 1 or L + pl + pr < di * (k - 1) + 1:
            return False
        if mode == "reflect" and max(pl, pr) >= L:
            return False
        if mode == "circular" and max(pl, pr) > L:
            return False
    return True


def size_for_out(out, kernel, stride=1, dilation=1, padding=0, extra=0):
    """Input spatial size whose output is `out` (extra < stride elements past the last window)."""
    rank = len(kernel)
    s, d = _tup(stride, rank), _tup(dilation, rank)
    pads = resolve_padding(padding, kernel, d, rank)
    if padding == "same":
        return tuple(out)
    return tuple((o - 1) * si + di * (k - 1) + 1 - pl - pr + min(extra, si - 1)
                 for o, k, si, di, (pl, pr) in zip(out, kernel, s, d, pads))


def build(name, rng, n, groups, cg, kg, kernel, size, stride=1, dilation=1, padding=0,
          padding_mode="zeros", specials=()):
    """A Case with input spatial size `size`; n: batch (None: unbatched); specials: (array 'x' /
    'gy', index, value) written after the random fill."""
    kernel, size = tuple(kernel), tuple(size)
    assert valid_geometry(size, kernel, stride, dilation, padding, padding_mode), name
    x_shape = ((n,) if n is not None else ()) + (groups * cg,) + size
    w_shape = (groups * kg, cg) + kernel
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if padding_mode != "zeros":
        kwargs["padding_mode"] = padding_mode
    out = conv_output_shape(x_shape, w_shape, stride, padding, dilation)
    case = Case(name, _data(rng, x_shape), _data(rng, w_shape), _data(rng, out), kwargs,
                special=bool(specials))
    for which, index, value in specials:
        getattr(case, which)[index] = value
    return case


def build_out(name, rng, n, groups, cg, kg, kernel, out, stride=1, dilation=1, padding=0,
              padding_mode="zeros", extra=0, specials=()):
    """build() with the output's spatial size given instead of the input's."""
    size = size_for_out(out, kernel, stride, dilation, padding, extra)
    case = build(name, rng, n, groups, cg, kg, kernel, size, stride, dilation, padding,
                 padding_mode, specials)
    assert case.out() == tuple(out), (name, case.out(), out)
    return case


# --------------------------------------------------------------------------- data-gradient shapes
DATA_WIDTHS = list(range(1, 17)) + [29, 60]  # rows the blocked data gradient computes


def _data_cg(w, blocks, i):
    """Input channels per group spanning `blocks` blocks of W (the data gradient's output blocks),
    W/2 .. 4W+3, multiples of W only for one of the 2-block choices."""
    return {1: [w // 2, w // 2 + 1], 2: [w + 1, 2 * w], 3: [2 * w + 1, 3 * w - 1],
            4: [3 * w + 1, 4 * w - 1], 5: [4 * w + 3, 4 * w + 1]}[blocks][i % 2]


def _fit_window(T, k, d, mode, padding):
    """Input width whose blocked data gradient computes rows of width T, or None."""
    (pl, pr), = resolve_padding(padding, (k,), (d,), 1)
    L = T if mode == "zeros" else T - pl - pr
    return L if valid_geometry((L,), (k,), 1, d, padding, mode) else None


def _family_data_width(w):
    """1-D, stride 1: output blocks 1..5 x row widths 1..16, 29, 60, all padding forms / modes
    (and 19 for 4 and 5 blocks)."""
    rng = np.random.default_rng([11, w])
    kgs = [w // 2, w // 2 + 1, w + 1, 3 * w // 2 + 1, 2 * w + 1, 3 * w + 2]
    kernels, dils = [3, 1, 2, 5], [1, 2, 3]
    modes = ["zeros", "reflect", "zeros", "replicate", "zeros", "circular", "replicate"]
    pads = [1, "same", 0, 2, "valid", 3]
    cases, i = [], 0
    for blocks in range(1, 6):
        for T in DATA_WIDTHS:
            k, d, mode, pad = kernels[i % 4], dils[i % 3], modes[i % 7], pads[i % 6]
            L = None
            for mode_, pad_ in ((mode, pad), (mode, "same"), ("zeros", pad), ("zeros", "same")):
                L = _fit_window(T, k, d, mode_, pad_)
                if L is not None:
                    break
            n = [1, 3, None, 1][i % 4]
            cases.append(build(f"dw_b{blocks}_T{T}", rng, n, 1, _data_cg(w, blocks, i),
                               kgs[i % 6], (k,), (L,), dilation=d, padding=pad_,
                               padding_mode=mode_))
            assert cases[-1].window_width() == T
            i += 1
    for blocks in (4, 5):  # rows of 19: NB 4 x UR 4 with a narrower last tile (W 16)
        cases.append(build(f"dw_b{blocks}_T19", rng, 1, 1, _data_cg(w, blocks, 0), w, (3,),
                           (19,), padding=0))
        assert cases[-1].window_width() == 19
    return cases


def _family_data_grouped(w):
    """2-D / 3-D, groups 2 and 3, channels per group not multiples of W."""
    rng = np.random.default_rng([12, w])
    cgs = [w // 2, w // 2 + 1, 3 * w // 2 + 1]
    kgs = [w // 2 + 1, 3 * w // 2 + 1, w // 2, 3 * w + 1]
    sizes = [(5, 7), (7, 14), (3, 15), (4, 1), (6, 29), (5, 9), (2, 2), (6, 6), (4, 13),
             (3, 4), (8, 5), (5, 60)]
    kernels = [(3, 3), (2, 3), (1, 2), (3, 1), (5, 2), (2, 5)]
    cases = []
    for j, (cg, kg) in enumerate(itertools.product(cgs, kgs)):
        kernel, size = kernels[j % 6], sizes[j]
        dilation = (1 + (j + 1) % 3, 1 + j % 3)
        padding = [1, (2, 1), "same", 0, (0, 2), "valid"][j % 6]
        mode = MODES[j % 4]
        if not valid_geometry(size, kernel, 1, dilation, padding, mode):
            padding, mode = "same", "zeros"
        cases.append(build(f"dg_G{2 + j % 2}_Cg{cg}_Kg{kg}", rng, [1, 3, None][j % 3],
                           2 + j % 2, cg, kg, kernel, size, dilation=dilation, padding=padding,
                           padding_mode=mode))
    return cases


def _padding_specs():
    """(name, kernel, input size, kwargs) of the 2-D padding family (both directions)."""
    return [
        ("tuple", (3, 3), (5, 15), dict(padding=(1, 2))),
        ("int_over", (2, 3), (3, 6), dict(padding=4)),  # padding wider than the kernel
        ("same_even", (2, 4), (4, 13), dict(padding="same", dilation=(1, 2))),
        ("same_odd", (3, 3), (3, 29), dict(padding="same")),
        ("valid", (3, 3), (6, 9), dict(padding="valid", dilation=(2, 1))),
        ("reflect", (3, 5), (5, 9), dict(padding=2, padding_mode="reflect")),
        ("reflect_same", (3, 3), (6, 11), dict(padding="same", dilation=2,
                                               padding_mode="reflect")),
        ("reflect_tuple", (2, 5), (4, 3), dict(padding=(1, 2), padding_mode="reflect")),
        ("replicate", (3, 3), (3, 15), dict(padding=(1, 3), padding_mode="replicate")),
        ("replicate_same_even", (2, 2), (4, 7), dict(padding="same", dilation=(3, 1),
                                                     padding_mode="replicate")),
        ("circular", (3, 3), (3, 5), dict(padding=(1, 3), padding_mode="circular")),
        ("circular_same", (4, 2), (4, 14), dict(padding="same", padding_mode="circular")),
        ("circular_full", (3, 3), (2, 3), dict(padding=(2, 3), padding_mode="circular")),
    ]


def _family_data_padding(w):
    rng = np.random.default_rng([13, w])
    cg, kg = 3 * w // 2 + 1, 2 * w + 1
    return [build(f"dp_{name}", rng, [1, 3, None][i % 3], 1 + (i % 4 == 3), cg, kg, kernel,
                  size, **kw) for i, (name, kernel, size, kw) in enumerate(_padding_specs())]


def _family_data_ranks(w):
    """Ranks, batches, 7x7 and 1-wide images."""
    rng = np.random.default_rng([14, w])
    h, h1 = w // 2, w // 2 + 1
    return [
        build("dr_1d_N3", rng, 3, 1, w + 1, 3 * w, (3,), (15,), padding=1),
        build("dr_1d_unbatched_G2", rng, None, 2, h1, h, (4,), (7,), dilation=2, padding=3),
        build("dr_2d_7x7", rng, 3, 1, 2 * w + 1, w + 1, (3, 3), (7, 7), padding=1),
        build("dr_2d_7x7_reflect", rng, 1, 1, w - 1, 3 * w + 1, (3, 3), (7, 7), padding=1,
              padding_mode="reflect"),
        build("dr_2d_1wide", rng, 1, 1, 3 * w // 2 + 1, w + 1, (3, 3), (9, 1), padding=1),
        build("dr_2d_1wide_replicate", rng, None, 1, h1, 2 * w, (3, 1), (9, 1),
              padding=(1, 0), padding_mode="replicate"),
        build("dr_3d", rng, 1, 1, h1, 3 * w // 2 + 1, (2, 3, 3), (3, 4, 9),
              dilation=(1, 2, 1), padding=(0, 2, 1)),
        build("dr_3d_N3_reflect", rng, 3, 1, w, 4 * w + 3, (3, 2, 3), (3, 3, 5), padding=1,
              padding_mode="reflect"),
        build("dr_3d_unbatched_G2", rng, None, 2, h1, h1, (2, 2, 3), (2, 3, 15),
              dilation=(2, 1, 3), padding=(1, 0, 2)),
        build("dr_3d_same_circular", rng, 1, 1, w, 2 * w, (3, 3, 3), (3, 4, 6),
              padding="same", padding_mode="circular"),
        build("dr_3d_1x1x1", rng, 3, 3, h1, w + 1, (1, 1, 1), (2, 3, 11)),
    ]


def _family_data_long(w):
    """Reductions over K x kernel > 1000 terms (several 256-term flushes)."""
    rng = np.random.default_rng([15, w])
    return [
        build("dl_1d_K64_k31", rng, 1, 1, 2 * w + 1, 64, (31,), (40,), padding=5),
        build("dl_2d_G2_K41_5x5", rng, 1, 2, w + 3, 41, (5, 5), (4, 14), dilation=(1, 2),
              padding=2, padding_mode="replicate"),
        build("dl_3d_K40_3x3x3", rng, 1, 1, 3 * w // 2 + 1, 40, (3, 3, 3), (3, 3, 7),
              padding=1),
    ]


def _family_data_nan(w):
    """NaN / +-Inf in the output gradient: the masks must be the reference's."""
    rng = np.random.default_rng([16, w])
    nan, inf = float("nan"), float("inf")
    kg = w // 2 + 1  # channel kg - 1 sits in the partial block
    return [
        # first / last output gradient position, +-Inf; zeros: the border gradient is dropped
        build("dn_1d", rng, 1, 1, w + 1, kg, (3,), (29,), dilation=2, padding=1,
              specials=[("gy", (0, 0, 0), nan), ("gy", (0, kg - 1, -1), nan),
                        ("gy", (0, 1, 12), inf), ("gy", (0, 1, 20), -inf)]),
        # +Inf and -Inf reaching the same inputs: NaN there
        build("dn_2d_inf_pair", rng, 2, 2, w // 2 + 1, 3 * w // 2 + 1, (3, 3), (6, 14),
              specials=[("gy", (0, 1, 1, 5), inf), ("gy", (0, 2, 2, 6), -inf),
                        ("gy", (1, 3 * w // 2 + 2, 3, 0), nan)]),
        # reflect / circular fold a border gradient NaN into the interior
        build("dn_2d_reflect", rng, 1, 1, w // 2, w, (3, 3), (5, 13), padding=1,
              padding_mode="reflect",
              specials=[("gy", (0, 0, 0, 0), nan), ("gy", (0, w - 1, 4, 12), inf)]),
        build("dn_2d_circular_same", rng, None, 1, w + 1, w // 2, (2, 4), (4, 11),
              padding="same", padding_mode="circular",
              specials=[("gy", (0, 3, 10), nan), ("gy", (1, 0, 0), -inf)]),
        build("dn_3d", rng, 1, 1, w + 1, w + 1, (2, 3, 3), (3, 3, 6), padding=1,
              specials=[("gy", (0, 1, 1, 1, -1), nan), ("gy", (0, w, 0, 0, 0), -inf)]),
    ]


DATA_FAMILIES = {
    "width": _family_data_width,
    "grouped": _family_data_grouped,
    "padding": _family_data_padding,
    "ranks": _family_data_ranks,
    "long": _family_data_long,
    "nan": _family_data_nan,
}


# --------------------------------------------------------------------------- weight-gradient shapes
WEIGHT_WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 29, 60]


def _weight_cg(w, ncb, i):
    """Input channels per group spanning ncb blocks of W (NB groups: see wgrad_nb_groups)."""
    return {1: [w // 2, w // 2 + 1], 2: [w + 1, 2 * w - 1], 3: [2 * w + 1, 3 * w - 1],
            4: [3 * w + 1, 4 * w], 5: [4 * w + 3, 5 * w - 1], 7: [6 * w + 1, 7 * w - 2]}[ncb][i % 2]


def _family_weight_width(w):
    """1-D: input blocks 1..5, 7 x output widths 1..60 x stride 1 and 2 along W."""
    rng = np.random.default_rng([21, w])
    kgs = [w // 2, w // 2 + 1, w + 1, 3 * w // 2 + 1, 2 * w + 1]
    kernels, dils = [3, 1, 2, 5], [1, 2, 3]
    modes = ["zeros", "reflect", "zeros", "replicate", "circular"]
    cases, i = [], 0
    for s in (1, 2):
        pads = [1, "same", 0, 2, "valid"] if s == 1 else [1, 0, 2, "valid", 3]
        for ncb in (1, 2, 3, 4, 5, 7):
            for ow in WEIGHT_WIDTHS:
                k, d, mode, pad = kernels[i % 4], dils[i % 3], modes[i % 5], pads[i % 5]
                extra = i % 2
                for mode_, pad_ in ((mode, pad), ("zeros", pad), ("zeros", 0)):
                    size = size_for_out((ow,), (k,), s, d, pad_, extra)
                    if valid_geometry(size, (k,), s, d, pad_, mode_):
                        break
                n = [1, 3, None, 1, 3][i % 5]
                cases.append(build_out(f"ww_s{s}_ncb{ncb}_ow{ow}", rng, n, 1,
                                       _weight_cg(w, ncb, i), kgs[i % 5], (k,), (ow,),
                                       stride=s, dilation=d, padding=pad_, padding_mode=mode_,
                                       extra=extra))
                i += 1
    return cases


def _family_weight_rows(w):
    """Images of more than 256 positions (several runs), 7x7, 1-wide, strides along H / D."""
    rng = np.random.default_rng([22, w])
    h1 = w // 2 + 1
    return [
        # OW 60 x OH 5: runs of 4 rows and 1 row
        build_out("wr_2d_60x5", rng, 3, 1, w + 1, h1, (3, 3), (5, 60), padding=1),
        build_out("wr_2d_60x9_s2", rng, 1, 1, 2 * w + 1, 3 * w // 2 + 1, (2, 3), (9, 60),
                  stride=(2, 2), padding=(0, 1), extra=1, padding_mode="reflect"),
        build_out("wr_2d_7x7", rng, 3, 1, 3 * w + 1, w // 2, (3, 3), (7, 7), padding=1),
        build_out("wr_2d_7x7_s3", rng, None, 1, w - 1, 2 * w + 1, (3, 2), (7, 7),
                  stride=(3, 2), dilation=(2, 1), extra=2),
        # 1-wide: runs of 256 rows and 44 rows
        build_out("wr_2d_1wide_300", rng, 1, 1, w + 1, w + 1, (3, 1), (300, 1), padding=(1, 0),
                  padding_mode="replicate"),
        build_out("wr_2d_1wide_s2", rng, 3, 1, h1, w // 2, (2, 2), (40, 1), stride=(3, 2),
                  extra=1),
        # OW 20 x OH 13: runs of 12 rows and 1 row; stride 3 along H
        build_out("wr_2d_20x13_sh3", rng, 1, 1, 3 * w // 2 + 1, 2 * w + 1, (5, 3), (13, 20),
                  stride=(3, 1), dilation=(2, 1), padding=2),
        # exactly 256 positions (one run), then 16 x 17 (a run of 16 rows and one of 1)
        build_out("wr_2d_16x16", rng, 1, 1, 2 * w + 1, w + 1, (3, 3), (16, 16), padding=1),
        build_out("wr_2d_16x17", rng, None, 1, w + 1, 3 * w // 2 + 1, (2, 2), (17, 16)),
        # several images of 1200 positions (5 runs each) summed into one gradient
        build_out("wr_2d_N3_60x20", rng, 3, 1, 3 * w // 2 + 1, w + 1, (3, 3), (20, 60),
                  padding=1),
        # OW > 256: runs of one row, stride 2 along W
        build_out("wr_1d_300_s2", rng, 3, 1, 2 * w + 1, w + 1, (5,), (300,), stride=2,
                  padding=2, extra=1),
        build_out("wr_2d_260x2", rng, 1, 1, w + 1, h1, (1, 3), (2, 260), padding=(0, 1),
                  padding_mode="circular"),
        # 3-D: stride 2 / 3 along D and H, runs of 8 rows and 2 rows per output plane
        build_out("wr_3d_29x10_sd2_sh3", rng, 1, 1, 3 * w // 2 + 1, w + 1, (2, 3, 3),
                  (3, 10, 29), stride=(2, 3, 2), padding=(0, 1, 1), extra=1),
        build_out("wr_3d_N3_sd3", rng, 3, 1, w, 4 * w, (3, 2, 3), (2, 3, 5), stride=(3, 1, 2),
                  padding=1, extra=1),
        build_out("wr_3d_unbatched_G2", rng, None, 2, h1, h1, (2, 2, 3), (2, 2, 15),
                  dilation=(2, 1, 3), padding=(1, 0, 2), padding_mode="reflect"),
        build_out("wr_3d_same_circular", rng, 1, 1, w, 2 * w, (3, 3, 3), (3, 4, 6),
                  padding="same", padding_mode="circular"),
    ]


def _family_weight_grouped(w):
    """2-D, groups 2 and 3, channels per group not multiples of W, strides 1-3 along H."""
    rng = np.random.default_rng([23, w])
    cgs = [w // 2, w // 2 + 1, 3 * w // 2 + 1, 3 * w + 2]
    kgs = [w // 2 + 1, 3 * w // 2 + 1, w // 2]
    outs = [(5, 7), (7, 14), (3, 15), (4, 1), (2, 29), (5, 9), (2, 2), (6, 6), (4, 13),
            (3, 4), (8, 5), (5, 60)]
    kernels = [(3, 3), (2, 3), (1, 2), (3, 1), (5, 2), (2, 5)]
    cases = []
    for j, (cg, kg) in enumerate(itertools.product(cgs, kgs)):
        kernel = kernels[j % 6]
        stride = (1 + j % 3, 1 + (j // 3) % 2)
        dilation = (1 + (j + 1) % 3, 1 + j % 3)
        padding = [1, (2, 1), 0, (0, 2), "valid", 2][j % 6]
        mode = MODES[j % 4]
        for padding, mode in ((padding, mode), (padding, "zeros"), (0, "zeros")):
            size = size_for_out(outs[j], kernel, stride, dilation, padding, j % 2)
            if valid_geometry(size, kernel, stride, dilation, padding, mode):
                break
        cases.append(build_out(f"wg_G{2 + j % 2}_Cg{cg}_Kg{kg}", rng, [1, 3, None][j % 3],
                               2 + j % 2, cg, kg, kernel, outs[j], stride=stride,
                               dilation=dilation, padding=padding, padding_mode=mode,
                               extra=j % 2))
    return cases


def _family_weight_padding(w):
    rng = np.random.default_rng([24, w])
    cg, kg = 3 * w // 2 + 1, 2 * w + 1
    cases = [build(f"wp_{name}", rng, [1, 3, None][i % 3], 1 + (i % 4 == 3), cg, kg, kernel,
                   size, **kw) for i, (name, kernel, size, kw) in enumerate(_padding_specs())]
    cases.append(build("wp_reflect_s2", rng, 3, 1, cg, kg, (3, 5), (6, 13), stride=(2, 2),
                       padding=2, padding_mode="reflect"))
    cases.append(build("wp_circular_s2", rng, 1, 1, cg, kg, (3, 3), (5, 8), stride=(3, 2),
                       padding=(1, 3), padding_mode="circular"))
    return cases


def _family_weight_nan(w):
    """NaN / +-Inf in the input and in the output gradient."""
    rng = np.random.default_rng([25, w])
    nan, inf = float("nan"), float("inf")
    cg = w + 1  # channel cg - 1 sits in the partial block
    return [
        # stride 2, dilation 2, kernel 3 over 31 + 1 inputs: odd inputs and the extra last one
        # reach no output (their NaN must not appear)
        build_out("wn_1d_x", rng, 1, 1, cg, 2 * w + 1, (3,), (14,), stride=2, dilation=2,
                  extra=1, specials=[("x", (0, 0, 0), nan), ("x", (0, cg - 1, 30), nan),
                                     ("x", (0, 2, 7), nan), ("x", (0, 3, 31), nan),
                                     ("x", (0, 1, 12), inf), ("x", (0, 1, 20), -inf)]),
        # stride 2 along H, 1-row kernel: odd input rows reach nothing
        build_out("wn_2d_x_rows", rng, 2, 2, w // 2 + 1, 3 * w // 2 + 1, (1, 3), (3, 15),
                  stride=(2, 1), dilation=(1, 3), padding=(0, 2),
                  specials=[("x", (0, 0, 1, 5), nan), ("x", (1, 1, 2, -1), nan),
                            ("x", (1, w // 2 + 1, 4, 7), inf)]),
        # the output gradient: a NaN poisons its output channel (zero padding: 0 * NaN too)
        build_out("wn_2d_gy", rng, 1, 1, cg, w // 2 + 1, (3, 3), (4, 9), padding=1,
                  specials=[("gy", (0, w // 2, 3, 8), nan), ("gy", (0, 0, 0, 0), inf)]),
        # +Inf in x and -Inf in gy in one reflect-padded image
        build_out("wn_2d_reflect", rng, None, 1, w // 2, w, (3, 3), (4, 13), padding=1,
                  padding_mode="reflect",
                  specials=[("x", (0, 0, 0), inf), ("gy", (w - 1, 2, 5), -inf)]),
        build_out("wn_3d", rng, 3, 1, w + 1, w + 1, (2, 3, 3), (2, 3, 6), stride=(2, 1, 2),
                  padding=1, specials=[("x", (2, 1, 1, 1, -1), nan), ("x", (0, w, 0, 0, 0), -inf)]),
    ]


WEIGHT_FAMILIES = {
    "width": _family_weight_width,
    "rows": _family_weight_rows,
    "grouped": _family_weight_grouped,
    "padding": _family_weight_padding,
    "nan": _family_weight_nan,
}
FAMILIES = {"input": DATA_FAMILIES, "weight": WEIGHT_FAMILIES}


@functools.lru_cache(maxsize=None)
def family_cases(entry, family, w):
    return FAMILIES[entry][family](w)


def all_cases(entry, w):
    return [c for f in FAMILIES[entry] for c in family_cases(entry, f, w)]


# --------------------------------------------------------------------------- checks
# (isa, dtype name, entry) -> (worst normalised error, case name), for reports
WORST = {}


def check(case, entry, dtype, isa, record_error):
    """Problems of fastconv's direct gradient `entry` on `case` against the float64 reference."""
    where = f"[conv{case.rank}d_{entry}, isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}"
    try:
        y = case.call(entry, dtype)
    except Exception as e:  # noqa: BLE001 - report any exception with the configuration
        return [f"{where}: raised {type(e).__name__}: {e}"]
    ref = case.refs[entry]
    problems = layout_problems(y, ref, dtype, where)
    if problems:
        return problems
    yd = y.astype(np.float64)
    problems = special_value_problems(yd, ref, where, "elements")
    if problems:
        return problems
    finite = np.isfinite(ref)
    if case.special:
        assert not finite.all(), f"{case.name}: no NaN / Inf reached the {entry} gradient"
        assert finite.any(), f"{case.name}: nothing finite left in the {entry} gradient"
    err = normalized_error(yd[finite], ref[finite])
    record_error(dtype, ALGO, err, isa, case.name, entry=entry)
    key = (isa, np.dtype(dtype).name, entry)
    WORST[key] = max(WORST.get(key, (0.0, "")), (err, case.name))
    tol = tolerance_for(ALGO, dtype, DIRECTION[entry])
    if not err <= tol:
        diff = np.where(finite, np.abs(yd - np.where(finite, ref, 0.0)), 0.0)
        idx = np.unravel_index(np.argmax(diff), ref.shape)
        problems.append(f"{where}: normalised error {err:.3e} > {tol:.1e} (worst at "
                        f"{tuple(int(i) for i in idx)}: got {y[idx]!r}, ref {ref[idx]!r})")
    return problems


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("family", list(DATA_FAMILIES))
def test_blocked_input_grad(family, dtype, isa, record_error):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in family_cases("input", family, w):
            problems += check(case, "input", dtype, isa, record_error)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("family", list(WEIGHT_FAMILIES))
def test_blocked_weight_grad(family, dtype, isa, record_error):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in family_cases("weight", family, w):
            problems += check(case, "weight", dtype, isa, record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- the shapes' reach
@pytest.mark.parametrize("w,max_acc", ALL_KERNELS, ids=lambda v: str(v))
def test_shapes_cover_the_blocked_paths(w, max_acc):
    """Pure Python: every case takes the blocked path of its direction (the library's
    conditions), and the families reach what the module docstring lists."""
    data, weight = all_cases("input", w), all_cases("weight", w)
    for c in data:
        assert blocked_data_applies(w, c), c.describe()
    for c in weight:
        assert blocked_weight_applies(w, c), c.describe()
    both = data + weight

    # data gradient: every tile kernel at stride 1 (the rule over the computed rows' width)
    tiles = {tiling(w, max_acc, c.kg(), c.cg(), c.window_width())[:2] for c in data}
    assert table_tiles(max_acc) <= tiles, sorted(table_tiles(max_acc) - tiles)
    short_last = {tiling(w, max_acc, c.kg(), c.cg(), c.window_width())[0] for c in data
                  if c.window_width() % tiling(w, max_acc, c.kg(), c.cg(), c.window_width())[1]}
    assert short_last == {1, 2, 4}, short_last  # a narrower last tile for every NB
    assert {-(-c.cg() // w) for c in data} >= set(range(1, 6))
    assert {c.window_width() for c in data} >= set(DATA_WIDTHS)
    assert {c.out()[-1] for c in data} >= {1, 2, 3, 60}
    for mode in MODES:  # the window (zeros) and the full padded gradient, with real padding
        assert any(c.mode() == mode and any(p for pr in c.pads() for p in pr) for c in data)
    assert any(c.pads()[-1][0] != c.pads()[-1][1] for c in data)  # asymmetric 'same'
    assert any(c.kg() * int(np.prod(c.w.shape[2:])) > 1000 for c in data)

    # weight gradient: NB groups 1, 2, 3, strides, runs
    nbs = {nb for c in weight for nb in wgrad_nb_groups(w, c.cg())}
    assert nbs == {1, 2, 3}
    assert {len(wgrad_nb_groups(w, c.cg())) for c in weight} >= {1, 2, 3}
    assert {c.stride()[-1] for c in weight} == {1, 2}
    assert {c.stride()[-2] for c in weight if c.rank >= 2} >= {1, 2, 3}
    assert {c.stride()[0] for c in weight if c.rank == 3} >= {1, 2, 3}
    assert {c.out()[-1] for c in weight} >= set(WEIGHT_WIDTHS) | {300}
    assert max(c.runs_per_image() for c in weight if c.rank == 2) >= 2
    assert any(c.out()[-1] > POSITIONS_PER_RUN for c in weight)
    assert any(c.rank >= 2 and c.out()[-2:] == (7, 7) for c in weight)
    assert any(c.rank >= 2 and c.out()[-1] == 1 and c.out()[-2] > POSITIONS_PER_RUN
               for c in weight)
    for c in weight:  # runs as the library cuts them
        if c.rank >= 2 and c.out()[-1] * c.out()[-2] > POSITIONS_PER_RUN:
            assert c.runs_per_image() >= 2 * (c.out()[0] if c.rank == 3 else 1), c.name
    # uncovered tails: the last input elements reach no output
    assert any(c.stride()[-1] == 2 and (c.size()[-1] + sum(c.pads()[-1])
                                        - c.dilation()[-1] * (c.w.shape[-1] - 1) - 1) % 2
               for c in weight)

    # both
    for entry, cases in (("input", data), ("weight", weight)):
        assert {c.rank for c in cases} == {1, 2, 3}, entry
        assert {c.groups for c in cases} == {1, 2, 3}, entry
        assert {c.x.shape[0] if c.batched else "unbatched" for c in cases} >= {1, 3, "unbatched"}
        assert {k for c in cases for k in c.w.shape[2:]} >= {1, 2, 3, 5}, entry
        assert {d for c in cases for d in c.dilation()} == {1, 2, 3}, entry
        assert {c.mode() for c in cases} == set(MODES), entry
        pads = {p if isinstance(p, str) else type(p).__name__
                for c in cases for p in [c.kwargs.get("padding", 0)]}
        assert pads == {"int", "tuple", "same", "valid"}, (entry, pads)
        assert min(c.cg() for c in cases) == w // 2 and max(c.cg() for c in cases) > 3 * w + 1
        assert min(c.kg() for c in cases) == w // 2 and max(c.kg() for c in cases) > 3 * w + 1
        assert sum(c.cg() % w != 0 and c.kg() % w != 0 for c in cases) > len(cases) // 2
        assert sum(c.special for c in cases) >= 4
    assert any(c.special and np.isnan(c.gy).any() for c in data)
    assert any(c.special and np.isnan(c.x).any() for c in weight)
    assert any(c.special and np.isnan(c.gy).any() for c in weight)
    assert {c.out()[-1] for c in both} >= set(range(1, 17)) | {29, 60}


# --------------------------------------------------------------------------- threads, gemm
def _thread_cases(w):
    rng = np.random.default_rng([31, w])
    nan = float("nan")
    return {
        "input": [
            build("ti_2d_reflect", rng, 2, 2, 3 * w // 2 + 1, 4 * w + 3, (3, 3), (6, 29),
                  padding=1, padding_mode="reflect", specials=[("gy", (1, 2, 5, -1), nan)]),
            build("ti_1d_zeros", rng, 1, 1, 2 * w + 1, 64, (31,), (60,), padding=5),
        ],
        "weight": [
            build_out("tw_2d_s2", rng, 3, 2, 3 * w + 1, w + 1, (3, 3), (6, 60), stride=(1, 2),
                      padding=1, specials=[("x", (1, 3, 5, 7), nan)]),
            build_out("tw_3d", rng, 1, 1, 2 * w + 1, 3 * w // 2 + 1, (2, 3, 3), (3, 9, 31),
                      stride=(2, 2, 1), padding=(0, 1, 1), padding_mode="replicate"),
        ],
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_threads_bit_identical(entry, dtype, isa, threads_restored):
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in _thread_cases(w)[entry]:
            # the library starts a thread per 2^16 multiply-adds: 2 threads really run
            assert case.macs() >= 2 << 16, case.describe()
            assert (blocked_data_applies if entry == "input" else blocked_weight_applies)(w, case)
            threads_restored(1)
            y1 = case.call(entry, dtype)
            threads_restored(2)
            y2 = case.call(entry, dtype)
            if y1.tobytes() != y2.tobytes():
                diff = np.argwhere(~((y1 == y2) | (np.isnan(y1) & np.isnan(y2))))
                problems.append(f"[conv{case.rank}d_{entry}, isa={isa}, "
                                f"{np.dtype(dtype).name}] {case.describe()}: 1 and 2 threads "
                                f"differ at {len(diff)} elements, e.g. {diff[:4].tolist()}")
            problems += check(case, entry, dtype, isa, lambda *a, **k: None)
    fail_if(problems)


def _gemm_cases(entry, w):
    fams = ("grouped", "padding", "ranks", "nan") if entry == "input" else (
        "rows", "grouped", "padding", "nan")
    picks = [c for f in fams for c in family_cases(entry, f, w)]
    return picks + family_cases(entry, "width", w)[::7]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_agrees_with_gemm(entry, dtype, isa):
    """algo='direct' (blocked) and algo='gemm' on the same problems: the same NaN / Inf masks,
    and finite values within twice the budget of each (both are within it of the reference)."""
    if "gemm" not in fastconv.algorithms(DIRECTION[entry]):
        pytest.skip("no gemm algorithm for this direction")
    tol = 2 * tolerance_for(ALGO, dtype, DIRECTION[entry])
    problems = []
    for w in lanes_to_test(isa, dtype):
        for case in _gemm_cases(entry, w):
            where = (f"[conv{case.rank}d_{entry}, isa={isa}, {np.dtype(dtype).name}] "
                     f"{case.describe()}")
            try:
                a = case.call(entry, dtype, ALGO).astype(np.float64)
                b = case.call(entry, dtype, "gemm").astype(np.float64)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{where}: raised {type(e).__name__}: {e}")
                continue
            for what, mask in (("NaN", np.isnan), ("+Inf", np.isposinf),
                               ("-Inf", np.isneginf)):
                if not np.array_equal(mask(a), mask(b)):
                    problems.append(f"{where}: {what} masks of direct and gemm differ")
            finite = np.isfinite(b)
            if finite.any() and np.array_equal(np.isfinite(a), finite):
                err = normalized_error(a[finite], b[finite])
                if not err <= tol:
                    problems.append(f"{where}: direct vs gemm {err:.3e} > {tol:.1e}")
    fail_if(problems)


# --------------------------------------------------------------------------- non-finite weights
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_input_grad_nonfinite_weight_masks(bad, dtype, isa):
    """A non-finite weight reaches exactly the input positions the definition sums it into.

    The blocked data gradient pads the output gradient with zeros where the definition has no
    term; 0 x NaN / 0 x Inf there would spread NaN to the input's first positions. Such weights
    take the row kernels (regression: the blocked path gave NaN at every position)."""
    rng = np.random.default_rng(7)
    # padding 1: the gradient's kept box is written straight into dx (writes_kept_box), so the
    # row kernels' fallback computes the padded gradient aside and copies the box.
    for rank, spatial, kernel, pad in ((1, (10,), (3,), 0), (2, (9, 8), (3, 3), 0),
                                       (1, (10,), (3,), 1), (2, (9, 8), (3, 3), 1)):
        K = C = 16
        w = rng.uniform(-1, 1, (K, C) + kernel).astype(dtype)
        w[(0, 0) + tuple(k - 1 for k in kernel)] = bad
        out = tuple(s + 2 * pad - k + 1 for s, k in zip(spatial, kernel))
        gy = rng.uniform(-1, 1, (1, K) + out).astype(dtype)
        grad = getattr(fgrad, f"conv{rank}d_input")
        got = grad((1, C) + spatial, w, gy, padding=pad, algo="direct")
        ref = conv_input_grad((1, C) + spatial, w.astype(np.float64), gy.astype(np.float64),
                              stride=(1,) * rank, padding=(pad,) * rank, dilation=(1,) * rank,
                              groups=1)
        where = f"rank {rank}, padding {pad}"
        for what, mask in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
            assert np.array_equal(mask(got), mask(ref)), f"{what} mask differs ({where})"
        finite = np.isfinite(ref)
        assert normalized_error(got[finite], ref[finite]) <= tolerance_for(ALGO, dtype, "backward_data"), where
