"""Runtime controls: instruction set, threads, build information, the algorithm registry."""

from __future__ import annotations

from . import _core


def info() -> dict:
    """Describe the build and the current runtime settings.

    Returns
    -------
    dict
        ``version``, ``isa`` (active instruction set), ``isas`` (available on this CPU under the
        ``FASTCONV_ISA`` cap, ascending), ``fma_pipes`` (vector FMAs per cycle at the active
        ISA's width: 2 for AVX-512 on Intel cores with two 512-bit FMA pipes, else 1; the
        register tiles and ``auto``'s cost models follow it), ``num_threads``,
        ``workspace_limit`` (bytes, 0: the default rule; see :func:`set_workspace_limit`),
        ``compiler``, ``eigen`` (version), ``openmp`` (OpenMP specification date, 0 without
        OpenMP).

    Examples
    --------
    >>> import fastconv
    >>> fastconv.info()["isas"][0]
    'scalar'
    """
    return dict(_core.info())


def algorithms(direction: str | None = None) -> list[str]:
    """Names of the registered convolution algorithms, best first.

    Each name is accepted as ``algo=`` by the convolution functions; ``'auto'`` chooses.

    Parameters
    ----------
    direction : {None, 'forward', 'backward_data', 'backward_weights'}
        Only the algorithms implementing this direction. ``conv*d`` and
        ``grad.conv_transpose*d_input`` run ``'forward'``; ``grad.conv*d_input`` and
        ``conv_transpose*d`` run ``'backward_data'``; the ``*_weight`` gradients run
        ``'backward_weights'``.

    Examples
    --------
    >>> import fastconv
    >>> 'gemm' in fastconv.algorithms('backward_weights')
    True
    """
    if direction is not None and not isinstance(direction, str):
        raise TypeError(f"algorithms: direction must be a str or None, got {direction!r}")
    return list(_core.algorithms(direction))


def set_isa(name: str) -> str:
    """Run the kernels of instruction set ``name`` from now on; return the previous name.

    ``name`` must be one of ``info()['isas']`` (the environment variable ``FASTCONV_ISA`` caps
    that list at import). Meant for testing every kernel path in one process.

    Examples
    --------
    >>> import fastconv
    >>> previous = fastconv.set_isa('scalar')
    >>> fastconv.get_isa()
    'scalar'
    >>> _ = fastconv.set_isa(previous)
    """
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    return _core.set_isa(name)


def get_isa() -> str:
    """Name of the instruction set whose kernels run now (``'scalar'``, ``'avx2'``, ``'avx512'``)."""
    return _core.get_isa()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every parallel region (default: the cores OpenMP would use).

    Examples
    --------
    >>> import fastconv
    >>> old = fastconv.get_num_threads(); fastconv.set_num_threads(1)
    >>> fastconv.get_num_threads()
    1
    >>> fastconv.set_num_threads(old)
    """
    import operator

    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if not -(1 << 31) <= n < 1 << 31:
        raise ValueError(f"set_num_threads: expected 1 <= n <= 1024, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads used by every parallel region."""
    return _core.get_num_threads()


def set_workspace_limit(nbytes: int) -> None:
    """Bound the scratch memory of one call: copies of its operands (padded inputs and their
    gradients) are made for runs of whole images that fit in ``nbytes``.

    ``0`` (the default) means max(16 MiB, the call's input size). A single image's copy is never
    split, so one image larger than the limit still gets its copy. Results do not depend on the
    limit, except the weight gradients' last bits (runs are summed one after another).

    Examples
    --------
    >>> import fastconv
    >>> fastconv.set_workspace_limit(64 << 20); fastconv.get_workspace_limit()
    67108864
    >>> fastconv.set_workspace_limit(0)
    """
    import operator

    try:
        nbytes = operator.index(nbytes)
    except TypeError:
        raise TypeError(f"set_workspace_limit: nbytes must be an integer, got {type(nbytes).__name__}") from None
    if not 0 <= nbytes < 1 << 63:
        raise ValueError(f"set_workspace_limit: expected 0 <= nbytes < 2**63, got {nbytes}")
    _core.set_workspace_limit(nbytes)


def release_memory() -> int:
    """Free the large scratch buffers this thread keeps for its next calls, and the FFT tables.

    Buffers of 1 MiB and more (packed weights, workspaces, and the memory of freed output
    arrays) are kept for later calls and arrays, at most 4 of them and 64 MiB per thread,
    because fresh memory costs a page fault per 4 KiB on first touch. This returns them to the
    system; each thread's are freed when it exits anyway. The FFT algorithm's tables of the
    transform sizes it used (twiddles, index tables; at most 32 MiB for the process) are freed
    too, and made again by the next call that needs them.

    Returns
    -------
    int
        The bytes freed.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> from fastconv.functional import conv2d
    >>> y = conv2d(np.ones((1, 64, 64, 64), np.float32), np.ones((64, 64, 3, 3), np.float32))
    >>> fastconv.release_memory() > 0, fastconv.release_memory()
    (True, 0)
    """
    return _core.release_memory()


def get_workspace_limit() -> int:
    """The bound set by :func:`set_workspace_limit` (0: the default rule)."""
    return _core.get_workspace_limit()
