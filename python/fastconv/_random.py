"""The random number generator of fastconv's stochastic parts (dropout masks, parameter
initialisation): one NumPy Generator per process, reseeded by :func:`manual_seed`."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed fastconv's generator (dropout, nn initialisation) and return it.

    Examples
    --------
    >>> import fastconv
    >>> a = fastconv.manual_seed(0).random()
    >>> b = fastconv.manual_seed(0).random()
    >>> a == b
    True
    """
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """The current generator."""
    return _generator
