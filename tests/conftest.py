"""Shared fixtures of the fastconv test suite.

- ``isa``: parametrised over ``fastconv.info()['isas']``; activates that ISA for the test and
  restores the previous one afterwards.
- ``algo``: parametrised over ``fastconv.algorithms()`` (the registry; never hard-coded names).
- ``load_layers()`` / ``layers``: the standard layer set, from
  ``<workspace>/shared/shapes/layers.json`` when it exists, else the packaged copy
  ``python/fastconv/data/layers.json``.
- ``record_error``: tests report each normalised error here; the worst one per entry point
  (forward, input, weight, bias, transpose, transpose_input, transpose_weight) and dtype (and
  per algorithm) is printed in the terminal summary at the end of the session.
- ``ALGOS_BY_DIRECTION`` and the fixtures ``fwd_algo`` / ``bwd_data_algo`` / ``bwd_weights_algo``:
  the registry filtered by ``fastconv.algorithms(direction)``, for the gradient and transposed
  convolution tests.
- ``tolerance_for`` / ``compare_with_reference`` / ``fail_if``: the accuracy budget of DESIGN.md
  and the common output checks (ndarray, dtype, shape, C-contiguous, NaN-free, error <= budget)
  shared by the gradient and transposed-convolution tests.
- hypothesis profiles for the property-based tests (test_properties.py): ``default`` (a fixed,
  derandomized budget, loaded unless told otherwise) and ``long`` (many randomized examples),
  selected with ``pytest --hypothesis-profile=long`` or ``FASTCONV_HYPOTHESIS_PROFILE=long``.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# tests import the float64 oracle as `reference`, whatever pytest's import mode is
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import fastconv  # noqa: E402

# ---------------------------------------------------------------- hypothesis profiles
# default: the same examples on every run (CI is reproducible), no deadline (shared, noisy
# machines), sized so that tests/test_properties.py takes well under a minute on 2 cores.
# long: randomized, ~40x the examples (about 10 minutes on 2 cores).
# `--hypothesis-profile=NAME` (the hypothesis pytest plugin, applied after this file is
# imported) overrides FASTCONV_HYPOTHESIS_PROFILE.
# ('long' is registered first: profiles inherit from the current default profile, and a
# derandomized one has no example database, which 'long' keeps, in .hypothesis/.)
HYPOTHESIS_PROFILES = {
    "long": dict(max_examples=1500, derandomize=False),
    "default": dict(max_examples=40, derandomize=True),
}
try:
    from hypothesis import HealthCheck, settings as _hyp_settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    _hyp_settings = None
if _hyp_settings is not None:
    for _name, _kw in HYPOTHESIS_PROFILES.items():
        _hyp_settings.register_profile(_name, deadline=None, print_blob=True,
                                       suppress_health_check=[HealthCheck.too_slow], **_kw)
    _hyp_settings.load_profile(os.environ.get("FASTCONV_HYPOTHESIS_PROFILE", "default"))

SHARED_LAYERS = Path(__file__).resolve().parents[2] / "shared" / "shapes" / "layers.json"
PACKAGED_LAYERS_IN_REPO = REPO_ROOT / "python" / "fastconv" / "data" / "layers.json"

ISAS = list(fastconv.info()["isas"])


def fma_pipes_of(isa):
    """fastconv.info()['fma_pipes'] with `isa` active (1 for an ISA not available here): the
    register tiles of its kernels follow it (kernels/avx512/kernels_avx512.cpp)."""
    if isa not in ISAS:
        return 1
    start = fastconv.get_isa()
    try:
        fastconv.set_isa(isa)
        return fastconv.info()["fma_pipes"]
    finally:
        fastconv.set_isa(start)


ALGOS = list(fastconv.algorithms())
DIRECTIONS = ("forward", "backward_data", "backward_weights")


def _algorithms_for(direction):
    try:
        return list(fastconv.algorithms(direction))
    except TypeError:  # a build without the direction argument (before issue 3)
        return list(ALGOS)


# direction -> the algorithms that implement it (never hard-coded names)
ALGOS_BY_DIRECTION = {d: _algorithms_for(d) for d in DIRECTIONS}


def packaged_layers_path():
    """The packaged layers.json: the repo copy, or the one inside the installed package."""
    if PACKAGED_LAYERS_IN_REPO.is_file():
        return PACKAGED_LAYERS_IN_REPO
    try:
        from importlib.resources import files

        p = files("fastconv") / "data" / "layers.json"
        if p.is_file():
            return Path(str(p))
    except Exception:  # pragma: no cover - resources unavailable
        pass
    return None


def layers_path():
    if SHARED_LAYERS.is_file():
        return SHARED_LAYERS
    p = packaged_layers_path()
    if p is None:
        pytest.skip("no layers.json found (neither shared/shapes nor the packaged copy)")
    return p


def load_layers(op=None):
    """List of layer dicts from layers.json, optionally only those with the given op."""
    with open(layers_path(), encoding="utf-8") as f:
        layers = json.load(f)["layers"]
    return [l for l in layers if op is None or l["op"] == op]


@pytest.fixture(scope="session")
def layers():
    return load_layers()


@pytest.fixture(params=ISAS)
def isa(request):
    prev = fastconv.set_isa(request.param)
    try:
        assert fastconv.get_isa() == request.param
        yield request.param
    finally:
        fastconv.set_isa(prev)


@pytest.fixture(params=ALGOS)
def algo(request):
    return request.param


@pytest.fixture(params=ALGOS_BY_DIRECTION["forward"])
def fwd_algo(request):
    return request.param


@pytest.fixture(params=ALGOS_BY_DIRECTION["backward_data"])
def bwd_data_algo(request):
    return request.param


@pytest.fixture(params=ALGOS_BY_DIRECTION["backward_weights"])
def bwd_weights_algo(request):
    return request.param


# ---------------------------------------------------------------- worst-error bookkeeping
# entry points in summary order (the op a normalised error was measured on)
ENTRY_POINTS = ("forward", "input", "weight", "bias", "transpose", "transpose_input",
                "transpose_weight")
# key (entry point, dtype name, algo) -> (error, isa, case description)
WORST_ERRORS = {}
# algo -> number of (config, isa, dtype) combinations it declined with "does not support"
DECLINED = {}


def _record(dtype, algo, err, isa="", case="", entry="forward"):
    key = (entry, np.dtype(dtype).name, algo)
    if key not in WORST_ERRORS or err > WORST_ERRORS[key][0]:
        WORST_ERRORS[key] = (float(err), isa, case)


def _record_declined(algo):
    DECLINED[algo] = DECLINED.get(algo, 0) + 1


def spreads_non_finite(algo):
    """Whether the named `algo` may turn outputs NaN whose window holds no NaN or Inf.

    Winograd's and the FFT's transforms mix the inputs of a whole tile (DESIGN.md,
    winograd.cpp, fft.cpp); every other algorithm, and 'auto' (which computes such inputs by
    another algorithm), keeps the definition's pattern. The same mixing makes their rounding
    error scale with a tile's norm rather than with each output's own terms.
    """
    return algo.startswith("winograd") or algo == "fft"


class ConvCaseShape:
    """rank and batched of a test case holding arrays x and w (a mixin for the Case dataclasses)."""

    @property
    def rank(self):
        return self.w.ndim - 2

    @property
    def batched(self):
        return self.x.ndim == self.rank + 2


def _declines(algo, error):
    """Whether `error` is the named `algo`'s documented refusal of a problem outside its domain
    (counted in the session summary). 'auto' never declines."""
    if algo not in (None, "auto") and "does not support" in str(error):
        _record_declined(algo)
        return True
    return False


def unless_declined(algo, call):
    """call(), or None when the named `algo` refuses the problem (see skip_if_declined).

    For tests that run one problem through several algorithms: the ones whose domain excludes
    it are left out (and counted in the session summary), the others still checked.
    """
    try:
        return call()
    except ValueError as e:
        if _declines(algo, e):
            return None
        raise


@contextlib.contextmanager
def skip_if_declined(algo):
    """Skip the test when the named `algo` refuses the problem the block runs.

    A named algorithm outside its domain (e.g. Winograd on a stride-2 or 5x5 problem) raises
    ValueError "... does not support this problem ...: <reason>": its documented answer, not
    a failure. 'auto' never declines, so its errors still fail.
    """
    try:
        yield
    except ValueError as e:
        if _declines(algo, e):
            pytest.skip(f"{algo} declines: {e}")
        raise


@pytest.fixture(scope="session")
def record_error():
    """record_error(dtype, algo, err, isa='', case='', entry='forward') -> None.

    entry: one of ENTRY_POINTS (the op whose output was compared with the reference).
    """
    return _record


@pytest.fixture(scope="session")
def record_declined():
    return _record_declined


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not WORST_ERRORS:
        return
    tr = terminalreporter
    tr.section("fastconv worst normalised error (max|y-ref| / max|ref| vs float64 reference)")
    info = fastconv.info()
    tr.write_line(f"isas tested: {ISAS}; algorithms: {ALGOS}; threads: {info.get('num_threads')}")
    if any(ALGOS_BY_DIRECTION[d] != ALGOS for d in DIRECTIONS):
        tr.write_line(f"algorithms by direction: {ALGOS_BY_DIRECTION}")
    entries = [e for e in ENTRY_POINTS if any(k[0] == e for k in WORST_ERRORS)]
    entries += sorted({k[0] for k in WORST_ERRORS} - set(ENTRY_POINTS))
    for entry in entries:
        for dt in sorted({k[1] for k in WORST_ERRORS if k[0] == entry}):
            items = [(v, k[2]) for k, v in WORST_ERRORS.items() if k[:2] == (entry, dt)]
            (err, isa_, case), algo_ = max(items, key=lambda t: t[0][0])
            tr.write_line(f"{entry:>16} {dt}: worst {err:.3e}  "
                          f"(algo={algo_}, isa={isa_}, case={case})")
            for (e, i, c), a in sorted(items, key=lambda t: t[1]):
                tr.write_line(f"{'':>16}     {dt} {a:>16}: {e:.3e}  (isa={i}, case={c})")
    if DECLINED:
        tr.write_line(f"combinations declined with 'does not support': {DECLINED}")


# ---------------------------------------------------------------- shared checks (grad/transpose)
# accuracy budget (DESIGN.md): float32 per algorithm (names not listed get the default), float64
FP32_TOL_DEFAULT = 2e-6
# Winograd F(4,3) / F(6,3), and the `winograd` entry, which picks one of them for most problems.
FP32_TOL_BY_ALGO = {"winograd": 5e-5, "winograd_f4x3": 5e-5, "winograd_f6x3": 5e-5}
FP64_TOL = 1e-12


def tolerance_for(algo, dtype, direction="forward"):
    """Accuracy budget of `algo` ('auto': the loosest algorithm of that direction)."""
    if np.dtype(dtype) == np.float64:
        return FP64_TOL
    if algo == "auto":
        return max([FP32_TOL_DEFAULT] + [tolerance_for(a, dtype, direction)
                                         for a in ALGOS_BY_DIRECTION[direction]])
    return FP32_TOL_BY_ALGO.get(algo, FP32_TOL_DEFAULT)


def compare_with_reference(y, ref, dtype, tol, where):
    """Check a fastconv result against its float64 reference.

    Returns (problems, err): problems is a list of strings (empty when right); err is the
    normalised error, or None when it could not be measured (wrong type/shape, NaN).
    """
    from reference import normalized_error

    if not isinstance(y, np.ndarray):
        return [f"{where}: returned {type(y).__name__}, not ndarray"], None
    problems = []
    if y.dtype != np.dtype(dtype):
        problems.append(f"{where}: dtype {y.dtype}, expected {np.dtype(dtype)}")
    if y.shape != ref.shape:
        return problems + [f"{where}: shape {y.shape}, expected {ref.shape}"], None
    if not y.flags.c_contiguous:
        problems.append(f"{where}: output not C-contiguous (strides {y.strides})")
    if np.isnan(y).any():
        problems.append(f"{where}: NaN in output at {np.argwhere(np.isnan(y))[:5].tolist()}")
        return problems, None
    err = normalized_error(y, ref)
    if not err <= tol:
        idx = np.unravel_index(np.argmax(np.abs(y.astype(np.float64) - ref)), ref.shape)
        problems.append(f"{where}: normalised error {err:.3e} > {tol:.1e} "
                        f"(worst at {tuple(int(i) for i in idx)}: got {y[idx]!r}, "
                        f"ref {ref[idx]!r})")
    return problems, err


def layout_problems(y, ref, dtype, where):
    """What is wrong with y's type, shape, dtype or memory layout for the reference `ref`."""
    if not isinstance(y, np.ndarray) or y.shape != ref.shape or y.dtype != np.dtype(dtype):
        return [f"{where}: got {type(y).__name__} {getattr(y, 'shape', '')} "
                f"{getattr(y, 'dtype', '')}, expected {ref.shape} {np.dtype(dtype)}"]
    return [] if y.flags.c_contiguous else [f"{where}: output not C-contiguous"]


def special_value_problems(y, ref, where, noun="outputs"):
    """Where y's NaN, +Inf and -Inf differ from the float64 reference's (a list of strings)."""
    problems = []
    for what, mask in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        got, want = mask(y), mask(ref)
        if not np.array_equal(got, want):
            extra = np.argwhere(got & ~want)[:4].tolist()
            missing = np.argwhere(want & ~got)[:4].tolist()
            problems.append(f"{where}: {what} at {int(got.sum())} {noun}, reference "
                            f"{int(want.sum())} (unexpected at {extra}, missing at {missing})")
    return problems


def fail_if(problems, limit=15):
    """pytest.fail with the first `limit` problems (each names its configuration)."""
    if problems:
        more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
        pytest.fail(f"{len(problems)} problem(s):\n" + "\n".join(problems[:limit]) + more,
                    pytrace=False)


# ---------------------------------------------------------------- pooling (issue 4)
# Pooling results are recorded with record_error(dtype, f"{rank}d", err, isa, case, entry=...)
# under these entry points (the summary lists them after the convolution ones; max pooling must
# be exact, so its worst error is 0 when everything is right).
POOL_ENTRY_POINTS = ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool",
                     "max_pool_input", "avg_pool_input", "adaptive_avg_pool_input",
                     "adaptive_max_pool_input")
ENTRY_POINTS = ENTRY_POINTS + tuple(e for e in POOL_ENTRY_POINTS if e not in ENTRY_POINTS)
# accuracy budget of the averaging pools and of all pooling gradients (DESIGN.md: avg <= 1e-6)
POOL_FP32_TOL = 1e-6
POOL_FP64_TOL = 1e-12


def pool_tolerance(dtype):
    """Normalised-error budget of average pooling and of the pooling gradients."""
    return POOL_FP64_TOL if np.dtype(dtype) == np.float64 else POOL_FP32_TOL


def exact_error(y, ref):
    """0.0 when y equals ref exactly (NaN where ref is NaN, same infinities), else the
    normalised error of the finite part (inf when the NaN / inf pattern differs)."""
    from reference import normalized_error

    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if y.shape != ref.shape:
        return float("inf")
    if np.array_equal(y, ref, equal_nan=True):
        return 0.0
    finite = np.isfinite(ref)
    if not np.array_equal(np.isfinite(y), finite) or not np.array_equal(y[~finite], ref[~finite],
                                                                        equal_nan=True):
        return float("inf")
    return max(normalized_error(y[finite], ref[finite]), np.finfo(np.float64).tiny)


@pytest.fixture
def isa_restored():
    """Yields fastconv.set_isa; the ISA active before the test is restored afterwards."""
    prev = fastconv.get_isa()
    try:
        yield fastconv.set_isa
    finally:
        fastconv.set_isa(prev)
    assert fastconv.get_isa() == prev


@pytest.fixture
def threads_restored():
    """Yields fastconv.set_num_threads; the previous thread count is restored afterwards."""
    prev = fastconv.get_num_threads()
    try:
        yield fastconv.set_num_threads
    finally:
        fastconv.set_num_threads(prev)
    assert fastconv.get_num_threads() == prev
