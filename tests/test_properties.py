"""Property-based tests (hypothesis) over random VALID convolution and pooling problems.

What is checked, for random problems drawn by the strategies below (rank 1-3, batched /
unbatched / empty batch, channels and groups incl. depthwise, kernel, stride, dilation, padding
as int / tuple / 'same' / 'valid', the four padding modes, float32 / float64, every ISA of
``fastconv.info()['isas']``):

- forward convolution of every algorithm of ``fastconv.algorithms('forward')`` and 'auto', the
  data gradient (``fastconv.grad.conv{r}d_input``, every 'backward_data' algorithm and 'auto'),
  the weight gradient (every 'backward_weights' algorithm and 'auto') and the bias gradient
  against the float64 reference (tests/reference.py) within DESIGN.md's accuracy budget
  (``conftest.tolerance_for``: err = max|y - ref| / max|ref|);
- algebraic properties, each within the budget the definitions imply (never looser):
  linearity in the input and in the weight (exact dyadic data and coefficients, so
  ``a x + b y`` is exact in float32 and only the convolutions round), batch independence (the
  batch's output vs the concatenation of per-sample calls: DESIGN.md promises no bit-identity
  here, so within the budget), groups = concatenation of the per-group convolutions, and the
  adjoint identity <conv(x, w), g> = <x, conv_input(g)> = <w, conv_weight(x, g)> in float64;
- pooling: max pooling exact vs the reference (values and indices) and exactly equivariant
  under x -> c + s x (dyadic c, s > 0) and monotonic; min-pool(x) := -max_pool(-x) <= avg_pool
  (count_include_pad=False) <= max_pool on the same windows; average pooling of a constant is
  the constant (count_include_pad=False, adaptive), and with count_include_pad=True on the
  windows that lie inside the input (elsewhere |y| <= |c|); the adjoint identity of average,
  adaptive average and max pooling (through the forward's indices) in float64.

A named algorithm that declines a problem (ValueError "... does not support this problem ...",
DESIGN.md) rejects the example with ``hypothesis.assume`` (via ``conftest.unless_declined``,
which counts the refusal in the session summary); 'auto' never declines, so its errors fail.

Budgets: hypothesis profiles registered in tests/conftest.py.

- ``default`` (loaded unless told otherwise): 40 examples per test, derandomized (the same
  examples on every run, so CI is reproducible), no deadline; the module takes ~15 s on 2 cores.
- ``long``: 1500 examples per test (~10-15 minutes), randomized (new examples each run;
  failures are saved in .hypothesis/ and replayed first next time)::

      pytest tests/test_properties.py --hypothesis-profile=long
      FASTCONV_HYPOTHESIS_PROFILE=long pytest tests/test_properties.py   # the same

  ``--hypothesis-seed=N`` repeats a randomized run. A failure prints the falsifying example
  (the ``ConvProblem`` / ``PoolProblem`` repr rebuilds it: ``.arrays(dtype)`` gives the data).
"""

import contextlib
from dataclasses import dataclass

import numpy as np
import pytest

# hypothesis is in the test extra; without it this module is skipped (hence E402 below)
pytest.importorskip("hypothesis")
# ruff: noqa: E402
from hypothesis import assume, example, given
from hypothesis import strategies as st

import fastconv
from fastconv import functional as F
from fastconv import grad as fgrad
from conftest import (ALGOS_BY_DIRECTION, ISAS, compare_with_reference, exact_error,
                      pool_tolerance, spreads_non_finite, tolerance_for, unless_declined)
from reference import (avg_pool_reference, conv_bias_grad, conv_input_grad, conv_output_shape,
                       conv_reference, conv_weight_grad, max_pool_empty_windows,
                       max_pool_reference, normalized_error, resolve_padding)

pytestmark = pytest.mark.hypothesis

RANKS = (1, 2, 3)
MODES = ("zeros", "reflect", "replicate", "circular")
CONV = {r: getattr(F, f"conv{r}d") for r in RANKS}
INPUT_GRAD = {r: getattr(fgrad, f"conv{r}d_input") for r in RANKS}
WEIGHT_GRAD = {r: getattr(fgrad, f"conv{r}d_weight") for r in RANKS}
BIAS_GRAD = {r: getattr(fgrad, f"conv{r}d_bias") for r in RANKS}
FWD = ALGOS_BY_DIRECTION["forward"]
BWD_DATA = ALGOS_BY_DIRECTION["backward_data"]
BWD_WEIGHTS = ALGOS_BY_DIRECTION["backward_weights"]

dtypes = st.sampled_from([np.float32, np.float64])
isas = st.sampled_from(ISAS)
# the float64 adjoint identities hold to 1e-12 of their condition number (the rtol of
# test_conv_backward.test_adjoint_identity)
ADJOINT_RTOL = 1e-12


@contextlib.contextmanager
def active_isa(name):
    """Run the block with the kernels of ISA `name`; the previous ISA is restored after."""
    prev = fastconv.set_isa(name)
    try:
        yield
    finally:
        fastconv.set_isa(prev)


def declined_or(algo, call):
    """call(); a named algorithm's documented refusal rejects the example (hypothesis.assume)."""
    out = unless_declined(algo, call)
    assume(out is not None)
    return out


def _int_or_tuple(draw, vals):
    """A plain int when all entries agree (half of the time), else the tuple."""
    vals = tuple(int(v) for v in vals)
    if len(set(vals)) == 1 and draw(st.booleans()):
        return vals[0]
    return vals


def _data(rng, shape, dist, dtype):
    """Random data of `shape` in `dtype`: 'uniform' (-1, 1), 'dyadic' (multiples of 1/64 in
    [-1, 1]) or 'ints' (integers in [-3, 3])."""
    if dist == "ints":
        a = rng.integers(-3, 4, size=shape).astype(np.float64)
    elif dist == "dyadic":  # multiples of 1/64 in [-1, 1]: sums of a few scaled ones are exact
        a = rng.integers(-64, 65, size=shape) / 64.0
    else:
        a = rng.uniform(-1.0, 1.0, size=shape)
    return a.astype(dtype)


# ============================================================================ convolution problems
@dataclass(frozen=True)
class ConvProblem:
    """One valid convolution problem; ``arrays(dtype)`` rebuilds its data from `seed`."""

    x_shape: tuple
    w_shape: tuple
    kwargs: dict  # stride / padding / dilation / groups / padding_mode, as passed to conv{r}d
    seed: int
    dist: str = "uniform"

    @property
    def rank(self):
        return len(self.w_shape) - 2

    @property
    def batched(self):
        return len(self.x_shape) == self.rank + 2

    @property
    def groups(self):
        return self.kwargs.get("groups", 1)

    @property
    def y_shape(self):
        kw = {k: self.kwargs[k] for k in ("stride", "padding", "dilation") if k in self.kwargs}
        return conv_output_shape(self.x_shape, self.w_shape, **kw)

    def arrays(self, dtype, dist=None):
        """(x, w, b, g): input, weight, bias and an output gradient, in `dtype`."""
        rng = np.random.default_rng(self.seed)
        dist = dist or self.dist
        x = _data(rng, self.x_shape, dist, dtype)
        w = _data(rng, self.w_shape, dist, dtype)
        b = _data(rng, (self.w_shape[0],), dist, dtype)
        g = _data(rng, self.y_shape, dist, dtype)
        return x, w, b, g


KMAX = {1: 7, 2: 5, 3: 3}  # largest kernel per spatial dim (general branch)
EXTRA = {1: 16, 2: 6, 3: 3}  # spatial sizes: smallest legal size + 0..EXTRA
# batch sizes; None = unbatched (C, *spatial). Shrinks towards 1.
BATCHES = (1, 2, 3, None, 0)


@st.composite
def conv_problems(draw, ranks=RANKS, batches=BATCHES, min_groups=1, modes=MODES, dists=None):
    """Random valid convolution problems.

    Half of them are "CNN-like" (kernel taps 3 or 1, stride 1, dilation 1, >= 4 channels per
    group): the domain of the transform algorithms, which decline most of the general branch
    (any kernel 1..KMAX, stride 1..3, dilation 1..3, plain / grouped / depthwise grouping).
    """
    rank = draw(st.sampled_from(ranks))
    if draw(st.booleans()):  # CNN-like
        groups = draw(st.integers(max(1, min_groups), max(2, min_groups)))
        cg, kg = draw(st.integers(4, 8)), draw(st.integers(4, 8))
        kernel = tuple(draw(st.sampled_from((3, 1))) for _ in range(rank))
        stride = dilation = (1,) * rank
    else:
        grouping = draw(st.sampled_from(("plain", "grouped", "depthwise")))
        if grouping == "plain" and min_groups <= 1:
            groups, cg, kg = 1, draw(st.integers(1, 6)), draw(st.integers(1, 6))
        elif grouping == "depthwise":
            groups = draw(st.integers(max(2, min_groups), 8))
            cg, kg = 1, draw(st.sampled_from((1, 2, 3)))
        else:
            groups = draw(st.integers(max(2, min_groups), 4))
            cg, kg = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        kernel = tuple(draw(st.integers(1, KMAX[rank])) for _ in range(rank))
        stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
        dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    mode = draw(st.sampled_from(modes))
    pkind = draw(st.sampled_from(("int", "tuple", "same", "valid")))
    if pkind == "int":
        padding = draw(st.integers(0, 3))
    elif pkind == "tuple":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(rank))
    else:
        padding = pkind
        if pkind == "same":  # 'same' needs stride 1 (as PyTorch)
            stride = (1,) * rank
    pads = resolve_padding(padding, kernel, dilation, rank)
    spatial = []
    for k, d, (pl, pr) in zip(kernel, dilation, pads):
        lo = max(1, d * (k - 1) + 1 - pl - pr)  # at least one output
        if mode == "reflect":  # reflect needs padding < size
            lo = max(lo, pl + 1, pr + 1)
        elif mode == "circular":  # circular needs padding <= size
            lo = max(lo, pl, pr)
        spatial.append(lo + draw(st.integers(0, EXTRA[rank])))
    batch = draw(st.sampled_from(batches))
    kwargs = {}
    s = _int_or_tuple(draw, stride)
    if s != 1 or draw(st.booleans()):
        kwargs["stride"] = s
    kwargs["padding"] = padding
    d = _int_or_tuple(draw, dilation)
    if d != 1 or draw(st.booleans()):
        kwargs["dilation"] = d
    if groups != 1 or draw(st.booleans()):
        kwargs["groups"] = groups
    if mode != "zeros" or draw(st.booleans()):
        kwargs["padding_mode"] = mode
    lead = () if batch is None else (batch,)
    x_shape = lead + (groups * cg,) + tuple(spatial)
    w_shape = (groups * kg, cg) + kernel
    seed = draw(st.integers(0, 2**32 - 1))
    dist = draw(st.sampled_from(dists or ("uniform",)))
    return ConvProblem(x_shape, w_shape, kwargs, seed, dist)


def _where(p, what, algo, dtype, isa=None):
    return (f"[{what}, algo={algo}, dtype={np.dtype(dtype).name}"
            + (f", isa={isa}" if isa else "") + f"] {p!r}")


def _scaled_close(got, want, bound, where):
    """max|got - want| <= bound (float64 arithmetic); a list of problems."""
    got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got64.shape != want64.shape:
        return [f"{where}: shape {got64.shape} vs {want64.shape}"]
    if got64.size == 0:
        return []
    if np.isnan(got64).any() or np.isnan(want64).any():
        return [f"{where}: NaN"]
    diff = np.abs(got64 - want64)
    if not diff.max() <= bound:
        i = np.unravel_index(np.argmax(diff), diff.shape)
        return [f"{where}: max diff {diff.max():.3e} > bound {bound:.3e} at "
                f"{tuple(int(v) for v in i)}: {got64[i]!r} vs {want64[i]!r}"]
    return []


def _amax(*arrays):
    return max([float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays] + [0.0])


def _scale(ref):
    """The denominator of the accuracy measure (reference.normalized_error): max|ref|, or 1
    (absolute error) when the reference is all zero. An output within the budget is within
    tol * _scale(ref) of `ref` everywhere. (All-zero references occur, e.g. when every window
    lies in the zero padding; the transform algorithms then give rounding-sized values.)"""
    m = _amax(np.asarray(ref))
    return m if m > 0.0 else 1.0


# ============================================================================ vs the reference
@pytest.mark.parametrize("algo", FWD + ["auto"])
@given(p=conv_problems(), dtype=dtypes, isa=isas, bias=st.booleans())
def test_forward_matches_reference(algo, p, dtype, isa, bias, record_error):
    x, w, b, _ = p.arrays(dtype)
    b = b if bias else None
    with active_isa(isa):
        y = declined_or(algo, lambda: CONV[p.rank](x, w, b, algo=algo, **p.kwargs))
    ref = conv_reference(x, w, b, **p.kwargs)
    where = _where(p, f"conv{p.rank}d bias={bias}", algo, dtype, isa)
    problems, err = compare_with_reference(y, ref, dtype, tolerance_for(algo, dtype), where)
    if err is not None:
        record_error(dtype, algo, err, isa, "hypothesis")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("algo", BWD_DATA + ["auto"])
@given(p=conv_problems(), dtype=dtypes, isa=isas)
def test_backward_data_matches_reference(algo, p, dtype, isa, record_error):
    x, w, _, g = p.arrays(dtype)
    with active_isa(isa):
        gx = declined_or(algo, lambda: INPUT_GRAD[p.rank](p.x_shape, w, g, algo=algo,
                                                          **p.kwargs))
    ref = conv_input_grad(p.x_shape, w, g, **p.kwargs)
    where = _where(p, f"conv{p.rank}d_input", algo, dtype, isa)
    tol = tolerance_for(algo, dtype, "backward_data")
    problems, err = compare_with_reference(gx, ref, dtype, tol, where)
    if err is not None:
        record_error(dtype, algo, err, isa, "hypothesis", entry="input")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("algo", BWD_WEIGHTS + ["auto"])
@given(p=conv_problems(), dtype=dtypes, isa=isas)
def test_backward_weights_matches_reference(algo, p, dtype, isa, record_error):
    x, w, _, g = p.arrays(dtype)
    with active_isa(isa):
        gw = declined_or(algo, lambda: WEIGHT_GRAD[p.rank](x, p.w_shape, g, algo=algo,
                                                           **p.kwargs))
    ref = conv_weight_grad(x, p.w_shape, g, **p.kwargs)
    where = _where(p, f"conv{p.rank}d_weight", algo, dtype, isa)
    tol = tolerance_for(algo, dtype, "backward_weights")
    problems, err = compare_with_reference(gw, ref, dtype, tol, where)
    if err is not None:
        record_error(dtype, algo, err, isa, "hypothesis", entry="weight")
    if not problems and p.batched and p.x_shape[0] == 0 and np.any(gw != 0):
        problems.append(f"{where}: empty batch but non-zero weight gradient")
    assert not problems, "\n".join(problems)


@given(p=conv_problems(), dtype=dtypes, isa=isas)
def test_backward_bias_matches_reference(p, dtype, isa, record_error):
    _, _, _, g = p.arrays(dtype)
    with active_isa(isa):
        gb = BIAS_GRAD[p.rank](g)
    ref = conv_bias_grad(g, p.batched)
    where = _where(p, f"conv{p.rank}d_bias", None, dtype, isa)
    problems, err = compare_with_reference(gb, ref, dtype, tolerance_for("auto", dtype), where)
    if err is not None:
        record_error(dtype, "-", err, isa, "hypothesis", entry="bias")
    assert not problems, "\n".join(problems)


# ============================================================================ algebraic properties
# Every window lies in the zero padding (k=2, dilation 2, 'same' on a length-1 dim): the
# reference is all zero and the FFT gives rounding-sized values (~5e-10), within the budget's
# absolute floor. Found by the long profile when the bounds were relative to the outputs only.
ALL_PADDING = dict(x_shape=(1, 2, 1, 1, 1), w_shape=(2, 1, 2, 1, 1), seed=0, dist="dyadic",
                   kwargs={"stride": (1, 1, 1), "padding": "same", "dilation": (2, 1, 1),
                           "groups": 2})
# dyadic coefficients m/4: times a multiple of 1/64 in [-1, 1], plus another such product, the
# result is exact in float32 (at most 12 significant bits)
coefficients = st.integers(-12, 12).map(lambda m: m / 4.0)


@pytest.mark.parametrize("algo", FWD + ["auto"])
@given(p=conv_problems(dists=("dyadic",)), dtype=dtypes, a=coefficients, b=coefficients,
       which=st.sampled_from(("input", "weight")))
@example(p=ConvProblem(**ALL_PADDING), dtype=np.float32, a=0.0, b=0.75, which="input")
def test_linearity(algo, p, dtype, a, b, which):
    """conv(a x + b x2, w) = a conv(x, w) + b conv(x2, w), and the same in the weight.

    a x + b x2 is exact (dyadic data and coefficients), so each of the three convolutions is
    within tol * _scale(its reference) of it: the two sides differ by at most the sum of those
    three bounds (weighted by |a|, |b|).
    """
    x, w, _, _ = p.arrays(dtype)
    x2, w2, _, _ = ConvProblem(p.x_shape, p.w_shape, p.kwargs, p.seed + 1, p.dist).arrays(dtype)
    conv = CONV[p.rank]
    if which == "input":
        z = (a * x.astype(np.float64) + b * x2.astype(np.float64)).astype(dtype)
        assert np.array_equal(z.astype(np.float64), a * x.astype(np.float64) + b * x2), "inexact"
        y1 = declined_or(algo, lambda: conv(x, w, algo=algo, **p.kwargs))
        y2 = conv(x2, w, algo=algo, **p.kwargs)
        yz = conv(z, w, algo=algo, **p.kwargs)
        refs = [conv_reference(v, w, **p.kwargs) for v in (x, x2, z)]
    else:
        z = (a * w.astype(np.float64) + b * w2.astype(np.float64)).astype(dtype)
        assert np.array_equal(z.astype(np.float64), a * w.astype(np.float64) + b * w2), "inexact"
        y1 = declined_or(algo, lambda: conv(x, w, algo=algo, **p.kwargs))
        y2 = conv(x, w2, algo=algo, **p.kwargs)
        yz = conv(x, z, algo=algo, **p.kwargs)
        refs = [conv_reference(x, v, **p.kwargs) for v in (w, w2, z)]
    tol = tolerance_for(algo, dtype)
    combo = a * y1.astype(np.float64) + b * y2.astype(np.float64)
    s1, s2, sz = (_scale(r) for r in refs)
    bound = tol * (sz + abs(a) * s1 + abs(b) * s2)
    where = _where(p, f"linearity in the {which}, a={a}, b={b}", algo, dtype)
    problems = _scaled_close(yz, combo, bound, where)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("algo", FWD + ["auto"])
@given(p=conv_problems(batches=(2, 3)), dtype=dtypes, unbatched=st.booleans(),
       bias=st.booleans())
@example(p=ConvProblem(**dict(ALL_PADDING, x_shape=(2, 2, 1, 1, 1))), dtype=np.float32,
         unbatched=False, bias=False)
def test_batch_independence(algo, p, dtype, unbatched, bias):
    """conv of a batch = the concatenation of the convolutions of its samples (each sample as
    a batch of one, or unbatched). DESIGN.md does not promise bit-identity, so within the
    budget: the batch's output is within tol * _scale(ref) of the reference, sample i's within
    tol * _scale(ref[i])."""
    x, w, b, _ = p.arrays(dtype)
    b = b if bias else None
    conv = CONV[p.rank]
    y = declined_or(algo, lambda: conv(x, w, b, algo=algo, **p.kwargs))
    parts = []
    for i in range(p.x_shape[0]):
        xi = x[i] if unbatched else x[i:i + 1]
        yi = declined_or(algo, lambda: conv(xi, w, b, algo=algo, **p.kwargs))
        parts.append(yi[None] if unbatched else yi)
    cat = np.concatenate(parts)
    ref = conv_reference(x, w, b, **p.kwargs)
    tol = tolerance_for(algo, dtype)
    bound = tol * (_scale(ref) + max(_scale(r) for r in ref))
    where = _where(p, f"batch independence (samples {'unbatched' if unbatched else 'N=1'})",
                   algo, dtype)
    problems = _scaled_close(y, cat, bound, where)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("algo", FWD + ["auto"])
@given(p=conv_problems(min_groups=2), dtype=dtypes, bias=st.booleans())
@example(p=ConvProblem(**ALL_PADDING), dtype=np.float32, bias=False)
def test_groups_are_concatenated_convolutions(algo, p, dtype, bias):
    """conv(x, w, groups=G) = concat over g of conv(x[:, g-th channel block], w[g-th block]),
    within the budget: tol * _scale(ref) for the grouped call plus tol * _scale(ref of the
    group) for each per-group call."""
    x, w, b, _ = p.arrays(dtype)
    b = b if bias else None
    G, conv = p.groups, CONV[p.rank]
    assert G >= 2
    y = declined_or(algo, lambda: conv(x, w, b, algo=algo, **p.kwargs))
    kw = dict(p.kwargs, groups=1)
    cg, kg = p.x_shape[-p.rank - 1] // G, p.w_shape[0] // G
    ch = (slice(None),) if p.batched else ()  # the channel axis follows the batch axis
    parts, group_scale = [], 0.0
    for gi in range(G):
        xg = x[ch + (slice(gi * cg, (gi + 1) * cg),)]
        wg = w[gi * kg:(gi + 1) * kg]
        bg = None if b is None else b[gi * kg:(gi + 1) * kg]
        parts.append(declined_or(algo, lambda: conv(xg, wg, bg, algo=algo, **kw)))
        group_scale = max(group_scale, _scale(conv_reference(xg, wg, bg, **kw)))
    cat = np.concatenate(parts, axis=len(ch))
    tol = tolerance_for(algo, dtype)
    bound = tol * (_scale(conv_reference(x, w, b, **p.kwargs)) + group_scale)
    where = _where(p, "groups = concatenated per-group convolutions", algo, dtype)
    problems = _scaled_close(y, cat, bound, where)
    assert not problems, "\n".join(problems)


@given(p=conv_problems(), fwd=st.sampled_from(FWD + ["auto"]),
       data_algo=st.sampled_from(BWD_DATA + ["auto"]),
       weight_algo=st.sampled_from(BWD_WEIGHTS + ["auto"]))
def test_adjoint_identity(p, fwd, data_algo, weight_algo):
    """<conv(x, w), g> = <x, conv_input(g, w)> = <w, conv_weight(x, g)> in float64.

    Allowed difference: 1e-12 of the condition number <|x| * |w|, |g|> (the reference
    convolution of the absolute values: every rounding error of all three sides is bounded by
    a small multiple of it); with a transform algorithm (Winograd, FFT: rounding follows the
    tiles' norms) on either side, at least 1e-12 |x| |w| |g| (2-norms), as
    test_conv_backward.test_adjoint_identity.
    """
    x, w, _, g = p.arrays(np.float64)
    r, kw = p.rank, p.kwargs
    y = declined_or(fwd, lambda: CONV[r](x, w, algo=fwd, **kw))
    gx = declined_or(data_algo, lambda: INPUT_GRAD[r](p.x_shape, w, g, algo=data_algo, **kw))
    gw = declined_or(weight_algo, lambda: WEIGHT_GRAD[r](x, p.w_shape, g, algo=weight_algo,
                                                         **kw))
    lhs = float(np.sum(y * g))
    cond = float(np.sum(conv_reference(np.abs(x), np.abs(w), **kw) * np.abs(g)))
    norms = float(np.linalg.norm(x) * np.linalg.norm(w) * np.linalg.norm(g))
    problems = []
    for side, algo, other, grad in (("input", data_algo, x, gx), ("weight", weight_algo, w, gw)):
        rhs = float(np.sum(other * grad))
        scale = max(cond, norms) if spreads_non_finite(fwd) or spreads_non_finite(algo) else cond
        if not abs(lhs - rhs) <= ADJOINT_RTOL * scale:
            problems.append(f"forward algo={fwd}, {side} algo={algo}: <conv(x,w),g> = {lhs!r} "
                            f"but <{'x' if side == 'input' else 'w'}, grad> = {rhs!r} "
                            f"(|diff| {abs(lhs - rhs):.3e}, scale {scale:.3e}): {p!r}")
    assert not problems, "\n".join(problems)


# ============================================================================ pooling
@dataclass(frozen=True)
class PoolProblem:
    """One valid max / avg pooling problem; ``x(dtype)`` rebuilds its input from `seed`."""

    kind: str  # 'max' or 'avg'
    rank: int
    x_shape: tuple
    kwargs: dict  # fastconv's keyword arguments
    seed: int

    def x(self, dtype, dist="dyadic"):
        return _data(np.random.default_rng(self.seed), self.x_shape, dist, dtype)

    def window_kwargs(self):
        """kernel_size / stride / padding / ceil_mode (what max and avg pooling share)."""
        return {k: v for k, v in self.kwargs.items()
                if k in ("kernel_size", "stride", "padding", "ceil_mode")}

    def geometry(self):
        """Per spatial dim: (kernel, stride, padding, dilation)."""
        def per_dim(v, default):
            v = default if v is None else v
            return (v,) * self.rank if isinstance(v, int) else tuple(v)
        k = per_dim(self.kwargs["kernel_size"], None)
        s = per_dim(self.kwargs.get("stride"), k)
        pad = per_dim(self.kwargs.get("padding", 0), None)
        d = per_dim(self.kwargs.get("dilation", 1), None)
        return list(zip(k, s, pad, d))


POOL_KMAX = {1: 5, 2: 3, 3: 3}
POOL_EXTRA = {1: 12, 2: 6, 3: 3}


@st.composite
def pool_problems(draw, kind, ranks=RANKS, dilation=True, avg_args=True):
    """Random valid max ('max') or average ('avg') pooling problems (PyTorch's limits: padding
    <= half the (dilated, for max) kernel; every window holds an input element)."""
    rank = draw(st.sampled_from(ranks))
    kernel = tuple(draw(st.integers(1, POOL_KMAX[rank])) for _ in range(rank))
    if kind == "max" and dilation:
        dil = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    else:
        dil = (1,) * rank
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dil))
    limits = eff if kind == "max" else kernel
    padding = tuple(draw(st.integers(0, lim // 2)) for lim in limits)
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    ceil_mode = draw(st.booleans())
    spatial = tuple(max(1, e - 2 * p) + draw(st.integers(0, POOL_EXTRA[rank]))
                    for e, p in zip(eff, padding))
    lead = draw(st.sampled_from(((1, 2), (2, 3), (3,), (1, 1))))
    kwargs = {"kernel_size": _int_or_tuple(draw, kernel)}
    if stride is not None:
        kwargs["stride"] = _int_or_tuple(draw, stride)
    if any(padding) or draw(st.booleans()):
        kwargs["padding"] = _int_or_tuple(draw, padding)
    if kind == "max" and (any(d > 1 for d in dil) or draw(st.booleans())):
        kwargs["dilation"] = _int_or_tuple(draw, dil)
    kwargs["ceil_mode"] = ceil_mode
    if kind == "avg" and avg_args:
        kwargs["count_include_pad"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 3:
            kwargs["divisor_override"] = draw(st.integers(1, 6))
    p = PoolProblem(kind, rank, lead + spatial, kwargs, draw(st.integers(0, 2**32 - 1)))
    if kind == "max":  # windows entirely in the padding (dilation): -inf, not tested here
        mk = {k: v for k, v in kwargs.items() if k != "return_indices"}
        assume(not max_pool_empty_windows(p.x_shape, rank, **mk).any())
    return p


def _pool(kind, rank):
    return getattr(F, f"{kind}_pool{rank}d")


# dyadic shift and positive power-of-two scale: c + s x is exact for x a multiple of 1/64
shifts = st.integers(-64, 64).map(lambda m: m / 8.0)
scales = st.sampled_from((1.0, 2.0, 0.5, 4.0, 0.25))


@given(p=pool_problems("max"), dtype=dtypes, isa=isas, c=shifts, s=scales,
       bump_seed=st.integers(0, 2**32 - 1))
def test_max_pool_exact_equivariant_monotonic(p, dtype, isa, c, s, bump_seed):
    """max_pool(x) equals the reference exactly (values, indices); max_pool(c + s x) =
    c + s max_pool(x) with the same indices (exact: dyadic data and c, s = 2^j); and
    x <= x2 elementwise implies max_pool(x) <= max_pool(x2)."""
    x = p.x(dtype)
    fn = _pool("max", p.rank)
    with active_isa(isa):
        y, idx = fn(x, return_indices=True, **p.kwargs)
        x_aff = (c + s * x.astype(np.float64)).astype(dtype)
        y_aff, idx_aff = fn(x_aff, return_indices=True, **p.kwargs)
        bump = np.abs(np.random.default_rng(bump_seed).integers(0, 4, size=p.x_shape)) / 8.0
        y_up = fn((x.astype(np.float64) + bump).astype(dtype), **p.kwargs)
    ref, ref_idx = max_pool_reference(x, p.rank, **p.kwargs)
    where = f"[max_pool{p.rank}d, dtype={np.dtype(dtype).name}, isa={isa}] {p!r}"
    problems = []
    if exact_error(y, ref) != 0.0:
        problems.append(f"{where}: values differ from the reference "
                        f"(err {exact_error(y, ref):.3e})")
    elif not np.array_equal(idx, ref_idx):
        problems.append(f"{where}: indices differ from the reference")
    if not np.array_equal(y_aff.astype(np.float64), c + s * y.astype(np.float64)):
        problems.append(f"{where}: max_pool({c} + {s} x) != {c} + {s} max_pool(x)")
    elif not np.array_equal(idx_aff, idx):
        problems.append(f"{where}: max_pool({c} + {s} x) picked other indices")
    if not np.all(y_up >= y):
        problems.append(f"{where}: not monotonic (x <= x2 but max_pool(x) > max_pool(x2))")
    assert not problems, "\n".join(problems)


@given(p=pool_problems("avg", dilation=False, avg_args=False), dtype=dtypes, isa=isas,
       dist=st.sampled_from(("dyadic", "uniform", "ints")))
def test_min_le_avg_le_max(p, dtype, isa, dist):
    """On the same windows: -max_pool(-x) (min pooling, equal to the reference minimum exactly)
    <= avg_pool(x, count_include_pad=False) <= max_pool(x), up to avg's rounding."""
    x = p.x(dtype, dist)
    wk = p.window_kwargs()
    with active_isa(isa):
        mx = _pool("max", p.rank)(x, **wk)
        mn = -_pool("max", p.rank)(-x, **wk)
        av = _pool("avg", p.rank)(x, count_include_pad=False, **wk)
    ref_min = -max_pool_reference(-x.astype(np.float64), p.rank, **wk)[0]
    where = f"[dtype={np.dtype(dtype).name}, isa={isa}, {dist}] {p!r}"
    problems = []
    if exact_error(mn, ref_min) != 0.0:
        problems.append(f"{where}: -max_pool(-x) differs from the reference minimum")
    slack = pool_tolerance(dtype) * _amax(x)
    if not np.all(av >= mn - slack):
        problems.append(f"{where}: avg_pool < min over a window")
    if not np.all(av <= mx + slack):
        problems.append(f"{where}: avg_pool > max over a window")
    assert not problems, "\n".join(problems)


def _inside_windows(p, out_shape):
    """bool array of the output's spatial shape: the windows that lie entirely inside the
    input (no padding, no ceil_mode overhang)."""
    inside = np.ones((1,) * p.rank, dtype=bool)
    sp, osp = p.x_shape[-p.rank:], out_shape[-p.rank:]
    for i, ((k, s, pad, _), L, O) in enumerate(zip(p.geometry(), sp, osp)):
        start = np.arange(O) * s - pad
        ok = (start >= 0) & (start + k <= L)
        shape = [1] * p.rank
        shape[i] = O
        inside = inside & ok.reshape(shape)
    return np.broadcast_to(inside, osp)


@given(p=pool_problems("avg"), dtype=dtypes, isa=isas, c=shifts,
       out=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))
def test_avg_pool_of_constant(p, dtype, isa, c, out):
    """Average pooling of a constant c: c everywhere with count_include_pad=False (no divisor
    override) and for adaptive average pooling; with count_include_pad=True, c on the windows
    inside the input and |y| <= |c| elsewhere (the divisor counts the padding); with a divisor
    override d: c * (taps inside the input) / d. Also: matches the reference."""
    x = np.full(p.x_shape, c, dtype=dtype)
    tol = pool_tolerance(dtype)
    slack = tol * abs(c)
    with active_isa(isa):
        y = _pool("avg", p.rank)(x, **p.kwargs)
        ya = getattr(F, f"adaptive_avg_pool{p.rank}d")(x, out[:p.rank])
        counts = _pool("avg", p.rank)(np.ones(p.x_shape, dtype), **dict(p.kwargs,
                                                                       divisor_override=1))
    where = f"[avg_pool{p.rank}d of {c}, dtype={np.dtype(dtype).name}, isa={isa}] {p!r}"
    problems = []
    ref = avg_pool_reference(x, p.rank, **p.kwargs)
    if not normalized_error(y, ref) <= tol:
        problems.append(f"{where}: error vs the reference {normalized_error(y, ref):.3e}")
    y64 = y.astype(np.float64)
    if "divisor_override" in p.kwargs:
        expect = c * counts.astype(np.float64) / p.kwargs["divisor_override"]
        problems += _scaled_close(y64, expect, slack * max(1.0, float(np.max(counts))), where)
    elif not p.kwargs.get("count_include_pad"):
        problems += _scaled_close(y64, np.full(y.shape, c), slack, where)
    else:
        inside = np.broadcast_to(_inside_windows(p, y.shape), y.shape)
        problems += _scaled_close(y64[inside], np.full(int(inside.sum()), c), slack,
                                  where + " (inside windows)")
        if not np.all(np.abs(y64) <= abs(c) + slack):
            problems.append(f"{where}: |avg| > |c| with count_include_pad=True")
    problems += _scaled_close(ya.astype(np.float64), np.full(ya.shape, c), slack,
                              f"{where} adaptive_avg_pool{p.rank}d(output_size={out[:p.rank]})")
    if not np.array_equal(ya.shape[-p.rank:], out[:p.rank]):
        problems.append(f"{where}: adaptive output shape {ya.shape}")
    assert not problems, "\n".join(problems)


@given(p=st.one_of(pool_problems("avg"), pool_problems("max")),
       out=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
       adaptive=st.booleans())
def test_pool_adjoint_identity(p, out, adaptive):
    """float64: <avg_pool(x), g> = <x, avg_pool_input(g)> (the same with adaptive average
    pooling), and <max_pool(x), g> = <x, max_pool_input(g, indices)> (max pooling selects
    x[indices]), to 1e-12 of <pool(|x|), |g|>."""
    rng = np.random.default_rng(p.seed)
    x = rng.uniform(-1, 1, size=p.x_shape)
    r = p.rank
    if adaptive:
        name = f"adaptive_{p.kind}_pool{r}d"
        fwd, bwd = getattr(F, name), getattr(fgrad, f"{name}_input")
        size = out[:r]
        if p.kind == "max":
            y, idx = fwd(x, size, return_indices=True)
            gx_of = lambda g: bwd(g, idx, p.x_shape)  # noqa: E731
            y_abs = fwd(np.abs(x), size)
        else:
            y = fwd(x, size)
            gx_of = lambda g: bwd(g, p.x_shape)  # noqa: E731
            y_abs = fwd(np.abs(x), size)
    else:
        name = f"{p.kind}_pool{r}d"
        fwd, bwd = getattr(F, name), getattr(fgrad, f"{name}_input")
        if p.kind == "max":
            y, idx = fwd(x, return_indices=True, **p.kwargs)
            gx_of = lambda g: bwd(g, idx, p.x_shape)  # noqa: E731
        else:
            y = fwd(x, **p.kwargs)
            gx_of = lambda g: bwd(g, p.x_shape, **p.kwargs)  # noqa: E731
        y_abs = fwd(np.abs(x), **p.kwargs)
    g = rng.uniform(-1, 1, size=y.shape)
    gx = gx_of(g)
    lhs, rhs = float(np.sum(y * g)), float(np.sum(x * gx))
    cond = float(np.sum(np.abs(y_abs) * np.abs(g)))
    assert abs(lhs - rhs) <= ADJOINT_RTOL * cond, (
        f"[{name}{'' if not adaptive else f'(output_size={out[:r]})'}] <pool(x), g> = {lhs!r} "
        f"but <x, pool_input(g)> = {rhs!r} (cond {cond:.3e}): {p!r}")
