"""The numba kernels under threads, forked and spawned processes, and a
read-only install."""

import multiprocessing
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from joblib import Parallel, delayed

from sklearn_wlsc import sparse_encode

from .conftest import make_problem


def _encode(seed):
    rng = np.random.default_rng(seed)
    Y, A = make_problem(rng, n=200, d=5, m=8)
    return (
        sparse_encode(Y, A, algorithm="exact").sum()
        + sparse_encode(Y, A, algorithm="unrolled").sum()
    )


def test_threading_layer_is_thread_and_fork_safe():
    import numba

    _encode(0)  # launch the parallel kernels once
    if numba.threading_layer() != "tbb":
        pytest.skip(f"TBB is unavailable on this platform ({numba.threading_layer()} layer)")
    assert numba.threading_layer() == "tbb"


def test_concurrent_threads():
    expected = [_encode(s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(_encode, range(4)))
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_worker_processes(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is unavailable on this platform")
    _encode(0)  # the parent has run the parallel kernels before forking
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        got = pool.map(_encode, range(2), chunksize=1)
    np.testing.assert_allclose(got, [_encode(0), _encode(1)])


@pytest.mark.parametrize("joblib_backend", ["loky", "multiprocessing", "threading"])
def test_joblib_backends(joblib_backend):
    _encode(0)
    got = Parallel(n_jobs=2, backend=joblib_backend)(delayed(_encode)(s) for s in range(2))
    np.testing.assert_allclose(got, [_encode(0), _encode(1)])


def test_without_a_writable_cache():
    # numba finds no cache locator, as in a read-only install with no
    # writable user cache: the kernels compile in memory, with one warning
    code = textwrap.dedent(
        """
        import warnings
        import numba.core.caching as caching
        caching.CacheImpl._locator_classes = []
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import numpy as np
            from sklearn_wlsc import sparse_encode
            x = sparse_encode(np.eye(3), np.eye(3))
        assert np.allclose(x, np.eye(3)), x
        msgs = [str(v.message) for v in w if "cannot cache" in str(v.message)]
        assert len(msgs) == 1, msgs
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_import_does_not_load_optional_dependencies():
    code = (
        "import sys, sklearn_wlsc; "
        "bad = [m for m in ('numba', 'torch', 'dask', 'matplotlib') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
