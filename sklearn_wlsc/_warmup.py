"""Ahead-of-time compilation of the numba kernels."""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._backends import get_backend
from ._estimator import WeightedL1SparseCoder, sparse_encode


def warmup(dtypes=("float64", "float32")):
    """Compile the CPU kernels now, or load them from numba's disk cache.

    The numba kernels are compiled on first use, once per dtype, and cached
    on disk where a writable cache directory exists (the package folder,
    numba's user cache or ``NUMBA_CACHE_DIR``), so only the first process
    after an install pays for compiling. Call this function after installing
    (``python -c "import sklearn_wlsc; sklearn_wlsc.warmup()"`` or
    ``wlsc warmup``), or at the start of a service, so that no later call
    waits for the compiler. It runs every kernel once on a few samples: the
    simplex projection, the unrolled encoder and the exact encoder (which
    always works in float64) and a tiny fit.

    Parameters
    ----------
    dtypes : str, dtype or sequence of them, default=("float64", "float32")
        Data types, float64 and/or float32, to compile the projection and
        the unrolled encoder for (at least one).

    Returns
    -------
    seconds : dict
        Wall time of each step, in seconds, keyed by a description of the
        step. Steps whose kernels were already compiled or cached take
        milliseconds.

    Examples
    --------
    >>> import sklearn_wlsc
    >>> seconds = sklearn_wlsc.warmup(dtypes=["float64"])
    >>> sorted(seconds)  # doctest: +NORMALIZE_WHITESPACE
    ['exact encoder', 'fit', 'projection float64', 'unrolled encoder float64']
    """
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = [dtypes]
    try:
        dtypes = list(dtypes)
    except TypeError:
        raise TypeError(f"dtypes must be a dtype or a sequence of them, got {dtypes!r}.") from None
    if not dtypes:
        raise ValueError('dtypes is empty: give "float64", "float32" or both.')
    resolved = []
    for dt in dtypes:
        dtype = np.dtype(dt)
        if dtype not in (np.float64, np.float32):
            raise ValueError(f"warmup compiles float64 and float32 kernels; got dtype {dt!r}.")
        resolved.append(dtype)
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((16, 4))
    A = Y[:3].copy()
    backend = get_backend("numba")
    seconds = {}

    def timed(name, func):
        start = time.perf_counter()
        func()
        seconds[name] = time.perf_counter() - start

    # a sample far from the atoms: its rows go to the unrolled encoder's
    # kernel for values far from zero, which is compiled too
    Y_far = np.vstack([Y, np.full((1, 4), 1e6)])
    for dtype in resolved:
        Yd, Ad = Y_far.astype(dtype), A.astype(dtype)
        timed(f"projection {dtype}", lambda Yd=Yd: backend.project_simplex(Yd))
        timed(
            f"unrolled encoder {dtype}",
            lambda Yd=Yd, Ad=Ad: sparse_encode(
                Yd, Ad, algorithm="unrolled", n_layers=2, backend="numba"
            ),
        )
    timed("exact encoder", lambda: sparse_encode(Y, A, algorithm="exact", backend="numba"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # two iterations on purpose
        timed(
            "fit",
            lambda: WeightedL1SparseCoder(3, max_iter=2, backend="numba", random_state=0).fit(Y),
        )
    return seconds
