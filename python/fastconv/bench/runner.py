"""The benchmark run: header, the op × layer × threads loop, summary and JSON.

For every selected :data:`~fastconv.bench.ops.OPS` entry (``--op``) and every selected
layer it runs on, inputs are made once; then, per thread count, every method (each fastconv
algorithm, and each of the op's peers: torch, torch channels_last, ONNX Runtime) is
prepared and called once to warm up and to check its result against the reference peer
(the first that runs: torch), and all of them are timed together, interleaved, by
:func:`~fastconv.bench.timing.measure`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shlex
import statistics
import sys
import time
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cli import build_parser
from .layers import Layer, find_layers_file, load_layers, select_layers
from .ops import NO_ALGO, OPS, PLAN, OpSpec, layer_ops, ops_for
from .peak import BANDWIDTH_SOURCE, PEAK_SOURCE, bandwidth_line, peak_line, usable_cores
from .peers import Peer, backend_versions, peer_names, to_numpy
from .report import Progress, Table, cpu_model, summary_lines, write_json
from .results import write_markdown, write_plot
from .timing import MIN_ROUNDS, cpu_busy, measure, others_busy, own_cpu, proc_stat

__all__ = ["MISMATCH_TOL", "main", "run"]

MISMATCH_TOL = 1e-3  # max|y - y_ref| / max|y_ref| above this is flagged (ref: the reference peer)
BUSY_CORES_WARN = 0.25  # warn when other processes use more than this many cores
_PARAM_KEYS = ("N", "C", "K", "input", "kernel", "stride", "padding", "output_padding", "dilation", "groups")


def _layer_rng(seed: int, name: str) -> np.random.Generator:
    # Depends on the layer name, not its position: the same layer gets the
    # same inputs whatever the selection.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _rel_diff(a: Any, ref: Any) -> float:
    """max|a - ref| / max|ref|; inf when the shapes differ."""
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return math.inf
    if not ref.size:
        return 0.0
    scale, diff = float(np.max(np.abs(ref))), float(np.max(np.abs(a - ref)))
    return diff / scale if scale > 0 else diff


def _split_names(values: Sequence[str]) -> List[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-list options), without repeats."""
    return list(dict.fromkeys(n for v in values for n in v.replace(" ", "").split(",") if n))


def _skip_reason(layer: Layer) -> str:
    if layer.get("op") in layer_ops():
        return "no selected --op runs on it"
    return "not benchmarked yet"


def _size_text(layer: Layer, spec: OpSpec) -> str:
    if spec.flops is not None:
        return f"{spec.flops(layer) / 1e6:.0f} MFLOP"
    return f"{spec.bytes(layer) / 1e6:.1f} MB moved" if spec.bytes is not None else ""


def _print_list(selection: str, layers: Sequence[Layer], skipped: Sequence[Layer], ops: Sequence[str]) -> None:
    print(selection)
    for l in layers:
        size = _size_text(l, ops_for(l, ops)[0][1])
        names = ",".join(name for name, _ in ops_for(l, ops))
        print(f"  {l['name']:<32} {l['op']:<14} N={l['N']} C={l['C']} K={l['K']} input={l['input']} "
              f"kernel={l['kernel']} stride={l['stride']} groups={l.get('groups', 1)}  {size}  [{names}]")
    for l in skipped:
        print(f"  {l['name']:<32} {l['op']} ({_skip_reason(l)})")


def _per_s(amount: Optional[int], ms: Optional[float]) -> Optional[float]:
    """``amount`` (FLOPs or bytes) per ``ms`` milliseconds, in G/s; None when either is unknown."""
    return amount / (ms * 1e-3) / 1e9 if amount is not None and ms else None


def _failure(e: BaseException) -> Tuple[str, str]:
    """Status and reason of a method that raised: a ValueError means "does not apply" (n/a)."""
    if isinstance(e, ValueError):
        return "n/a", str(e)
    return "error", f"{type(e).__name__}: {e}"


def _bench(
    layer: Layer, op: str, spec: OpSpec, arrays: Tuple[np.ndarray, ...], peers: Sequence[Peer],
    algos: Sequence[str], threads: int, peak: float, peak_bw: float, args: argparse.Namespace,
) -> List[Dict[str, Any]]:
    """Prepare, warm up, check and time every method on one layer at one thread count.

    Returns one result row per algorithm (the JSON ``results`` entries); each row
    carries every peer's figures under ``peers``.
    """
    flops = spec.flops(layer) if spec.flops is not None else None
    nbytes = spec.bytes(layer) if spec.bytes is not None else None
    params = {k: layer[k] for k in _PARAM_KEYS if k in layer}
    params["output"] = spec.output_size(layer)
    rows: List[Dict[str, Any]] = []
    methods: Dict[Tuple[str, str], Callable[[], Any]] = {}  # ("fastconv", algo) / ("peer", name)
    outputs: Dict[Tuple[str, str], np.ndarray] = {}
    for algo in algos:
        row = {"layer": layer["name"], "net": layer.get("net"), "op": op, "params": params, "flops": flops,
               "bytes": nbytes, "threads": threads, "algo": algo, "status": "ok", "reason": None,
               "samples_ms": None, "median_ms": None, "min_ms": None, "rounds": 0,
               "gflops": None, "peak_gflops": peak if flops is not None else None, "pct_peak": None,
               "gbps": None, "peak_gbps": peak_bw if nbytes is not None else None, "pct_bw": None,
               "reference": None, "max_rel_diff_vs_ref": None, "mismatch": False, "best": False}
        try:
            call = spec.fastconv(layer, arrays, algo)
            outputs[("fastconv", algo)] = to_numpy(call())  # warm-up
            methods[("fastconv", algo)] = call
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
            status, reason = _failure(e)
            row.update(status=status, reason=reason)
        rows.append(row)
    peer_rows: Dict[str, Dict[str, Any]] = {}
    for peer in peers:
        pr = {"status": "ok", "reason": None, "ms": None, "min_ms": None, "samples_ms": None,
              "gflops": None, "gbps": None, "max_rel_diff_vs_ref": None, "mismatch": False}
        try:
            call = peer.make(layer, arrays, threads)  # one-off preparation, not timed
            outputs[("peer", peer.name)] = to_numpy(call())  # warm-up
            methods[("peer", peer.name)] = call
        except Exception as e:  # noqa: BLE001
            status, reason = _failure(e)
            pr.update(status=status, reason=reason)
        peer_rows[peer.name] = pr
    reference = next((name for name, pr in peer_rows.items() if pr["status"] == "ok"), None)

    samples = measure(methods, rounds=args.repeat, budget_s=args.budget, prime=args.prime)
    rounds = len(next(iter(samples.values()))) if samples else 0
    for name, pr in peer_rows.items():
        s = samples.get(("peer", name))
        if s is None:
            continue
        ms = statistics.median(s)
        pr.update(ms=ms, min_ms=min(s), samples_ms=s, gflops=_per_s(flops, ms), gbps=_per_s(nbytes, ms))
        if reference is not None and name != reference:
            diff = _rel_diff(outputs[("peer", name)], outputs[("peer", reference)])
            pr.update(max_rel_diff_vs_ref=diff, mismatch=not diff <= MISMATCH_TOL)  # NaN is a mismatch
    timed_peers = {name: pr["ms"] for name, pr in peer_rows.items() if pr["ms"]}
    best_peer = min(timed_peers, key=timed_peers.__getitem__) if timed_peers else None
    best_peer_ms = timed_peers.get(best_peer) if best_peer else None
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        s = samples[("fastconv", r["algo"])]
        median = statistics.median(s)
        gflops, gbps = _per_s(flops, median), _per_s(nbytes, median)
        r.update(samples_ms=s, median_ms=median, min_ms=min(s), rounds=rounds, gflops=gflops, gbps=gbps,
                 pct_peak=100.0 * gflops / peak if gflops is not None else None,
                 pct_bw=100.0 * gbps / peak_bw if gbps is not None else None)
        if reference is not None:
            diff = _rel_diff(outputs[("fastconv", r["algo"])], outputs[("peer", reference)])
            r.update(reference=reference, max_rel_diff_vs_ref=diff, mismatch=not diff <= MISMATCH_TOL)
    if ok:
        min(ok, key=lambda r: r["median_ms"])["best"] = True
    for r in rows:
        r.update(peers=peer_rows, best_peer=best_peer, best_peer_ms=best_peer_ms,
                 ratio=best_peer_ms / r["median_ms"] if best_peer_ms and r["median_ms"] else None)
    return rows


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed ``bench`` arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser extended by :func:`~fastconv.bench.cli.add_arguments`.

    Returns
    -------
    int
        Exit code: 0 on success, 1 when a method failed unexpectedly or nothing
        was selected, 2 on bad arguments.
    """
    import fastconv

    if getattr(args, "models", False):
        from .models import run_models
        return run_models(args)
    try:
        source, where = find_layers_file(args.layers)
        all_layers = load_layers(source)
    except (OSError, ValueError, KeyError) as e:
        print(f"fastconv bench: {e}", file=sys.stderr)
        return 2
    ops = _split_names(getattr(args, "op", None) or []) or list(OPS)
    unknown_ops = [o for o in ops if o not in OPS]
    if unknown_ops:
        print(f"fastconv bench: unknown op {', '.join(map(repr, unknown_ops))}; "
              f"known: {', '.join(OPS)}", file=sys.stderr)
        return 2
    ops = [o for o in OPS if o in ops]  # table order, whatever the order given
    layers, skipped, how = select_layers(all_layers, ops=layer_ops(ops), all_layers=args.all, filters=args.filter)
    selection = f"layers: {where} ({len(layers)} of {len(all_layers)} layers: {how})"
    if args.list:
        _print_list(selection, layers, skipped, ops)
        return 0

    registered = list(dict.fromkeys([a for d in (None, "forward", "backward_data", "backward_weights")
                                     for a in fastconv.algorithms(d)] + [PLAN]))
    algos: Optional[List[str]] = None
    if args.algo:
        algos = _split_names(args.algo)
        unknown = [a for a in algos if a not in registered and a != "auto"]
        if unknown:
            print(f"fastconv bench: unknown algo {', '.join(map(repr, unknown))}; "
                  f"registered: {', '.join(registered)} (or 'auto')", file=sys.stderr)
            return 2
    # per op: its direction's algorithms, narrowed by --algo ('auto' always applies)
    op_algos: Dict[str, List[str]] = {}
    for op in ops:
        available = OPS[op].algorithms()
        if algos is None:
            op_algos[op] = available
        elif available == [NO_ALGO]:  # a single implementation (pooling): what 'auto' gets
            op_algos[op] = available if "auto" in algos else []
        else:
            op_algos[op] = [a for a in algos if a == "auto" or a in available]

    # peers: each op's, narrowed to the backends installed and not switched off, and to --peer
    disabled = [b for b, off in (("torch", args.no_torch), ("onnxruntime", getattr(args, "no_ort", False)),
                                 ("scipy", getattr(args, "no_scipy", False))) if off]
    backends, backend_notes = backend_versions(disabled)
    known_peers = peer_names([p for spec in OPS.values() for p in spec.peers])
    wanted_peers = _split_names(getattr(args, "peer", None) or [])
    unknown_peers = [p for p in wanted_peers if p not in known_peers]
    if unknown_peers:
        print(f"fastconv bench: unknown peer {', '.join(map(repr, unknown_peers))}; "
              f"known: {', '.join(known_peers)}", file=sys.stderr)
        return 2
    op_peers: Dict[str, List[Peer]] = {
        op: [p for p in OPS[op].peers if p.backend in backends and (not wanted_peers or p.name in wanted_peers)]
        for op in ops}
    torch = backends.get("torch")

    info = dict(fastconv.info())
    isa = info.get("isa", "?")
    fc_threads0 = fastconv.get_num_threads()
    torch_threads0 = torch.get_num_threads() if torch is not None else None
    thread_counts = args.threads or [fc_threads0]
    peaks, peak_text = peak_line(isa, thread_counts, args.peak)
    peaks_bw, bw_text = bandwidth_line(thread_counts, getattr(args, "peak_bw", None))
    memory_bound = any(OPS[op].bytes is not None for op in ops)

    # ---- header ----
    isas = info.get("isas")
    print(f"fastconv {info.get('version', '?')} | isa {isa}"
          + (f" (available: {', '.join(isas)})" if isas else "")
          + f" | threads {fc_threads0}"
          + (f" | {info['compiler']}" if info.get("compiler") else "")
          + f" | {cpu_model()}, {usable_cores()} cores")
    notes = [note + (f" (threads {torch_threads0})" if name == "torch" and torch is not None else "")
             for name, note in backend_notes.items()]
    print("peers: " + " | ".join(notes)
          + " | " + "; ".join(f"{op}: {', '.join(p.name for p in op_peers[op]) or 'none'}" for op in ops
                              if any(l.get("op") == OPS[op].layer_op for l in layers)))
    busy = cpu_busy()
    if busy is not None and busy > BUSY_CORES_WARN:
        print(f"WARNING: the machine is busy: other processes used {busy:.1f} of {os.cpu_count()} cores "
              "just before the run; timings will be noisy and thread scaling meaningless")
    print(selection)
    print(f"ops: {', '.join(ops)}" + ("" if len(ops) < len(OPS) else " (all; --op to choose)"))
    for reason in dict.fromkeys(_skip_reason(l) for l in skipped):
        these = [l for l in skipped if _skip_reason(l) == reason]
        print(f"skipping {len(these)} layer(s) with op {', '.join(sorted({l['op'] for l in these}))} ({reason})")
    print(peak_text)
    if memory_bound:
        print(bw_text + "; GB/s = (input + output bytes) / time, for the memory-bound ops (pooling)")
    any_peer = any(op_peers.values())
    print("timing: warm-up, then interleaved rounds"
          + (", each timed call after an untimed one of the same method" if args.prime else "")
          + ", median"
          + (f" of {args.repeat}" if args.repeat else f" (>= {MIN_ROUNDS} rounds, ~{args.budget:g} s per method)")
          + "; * = fastest fastconv algorithm"
          + ("; ratio = best peer ms / fastconv ms (> 1: fastconv faster), vs = that peer" if any_peer else ""))
    if not layers:
        print("no layers selected", file=sys.stderr)
        return 1

    # ---- the loop: op × layer (rows grouped by op), then thread counts ----
    jobs = [(layer, op, OPS[op], op_algos[op])
            for op in ops for layer in layers if layer.get("op") == OPS[op].layer_op and op_algos[op]]
    if not jobs:
        print(f"no algorithm of {', '.join(algos or [])} implements the selected op(s)", file=sys.stderr)
        return 1
    table = Table(max(len(l["name"]) for l in layers), max((len(a) for job in jobs for a in job[3]), default=0),
                  max(len(job[1]) for job in jobs),
                  peers=peer_names([p for job in jobs for p in op_peers[job[1]]]),
                  bandwidth=any(job[2].bytes is not None for job in jobs))
    for line in table.header():
        print(line)
    sys.stdout.flush()

    results: List[Dict[str, Any]] = []
    interrupted = False
    t_begin, cpu_begin, stat_begin = time.perf_counter(), own_cpu(), proc_stat()
    progress = Progress(len(jobs) * len(thread_counts), enabled=not args.no_progress)
    no_grad = torch.no_grad if torch is not None else contextlib.nullcontext
    try:
        for layer, op, spec, job_algos in jobs:
            arrays = spec.make_inputs(layer, _layer_rng(args.seed, layer["name"]))
            for n in thread_counts:
                progress.describe(f"{op} {layer['name']} x{n}")
                fastconv.set_num_threads(n)
                if torch is not None:
                    torch.set_num_threads(n)
                with no_grad():
                    rows = _bench(layer, op, spec, arrays, op_peers[op], job_algos, n, peaks[n], peaks_bw[n], args)
                for r in rows:
                    progress.write(table.row(r))
                for line in table.peer_notes(rows[0] if rows else None, MISMATCH_TOL):
                    progress.write(line)
                results.extend(rows)
                progress.advance()
    except KeyboardInterrupt:
        progress.close()
        print("interrupted", file=sys.stderr)
        interrupted = True
    finally:
        progress.close()
        fastconv.set_num_threads(fc_threads0)
        if torch is not None:
            torch.set_num_threads(torch_threads0)
    elapsed = time.perf_counter() - t_begin
    busy_during = others_busy(stat_begin, own_cpu() - cpu_begin, elapsed)

    # ---- summary ----
    for line in summary_lines(results, thread_counts, MISMATCH_TOL):
        print(line)
    if busy_during is not None and busy_during > BUSY_CORES_WARN:
        print(f"WARNING: other processes used {busy_during:.1f} of {os.cpu_count()} cores during the run; "
              "timings are noisy (2-thread figures especially)")
    print(f"done in {elapsed:.1f} s")

    doc = {
        "machine": {
            "fastconv": info,
            "torch": getattr(torch, "__version__", None),
            "onnxruntime": getattr(backends.get("onnxruntime"), "__version__", None),
            "cpu": cpu_model(),
            "usable_cores": usable_cores(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
            "busy_cores_before_run": busy,
            "busy_cores_during_run": busy_during,
            "peak_gflops": {str(n): p for n, p in peaks.items()},
            "peak_source": "--peak" if args.peak is not None else PEAK_SOURCE,
            "peak_gbps": {str(n): p for n, p in peaks_bw.items()},
            "peak_gbps_source": "--peak-bw" if getattr(args, "peak_bw", None) is not None else BANDWIDTH_SOURCE,
        },
        "layers_file": where,
        "selection": how,
        "settings": {
            "threads": thread_counts,
            "repeat": args.repeat,
            "budget_s": args.budget,
            "prime": args.prime,
            "seed": args.seed,
            "ops": ops,
            "algorithms": op_algos,
            "peers": {op: [p.name for p in op_peers[op]] for op in ops},
        },
        "elapsed_s": elapsed,
        "results": results,
    }
    if args.json:
        try:
            write_json(args.json, doc)
        except OSError as e:
            print(f"fastconv bench: cannot write {args.json}: {e}", file=sys.stderr)
            return 1
        print(f"results written to {args.json}")
    command = " ".join([os.path.basename(sys.argv[0])] + [shlex.quote(a) for a in sys.argv[1:]])
    for path, write, what in ((getattr(args, "markdown", None), lambda p: write_markdown(p, doc, command), "report"),
                              (getattr(args, "plot", None), lambda p: write_plot(p, doc), "plot")):
        if not path:
            continue
        try:
            write(path)
        except (OSError, ValueError, ImportError) as e:
            print(f"fastconv bench: cannot write the {what} {path}: {e}", file=sys.stderr)
            return 1
        print(f"{what} written to {path}")
    return 1 if interrupted or any(r["status"] == "error" for r in results) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``fastconv bench`` used standalone (bench/conv_bench.py).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code.
    """
    return run(build_parser().parse_args(argv))
