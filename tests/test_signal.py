"""fastconv.signal against the float64 reference and, where installed (the test extra), against
scipy.signal and skimage.feature.match_template.

- correlate / convolve: 240 seeded random cases (1-D to 4-D, bool / integer / float32 /
  float64 / complex64 / complex128, arrays larger and smaller than each other) x every mode x
  every method: same shape and dtype as scipy, values equal to scipy's within the dtype's budget
  (float32 2e-6 normalised, the FFT included; float64 1e-12; integers exactly), and float32 /
  float64 against a float64 reference built here from the definition;
- correlate2d / convolve2d: 240 cases x modes x boundaries (fill with 0 and another value,
  wrap, symm and their other spellings) against scipy;
- choose_conv_method: what 'auto' runs; measure=True times both;
- match_template: 220 cases (2-D and 3-D, float32 / float64 / uint8, pad_input and modes)
  against skimage, and against a float64 reference of the definition; a real image;
- bad input: scipy's exceptions and messages where scipy raises, clear ValueErrors where scipy
  fails obscurely (empty arrays, non-numeric dtypes).
"""

import numpy as np
import pytest

from fastconv import signal
from conftest import fail_if
from reference import normalized_error

N_CASES = 240
KINDS = ["bool", "int32", "uint8", "float32", "float64", "complex64", "complex128"]
TOL = {"float32": 2e-6, "complex64": 2e-6, "float64": 1e-12, "complex128": 1e-12}


def _array(rng, shape, kind):
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind in ("int32", "uint8"):
        return rng.integers(0, 10, shape).astype(kind)
    if kind.startswith("complex"):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(kind)
    return rng.standard_normal(shape).astype(kind)


def random_pair(index):
    """Seeded (in1, in2, kind) of 1 to 4 dimensions; in2 smaller or larger than in1 per axis."""
    rng = np.random.default_rng([7000, index])
    nd = int(rng.integers(1, 5))
    s1 = tuple(int(v) for v in rng.integers(1, [60, 14, 9, 6][nd - 1] + 1, nd))
    s2 = tuple(int(v) for v in rng.integers(1, [40, 9, 6, 4][nd - 1] + 1, nd))
    kind = KINDS[index % len(KINDS)]
    return _array(rng, s1, kind), _array(rng, s2, kind), kind


def _compare(got, want, kind, where):
    if got.shape != want.shape or got.dtype != want.dtype:
        return [f"{where}: shape/dtype {got.shape} {got.dtype}, expected {want.shape} {want.dtype}"]
    if kind in TOL:  # normalized_error, for complex values too
        diff = float(np.max(np.abs(got.astype(np.complex128) - want), initial=0))
        scale = float(np.max(np.abs(want), initial=0))
        err = diff / scale if scale > 0 else diff
        if not err <= TOL[kind]:
            return [f"{where}: error {err:.3e} > {TOL[kind]}"]
        return []
    if not np.array_equal(got, want):
        return [f"{where}: integer results differ"]
    return []


def reference_correlate(in1, in2, mode):
    """float64 / complex128 correlation from the definition (np.correlate per output)."""
    a = in1.astype(np.complex128)
    b = np.conj(in2.astype(np.complex128))
    full_shape = tuple(n + k - 1 for n, k in zip(a.shape, b.shape))
    padded = np.zeros(tuple(n + 2 * (k - 1) for n, k in zip(a.shape, b.shape)), np.complex128)
    padded[tuple(slice(k - 1, k - 1 + n) for n, k in zip(a.shape, b.shape))] = a
    windows = np.lib.stride_tricks.sliding_window_view(padded, b.shape)
    full = np.tensordot(windows, b, axes=a.ndim).reshape(full_shape)
    if mode == "full":
        return full
    if mode == "same":
        start = [(f - n) // 2 for f, n in zip(full_shape, a.shape)]
        return full[tuple(slice(s, s + n) for s, n in zip(start, a.shape))]
    size = [abs(n - k) + 1 for n, k in zip(a.shape, b.shape)]
    start = [min(n, k) - 1 for n, k in zip(a.shape, b.shape)]
    return full[tuple(slice(s, s + n) for s, n in zip(start, size))]


def _valid_ok(s1, s2):
    return all(a >= b for a, b in zip(s1, s2)) or all(b >= a for a, b in zip(s1, s2))


@pytest.mark.parametrize("index", range(N_CASES))
def test_correlate_convolve_against_reference(index):
    in1, in2, kind = random_pair(index)
    problems = []
    for mode in ("full", "same", "valid"):
        if mode == "valid" and not _valid_ok(in1.shape, in2.shape):
            for f in (signal.correlate, signal.convolve):
                with pytest.raises(ValueError, match="one must be at least as large"):
                    f(in1, in2, mode=mode)
            continue
        ref_corr = reference_correlate(in1, in2, mode)
        flipped = in2[(slice(None, None, -1),) * in2.ndim]
        ref_conv = reference_correlate(in1, np.conj(flipped), mode)
        for method in ("auto", "direct", "fft"):
            for name, f, ref in (("correlate", signal.correlate, ref_corr),
                                 ("convolve", signal.convolve, ref_conv)):
                got = f(in1, in2, mode=mode, method=method)
                where = f"{name}({in1.shape} {kind}, {in2.shape}, {mode}, {method}) case {index}"
                want = ref if kind.startswith("complex") else ref.real
                if kind in ("bool", "int32", "uint8"):
                    want = np.around(want).astype(np.result_type(in1, in2))
                else:
                    want = want.astype(got.dtype)
                problems += _compare(got, want, kind, where)
    fail_if(problems)


@pytest.mark.parametrize("index", range(N_CASES))
def test_correlate_convolve_against_scipy(index):
    ss = pytest.importorskip("scipy.signal")
    in1, in2, kind = random_pair(index)
    problems = []
    for mode in ("full", "same", "valid"):
        if mode == "valid" and not _valid_ok(in1.shape, in2.shape):
            continue
        for method in ("auto", "direct", "fft"):
            for name in ("correlate", "convolve"):
                if kind == "bool" and method != "direct":
                    continue  # scipy's FFT casts unrounded sums to bool: 1e-16 becomes True
                try:
                    want = getattr(ss, name)(in1, in2, mode=mode, method=method)
                except ValueError as e:
                    assert "Unsupported type" in str(e), e  # scipy's N-d direct takes no bool
                    continue
                got = getattr(signal, name)(in1, in2, mode=mode, method=method)
                where = f"{name}({in1.shape} {kind}, {in2.shape}, {mode}, {method}) case {index}"
                problems += _compare(got, want, kind, where)
    fail_if(problems)


BOUNDARIES = [("fill", 0), ("fill", 1.5), ("pad", -2), ("wrap", 0), ("circular", 0),
              ("symm", 0), ("symmetric", 0)]


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # scipy's own casts
@pytest.mark.parametrize("index", range(N_CASES))
def test_correlate2d_convolve2d_against_scipy(index):
    ss = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng([7100, index])
    kind = KINDS[index % len(KINDS)]
    in1 = _array(rng, tuple(int(v) for v in rng.integers(1, 13, 2)), kind)
    in2 = _array(rng, tuple(int(v) for v in rng.integers(1, 7, 2)), kind)
    problems = []
    for mode in ("full", "same", "valid"):
        for boundary, fill in BOUNDARIES:
            for name in ("correlate2d", "convolve2d"):
                try:
                    want = getattr(ss, name)(in1, in2, mode, boundary, fill)
                except ValueError as e:
                    if "not available for this type" in str(e) or "could not cast" in str(e):
                        # scipy's 2-D routines take no bool, nor a fill value its C code cannot
                        # cast without loss (1.5 into complex64); fastconv takes both
                        continue
                    with pytest.raises(ValueError, match=str(e)[:20]):
                        getattr(signal, name)(in1, in2, mode, boundary, fill)
                    continue
                got = getattr(signal, name)(in1, in2, mode, boundary, fill)
                where = f"{name}({in1.shape} {kind}, {in2.shape}, {mode}, {boundary}, {fill})"
                problems += _compare(got, want, kind, where)
    fail_if(problems)


def test_fft_float32_accuracy_large():
    """The FFT path on large arrays: float32 within 2e-6 of the float64 reference."""
    rng = np.random.default_rng(11)
    cases = [((3000,), (255,)), ((200, 190), (31, 31)), ((160, 170), (11, 9)), ((20, 22, 18), (7, 5, 6))]
    for s1, s2 in cases:
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        for mode in ("full", "same", "valid"):
            got = signal.correlate(a.astype(np.float32), b.astype(np.float32), mode, method="fft")
            assert got.dtype == np.float32
            assert normalized_error(got, reference_correlate(a, b, mode).real) <= 2e-6, (s1, s2, mode)


def test_choose_conv_method():
    assert signal.choose_conv_method(np.ones((512, 512)), np.ones((31, 31)), mode="valid") == "fft"
    assert signal.choose_conv_method(np.ones(48000, np.float32), np.ones(255, np.float32)) == "fft"
    assert signal.choose_conv_method(np.ones((512, 512)), np.ones((3, 3)), mode="valid") == "direct"
    assert signal.choose_conv_method(np.ones(10), np.ones(3)) == "direct"
    method, times = signal.choose_conv_method(np.ones(300), np.ones(30), measure=True)
    assert method in ("fft", "direct") and set(times) == {"fft", "direct"}
    assert method == min(times, key=times.get) and all(t > 0 for t in times.values())


def test_zero_dimensional_like_scipy():
    assert signal.correlate(np.array(3.0), np.array(2j)) == -6j
    assert signal.convolve(np.array(3.0), np.array(2j)) == 6j


@pytest.mark.parametrize("call,error,message", [
    (lambda: signal.correlate([1, 2], [1], mode="x"), ValueError, "Acceptable mode flags"),
    (lambda: signal.convolve([1, 2], [1], method="x"), ValueError, "Acceptable method flags"),
    (lambda: signal.correlate([[1, 2]], [1, 2]), ValueError, "same dimensionality"),
    (lambda: signal.correlate(np.ones((3, 1)), np.ones((1, 3)), mode="valid"), ValueError,
     "one must be at least as large as the other in every dimension"),
    (lambda: signal.correlate(np.array([]), np.array([1.0])), ValueError, "must not be empty"),
    (lambda: signal.convolve(np.ones((2, 0)), np.ones((1, 1))), ValueError, "must not be empty"),
    (lambda: signal.correlate(np.array(["a"]), np.array(["b"])), ValueError, "in1 must hold numbers"),
    (lambda: signal.correlate2d(np.ones(3), np.ones(3)), ValueError,
     "correlate2d inputs must both be 2-D arrays"),
    (lambda: signal.convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary="zero"), ValueError,
     "Acceptable boundary flags"),
    (lambda: signal.correlate2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=[1, 2]), ValueError,
     "`fillvalue` must be scalar"),
    (lambda: signal.choose_conv_method([1, 2], [1], mode="x"), ValueError, "Acceptable mode"),
    (lambda: signal.match_template(np.ones(5), np.ones(2)), ValueError, "2-D or 3-D"),
    (lambda: signal.match_template(np.ones((5, 5)), np.ones(2)), ValueError, "template must have"),
    (lambda: signal.match_template(np.ones((5, 5)), np.ones((6, 2))), ValueError,
     "Image must be larger than template"),
    (lambda: signal.match_template(np.ones((5, 5), complex), np.ones((2, 2))), ValueError,
     "must be real"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_input_as_scipy_raises():
    """The errors scipy raises, with its messages."""
    ss = pytest.importorskip("scipy.signal")
    calls = [
        lambda m: m.correlate([1, 2], [1], mode="x"),
        lambda m: m.convolve([1, 2], [1], method="x"),
        lambda m: m.correlate([[1, 2]], [1, 2]),
        lambda m: m.convolve(np.ones((2, 3)), np.ones((3, 2)), mode="valid"),
        lambda m: m.correlate2d(np.ones(3), np.ones(3)),
        lambda m: m.correlate2d(np.ones((3, 3)), np.ones((2, 2)), boundary="xx"),
        lambda m: m.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=[1, 2]),
    ]
    for call in calls:
        with pytest.raises(ValueError) as theirs:
            call(ss)
        with pytest.raises(ValueError) as ours:
            call(signal)
        assert str(theirs.value) == str(ours.value)


# ------------------------------------------------------------------------------- match_template
def reference_match(image, template, pad_input, mode, constant_values):
    """float64 normalised cross-correlation from the definition, window by window."""
    image = image.astype(np.float64)
    t = template.astype(np.float64)
    if pad_input:
        pads = [(k // 2, k - 1 - k // 2) for k in t.shape]
        kw = {"constant_values": constant_values} if mode == "constant" else {}
        image = np.pad(image, pads, mode=mode, **kw)
    windows = np.lib.stride_tricks.sliding_window_view(image, t.shape)
    axes = tuple(range(image.ndim, 2 * image.ndim))
    wc = windows - windows.mean(axis=axes, keepdims=True)
    tc = t - t.mean()
    num = np.tensordot(wc, tc, axes=t.ndim)
    den = np.sqrt(np.sum(wc * wc, axis=axes) * np.sum(tc * tc))
    out = np.zeros(num.shape)
    ok = den > np.finfo(np.float64).eps
    out[ok] = num[ok] / den[ok]
    return out


def match_case(index):
    rng = np.random.default_rng([7200, index])
    nd = 2 if index % 5 else 3
    s1 = tuple(int(v) for v in rng.integers(4, 40 if nd == 2 else 13, nd))
    s2 = tuple(int(min(a, v)) for a, v in zip(s1, rng.integers(1, 9, nd)))
    dtype = [np.float32, np.float64, np.uint8][index % 3]
    image = (rng.random(s1) * 200).astype(dtype)
    template = (rng.random(s2) * 200).astype(dtype)
    pad_input = bool(index % 2)
    mode = ["constant", "edge", "reflect", "symmetric", "wrap"][index % 5]
    return image, template, pad_input, mode, float(index % 3)


@pytest.mark.parametrize("index", range(220))
def test_match_template(index):
    image, template, pad_input, mode, cval = match_case(index)
    got = signal.match_template(image, template, pad_input=pad_input, mode=mode,
                                constant_values=cval)
    want = reference_match(image, template, pad_input, mode, cval)
    assert got.dtype == (np.float32 if image.dtype == np.float32 else np.float64)
    assert got.shape == want.shape
    tol = 1e-3 if got.dtype == np.float32 else 1e-9
    assert np.max(np.abs(got - want), initial=0) <= tol
    try:
        from skimage.feature import match_template as sk_match
    except ImportError:
        return
    theirs = sk_match(image, template, pad_input=pad_input, mode=mode, constant_values=cval)
    assert theirs.shape == got.shape and theirs.dtype == got.dtype
    # skimage's window sums (cumulative sums) lose digits that fastconv keeps: the two agree
    # within skimage's own error to the definition (up to 2e-2 in float32 here) plus fastconv's
    their_err = float(np.max(np.abs(theirs - want), initial=0))
    assert np.max(np.abs(theirs - got), initial=0) <= their_err + tol
    assert got.dtype == np.float32 or their_err <= 1e-5


def test_match_template_real_image():
    data = pytest.importorskip("skimage.data")
    from skimage.feature import match_template as sk_match
    image = data.camera()
    template = image[300:331, 190:221]
    got = signal.match_template(image, template)
    assert np.unravel_index(np.argmax(got), got.shape) == (300, 190)
    assert abs(float(got.max()) - 1.0) < 1e-9
    assert np.max(np.abs(got - sk_match(image, template))) <= 1e-7
