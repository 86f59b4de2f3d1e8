"""Correlation, convolution and template matching on N-d arrays, with ``scipy.signal``'s
semantics (and scikit-image's for :func:`match_template`), computed by fastconv's convolution.

Each call is one convolution of the core (``fastconv.functional``): ``in1`` is the input,
``in2`` the kernel, the mode a zero padding and a crop. ``method`` picks the algorithm:
``'direct'`` sums the definition (fastconv's ``direct``), ``'fft'`` uses fastconv's ``fft``
(overlap-save tiles, or whole 2-D planes for a single channel), ``'auto'`` lets the core's cost
model choose. Complex arrays are two channels (real and imaginary part) of one convolution;
integer and boolean arrays are computed in float64 and rounded back to their type, as scipy
does; float32 stays float32 (float16 is computed in float32). Arrays of more than three
dimensions run as sums of 3-D correlations over their leading axes. :func:`match_template`
computes its numerator and window sums as three groups of one convolution.

>>> import numpy as np
>>> from fastconv import signal
>>> signal.correlate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
array([0.5, 2. , 3.5, 3. , 0. ])
"""

from __future__ import annotations

import time

import numpy as np

from . import _core
from ._ops.conv import conv1d, conv2d, conv3d

__all__ = ["correlate", "convolve", "correlate2d", "convolve2d", "choose_conv_method",
           "match_template"]

_CONV = {1: conv1d, 2: conv2d, 3: conv3d}
_METHODS = {"auto": "auto", "direct": "direct", "fft": "fft"}
_MODES = ("full", "same", "valid")
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm"}


# ------------------------------------------------------------------------------ argument checks
def _check_mode(mode):
    if mode not in _MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.")
    return mode


def _check_method(method):
    if method not in _METHODS:
        raise ValueError("Acceptable method flags are 'auto', 'direct', or 'fft'.")
    return _METHODS[method]


def _numeric(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biufc":
        raise ValueError(f"{name} must hold numbers (bool, integer, float or complex), "
                         f"got dtype {a.dtype}")
    return a


def _pair(in1, in2):
    in1, in2 = _numeric(in1, "in1"), _numeric(in2, "in2")
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.ndim > 0 and (in1.size == 0 or in2.size == 0):
        raise ValueError(f"in1 and in2 must not be empty (shapes {in1.shape} and {in2.shape})")
    return in1, in2


def _types(in1, in2):
    """(result dtype, real dtype the core computes in, whether complex, whether to round)."""
    result = np.result_type(in1, in2)
    if result.kind == "c":
        return result, (np.float32 if result == np.complex64 else np.float64), True, False
    if result.kind in "biu":
        return result, np.float64, False, True
    return result, (np.float64 if result.itemsize > 4 else np.float32), False, False


def _dominates(s1, s2):
    return all(a >= b for a, b in zip(s1, s2))


# ------------------------------------------------------------------------------ the core
def _symmetric_pads(s1, s2, lo, out_shape):
    """Zero padding on both sides of each axis that covers outputs o < out reading
    x[o + j - lo], j < kernel: the larger of the two sides needed (the output is cropped)."""
    return [max(l, o + k - 1 - l - n, 0) for n, k, l, o in zip(s1, s2, lo, out_shape)]


def _correlate_channels(x, w, lo, out_shape, algo):
    """z[k][o] = sum_c sum_j x[c][o + j - lo] w[k][c][j], x zero outside its extent.

    x: (C, *spatial), w: (K, C, *kernel), real and of one float dtype; lo and out_shape per
    spatial axis. Up to three spatial axes are one fastconv convolution (symmetric zero padding
    covering both sides, then a crop); more are sums over the first axis.
    """
    nd = x.ndim - 1
    K = w.shape[0]
    if nd > 3:
        z = np.zeros((K,) + tuple(out_shape), x.dtype)
        for o0 in range(out_shape[0]):
            for j0 in range(w.shape[2]):
                i0 = o0 + j0 - lo[0]
                if 0 <= i0 < x.shape[1]:
                    z[:, o0] += _correlate_channels(x[:, i0], w[:, :, j0], lo[1:],
                                                    out_shape[1:], algo)
        return z
    pads = _symmetric_pads(x.shape[1:], w.shape[2:], lo, out_shape)
    crop = [slice(p - l, p - l + o) for p, l, o in zip(pads, lo, out_shape)]
    y = _CONV[nd](x[None], w, padding=tuple(pads), algo=algo)[0]
    return y[(slice(None),) + tuple(crop)]


def _correlate(in1, in2, lo, out_shape, algo, conjugate):
    """sum_j in1[o + j - lo] in2[j] (conjugate: conj(in2[j])) in the dtypes of scipy."""
    result, real, is_complex, rounding = _types(in1, in2)
    if is_complex:
        x = np.stack([in1.real, in1.imag]).astype(real)
        wr, wi = np.asarray(in2.real, real), np.asarray(in2.imag, real)
        # (xr + i xi)(wr - s i wi), s = 1 for conj(w): real part xr wr + s xi wi, imaginary part
        # xi wr - s xr wi; as two output channels over the input channels (xr, xi).
        s = 1 if conjugate else -1
        w = np.stack([np.stack([wr, s * wi]), np.stack([-s * wi, wr])])
        z = _correlate_channels(x, w, lo, out_shape, algo)
        return (z[0] + 1j * z[1]).astype(result)
    z = _correlate_channels(in1.astype(real)[None], in2.astype(real)[None, None], lo, out_shape,
                            algo)[0]
    if rounding:
        z = np.around(z)
    return z.astype(result)


def _geometry(s1, s2, mode):
    """lo and output shape of the correlation of shapes s1 (in1) and s2 (in2) in `mode`."""
    if mode == "full":
        return [k - 1 for k in s2], [n + k - 1 for n, k in zip(s1, s2)]
    if mode == "same":
        return [k - 1 - (k - 1) // 2 for k in s2], list(s1)
    if not (_dominates(s1, s2) or _dominates(s2, s1)):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                         "every dimension")
    return [max(0, k - n) for n, k in zip(s1, s2)], [abs(n - k) + 1 for n, k in zip(s1, s2)]


# ------------------------------------------------------------------------------ public API
def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays, as ``scipy.signal.correlate``.

    ``z[k] = sum_l in1[l] * conj(in2[l - k + s2 - 1])`` over the overlap ('full'), cropped to
    the centre of in1's shape ('same') or to the positions where one array covers the other
    ('valid').

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions (bool, integer, float or complex).
    mode : {'full', 'valid', 'same'}
        Output size, as scipy: full ``s1 + s2 - 1``, same ``s1``, valid ``|s1 - s2| + 1`` (one
        array must be at least as large as the other in every dimension).
    method : {'auto', 'direct', 'fft'}
        'direct' sums the definition, 'fft' uses FFT tiles, 'auto' picks by a cost model.

    Returns
    -------
    ndarray
        In ``np.result_type(in1, in2)``; integers are rounded from a float64 result.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import correlate
    >>> correlate(np.array([1, 2, 3]), np.array([0, 1, 2]))
    array([2, 5, 8, 3, 0])
    >>> correlate(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32), mode='valid').shape
    (3, 3)
    """
    _check_mode(mode)
    algo = _check_method(method)
    in1, in2 = _pair(in1, in2)
    if in1.ndim == 0:
        return in1 * in2.conj()
    lo, out = _geometry(in1.shape, in2.shape, mode)
    return _correlate(in1, in2, lo, out, algo, conjugate=True)


def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays, as ``scipy.signal.convolve``.

    ``z[k] = sum_l in1[l] * in2[k - l]`` over the overlap, with the modes of :func:`correlate`.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions.
    mode : {'full', 'valid', 'same'}
    method : {'auto', 'direct', 'fft'}

    Returns
    -------
    ndarray
        In ``np.result_type(in1, in2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import convolve
    >>> convolve(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    _check_mode(mode)
    algo = _check_method(method)
    in1, in2 = _pair(in1, in2)
    if in1.ndim == 0:
        return in1 * in2
    lo, out = _geometry(in1.shape, in2.shape, mode)
    flipped = in2[(slice(None, None, -1),) * in2.ndim]
    return _correlate(in1, flipped, lo, out, algo, conjugate=False)


def _fillvalue(fillvalue):
    v = np.asarray(fillvalue)
    if v.size != 1:
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    return v.reshape(())


def _two_d(in1, in2, name, mode, boundary, fillvalue, flip):
    _check_mode(mode)
    if boundary not in _BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and "
                         "'symmetric' (or 'symm').")
    in1, in2 = _numeric(in1, "in1"), _numeric(in2, "in2")
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays")
    if in1.size == 0 or in2.size == 0:
        raise ValueError(f"in1 and in2 must not be empty (shapes {in1.shape} and {in2.shape})")
    fill = _fillvalue(fillvalue)
    kernel = in2[::-1, ::-1] if flip else in2
    if mode == "valid":
        if not (_dominates(in1.shape, in2.shape) or _dominates(in2.shape, in1.shape)):
            raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                             "every dimension")
        if not _dominates(in1.shape, in2.shape):
            # scipy swaps the arrays and reverses the result (for correlate2d without the
            # conjugation that correlate applies)
            k2 = in1[::-1, ::-1] if flip else in1
            z = _correlate(in2, k2, [0, 0], [a - b + 1 for a, b in zip(in2.shape, in1.shape)],
                           "auto", conjugate=not flip)
            return z if flip else z[::-1, ::-1]
        return _correlate(in1, kernel, [0, 0], [a - b + 1 for a, b in zip(in1.shape, in2.shape)],
                          "auto", conjugate=not flip)
    lo, out = _geometry(in1.shape, in2.shape, mode)
    if mode == "same" and not flip:
        # correlate2d centres 'same' one element earlier than correlate for even kernels
        lo = [(k - 1) // 2 for k in in2.shape]
    kind = _BOUNDARIES[boundary]
    # the fill value in the arrays' type, as scipy casts it (1.5 fills an integer array with 1)
    fill = fill.astype(np.result_type(in1, in2), casting="unsafe")
    if kind == "fill" and fill == 0:
        return _correlate(in1, kernel, lo, out, "auto", conjugate=not flip)
    # Pad in1 as the boundary says, far enough for every output, then correlate 'valid'.
    pads = [(l, o + k - 1 - l - n) for n, k, l, o in zip(in1.shape, in2.shape, lo, out)]
    pads = [(max(a, 0), max(b, 0)) for a, b in pads]
    if kind == "fill":
        padded = np.pad(in1.astype(fill.dtype, copy=False), pads, mode="constant",
                        constant_values=fill)
    else:
        padded = np.pad(in1, pads, mode="wrap" if kind == "wrap" else "symmetric")
    z = _correlate(padded, kernel, [0, 0], out, "auto", conjugate=not flip)
    return z.astype(np.result_type(in1, in2), copy=False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays with a boundary condition, as ``scipy.signal.correlate2d``.

    Parameters
    ----------
    in1, in2 : array_like
        2-D arrays.
    mode : {'full', 'valid', 'same'}
    boundary : {'fill', 'wrap', 'symm'}
        How in1 extends beyond its edges: ``fillvalue``, periodically, or mirrored with the
        edge repeated (also spelt 'pad', 'circular', 'symmetric').
    fillvalue : scalar
        The value of 'fill'.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import correlate2d
    >>> correlate2d(np.eye(3), np.ones((2, 2)), mode='same', boundary='wrap')
    array([[2., 1., 1.],
           [1., 2., 1.],
           [1., 1., 2.]])
    """
    return _two_d(in1, in2, "correlate2d", mode, boundary, fillvalue, flip=False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays with a boundary condition, as ``scipy.signal.convolve2d``.

    Parameters
    ----------
    in1, in2 : array_like
        2-D arrays.
    mode : {'full', 'valid', 'same'}
    boundary : {'fill', 'wrap', 'symm'}
    fillvalue : scalar

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import convolve2d
    >>> sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    >>> convolve2d(np.tile(np.arange(5), (5, 1)), sobel_x, mode='valid')  # d/dx of a ramp
    array([[8, 8, 8],
           [8, 8, 8],
           [8, 8, 8]])
    """
    return _two_d(in1, in2, "convolve2d", mode, boundary, fillvalue, flip=True)


def _resolved_algo(in1, in2, mode):
    """The algorithm 'auto' runs for correlate(in1, in2, mode) (on its last three axes)."""
    _, real, is_complex, _ = _types(in1, in2)
    lo, out = _geometry(in1.shape, in2.shape, mode)
    axes = min(in1.ndim, 3)
    s1, s2 = in1.shape[-axes:], in2.shape[-axes:]
    lo, out = lo[-axes:], out[-axes:]
    pads = _symmetric_pads(s1, s2, lo, out)
    c = 2 if is_complex else 1
    return _core.conv_algorithm(axes, "forward", [1, c] + list(s1), [c, c] + list(s2),
                                [1] * axes, pads, [1] * axes, 1, "zeros",
                                np.dtype(real).name, "auto")


def choose_conv_method(in1, in2, mode="full", measure=False):
    """The method :func:`correlate` / :func:`convolve` use with ``method='auto'``, as
    ``scipy.signal.choose_conv_method``.

    Parameters
    ----------
    in1, in2 : array_like
    mode : {'full', 'valid', 'same'}
    measure : bool
        Time both methods on these arrays and return the faster with the times.

    Returns
    -------
    method : {'direct', 'fft'}
    times : dict, only with ``measure=True``
        Seconds per call of each method (median of a few runs).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import choose_conv_method
    >>> choose_conv_method(np.ones((512, 512)), np.ones((31, 31)), mode='valid')
    'fft'
    >>> choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    """
    _check_mode(mode)
    in1, in2 = _pair(in1, in2)
    if measure:
        times = {}
        for method in ("fft", "direct"):
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                convolve(in1, in2, mode=mode, method=method)
                runs.append(time.perf_counter() - t)
            times[method] = float(np.median(runs))
        return min(times, key=times.get), times
    if in1.ndim == 0:
        return "direct"
    _geometry(in1.shape, in2.shape, mode)  # the checks of the mode
    return "fft" if _resolved_algo(in1, in2, mode) == "fft" else "direct"


def match_template(image, template, pad_input=False, mode="constant", constant_values=0):
    """Normalised cross-correlation of a template over an image, as
    ``skimage.feature.match_template``.

    ``response[o] = sum_j (I[o + j] - mean_o(I)) (T[j] - mean(T)) / sqrt(sum_j (I[o + j] -
    mean_o(I))^2 sum_j (T[j] - mean(T))^2)``, with ``mean_o`` over the window at o; 0 where the
    window is flat (denominator at most the dtype's epsilon).

    Parameters
    ----------
    image : array_like
        2-D or 3-D image.
    template : array_like
        Template of the image's dimensions, no larger than it.
    pad_input : bool
        False: the positions where the template fits inside the image (shape image - template
        + 1). True: one position per pixel (the image's shape), the template centred on it and
        the image padded by ``mode``.
    mode : str
        ``numpy.pad`` mode of that padding.
    constant_values : scalar
        The value of ``mode='constant'``.

    Returns
    -------
    ndarray
        float32 for float16 / float32 images, else float64; values in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.signal import match_template
    >>> image = np.zeros((8, 8)); image[3:5, 4:6] = [[1, 2], [3, 4]]
    >>> r = match_template(image, np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> [int(i) for i in np.unravel_index(np.argmax(r), r.shape)], round(float(r.max()), 6)
    ([3, 4], 1.0)
    """
    image, template = _numeric(image, "image"), _numeric(template, "template")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D or 3-D, got {image.ndim} dimensions")
    if template.ndim != image.ndim:
        raise ValueError(f"template must have the image's {image.ndim} dimensions, got "
                         f"{template.ndim}")
    if image.dtype.kind == "c" or template.dtype.kind == "c":
        raise ValueError("image and template must be real")
    if template.size == 0 or any(i < t for i, t in zip(image.shape, template.shape)):
        raise ValueError(f"Image must be larger than template (image {image.shape}, template "
                         f"{template.shape}).")
    dtype = np.float64 if image.dtype.kind != "f" or image.dtype.itemsize > 4 else np.float32
    image = image.astype(dtype, copy=False)
    if pad_input:
        pads = [(t // 2, t - 1 - t // 2) for t in template.shape]
        kw = {"constant_values": constant_values} if mode == "constant" else {}
        image = np.pad(image, pads, mode=mode, **kw)
    t = template.astype(np.float64)
    t = t - t.mean()
    ssd = float(np.sum(t * t))
    volume = t.size
    # The response does not change when the image shifts by a constant; centring it keeps the
    # window variances (sums of squares minus squared sums) from cancelling.
    centred = (image - image.mean(dtype=np.float64)).astype(dtype)
    # One grouped convolution of three planes: the numerator (the image against the centred
    # template) and the window sums of the image and of its square (against ones).
    planes = np.stack([centred, centred, centred * centred])[None]
    ones = np.ones(template.shape, dtype)
    kernels = np.stack([t.astype(dtype), ones, ones])[:, None]
    numerator, sums, sums2 = _CONV[image.ndim](planes, kernels, groups=3)[0]
    variance = np.maximum(sums2 - sums * sums / dtype(volume), 0)
    denominator = np.sqrt(variance * dtype(ssd))
    response = np.zeros(numerator.shape, dtype)
    ok = denominator > np.finfo(dtype).eps
    response[ok] = numerator[ok] / denominator[ok]
    return response
