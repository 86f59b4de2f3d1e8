"""Convolution gradients vs the float64 reference: fastconv.grad.conv{1,2,3}d_input / _weight /
_bias, every algorithm of the direction x every ISA x float32/float64.

The input gradient is checked for every name in ``fastconv.algorithms('backward_data')``, the
weight gradient for every name in ``fastconv.algorithms('backward_weights')`` (plus 'auto'); the
bias gradient has no algorithm. The reference (``reference.conv_input_grad`` & co.) is naive
NumPy in float64 that shares no code with fastconv; it was validated against torch autograd.

Sources of problems:
(a) the conv layers of layers.json, scaled down (as in test_conv_forward, smaller budget);
(b) 200 seeded random configurations per spatial rank (1, 2, 3) over every parameter: stride
    (incl. strides whose last window stops before the end of the input, so the last rows get no
    gradient), dilation, padding int/tuple/'same'/'valid', the four padding modes (the padded
    gradient is folded back into the input), groups incl. depthwise with channel multipliers,
    batched/unbatched and empty batches (N = 0: input grad empty, weight and bias grads zero);
(c) long reductions: weight grad over N*P = 8*32*32 terms, input grad over K*kernel = 64*9,
    bias grad over N*P = 8*64*64 terms.
Plus: determinism of the weight gradient (repeated calls, 1 vs 2 threads; a single channel
pair's kernel rows split among threads by `direct`), a float64 finite-difference gradcheck
through fastconv's own forward for every padding mode, and the adjoint identity
<conv(x, w), g> = <x, conv_input(g)> = <w, conv_weight(x, g)>.

Each check: ndarray of the input dtype and of shape input_shape / weight_shape / (K,),
C-contiguous, NaN-free, err = max|y-ref| / max|ref| <= 2e-6 (float32) or 1e-12 (float64) —
DESIGN.md's budgets, looser only where DESIGN.md budgets an algorithm looser. Every data array
holds float32-representable values, so one reference serves both dtypes. Failures print the
configuration and how to rebuild it.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as fgrad
from conv_configs import MODES, draw_conv_config, scale_conv_layer
from conftest import (ALGOS_BY_DIRECTION, ISAS, ConvCaseShape, compare_with_reference, fail_if,
                      load_layers, special_value_problems, spreads_non_finite, tolerance_for,
                      unless_declined)
from reference import (conv_bias_grad, conv_input_grad, conv_output_shape, conv_reference,
                       conv_weight_grad, normalized_error, resolve_padding)

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
INPUT_GRAD = {r: getattr(fgrad, f"conv{r}d_input") for r in (1, 2, 3)}
WEIGHT_GRAD = {r: getattr(fgrad, f"conv{r}d_weight") for r in (1, 2, 3)}
BIAS_GRAD = {r: getattr(fgrad, f"conv{r}d_bias") for r in (1, 2, 3)}
DTYPES = [np.float32, np.float64]
DEFAULT_ISA = fastconv.get_isa()
BWD_DATA = ALGOS_BY_DIRECTION["backward_data"]
BWD_WEIGHTS = ALGOS_BY_DIRECTION["backward_weights"]
# entry point -> (direction of its algorithms, or None for the algorithm-free bias gradient)
DIRECTION = {"input": "backward_data", "weight": "backward_weights", "bias": None}
ENTRY_ALGOS = {"input": BWD_DATA, "weight": BWD_WEIGHTS, "bias": [None]}


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case(ConvCaseShape):
    """A forward problem conv(x, w) and an output gradient gy (float64, float32-representable)."""

    name: str
    x: np.ndarray
    w: np.ndarray
    gy: np.ndarray
    kwargs: dict = field(default_factory=dict)  # stride/padding/dilation/groups/padding_mode
    rebuild: str = ""

    @functools.cached_property
    def refs(self):
        return {
            "input": conv_input_grad(self.x.shape, self.w, self.gy, **self.kwargs),
            "weight": conv_weight_grad(self.x, self.w.shape, self.gy, **self.kwargs),
            "bias": conv_bias_grad(self.gy, self.batched),
        }

    def call(self, entry, dtype, algo):
        r, kw = self.rank, self.kwargs
        if entry == "input":
            return INPUT_GRAD[r](tuple(self.x.shape), self.w.astype(dtype),
                                 self.gy.astype(dtype), algo=algo, **kw)
        if entry == "weight":
            return WEIGHT_GRAD[r](self.x.astype(dtype), tuple(self.w.shape),
                                  self.gy.astype(dtype), algo=algo, **kw)
        assert entry == "bias"
        return BIAS_GRAD[r](self.gy.astype(dtype))

    def macs(self):
        n = self.x.shape[0] if self.batched else 1
        return n * int(np.prod(self.gy.shape[-self.rank - 1:])) * int(np.prod(self.w.shape[1:]))

    def describe(self):
        return (f"{self.name}: conv{self.rank}d(x{self.x.shape}, w{self.w.shape}, "
                f"{', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())}), "
                f"grad_output{self.gy.shape}"
                + (f"  [rebuild: {self.rebuild}]" if self.rebuild else ""))


def _data(rng, shape):
    """Uniform(-1, 1) values rounded to float32 (so float32 and float64 runs see the same)."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)


def make_case(name, rng, x_shape, w_shape, rebuild="", **kwargs):
    x = _data(rng, x_shape)
    w = _data(rng, w_shape)
    out = conv_output_shape(x_shape, w_shape, **{k: kwargs[k] for k in
                                                 ("stride", "padding", "dilation") if k in kwargs})
    return Case(name, x, w, _data(rng, out), kwargs, rebuild)


def run_check(case, entry, algo, dtype, isa, record_error, record_declined=None, outputs=None):
    """Run one gradient entry point on `case`; a list of problems (empty when right)."""
    label = f"algo={algo}, " if algo is not None else ""
    where = (f"[conv{case.rank}d_{entry}, {label}isa={isa}, dtype={np.dtype(dtype).name}] "
             f"{case.describe()}")
    try:
        y = case.call(entry, dtype, algo)
    except ValueError as e:
        if algo not in (None, "auto") and "does not support" in str(e) and record_declined:
            record_declined(algo)  # documented refusal of a named algorithm, not an error
            return []
        return [f"{where}: raised ValueError: {e}"]
    except Exception as e:  # noqa: BLE001 - report any exception with the config
        return [f"{where}: raised {type(e).__name__}: {e}"]
    if outputs is not None:
        outputs[(entry, algo, np.dtype(dtype).name)] = y
    ref = case.refs[entry]
    tol = tolerance_for(algo or "auto", dtype, DIRECTION[entry] or "forward")
    problems, err = compare_with_reference(y, ref, dtype, tol, where)
    if err is not None:
        record_error(dtype, algo or "-", err, isa, case.name, entry=entry)
    if not problems and entry != "input" and (case.batched and case.x.shape[0] == 0):
        if np.any(y != 0):  # gradients of an empty batch are exactly zero
            problems.append(f"{where}: empty batch but non-zero {entry} gradient")
    return problems


def check_all(case, record_error, record_declined, entries=("input", "weight", "bias"),
              isas=None):
    """Every entry x algorithm (+ 'auto') x ISA x dtype on one case (reference computed once)."""
    case.refs  # noqa: B018
    problems = []
    prev = fastconv.get_isa()
    try:
        for isa_name in isas or ISAS:
            fastconv.set_isa(isa_name)
            for dtype in DTYPES:
                for entry in entries:
                    algos = ENTRY_ALGOS[entry] + (["auto"] if isa_name == DEFAULT_ISA
                                                  and entry != "bias" else [])
                    for algo in algos:
                        problems += run_check(case, entry, algo, dtype, isa_name, record_error,
                                              record_declined)
    finally:
        fastconv.set_isa(prev)
    return problems


# --------------------------------------------------------------------------- (a) layers.json
LAYER_MAC_BUDGET = 400_000
SPATIAL_CAP = {1: 40, 2: 12, 3: 6}


def scaled_layer_case(layer):
    """layers.json conv entry -> small Case keeping kernel/stride/dilation/padding/grouping."""
    x_shape, w_shape, kwargs = scale_conv_layer(layer, SPATIAL_CAP, LAYER_MAC_BUDGET)
    rng = np.random.default_rng(sum(map(ord, layer["name"])) + 3)
    return make_case(layer["name"], rng, x_shape, w_shape,
                     rebuild=f"test_conv_backward.layer_case({layer['name']!r})", **kwargs)

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
def test_layer_input(name, dtype, bwd_data_algo, isa, record_error, record_declined):
    fail_if(run_check(layer_case(name), "input", bwd_data_algo, dtype, isa, record_error,
                      record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_layer_weight(name, dtype, bwd_weights_algo, isa, record_error, record_declined):
    fail_if(run_check(layer_case(name), "weight", bwd_weights_algo, dtype, isa, record_error,
                      record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_layer_auto_and_bias(name, dtype, record_error):
    case = layer_case(name)
    problems = []
    for entry, algo in (("input", "auto"), ("weight", "auto"), ("bias", None)):
        problems += run_check(case, entry, algo, dtype, fastconv.get_isa(), record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- (b) random configs
N_RANDOM = 200
RANDOM_MAC_BUDGET = 200_000




def _draw_random_case(rng, rank, name, rebuild):
    x_shape, w_shape, kwargs = draw_conv_config(rng, rank, stride_p=(0.4, 0.35, 0.25))
    case = make_case(name, rng, x_shape, w_shape, rebuild=rebuild, **kwargs)
    if case.macs() > RANDOM_MAC_BUDGET:
        return None
    return case


@functools.lru_cache(maxsize=None)
def random_case(rank, index):
    """The seeded random configuration number `index` of spatial rank `rank` (deterministic)."""
    rng = np.random.default_rng([20240703, rank, index])
    for _ in range(1000):
        case = _draw_random_case(rng, rank, f"bwd_r{rank}_{index:03d}",
                                 f"test_conv_backward.random_case({rank}, {index})")
        if case is not None:
            return case
    raise RuntimeError("could not draw a configuration within the MAC budget")


RANDOM_IDS = [(r, i) for r in (1, 2, 3) for i in range(N_RANDOM)]


@pytest.mark.parametrize("rank,index", RANDOM_IDS, ids=[f"r{r}-{i:03d}" for r, i in RANDOM_IDS])
def test_random(rank, index, record_error, record_declined):
    """One reference per gradient, then every entry x algorithm x ISA x dtype (+ 'auto'), and
    a repeated float32 weight-gradient call that must give the same bits."""
    case = random_case(rank, index)
    problems = check_all(case, record_error, record_declined)
    for algo in BWD_WEIGHTS:
        try:
            y1 = case.call("weight", np.float32, algo)
            y2 = case.call("weight", np.float32, algo)
        except ValueError as e:
            if "does not support" in str(e):
                continue
            raise
        if y1.tobytes() != y2.tobytes():
            problems.append(f"[conv{rank}d_weight, algo={algo}, float32] two calls not "
                            f"bit-identical: {case.describe()}")
    fail_if(problems)


def _uncovered_tail(case):
    """Dims whose last window stops before the end of the (padded) input."""
    kw = case.kwargs
    rank = case.rank
    stride = kw.get("stride", 1)
    stride = (stride,) * rank if isinstance(stride, int) else stride
    dilation = kw.get("dilation", 1)
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    pads = resolve_padding(kw["padding"], case.w.shape[2:], dilation, rank)
    dims = []
    for i, (L, k, s, d, (pl, pr)) in enumerate(zip(case.x.shape[-rank:], case.w.shape[2:],
                                                   stride, dilation, pads)):
        if (L + pl + pr - d * (k - 1) - 1) % s:
            dims.append(i)
    return dims


def test_random_configs_cover_everything():
    """The random set really exercises every parameter (guards the generator itself)."""
    seen = {"mode": set(), "pad": set(), "stride": set(), "dilation": set(), "batch": set(),
            "depthwise": 0, "multiplier": 0, "grouped": 0, "asym_same": 0, "tail": 0,
            "tail_mode": 0}
    for rank, index in RANDOM_IDS:
        c = random_case(rank, index)
        kw = c.kwargs
        mode = kw.get("padding_mode", "zeros")
        seen["mode"].add(mode)
        p = kw["padding"]
        seen["pad"].add(p if isinstance(p, str) else type(p).__name__)
        for key in ("stride", "dilation"):
            v = kw.get(key, 1)
            seen[key].update([v] if isinstance(v, int) else v)
        seen["batch"].add("unbatched" if not c.batched else
                          ("N0" if c.x.shape[0] == 0 else "batched"))
        G = kw.get("groups", 1)
        if G > 1 and c.w.shape[1] == 1:
            seen["depthwise"] += 1
            seen["multiplier"] += c.w.shape[0] > G
        elif G > 1:
            seen["grouped"] += 1
        if p == "same" and any(l != r for l, r in resolve_padding(p, c.w.shape[2:],
                                                                   kw.get("dilation", 1), rank)):
            seen["asym_same"] += 1
        if _uncovered_tail(c):
            seen["tail"] += 1
            seen["tail_mode"] += mode != "zeros"
    assert seen["mode"] == set(MODES)
    assert seen["pad"] == {"int", "tuple", "same", "valid"}
    assert seen["stride"] == {1, 2, 3} and seen["dilation"] == {1, 2, 3}
    assert seen["batch"] == {"unbatched", "N0", "batched"}
    counts = [seen[k] for k in ("depthwise", "multiplier", "grouped", "asym_same", "tail",
                                "tail_mode")]
    assert min(counts) >= 10, seen


# --------------------------------------------------------------------------- (c) long reductions
@functools.lru_cache(maxsize=None)
def long_cases(entry):
    rng = np.random.default_rng(sum(map(ord, entry)))
    if entry == "weight":  # each weight gradient sums N * P terms
        return [
            make_case("long_w_2d_8x32x32", rng, (8, 4, 32, 32), (8, 4, 3, 3), padding=1),
            make_case("long_w_1d_4x4096", rng, (4, 2, 4096), (3, 2, 5), padding=2),
            make_case("long_w_3d_2x16x16x16", rng, (2, 2, 16, 16, 16), (2, 2, 3, 3, 3),
                      padding=1, padding_mode="replicate"),
        ]
    return [  # each input gradient sums K * kernel terms (/ stride)
        make_case("long_x_2d_K64_3x3", rng, (2, 8, 16, 16), (64, 8, 3, 3), padding=1),
        make_case("long_x_1d_K128_k31", rng, (1, 4, 64), (128, 4, 31), padding=15),
        make_case("long_x_3d_K32_3x3x3", rng, (1, 4, 6, 6, 6), (32, 4, 3, 3, 3), padding=1,
                  padding_mode="circular"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_long_reduction_weight(dtype, bwd_weights_algo, isa, record_error, record_declined):
    problems = []
    for case in long_cases("weight"):
        problems += run_check(case, "weight", bwd_weights_algo, dtype, isa, record_error,
                              record_declined)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_long_reduction_input(dtype, bwd_data_algo, isa, record_error, record_declined):
    problems = []
    for case in long_cases("input"):
        problems += run_check(case, "input", bwd_data_algo, dtype, isa, record_error,
                              record_declined)
    fail_if(problems)


@functools.lru_cache(maxsize=None)
def long_bias_cases():
    """Bias gradients summing N * P = 32768 / 16384 / 4096 zero-mean terms per channel."""
    rng = np.random.default_rng(sum(map(ord, "bias")))
    cases = []
    for name, x_shape, w_shape in (("long_b_2d_8x64x64", (8, 2, 64, 64), (2, 2, 1, 1)),
                                   ("long_b_1d_4x4096", (4, 1, 4096), (3, 1, 1)),
                                   ("long_b_3d_1x16x16x16", (1, 2, 16, 16, 16), (4, 2, 1, 1, 1))):
        cases.append(make_case(name, rng, x_shape, w_shape))
    return cases


def test_bias_grad_single_channel_cancellation():
    """One channel, 32768 zero-mean terms: the sum nearly cancels, so the normalised error is the
    absolute error over a small result. A float32 running sum missed 2e-6 on ~9% of draws."""
    worst = 0.0
    for seed in range(40):
        gy = np.random.default_rng(seed).uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32)
        ref = conv_bias_grad(gy.astype(np.float64), True)
        worst = max(worst, normalized_error(fgrad.conv2d_bias(gy), ref))
    assert worst <= 2e-6, worst


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_long_reduction_bias(dtype, isa, record_error):
    problems = []
    for case in long_bias_cases():
        problems += run_check(case, "bias", None, dtype, isa, record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("rank", [2, 3])
def test_weight_grad_single_pair_direct_threads(rank, isa, threads_restored):
    """`direct`'s weight gradient of a single channel pair (template matching's) splits the
    kernel rows among the threads: bit-identical on 1 and 2 threads, and right."""
    rng = np.random.default_rng(13 + rank)
    shapes = {2: ((2, 1, 40, 45), (1, 1, 9, 7)), 3: ((1, 1, 9, 20, 18), (1, 1, 3, 5, 4))}
    x_shape, w_shape = shapes[rank]
    case = make_case(f"pair_r{rank}", rng, x_shape, w_shape, padding=1)
    runs = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        runs.append(case.call("weight", np.float32, "direct"))
    assert runs[0].tobytes() == runs[1].tobytes() == runs[2].tobytes()
    problems, _ = compare_with_reference(runs[0], case.refs["weight"], np.float32,
                                         tolerance_for("direct", np.float32,
                                                       "backward_weights"), case.describe())
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_weight_grad_deterministic(rank, dtype, bwd_weights_algo, isa):
    """Weight gradient: bit-identical on repeated calls and with 1 vs 2 threads."""
    rng = np.random.default_rng(11 + rank)
    shapes = {1: ((4, 8, 700), (12, 4, 5)), 2: ((4, 8, 24, 26), (12, 4, 3, 3)),
              3: ((2, 8, 10, 11, 9), (12, 4, 3, 3, 3))}
    x_shape, w_shape = shapes[rank]
    case = make_case(f"det_r{rank}", rng, x_shape, w_shape, padding=1, groups=2)
    prev = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(2)
        y2a = case.call("weight", dtype, bwd_weights_algo)
        y2b = case.call("weight", dtype, bwd_weights_algo)
        fastconv.set_num_threads(1)
        y1 = case.call("weight", dtype, bwd_weights_algo)
    finally:
        fastconv.set_num_threads(prev)
    assert fastconv.get_num_threads() == prev
    assert y2a.tobytes() == y2b.tobytes(), "two calls with 2 threads differ"
    assert y1.tobytes() == y2a.tobytes(), "1 thread and 2 threads differ"
    problems, _ = compare_with_reference(y1, case.refs["weight"], dtype,
                                         tolerance_for(bwd_weights_algo, dtype,
                                                       "backward_weights"), case.describe())
    fail_if(problems)


# --------------------------------------------------------------------------- gradcheck
GRADCHECK_RTOL = 1e-7
GRADCHECK_STEP = 1e-3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_gradcheck_float64(rank, mode, isa):
    """Central differences of f = sum(conv(x, w) * g) (fastconv's own float64 forward) w.r.t. a
    handful of entries of x and w agree with conv_input / conv_weight to ~1e-7 relative, for
    every backward algorithm. Stride 2 leaves the last input rows uncovered (their gradient
    through zero padding is 0, through the other modes it is what the padding copied there)."""
    rng = np.random.default_rng([rank, MODES.index(mode)])
    L = {1: 12, 2: 6, 3: 4}[rank]  # L + 4 - 3 is odd: stride 2 leaves the last row out
    x = rng.standard_normal((2, 4) + (L,) * rank)
    w = rng.standard_normal((6, 2) + (3,) * rank)
    kw = dict(stride=2, padding=2, dilation=1, groups=2, padding_mode=mode)
    y = CONV[rank](x, w, algo="auto", **kw)
    g = rng.standard_normal(y.shape)

    def f(xv, wv):
        return float(np.sum(CONV[rank](xv, wv, algo="auto", **kw) * g))

    def fd(arr, idx, fn):
        a = arr.copy()
        a[idx] += GRADCHECK_STEP
        fp = fn(a)
        a[idx] -= 2 * GRADCHECK_STEP
        fm = fn(a)
        return (fp - fm) / (2 * GRADCHECK_STEP)

    x_idx = [tuple(int(rng.integers(0, n)) for n in x.shape) for _ in range(5)]
    x_idx.append(tuple(n - 1 for n in x.shape))  # the last input row (stride leaves it out)
    assert _uncovered_tail(Case("gc", x, w, g, kw)) == list(range(rank))
    w_idx = [tuple(int(rng.integers(0, n)) for n in w.shape) for _ in range(6)]
    fd_x = {i: fd(x, i, lambda a: f(a, w)) for i in x_idx}
    fd_w = {i: fd(w, i, lambda a: f(x, a)) for i in w_idx}
    problems = []
    for algo in BWD_DATA:
        gx = unless_declined(algo, lambda: INPUT_GRAD[rank](x.shape, w, g, algo=algo, **kw))
        if gx is None:
            continue
        scale = max(float(np.max(np.abs(gx))), 1e-300)
        for i, v in fd_x.items():
            if not abs(v - gx[i]) <= GRADCHECK_RTOL * max(abs(gx[i]), scale):
                problems.append(f"conv{rank}d_input algo={algo} mode={mode} d/dx{i}: "
                                f"analytic {gx[i]!r}, finite difference {v!r}")
    for algo in BWD_WEIGHTS:
        gw = unless_declined(algo, lambda: WEIGHT_GRAD[rank](x, w.shape, g, algo=algo, **kw))
        if gw is None:
            continue
        scale = max(float(np.max(np.abs(gw))), 1e-300)
        for i, v in fd_w.items():
            if not abs(v - gw[i]) <= GRADCHECK_RTOL * max(abs(gw[i]), scale):
                problems.append(f"conv{rank}d_weight algo={algo} mode={mode} d/dw{i}: "
                                f"analytic {gw[i]!r}, finite difference {v!r}")
    fail_if(problems)


# --------------------------------------------------------------------------- adjoint identity
ADJOINT_IDS = [(r, i) for r in (1, 2, 3) for i in range(0, N_RANDOM, 5)]
ADJOINT_RTOL = 1e-12


@pytest.mark.parametrize("rank,index", ADJOINT_IDS, ids=[f"r{r}-{i:03d}" for r, i in ADJOINT_IDS])
def test_adjoint_identity(rank, index):
    """<conv(x, w), g> = <x, conv_input(g)> = <w, conv_weight(x, g)> in float64 (fastconv on
    every side, every algorithm), relative to sum|conv(x, w) * g|; when a transform algorithm
    (spreads_non_finite) is on either side, relative to at least |x| |w| |g| (2-norms): its
    rounding error follows the tiles' norms, so outputs that are exactly zero by the definition
    (windows over padding only) come out as rounding-sized values."""
    case = random_case(rank, index)
    kw = case.kwargs
    x, w, g = case.x, case.w, case.gy
    problems = []
    for fwd in ALGOS_BY_DIRECTION["forward"]:
        y = unless_declined(fwd, lambda: CONV[rank](x, w, algo=fwd, **kw))
        if y is None:
            continue
        lhs = float(np.sum(y * g))
        terms = float(np.sum(np.abs(y * g)))
        norms = float(np.linalg.norm(x) * np.linalg.norm(w) * np.linalg.norm(g))
        for entry, algos in (("input", BWD_DATA), ("weight", BWD_WEIGHTS)):
            for algo in algos:
                if entry == "input":
                    grad = unless_declined(
                        algo, lambda: INPUT_GRAD[rank](x.shape, w, g, algo=algo, **kw))
                    other = x
                else:
                    grad = unless_declined(
                        algo, lambda: WEIGHT_GRAD[rank](x, w.shape, g, algo=algo, **kw))
                    other = w
                if grad is None:
                    continue
                rhs = float(np.sum(other * grad))
                mixing = spreads_non_finite(fwd) or spreads_non_finite(algo)
                scale = max(terms, norms) if mixing else terms
                if not abs(lhs - rhs) <= ADJOINT_RTOL * scale:
                    problems.append(f"forward algo={fwd}, {entry} algo={algo}: <conv(x,w),g> = "
                                    f"{lhs!r} but {entry} side = {rhs!r} (scale {scale:.3e}): "
                                    f"{case.describe()}")
    fail_if(problems)


# --------------------------------------------------------------------------- layouts, N = 0
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_non_contiguous_arguments(rank):
    """Sliced / transposed / negative-stride views give the same bits as contiguous copies."""
    rng = np.random.default_rng(40 + rank)
    case = make_case(f"views_r{rank}", rng, (2, 6) + (7,) * rank, (4, 3) + (3,) * rank,
                     padding=1, groups=2, stride=2, padding_mode="reflect")

    def view(a):  # same values, strided storage: reversed copy read backwards, Fortran order
        return np.asfortranarray(a[::-1].copy())[::-1]

    def sliced(a):  # same values, every other element of a twice-as-long last axis
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]

    for dtype in DTYPES:
        x, w, gy = (a.astype(dtype) for a in (case.x, case.w, case.gy))
        kw = case.kwargs
        for algo in BWD_DATA:
            a = unless_declined(algo, lambda: INPUT_GRAD[rank](x.shape, w, gy, algo=algo, **kw))
            if a is None:
                continue
            b = INPUT_GRAD[rank](x.shape, view(w), sliced(gy), algo=algo, **kw)
            assert not view(w).flags.c_contiguous and not sliced(gy).flags.c_contiguous
            assert a.tobytes() == b.tobytes() and b.flags.c_contiguous, algo
        for algo in BWD_WEIGHTS:
            a = unless_declined(algo, lambda: WEIGHT_GRAD[rank](x, w.shape, gy, algo=algo, **kw))
            if a is None:
                continue
            b = WEIGHT_GRAD[rank](view(x), w.shape, sliced(gy), algo=algo, **kw)
            c = WEIGHT_GRAD[rank](np.ascontiguousarray(x[:, :, ..., ::-1])[..., ::-1], w.shape,
                                  view(gy), algo=algo, **kw)
            assert a.tobytes() == b.tobytes() == c.tobytes(), algo
            assert b.flags.c_contiguous and c.flags.c_contiguous
        a = BIAS_GRAD[rank](gy)
        for b in (BIAS_GRAD[rank](view(gy)), BIAS_GRAD[rank](sliced(gy))):
            assert b.flags.c_contiguous and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_empty_batch_and_unbatched(rank, batched):
    """N = 0: input grad empty, weight and bias grads exactly zero; unbatched = batch of one."""
    rng = np.random.default_rng(50 + rank)
    for dtype in DTYPES:
        x = _data(rng, (0 if batched else 3, 4) + (5,) * rank).astype(dtype)
        if not batched:  # an unbatched (C, *sp) input agrees with the batched (1, C, *sp)
            x = x[0]
        w = _data(rng, (6, 2) + (3,) * rank).astype(dtype)
        kw = dict(padding=1, groups=2, padding_mode="circular")
        gy = _data(rng, conv_output_shape(x.shape, w.shape, padding=1)).astype(dtype)
        for algo in BWD_DATA + ["auto"]:
            gx = unless_declined(algo, lambda: INPUT_GRAD[rank](x.shape, w, gy, algo=algo, **kw))
            if gx is None:
                continue
            assert gx.shape == x.shape and gx.dtype == dtype
            if not batched:
                gxb = INPUT_GRAD[rank]((1,) + x.shape, w, gy[None], algo=algo, **kw)
                np.testing.assert_array_equal(gx, gxb[0])
        for algo in BWD_WEIGHTS + ["auto"]:
            gw = WEIGHT_GRAD[rank](x, w.shape, gy, algo=algo, **kw)
            assert gw.shape == w.shape and gw.dtype == dtype
            if batched:
                assert not gw.any()
            else:
                gwb = WEIGHT_GRAD[rank](x[None], w.shape, gy[None], algo=algo, **kw)
                np.testing.assert_array_equal(gw, gwb)
        gb = BIAS_GRAD[rank](gy)
        assert gb.shape == (6,) and gb.dtype == dtype
        if batched:
            assert not gb.any()



@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_depthwise_input_grad_as_forward(dtype, isa, record_error, threads_restored):
    """Depthwise layers whose padding is at most (kernel - 1) * dilation get their data
    gradient as depthwise forward convolutions of grad_output with reversed taps, one per stride
    phase (direct.cpp, depthwise_backward_data): both forward kernels (narrow planes
    channel-blocked, wide ones plane by plane), strides 2 and 3 (phases whose taps step by
    stride / gcd(dilation, stride), phases no tap reaches), padding forms and modes, 1-D / 3-D,
    unbatched; padding beyond the reach, along D, or a non-finite weight keep the row kernels.
    NaN / Inf in grad_output land where the reference puts them; 1 and 2 threads agree bit for
    bit."""
    rng = np.random.default_rng(41)
    nan, inf = float("nan"), float("inf")
    cases = [  # x shape, kernel, kwargs, specials in dy / w
        ((1, 37, 9, 11), (3, 3), dict(padding=1), ()),
        ((2, 20, 40, 36), (3, 3), dict(padding=1), ()),
        ((1, 18, 24, 30), (5, 5), dict(padding=2), ()),
        ((1, 17, 12, 13), (3, 3), dict(padding="same", dilation=2), ()),
        ((1, 16, 10, 12), (4, 4), dict(padding="same"), ()),
        ((2, 19, 8, 9), (3, 3), dict(padding=0), ()),
        ((1, 21, 8, 8), (3, 3), dict(padding=3), ()),  # beyond the reach: the row kernels
        ((1, 16, 9, 10), (3, 3), dict(padding=1, padding_mode="reflect"), ()),
        ((1, 22, 7, 7), (3, 3), dict(padding=1, padding_mode="circular"), ()),
        ((20, 9, 9), (3, 3), dict(padding=(1, 2)), ()),  # unbatched
        ((2, 24, 50), (7,), dict(padding=3), ()),
        ((1, 20, 3, 8, 9), (1, 3, 3), dict(padding=(0, 1, 1)), ()),
        ((1, 20, 3, 8, 9), (1, 3, 3), dict(padding=1), ()),  # along D: the row kernels
        ((2, 24, 56, 56), (3, 3), dict(padding=1, stride=2), ()),
        ((1, 40, 14, 14), (3, 3), dict(padding=1, stride=2), ()),
        ((1, 17, 13, 12), (5, 5), dict(padding=2, stride=(2, 3)), ()),
        ((1, 16, 12, 12), (3, 3), dict(padding=2, stride=2, dilation=2), ()),
        ((1, 16, 11, 11), (3, 3), dict(padding=(2, 4), stride=2, dilation=(2, 3)), ()),
        ((1, 9, 10, 11), (2, 2), dict(stride=3), ()),  # phases that no tap reaches
        ((1, 8, 9, 10), (4, 4), dict(padding="valid", stride=(1, 2)), ()),
        ((2, 12, 31), (5,), dict(padding=2, stride=3), ()),
        ((1, 8, 9, 9), (3, 3), dict(padding=3, stride=2), ()),  # beyond the reach
        ((1, 20, 8, 9), (3, 3), dict(padding=1, stride=2), (("dy", (0, 3, 1, 1), nan),)),
        ((1, 20, 8, 9), (3, 3), dict(padding=1), (("w", (5, 0, 1, 2), nan),)),
        ((1, 20, 8, 9), (3, 3), dict(padding=1, stride=2), (("w", (5, 0, 1, 2), nan),)),
        ((1, 20, 8, 9), (3, 3), dict(padding=1),
         (("dy", (0, 3, 0, 0), nan), ("dy", (0, 4, 7, 8), inf), ("dy", (0, 4, 2, 2), -inf))),
    ]
    problems = []
    for x_shape, kernel, kw, specials in cases:
        C = x_shape[-len(kernel) - 1]
        x = rng.uniform(-1, 1, x_shape).astype(np.float32).astype(np.float64)
        w = rng.uniform(-1, 1, (C, 1) + kernel).astype(np.float32).astype(np.float64)
        y = conv_reference(x, w, None, groups=C, **kw)
        dy = rng.uniform(-1, 1, y.shape).astype(np.float32).astype(np.float64)
        for which, index, value in specials:
            {"w": w, "dy": dy}[which][index] = value
        with np.errstate(invalid="ignore", over="ignore"):
            ref = conv_input_grad(x.shape, w, dy, groups=C, **kw)
        fn = {1: fgrad.conv1d_input, 2: fgrad.conv2d_input, 3: fgrad.conv3d_input}[len(kernel)]
        call = lambda: fn(x.shape, w.astype(dtype), dy.astype(dtype), groups=C,  # noqa: E731
                          algo="direct", **kw)
        threads_restored(1)
        g = call()
        threads_restored(2)
        if call().tobytes() != g.tobytes():
            problems.append(f"{x_shape} {kernel} {kw}: 1 and 2 threads differ")
        where = f"[isa={isa}, {np.dtype(dtype).name}] depthwise input grad {x_shape} {kernel} {kw}"
        problems += special_value_problems(g.astype(np.float64), ref, where, "input gradients")
        finite = np.isfinite(ref)
        err = normalized_error(g.astype(np.float64)[finite], ref[finite])
        record_error(dtype, "direct", err, isa, "depthwise_input_grad")
        if not err <= tolerance_for("direct", dtype):
            problems.append(f"{where}: normalised error {err:.3e}")
    fail_if(problems)
