"""Losses: cross_entropy and nll_loss — forward (re-exported by :mod:`fastconv.functional`) and
gradients (:mod:`fastconv.grad`), side by side, with PyTorch's semantics: class-index or
class-probability targets, class weights, ignore_index, label smoothing, and the reductions
'none' | 'mean' | 'sum' ('mean' divides by the summed weights of the counted targets). Sums run
in float64; results have the input's dtype. log_softmax comes from the C++ core."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _args
from .activation import log_softmax, log_softmax_input

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(reduction, size_average, reduce, op):
    if size_average is not None or reduce is not None:  # PyTorch's legacy arguments
        if reduce is False:
            return "none"
        return "sum" if size_average is False else "mean"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction "
                         "(expected 'none', 'mean' or 'sum')")
    return reduction


def _smoothing(value, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, but got {value!r}")
    return float(value)


class _Terms:
    """What a loss and its gradient share: per-position coefficients of -log p.

    ``coef`` (positions x C, float64) holds the weight of every -log p term, so that
    loss_i = sum_c coef[i, c] * (-logp[i, c]); ``denominator`` is what 'mean' divides by."""

    def __init__(self, op, logp, target, weight, ignore_index, label_smoothing):
        class_dim = 0 if logp.ndim == 1 else 1
        self.class_dim = class_dim
        C = logp.shape[class_dim]
        self.logp = np.moveaxis(logp, class_dim, -1)  # positions..., C
        w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
        if w.shape != (C,):
            raise ValueError(f"{op}: expected weight of size [{C}], but got {list(w.shape)}")
        t = np.asarray(target)
        eps = label_smoothing
        if t.dtype.kind == "f" and t.shape == logp.shape:  # class probabilities
            q = np.moveaxis(t, class_dim, -1).astype(np.float64)
            self.coef = w * ((1 - eps) * q + eps / C)
            self.denominator = float(np.prod(self.logp.shape[:-1]))
            return
        if t.dtype.kind not in "iu":
            raise TypeError(f"{op}: expected target to hold class indices (an integer dtype) or "
                            f"class probabilities (a float array of input's shape), but got "
                            f"{t.dtype} {t.shape}")
        expected = self.logp.shape[:-1]
        if t.shape != expected:
            raise ValueError(f"{op}: expected target of size {list(expected)}, but got "
                             f"{list(t.shape)}")
        active = t != ignore_index
        bad = active & ((t < 0) | (t >= C))
        if bad.any():
            raise ValueError(f"{op}: Target {int(t[bad].flat[0])} is out of bounds.")
        safe = np.where(active, t, 0).astype(np.intp)
        wt = np.where(active, w[safe], 0.0)
        coef = np.zeros(self.logp.shape)
        np.put_along_axis(coef, safe[..., None], ((1 - eps) * wt)[..., None], axis=-1)
        coef += np.where(active, 1.0, 0.0)[..., None] * (eps / C) * w
        self.coef = coef
        self.denominator = float(wt.sum())

    def losses(self):
        return -(self.coef * self.logp).sum(-1)  # float64, per position


def _loss(op, input, target, weight, ignore_index, reduction, label_smoothing, from_logits):
    x = _args.float_array(input, "input", op)
    if x.ndim < 1:
        raise ValueError(f"{op}: expected input with a class dimension, but got a 0-d array")
    if x.shape[0 if x.ndim == 1 else 1] == 0:  # (PyTorch: IndexError, or NaN for probabilities)
        raise ValueError(f"{op}: expected input with at least one class, but got input of size "
                         f"{list(x.shape)}")
    logp = log_softmax(x, 0 if x.ndim == 1 else 1) if from_logits else x
    terms = _Terms(op, logp, target, weight, _args.integer(ignore_index, "ignore_index", op),
                   label_smoothing)
    per = terms.losses()
    if reduction == "none":
        return per.astype(x.dtype)
    total = per.sum()
    return np.asarray(total / terms.denominator if reduction == "mean" else total, x.dtype)


def _loss_grad(op, grad_output, input, target, weight, ignore_index, reduction, label_smoothing,
               from_logits):
    x = _args.float_array(input, "input", op)
    class_dim = 0 if x.ndim == 1 else 1
    logp = log_softmax(x, class_dim) if from_logits else x
    terms = _Terms(op, logp, target, weight, _args.integer(ignore_index, "ignore_index", op),
                   label_smoothing)
    g = np.asarray(grad_output, np.float64)
    if reduction == "none":
        if g.shape != terms.logp.shape[:-1]:
            raise ValueError(f"{op}: expected grad_output of size {list(terms.logp.shape[:-1])}, "
                             f"but got {list(g.shape)}")
        g = g[..., None]
    else:
        if g.size != 1:
            raise ValueError(f"{op}: expected a scalar grad_output for reduction "
                             f"{reduction!r}, but got shape {g.shape}")
        g = g.reshape(()) / (terms.denominator if reduction == "mean" else 1.0)
    dlogp = -(g * terms.coef) + 0.0  # + 0: no negative zeros where a term is absent
    dlogp = np.ascontiguousarray(np.moveaxis(dlogp, -1, class_dim).astype(x.dtype))
    return log_softmax_input(dlogp, logp, class_dim) if from_logits else dlogp


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy between the logits ``input`` (N, C, *) or (C,) and ``target``: class indices
    (N, *) or class probabilities (input's shape), as ``torch.nn.functional.cross_entropy``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> round(float(F.cross_entropy(logits, np.array([0, 2]))), 4)
    0.6691
    """
    op = "cross_entropy"
    return _loss(op, input, target, weight, ignore_index,
                 _reduction(reduction, size_average, reduce, op),
                 _smoothing(label_smoothing, op), True)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of the log-probabilities ``input`` (N, C, *) or (C,) at the class
    indices ``target``, as ``torch.nn.functional.nll_loss``.

    >>> import numpy as np
    >>> from fastconv import functional as F
    >>> float(F.nll_loss(np.log(np.array([[0.5, 0.5]])), np.array([1])))
    0.6931471805599453
    """
    op = "nll_loss"
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected target to hold class indices (an integer dtype), but got "
                        f"{t.dtype}")
    return _loss(op, input, t, weight, ignore_index,
                 _reduction(reduction, size_average, reduce, op), 0.0, False)


def cross_entropy_input(grad_output, input, target, weight=None, ignore_index=-100,
                        reduction="mean", label_smoothing=0.0):
    """Gradient of :func:`cross_entropy` with respect to its logits ``input``; ``grad_output`` is
    a scalar for 'mean' and 'sum', per position for 'none'.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.cross_entropy_input(1.0, np.zeros((1, 2)), np.array([0])).tolist()
    [[-0.5, 0.5]]
    """
    op = "cross_entropy_input"
    return _loss_grad(op, grad_output, input, target, weight, ignore_index,
                      _reduction(reduction, None, None, op), _smoothing(label_smoothing, op), True)


def nll_loss_input(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Gradient of :func:`nll_loss` with respect to its input.

    >>> import numpy as np
    >>> from fastconv import grad
    >>> grad.nll_loss_input(1.0, np.zeros((2, 2)), np.array([1, 0])).tolist()
    [[0.0, -0.5], [-0.5, 0.0]]
    """
    op = "nll_loss_input"
    return _loss_grad(op, grad_output, input, target, weight, ignore_index,
                      _reduction(reduction, None, None, op), 0.0, False)
