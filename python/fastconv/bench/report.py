"""What the benchmark prints: the results table, the progress bar, the summary and the JSON.

Results go to stdout; the progress bar goes to stderr (tqdm when installed, else a
one-line counter, and only when stderr is a terminal).
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["Progress", "Table", "cpu_model", "format_ms", "summary_lines", "write_json"]

Row = Dict[str, Any]


class Progress:
    """A progress bar on stderr that lets result lines through on stdout.

    Parameters
    ----------
    total : int
        Number of steps.
    enabled : bool
        False (``--no-progress``): no bar, lines are just printed.
    """

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.text = total, 0, ""
        self._bar: Any = None
        self._counter = False
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._counter = sys.stderr.isatty()
            return
        # disable=None: no bar when stderr is not a terminal.
        bar = tqdm(total=total, unit="layer", file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
        if bar.disable:
            bar.close()
        else:
            self._bar = bar

    def _draw_counter(self) -> None:
        sys.stderr.write(f"\r\x1b[K[{self.done}/{self.total}] {self.text}")
        sys.stderr.flush()

    def _clear_counter(self) -> None:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()

    def describe(self, text: str) -> None:
        """Show ``text`` (the step now running) beside the bar."""
        self.text = text
        if self._bar is not None:
            self._bar.set_description_str(text)
        elif self._counter:
            self._draw_counter()

    def advance(self) -> None:
        """Count one step done."""
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self._counter:
            self._draw_counter()

    def write(self, line: str) -> None:
        """Print ``line`` on stdout without garbling the bar."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
            return
        if self._counter:
            self._clear_counter()
        print(line, flush=True)
        if self._counter:
            self._draw_counter()

    def close(self) -> None:
        """Remove the bar; further lines are just printed."""
        if self._bar is not None:
            self._bar.close()
        elif self._counter:
            self._clear_counter()
        self._bar, self._counter = None, False


def format_ms(ms: Optional[float]) -> str:
    """Milliseconds with four significant-ish digits; "" for None.

    Examples
    --------
    >>> format_ms(0.24434), format_ms(3.8041), format_ms(123.45), format_ms(None)
    ('0.2443', '3.804', '123.5', '')
    """
    if ms is None:
        return ""
    if ms < 1:
        return f"{ms:.4f}"
    if ms < 100:
        return f"{ms:.3f}"
    return f"{ms:.1f}"


class Table:
    """The results table: one line per op, layer, thread count and algorithm.

    Parameters
    ----------
    name_width, algo_width : int
        Longest layer name and algorithm name to be shown.
    op_width : int
        Longest op name to be shown.
    peers : sequence of str
        Peer names, one ``<name> ms`` column each (empty where an op has no
        such peer); then ``ratio`` (best peer ms / fastconv ms) and, with more
        than one peer, ``vs`` (which peer was the best).
    bandwidth : bool
        Add the ``GB/s`` and ``%bw`` columns (memory-bound ops).

    Examples
    --------
    >>> Table(5, 6, 4, peers=["torch", "ort"], bandwidth=True).header()[0].split()
    ['op', 'layer', 'thr', 'algo', 'ms', 'GFLOP/s', '%peak', 'GB/s', '%bw', 'torch', 'ms', 'ort', 'ms', 'ratio', 'vs']
    """

    def __init__(self, name_width: int, algo_width: int, op_width: int = 4, peers: Sequence[str] = ("torch",),
                 bandwidth: bool = False) -> None:
        self.peers = list(peers)
        self.bandwidth = bandwidth
        cols = [("op", max(op_width, 2), "<"), ("layer", max(name_width, 5), "<"), ("thr", 3, ">"),
                ("algo", max(algo_width + 2, 4), "<"), ("ms", 10, ">"), ("GFLOP/s", 8, ">"), ("%peak", 6, ">")]
        if bandwidth:
            cols += [("GB/s", 6, ">"), ("%bw", 5, ">")]
        cols += [(f"{p} ms", max(len(p) + 3, 8), ">") for p in self.peers]
        if self.peers:
            cols.append(("ratio", 6, ">"))
        if len(self.peers) > 1:
            cols.append(("vs", max(len(p) for p in self.peers), "<"))
        self.cols = cols

    def _line(self, cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if align == "<" else c.rjust(w) for c, (_, w, align) in zip(cells, self.cols)]
        return "  ".join(parts).rstrip()

    def header(self) -> List[str]:
        """The column titles and a rule under them."""
        line = self._line([title for title, _, _ in self.cols])
        return [line, "-" * len(line)]

    def row(self, r: Row) -> str:
        """One result (a row of the JSON ``results``) as a table line."""
        star = " *" if r["best"] and r["algo"] != "-" else ""
        cells = [r["op"], r["layer"], str(r["threads"]), r["algo"] + star]
        if r["status"] != "ok":
            reason = r["reason"].splitlines()[0][:80] if r["reason"] else ""
            return self._line(cells + [r["status"]]) + f"  ({reason})"
        cells += [
            format_ms(r["median_ms"]),
            f"{r['gflops']:.1f}" if r["gflops"] is not None else "",
            f"{r['pct_peak']:.1f}%" if r["pct_peak"] is not None else "",
        ]
        if self.bandwidth:
            cells += [f"{r['gbps']:.1f}" if r.get("gbps") is not None else "",
                      f"{r['pct_bw']:.0f}%" if r.get("pct_bw") is not None else ""]
        peers = r.get("peers") or {}
        for name in self.peers:
            pr = peers.get(name)
            cells.append("" if pr is None else format_ms(pr["ms"]) if pr["status"] == "ok" else pr["status"])
        if self.peers:
            cells.append(f"{r['ratio']:.2f}" if r.get("ratio") is not None else "")
        if len(self.peers) > 1:
            cells.append(r.get("best_peer") or "")
        line = self._line(cells)
        if r["mismatch"]:
            line += f"  MISMATCH vs {r['reference']} (rel diff {r['max_rel_diff_vs_ref']:.1e})"
        return line

    @staticmethod
    def peer_notes(r: Optional[Row], mismatch_tol: float) -> List[str]:
        """Lines under a layer's rows: peers that failed, did not apply, or disagree with the reference."""
        if r is None:
            return []
        lines = []
        for name, pr in (r.get("peers") or {}).items():
            if pr["status"] != "ok":
                reason = (pr["reason"] or "").splitlines()[0][:160] if pr["reason"] else ""
                what = "failed" if pr["status"] == "error" else "does not apply"
                lines.append(f"  {name} {what} on {r['layer']}: {reason}")
            elif pr["mismatch"]:
                lines.append(f"  {name} differs from {r['reference'] or 'the reference'} on {r['layer']}: "
                             f"rel diff {pr['max_rel_diff_vs_ref']:.1e} > {mismatch_tol:g}")
        return lines


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summary_lines(results: Sequence[Row], thread_counts: Sequence[int], mismatch_tol: float) -> List[str]:
    """Closing lines: per op and thread count, geometric means of best peer ms / best fastconv ms.

    Parameters
    ----------
    results : sequence of dict
        Every result row.
    thread_counts : sequence of int
        Thread counts of the run, in order.
    mismatch_tol : float
        Relative difference above which a result was flagged; named in the warning.

    Returns
    -------
    list of str
        Per op and thread count: the geometric mean over layers of ``ratio``
        (best peer ms / best fastconv ms) and, in brackets, of each peer's
        ms / best fastconv ms.

    Examples
    --------
    >>> peers = lambda a, b: {"torch": {"ms": a, "mismatch": False}, "ort": {"ms": b, "mismatch": False}}
    >>> rows = [{"op": "conv", "threads": 1, "best": True, "ratio": 2.0, "median_ms": 1.0,
    ...          "peers": peers(2.0, 4.0), "mismatch": False},
    ...         {"op": "conv", "threads": 1, "best": True, "ratio": 0.5, "median_ms": 2.0,
    ...          "peers": peers(1.0, 4.0), "mismatch": False}]
    >>> summary_lines(rows, [1], 1e-3)
    ['conv threads 1: best peer ms / best fastconv ms, geometric mean over 2 layer(s): 1.00 (torch 1.00, ort 2.83)']
    """
    lines = []
    ops = list(dict.fromkeys(r["op"] for r in results))
    width = max((len(op) for op in ops), default=0)
    for op in ops:
        for n in thread_counts:
            best = [r for r in results if r["op"] == op and r["threads"] == n and r["best"] and r["ratio"]]
            if not best:
                continue
            per_peer = []
            for name in dict.fromkeys(p for r in best for p in (r.get("peers") or {})):
                ratios = [r["peers"][name]["ms"] / r["median_ms"] for r in best
                          if name in r["peers"] and r["peers"][name]["ms"]]
                if ratios:
                    per_peer.append(f"{name} {_geomean(ratios):.2f}" + (
                        f" over {len(ratios)}" if len(ratios) != len(best) else ""))
            lines.append(f"{op:<{width}} threads {n}: best peer ms / best fastconv ms, geometric mean over "
                         f"{len(best)} layer(s): {_geomean([r['ratio'] for r in best]):.2f}"
                         + (f" ({', '.join(per_peer)})" if per_peer else ""))
    mismatched = sum(1 for r in results if r["mismatch"])
    if mismatched:
        lines.append(f"WARNING: {mismatched} result(s) differ from the reference peer by more than "
                     f"{mismatch_tol:g} (relative)")
    peer_mismatched = {(r["layer"], r["op"], r["threads"], name) for r in results
                       for name, pr in (r.get("peers") or {}).items() if pr.get("mismatch")}
    if peer_mismatched:
        lines.append(f"WARNING: {len(peer_mismatched)} peer result(s) differ from the reference peer by more than "
                     f"{mismatch_tol:g} (relative): the peer's setup may be wrong")
    return lines


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where available).

    Returns
    -------
    str
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _json_safe(v: Any) -> Any:
    # inf / nan are not JSON: write null
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_json(path: str, doc: Dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON, non-finite floats as null.

    Parameters
    ----------
    path : str
        Destination file.
    doc : dict
        The document (see bench/README.md, "JSON").

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    Path(path).write_text(json.dumps(_json_safe(doc), indent=1) + "\n")
