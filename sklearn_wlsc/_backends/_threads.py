"""Threads for the numba kernels.

The kernels encode one range of rows per call, with the GIL released
(``nogil=True``); :func:`for_rows` splits the rows of a call into ranges and
runs them on a pool of threads, the calling thread included. Ranges are
taken in turn from a shared counter, so fast threads take more of them.

The kernels are not numba ``parallel=True`` loops because numba compiles
the body of such a loop twice: once alone, which is the code the compiling
process runs, and once more inside the kernel, which is the code it writes
to its disk cache and every later process loads. With fast math's
reassociation the two sum in different orders, so codes computed by the
process that compiled the kernels differed in the last bits from codes
computed by any other (its dask workers, or the next run). A plain
``nogil`` function is compiled once, and every process runs the same
machine code. The unrolled encoder also compiles in a third of the time,
and the exact encoder in 0.6 of it.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_local = threading.local()
_lock = threading.Lock()
_pool = None
# the kernel calls running at once in this process, over every caller,
# never exceed max_threads(): concurrent callers (the threads of a dask
# worker, a threaded joblib backend) share the cores instead of
# oversubscribing them. Waiting callers are not served in any set order.
_slots = None


def max_threads():
    """The most threads the kernels use: numba's ``NUMBA_NUM_THREADS``,
    by default the number of cores."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def current_threads():
    """The threads that kernels started from this thread use (see
    :func:`limit_threads`)."""
    n = getattr(_local, "n_threads", None)
    return max_threads() if n is None else n


@contextlib.contextmanager
def limit_threads(n_jobs):
    """Run the kernels started from this thread on ``n_jobs`` threads
    within the block.

    ``None`` keeps the current setting; negative values count back from
    :func:`max_threads` as in joblib (``-1`` is all of them). The setting
    belongs to the calling thread, so concurrent callers each keep theirs.
    """
    if n_jobs is None:
        yield
        return
    n_max = max_threads()
    n = n_jobs if n_jobs > 0 else max(1, n_max + 1 + n_jobs)
    previous = getattr(_local, "n_threads", None)
    _local.n_threads = min(n, n_max)
    try:
        yield
    finally:
        _local.n_threads = previous


def _get_slots():
    global _slots
    with _lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max_threads())
        return _slots


def _get_pool():
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, max_threads() - 1), thread_name_prefix="sklearn_wlsc"
            )
        return _pool


def _forget_pool_in_child():
    # a forked child has none of the parent's threads: a pool inherited
    # from the parent would take work and never run it
    global _pool, _slots, _lock
    _pool = None
    _slots = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def for_rows(kernel, n, *args, min_rows=64):
    """Call ``kernel(*args, start, stop)`` on ranges ``[start, stop)`` that
    cover ``range(n)``, on :func:`current_threads` threads.

    A call with one thread, or with at most ``min_rows`` rows, runs
    ``kernel(*args, 0, n)`` in the calling thread. Otherwise the rows are
    cut into about eight ranges per thread, of a multiple of ``min_rows``
    rows each, and the calling thread works on them too. The result must
    not depend on how the rows are split (each row is computed alone).
    """
    n_threads = current_threads()
    slots = _get_slots()
    if n_threads <= 1 or n <= min_rows:
        with slots:
            kernel(*args, 0, n)
        return
    size = -(-n // (8 * n_threads))
    size = -(-size // min_rows) * min_rows
    n_ranges = -(-n // size)
    ranges = iter(range(n_ranges))
    taking = threading.Lock()
    stopped = threading.Event()

    def work():
        try:
            while not stopped.is_set():
                with taking:
                    k = next(ranges, None)
                if k is None:
                    return
                with slots:
                    kernel(*args, k * size, min(n, (k + 1) * size))
        except BaseException:
            stopped.set()  # the other threads finish the range they are on
            raise

    futures = []
    try:
        pool = _get_pool()
        for _ in range(min(n_threads, n_ranges) - 1):
            futures.append(pool.submit(work))
    except RuntimeError:
        pass  # the interpreter is shutting down: this thread does the rest
    try:
        work()
    finally:
        # a future that has not started has nothing left to do
        started = [future for future in futures if not future.cancel()]
        for future in started:
            future.exception()  # wait
    for future in started:
        future.result()  # re-raise a worker's error
