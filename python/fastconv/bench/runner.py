"""The benchmark run: header, the op × layer × threads loop, summary and JSON.

For every selected :data:`~fastconv.bench.ops.OPS` entry (``--op``) and every selected
layer it runs on, inputs are made once; then, per thread count, every method (each fastconv
algorithm, and torch) is called once to warm up and to check its result against
torch's, and all of them are timed together by :func:`~fastconv.bench.timing.measure`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cli import build_parser
from .layers import Layer, find_layers_file, load_layers, select_layers
from .ops import OPS, OpSpec, layer_ops, ops_for
from .peak import PEAK_SOURCE, peak_line, usable_cores
from .report import Progress, Table, cpu_model, summary_lines, write_json
from .timing import MIN_ROUNDS, cpu_busy, measure, others_busy, own_cpu, proc_stat

__all__ = ["MISMATCH_TOL", "main", "run"]

MISMATCH_TOL = 1e-3  # max|y - y_torch| / max|y_torch| above this is flagged
BUSY_CORES_WARN = 0.25  # warn when other processes use more than this many cores
_PARAM_KEYS = ("N", "C", "K", "input", "kernel", "stride", "padding", "output_padding", "dilation", "groups")


def _import_torch(disabled: bool) -> Tuple[Any, str]:
    if disabled:
        return None, "torch comparison off (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "torch not installed: no comparison"
    return torch, f"torch {torch.__version__}"


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


def _print_list(selection: str, layers: Sequence[Layer], skipped: Sequence[Layer], ops: Sequence[str]) -> None:
    print(selection)
    for l in layers:
        mflop = ops_for(l, ops)[0][1].flops(l) / 1e6
        names = ",".join(name for name, _ in ops_for(l, ops))
        print(f"  {l['name']:<32} {l['op']:<14} N={l['N']} C={l['C']} K={l['K']} input={l['input']} "
              f"kernel={l['kernel']} stride={l['stride']} groups={l['groups']}  {mflop:.0f} MFLOP  [{names}]")
    for l in skipped:
        print(f"  {l['name']:<32} {l['op']} ({_skip_reason(l)})")


def _bench(
    layer: Layer, op: str, spec: OpSpec, arrays: Tuple[np.ndarray, ...], tensors: Optional[Tuple[Any, ...]],
    algos: Sequence[str], threads: int, peak: float, args: argparse.Namespace,
) -> List[Dict[str, Any]]:
    """Warm up, check and time every method on one layer at one thread count.

    Returns one result row per algorithm (the JSON ``results`` entries).
    """
    flops = spec.flops(layer)
    params = {k: layer[k] for k in _PARAM_KEYS if k in layer}
    params["output"] = spec.output_size(layer)
    rows: List[Dict[str, Any]] = []
    methods: Dict[str, Callable[[], Any]] = {}
    outputs: Dict[str, Any] = {}
    for algo in algos:
        row = {"layer": layer["name"], "net": layer.get("net"), "op": op, "params": params, "flops": flops,
               "threads": threads, "algo": algo, "status": "ok", "reason": None, "samples_ms": None,
               "median_ms": None, "min_ms": None, "rounds": 0, "gflops": None, "peak_gflops": peak,
               "pct_peak": None, "max_rel_diff_vs_torch": None, "mismatch": False, "best": False}
        call = spec.fastconv(layer, arrays, algo)
        try:
            outputs[algo] = call()  # warm-up
            methods[algo] = call
        except ValueError as e:  # "does not support": not applicable, not a failure
            row.update(status="n/a", reason=str(e))
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
            row.update(status="error", reason=f"{type(e).__name__}: {e}")
        rows.append(row)
    torch_status = torch_reason = None
    if tensors is not None:
        tcall = spec.torch(layer, tensors)
        try:
            outputs["torch"] = tcall().numpy()  # warm-up
            methods["torch"] = tcall
            torch_status = "ok"
        except Exception as e:  # noqa: BLE001
            torch_status, torch_reason = "error", f"{type(e).__name__}: {e}"

    samples = measure(methods, rounds=args.repeat, budget_s=args.budget)
    rounds = len(next(iter(samples.values()))) if samples else 0
    torch_ms = statistics.median(samples["torch"]) if "torch" in samples else None
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        s = samples[r["algo"]]
        median = statistics.median(s)
        gflops = flops / (median * 1e-3) / 1e9
        r.update(samples_ms=s, median_ms=median, min_ms=min(s), rounds=rounds, gflops=gflops,
                 pct_peak=100.0 * gflops / peak)
        if torch_ms is not None:
            diff = _rel_diff(outputs[r["algo"]], outputs["torch"])
            r.update(max_rel_diff_vs_torch=diff, mismatch=not diff <= MISMATCH_TOL)  # NaN is a mismatch
    if ok:
        min(ok, key=lambda r: r["median_ms"])["best"] = True
    for r in rows:
        r.update(torch_status=torch_status, torch_reason=torch_reason, torch_ms=torch_ms,
                 torch_samples_ms=samples.get("torch"),
                 torch_gflops=flops / (torch_ms * 1e-3) / 1e9 if torch_ms else None,
                 ratio=torch_ms / r["median_ms"] if torch_ms and r["median_ms"] else None)
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

    registered = list(dict.fromkeys(a for d in (None, "forward", "backward_data", "backward_weights")
                                    for a in fastconv.algorithms(d)))
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
        op_algos[op] = available if algos is None else [a for a in algos if a == "auto" or a in available]

    torch, torch_line = _import_torch(args.no_torch)
    info = dict(fastconv.info())
    isa = info.get("isa", "?")
    fc_threads0 = fastconv.get_num_threads()
    torch_threads0 = torch.get_num_threads() if torch is not None else None
    thread_counts = args.threads or [fc_threads0]
    peaks, peak_text = peak_line(isa, thread_counts, args.peak)

    # ---- header ----
    isas = info.get("isas")
    print(f"fastconv {info.get('version', '?')} | isa {isa}"
          + (f" (available: {', '.join(isas)})" if isas else "")
          + f" | threads {fc_threads0}"
          + (f" | {info['compiler']}" if info.get("compiler") else "")
          + f" | {cpu_model()}, {usable_cores()} cores")
    print(torch_line + (f" (threads {torch_threads0})" if torch is not None else ""))
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
    print("timing: warm-up, then interleaved rounds, median"
          + (f" of {args.repeat}" if args.repeat else f" (>= {MIN_ROUNDS} rounds, ~{args.budget:g} s per method)")
          + "; * = fastest fastconv algorithm"
          + ("; ratio = torch ms / fastconv ms (> 1: fastconv faster)" if torch is not None else ""))
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
                  max(len(job[1]) for job in jobs))
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
            tensors = tuple(torch.from_numpy(a) for a in arrays) if torch is not None else None
            for n in thread_counts:
                progress.describe(f"{op} {layer['name']} x{n}")
                fastconv.set_num_threads(n)
                if torch is not None:
                    torch.set_num_threads(n)
                with no_grad():
                    rows = _bench(layer, op, spec, arrays, tensors, job_algos, n, peaks[n], args)
                for r in rows:
                    progress.write(table.row(r))
                if rows and rows[0]["torch_status"] == "error":
                    progress.write(f"  torch failed on {layer['name']}: {rows[0]['torch_reason']}")
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

    if args.json:
        doc = {
            "machine": {
                "fastconv": info,
                "torch": getattr(torch, "__version__", None),
                "cpu": cpu_model(),
                "usable_cores": usable_cores(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "platform": platform.platform(),
                "busy_cores_before_run": busy,
                "busy_cores_during_run": busy_during,
                "peak_gflops": {str(n): p for n, p in peaks.items()},
                "peak_source": "--peak" if args.peak is not None else PEAK_SOURCE,
            },
            "layers_file": where,
            "selection": how,
            "settings": {
                "threads": thread_counts,
                "repeat": args.repeat,
                "budget_s": args.budget,
                "seed": args.seed,
                "ops": ops,
                "algorithms": op_algos,
            },
            "elapsed_s": elapsed,
            "results": results,
        }
        try:
            write_json(args.json, doc)
        except OSError as e:
            print(f"fastconv bench: cannot write {args.json}: {e}", file=sys.stderr)
            return 1
        print(f"results written to {args.json}")
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
