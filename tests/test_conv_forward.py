"""Forward convolution vs the float64 reference: every algorithm x every ISA x float32/float64.

Three sources of shapes:
(a) the conv layers of layers.json, scaled down (channels capped per group, depthwise kept
    depthwise, spatial sizes shrunk but >= the dilated kernel, batch <= 2; stride, kernel,
    dilation and padding kept);
(b) tile-edge families: output widths 1..40, channel counts around SIMD widths 4/8/16 and GEMM
    tiles, 1x1 kernels, depthwise, odd spatial sizes, 3-D;
(c) 300 seeded random configurations per spatial rank (1, 2, 3) over every parameter.

Each check: output is an ndarray of the input dtype, the reference shape, C-contiguous, NaN-free,
and within the accuracy budget of DESIGN.md (err = max|y-ref| / max|ref|): float32 <= 2e-6
(looser only for algorithms DESIGN.md budgets looser, e.g. winograd F(4,3)/F(6,3)), float64
<= 1e-12. The reference is computed once per configuration; inputs are float32-representable so
one reference serves both dtypes. Failures print the configuration and how to rebuild it.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conv_configs import MODES, draw_conv_config, scale_conv_layer
from conftest import ALGOS, ISAS, load_layers, tolerance_for
from reference import conv_output_shape, conv_reference, normalized_error, resolve_padding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DTYPES = [np.float32, np.float64]
DEFAULT_ISA = fastconv.get_isa()

def tolerance(algo, dtype):
    """Accuracy budget of `algo` (DESIGN.md; conftest.tolerance_for)."""
    return tolerance_for(algo, dtype)


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case:
    """One convolution problem; x/w/b are float64 arrays holding float32-representable values."""

    name: str
    x: np.ndarray
    w: np.ndarray
    b: object  # np.ndarray or None
    kwargs: dict = field(default_factory=dict)  # stride/padding/dilation/groups/padding_mode
    rebuild: str = ""  # python expression that recreates this case

    @property
    def rank(self):
        return self.w.ndim - 2

    @functools.cached_property
    def ref(self):
        return conv_reference(self.x, self.w, self.b, **self.kwargs)

    def macs(self):
        out = conv_output_shape(self.x.shape, self.w.shape, **_shape_kwargs(self.kwargs))
        n = out[0] if self.x.ndim == self.rank + 2 else 1
        return n * int(np.prod(out[-self.rank - 1:])) * int(np.prod(self.w.shape[1:]))

    def describe(self):
        b = None if self.b is None else self.b.shape
        return (f"{self.name}: conv{self.rank}d(x{self.x.shape}, w{self.w.shape}, bias={b}, "
                f"{', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"
                + (f"  [rebuild: {self.rebuild}]" if self.rebuild else ""))


def _shape_kwargs(kw):
    return {k: kw[k] for k in ("stride", "padding", "dilation") if k in kw}


def _data(rng, shape):
    """Uniform(-1, 1) values rounded to float32 (so float32 and float64 runs see the same)."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)


def make_case(name, rng, x_shape, w_shape, bias=True, rebuild="", **kwargs):
    x = _data(rng, x_shape)
    w = _data(rng, w_shape)
    b = _data(rng, (w_shape[0],)) if bias else None
    return Case(name, x, w, b, kwargs, rebuild)


def run_check(case, algo, dtype, isa, record_error, record_declined=None, outputs=None):
    """Run fastconv on `case` and return a list of problems (empty when everything is right).

    If `outputs` is a dict, the output array is stored there under (algo, dtype name).
    """
    x = case.x.astype(dtype)
    w = case.w.astype(dtype)
    b = None if case.b is None else case.b.astype(dtype)
    where = f"[algo={algo}, isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}"
    try:
        y = CONV[case.rank](x, w, b, algo=algo, **case.kwargs)
    except ValueError as e:
        if algo != "auto" and "does not support" in str(e) and record_declined is not None:
            record_declined(algo)  # documented refusal of a named algorithm, not an error
            return []
        return [f"{where}: raised {type(e).__name__}: {e}"]
    except Exception as e:  # noqa: BLE001 - report any exception with the config
        return [f"{where}: raised {type(e).__name__}: {e}"]
    if outputs is not None:
        outputs[(algo, np.dtype(dtype).name)] = y
    ref = case.ref
    problems = []
    if not isinstance(y, np.ndarray):
        return [f"{where}: returned {type(y).__name__}, not ndarray"]
    if y.dtype != np.dtype(dtype):
        problems.append(f"{where}: dtype {y.dtype}, expected {np.dtype(dtype)}")
    if y.shape != ref.shape:
        return problems + [f"{where}: shape {y.shape}, expected {ref.shape}"]
    if not y.flags.c_contiguous:
        problems.append(f"{where}: output not C-contiguous (strides {y.strides})")
    if np.isnan(y).any():
        problems.append(f"{where}: NaN in output at {np.argwhere(np.isnan(y))[:5].tolist()}")
        return problems
    err = normalized_error(y, ref)
    record_error(dtype, algo, err, isa, case.name)
    tol = tolerance(algo, dtype)
    if not err <= tol:
        idx = np.unravel_index(np.argmax(np.abs(y.astype(np.float64) - ref)), ref.shape)
        problems.append(f"{where}: normalised error {err:.3e} > {tol:.1e} "
                        f"(worst at {tuple(int(i) for i in idx)}: got {y[idx]!r}, "
                        f"ref {ref[idx]!r})")
    return problems


def fail_if(problems, limit=15):
    if problems:
        more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
        pytest.fail(f"{len(problems)} problem(s):\n" + "\n".join(problems[:limit]) + more,
                    pytrace=False)


# --------------------------------------------------------------------------- (a) layers.json
LAYER_MAC_BUDGET = 1_500_000
SPATIAL_CAP = {1: 40, 2: 12, 3: 6}


def scaled_layer_case(layer):
    """layers.json conv entry -> small Case keeping kernel/stride/dilation/padding/grouping."""
    x_shape, w_shape, kwargs = scale_conv_layer(layer, SPATIAL_CAP, LAYER_MAC_BUDGET)
    rng = np.random.default_rng(sum(map(ord, layer["name"])))
    return make_case(layer["name"], rng, x_shape, w_shape, bias=True, **kwargs)

CONV_LAYERS = {l["name"]: l for l in load_layers("conv")}


@functools.lru_cache(maxsize=None)
def layer_case(name):
    return scaled_layer_case(CONV_LAYERS[name])


def test_layers_present():
    assert len(CONV_LAYERS) >= 10
    for name in CONV_LAYERS:
        assert layer_case(name).macs() <= LAYER_MAC_BUDGET


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_layer(name, dtype, algo, isa, record_error, record_declined):
    fail_if(run_check(layer_case(name), algo, dtype, isa, record_error, record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_layer_auto(name, dtype, record_error):
    fail_if(run_check(layer_case(name), "auto", dtype, fastconv.get_isa(), record_error))


# --------------------------------------------------------------------------- (b) tile edges
SIMD_COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17, 20]


def _family_width1d(rng):
    cases = []
    Cs, Ks = [1, 2, 3, 4, 5, 7, 8, 9], [1, 3, 4, 5, 7, 8, 9, 16, 17]
    for wo in range(1, 41):
        C, K = Cs[wo % len(Cs)], Ks[wo % len(Ks)]
        cases.append(make_case(f"w1d_k3p1_wo{wo}", rng, (1, C, wo), (K, C, 3), bias=wo % 2 == 0,
                               padding=1))
        L = (wo - 1) * 2 + 5
        cases.append(make_case(f"w1d_k5s2_wo{wo}", rng, (2, C, L), (K, C, 5), bias=True,
                               stride=2))
    return cases


def _family_width2d(rng):
    cases = []
    for wo in range(1, 41):
        C, K = SIMD_COUNTS[wo % 7], SIMD_COUNTS[(3 * wo) % len(SIMD_COUNTS)]
        cases.append(make_case(f"w2d_3x3_wo{wo}", rng, (1, C, 3, wo + 2), (K, C, 3, 3),
                               bias=True, padding=(1, 0)))
    return cases


def _family_channels2d(rng):
    cases = []
    for K in [1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17, 20]:
        for C in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 20]:
            cases.append(make_case(f"ch2d_K{K}_C{C}", rng, (1, C, 5, 7), (K, C, 3, 3),
                                   bias=(K + C) % 2 == 0, padding=1))
    return cases


def _family_pointwise(rng):
    cases = []
    spatial = [(1, 1), (3, 5), (4, 4), (7, 9), (1, 17)]
    i = 0
    for K in [1, 5, 8, 13, 16, 17, 24, 33]:
        for C in [1, 3, 8, 16, 17, 31]:
            H, W = spatial[i % len(spatial)]
            i += 1
            cases.append(make_case(f"pw_K{K}_C{C}_{H}x{W}", rng, (1 + i % 2, C, H, W),
                                   (K, C, 1, 1), bias=i % 3 != 0))
    return cases


def _family_depthwise(rng):
    cases = []
    for C in range(1, 21):
        for s, (H, W) in ((1, (7, 9)), (2, (8, 5))):
            m = 2 if C % 3 == 0 else 1
            cases.append(make_case(f"dw_C{C}_m{m}_s{s}", rng, (1, C, H, W), (C * m, 1, 3, 3),
                                   bias=True, stride=s, padding=1, groups=C))
    return cases


def _family_odd_spatial(rng):
    cases = []
    sizes = [1, 2, 3, 5, 7, 9, 11, 13, 17]
    for i, H in enumerate(sizes):
        for j, W in enumerate(sizes):
            k, s = ((3, 1), (3, 2), (2, 1), (2, 2))[(i + j) % 4]
            p = 1 if k == 3 else 0
            if H + 2 * p < k or W + 2 * p < k:
                continue
            cases.append(make_case(f"odd_{H}x{W}_k{k}s{s}", rng, (1, 3, H, W), (5, 3, k, k),
                                   bias=True, stride=s, padding=p))
    return cases


def _family_3d(rng):
    cases = []
    pairs = [(1, 1), (1, 4), (3, 8), (4, 5), (8, 9), (9, 16), (16, 17), (2, 20)]
    for i, (C, K) in enumerate(pairs):
        for D, H, W in ((1, 3, 5), (3, 3, 3), (5, 4, 7)):
            s = 1 + (i % 2)
            cases.append(make_case(f"3d_C{C}_K{K}_{D}x{H}x{W}_s{s}", rng, (1, C, D, H, W),
                                   (K, C, 3, 3, 3), bias=i % 2 == 0, stride=s, padding=1))
    return cases


def _family_blocking(rng):
    """A few bigger problems whose GEMM dims exceed typical cache-blocking tiles (and threads)."""
    return [
        make_case("blk_C40_K72_17x19", rng, (1, 40, 17, 19), (72, 40, 3, 3), padding=1),
        make_case("blk_C300_K20_1x1", rng, (1, 300, 23, 23), (20, 300, 1, 1)),
        # a 1x1 input of over 2 MiB whose rows are not whole cache lines apart: GEMM packs it
        # rather than reading it in place, unless the output channels fill at most 4 A panels
        # (40 on avx512: in place, rows fetched ahead, a partial last panel packed)
        make_case("blk_C700_K40_1x1", rng, (3, 700, 15, 17), (40, 700, 1, 1)),
        make_case("blk_C700_K72_1x1_packed", rng, (3, 700, 15, 17), (72, 700, 1, 1)),
        make_case("blk_C8_K130_33x35", rng, (2, 8, 33, 35), (130, 8, 3, 3), padding=1),
        make_case("blk_1d_C96_K80_L301", rng, (1, 96, 301), (80, 96, 5), padding=2, stride=2),
        make_case("blk_dw_C67_45x47", rng, (1, 67, 45, 47), (67, 1, 5, 5), padding=2, groups=67),
        # long reductions (C x kernel = 30752 and 32768 terms): rounding error must not grow
        # with the reduction length (large31x31_32_28 of layers.json at its full depth)
        make_case("blk_long_C32_K5_31x31", rng, (1, 32, 33, 33), (5, 32, 31, 31)),
        make_case("blk_long_1d_C128_K3_L256", rng, (1, 128, 258), (3, 128, 256)),
    ]


FAMILIES = {
    "width1d": _family_width1d,
    "width2d": _family_width2d,
    "channels2d": _family_channels2d,
    "pointwise": _family_pointwise,
    "depthwise": _family_depthwise,
    "odd_spatial": _family_odd_spatial,
    "3d": _family_3d,
    "blocking": _family_blocking,
}


@functools.lru_cache(maxsize=None)
def family_cases(name):
    seed = sum(map(ord, name))
    cases = FAMILIES[name](np.random.default_rng(seed))
    for c in cases:
        c.rebuild = f"test_conv_forward.family_cases({name!r})  # case {c.name!r}"
        c.ref  # noqa: B018 - compute the reference once
    return cases


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_tile_edges(family, dtype, algo, isa, record_error, record_declined):
    problems = []
    for case in family_cases(family):
        problems += run_check(case, algo, dtype, isa, record_error, record_declined)
    fail_if(problems)


# --------------------------------------------------------------------------- (c) random configs
N_RANDOM = 300
RANDOM_MAC_BUDGET = 200_000




def _draw_random_case(rng, rank, name, rebuild):
    x_shape, w_shape, kwargs = draw_conv_config(rng, rank)
    case = make_case(name, rng, x_shape, w_shape, bias=bool(rng.random() < 0.5), rebuild=rebuild, **kwargs)
    if case.macs() > RANDOM_MAC_BUDGET:
        return None
    return case


def random_case(rank, index):
    """The seeded random configuration number `index` of spatial rank `rank` (deterministic)."""
    rng = np.random.default_rng([20240611, rank, index])
    for _ in range(1000):
        case = _draw_random_case(rng, rank, f"random_r{rank}_{index:03d}",
                                 f"test_conv_forward.random_case({rank}, {index})")
        if case is not None:
            return case
    raise RuntimeError("could not draw a configuration within the MAC budget")


RANDOM_IDS = [(r, i) for r in (1, 2, 3) for i in range(N_RANDOM)]


@pytest.mark.parametrize("rank,index", RANDOM_IDS, ids=[f"r{r}-{i:03d}" for r, i in RANDOM_IDS])
def test_random(rank, index, record_error, record_declined):
    """One reference, then every algorithm x ISA x dtype (+ 'auto', + a determinism check)."""
    case = random_case(rank, index)
    case.ref  # noqa: B018
    problems = []
    prev = fastconv.get_isa()
    try:
        for isa_name in ISAS:
            if isa_name == DEFAULT_ISA:
                continue  # done below, keeping the outputs for the determinism check
            fastconv.set_isa(isa_name)
            for dtype in DTYPES:
                for algo in ALGOS:
                    problems += run_check(case, algo, dtype, isa_name, record_error,
                                          record_declined)
        fastconv.set_isa(DEFAULT_ISA)
        outputs = {}
        for dtype in DTYPES:
            problems += run_check(case, "auto", dtype, DEFAULT_ISA, record_error,
                                  outputs=outputs)
            for algo in ALGOS:
                problems += run_check(case, algo, dtype, DEFAULT_ISA, record_error,
                                      record_declined, outputs=outputs)
        # determinism: a second call gives the same bits
        x, w = case.x.astype(np.float32), case.w.astype(np.float32)
        b = None if case.b is None else case.b.astype(np.float32)
        for algo in ALGOS + ["auto"]:
            y1 = outputs.get((algo, "float32"))
            if y1 is not None:
                y2 = CONV[rank](x, w, b, algo=algo, **case.kwargs)
                if y1.tobytes() != y2.tobytes():
                    problems.append(f"[algo={algo}, isa={DEFAULT_ISA}, float32] two calls not "
                                    f"bit-identical: {case.describe()}")
    finally:
        fastconv.set_isa(prev)
    fail_if(problems)


def test_random_configs_cover_everything():
    """The random set really exercises every parameter (guards the generator itself)."""
    seen = {"mode": set(), "pad": set(), "stride": set(), "dilation": set(), "batch": set(),
            "bias": set(), "depthwise": 0, "multiplier": 0, "grouped": 0, "asym_same": 0}
    for rank, index in RANDOM_IDS:
        c = random_case(rank, index)
        kw = c.kwargs
        seen["mode"].add(kw.get("padding_mode", "zeros"))
        p = kw["padding"]
        seen["pad"].add(p if isinstance(p, str) else type(p).__name__)
        for key in ("stride", "dilation"):
            v = kw.get(key, 1)
            seen[key].update([v] if isinstance(v, int) else v)
        seen["batch"].add("unbatched" if c.x.ndim == rank + 1 else
                          ("N0" if c.x.shape[0] == 0 else "batched"))
        seen["bias"].add(c.b is not None)
        G = kw.get("groups", 1)
        if G > 1 and c.w.shape[1] == 1:
            seen["depthwise"] += 1
            seen["multiplier"] += c.w.shape[0] > G
        elif G > 1:
            seen["grouped"] += 1
        if p == "same" and any(l != r for l, r in resolve_padding(p, c.w.shape[2:],
                                                                   kw.get("dilation", 1), rank)):
            seen["asym_same"] += 1
    assert seen["mode"] == set(MODES)
    assert seen["pad"] == {"int", "tuple", "same", "valid"}
    assert seen["stride"] == {1, 2, 3} and seen["dilation"] == {1, 2, 3}
    assert seen["batch"] == {"unbatched", "N0", "batched"}
    assert seen["bias"] == {True, False}
    counts = [seen[k] for k in ("depthwise", "multiplier", "grouped", "asym_same")]
    assert min(counts) >= 10, seen


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_deterministic_medium(dtype, algo, isa):
    """A problem big enough to be split across threads/tiles: two calls are bit-identical."""
    rng = np.random.default_rng(7)
    x = _data(rng, (2, 16, 21, 19)).astype(dtype)
    w = _data(rng, (24, 16, 3, 3)).astype(dtype)
    b = _data(rng, (24,)).astype(dtype)
    y1 = F.conv2d(x, w, b, padding=1, algo=algo)
    y2 = F.conv2d(x, w, b, padding=1, algo=algo)
    assert y1.tobytes() == y2.tobytes()
    assert normalized_error(y1, conv_reference(x, w, b, padding=1)) <= tolerance(algo, dtype)


# --------------------------------------------------------------------------- depthwise, narrow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_depthwise_narrow_planes(dtype, isa):
    """Depthwise layers whose rows hold fewer than 2 vectors of outputs run W channels at once in
    the channel-blocked layout (direct.cpp): channel counts that leave a partial block, padding
    planes along D, stride, dilation, bias and the plan's fused activation; planes of rows much
    narrower than a vector interleaved whole (7x7, 5x3); and rows of 16 to 31 outputs at
    stride 2, which go to the plane kernel with 3 contiguous taps and stay blocked with 5 taps
    or dilation."""
    rng = np.random.default_rng(17)
    cases = [((1, 37, 7, 7), (37, 1, 3, 3), dict(groups=37, padding=1)),
             ((1, 21, 5, 3), (21, 1, 3, 3), dict(groups=21, padding=1)),
             ((1, 18, 40, 40), (18, 1, 3, 3), dict(groups=18, padding=1, stride=2)),
             ((2, 17, 40, 36), (17, 1, 5, 5), dict(groups=17, padding=2, stride=2)),
             ((1, 17, 40, 40), (17, 1, 3, 3), dict(groups=17, padding=2, stride=2, dilation=2)),
             ((2, 20, 9, 11), (20, 1, 3, 3), dict(groups=20, padding=(2, 1), dilation=2)),
             ((1, 33, 14, 13), (33, 1, 5, 5), dict(groups=33, padding=2, stride=(2, 1))),
             ((2, 37, 3, 6, 5), (37, 1, 1, 3, 3), dict(groups=37, padding=(1, 1, 2), stride=(1, 2, 1)))]
    for x_shape, w_shape, kw in cases:
        x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
        ref = conv_reference(x, w, b, **kw)
        conv = {4: F.conv2d, 5: F.conv3d}[len(x_shape)]
        y = conv(x.astype(dtype), w.astype(dtype), b.astype(dtype), algo="direct", **kw)
        yp = fastconv.plan(w.astype(dtype), b.astype(dtype), algo="direct", activation="relu6",
                           **kw)(x.astype(dtype))
        assert normalized_error(y, ref) <= tolerance("direct", dtype), (x_shape, kw)
        assert normalized_error(yp, np.clip(ref, 0, 6)) <= tolerance("direct", dtype), (x_shape, kw)
