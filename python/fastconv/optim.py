"""Optimisers and learning-rate schedules with ``torch.optim``'s update rules and arguments, for
:class:`fastconv.nn.Parameter` arrays: SGD (momentum, dampening, Nesterov, weight decay), Adam
(Kingma & Ba 2015, with amsgrad), AdamW (Loshchilov & Hutter 2019), and the StepLR and
CosineAnnealingLR schedules. Updates are in place, in the parameters' dtype, as PyTorch's
single-tensor ("for-loop") implementations compute them.

>>> import numpy as np
>>> from fastconv import nn, optim
>>> fc = nn.Linear(3, 1)
>>> opt = optim.SGD(fc.parameters(), lr=0.1, momentum=0.9)
>>> fc.weight.grad = np.ones_like(fc.weight)
>>> before = fc.weight.copy()
>>> opt.step()
>>> np.allclose(fc.weight, before - 0.1)
True
"""

from __future__ import annotations

import math

import numpy as np

from .nn.module import weights_changed

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]


class Optimizer:
    """Base class: ``param_groups`` (lists of parameters with their hyper-parameters), per
    parameter ``state``, ``zero_grad()`` and ``step()``."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        for p in group["params"]:
            if not hasattr(p, "grad"):
                raise TypeError(f"optimizer can only optimize fastconv.nn.Parameter arrays, but "
                                f"got {type(p).__name__}")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group.setdefault("initial_lr", group["lr"])
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def _params_with_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, (-p.grad if group.get("maximize") else p.grad)

    def state_dict(self):
        """State per parameter index and the groups' hyper-parameters (as torch arranges them)."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[k]: {n: (v.copy() if isinstance(v, np.ndarray) else v)
                            for n, v in s.items()} for k, s in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = [p for g in self.param_groups for p in g["params"]]
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {id(params[i]): {n: (v.copy() if isinstance(v, np.ndarray) else v)
                                      for n, v in s.items()}
                      for i, s in state_dict["state"].items()}

    def step(self):
        raise NotImplementedError

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items())
                      if k not in ("params", "initial_lr")]
        return "\n".join(lines + [")"])


def _check(name, value, low=0.0):
    if not value >= low:
        raise ValueError(f"Invalid {name}: {value}")


class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD``'s rule:
    ``g += weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` at the first step) and ``g = g + momentum * buf`` (Nesterov) or ``g = buf``;
    then ``p -= lr * g``."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        _check("learning rate", lr)
        _check("momentum value", momentum)
        _check("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def step(self):
        weights_changed()
        for group, p, g in self._params_with_grad():
            wd, mom = group["weight_decay"], group["momentum"]
            if wd:
                g = g + p.dtype.type(wd) * p
            if mom:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    buf *= p.dtype.type(mom)
                    buf += p.dtype.type(1 - group["dampening"]) * g
                g = g + p.dtype.type(mom) * buf if group["nesterov"] else buf
            p -= p.dtype.type(group["lr"]) * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), ``torch.optim.Adam``'s rule: ``m = b1 m + (1 - b1) g``,
    ``v = b2 v + (1 - b2) g^2``, ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``;
    ``weight_decay`` adds ``weight_decay * p`` to g (L2), ``amsgrad`` uses the running maximum
    of v."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        _check("learning rate", lr)
        _check("epsilon value", eps)
        _check("weight_decay value", weight_decay)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def step(self):
        weights_changed()
        for group, p, g in self._params_with_grad():
            t = p.dtype.type
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            state = self.state.setdefault(id(p), {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.view(np.ndarray))
                state["exp_avg_sq"] = np.zeros_like(p.view(np.ndarray))
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(p.view(np.ndarray))
            state["step"] += 1
            step = state["step"]
            if wd and self.decoupled:
                p *= t(1 - lr * wd)
            elif wd:
                g = g + t(wd) * p
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m += (g - m) * t(1 - b1)  # torch: exp_avg.lerp_(grad, 1 - beta1)
            v *= t(b2)
            v += t(1 - b2) * g * g
            bias1, bias2 = 1 - b1 ** step, 1 - b2 ** step
            if group["amsgrad"]:
                np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                v = state["max_exp_avg_sq"]
            denom = np.sqrt(v) / t(math.sqrt(bias2)) + t(eps)
            p -= t(lr / bias1) * (m / denom)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay
    ``p *= 1 - lr * weight_decay`` before the update (``torch.optim.AdamW``)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class _Scheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base, epoch):
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set every group's learning rate."""
        self.last_epoch += 1
        self._last_lr = [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        self.__dict__.update(state)


class StepLR(_Scheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base, epoch):
        return base * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """``lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2`` (Loshchilov &
    Hutter 2017, without restarts; ``torch.optim.lr_scheduler.CosineAnnealingLR``)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base, epoch):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class lr_scheduler:  # noqa: N801 - mirrors torch.optim.lr_scheduler
    """The learning-rate schedules, as ``torch.optim.lr_scheduler``: ``StepLR``,
    ``CosineAnnealingLR``."""

    StepLR = StepLR
    CosineAnnealingLR = CosineAnnealingLR
