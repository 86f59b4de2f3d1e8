"""Loss layers: CrossEntropyLoss and NLLLoss as ``torch.nn``'s, with a backward that returns the
gradient with respect to the input (for the loss's default upstream gradient 1)."""

from __future__ import annotations

import numpy as np

from .. import functional as F, grad
from .module import Module


class _Loss(Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction


class CrossEntropyLoss(_Loss):
    """``torch.nn.CrossEntropyLoss``: ``loss = criterion(logits, target)``; ``backward()`` gives
    d loss / d logits.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> criterion = nn.CrossEntropyLoss()
    >>> loss = criterion(np.zeros((2, 4)), np.array([1, 3]))
    >>> round(float(loss), 4), criterion.backward().shape
    (1.3863, (2, 4))
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = label_smoothing

    def _kw(self):
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)

    def forward(self, input, target):
        self._keep(input=input, target=target)
        return F.cross_entropy(input, target, **self._kw())

    def backward(self, grad_output=1.0):
        ctx = self._context()
        return grad.cross_entropy_input(grad_output, ctx["input"], ctx["target"], **self._kw())


class NLLLoss(_Loss):
    """``torch.nn.NLLLoss`` on log-probabilities."""

    def forward(self, input, target):
        self._keep(input=input, target=target)
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def backward(self, grad_output=1.0):
        ctx = self._context()
        return grad.nll_loss_input(grad_output, ctx["input"], ctx["target"], weight=self.weight,
                                   ignore_index=self.ignore_index, reduction=self.reduction)
