"""Runtime controls: info(), ISA selection (set_isa / FASTCONV_ISA), threads, packaged data.

Also: results do not depend on the thread count (bit-identical forward conv), concurrent calls
from Python threads are safe, and a fork()ed child can still run convolutions.
"""

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from conftest import ALGOS, SHARED_LAYERS, packaged_layers_path, skip_if_declined, tolerance_for
from reference import conv_reference, normalized_error

ISA_ORDER = ["scalar", "avx2", "avx512"]


def _child(code, env_extra=None, env_remove=(), timeout=120):
    env = dict(os.environ)
    for k in env_remove:
        env.pop(k, None)
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout.strip()


@pytest.fixture
def restore_threads():
    n = fastconv.get_num_threads()
    yield n
    fastconv.set_num_threads(n)


# ---------------------------------------------------------------- info()
def test_info_keys_and_types():
    info = fastconv.info()
    assert isinstance(info, dict)
    expected = {"version", "isa", "isas", "fma_pipes", "num_threads", "compiler", "eigen", "openmp"}
    assert expected <= set(info), f"missing keys: {expected - set(info)}"
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["isa"], str)
    assert isinstance(info["isas"], list) and all(isinstance(i, str) for i in info["isas"])
    assert isinstance(info["num_threads"], int) and not isinstance(info["num_threads"], bool)
    assert info["num_threads"] >= 1
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert info["fma_pipes"] in (1, 2)
    for key in ("eigen", "openmp"):  # a flag or a version description
        assert isinstance(info[key], (bool, str, int)), (key, info[key])


def test_info_consistent_with_getters():
    info = fastconv.info()
    assert info["isa"] == fastconv.get_isa()
    assert info["isa"] in info["isas"]
    assert info["num_threads"] == fastconv.get_num_threads()


def test_isas_ascending_and_contains_scalar():
    isas = fastconv.info()["isas"]
    assert "scalar" in isas and isas[0] == "scalar"
    assert set(isas) <= set(ISA_ORDER), isas
    assert isas == sorted(isas, key=ISA_ORDER.index), isas
    assert len(set(isas)) == len(isas)


def test_algorithms_registry():
    algos = fastconv.algorithms()
    assert isinstance(algos, list) and algos
    assert all(isinstance(a, str) and a for a in algos)
    assert len(set(algos)) == len(algos)
    assert "auto" not in algos


def test_version_matches_package():
    v = fastconv.info()["version"]
    if hasattr(fastconv, "__version__"):
        assert fastconv.__version__ == v


# ---------------------------------------------------------------- ISA selection
def test_set_isa_round_trip():
    isas = fastconv.info()["isas"]
    start = fastconv.get_isa()
    try:
        for name in isas + list(reversed(isas)):
            before = fastconv.get_isa()
            prev = fastconv.set_isa(name)
            assert prev == before
            assert fastconv.get_isa() == name
            assert fastconv.info()["isa"] == name
    finally:
        fastconv.set_isa(start)
    assert fastconv.get_isa() == start


def test_fma_pipes_follow_the_isa():
    """Two FMA pipes only for avx512 (on Intel cores); scalar and avx2 keep the one-pipe model."""
    isas = fastconv.info()["isas"]
    start = fastconv.get_isa()
    try:
        for name in isas:
            fastconv.set_isa(name)
            pipes = fastconv.info()["fma_pipes"]
            assert pipes in ((1, 2) if name == "avx512" else (1,)), (name, pipes)
    finally:
        fastconv.set_isa(start)


@pytest.mark.parametrize("bad", ["foo", "", "AVX2", "sse2", "avx512 "])
def test_set_isa_unknown(bad):
    before = fastconv.get_isa()
    with pytest.raises(ValueError):
        fastconv.set_isa(bad)
    assert fastconv.get_isa() == before


def test_set_isa_above_cap_rejected():
    """Names the cap (or the CPU) excludes are rejected, not silently accepted."""
    isas = fastconv.info()["isas"]
    missing = [i for i in ISA_ORDER if i not in isas]
    if not missing:
        pytest.skip("every ISA is available here")
    with pytest.raises(ValueError):
        fastconv.set_isa(missing[0])


def test_default_isa_is_best_available():
    out = _child("import fastconv; i = fastconv.info(); print(i['isa'], ','.join(i['isas']))",
                 env_remove=("FASTCONV_ISA",))
    isa, isas = out.split()
    assert isa == isas.split(",")[-1]


@pytest.mark.parametrize("cap", ISA_ORDER)
def test_env_cap(cap):
    full = _child("import fastconv; print(','.join(fastconv.info()['isas']))",
                  env_remove=("FASTCONV_ISA",)).split(",")
    if cap not in full:
        pytest.skip(f"{cap} not available on this CPU/build")
    out = _child("import fastconv; i = fastconv.info(); print(i['isa']); "
                 "print(','.join(i['isas']))",
                 env_extra={"FASTCONV_ISA": cap})
    isa, isas = out.splitlines()
    assert isa == cap
    assert isas.split(",") == full[: full.index(cap) + 1]


def test_env_scalar_prints_scalar():
    out = _child("import fastconv; print(fastconv.info()['isa'])",
                 env_extra={"FASTCONV_ISA": "scalar"})
    assert out == "scalar"


def test_env_capped_results_match(tmp_path):
    """The scalar path chosen by FASTCONV_ISA gives the reference result in a fresh process."""
    out_file = tmp_path / "y.npy"
    code = ("import sys, numpy as np, fastconv\n"
            "from fastconv import functional as F\n"
            "r = np.random.default_rng(0)\n"
            "x = r.standard_normal((1, 3, 9, 9)); w = r.standard_normal((4, 3, 3, 3))\n"
            "np.save(sys.argv[1], F.conv2d(x, w, padding=1))\n"
            "print(fastconv.get_isa())\n")
    p = subprocess.run([sys.executable, "-c", code, str(out_file)], capture_output=True,
                       text=True, env=dict(os.environ, FASTCONV_ISA="scalar"), timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "scalar"
    y = np.load(out_file)
    r = np.random.default_rng(0)
    x = r.standard_normal((1, 3, 9, 9))
    w = r.standard_normal((4, 3, 3, 3))
    assert normalized_error(y, conv_reference(x, w, padding=1)) <= 1e-12


# ---------------------------------------------------------------- threads
def test_num_threads_round_trip(restore_threads):
    for n in (1, 2, 3, 1, restore_threads):
        fastconv.set_num_threads(n)
        assert fastconv.get_num_threads() == n
        assert fastconv.info()["num_threads"] == n


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_num_threads_invalid(bad, restore_threads):
    with pytest.raises(ValueError):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == restore_threads


def test_default_threads_respect_omp_num_threads():
    out = _child("import fastconv; print(fastconv.get_num_threads())",
                 env_extra={"OMP_NUM_THREADS": "1"})
    assert out == "1"


def _thread_case(rank, dtype):
    rng = np.random.default_rng(rank)
    sp = {1: (200,), 2: (23, 29), 3: (7, 9, 11)}[rank]
    x = rng.uniform(-1, 1, (3, 8) + sp).astype(dtype)
    w = rng.uniform(-1, 1, (12, 4) + (3,) * rank).astype(dtype)
    b = rng.uniform(-1, 1, 12).astype(dtype)
    return x, w, b, dict(padding=1, groups=2)


CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_results_independent_of_threads(rank, dtype, algo, isa, restore_threads):
    x, w, b, kw = _thread_case(rank, dtype)
    outs = {}
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        with skip_if_declined(algo):
            outs[n] = CONV[rank](x, w, b, algo=algo, **kw)
        # an unbatched input (batch 1) must also split across threads without changing bits
        outs[(n, "unbatched")] = CONV[rank](x[0], w, b, algo=algo, **kw)
    for n in (2, 3):
        assert outs[n].tobytes() == outs[1].tobytes(), f"{n} threads differ from 1"
        assert outs[(n, "unbatched")].tobytes() == outs[(1, "unbatched")].tobytes()
    assert normalized_error(outs[1], conv_reference(x, w, b, **kw)) <= tolerance_for(algo, dtype)


def test_concurrent_calls_from_python_threads():
    """Re-entrant core: calls from several Python threads at once give the serial results."""
    rng = np.random.default_rng(11)
    jobs = []
    for i in range(8):
        x = rng.standard_normal((2, 8, 17 + i, 15)).astype(np.float32)
        w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
        jobs.append((x, w, ALGOS[i % len(ALGOS)]))
    expected = [F.conv2d(x, w, padding=1, groups=2, algo=a).tobytes() for x, w, a in jobs]
    results = [None] * len(jobs)
    errors = []

    def work(i):
        try:
            x, w, a = jobs[i]
            for _ in range(5):
                y = F.conv2d(x, w, padding=1, groups=2, algo=a).tobytes()
                if y != expected[i]:
                    results[i] = "mismatch"
                    return
            results[i] = "ok"
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert results == ["ok"] * len(jobs)


def _fork_child(q):
    x = np.ones((1, 4, 16, 16), np.float32)
    w = np.ones((8, 4, 3, 3), np.float32)
    q.put(float(F.conv2d(x, w, padding=1)[0, 0, 5, 5]))


@pytest.mark.skipif(not hasattr(os, "fork") or "fork" not in mp.get_all_start_methods(),
                    reason="needs fork()")
def test_fork_after_parallel_work(restore_threads):
    """After the parent ran multi-threaded work, a fork()ed child computes instead of hanging."""
    fastconv.set_num_threads(2)
    x = np.ones((2, 8, 32, 32), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    F.conv2d(x, w, padding=1)  # start the thread pool in the parent
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_fork_child, args=(q,))
    p.start()
    p.join(timeout=20)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail("forked child hung in a convolution")
    assert p.exitcode == 0
    assert q.get(timeout=5) == 36.0


# ---------------------------------------------------------------- packaged data
def test_packaged_layers_equal_shared():
    if not SHARED_LAYERS.is_file():
        pytest.skip("shared/shapes/layers.json not present (outside the workspace)")
    packaged = packaged_layers_path()
    assert packaged is not None, "python/fastconv/data/layers.json is missing"
    assert packaged.read_bytes() == SHARED_LAYERS.read_bytes(), (
        f"{packaged} differs from {SHARED_LAYERS}: copy the shared file into the package")


def test_packaged_layers_well_formed():
    packaged = packaged_layers_path()
    assert packaged is not None
    layers = json.loads(packaged.read_text(encoding="utf-8"))["layers"]
    names = [l["name"] for l in layers]
    assert len(names) == len(set(names))
    for l in layers:
        r = len(l["input"])
        assert r in (1, 2, 3)
        for key in ("kernel", "stride", "padding", "dilation"):
            assert len(l[key]) == r, (l["name"], key)
        if l["op"] == "conv":
            assert l["C"] % l["groups"] == 0 and l["K"] % l["groups"] == 0
