"""``fastconv bench --models``: whole networks against PyTorch and ONNX Runtime on the same
weights — ResNet-18 and ResNet-50 inference at batch 1 and 8, and a ResNet-18 training step
(forward, backward, SGD with momentum) at batch 8 — at each ``--threads`` count.

The torch peers are :mod:`fastconv.bench.torch_models` (torchvision's architectures written in
torch) with random weights and random batch-norm statistics; the fastconv model loads the same
state_dict. Inference: fastconv in evaluation mode under ``nn.no_grad`` (fused plans), torch
eager under ``inference_mode`` on NCHW and on channels_last tensors, and ONNX Runtime on the
torch model exported to ONNX (graph optimisations on, idle workers not spinning, as for the
layer peers). Training: both in training mode with batch statistics, cross entropy on fixed
labels, SGD (lr 0.01, momentum 0.9). Every method is warmed up, its output checked against
torch's, then all are timed together in interleaved rounds (:func:`~fastconv.bench.timing.measure`);
figures are medians; ratio = best peer ms / fastconv ms (> 1: fastconv faster).
"""

from __future__ import annotations

import io
import platform
import re
import shlex
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .report import cpu_model
from .runner import _rel_diff
from .timing import measure

__all__ = ["run_models", "INFERENCE", "TRAINING"]

#: (model, batch) pairs timed for inference, and for a training step
INFERENCE = [("resnet18", 1), ("resnet18", 8), ("resnet50", 1), ("resnet50", 8)]
TRAINING = [("resnet18", 8)]
IMAGE = 224
NUM_CLASSES = 1000


def _pair(name: str, torch: Any):
    """A torch model with random weights and batch-norm statistics, and the fastconv model
    holding the same state."""
    from .. import models
    from . import torch_models

    torch.manual_seed(0)
    t = torch_models.MODELS[name](NUM_CLASSES)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in t.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    f = getattr(models, name)(num_classes=NUM_CLASSES)
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return f, t


def _ort_session(t: Any, x: np.ndarray, threads: int, torch: Any) -> Callable[[], Any]:
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(t, (torch.from_numpy(x),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    session = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x}
    return lambda: session.run(None, feed)[0]


def _inference_methods(name, batch, threads, torch, use_ort):
    from .. import nn

    f, t = _pair(name, torch)
    f.eval()
    t.eval()
    x = np.random.default_rng(2).standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32)
    tx = torch.from_numpy(x)
    t_cl = _pair(name, torch)[1].eval().to(memory_format=torch.channels_last)
    tx_cl = tx.contiguous(memory_format=torch.channels_last)

    def fastconv_run():
        with nn.no_grad():
            return f(x)

    def torch_run():
        with torch.inference_mode():
            return t(tx)

    def torch_cl_run():
        with torch.inference_mode():
            return t_cl(tx_cl)

    methods = {"fastconv": fastconv_run, "torch": torch_run, "torch_cl": torch_cl_run}
    if use_ort:
        methods["ort"] = _ort_session(t, x, threads, torch)
    return methods


def _training_methods(name, batch, torch):
    from .. import nn, optim

    f, t = _pair(name, torch)
    f.train()
    t.train()
    x = np.random.default_rng(2).standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32)
    labels = np.arange(batch) % NUM_CLASSES
    tx, tlabels = torch.from_numpy(x), torch.from_numpy(labels)
    fopt = optim.SGD(f.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(t.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()

    def fastconv_step():
        fopt.zero_grad()
        loss = criterion(f(x), labels)
        f.backward(criterion.backward())
        fopt.step()
        return loss

    def torch_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(t(tx), tlabels)
        loss.backward()
        topt.step()
        return loss.detach()

    return {"fastconv": fastconv_step, "torch": torch_step}


def _to_numpy(v):
    return v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)


def _time(methods: Dict[str, Callable[[], Any]], args, check: bool) -> Dict[str, Any]:
    outs = {k: _to_numpy(fn()) for k, fn in methods.items()}  # warm-up, and the check
    diffs = {k: _rel_diff(v, outs["torch"]) for k, v in outs.items() if k != "torch"} if check else {}
    samples = measure(methods, rounds=args.repeat, budget_s=max(args.budget, 2.0), min_rounds=5,
                      prime=args.prime)
    return {"ms": {k: float(np.median(v)) for k, v in samples.items()},
            "rounds": len(next(iter(samples.values()))), "diff": diffs}


def run_models(args) -> int:
    """Run the model benchmark (``fastconv bench --models``); see the module docstring."""
    import fastconv

    try:
        import torch
    except ImportError:
        print("fastconv bench --models needs torch (pip install 'fastconv[bench]')", file=sys.stderr)
        return 2
    use_ort = not getattr(args, "no_ort", False)
    if use_ort:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            use_ort = False
    threads_list = args.threads or [fastconv.get_num_threads()]
    fc0, t0 = fastconv.get_num_threads(), torch.get_num_threads()
    rows: List[Dict[str, Any]] = []
    start = time.perf_counter()
    try:
        for threads in threads_list:
            fastconv.set_num_threads(threads)
            torch.set_num_threads(threads)
            cases = [("inference", n, b) for n, b in INFERENCE] + \
                    [("training step", n, b) for n, b in TRAINING]
            for kind, name, batch in cases:
                methods = (_inference_methods(name, batch, threads, torch, use_ort)
                           if kind == "inference" else _training_methods(name, batch, torch))
                r = _time(methods, args, check=kind == "inference")
                ms = r["ms"]
                peers = [v for k, v in ms.items() if k != "fastconv"]
                row = {"kind": kind, "model": name, "batch": batch, "threads": threads, **r,
                       "ratio": min(peers) / ms["fastconv"]}
                rows.append(row)
                cells = "  ".join(f"{k} {v:8.1f} ms" for k, v in ms.items())
                print(f"{kind:13s} {name:9s} b{batch:<2d} {threads}T  {cells}  ratio {row['ratio']:.2f}"
                      + ("  max diff " + ", ".join(f"{k} {v:.1e}" for k, v in r["diff"].items())
                         if r["diff"] else ""), flush=True)
    finally:
        fastconv.set_num_threads(fc0)
        torch.set_num_threads(t0)
    if args.markdown:
        _write_markdown(args.markdown, rows, time.perf_counter() - start, torch, use_ort)
        print(f"report written to {args.markdown}")
    return 0


def _plain(text: str) -> str:
    """reST roles and literals of a docstring as Markdown code spans."""
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: "`" + m.group(1).split(".")[-1] + "`", text)
    return text.replace("``", "`")


def _write_markdown(path, rows, elapsed, torch, use_ort) -> None:
    import fastconv

    info = fastconv.info()
    ort_version = "not used"
    if use_ort:
        import onnxruntime
        ort_version = onnxruntime.__version__
    command = "fastconv bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    lines = [
        "# fastconv model benchmark", "",
        f"One run of `{command}`, written by the command itself ({elapsed:.0f} s).", "",
        "## Machine and versions", "",
        f"- CPU: {cpu_model()}; {platform.platform()}",
        f"- fastconv {info['version']}, ISA {info['isa']} ({info['fma_pipes']} vector FMA pipe(s): "
        f"tiles and `auto`'s cost profile), {info['compiler']}",
        f"- peers: torch {torch.__version__}, onnxruntime {ort_version}; numpy {np.__version__}",
        "", "## Method", "",
        _plain(" ".join((__doc__ or "").split("\n\n")[1:]).replace("\n", " ").strip()), "",
        "## Results", "",
        "| run | model | batch | threads | fastconv ms | torch ms | torch_cl ms | ort ms | ratio | max diff vs torch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ms = r["ms"]
        cell = lambda k: f"{ms[k]:.1f}" if k in ms else "—"  # noqa: E731
        diff = ", ".join(f"{k} {v:.1e}" for k, v in r["diff"].items()) or "—"
        lines.append(f"| {r['kind']} | {r['model']} | {r['batch']} | {r['threads']} | "
                     f"{cell('fastconv')} | {cell('torch')} | {cell('torch_cl')} | {cell('ort')} | "
                     f"{r['ratio']:.2f} | {diff} |")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
