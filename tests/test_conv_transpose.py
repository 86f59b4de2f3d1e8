"""Transposed convolution vs the float64 reference: fastconv.functional.conv_transpose{1,2,3}d and
its gradients fastconv.grad.conv_transpose{1,2,3}d_input / _weight, every applicable algorithm
x every ISA x float32/float64.

Which registry direction applies to which entry point (the transposed forward IS the data
gradient of a convolution):
    conv_transpose{n}d          fastconv.algorithms('backward_data')
    conv_transpose{n}d_input    fastconv.algorithms('forward')
    conv_transpose{n}d_weight   fastconv.algorithms('backward_weights')

Sources of problems: 200 seeded random configurations per spatial rank over every parameter
(stride, padding, output_padding both below the stride and — with stride 1 — below the
dilation only, groups incl. depthwise-like, dilation, bias or not, batched / unbatched / N = 0),
and the dcgan transposed-convolution layer of layers.json scaled down. Plus identities between
fastconv's own entry points in float64 (<= 1e-12): conv_transpose(g, w) = conv_input(input_shape,
w, g) with output_padding chosen to reproduce input_shape, conv_transpose_input(gy) =
conv(gy, w), conv_transpose_weight(x, gy) = conv_weight(gy, x); a float64 finite-difference
gradcheck; PyTorch's positional argument order (groups before dilation).

Checks and budgets as in test_conv_backward (DESIGN.md: 2e-6 float32, 1e-12 float64; the
reference is naive NumPy in float64, validated against torch, sharing no code with fastconv).
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from fastconv import grad as fgrad
from conv_configs import draw_grouping, int_or_tuple
from conftest import (ALGOS_BY_DIRECTION, ISAS, ConvCaseShape, compare_with_reference, fail_if,
                      load_layers, spreads_non_finite, tolerance_for, unless_declined)
from reference import (conv_output_shape, conv_transpose, conv_transpose_input_grad,
                       conv_transpose_output_shape, conv_transpose_weight_grad,
                       normalized_error)

RANKS = [1, 2, 3]
CONV = {r: getattr(F, f"conv{r}d") for r in RANKS}
TRANSPOSE = {r: getattr(F, f"conv_transpose{r}d") for r in RANKS}
TRANSPOSE_INPUT = {r: getattr(fgrad, f"conv_transpose{r}d_input") for r in RANKS}
TRANSPOSE_WEIGHT = {r: getattr(fgrad, f"conv_transpose{r}d_weight") for r in RANKS}
CONV_INPUT = {r: getattr(fgrad, f"conv{r}d_input") for r in RANKS}
CONV_WEIGHT = {r: getattr(fgrad, f"conv{r}d_weight") for r in RANKS}
DTYPES = [np.float32, np.float64]
DEFAULT_ISA = fastconv.get_isa()
# entry point -> the registry direction whose algorithms implement it
DIRECTION = {"transpose": "backward_data", "transpose_input": "forward",
             "transpose_weight": "backward_weights"}
ENTRIES = list(DIRECTION)


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case(ConvCaseShape):
    """conv_transpose(x, w, b) and an output gradient gy (float64, float32-representable)."""

    name: str
    x: np.ndarray  # (N, C_in, *sp) or (C_in, *sp)
    w: np.ndarray  # (C_in, C_out // groups, *kernel)
    b: object  # (C_out,) or None
    gy: np.ndarray  # the output's shape
    kwargs: dict = field(default_factory=dict)  # stride/padding/output_padding/groups/dilation
    rebuild: str = ""

    @functools.cached_property
    def refs(self):
        kw = self.kwargs
        return {
            "transpose": conv_transpose(self.x, self.w, self.b, **kw),
            "transpose_input": conv_transpose_input_grad(self.x.shape, self.w, self.gy, **kw),
            "transpose_weight": conv_transpose_weight_grad(self.x, self.w.shape, self.gy, **kw),
        }

    def call(self, entry, dtype, algo):
        r, kw = self.rank, self.kwargs
        if entry == "transpose":
            b = None if self.b is None else self.b.astype(dtype)
            return TRANSPOSE[r](self.x.astype(dtype), self.w.astype(dtype), b, algo=algo, **kw)
        if entry == "transpose_input":
            return TRANSPOSE_INPUT[r](tuple(self.x.shape), self.w.astype(dtype),
                                      self.gy.astype(dtype), algo=algo, **kw)
        assert entry == "transpose_weight"
        return TRANSPOSE_WEIGHT[r](self.x.astype(dtype), tuple(self.w.shape),
                                   self.gy.astype(dtype), algo=algo, **kw)

    def macs(self):
        n = self.x.shape[0] if self.batched else 1
        return n * int(np.prod(self.x.shape[-self.rank - 1:])) * int(np.prod(self.w.shape[1:]))

    def describe(self):
        b = None if self.b is None else self.b.shape
        return (f"{self.name}: conv_transpose{self.rank}d(x{self.x.shape}, w{self.w.shape}, "
                f"bias={b}, {', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())}), "
                f"grad_output{self.gy.shape}"
                + (f"  [rebuild: {self.rebuild}]" if self.rebuild else ""))


def _data(rng, shape):
    """Uniform(-1, 1) values rounded to float32 (so float32 and float64 runs see the same)."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)


def _shape_kwargs(kw):
    return {k: kw[k] for k in ("stride", "padding", "output_padding", "dilation", "groups")
            if k in kw}


def make_case(name, rng, x_shape, w_shape, bias=True, rebuild="", **kwargs):
    x = _data(rng, x_shape)
    w = _data(rng, w_shape)
    out = conv_transpose_output_shape(x_shape, w_shape, **_shape_kwargs(kwargs))
    b = _data(rng, (out[-len(w_shape) + 1],)) if bias else None
    return Case(name, x, w, b, _data(rng, out), kwargs, rebuild)


def run_check(case, entry, algo, dtype, isa, record_error, record_declined=None):
    """Run one entry point on `case`; a list of problems (empty when right)."""
    where = (f"[conv_{entry.replace('transpose', f'transpose{case.rank}d')}, algo={algo}, "
             f"isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}")
    try:
        y = case.call(entry, dtype, algo)
    except ValueError as e:
        if algo != "auto" and "does not support" in str(e) and record_declined:
            record_declined(algo)  # documented refusal of a named algorithm, not an error
            return []
        return [f"{where}: raised ValueError: {e}"]
    except Exception as e:  # noqa: BLE001 - report any exception with the config
        return [f"{where}: raised {type(e).__name__}: {e}"]
    tol = tolerance_for(algo, dtype, DIRECTION[entry])
    problems, err = compare_with_reference(y, case.refs[entry], dtype, tol, where)
    if err is not None:
        record_error(dtype, algo, err, isa, case.name, entry=entry)
    if (not problems and entry == "transpose_weight" and case.batched
            and case.x.shape[0] == 0 and np.any(y != 0)):
        problems.append(f"{where}: empty batch but non-zero weight gradient")
    return problems


# --------------------------------------------------------------------------- random configs
N_RANDOM = 200
RANDOM_MAC_BUDGET = 200_000




def _draw_random_case(rng, rank, name, rebuild):
    G, Cig, Cog = draw_grouping(rng)  # plain, grouped, or one input channel per group
    kmax = {1: 8, 2: 6, 3: 4}[rank]
    kernel = tuple(int(v) for v in rng.integers(1, kmax, size=rank))
    stride = tuple(int(v) for v in rng.choice([1, 2, 3], p=[0.35, 0.35, 0.3], size=rank))
    dilation = tuple(int(v) for v in rng.choice([1, 2, 3], p=[0.45, 0.3, 0.25], size=rank))
    # output_padding: 0, or anything below max(stride, dilation) (PyTorch's rule)
    op = tuple(0 if rng.random() < 0.4 else int(rng.integers(0, max(s, d)))
               for s, d in zip(stride, dilation))
    if rng.random() < 0.5:
        padding = int(rng.integers(0, 4))
    else:
        padding = tuple(int(v) for v in rng.integers(0, 4, size=rank))
    pads = (padding,) * rank if isinstance(padding, int) else padding
    extra = {1: 16, 2: 7, 3: 4}[rank]
    spatial = []
    for k, s, d, p, o in zip(kernel, stride, dilation, pads, op):
        L = 1  # smallest input whose output (L-1)*s - 2p + d*(k-1) + op + 1 is >= 1
        while (L - 1) * s - 2 * p + d * (k - 1) + o + 1 < 1:
            L += 1
        spatial.append(L + int(rng.integers(0, extra)))
    u = rng.random()
    batch = () if u < 0.2 else (0,) if u < 0.26 else (int(rng.integers(1, 4)),)
    kwargs = {}
    s = int_or_tuple(rng, stride)
    if s != 1 or rng.random() < 0.3:
        kwargs["stride"] = s
    if padding != 0 or rng.random() < 0.3:
        kwargs["padding"] = padding
    o = int_or_tuple(rng, op)
    if o != 0 or rng.random() < 0.3:
        kwargs["output_padding"] = o
    if G != 1 or rng.random() < 0.3:
        kwargs["groups"] = G
    d = int_or_tuple(rng, dilation)
    if d != 1 or rng.random() < 0.3:
        kwargs["dilation"] = d
    case = make_case(name, rng, batch + (G * Cig,) + tuple(spatial), (G * Cig, Cog) + kernel,
                     bias=bool(rng.random() < 0.5), rebuild=rebuild, **kwargs)
    if case.macs() > RANDOM_MAC_BUDGET:
        return None
    return case


@functools.lru_cache(maxsize=None)
def random_case(rank, index):
    """The seeded random configuration number `index` of spatial rank `rank` (deterministic)."""
    rng = np.random.default_rng([20240704, rank, index])
    for _ in range(1000):
        case = _draw_random_case(rng, rank, f"tr_r{rank}_{index:03d}",
                                 f"test_conv_transpose.random_case({rank}, {index})")
        if case is not None:
            return case
    raise RuntimeError("could not draw a configuration within the MAC budget")


RANDOM_IDS = [(r, i) for r in RANKS for i in range(N_RANDOM)]


@pytest.mark.parametrize("rank,index", RANDOM_IDS, ids=[f"r{r}-{i:03d}" for r, i in RANDOM_IDS])
def test_random(rank, index, record_error, record_declined):
    """One reference per entry point, then every entry x algorithm x ISA x dtype (+ 'auto')."""
    case = random_case(rank, index)
    case.refs  # noqa: B018
    problems = []
    prev = fastconv.get_isa()
    try:
        for isa_name in ISAS:
            fastconv.set_isa(isa_name)
            for dtype in DTYPES:
                for entry in ENTRIES:
                    algos = ALGOS_BY_DIRECTION[DIRECTION[entry]]
                    for algo in algos + (["auto"] if isa_name == DEFAULT_ISA else []):
                        problems += run_check(case, entry, algo, dtype, isa_name, record_error,
                                              record_declined)
    finally:
        fastconv.set_isa(prev)
    fail_if(problems)


def _per_dim(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def test_random_configs_cover_everything():
    """The random set really exercises every parameter (guards the generator itself)."""
    seen = {"stride": set(), "dilation": set(), "batch": set(), "bias": set(), "forms": set(),
            "op_below_stride": 0, "op_below_dilation_only": 0, "op_beyond_padding": 0,
            "grouped": 0, "one_channel_groups": 0, "multi_out": 0}
    for rank, index in RANDOM_IDS:
        c = random_case(rank, index)
        kw = c.kwargs
        st = _per_dim(kw.get("stride", 1), rank)
        dl = _per_dim(kw.get("dilation", 1), rank)
        op = _per_dim(kw.get("output_padding", 0), rank)
        pd = _per_dim(kw.get("padding", 0), rank)
        seen["stride"].update(st)
        seen["dilation"].update(dl)
        for key in ("stride", "padding", "output_padding", "dilation"):
            if key in kw:
                seen["forms"].add((key, type(kw[key]).__name__))
        for s, d, o, p in zip(st, dl, op, pd):
            seen["op_below_stride"] += 0 < o < s
            seen["op_below_dilation_only"] += s <= o < d
            seen["op_beyond_padding"] += o > p
        seen["batch"].add("unbatched" if not c.batched else
                          ("N0" if c.x.shape[0] == 0 else "batched"))
        seen["bias"].add(c.b is not None)
        G = kw.get("groups", 1)
        if G > 1:
            seen["grouped"] += 1
            seen["one_channel_groups"] += c.w.shape[0] == G
        seen["multi_out"] += c.w.shape[1] > 1
    assert seen["stride"] == {1, 2, 3} and seen["dilation"] == {1, 2, 3}
    assert seen["batch"] == {"unbatched", "N0", "batched"}
    assert seen["bias"] == {True, False}
    assert {(k, t) for k in ("stride", "padding", "output_padding", "dilation")
            for t in ("int", "tuple")} <= seen["forms"], seen["forms"]
    counts = [seen[k] for k in ("op_below_stride", "op_below_dilation_only",
                                "op_beyond_padding", "grouped", "one_channel_groups",
                                "multi_out")]
    assert min(counts) >= 10, seen


# --------------------------------------------------------------------------- layers.json
TCONV_LAYERS = {l["name"]: l for l in load_layers("conv_transpose")}


@functools.lru_cache(maxsize=None)
def layer_case(name):
    """The transposed-conv layer scaled down: channels / 16, spatial <= 8, batch <= 2; kernel,
    stride, padding and dilation kept."""
    layer = TCONV_LAYERS[name]
    rank = len(layer["input"])
    G = min(layer["groups"], 4)
    Cin = max(G, min(layer["C"] // 16, 16) // G * G)
    Cout = max(G, min(layer["K"] // 16, 16) // G * G)
    sp = tuple(min(L, {1: 32, 2: 8, 3: 4}[rank]) for L in layer["input"])
    rng = np.random.default_rng(sum(map(ord, name)))
    return make_case(name, rng, (min(layer["N"], 2), Cin) + sp,
                     (Cin, Cout // G) + tuple(layer["kernel"]),
                     rebuild=f"test_conv_transpose.layer_case({name!r})",
                     stride=tuple(layer["stride"]), padding=tuple(layer["padding"]),
                     dilation=tuple(layer["dilation"]), groups=G)


def test_transposed_layers_present():
    assert TCONV_LAYERS, "layers.json lists no conv_transpose layer"
    for name in TCONV_LAYERS:
        assert layer_case(name).macs() <= 1_000_000


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(TCONV_LAYERS))
def test_layer_transpose(name, dtype, bwd_data_algo, isa, record_error, record_declined):
    fail_if(run_check(layer_case(name), "transpose", bwd_data_algo, dtype, isa, record_error,
                      record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(TCONV_LAYERS))
def test_layer_transpose_input(name, dtype, fwd_algo, isa, record_error, record_declined):
    fail_if(run_check(layer_case(name), "transpose_input", fwd_algo, dtype, isa, record_error,
                      record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(TCONV_LAYERS))
def test_layer_transpose_weight(name, dtype, bwd_weights_algo, isa, record_error,
                                record_declined):
    fail_if(run_check(layer_case(name), "transpose_weight", bwd_weights_algo, dtype, isa,
                      record_error, record_declined))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(TCONV_LAYERS))
def test_layer_auto(name, dtype, record_error):
    problems = []
    for entry in ENTRIES:
        problems += run_check(layer_case(name), entry, "auto", dtype, fastconv.get_isa(),
                              record_error)
    fail_if(problems)


# --------------------------------------------------------------------------- identities
IDENTITY_IDS = [(r, i) for r in RANKS for i in range(25)]
IDENTITY_TOL = 1e-12


def terms(a, b):
    """max|a| x sum|b|: a bound on the size of any output's terms of a correlation of a and b."""
    return float(np.max(np.abs(a), initial=0.0) * np.sum(np.abs(b)))


def _identical(y, ref, algos, scale):
    """y equals ref within IDENTITY_TOL (normalized_error). A transform algorithm among `algos`
    (spreads_non_finite: its rounding follows the tiles' norms) is measured against at least
    `scale`, so that outputs exactly zero by the definition (windows over padding only) may
    carry rounding-sized values."""
    if y.shape != ref.shape:
        return False
    if any(spreads_non_finite(a) for a in algos):
        diff = float(np.max(np.abs(y - ref), initial=0.0))
        return diff <= IDENTITY_TOL * max(float(np.max(np.abs(ref), initial=0.0)), scale)
    return normalized_error(y, ref) <= IDENTITY_TOL


@functools.lru_cache(maxsize=None)
def conv_problem(rank, index):
    """A random zero-padded convolution (x_shape, w, g, kwargs, output_padding) in float64."""
    rng = np.random.default_rng([4242, rank, index])
    while True:
        G = int(rng.choice([1, 1, 2, 3]))
        Cg, Kg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        kernel = tuple(int(v) for v in rng.integers(1, {1: 7, 2: 5, 3: 4}[rank], size=rank))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=rank))
        dilation = tuple(int(v) for v in rng.integers(1, 3, size=rank))
        padding = tuple(int(v) for v in rng.integers(0, 3, size=rank))
        sp, op = [], []
        for k, s, d, p in zip(kernel, stride, dilation, padding):
            span = d * (k - 1) + 1
            L = max(1, span - 2 * p) + int(rng.integers(0, {1: 14, 2: 7, 3: 4}[rank]))
            sp.append(L)
            op.append((L + 2 * p - span) % s)  # the rows the strided windows leave out
        N = int(rng.integers(1, 3))
        x_shape = (N, G * Cg) + tuple(sp)
        w = rng.standard_normal((G * Kg, Cg) + kernel)
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=G)
        out = conv_output_shape(x_shape, w.shape, stride, padding, dilation)
        if N * int(np.prod(out[1:])) * int(np.prod(w.shape[1:])) <= RANDOM_MAC_BUDGET:
            return x_shape, w, rng.standard_normal(out), kw, tuple(op)


@pytest.mark.parametrize("rank,index", IDENTITY_IDS,
                         ids=[f"r{r}-{i:02d}" for r, i in IDENTITY_IDS])
def test_transpose_is_conv_input_grad(rank, index):
    """conv_transpose(g, w) == conv_input(input_shape, w, g) (same stride / padding / dilation /
    groups; output_padding = the rows the strided windows leave out), and the two transposed
    gradients are the forward convolution and the conv weight gradient with roles swapped:
    conv_transpose_input(x_shape, w, gy) == conv(gy, w);
    conv_transpose_weight(x, w_shape, gy) == conv_weight(gy, w_shape, x). float64, <= 1e-12."""
    x_shape, w, g, kw, op = conv_problem(rank, index)
    rng = np.random.default_rng([rank, index])
    problems = []
    conv_in = {a: r for a in ALGOS_BY_DIRECTION["backward_data"]
               if (r := unless_declined(a, lambda: CONV_INPUT[rank](x_shape, w, g, algo=a, **kw)))
               is not None}
    for a_t in ALGOS_BY_DIRECTION["backward_data"]:
        y = unless_declined(a_t, lambda: TRANSPOSE[rank](
            g, w, None, kw["stride"], kw["padding"], op, kw["groups"], kw["dilation"], algo=a_t))
        if y is None:
            continue
        for a_c, ref in conv_in.items():
            if not _identical(y, ref, (a_t, a_c), terms(g, w)):
                err = normalized_error(y, ref) if y.shape == ref.shape else "shape"
                problems.append(f"conv_transpose{rank}d[{a_t}] != conv{rank}d_input[{a_c}]: "
                                f"{err}; x{x_shape} w{w.shape} {kw} output_padding={op}")
    # the transposed problem of that convolution: input g (its output), output x_shape
    gx = rng.standard_normal(x_shape)
    x_t = g
    conv_fwd = {a: r for a in ALGOS_BY_DIRECTION["forward"]
                if (r := unless_declined(a, lambda: CONV[rank](gx, w, algo=a, **kw))) is not None}
    for a_t in ALGOS_BY_DIRECTION["forward"]:
        y = unless_declined(a_t, lambda: TRANSPOSE_INPUT[rank](
            x_t.shape, w, gx, output_padding=op, algo=a_t, **kw))
        if y is None:
            continue
        for a_c, ref in conv_fwd.items():
            if not _identical(y, ref, (a_t, a_c), terms(gx, w)):
                problems.append(f"conv_transpose{rank}d_input[{a_t}] != conv{rank}d[{a_c}]: "
                                f"x{x_shape} w{w.shape} {kw} output_padding={op}")
    conv_w = {a: r for a in ALGOS_BY_DIRECTION["backward_weights"]
              if (r := unless_declined(
                  a, lambda: CONV_WEIGHT[rank](gx, w.shape, x_t, algo=a, **kw)))
              is not None}
    for a_t in ALGOS_BY_DIRECTION["backward_weights"]:
        y = unless_declined(a_t, lambda: TRANSPOSE_WEIGHT[rank](
            x_t, w.shape, gx, output_padding=op, algo=a_t, **kw))
        if y is None:
            continue
        for a_c, ref in conv_w.items():
            if not _identical(y, ref, (a_t, a_c), terms(gx, x_t)):
                problems.append(f"conv_transpose{rank}d_weight[{a_t}] != "
                                f"conv{rank}d_weight[{a_c}]: x{x_shape} w{w.shape} {kw} "
                                f"output_padding={op}")
    fail_if(problems)


# --------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("rank", RANKS)
def test_gradcheck_float64(rank, isa):
    """Central differences of f = sum(conv_transpose(x, w) * g) (fastconv's float64 transposed
    forward) w.r.t. a few entries of x and w agree with the two gradients to ~1e-7 relative."""
    rng = np.random.default_rng(70 + rank)
    x = rng.standard_normal((2, 4) + (4,) * rank)
    w = rng.standard_normal((4, 3) + (3,) * rank)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=2)
    y = TRANSPOSE[rank](x, w, **kw)
    g = rng.standard_normal(y.shape)
    h = 1e-3

    def fd(arr, idx, fn):
        a = arr.copy()
        a[idx] += h
        fp = fn(a)
        a[idx] -= 2 * h
        return (fp - fn(a)) / (2 * h)

    def f(xv, wv):
        return float(np.sum(TRANSPOSE[rank](xv, wv, **kw) * g))

    x_idx = [tuple(int(rng.integers(0, n)) for n in x.shape) for _ in range(6)]
    w_idx = [tuple(int(rng.integers(0, n)) for n in w.shape) for _ in range(6)]
    problems = []
    for algo in ALGOS_BY_DIRECTION["forward"]:
        gx = unless_declined(algo, lambda: TRANSPOSE_INPUT[rank](x.shape, w, g, algo=algo, **kw))
        if gx is None:
            continue
        scale = float(np.max(np.abs(gx)))
        for i in x_idx:
            v = fd(x, i, lambda a: f(a, w))
            if not abs(v - gx[i]) <= 1e-7 * max(abs(gx[i]), scale):
                problems.append(f"d/dx{i} [{algo}]: analytic {gx[i]!r}, finite diff {v!r}")
    for algo in ALGOS_BY_DIRECTION["backward_weights"]:
        gw = unless_declined(algo, lambda: TRANSPOSE_WEIGHT[rank](x, w.shape, g, algo=algo, **kw))
        if gw is None:
            continue
        scale = float(np.max(np.abs(gw)))
        for i in w_idx:
            v = fd(w, i, lambda a: f(x, a))
            if not abs(v - gw[i]) <= 1e-7 * max(abs(gw[i]), scale):
                problems.append(f"d/dw{i} [{algo}]: analytic {gw[i]!r}, finite diff {v!r}")
    fail_if(problems)


# --------------------------------------------------------------------------- API details
@pytest.mark.parametrize("rank", RANKS)
def test_positional_argument_order(rank):
    """PyTorch's order: (input, weight, bias, stride, padding, output_padding, groups,
    dilation) - groups before dilation - for the transposed forward and both gradients."""
    rng = np.random.default_rng(80 + rank)
    x = _data(rng, (2, 4) + (5,) * rank)
    w = _data(rng, (4, 2) + (3,) * rank)
    b = _data(rng, (4,))
    stride, padding, output_padding, groups, dilation = 2, 1, 2, 2, 3
    args = (stride, padding, output_padding, groups, dilation)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
              dilation=dilation)
    ref = conv_transpose(x, w, b, **kw)
    y = TRANSPOSE[rank](x, w, b, *args)
    assert y.shape == ref.shape and normalized_error(y, ref) <= 1e-12
    g = _data(rng, ref.shape)
    gx = TRANSPOSE_INPUT[rank](x.shape, w, g, *args)
    assert normalized_error(gx, conv_transpose_input_grad(x.shape, w, g, **kw)) <= 1e-12
    gw = TRANSPOSE_WEIGHT[rank](x, w.shape, g, *args)
    assert normalized_error(gw, conv_transpose_weight_grad(x, w.shape, g, **kw)) <= 1e-12


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("rank", RANKS)
def test_empty_batch_and_unbatched(rank, batched):
    """N = 0: empty output / input grad, zero weight grad; unbatched = a batch of one."""
    rng = np.random.default_rng(90 + rank)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    for dtype in DTYPES:
        x = _data(rng, (0 if batched else 3, 4) + (3,) * rank).astype(dtype)
        if not batched:
            x = x[0]
        w = _data(rng, (4, 3) + (3,) * rank).astype(dtype)
        b = _data(rng, (6,)).astype(dtype)
        out = conv_transpose_output_shape(x.shape, w.shape, 2, 1, 1, 1, 2)
        gy = _data(rng, out).astype(dtype)
        for algo in ALGOS_BY_DIRECTION["backward_data"] + ["auto"]:
            y = unless_declined(algo, lambda: TRANSPOSE[rank](x, w, b, algo=algo, **kw))
            if y is None:
                continue
            assert y.shape == out and y.dtype == dtype and y.flags.c_contiguous
            if not batched:
                np.testing.assert_array_equal(y, TRANSPOSE[rank](x[None], w, b, algo=algo,
                                                                 **kw)[0])
        for algo in ALGOS_BY_DIRECTION["forward"] + ["auto"]:
            gx = unless_declined(
                algo, lambda: TRANSPOSE_INPUT[rank](x.shape, w, gy, algo=algo, **kw))
            if gx is None:
                continue
            assert gx.shape == x.shape and gx.dtype == dtype
            if not batched:
                np.testing.assert_array_equal(
                    gx, TRANSPOSE_INPUT[rank]((1,) + x.shape, w, gy[None], algo=algo, **kw)[0])
        for algo in ALGOS_BY_DIRECTION["backward_weights"] + ["auto"]:
            gw = unless_declined(
                algo, lambda: TRANSPOSE_WEIGHT[rank](x, w.shape, gy, algo=algo, **kw))
            if gw is None:
                continue
            assert gw.shape == w.shape and gw.dtype == dtype
            if batched:
                assert not gw.any()
            else:
                np.testing.assert_array_equal(
                    gw, TRANSPOSE_WEIGHT[rank](x[None], w.shape, gy[None], algo=algo, **kw))


@pytest.mark.parametrize("rank", RANKS)
def test_non_contiguous_arguments(rank):
    """Views (negative strides, Fortran order, slices) give the bits of contiguous copies."""
    rng = np.random.default_rng(100 + rank)
    case = make_case(f"views_r{rank}", rng, (2, 4) + (4,) * rank, (4, 3) + (3,) * rank,
                     stride=2, padding=1, output_padding=1, groups=2)

    def view(a):
        return np.asfortranarray(a[::-1].copy())[::-1]

    def sliced(a):
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]

    kw = case.kwargs
    for dtype in DTYPES:
        x, w, b, gy = (a.astype(dtype) for a in (case.x, case.w, case.b, case.gy))
        for algo in ALGOS_BY_DIRECTION["backward_data"]:
            a = unless_declined(algo, lambda: TRANSPOSE[rank](x, w, b, algo=algo, **kw))
            if a is None:
                continue
            c = TRANSPOSE[rank](view(x), sliced(w), b[::-1].copy()[::-1], algo=algo, **kw)
            assert c.flags.c_contiguous and a.tobytes() == c.tobytes(), algo
        for algo in ALGOS_BY_DIRECTION["forward"]:
            a = unless_declined(
                algo, lambda: TRANSPOSE_INPUT[rank](x.shape, w, gy, algo=algo, **kw))
            if a is None:
                continue
            c = TRANSPOSE_INPUT[rank](x.shape, view(w), sliced(gy), algo=algo, **kw)
            assert c.flags.c_contiguous and a.tobytes() == c.tobytes(), algo
        for algo in ALGOS_BY_DIRECTION["backward_weights"]:
            a = unless_declined(
                algo, lambda: TRANSPOSE_WEIGHT[rank](x, w.shape, gy, algo=algo, **kw))
            if a is None:
                continue
            c = TRANSPOSE_WEIGHT[rank](sliced(x), w.shape, view(gy), algo=algo, **kw)
            assert c.flags.c_contiguous and a.tobytes() == c.tobytes(), algo
