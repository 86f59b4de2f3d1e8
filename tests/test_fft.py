"""FFT convolution (conv/fft.cpp) against the float64 reference, beyond the registry-wide suites
(which already run `fft` on every random configuration, layer, plan and layout test).

- large kernels: 1-D filters of 31 to 255 taps over long signals, 2-D kernels of 11 to 31 with
  many channels, 3-D kernels, dilation (the WaveNet layer's 2 taps 256 apart), groups (up to
  depthwise over 960 channels: the pointwise path of one input channel per group), in every
  direction, float32 within DESIGN.md's 2e-6 and float64 within 1e-12; the shapes make the
  cost model pick FFT extents with every radix (2, 3, 4, 5), tiles that end inside the
  output on every axis, and both lane assignments: by tile and by channel (odd and padded
  channel counts, several chunks, the weights transformed in the tasks in one and in two
  chunks of input channels; up to 8 kernels, each transformed alone, in 2-D and 3-D, dilated;
  cpp/tests/test_kernels_transform.cpp checks the model's choice);
- chunks: a problem whose spectra exceed one chunk (8 MiB) runs in several and gives the same
  result as the reference;
- execution: results bit-identical on 1 and 2 threads, on every ISA, and plans equal the
  functional call (tiles by tile and by channel, whose stateless calls transform the weights
  in their tasks; one input channel per group in a single vector group, whose passes 2
  threads split, with 1 to 16 output channels and 144 groups; the whole-plane path of one
  channel pair on 2-D planes);
- execution of the weight gradient: bits equal on 1 and 2 threads, on every ISA (dy whole on
  the whole-plane path for one output channel per group, and in pieces by tile);
- auto: picks the FFT for the large-kernel layers of layers.json (forward; the weight
  gradient of the 13 x 13, 31 x 31 and template layers) and not for 3x3 / 1x1 ones (nor for
  GoogLeNet's 5x5, a near tie of the cost models);
- domain: stride other than 1 is declined with the reason.
"""

import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv import functional as F
from fastconv import grad as G
from conftest import fail_if
from reference import conv_input_grad, conv_reference, conv_weight_grad, normalized_error

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
INPUT_GRAD = {1: G.conv1d_input, 2: G.conv2d_input, 3: G.conv3d_input}
WEIGHT_GRAD = {1: G.conv1d_weight, 2: G.conv2d_weight, 3: G.conv3d_weight}
TOL = {np.float32: 2e-6, np.float64: 1e-12}

# name: (x shape, w shape, kwargs)
CASES = {
    "1d_255_taps": ((1, 1, 4000), (1, 1, 255), dict(padding=127)),
    "1d_31_taps_channels": ((2, 6, 700), (5, 6, 31), dict(padding=15)),
    "1d_dilated_wavenet": ((1, 8, 1500), (8, 8, 2), dict(dilation=256)),
    "1d_groups_dilation": ((2, 6, 333), (9, 2, 7), dict(groups=3, dilation=5, padding=4)),
    "2d_template_31": ((1, 1, 150, 170), (1, 1, 31, 31), dict()),
    # the whole-plane path: one 2-D transform per plane, two planes
    "2d_whole_plane_33": ((2, 1, 96, 90), (1, 1, 33, 33), dict()),
    "2d_11x11_channels": ((1, 8, 45, 39), (12, 8, 11, 11), dict(padding=5)),
    "2d_13x13_64": ((1, 64, 28, 28), (64, 64, 13, 13), dict(padding=6)),
    # lanes by channel, the weights transformed in the tasks in two chunks of input channels
    # (the second odd), output channels padded to whole vectors
    "2d_21x21_71_in_tasks": ((1, 71, 30, 30), (20, 71, 21, 21), dict(padding=10)),
    "2d_5x5_batch_groups": ((3, 8, 27, 25), (12, 4, 5, 5), dict(padding=2, groups=2)),
    "2d_wide_1x25": ((2, 3, 17, 90), (4, 3, 1, 25), dict(padding=(0, 12))),
    "2d_tall_15x2_dilated": ((1, 4, 80, 30), (3, 4, 15, 2), dict(dilation=(2, 3))),
    # one input channel per group: the pointwise path (many groups, channel multiplier, 1 -> K)
    "2d_depthwise_960": ((2, 960, 7, 7), (960, 1, 3, 3), dict(groups=960, padding=1)),
    "2d_multiplier_144": ((1, 144, 30, 30), (288, 1, 5, 5), dict(groups=144, padding=2)),
    "2d_one_to_16": ((1, 1, 64, 64), (16, 1, 9, 9), dict(padding=4)),
    # at most 8 kernels: each transformed alone (WeightTransform::run_one), boxes whose last
    # axis is and is not whole vectors
    "2d_few_kernels_dilated": ((2, 1, 50, 47), (5, 1, 7, 9), dict(dilation=(2, 1), padding=3)),
    "3d_one_kernel": ((1, 1, 12, 20, 18), (1, 1, 5, 3, 7), dict(padding=(2, 1, 3))),
    "3d_5x5x5": ((1, 3, 14, 15, 13), (4, 3, 5, 5, 5), dict(padding=2)),
    "3d_depth_1": ((2, 2, 3, 20, 21), (3, 2, 1, 7, 7), dict(padding=(0, 3, 3))),
}


def _data(name, dtype):
    x_shape, w_shape, kw = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    return x, w, b, kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_large_kernels_every_direction(name, dtype, isa, record_error):
    x, w, b, kw = _data(name, dtype)
    rank = w.ndim - 2
    problems = []
    y = CONV[rank](x.astype(dtype), w.astype(dtype), b.astype(dtype), algo="fft", **kw)
    ref = conv_reference(x, w, b, **kw)
    gy = np.random.default_rng(1).standard_normal(ref.shape)
    results = {
        "forward": (y, ref),
        "input": (INPUT_GRAD[rank](x.shape, w.astype(dtype), gy.astype(dtype), algo="fft", **kw),
                  conv_input_grad(x.shape, w, gy, **kw)),
        "weight": (WEIGHT_GRAD[rank](x.astype(dtype), w.shape, gy.astype(dtype), algo="fft", **kw),
                   conv_weight_grad(x, w.shape, gy, **kw)),
    }
    for entry, (got, want) in results.items():
        assert got.dtype == dtype and got.shape == want.shape
        err = normalized_error(got, want)
        record_error(dtype, "fft", err, isa, name,
                     entry={"input": "input", "weight": "weight"}.get(entry, "forward"))
        if not err <= TOL[dtype]:
            problems.append(f"{name} {entry} {np.dtype(dtype).name}: error {err:.3e}")
    fail_if(problems)


def test_several_chunks():
    """Spectra of (C + K) x tiles x frequencies beyond one 8 MiB chunk: the chunks' results
    join without seams."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 8, 170, 170))
    w = rng.standard_normal((8, 8, 9, 9))
    y = F.conv2d(x.astype(np.float32), w.astype(np.float32), algo="fft", padding=4)
    assert normalized_error(y, conv_reference(x, w, padding=4)) <= TOL[np.float32]


@pytest.mark.parametrize("name", ["2d_11x11_channels", "1d_255_taps", "3d_5x5x5", "2d_template_31",
                                  "2d_13x13_64", "2d_21x21_71_in_tasks", "2d_one_to_16",
                                  "2d_multiplier_144", "2d_whole_plane_33",
                                  "2d_few_kernels_dilated", "3d_one_kernel"])
def test_threads_isas_and_plans_agree(name, isa_restored, threads_restored):
    x, w, b, kw = _data(name, np.float32)
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    rank = w.ndim - 2
    ref = conv_reference(x, w, b, **kw)
    for isa in fastconv.info()["isas"]:
        fastconv.set_isa(isa)
        runs = []
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            runs.append(CONV[rank](x, w, b, algo="fft", **kw))
            runs.append(fastconv.plan(w, b, algo="fft", **kw)(x))
        assert all(r.tobytes() == runs[0].tobytes() for r in runs), isa
        assert normalized_error(runs[0], ref) <= TOL[np.float32], isa


@pytest.mark.parametrize("name", ["2d_template_31", "2d_whole_plane_33", "2d_depthwise_960",
                                  "2d_13x13_64"])
def test_weight_gradient_threads_and_isas_agree(name, isa_restored, threads_restored):
    """The weight gradient's bits do not depend on the thread count (the whole-plane path for
    one output channel per group: template matching's, two images, 960 groups; by tile)."""
    x, w, _, kw = _data(name, np.float32)
    x = x.astype(np.float32)
    gy = np.random.default_rng(2).standard_normal(
        conv_reference(x, w, **kw).shape).astype(np.float32)
    rank = w.ndim - 2
    for isa in fastconv.info()["isas"]:
        fastconv.set_isa(isa)
        runs = []
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            runs.append(WEIGHT_GRAD[rank](x, w.shape, gy, algo="fft", **kw))
        assert runs[0].tobytes() == runs[1].tobytes(), isa


def _resolved(layer, direction="forward"):
    r = len(layer["input"])
    return _core.conv_algorithm(
        r, direction, [layer["N"], layer["C"]] + layer["input"],
        [layer["K"], layer["C"] // layer["groups"]] + layer["kernel"], layer["stride"],
        layer["padding"], layer["dilation"], layer["groups"], "zeros", "float32", "auto")


def test_auto_takes_fft_for_large_kernels(layers):
    conv = {l["name"]: l for l in layers if l["op"] == "conv"}
    for name in ("large13x13_64_28", "large31x31_32_28", "template31_512", "conv1d_long_k255"):
        assert _resolved(conv[name]) == "fft", name
    # Weight gradients: the 13 x 13 layer's (measured 5.2 against direct's 7.0 ms on 1 thread;
    # the by-tile model had its inverse transforms at a forward's cost) and template
    # matching's (dy whole on the whole-plane path: 3.6 against 19 ms).
    for name in ("large13x13_64_28", "large31x31_32_28", "template31_512"):
        assert _resolved(conv[name], "backward_weights") == "fft", name
    for name, layer in conv.items():
        if max(layer["kernel"]) <= 3 and "c3d" not in name:
            assert _resolved(layer) != "fft", name
    # GoogLeNet's 5x5 (16 -> 32 on 28 x 28) with AVX-512 on two FMA pipes (the Intel Xeon's
    # profile): the models within 1 % of each other, under kFftMargin, so the exact methods
    # keep it (measured faster there in both directions). With avx2's 8 lanes the models part
    # further and the FFT keeps it (measured faster there on 1 thread: 0.17 against 0.21 ms).
    if fastconv.get_isa() == "avx512" and fastconv.info()["fma_pipes"] >= 2:
        for direction in ("forward", "backward_data"):
            assert _resolved(conv["googlenet_5x5_32_28"], direction) != "fft", direction


def test_declines_strides():
    x = np.ones((1, 2, 20, 20), np.float32)
    w = np.ones((3, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="algo 'fft' does not support this problem.*stride must be 1"):
        F.conv2d(x, w, stride=2, algo="fft")
    with pytest.raises(ValueError, match="stride must be 1"):
        G.conv2d_weight(x, w.shape, np.ones((1, 3, 8, 8), np.float32), stride=2, algo="fft")
