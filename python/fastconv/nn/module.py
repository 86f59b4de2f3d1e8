"""The layer framework of :mod:`fastconv.nn`: ``Parameter``, ``Module``, containers and
``no_grad``.

A :class:`Module` mirrors ``torch.nn.Module`` — parameters, buffers and submodules registered by
attribute assignment, ``named_parameters()``, ``state_dict()`` / ``load_state_dict()`` with
PyTorch's key names, ``train()`` / ``eval()``, ``zero_grad()`` — on NumPy arrays, with no
general autograd: ``forward(x)`` keeps what its ``backward`` needs, and ``backward(grad_output)``
returns the gradient with respect to the input while adding the parameters' gradients to their
``.grad``. A module keeps one forward's context, so a module instance appears once in a network
(call it twice and the backward sees the second call); :func:`no_grad` turns the keeping off.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, namedtuple

import numpy as np

_state = threading.local()
_weights_version = [0]


def weights_changed() -> None:
    """Note that parameters or running statistics may have changed (optimiser steps, loaded
    state, mode switches): fused inference plans built before are rebuilt at their next use."""
    _weights_version[0] += 1


def weights_version() -> int:
    return _weights_version[0]


def is_grad_enabled() -> bool:
    """Whether forward calls keep what backward needs (``True`` unless inside :func:`no_grad`)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Forward calls inside keep no context for backward (inference; saves memory and time).

    >>> import numpy as np
    >>> from fastconv import nn
    >>> with nn.no_grad():
    ...     y = nn.ReLU()(np.ones(2, np.float32))
    """
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


class Parameter(np.ndarray):
    """A learnable array: a NumPy array with a ``grad`` attribute (None until a backward).

    Arithmetic on a Parameter gives plain arrays; in-place updates (``p -= lr * p.grad``) keep
    the Parameter.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> p = nn.Parameter(np.zeros(3, np.float32))
    >>> p.grad is None, type(p * 2).__name__
    (True, 'ndarray')
    """

    def __new__(cls, data):
        obj = np.array(data, copy=True, order="C").view(cls)
        obj.grad = None
        return obj

    def __array_finalize__(self, obj):
        self.grad = None

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        inputs = tuple(i.view(np.ndarray) if isinstance(i, Parameter) else i for i in inputs)
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Parameter) else o
                                  for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __reduce__(self):  # pickles (and copies) as a Parameter with its data
        return (Parameter, (self.view(np.ndarray),))

    def __repr__(self):
        return "Parameter containing:\n" + repr(self.view(np.ndarray))


def accumulate(param: Parameter, g: np.ndarray) -> None:
    """``param.grad += g`` (``param.grad = g`` when it is None: g, a gradient just computed,
    then belongs to the parameter)."""
    if param.grad is None:
        param.grad = g if g.dtype == param.dtype else g.astype(param.dtype)
    else:
        param.grad += g


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model (see the module docstring).

    Subclasses set parameters (:class:`Parameter`), buffers (:meth:`register_buffer`) and
    submodules as attributes in ``__init__``, and implement ``forward`` and ``backward``.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias']
    >>> y = net(np.ones((4, 3), np.float32))
    >>> dx = net.backward(np.ones_like(y))
    >>> dx.shape, net[0].weight.grad.shape
    ((4, 3), (2, 3))
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration by attribute
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if name in self._parameters and not isinstance(value, Parameter) and value is not None:
            raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                            "(fastconv.nn.Parameter or None expected)")
        if name in self._parameters and value is None:
            self._parameters[name] = None
            return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
            weights_changed()
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value) -> None:
        """A named array that is state but not a parameter (running statistics): saved in
        state_dict, not returned by parameters(). ``None`` registers an absent buffer."""
        if "_buffer_names" not in self.__dict__:
            object.__setattr__(self, "_buffer_names", set())
        self._buffer_names.add(name)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self.__dict__.pop(name, None)
        self._buffers[name] = value

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a :class:`Parameter` or None for an absent one) as ``name``."""
        if param is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
        else:
            setattr(self, name, param if isinstance(param, Parameter) else Parameter(param))

    def add_module(self, name: str, module) -> None:
        self._modules[name] = module

    # ---- traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        seen = set()
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients
    def train(self, mode: bool = True):
        """Training mode (batch statistics, dropout) for this module and its children."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        weights_changed()
        if not mode:  # inference under no_grad runs fused (see fastconv.nn.fuse)
            from .fusion import link
            link(self)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True):
        """Clear every parameter's ``.grad`` (to None, or to zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def to(self, dtype):
        """Cast parameters and floating buffers to ``dtype`` (e.g. ``np.float64`` for gradient
        checks); returns self. The parameters become new arrays: make optimisers afterwards."""
        dtype = np.dtype(dtype)
        weights_changed()
        for m in self.modules():
            for name, p in list(m._parameters.items()):
                if p is not None and p.dtype != dtype:
                    m._parameters[name] = Parameter(p.astype(dtype))
            for name, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    m._buffers[name] = b.astype(dtype)
        return self

    # ---- state
    def state_dict(self, prefix="") -> OrderedDict:
        """Parameters and buffers by PyTorch's dotted names, as arrays that share memory with
        the module (copy them to keep a snapshot)."""
        out = OrderedDict()
        self._save_to(out, prefix)
        return out

    def _save_to(self, out, prefix):
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p.view(np.ndarray)
        for name, b in self._buffers.items():
            if b is not None:
                out[prefix + name] = b
        for name, m in self._modules.items():
            if m is not None:
                m._save_to(out, f"{prefix}{name}.")

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays from ``state_dict`` (name -> array-like, e.g. from ``np.load`` or a
        converted torchvision checkpoint) into the parameters and buffers, casting to their
        dtypes. With ``strict``, missing or unexpected keys raise KeyError; shapes must match
        (ValueError). Returns ``(missing_keys, unexpected_keys)``."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                           f"missing keys {missing}, unexpected keys {unexpected}")
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.shape != target.shape:
                raise ValueError(f"size mismatch for {key}: copying a param with shape "
                                 f"{value.shape}, the shape in current model is {target.shape}")
            np.copyto(target, value, casting="unsafe")
        weights_changed()
        return IncompatibleKeys(missing, unexpected)

    def fusion_chains(self):
        """The sequences of child modules this module runs one after the other (what
        :func:`fastconv.nn.fuse` may fold together); none by default."""
        return []

    def fusion_residual(self):
        """(conv, batch norm or None, activation name or None) when this module is a residual
        block ending ``act(bn(conv(h)) + shortcut)`` that runs the convolution's
        ``forward_residual`` in fused inference; None otherwise."""
        return None

    # ---- calling
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def _context(self):
        """What the last forward kept for backward; a clear error when there is none."""
        ctx = self.__dict__.get("_ctx")
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward context (call forward "
                               "first, outside fastconv.nn.no_grad())")
        return ctx

    def _keep(self, **ctx):
        """Keep ``ctx`` for backward when gradients are enabled (else drop the last one)."""
        object.__setattr__(self, "_ctx", ctx if is_grad_enabled() else None)

    # ---- copying and pickling: the last forward's context and compiled plans stay behind
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_ctx", None)
        if "_plan" in state:
            state["_plan"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ---- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse. Indexable like a list.

    >>> import numpy as np
    >>> from fastconv import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> net(np.ones((1, 2, 2), np.float32)).shape
    (1, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def fusion_chains(self):
        return [list(self._modules.values())]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output):
        g = grad_output
        for m in reversed(list(self._modules.values())):
            g = m.backward(g)
        return g


class ModuleList(Module):
    """A list of modules registered as ``0``, ``1``, ... (no forward of its own)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        return list(self._modules.values())[index]


class Identity(Module):
    """Returns its input (and the gradient unchanged)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one (a reshape; backward reshapes back)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        x = np.asarray(x)
        nd = x.ndim
        s = self.start_dim % nd if nd else 0
        e = self.end_dim % nd if nd else 0
        self._keep(shape=x.shape)
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:]) if nd else x.reshape(1)

    def backward(self, grad_output):
        return np.asarray(grad_output).reshape(self._context()["shape"])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
