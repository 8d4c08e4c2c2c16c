"""The numba kernels' threads, and the kernels under threads, forked and
spawned processes, and a read-only install."""

import multiprocessing
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from joblib import Parallel, delayed

from sklearn_wlsc import sparse_encode
from sklearn_wlsc._backends import _threads

from .conftest import make_problem


def _encode(seed):
    rng = np.random.default_rng(seed)
    Y, A = make_problem(rng, n=200, d=5, m=8)
    return (
        sparse_encode(Y, A, algorithm="exact").sum()
        + sparse_encode(Y, A, algorithm="unrolled").sum()
    )


def test_kernels_start_no_numba_threading_layer():
    # the kernels run on the package's own threads (``_threads.for_rows``),
    # not in numba parallel loops, so no threading layer (TBB, OpenMP) is
    # needed or started
    code = textwrap.dedent(
        """
        import numpy as np
        from numba.np.ufunc import parallel
        from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode
        rng = np.random.default_rng(0)
        Y = rng.standard_normal((500, 6))
        sparse_encode(Y, Y[:8], algorithm="exact", n_jobs=2)
        sparse_encode(Y.astype(np.float32), Y[:8].astype(np.float32), algorithm="unrolled", n_jobs=2)
        WeightedL1SparseCoder(4, max_iter=3, random_state=0).fit(Y)
        print(parallel._is_initialized)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("n", [0, 1, 64, 65, 1000, 4097])
@pytest.mark.parametrize("n_jobs", [1, 2, 4])
def test_for_rows_covers_every_row_once(n, n_jobs):
    seen = np.zeros(n, dtype=np.int64)
    calls = []
    lock = threading.Lock()

    def kernel(out, start, stop):
        with lock:
            calls.append((start, stop))
        out[start:stop] += 1

    with _threads.limit_threads(n_jobs):
        _threads.for_rows(kernel, n, seen, min_rows=64)
    np.testing.assert_array_equal(seen, 1)
    assert all(0 <= a <= b <= n for a, b in calls)
    # a small pass, or one thread, is one call in the calling thread
    if n <= 64 or _threads.current_threads() == 1 or min(n_jobs, _threads.max_threads()) == 1:
        assert calls == [(0, n)]


def test_for_rows_runs_on_several_threads():
    names = set()
    barrier = threading.Barrier(2, timeout=10)

    def kernel(start, stop):
        name = threading.current_thread().name
        if name not in names:
            names.add(name)
            barrier.wait()  # the two threads meet: both take part

    if _threads.max_threads() < 2:
        pytest.skip("one core: the kernels run on one thread")
    with _threads.limit_threads(2):
        _threads.for_rows(kernel, 1000)
    assert len(names) == 2 and threading.current_thread().name in names


def test_for_rows_reraises_a_worker_error_and_stops_early():
    if _threads.max_threads() < 2:
        pytest.skip("one core: the kernels run on one thread")
    caller = threading.current_thread()
    raised = threading.Event()
    calls = []

    def failing(start, stop):
        calls.append(start)
        if threading.current_thread() is not caller:
            raised.set()
            raise ArithmeticError(f"rows {start}:{stop}")
        raised.wait(timeout=10)  # the worker fails while this range runs

    with _threads.limit_threads(2), pytest.raises(ArithmeticError, match="rows"):
        _threads.for_rows(failing, 1000)
    assert raised.is_set()
    # the error stops both threads after the range each is on (of 16)
    assert len(calls) <= 3, calls


def test_for_rows_runs_in_the_calling_thread_when_the_pool_is_shut_down(monkeypatch):
    # at interpreter shutdown the pool takes no more work: a pass started
    # then (from an atexit handler, a non-daemon thread) still covers every
    # row, in the calling thread
    closed = ThreadPoolExecutor(1)
    closed.shutdown()
    monkeypatch.setattr(_threads, "_get_pool", lambda: closed)
    seen = np.zeros(1000, dtype=np.int64)
    threads = set()

    def kernel(start, stop):
        threads.add(threading.current_thread())
        seen[start:stop] += 1

    with _threads.limit_threads(2):
        _threads.for_rows(kernel, 1000)
    np.testing.assert_array_equal(seen, 1)
    assert threads == {threading.current_thread()}


def test_limit_threads_belongs_to_the_calling_thread():
    n_max = _threads.max_threads()
    assert _threads.current_threads() == n_max
    seen = {}

    def other():
        seen["other"] = _threads.current_threads()

    with _threads.limit_threads(1):
        assert _threads.current_threads() == 1
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        with _threads.limit_threads(-1):
            assert _threads.current_threads() == n_max
        with _threads.limit_threads(None):
            assert _threads.current_threads() == 1
        assert _threads.current_threads() == 1
    assert seen["other"] == n_max
    assert _threads.current_threads() == n_max
    with _threads.limit_threads(10 * n_max):
        assert _threads.current_threads() == n_max


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
