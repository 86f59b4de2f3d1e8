"""Benchmark reports for the repository: bench/RESULTS.md and a plot of GFLOP/s against the peak.

Both are written from the same document ``fastconv bench --json`` writes (machine, settings,
result rows), so a report always holds one run: ``--markdown PATH`` and ``--plot PATH``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["markdown", "write_markdown", "write_plot"]

Row = Dict[str, Any]


def _ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 100 else f"{v:.1f}"


def _ratio(peer_ms: Optional[float], ms: Optional[float]) -> str:
    return f"{peer_ms / ms:.2f}" if peer_ms and ms else "-"


def _group(rows: Sequence[Row]) -> Dict[tuple, List[Row]]:
    """(op, layer, threads) -> the fastconv rows of that measurement, in run order."""
    groups: Dict[tuple, List[Row]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["layer"], r["threads"]), []).append(r)
    return groups


def _geomean(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def _op_table(op: str, groups: Dict[tuple, List[Row]]) -> List[str]:
    keys = [k for k in groups if k[0] == op]
    algos = list(dict.fromkeys(r["algo"] for k in keys for r in groups[k]))
    peers = list(dict.fromkeys(p for k in keys for p in groups[k][0].get("peers", {})))
    compute = any(r.get("flops") for k in keys for r in groups[k])
    lead = "auto" if "auto" in algos else algos[0]
    head = ["layer", "thr"] + [f"{a} ms" for a in algos]
    head += ["GFLOP/s", "% peak"] if compute else ["GB/s", "% bw"]
    head += [f"{p} ms" for p in peers] + ["best peer", f"ratio {lead}"]
    if len(algos) > 1:
        head += ["ratio best"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        rows = {r["algo"]: r for r in groups[key]}
        first = groups[key][0]
        best = min((r for r in rows.values() if r.get("median_ms")), key=lambda r: r["median_ms"],
                   default=None)
        cells = [key[1], str(key[2])]
        for a in algos:
            r = rows.get(a)
            ms = _ms(r.get("median_ms")) if r else "-"
            cells.append(f"**{ms}**" if r is not None and r is best else ms)
        lr = rows.get(lead)
        if compute:
            cells += [f"{lr['gflops']:.1f}" if lr and lr.get("gflops") else "-",
                      f"{lr['pct_peak']:.0f}%" if lr and lr.get("pct_peak") else "-"]
        else:
            cells += [f"{lr['gbps']:.1f}" if lr and lr.get("gbps") else "-",
                      f"{lr['pct_bw']:.0f}%" if lr and lr.get("pct_bw") else "-"]
        for p in peers:
            pr = first.get("peers", {}).get(p, {})
            cells.append(_ms(pr.get("ms")) if pr.get("status") == "ok" else pr.get("status", "-"))
        cells.append(first.get("best_peer") or "-")
        cells.append(_ratio(first.get("best_peer_ms"), lr.get("median_ms") if lr else None))
        if len(algos) > 1:
            cells.append(_ratio(first.get("best_peer_ms"), best["median_ms"] if best else None))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


#: Algorithms whose rows get their own table (name prefix): Winograd's effective speed against
#: the peers and against fastconv's own direct / gemm on the layers it applies to.
TRANSFORM_FAMILY = "winograd"
EXACT_ALGOS = ("direct", "gemm")


def _family_table(op: str, groups: Dict[tuple, List[Row]], family: str = TRANSFORM_FAMILY) -> List[str]:
    """Per layer and thread count where a `family` algorithm ran: its fastest variant, that
    variant's effective GFLOP/s (the direct method's FLOPs over its time), and the ratios of the
    best peer and of fastconv's fastest exact algorithm (direct, gemm) to it; the same for the
    plan (auto, weights prepacked) when it ran."""
    lines: List[str] = []
    keys = [k for k in groups if k[0] == op]
    with_plan = any(r["algo"] == "plan" for k in keys for r in groups[k])
    for key in keys:
        rows = {r["algo"]: r for r in groups[key] if r.get("median_ms")}
        fam = [r for a, r in rows.items() if a.startswith(family)]
        if not fam:
            continue
        best = min(fam, key=lambda r: r["median_ms"])
        exact = min((rows[a]["median_ms"] for a in EXACT_ALGOS if a in rows), default=None)
        peer = groups[key][0].get("best_peer_ms")
        plan = rows.get("plan")
        cells = [key[1], str(key[2]), best["algo"], _ms(best["median_ms"]),
                 f"{best['gflops']:.0f}" if best.get("gflops") else "-",
                 _ratio(peer, best["median_ms"]), _ratio(exact, best["median_ms"])]
        if with_plan:
            plan = plan or {}
            cells += [_ms(plan.get("median_ms")), f"{plan['gflops']:.0f}" if plan.get("gflops") else "-",
                      _ratio(peer, plan.get("median_ms"))]
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return []
    head = ["layer", "thr", "fastest variant", "ms", "eff. GFLOP/s", "vs best peer", "vs direct/gemm"]
    if with_plan:
        head += ["plan ms", "plan eff. GFLOP/s", "plan vs best peer"]
    return [f"### {op}: {family}", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + lines + [""]


def _op_summary(op: str, groups: Dict[tuple, List[Row]], threads: Sequence[int]) -> List[str]:
    out = []
    for n in threads:
        keys = [k for k in groups if k[0] == op and k[2] == n]
        if not keys:
            continue
        algos = list(dict.fromkeys(r["algo"] for k in keys for r in groups[k]))
        parts = []
        for a in algos:
            ratios = []
            for k in keys:
                r = next((r for r in groups[k] if r["algo"] == a), None)
                if r and r.get("median_ms") and r.get("best_peer_ms"):
                    ratios.append(r["best_peer_ms"] / r["median_ms"])
            g = _geomean(ratios)
            if g is not None:
                low = min(ratios)
                parts.append(f"{a} {g:.2f} (lowest {low:.2f}, {sum(x >= 1 for x in ratios)}/{len(ratios)} >= 1)")
        if parts:
            out.append(f"- {op}, {n} thread{'s' if n > 1 else ''}: best peer / fastconv, geometric mean over "
                       f"{len(keys)} layers: " + "; ".join(parts))
    return out


def markdown(doc: Dict[str, Any], command: str) -> str:
    """The report of one benchmark run as Markdown.

    Parameters
    ----------
    doc : dict
        The run as ``fastconv bench --json`` writes it.
    command : str
        The command line that produced it.

    Returns
    -------
    str

    Examples
    --------
    >>> doc = {"machine": {"fastconv": {"version": "0"}, "cpu": "x", "usable_cores": 1,
    ...                    "peak_gflops": {}, "peak_gbps": {}}, "settings": {"threads": [1]},
    ...        "results": []}
    >>> markdown(doc, "fastconv bench").splitlines()[0]
    '# fastconv benchmark results'
    """
    m = doc.get("machine", {})
    fc = m.get("fastconv", {})
    s = doc.get("settings", {})
    rows = doc.get("results", [])
    groups = _group(rows)
    ops = list(dict.fromkeys(r["op"] for r in rows))
    lines = [
        "# fastconv benchmark results",
        "",
        f"One run of `{command}`, written by the command itself ({doc.get('elapsed_s', 0):.0f} s).",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m.get('cpu', '?')}, {m.get('usable_cores', '?')} usable cores; {m.get('platform', '')}",
        f"- fastconv {fc.get('version', '?')}, ISA {fc.get('isa', '?')} "
        f"({fc.get('fma_pipes', '?')} vector FMA pipe(s): tiles and `auto`'s cost profile), "
        f"{fc.get('compiler', '?')}, "
        f"Eigen {fc.get('eigen', '?')}, OpenMP {fc.get('openmp', '?')}",
        f"- peers: torch {m.get('torch') or 'not installed'}, onnxruntime {m.get('onnxruntime') or 'not installed'}; "
        f"numpy {m.get('numpy', '?')}, Python {m.get('python', '?')}",
        "- fp32 FMA peak (GFLOP/s): " + ", ".join(f"{v:.0f} at {k} thread{'s' if k != '1' else ''}"
                                            for k, v in m.get("peak_gflops", {}).items())
        + f" ({m.get('peak_source', '?')})",
        "- memory bandwidth (GB/s): " + ", ".join(f"{v:.0f} at {k} thread{'s' if k != '1' else ''}"
                                            for k, v in m.get("peak_gbps", {}).items())
        + f" ({m.get('peak_gbps_source', '?')})",
    ]
    busy = [m.get("busy_cores_before_run"), m.get("busy_cores_during_run")]
    if any(b is not None for b in busy):
        lines.append("- other processes' load (cores): "
                     + ", ".join(f"{w} {b:.2f}" for w, b in zip(("before", "during"), busy) if b is not None))
    lines += [
        "",
        "## Method",
        "",
        "Inputs are made once per layer (float32, NCHW, seeded); every method is prepared (ONNX Runtime "
        "sessions, channels_last copies, fastconv plans: not timed), called once to warm up and to check "
        "its result against torch, then all methods are timed together in interleaved rounds"
        + (", each timed call right after an untimed call of the same method (`--prime`: every "
           "method in its own steady state, its threads awake, its operands in the caches)"
           if s.get("prime") else "")
        + "; figures are "
        f"medians (>= 5 rounds; budget {s.get('budget_s')} s per method, repeat {s.get('repeat') or 'adaptive'}). "
        "Columns `<algo> ms` are fastconv's functional call with that algorithm; `plan` is `fastconv.plan` "
        "(auto, weights packed once). GFLOP/s and % peak are those of the ratio's fastconv method, "
        "counted as the direct method's FLOPs (2 x MACs): for Winograd, which does fewer "
        "multiplications, an effective rate that may exceed the FMA peak. "
        "ratio = best peer ms / fastconv ms (> 1: fastconv faster); the fastest fastconv method is in bold.",
        "",
    ]
    for op in ops:
        lines += [f"## {op}", ""] + _op_table(op, groups) + [""] + _family_table(op, groups)
    lines += ["## Summary", ""]
    for op in ops:
        lines += _op_summary(op, groups, s.get("threads", []))
    lines.append("")
    return "\n".join(lines)


def write_markdown(path: str, doc: Dict[str, Any], command: str) -> None:
    """Write :func:`markdown` of ``doc`` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(markdown(doc, command))


def write_plot(path: str, doc: Dict[str, Any], op: str = "conv") -> None:
    """Plot GFLOP/s per layer of ``op`` (fastconv auto, fastconv best, best peer) against the peak.

    One panel per thread count; needs matplotlib (the ``bench`` extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc.get("results", []) if r["op"] == op and r.get("flops")]
    if not rows:
        raise ValueError(f"no {op} results with FLOP counts to plot")
    groups = _group(rows)
    threads = sorted({k[2] for k in groups})
    layers = list(dict.fromkeys(k[1] for k in groups))
    fig, axes = plt.subplots(len(threads), 1, figsize=(max(8, 0.45 * len(layers) + 3), 4.2 * len(threads)),
                             squeeze=False)
    peaks = doc.get("machine", {}).get("peak_gflops", {})
    for ax, n in zip(axes[:, 0], threads):
        series = {"fastconv auto": [], "fastconv best": [], "best peer": []}
        for layer in layers:
            g = groups.get((op, layer, n), [])
            auto = next((r for r in g if r["algo"] == "auto"), None)
            best = min((r for r in g if r.get("median_ms")), key=lambda r: r["median_ms"], default=None)
            flops = g[0]["flops"] if g else None
            peer_ms = g[0].get("best_peer_ms") if g else None
            series["fastconv auto"].append(auto["gflops"] if auto and auto.get("gflops") else 0)
            series["fastconv best"].append(best["gflops"] if best and best.get("gflops") else 0)
            series["best peer"].append(flops / peer_ms / 1e6 if flops and peer_ms else 0)
        width = 0.27
        for i, (label, values) in enumerate(series.items()):
            ax.bar([x + (i - 1) * width for x in range(len(layers))], values, width, label=label)
        peak = peaks.get(str(n))
        if peak:
            ax.axhline(peak, color="black", linestyle="--", linewidth=1, label=f"FMA peak {peak:.0f}")
        ax.set_title(f"{op}, {n} thread{'s' if n > 1 else ''}")
        ax.set_ylabel("GFLOP/s")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=7)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
