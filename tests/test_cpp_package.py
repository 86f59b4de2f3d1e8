"""The C++ library as an installed CMake package: the core built alone (static by default,
shared with FASTCONV_BUILD_SHARED=ON), its C++ tests run by ctest (cpp/tests/), then
`cmake --install` into a temporary prefix and two programs
configured with find_package(fastconv CONFIG REQUIRED), built against it and run: the API check
of tests/cpp_package/ (convolution, normalisation, linear and an error through the public
headers) and the example examples/cpp/ (a small CNN on generated data and on a PGM image)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CMAKE = shutil.which("cmake")


def run(*cmd, cwd=None):
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(CMAKE is None, reason="cmake is not on PATH (it is in the test extra)")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the build is tested on Linux")
@pytest.mark.parametrize("shared", ["OFF", "ON"])
def test_installed_package_builds_and_runs_a_program(tmp_path, shared):
    build, prefix, app = tmp_path / "build", tmp_path / "prefix", tmp_path / "app"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(CMAKE, "-S", REPO, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release",
        f"-DFASTCONV_BUILD_SHARED={shared}", f"-DCMAKE_INSTALL_PREFIX={prefix}")
    run(CMAKE, "--build", build, "--parallel", "2")
    ctest = Path(CMAKE).with_name("ctest")
    out = run(ctest if ctest.exists() else "ctest", "--test-dir", build, "--output-on-failure")
    assert "100% tests passed" in out  # cpp/tests/: the public API on every ISA, guard regions
    run(CMAKE, "--install", build)
    assert (prefix / "include" / "fastconv" / "fastconv.hpp").is_file()
    config = list(prefix.glob("lib*/cmake/fastconv/fastconvConfig.cmake"))
    assert config, "no package config installed"
    libs = list(prefix.glob("lib*/libfastconv.so*" if shared == "ON" else "lib*/libfastconv.a"))
    assert libs, "no library installed"
    run(CMAKE, "-S", REPO / "tests" / "cpp_package", "-B", app, *generator,
        f"-DCMAKE_PREFIX_PATH={prefix}")
    run(CMAKE, "--build", app)
    out = run(app / "consumer")
    assert "conv centre 27.0 corner 12.0" in out
    assert "layer_norm mean 22.7" in out
    assert "linear 5808.0" in out
    assert "error: conv2d: Given groups=1" in out
    example = tmp_path / "example"
    run(CMAKE, "-S", REPO / "examples" / "cpp", "-B", example, *generator,
        f"-DCMAKE_PREFIX_PATH={prefix}")
    run(CMAKE, "--build", example)
    out = run(example / "small_cnn")
    assert "input 64 x 64" in out and "predicted class" in out and "ms per inference" in out
    probs = [float(v) for v in out.split("class probabilities:")[1].split("\n")[0].split()]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-2
    pgm = tmp_path / "image.pgm"
    pixels = bytes((i * 7 + j * 3) % 256 for i in range(40) for j in range(50))
    pgm.write_bytes(b"P5\n50 40\n255\n" + pixels)
    assert "input 40 x 50" in run(example / "small_cnn", pgm)
    bad = subprocess.run([str(example / "small_cnn"), str(tmp_path / "missing.pgm")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "not a binary 8-bit PGM" in bad.stderr
