"""fork() (reliability issue, point 7): a child started by multiprocessing's 'fork' context after
the parent computed on 2 threads runs every op of the mixed set (tests/test_concurrency.py)
without hanging and with the parent's bytes.

libgomp's thread pool does not survive fork(): the child's copy of the forking thread still
counts the parent's workers, and a parallel region of more than one thread started from it
waits for them forever. fastconv therefore
- sets one thread in the child (runtime.cpp's pthread_atfork handler): get_num_threads() == 1;
- when the child asks for more (set_num_threads(2)), runs each call on a new thread, whose
  OpenMP team libgomp creates afresh (cpp/bindings/module.cpp, compute()): the child computes on
  2 threads instead of hanging.
Every child is joined with a timeout, then killed and the test failed: a hang cannot block CI.
"""

import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import functional as F
from test_concurrency import as_bytes, mixed_ops

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork") or "fork" not in mp.get_all_start_methods(),
                       reason="needs fork()"),
    # Python >= 3.12 warns about fork() in a process with threads (OpenMP's workers count):
    # forking such a process is what these tests are about
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

CHILD_TIMEOUT = 60  # seconds; a child takes well under one
REPEATS = 20


@pytest.fixture(scope="module")
def ops_and_expected():
    """The mixed ops and their results in the parent, computed on 2 threads (which starts the
    parent's OpenMP workers; results do not depend on the thread count)."""
    n = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        ops = mixed_ops()
        expected = [as_bytes(fn()) for _, fn in ops]
        yield ops, expected
    finally:
        fastconv.set_num_threads(n)


def _child(conn, ops, expected, threads):
    """Runs in the forked child: every op, compared with the parent's bytes."""
    try:
        report = {"threads_at_start": fastconv.get_num_threads()}
        if threads is not None:
            fastconv.set_num_threads(threads)
        report["threads"] = fastconv.get_num_threads()
        report["mismatches"] = [name for (name, fn), e in zip(ops, expected) if as_bytes(fn()) != e]
        # a Python thread of the child computes too (its own OpenMP team)
        out = []
        t = threading.Thread(target=lambda: out.append(as_bytes(ops[0][1]())))
        t.start()
        t.join()
        report["thread_ok"] = out == [expected[0]]
        conn.send(report)
    except BaseException as e:  # noqa: BLE001 -- reported to the parent
        conn.send({"error": repr(e)})
    finally:
        conn.close()


def _run_child(ops, expected, threads):
    """Fork a child running _child; its report, or a test failure if it hangs or dies."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(send, ops, expected, threads))
    p.start()
    send.close()
    p.join(CHILD_TIMEOUT)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"forked child (set_num_threads({threads})) hung for {CHILD_TIMEOUT} s")
    assert p.exitcode == 0, f"forked child died with exit code {p.exitcode}"
    assert recv.poll(5), "forked child sent no report"
    report = recv.recv()
    assert "error" not in report, report["error"]
    return report


@pytest.mark.parametrize("threads", [None, 1, 2], ids=["default", "set_1", "set_2"])
def test_forked_child_runs_every_op(ops_and_expected, threads):
    """After the parent used 2 threads, REPEATS forked children each run every op: with the
    child's default (1 thread), after set_num_threads(1), and after set_num_threads(2) (which
    libgomp alone would hang on)."""
    ops, expected = ops_and_expected
    fastconv.set_num_threads(2)
    F.conv2d(np.ones((2, 16, 32, 32), np.float32), np.ones((16, 16, 3, 3), np.float32),
             padding=1)  # the parent's team of 2 is live at the fork
    repeats = REPEATS if threads is None else REPEATS // 2
    for _ in range(repeats):
        report = _run_child(ops, expected, threads)
        assert report["threads_at_start"] == 1
        assert report["threads"] == (threads or 1)
        assert report["mismatches"] == []
        assert report["thread_ok"]
    assert fastconv.get_num_threads() == 2  # the parent's setting is its own


def test_fork_while_other_threads_compute(ops_and_expected):
    """Forking while other Python threads of the parent are inside parallel regions: the
    child (which has only the forking thread) still runs the mixed set, at 1 and 2 threads."""
    ops, expected = ops_and_expected
    fastconv.set_num_threads(2)
    stop = threading.Event()

    def busy(k):
        while not stop.is_set():
            for _, fn in ops[k::3]:
                fn()

    workers = [threading.Thread(target=busy, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.05)
        for threads in (None, 2, None, 2):
            report = _run_child(ops, expected, threads)
            assert report["mismatches"] == [] and report["thread_ok"]
    finally:
        stop.set()
        for w in workers:
            w.join(60)
