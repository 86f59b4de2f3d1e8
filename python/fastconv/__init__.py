"""fastconv — fast CPU convolution for CNNs on NumPy arrays.

A C++ core (runtime-dispatched AVX-512 / AVX2 / portable kernels, OpenMP threads) computes
convolution by several algorithms; this package exposes it with PyTorch's semantics.

>>> import numpy as np, fastconv
>>> from fastconv.functional import conv2d
>>> y = conv2d(np.ones((1, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32), padding=1)
>>> y.shape, float(y[0, 0, 4, 4])
((1, 4, 8, 8), 27.0)
"""

from . import _core
from ._plan import ConvPlan, plan
from ._random import manual_seed
from ._runtime import (algorithms, get_isa, get_num_threads, get_workspace_limit, info,
                       release_memory, set_isa, set_num_threads, set_workspace_limit)
from . import functional, grad, models, nn, optim, signal

__version__ = _core.info()["version"]

__all__ = [
    "ConvPlan",
    "algorithms",
    "functional",
    "grad",
    "get_isa",
    "get_num_threads",
    "get_workspace_limit",
    "release_memory",
    "info",
    "manual_seed",
    "models",
    "nn",
    "optim",
    "plan",
    "set_isa",
    "set_num_threads",
    "set_workspace_limit",
    "signal",
    "__version__",
]
