"""Pooling forward vs the float64 reference: max / avg / adaptive avg / adaptive max pooling,
1-D/2-D/3-D, every ISA x float32/float64.

Sources of problems:
(a) 200 seeded random configurations per function and spatial rank: kernel, stride (an int, a
    tuple, None, omitted or ()), padding up to its limit (max: half the dilated kernel; avg: half
    the kernel), dilation (max), ceil_mode with the edge where the last window would start in the
    right padding and with windows larger than the padded input (only ceil_mode gives them an
    output), count_include_pad, divisor_override, batched / unbatched / N = 0; adaptive
    output sizes as int or tuple with None entries, smaller or larger than the input. Data:
    uniform, integer-valued (ties), with NaN / +-inf (max), with many -inf (max).
(b) explicit cases: ties, NaN in windows (value NaN, index of the LAST NaN), -inf windows,
    windows lying entirely in the padding (possible with dilation: PyTorch gives -inf), NaN in
    average windows, global average pooling of a large plane, adaptive output size 0, unbatched
    == batched, the pooling layers of layers.json scaled down, and the ResNet stem max pooling
    3x3/2 pad 1 at full size (1x64x112x112) once; determinism (repeated calls, 1 vs 2 threads).

Checks: ndarray of the input dtype (indices int64), the reference shape, C-contiguous, input
untouched. Max pooling values and indices must be EXACT (np.array_equal, equal_nan=True), both
with and without return_indices; average pooling within the budget of DESIGN.md (normalised
error max|y-ref| / max|ref| <= 1e-6 in float32, <= 1e-12 in float64). Inputs are
float32-representable, so one reference (computed once per configuration) serves both dtypes.
Failures print the configuration and the expression that rebuilds it.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import ISAS, exact_error, fail_if, load_layers, pool_tolerance
from reference import (
    adaptive_avg_pool_reference,
    adaptive_max_pool_reference,
    avg_pool_reference,
    max_pool_empty_windows,
    max_pool_reference,
    normalized_error,
    pool_output_size,
)

KINDS = ("max", "avg", "adaptive_avg", "adaptive_max")
MAX_KINDS = ("max", "adaptive_max")
RANKS = (1, 2, 3)
DTYPES = [np.float32, np.float64]
DEFAULT_ISA = fastconv.get_isa()
ENTRY = {k: f"{k}_pool" for k in KINDS}  # summary entry points (conftest.POOL_ENTRY_POINTS)
dtype_ids = lambda d: np.dtype(d).name  # noqa: E731


def pool_fn(kind, rank):
    return getattr(F, f"{kind}_pool{rank}d")


def reference(kind, x, rank, kwargs):
    """(y,) or (y, indices) of the float64 reference for fastconv's keyword arguments."""
    if kind == "max":
        return max_pool_reference(x, rank, **kwargs)
    if kind == "avg":
        return (avg_pool_reference(x, rank, **kwargs),)
    if kind == "adaptive_avg":
        return (adaptive_avg_pool_reference(x, rank, **kwargs),)
    return adaptive_max_pool_reference(x, rank, **kwargs)


# --------------------------------------------------------------------------- one configuration
@dataclass
class Case:
    """One pooling problem; x is float64 holding float32-representable values (or NaN/inf)."""

    name: str
    kind: str
    rank: int
    x: np.ndarray
    kwargs: dict = field(default_factory=dict)  # fastconv's keyword arguments
    rebuild: str = ""  # python expression that recreates this case

    @functools.cached_property
    def ref(self):
        return reference(self.kind, self.x, self.rank, self.kwargs)

    def describe(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return (f"{self.name}: {self.kind}_pool{self.rank}d(x{self.x.shape}, {args})"
                + (f"  [rebuild: {self.rebuild}]" if self.rebuild else ""))


def _check_array(a, dtype, shape, what, where):
    if not isinstance(a, np.ndarray):
        return [f"{where}: {what} is {type(a).__name__}, not ndarray"]
    problems = []
    if a.dtype != np.dtype(dtype):
        problems.append(f"{where}: {what} dtype {a.dtype}, expected {np.dtype(dtype)}")
    if a.shape != shape:
        return problems + [f"{where}: {what} shape {a.shape}, expected {shape}"]
    if not a.flags.c_contiguous:
        problems.append(f"{where}: {what} not C-contiguous (strides {a.strides})")
    return problems


def _first_diff(a, b):
    """Description of the first position where a and b differ (NaN == NaN)."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = ~((a64 == b64) | (np.isnan(a64) & np.isnan(b64)))
    pos = tuple(int(i) for i in np.argwhere(diff)[0])
    return f"{int(diff.sum())} differ, first at {pos}: got {a[pos]!r}, expected {b[pos]!r}"


def run_check(case, dtype, isa, record_error, outputs=None):
    """Run fastconv on `case` with dtype and return a list of problems (empty when right).

    Max kinds run with and without return_indices. If `outputs` is a dict, the results are
    stored there under (dtype name, return_indices).
    """
    x = case.x.astype(dtype)
    x_before = x.copy()
    where = f"[isa={isa}, dtype={np.dtype(dtype).name}] {case.describe()}"
    fn = pool_fn(case.kind, case.rank)
    ref = case.ref
    problems = []
    variants = [False, True] if case.kind in MAX_KINDS else [None]
    for with_idx in variants:
        kw = dict(case.kwargs)
        if with_idx is not None:
            kw["return_indices"] = with_idx
        w = where if with_idx is None else f"{where} return_indices={with_idx}"
        try:
            res = fn(x, **kw)
        except Exception as e:  # noqa: BLE001 - report any exception with the config
            problems.append(f"{w}: raised {type(e).__name__}: {e}")
            continue
        if with_idx:
            if not (isinstance(res, tuple) and len(res) == 2):
                problems.append(f"{w}: expected a (y, indices) tuple, got {type(res).__name__}")
                continue
            y, idx = res
        else:
            y, idx = res, None
        if outputs is not None:
            outputs[(np.dtype(dtype).name, bool(with_idx))] = res
        p = _check_array(y, dtype, ref[0].shape, "output", w)
        if p:
            problems += p
            continue
        if case.kind in MAX_KINDS:
            err = exact_error(y, ref[0])
            record_error(dtype, f"{case.rank}d", err, isa, case.name, entry=ENTRY[case.kind])
            if not np.array_equal(y.astype(np.float64), ref[0], equal_nan=True):
                problems.append(f"{w}: values not exact: {_first_diff(y, ref[0])}")
            if idx is not None:
                p = _check_array(idx, np.int64, ref[1].shape, "indices", w)
                if p:
                    problems += p
                elif not np.array_equal(idx, ref[1]):
                    problems.append(f"{w}: indices differ: {_first_diff(idx, ref[1])}")
        else:
            if np.isnan(y).any() and not np.isnan(ref[0]).any():
                problems.append(f"{w}: NaN in output at {np.argwhere(np.isnan(y))[:5].tolist()}")
                continue
            err = normalized_error(y, ref[0])
            record_error(dtype, f"{case.rank}d", err, isa, case.name, entry=ENTRY[case.kind])
            tol = pool_tolerance(dtype)
            if not err <= tol:
                idx_ = np.unravel_index(np.argmax(np.abs(y.astype(np.float64) - ref[0])),
                                        ref[0].shape)
                problems.append(f"{w}: normalised error {err:.3e} > {tol:.1e} (worst at "
                                f"{tuple(int(i) for i in idx_)}: got {y[idx_]!r}, "
                                f"ref {ref[0][idx_]!r})")
    if not np.array_equal(x, x_before, equal_nan=True):
        problems.append(f"{where}: the input was modified")
    return problems


def check_all(case, record_error, isas=None, dtypes=DTYPES):
    """run_check on every ISA x dtype; restores the ISA."""
    problems = []
    prev = fastconv.get_isa()
    try:
        for isa_name in ISAS if isas is None else isas:
            fastconv.set_isa(isa_name)
            for dtype in dtypes:
                problems += run_check(case, dtype, isa_name, record_error)
    finally:
        fastconv.set_isa(prev)
    return problems


# --------------------------------------------------------------------------- data
def data(rng, shape, kind="uniform"):
    """float32-representable float64 data.

    uniform: U(-1, 1); ints: integers in [-3, 3] (many ties); nan: uniform with ~15% NaN and a
    few +-inf; neginf: uniform with ~40% -inf (whole windows of -inf happen).
    """
    if kind == "ints":
        return rng.integers(-3, 4, size=shape).astype(np.float64)
    x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32).astype(np.float64)
    if kind == "nan":
        x[rng.random(shape) < 0.15] = np.nan
        x[rng.random(shape) < 0.03] = np.inf
        x[rng.random(shape) < 0.03] = -np.inf
    elif kind == "neginf":
        x[rng.random(shape) < 0.4] = -np.inf
    else:
        assert kind == "uniform", kind
    return x


# --------------------------------------------------------------------------- (a) random configs
N_RANDOM = 200
KMAX = {1: 7, 2: 5, 3: 3}
EXTRA = {1: 20, 2: 8, 3: 4}
ADAPTIVE_LMAX = {1: 30, 2: 12, 3: 6}
X_SIZE_BUDGET = 6000  # input elements
WORK_BUDGET = 150_000  # planes x outputs x window taps (reference cost)


def _int_or_tuple(rng, vals):
    """Pass a tuple, or (when all entries agree, half of the time) a plain int."""
    vals = tuple(int(v) for v in vals)
    if len(set(vals)) == 1 and rng.random() < 0.5:
        return vals[0]
    return vals


def ceil_drops_last_window(L, k, s, p, d=1):
    """ceil_mode adds a window that would start in the right padding (PyTorch drops it)."""
    num = L + 2 * p - d * (k - 1) - 1
    return num >= 0 and (-(-num // s)) * s >= L + p


def _lead(rng):
    u = rng.random()
    C = int(rng.choice([1, 2, 3, 4, 5, 8, 17], p=[0.2, 0.2, 0.2, 0.15, 0.1, 0.1, 0.05]))
    if u < 0.2:
        return (C,)  # unbatched
    if u < 0.26:
        return (0, C)  # empty batch
    return (int(rng.integers(1, 4)), C)


def _draw_fixed(rng, kind, rank):
    """max / avg: kernel, stride, padding, dilation (max), ceil_mode, count_include_pad ..."""
    kernel = tuple(int(v) for v in rng.integers(1, KMAX[rank] + 1, size=rank))
    if kind == "max":
        dilation = tuple(int(v) for v in rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15], size=rank))
    else:
        dilation = (1,) * rank
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    limits = tuple(e // 2 for e in eff) if kind == "max" else tuple(k // 2 for k in kernel)
    if rng.random() < 0.35:
        padding = limits  # at the limit
    else:
        padding = tuple(int(rng.integers(0, lim + 1)) for lim in limits)
    stride_kind = rng.choice(["none", "omit", "empty", "int"], p=[0.1, 0.1, 0.05, 0.75])
    if stride_kind == "int":
        stride = tuple(int(v) for v in rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25], size=rank))
    else:
        stride = kernel
    ceil_mode = bool(rng.random() < 0.5)
    spatial = []
    for k, d, e, s, p in zip(kernel, dilation, eff, stride, padding):
        lo = max(1, e - 2 * p)
        L = lo + int(rng.integers(0, EXTRA[rank]))
        u = rng.random()
        if ceil_mode and u < 0.5:  # aim at the last-window-in-right-padding edge
            edges = [v for v in range(lo, lo + EXTRA[rank] + 3 * s)
                     if ceil_drops_last_window(v, k, s, p, d)]
            if edges:
                L = int(rng.choice(edges))
        elif ceil_mode and u < 0.6:  # window larger than the padded input: only ceil_mode
            small = [v for v in range(1, lo) if pool_output_size(v, k, s, p, d, True) >= 1]
            if small:
                L = int(rng.choice(small))
        spatial.append(L)
    kwargs = {"kernel_size": _int_or_tuple(rng, kernel)}
    if stride_kind == "int":
        kwargs["stride"] = _int_or_tuple(rng, stride)
    elif stride_kind == "none":
        kwargs["stride"] = None
    elif stride_kind == "empty":
        kwargs["stride"] = ()
    if any(padding) or rng.random() < 0.3:
        kwargs["padding"] = _int_or_tuple(rng, padding)
    if kind == "max" and (any(d > 1 for d in dilation) or rng.random() < 0.3):
        kwargs["dilation"] = _int_or_tuple(rng, dilation)
    if ceil_mode or rng.random() < 0.3:
        kwargs["ceil_mode"] = ceil_mode
    if kind == "avg":
        cip = bool(rng.random() < 0.5)
        if not cip or rng.random() < 0.3:
            kwargs["count_include_pad"] = cip
        if rng.random() < 0.3:
            kwargs["divisor_override"] = int(rng.choice([1, 2, 3, 5, 7, 9, -2]))
    taps = int(np.prod(kernel))
    outs = [pool_output_size(L, k, s, p, d, ceil_mode)
            for L, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)]
    return tuple(spatial), kwargs, taps, outs


def _draw_adaptive(rng, rank):
    spatial = tuple(int(v) for v in rng.integers(1, ADAPTIVE_LMAX[rank] + 1, size=rank))
    outs = []
    for L in spatial:
        u = rng.random()
        if u < 0.15:
            outs.append(None)  # keep the input size
        elif u < 0.35:
            outs.append(int(rng.integers(L, 2 * L + 2)))  # larger than (or equal to) the input
        else:
            outs.append(int(rng.integers(1, L + 1)))
    if all(o is not None for o in outs) and len(set(outs)) == 1 and rng.random() < 0.5:
        output_size = outs[0]
    else:
        output_size = tuple(outs)
    real = [L if o is None else o for L, o in zip(spatial, outs)]
    taps = int(np.prod([-(-L // O) + 1 for L, O in zip(spatial, real)]))
    return spatial, {"output_size": output_size}, taps, real


def _draw_random_case(rng, kind, rank, name, rebuild):
    lead = _lead(rng)
    if kind in ("max", "avg"):
        spatial, kwargs, taps, outs = _draw_fixed(rng, kind, rank)
    else:
        spatial, kwargs, taps, outs = _draw_adaptive(rng, rank)
    shape = lead + spatial
    planes = int(np.prod(lead))
    if np.prod(shape) > X_SIZE_BUDGET or planes * int(np.prod(outs)) * taps > WORK_BUDGET:
        return None
    if kind == "max":
        k = {kk: kwargs[kk] for kk in ("kernel_size", "stride", "padding", "dilation",
                                       "ceil_mode") if kk in kwargs}
        if max_pool_empty_windows(shape, rank, **k).any():
            return None  # windows entirely in the padding: see test_max_empty_windows
    if kind in MAX_KINDS:
        dkind = str(rng.choice(["uniform", "ints", "nan", "neginf"], p=[0.5, 0.3, 0.12, 0.08]))
    else:
        dkind = str(rng.choice(["uniform", "ints"], p=[0.65, 0.35]))
    return Case(name, kind, rank, data(rng, shape, dkind), kwargs, rebuild)


@functools.lru_cache(maxsize=None)
def random_case(kind, rank, index, salt=0):
    """The seeded random configuration number `index` (deterministic); salt: another stream
    (the gradient tests draw their own configurations with salt=1)."""
    rng = np.random.default_rng([20240704, KINDS.index(kind), rank, index, salt])
    module = "test_pool" if salt == 0 else "test_pool_grad"
    for _ in range(1000):
        case = _draw_random_case(rng, kind, rank, f"random_{kind}_r{rank}_{index:03d}",
                                 f"{module}.random_case({kind!r}, {rank}, {index}, salt={salt})")
        if case is not None:
            return case
    raise RuntimeError("could not draw a configuration within the budget")


RANDOM_IDS = [(k, r, i) for k in KINDS for r in RANKS for i in range(N_RANDOM)]


# The random sweep runs single-threaded, except that every RANDOM_THREADED_EVERY-th
# configuration runs its default-ISA float32 check with the default thread count: the problems
# are tiny, and on a busy 2-core machine every 2-thread call can cost a scheduler slice (~8 ms)
# in the OpenMP barrier. The threaded paths are also covered by the explicit, layer and
# large-plane cases and the determinism tests (which run at the default thread count).
RANDOM_THREADED_EVERY = 8


def check_sweep(case, index, record_error, run=None):
    """run(case, dtype, isa, record_error) on every ISA x dtype, single-threaded except the
    default-ISA float32 run of every RANDOM_THREADED_EVERY-th index; restores ISA and threads."""
    run = run_check if run is None else run
    problems = []
    prev_isa, prev_threads = fastconv.get_isa(), fastconv.get_num_threads()
    try:
        for isa_name in ISAS:
            fastconv.set_isa(isa_name)
            for dtype in DTYPES:
                threaded = (index % RANDOM_THREADED_EVERY == 0 and isa_name == DEFAULT_ISA
                            and np.dtype(dtype) == np.float32)
                fastconv.set_num_threads(prev_threads if threaded else 1)
                problems += run(case, dtype, isa_name, record_error)
    finally:
        fastconv.set_isa(prev_isa)
        fastconv.set_num_threads(prev_threads)
    return problems


@pytest.mark.parametrize("kind,rank,index", RANDOM_IDS,
                         ids=[f"{k}-r{r}-{i:03d}" for k, r, i in RANDOM_IDS])
def test_random(kind, rank, index, record_error):
    """One reference, then every ISA x dtype, with and without indices."""
    case = random_case(kind, rank, index)
    case.ref  # noqa: B018 - computed once
    fail_if(check_sweep(case, index, record_error))


def _fixed_params(case):
    """Per-dim (L, k, s, p, d, ceil) of a max/avg case."""
    kw, r = case.kwargs, case.rank

    def per_dim(v, default):
        if v is None or (isinstance(v, tuple) and len(v) == 0):
            v = default
        return (v,) * r if isinstance(v, int) else tuple(v)

    k = per_dim(kw["kernel_size"], None)
    s = per_dim(kw.get("stride"), k)
    p = per_dim(kw.get("padding", 0), None)
    d = per_dim(kw.get("dilation", 1), None)
    return list(zip(case.x.shape[-r:], k, s, p, d)), bool(kw.get("ceil_mode", False))


def test_random_configs_cover_everything():
    """The random set really exercises every parameter (guards the generator itself)."""
    seen = {k: set() for k in ("batch", "stride", "data", "cip")}
    count = dict.fromkeys(["ceil_drop", "ceil_extends", "ceil_rescues", "pad_limit",
                           "dilation", "divisor", "neg_divisor", "none_entry", "int_output",
                           "larger_out", "stride_gt_kernel"], 0)
    for kind, rank, index in RANDOM_IDS:
        c = random_case(kind, rank, index)
        kw = c.kwargs
        seen["batch"].add("unbatched" if c.x.ndim == rank + 1 else
                          ("N0" if c.x.shape[0] == 0 else "batched"))
        x = c.x[np.isfinite(c.x)]
        seen["data"].add("nan" if np.isnan(c.x).any() else "-inf" if np.isneginf(c.x).any()
                         else "ints" if np.all(x == np.round(x)) else "uniform")
        if kind in ("max", "avg"):
            s = kw.get("stride", "omit")
            seen["stride"].add("omit" if s == "omit" else "None" if s is None else
                               "()" if s == () else type(s).__name__)
            dims, ceil = _fixed_params(c)
            for L, k, s_, p, d in dims:
                if ceil and ceil_drops_last_window(L, k, s_, p, d):
                    count["ceil_drop"] += 1
                if ceil and pool_output_size(L, k, s_, p, d, True) > pool_output_size(
                        L, k, s_, p, d, False):
                    count["ceil_extends"] += 1
                if ceil and pool_output_size(L, k, s_, p, d, False) < 1:
                    count["ceil_rescues"] += 1  # floor mode would have no output at all
                lim = (d * (k - 1) + 1) // 2 if kind == "max" else k // 2
                count["pad_limit"] += p == lim and p > 0
                count["dilation"] += d > 1
                count["stride_gt_kernel"] += s_ > k
            if kind == "avg":
                seen["cip"].add(kw.get("count_include_pad", True))
                dv = kw.get("divisor_override")
                count["divisor"] += dv is not None
                count["neg_divisor"] += dv is not None and dv < 0
        else:
            o = kw["output_size"]
            count["int_output"] += isinstance(o, int)
            o = (o,) * rank if isinstance(o, int) else o
            count["none_entry"] += any(v is None for v in o)
            count["larger_out"] += any(v is not None and v > L
                                       for v, L in zip(o, c.x.shape[-rank:]))
    assert seen["batch"] == {"unbatched", "N0", "batched"}
    assert seen["stride"] == {"omit", "None", "()", "int", "tuple"}, seen["stride"]
    assert seen["data"] == {"nan", "-inf", "ints", "uniform"}
    assert seen["cip"] == {True, False}
    assert min(count.values()) >= 10, count


# --------------------------------------------------------------------------- (b) explicit cases
def _case(name, kind, rank, x, **kwargs):
    return Case(name, kind, rank, np.asarray(x, dtype=np.float64), kwargs,
                f"test_pool (explicit case {name!r})")


def _ties_cases():
    rng = np.random.default_rng(11)
    cases = []
    for rank in RANKS:
        sp = {1: (13,), 2: (7, 8), 3: (4, 5, 5)}[rank]
        for dk in ("ints", "const"):
            x = data(rng, (2, 3) + sp, "ints") if dk == "ints" else np.full((2, 3) + sp, 2.0)
            if dk == "ints":
                x = np.clip(x, -1, 1)  # three values only: ties in nearly every window
            cases += [
                _case(f"ties_{dk}_max_r{rank}", "max", rank, x, kernel_size=3, stride=1,
                      padding=1),
                _case(f"ties_{dk}_max_dil_r{rank}", "max", rank, x, kernel_size=2, stride=1,
                      dilation=2, padding=1, ceil_mode=True),
                _case(f"ties_{dk}_max_s2_r{rank}", "max", rank, x, kernel_size=3, stride=2,
                      ceil_mode=True),
                _case(f"ties_{dk}_amax_r{rank}", "adaptive_max", rank, x,
                      output_size=tuple(max(1, L // 2) for L in sp)),
                _case(f"ties_{dk}_amax_up_r{rank}", "adaptive_max", rank, x,
                      output_size=tuple(L + 3 for L in sp)),
            ]
    return cases


def _nan_cases():
    """NaN at the first / middle / last tap, several NaNs, NaN next to +inf, all-NaN planes."""
    cases = []
    for rank in RANKS:
        sp = {1: (12,), 2: (6, 7), 3: (4, 4, 5)}[rank]
        n = int(np.prod(sp))
        base = np.arange(n, dtype=np.float64).reshape(sp) % 7 - 3
        variants = {}
        x = base.copy().reshape(-1)
        x[[0, 5, 6, n - 1]] = np.nan
        variants["scattered"] = x
        x = base.copy().reshape(-1)
        x[1::3] = np.nan  # several NaNs in most windows: the LAST one is the index
        variants["many"] = x
        x = base.copy().reshape(-1)
        x[::4] = np.inf
        x[2::4] = np.nan
        variants["inf_nan"] = x
        variants["all_nan"] = np.full(n, np.nan)
        for vname, v in variants.items():
            x = np.stack([v.reshape(sp), base, -v.reshape(sp)])[None]  # (1, 3, *sp)
            cases += [
                _case(f"nan_{vname}_max_r{rank}", "max", rank, x, kernel_size=3, stride=2,
                      padding=1, ceil_mode=True),
                _case(f"nan_{vname}_max_overlap_r{rank}", "max", rank, x, kernel_size=3,
                      stride=1),
                _case(f"nan_{vname}_max_dil_r{rank}", "max", rank, x, kernel_size=2,
                      dilation=2, stride=1, padding=1),
                _case(f"nan_{vname}_amax_r{rank}", "adaptive_max", rank, x,
                      output_size=tuple((L + 1) // 2 for L in sp)),
                _case(f"nan_{vname}_amax_up_r{rank}", "adaptive_max", rank, x,
                      output_size=tuple(2 * L - 1 for L in sp)),
            ]
    return cases


def _neginf_cases():
    """Windows of -inf only: value -inf, index = the first tap inside the input."""
    cases = []
    for rank in RANKS:
        sp = {1: (10,), 2: (6, 6), 3: (4, 4, 4)}[rank]
        x = np.full((2, 2) + sp, -np.inf)
        x[1, 1, (0,) * (rank - 1)] = 1.0  # one finite row in one plane
        x2 = np.where(np.arange(int(np.prod(sp))).reshape(sp) % 3 == 0, -np.inf, np.nan)
        x2 = np.broadcast_to(x2, x.shape).copy()
        for vname, v in (("all", x), ("with_nan", x2)):
            cases += [
                _case(f"neginf_{vname}_max_r{rank}", "max", rank, v, kernel_size=3, stride=2,
                      padding=1, ceil_mode=True),
                _case(f"neginf_{vname}_max_dil_r{rank}", "max", rank, v, kernel_size=3,
                      dilation=2, stride=1, padding=2),
                _case(f"neginf_{vname}_amax_r{rank}", "adaptive_max", rank, v, output_size=3),
            ]
    return cases


EXPLICIT = {"ties": _ties_cases, "nan": _nan_cases, "neginf": _neginf_cases}


@functools.lru_cache(maxsize=None)
def explicit_cases(name):
    return EXPLICIT[name]()


@pytest.mark.parametrize("name", list(EXPLICIT))
def test_explicit_max(name, record_error):
    """Every ISA x dtype (threaded: the default ISA in float32, as in the random sweep)."""
    problems = []
    for case in explicit_cases(name):
        problems += check_sweep(case, 0, record_error)
    fail_if(problems)


@pytest.mark.parametrize("rank", RANKS)
def test_nan_rule_by_hand(rank, threads_restored):
    """The index rule on hand-made windows, without the reference: first maximum on ties, the
    LAST NaN of the window when there is one (PyTorch: `val > max or isnan(val)` takes)."""
    #        window (one window = the whole plane, kernel = the plane) -> expected flat index
    threads_restored(1)  # one-window problems
    rows = [([1.0, 3.0, 3.0, 2.0], 1), ([np.nan, 3.0, 3.0, 2.0], 0), ([1.0, np.nan, 5.0, 2.0], 1),
            ([np.nan, 1.0, np.nan, 2.0], 2), ([1.0, 2.0, np.inf, np.nan], 3),
            ([-np.inf, -np.inf, -np.inf, -np.inf], 0), ([-np.inf, np.nan, -np.inf, np.nan], 3),
            ([0.0, -0.0, 0.0, -0.0], 0), ([-0.0, 0.0, -0.0, 0.0], 0)]
    for values, expected in rows:
        plane = np.array(values).reshape((1,) * (rank - 1) + (4,))
        x = plane[None].astype(np.float32)  # (C=1, *sp) unbatched
        for isa_name in ISAS:
            prev = fastconv.set_isa(isa_name)
            try:
                for dtype in DTYPES:
                    for kind, kw in (("max", {"kernel_size": plane.shape}),
                                     ("adaptive_max", {"output_size": 1})):
                        y, idx = pool_fn(kind, rank)(x.astype(dtype), return_indices=True, **kw)
                        y2 = pool_fn(kind, rank)(x.astype(dtype), **kw)
                        where = f"{kind}{rank}d {values} isa={isa_name} {np.dtype(dtype).name}"
                        assert int(idx.reshape(-1)[0]) == expected, where
                        want = np.asarray(values)[expected]
                        for got in (y.reshape(-1)[0], y2.reshape(-1)[0]):
                            assert (np.isnan(got) and np.isnan(want)) or got == want, where
            finally:
                fastconv.set_isa(prev)


def _empty_window_cases():
    """Dilated max pooling whose window has no tap inside the input (allowed by the padding
    rule, e.g. L=1, kernel 2, dilation 2, padding 1: taps at -1 and 1)."""
    rng = np.random.default_rng(5)
    cases = []
    for rank in RANKS:
        # (input size, kernel, stride, padding, dilation, ceil_mode) per dim; the first dim
        # produces the empty windows, the others are ordinary
        first = [(1, 2, 1, 1, 2, False), (2, 2, 1, 1, 3, False), (2, 2, 1, 2, 4, True),
                 (3, 2, 1, 2, 4, False)]  # the last: only the middle window is empty
        for j, (L, k, s, p, d, ceil) in enumerate(first):
            sp, ks, ss, ps, ds = [L], [k], [s], [p], [d]
            for _ in range(rank - 1):
                sp.append(5)
                ks.append(2)
                ss.append(1)
                ps.append(1)
                ds.append(1)
            x = data(rng, (2, 3) + tuple(sp), "uniform")
            c = _case(f"empty_window_{j}_r{rank}", "max", rank, x, kernel_size=tuple(ks),
                      stride=tuple(ss), padding=tuple(ps), dilation=tuple(ds), ceil_mode=ceil)
            kw = {kk: vv for kk, vv in c.kwargs.items()}
            assert max_pool_empty_windows(x.shape, rank, **kw).any(), c.describe()
            cases.append(c)
    return cases


@pytest.mark.parametrize("rank", RANKS)
def test_max_empty_windows(rank):
    """Windows entirely in the padding (dilated max pooling). PyTorch returns -inf there (its
    index points past the plane, which no backward can use); fastconv must return -inf too,
    with and without return_indices, and an index that is -1 or PyTorch's. Everything else
    exact as usual."""
    problems = []
    for case in [c for c in _empty_window_cases() if c.rank == rank]:
        y_ref, i_ref = case.ref
        empty = np.broadcast_to(max_pool_empty_windows(case.x.shape, rank, **case.kwargs),
                                y_ref.shape)
        fn = pool_fn("max", rank)
        for isa_name in ISAS:
            prev = fastconv.set_isa(isa_name)
            try:
                for dtype in DTYPES:
                    x = case.x.astype(dtype)
                    where = f"[isa={isa_name}, dtype={np.dtype(dtype).name}] {case.describe()}"
                    y = fn(x, **case.kwargs)
                    y2, idx = fn(x, return_indices=True, **case.kwargs)
                    for w, v in (("return_indices=False", y), ("return_indices=True", y2)):
                        if not np.array_equal(v, y_ref, equal_nan=True):
                            problems.append(f"{where} {w}: values differ from PyTorch's "
                                            f"(-inf in empty windows): {_first_diff(v, y_ref)}")
                    if not np.array_equal(idx[~empty], i_ref[~empty]):
                        problems.append(f"{where}: indices of non-empty windows differ")
                    bad = ~((idx[empty] == -1) | (idx[empty] == i_ref[empty]))
                    if bad.any():
                        problems.append(f"{where}: empty-window indices {idx[empty][bad][:5]} "
                                        f"are neither -1 nor PyTorch's {i_ref[empty][bad][:5]}")
            finally:
                fastconv.set_isa(prev)
    fail_if(problems)


@pytest.mark.parametrize("rank", RANKS)
def test_avg_nan_inf(rank):
    """NaN / inf in average windows propagate to exactly the windows that contain them."""
    rng = np.random.default_rng(23 + rank)
    sp = {1: (15,), 2: (7, 6), 3: (4, 5, 4)}[rank]
    x = data(rng, (2, 2) + sp, "uniform")
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 4, replace=False)] = np.nan
    flat[rng.choice(flat.size, 3, replace=False)] = np.inf
    cases = [_case(f"avg_nan_r{rank}", "avg", rank, x, kernel_size=3, stride=2, padding=1,
                   ceil_mode=True),
             _case(f"avg_nan_nopad_r{rank}", "avg", rank, x, kernel_size=2),
             _case(f"aavg_nan_r{rank}", "adaptive_avg", rank, x,
                   output_size=tuple(L // 2 + 1 for L in sp))]
    problems = []
    for case in cases:
        ref = case.ref[0]
        for isa_name in ISAS:
            prev = fastconv.set_isa(isa_name)
            try:
                for dtype in DTYPES:
                    y = pool_fn(case.kind, rank)(case.x.astype(dtype), **case.kwargs)
                    where = f"[isa={isa_name}, dtype={np.dtype(dtype).name}] {case.describe()}"
                    fin = np.isfinite(ref)
                    if not (np.array_equal(np.isnan(y), np.isnan(ref))
                            and np.array_equal(np.isinf(y), np.isinf(ref))):
                        problems.append(f"{where}: NaN/inf pattern differs from the reference")
                    elif normalized_error(y[fin], ref[fin]) > pool_tolerance(dtype):
                        problems.append(f"{where}: finite outputs beyond the budget")
            finally:
                fastconv.set_isa(prev)
    fail_if(problems)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
def test_global_average_large_plane(dtype, isa, record_error):
    """Global average pooling of a 56x56 plane (3136 terms) stays within the avg budget."""
    rng = np.random.default_rng(56)
    centred = rng.uniform(-1, 1, size=(1, 64, 56, 56)).astype(np.float32).astype(np.float64)
    positive = rng.uniform(0, 1, size=(1, 64, 56, 56)).astype(np.float32).astype(np.float64)
    problems = []
    for dname, x in (("centred", centred), ("positive", positive)):
        for case in (_case(f"global_aavg_{dname}", "adaptive_avg", 2, x, output_size=1),
                     _case(f"global_avg56_{dname}", "avg", 2, x, kernel_size=56)):
            problems += run_check(case, dtype, isa, record_error)
    fail_if(problems)


@pytest.mark.parametrize("rank", RANKS)
def test_adaptive_zero_output(rank):
    """output_size 0 in some dim -> an empty output of the right shape (PyTorch)."""
    x = np.ones((2, 3) + (4,) * rank, dtype=np.float32)
    for out in [0, (0,) + (2,) * (rank - 1), (2,) * (rank - 1) + (0,)]:
        want = (2, 3) + ((0,) * rank if out == 0 else out)
        y = pool_fn("adaptive_avg", rank)(x, out)
        y2, idx = pool_fn("adaptive_max", rank)(x, out, return_indices=True)
        assert y.shape == y2.shape == idx.shape == want
        assert y.dtype == y2.dtype == np.float32 and idx.dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rank", RANKS)
def test_unbatched_equals_batched(kind, rank):
    """An unbatched input gives exactly the batched result of its batch-of-one; N=0 works."""
    rng = np.random.default_rng(3)
    x = data(rng, (3,) + {1: (17,), 2: (9, 8), 3: (5, 6, 4)}[rank]).astype(np.float32)
    kw = {"output_size": 3} if kind.startswith("adaptive") else {"kernel_size": 3, "stride": 2,
                                                                "padding": 1}
    if kind in MAX_KINDS:
        kw["return_indices"] = True
    fn = pool_fn(kind, rank)
    a, b = fn(x, **kw), fn(x[None], **kw)
    e = fn(np.zeros((0,) + x.shape, np.float32), **kw)
    a, b, e = (t if isinstance(t, tuple) else (t,) for t in (a, b, e))
    for u, v, w in zip(a, b, e):
        assert u.shape == v.shape[1:] and np.array_equal(u, v[0])
        assert w.shape == (0,) + u.shape and w.dtype == u.dtype


# --------------------------------------------------------------------------- layers.json
POOL_LAYERS = {l["name"]: l for l in load_layers("max_pool") + load_layers("avg_pool")}
LAYER_SPATIAL_CAP = 24


@functools.lru_cache(maxsize=None)
def layer_case(name):
    """layers.json pooling entry scaled down: kernel/stride/padding/dilation kept, C <= 8,
    N <= 2, spatial sizes capped (>= the dilated kernel + 3 strides)."""
    layer = POOL_LAYERS[name]
    rank = len(layer["input"])
    sp = tuple(max(min(L, LAYER_SPATIAL_CAP), d * (k - 1) + 1 + 3 * s)
               for L, k, s, d in zip(layer["input"], layer["kernel"], layer["stride"],
                                     layer["dilation"]))
    rng = np.random.default_rng(sum(map(ord, name)))
    x = data(rng, (min(layer["N"], 2), min(layer["C"], 8)) + sp, "uniform")
    kw = {"kernel_size": tuple(layer["kernel"]), "stride": tuple(layer["stride"]),
          "padding": tuple(layer["padding"])}
    if layer["op"] == "max_pool":
        kw["dilation"] = tuple(layer["dilation"])
        kind = "max"
    else:
        kind = "avg"
    return Case(name, kind, rank, x, kw, f"test_pool.layer_case({name!r})")


def test_pool_layers_present():
    assert {l["op"] for l in POOL_LAYERS.values()} == {"max_pool", "avg_pool"}


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_ids)
@pytest.mark.parametrize("name", sorted(POOL_LAYERS))
def test_layer(name, dtype, isa, record_error):
    fail_if(run_check(layer_case(name), dtype, isa, record_error))


def test_resnet_stem_maxpool_full_size(record_error):
    """ResNet's 3x3/2 pad 1 max pooling at full size, 1x64x112x112, once (default ISA)."""
    layer = POOL_LAYERS.get("resnet_maxpool3x3s2_64_112",
                            {"N": 1, "C": 64, "input": [112, 112]})
    shape = (1, layer["C"]) + tuple(layer["input"])
    assert shape == (1, 64, 112, 112)
    x = data(np.random.default_rng(112), shape, "uniform")
    x[0, :, ::7, ::5] = 0.5  # plus a few exact ties
    case = _case("resnet_maxpool_full", "max", 2, x, kernel_size=3, stride=2, padding=1)
    fail_if(run_check(case, np.float32, DEFAULT_ISA, record_error))


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", KINDS)
def test_forward_deterministic(kind, threads_restored):
    """A problem split across threads: repeated calls and 1 vs 2 threads are bit-identical."""
    rng = np.random.default_rng(8)
    x = data(rng, (2, 16, 33, 35), "ints").astype(np.float32)
    kw = ({"output_size": (7, 9)} if kind.startswith("adaptive")
          else {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True})
    if kind in MAX_KINDS:
        kw["return_indices"] = True
    fn = pool_fn(kind, 2)

    def run():
        r = fn(x, **kw)
        return b"".join(t.tobytes() for t in (r if isinstance(r, tuple) else (r,)))

    threads_restored(2)
    a, b = run(), run()
    threads_restored(1)
    c = run()
    assert a == b, "two calls with 2 threads differ"
    assert a == c, "1 thread and 2 threads differ"
