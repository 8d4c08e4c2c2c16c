"""Out-of-core and distributed WLSC on dask arrays.

The algorithm is the one of ``_dict_learning``, run block by block:

- **Encoding** (:func:`encode_dask`) maps :func:`~._dict_learning.encode_pass`
  over row blocks. Codes of a row depend on that row only, so the result
  equals the in-memory encoder's.
- **Fitting** (:func:`alternating_fit_dask`) mirrors
  :func:`~._dict_learning.alternating_fit` step by step. Each iteration
  encodes every block exactly and tree-reduces the dictionary's sufficient
  statistics ``(XᵀX, Xᵀ1, XᵀY)``, the sum of the per-sample objective and the
  ``m`` worst-represented samples (the donors of re-seeded atoms); the client
  then solves the ``m × m`` system. The statistics are sums over samples, so
  the fit is exact: it differs from the in-memory one by the order of
  floating-point additions, and (unless ``warm_start``) by the starting
  point of the exact encoder, which changes the codes within its tolerance.
- **Initialization** (:func:`init_dictionary_dask`): ``"random"`` draws the
  same rows as the in-memory initialization; ``"k-means++"`` runs k-means||
  (Bahmani et al., 2012), whose seeds differ from the in-memory k-means++
  ones. Pass the same ``init`` array to both to compare fits.

Only small arrays (dictionaries, statistics, candidate seeds) travel to the
client; the data stay on the workers. Tasks carry plain arrays and the
backend's *name*; the backend is looked up on the worker, so no numba
dispatcher is ever pickled. Each task limits the backend's threads to
``n_jobs``, by default the number of threads of the dask worker running it.
Warnings raised inside a task (the exact encoder's ConvergenceWarning during
a transform) go to the worker's log; the fit counts them and warns on the
client.

dask is imported inside the functions: importing this module, like importing
``sklearn_wlsc``, imports no optional dependency. Every function here trusts
its inputs; validation lives in ``_estimator`` (see :func:`check_dask_array`).
"""

import functools
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _dict_learning

# blocks combined per node of the tree reductions
SPLIT_EVERY = 8


# -- helpers -------------------------------------------------------------


def is_dask_collection(X):
    """Whether ``X`` is a dask collection (array or dataframe).

    Never imports dask: an object can only be a dask collection when dask is
    already imported.
    """
    if "dask" not in sys.modules:
        return False
    from dask import is_dask_collection as _is

    return bool(_is(X))


def column_meta(X):
    """What scikit-learn's feature-name and feature-count checks should see
    of a dask collection: a dask dataframe's empty pandas ``_meta`` (which
    carries its column names; scikit-learn finds none on the lazy frame),
    else ``X`` itself."""
    meta = getattr(X, "_meta", None)
    if hasattr(meta, "columns"):
        return meta
    if getattr(X, "ndim", 2) != 2:
        # before any feature count is read from a shape that has none
        raise ValueError(f"Expected a 2D dask array, got ndim={X.ndim}.")
    return X


def check_dask_array(X, *, dtype=(np.float64, np.float32), lazy_rows=False):
    """The public edge's checks for a dask input, lazily.

    Converts a dask dataframe to an array, casts other dtypes to float64,
    checks ``ndim == 2``, computes unknown chunk sizes, and puts all columns
    in one chunk. Finiteness is checked by the tasks, as they run.

    With ``lazy_rows`` (for blockwise maps: transform, inverse_transform,
    sparse_encode), unknown row chunk sizes (a dataframe's partitions, a
    filtered array) stay unknown, so that nothing is computed before the
    result is: they are computed only when the columns must be rechunked,
    and an array with no rows is then found only by the empty result.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    """
    import dask.array as da

    if not isinstance(X, da.Array):
        if hasattr(X, "to_dask_array"):
            dtypes = getattr(X, "dtypes", None)
            if dtypes is not None and not all(
                str(t) in ("float32", "float64") for t in np.atleast_1d(dtypes)
            ):
                # bool, integer or nullable (Int64, Float64, boolean) columns:
                # as floats, pd.NA as NaN (refused as such by the tasks), as
                # a pandas frame would be
                try:
                    X = X.astype("float64")
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        "The dask dataframe has non-numeric columns; numeric "
                        f"(boolean, integer or floating-point) columns are required: {exc}"
                    ) from None
            X = X.to_dask_array(lengths=None if lazy_rows else True)
        else:
            X = da.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array, got ndim={X.ndim}.")
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: the dask array has dtype {X.dtype}.")
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"The dask array has dtype {X.dtype}; a numeric (boolean, integer or "
            "floating-point) array is required."
        )
    dtypes = tuple(np.dtype(t) for t in dtype)
    if X.dtype not in dtypes:
        X = X.astype(dtypes[0])
    X = _row_blocks(X, known_rows=not lazy_rows)
    n, d = X.shape
    if n == 0 or d == 0:  # n is NaN while the row chunks are unknown
        what = "sample" if n == 0 else "feature"
        raise ValueError(
            f"Found a dask array with 0 {what}(s) (shape={X.shape}) while a "
            "minimum of 1 is required."
        )
    return X


def _block_abs_max_and_sum(block):
    """``max |block|`` (0 for no rows) and its float64 column sums; a sum
    that overflows is inf, silently: the caller then rescales and sums
    again."""
    block = np.asarray(block)
    with np.errstate(over="ignore"):
        return (
            float(np.abs(block).max(initial=0.0)),
            block.sum(axis=0, dtype=np.float64),
        )


def _combine_abs_max_and_sum(parts):
    with np.errstate(over="ignore"):
        return max(p[0] for p in parts), sum((p[1] for p in parts[1:]), parts[0][1])


def abs_max_and_mean(X):
    """``max |X|`` and the float64 column mean of a non-empty dask array
    with known row chunks, computed in one pass over the blocks (blocks
    without rows included)."""
    from dask import delayed

    stat = delayed(_block_abs_max_and_sum, pure=True)
    parts = [stat(b) for b in X.to_delayed().ravel()]
    ((top, total),) = _compute(_tree_reduce(parts, _combine_abs_max_and_sum))
    with np.errstate(over="ignore", invalid="ignore"):
        return float(top), np.asarray(total, dtype=np.float64) / X.shape[0]


def scaled(X, exponent):
    """``X · 2**-exponent``, lazily and exactly (``numpy.ldexp`` per block)."""
    if not exponent:
        return X
    return X.map_blocks(np.ldexp, -exponent, dtype=X.dtype)


def _row_blocks(Y, known_rows=True):
    """``Y`` with all columns in one chunk, and known row chunks unless
    ``known_rows`` is false and no column rechunk needs them."""
    unknown = any(np.isnan(c) for c in Y.chunks[0])
    if unknown and (known_rows or Y.numblocks[1] != 1):
        Y = Y.compute_chunk_sizes()
    if Y.numblocks[1] != 1:
        Y = Y.rechunk({1: -1})
    return Y


def _block_offsets(Y):
    """Global index of the first row of each row block."""
    return np.concatenate([[0], np.cumsum(Y.chunks[0])[:-1]]).astype(np.int64)


def _compute(*objs):
    """``dask.compute``: every result that reaches the client passes here
    (the tests count the bytes)."""
    import dask

    return dask.compute(*objs)


def _tree_reduce(parts, combine, split_every=SPLIT_EVERY):
    """Combine delayed ``parts`` with ``combine(list)`` in a tree."""
    from dask import delayed

    combine = delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [combine(parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def task_n_jobs(n_jobs=None):
    """Threads of a task: ``n_jobs`` when given, else the number of threads
    of the dask worker running the task (``None`` outside a worker).

    A worker with ``t`` threads runs up to ``t`` tasks at once, each asking
    for ``t`` kernel threads. They share the process's kernel threads, and
    no more than ``NUMBA_NUM_THREADS`` kernel calls run at once in a
    process, so the worker does not oversubscribe its cores.
    """
    if n_jobs is not None:
        return n_jobs
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not running on a worker
        return None
    state = getattr(worker, "state", None)
    nthreads = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(nthreads) if nthreads else None


def _check_finite(block):
    if not np.isfinite(block).all():
        raise ValueError("Input X contains NaN or infinity.")


def _backend_name(name, device=None):
    from ._backends import resolve_backend_name

    return resolve_backend_name(name, device=device)


# -- encoding ------------------------------------------------------------


def _encode_block(
    block, A, alpha, algorithm, n_layers, tol, max_iter, backend_name, device, n_jobs, output
):
    """Codes (``output="codes"``) or per-sample objective (``"objective"``)
    of one row block (runs on a worker)."""
    from ._backends import get_backend

    block = np.asarray(block)
    _check_finite(block)
    res = _dict_learning.encode_pass(
        block,
        A,
        alpha,
        get_backend(backend_name, device=device),
        algorithm=algorithm,
        n_layers=n_layers,
        tol=tol,
        max_iter=max_iter,
        n_jobs=task_n_jobs(n_jobs),
        keep_codes=output == "codes",
        objective=output == "objective",
    )
    return res.codes if output == "codes" else res.objective


def encode_dask(
    Y,
    A,
    alpha,
    *,
    algorithm="exact",
    n_layers=50,
    tol=1e-10,
    max_iter=None,
    backend_name="numba",
    device=None,
    n_jobs=None,
):
    """Codes of a dask array, lazily, block by block.

    Parameters
    ----------
    Y : dask.array.Array of shape (n_samples, n_features), float32 or float64
    A : ndarray of shape (n_components, n_features)
    alpha : float
    algorithm : {"exact", "unrolled"}
    n_layers, tol, max_iter :
        As in :func:`~._dict_learning.encode_pass`.
    backend_name : str
        Name of the backend, looked up on each worker.
    device : str or None
        Device of the torch backend, on each worker.
    n_jobs : int or None
        Threads per task; ``None``: the worker's number of threads.

    Returns
    -------
    codes : dask.array.Array of shape (n_samples, n_components)
        Same dtype and row chunks as ``Y``; equal to the codes of
        :func:`~._dict_learning.encode_pass` on the whole array.
    """
    return _map_encode(
        Y, A, alpha, algorithm, n_layers, tol, max_iter, backend_name, device, n_jobs
    )


def _reconstruct_block(block, A):
    block = np.asarray(block)
    _check_finite(block)
    return block @ A


def reconstruct_dask(X, A):
    """``X @ A`` blockwise and lazily, each task checking its codes are
    finite (``X`` from :func:`check_dask_array`, ``A`` in its dtype)."""
    from dask.base import tokenize

    A = np.ascontiguousarray(A, dtype=X.dtype)
    return X.map_blocks(
        _reconstruct_block,
        A,
        chunks=(X.chunks[0], (A.shape[1],)),
        dtype=X.dtype,
        meta=np.empty((0, 0), dtype=X.dtype),
        name="wlsc-reconstruct-" + tokenize(X, A),
    )


def _map_encode(
    Y, A, alpha, algorithm, n_layers, tol, max_iter, backend_name, device, n_jobs, output="codes"
):
    from dask.base import tokenize

    Y = _row_blocks(Y, known_rows=False)
    A = np.ascontiguousarray(A, dtype=Y.dtype)
    backend_name = _backend_name(backend_name, device)
    args = (
        float(alpha),
        algorithm,
        int(n_layers),
        float(tol),
        max_iter,
        backend_name,
        device,
        n_jobs,
        output,
    )
    name = f"wlsc-{output}-" + tokenize(Y, A, *args)
    if output == "codes":
        return Y.map_blocks(
            _encode_block,
            A,
            *args,
            chunks=(Y.chunks[0], (A.shape[0],)),
            dtype=Y.dtype,
            meta=np.empty((0, 0), dtype=Y.dtype),
            name=name,
        )
    return Y.map_blocks(
        _encode_block,
        A,
        *args,
        drop_axis=1,
        chunks=(Y.chunks[0],),
        dtype=np.float64,
        meta=np.empty((0,), dtype=np.float64),
        name=name,
    )


def sample_objective_dask(
    Y,
    A,
    alpha,
    *,
    algorithm="exact",
    n_layers=50,
    tol=1e-10,
    max_iter=None,
    backend_name="numba",
    device=None,
    n_jobs=None,
):
    """Per-sample objective of the codes of a dask array, lazily; its mean
    is ``F`` and ``−F`` the estimator's ``score``. Parameters as in
    :func:`encode_dask`.

    Returns
    -------
    objective : dask.array.Array of shape (n_samples,), float64
    """
    return _map_encode(
        Y, A, alpha, algorithm, n_layers, tol, max_iter, backend_name, device, n_jobs, "objective"
    )


# -- alternating fit -----------------------------------------------------


def _fit_block(block, offset, center, A, alpha, encode_params, backend, n_jobs, n_top, codes):
    """One block's share of an alternating-fit iteration (runs on a worker).

    Centers the block as ``alternating_fit`` centers the data, encodes it
    exactly (warm-started from ``codes`` unless it is ``None`` or ``False``;
    ``False`` also means that no codes are kept), and returns a summary (its
    statistics, objective sum, convergence counts and its ``n_top``
    worst-represented rows, ordered by decreasing objective, then by index)
    and its codes (``None`` when not kept).
    """
    from ._backends import get_backend

    block = np.asarray(block)
    _check_finite(block)
    Yc = (block - center).astype(block.dtype, copy=False)
    # the encoder's warning is counted below and raised once on the client:
    # not through warnings.catch_warnings, whose filters are process-wide
    # and would be restored out of order by blocks running in threads
    res = _dict_learning.encode_pass(
        Yc,
        A,
        alpha,
        get_backend(backend[0], device=backend[1]),
        algorithm="exact",
        keep_codes=codes is not False,
        objective=True,
        statistics=True,
        init_codes=None if codes is False else codes,
        n_jobs=task_n_jobs(n_jobs),
        warn=False,
        **encode_params,
    )
    f = res.objective
    order = np.argsort(-f, kind="stable")[:n_top]
    summary = {
        "statistics": res.statistics,
        "objective": float(f.sum()),
        "n": int(block.shape[0]),
        "n_bad": int(np.count_nonzero(res.gap > encode_params["tol"])),
        "gap_max": float(res.gap.max(initial=0.0)),
        "top_objective": f[order],
        "top_index": order.astype(np.int64) + offset,
        "top_rows": Yc[order],
    }
    return summary, res.codes


def _combine_fit(parts, n_top):
    """Merge block results: sums, and the ``n_top`` worst rows overall."""
    f = np.concatenate([p["top_objective"] for p in parts])
    idx = np.concatenate([p["top_index"] for p in parts])
    rows = np.concatenate([p["top_rows"] for p in parts])
    # decreasing objective, ties by global index: a stable argsort's order
    order = np.lexsort((idx, -f))[:n_top]
    return {
        "statistics": tuple(
            sum((p["statistics"][k] for p in parts[1:]), parts[0]["statistics"][k])
            for k in range(3)
        ),
        "objective": sum(p["objective"] for p in parts),
        "n": sum(p["n"] for p in parts),
        "n_bad": sum(p["n_bad"] for p in parts),
        "gap_max": max(p["gap_max"] for p in parts),
        "top_objective": f[order],
        "top_index": idx[order],
        "top_rows": rows[order],
    }


def _encode_statistics(blocks, offsets, center, A, alpha, encode_params, backend, n_jobs, codes):
    """One distributed exact-encoding pass.

    ``codes`` is ``False`` (no warm start, no codes kept) or the list of the
    previous pass's code blocks (``None`` entries at the first pass).

    Returns the merged block summaries and, unless ``codes`` is ``False``,
    the new code blocks, persisted on the workers.
    """
    import dask
    from dask import delayed

    A_ = delayed(A, pure=True)
    center_ = delayed(center, pure=True)
    fit_block = delayed(_fit_block, pure=True, nout=2)
    n_top = A.shape[0]
    parts = [
        fit_block(
            b,
            int(o),
            center_,
            A_,
            alpha,
            encode_params,
            backend,
            n_jobs,
            n_top,
            False if codes is False else codes[k],
        )
        for k, (b, o) in enumerate(zip(blocks, offsets))
    ]
    total = _tree_reduce([p[0] for p in parts], functools.partial(_combine_fit, n_top=n_top))
    if codes is False:
        (total,) = _compute(total)
        return total, False
    total, *new_codes = dask.persist(total, *[p[1] for p in parts])
    (total,) = _compute(total)
    return total, new_codes


def alternating_fit_dask(
    Y,
    A,
    alpha,
    *,
    max_iter,
    tol,
    encode_params,
    backend_name="numba",
    device=None,
    n_jobs=None,
    verbose=0,
    on_iteration=None,
    warm_start=False,
    scale_exponent=0,
    return_statistics=False,
    center=None,
):
    """Alternating minimization on a dask array, distributed and exact.

    The same steps and numbers as :func:`~._dict_learning.alternating_fit`
    (up to the order of floating-point additions): center the data by its
    column mean; then repeat an exact encoding of every sample, re-seeding of
    unused atoms with the worst-represented samples, and the closed-form
    dictionary update, until the relative decrease of ``F`` is at most
    ``tol``. Each iteration is one pass over the data; the reductions are
    trees of ``SPLIT_EVERY`` blocks and only ``m × d``-sized results reach
    the client.

    Parameters
    ----------
    Y : dask.array.Array of shape (n_samples, n_features), float32 or float64
    A : ndarray of shape (n_components, n_features)
        Initial dictionary; not modified.
    alpha : float
    max_iter : int
    tol : float
    encode_params : dict
        ``tol`` and ``max_iter`` of the exact encoder.
    backend_name : str
        Backend looked up on the workers.
    device : str or None
        Device of the torch backend, on each worker.
    n_jobs : int or None
        Threads per task; ``None``: the worker's number of threads.
    verbose : int
    on_iteration : callable, default=None
        Called as ``on_iteration(iteration, objective, atoms)`` after each
        encoding (atoms in the data's coordinates); a true return value
        stops the fit.
    warm_start : bool, default=False
        Start each exact encoding from the previous codes, as the in-memory
        fit does. The codes (``n_samples × n_components`` values) are then
        persisted on the workers between iterations; without, the fit holds
        no per-sample state and reaches the same objective up to the
        encoder's tolerance.
    scale_exponent : int, default=0
        ``Y`` and ``A`` are the data and atoms divided by
        ``2**scale_exponent``; progress and ``on_iteration`` report in the
        data's units (see :func:`~._dict_learning.fit_scale_exponent`).
    return_statistics : bool, default=False
        Also return the per-sample sufficient statistics of the last
        encoding (:func:`~._dict_learning.mean_statistics`).
    center : ndarray of shape (n_features,), default=None
        The float64 column mean of ``Y`` when the caller has computed it
        already (:func:`abs_max_and_mean`); ``None`` computes it, one more
        pass over the data.

    Returns
    -------
    A : ndarray of shape (n_components, n_features)
    history : list of float
        ``F`` after each encoding, starting with the initial dictionary.
    n_iter : int
    n_reseeded : int
    statistics : tuple of ndarray
        Only with ``return_statistics``.
    """
    Y = _row_blocks(Y)
    # (name, device), as get_backend takes them on the worker
    backend = (_backend_name(backend_name, device), device)
    alpha = float(alpha)
    encode_params = dict(encode_params)
    encode_params.setdefault("tol", 1e-10)
    if center is None:
        (center,) = _compute(Y.mean(axis=0, dtype=np.float64))
    center = np.asarray(center, dtype=np.float64)
    if center.shape != (Y.shape[1],):
        raise ValueError(f"center has shape {center.shape}, expected ({Y.shape[1]},).")
    A = np.asarray(A, dtype=np.float64) - center
    n = Y.shape[0]
    blocks = list(Y.to_delayed().ravel())
    offsets = _block_offsets(Y)
    history = []
    n_reseeded = 0
    n_iter = 0
    t0 = time.perf_counter()
    converged = False
    codes = [None] * len(blocks) if warm_start else False
    for it in range(max_iter + 1):
        res, codes = _encode_statistics(
            blocks, offsets, center, A, alpha, encode_params, backend, n_jobs, codes
        )
        if res["n_bad"]:
            warnings.warn(
                f"The exact encoder stopped at its iteration cap before the "
                f"duality gap fell below tol={encode_params['tol']:g} for "
                f"{res['n_bad']} of {n} samples (largest relative gap "
                f"{res['gap_max']:.3g}); increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        F = res["objective"] / n
        history.append(F)
        if _dict_learning.iteration_should_stop(
            it, history, tol, verbose, t0, on_iteration, A + center, scale_exponent
        ):
            converged = True
            break
        if it == max_iter:
            break
        # the merged candidates are the worst rows in the order of the
        # in-memory stable argsort, so the same donors are chosen
        A, k = _dict_learning.dictionary_step(
            A,
            res["statistics"],
            n,
            alpha,
            res["top_rows"],
            res["top_objective"],
        )
        n_reseeded += k
        n_iter += 1
    if not converged and max_iter > 0:
        _dict_learning.warn_not_converged(max_iter, tol)
    if return_statistics:
        stats = _dict_learning.mean_statistics(res["statistics"], n, center)
        return A + center, history, n_iter, n_reseeded, stats
    return A + center, history, n_iter, n_reseeded


# -- initialization --------------------------------------------------------


def _take_block_rows(block, local):
    return np.asarray(block)[local]


def take_rows(Y, indices):
    """Rows ``Y[indices]`` as an ndarray, in the order of ``indices``, reading
    only the blocks that hold them."""
    from dask import delayed

    Y = _row_blocks(Y)
    indices = np.asarray(indices, dtype=np.int64)
    offsets = _block_offsets(Y)
    which = np.searchsorted(offsets, indices, side="right") - 1
    blocks = Y.to_delayed().ravel()
    take = delayed(_take_block_rows, pure=True)
    parts, positions = [], []
    for b in np.unique(which):
        sel = np.flatnonzero(which == b)
        parts.append(take(blocks[b], indices[sel] - offsets[b]))
        positions.append(sel)
    out = np.empty((indices.size, Y.shape[1]), dtype=Y.dtype)
    if parts:
        for sel, rows in zip(positions, _compute(*parts)):
            out[sel] = rows
    return out


def _sq_dist_min(block, centers, c_norms, chunk_rows=4096):
    """Squared distance of each row to its nearest center, and its index.

    Works on ``chunk_rows`` rows at a time, so that the distance matrix stays
    small when there are many centers.
    """
    block = np.asarray(block)
    n = block.shape[0]
    d2 = np.empty(n)
    nearest = np.empty(n, dtype=np.intp)
    for start in range(0, n, chunk_rows):
        Y = block[start : start + chunk_rows].astype(np.float64, copy=False)
        D = Y @ centers.T
        D *= -2.0
        D += np.einsum("ij,ij->i", Y, Y)[:, None]
        D += c_norms[None, :]
        j = D.argmin(axis=1)
        nearest[start : start + Y.shape[0]] = j
        d2[start : start + Y.shape[0]] = np.maximum(D[np.arange(Y.shape[0]), j], 0.0)
    return d2, nearest


def _init_d2(block, centers, c_norms):
    return _sq_dist_min(block, centers, c_norms)[0]


def _update_d2(block, d2, centers, c_norms):
    return np.minimum(d2, _sq_dist_min(block, centers, c_norms)[0])


def _sample_block(block, d2, factor, seed):
    """Rows kept independently with probability ``min(1, factor · d²)``."""
    u = np.random.default_rng(seed).random(d2.shape[0])
    return np.asarray(block, dtype=np.float64)[u < factor * d2]


def _count_nearest(block, centers, c_norms):
    j = _sq_dist_min(block, centers, c_norms)[1]
    return np.bincount(j, minlength=centers.shape[0]).astype(np.float64)


def _sum_parts(parts):
    return sum(parts[1:], parts[0])


def kmeans_parallel(Y, n_clusters, random_state, *, oversampling_factor=2.0, n_rounds=5):
    """k-means|| seeds (Bahmani et al., 2012), computed blockwise.

    One uniformly drawn row starts the candidate set; each of ``n_rounds``
    rounds keeps every row independently with probability
    ``ℓ d²(y, C) / φ(C)`` (``ℓ = oversampling_factor · n_clusters``,
    ``φ`` the total squared distance to the candidates), about ``ℓ`` new
    candidates per round. Candidates are weighted by the number of rows
    nearest to them, and a weighted k-means++ on the client (about
    ``1 + n_rounds · ℓ`` points) picks the seeds.

    The per-row squared distances to the candidates (``n_samples`` floats,
    ``1/n_features`` of the data) are persisted on the workers between
    rounds; the data are read ``2 n_rounds + 1`` times and never gathered
    (persist ``Y`` first when it fits in the cluster's memory and is costly
    to read).

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
    """
    import dask.array as da
    from dask import delayed
    from sklearn.cluster import kmeans_plusplus

    Y = _row_blocks(Y)
    n = Y.shape[0]
    ell = float(oversampling_factor) * n_clusters

    def norms(C):
        return np.einsum("ij,ij->i", C, C)

    C = take_rows(Y, [random_state.randint(n)]).astype(np.float64)
    candidates = [C]
    d2 = da.blockwise(
        _init_d2,
        "i",
        Y,
        "ij",
        C,
        None,
        norms(C),
        None,
        dtype=np.float64,
        concatenate=True,
        meta=np.empty(0),
    ).persist()
    sample = delayed(_sample_block, pure=True)
    for r in range(n_rounds):
        (phi,) = _compute(d2.sum())
        if not phi > 0.0:
            break
        seeds = random_state.randint(np.iinfo(np.int32).max, size=Y.numblocks[0])
        parts = [
            sample(b, db, ell / phi, int(s))
            for b, db, s in zip(Y.to_delayed().ravel(), d2.to_delayed().ravel(), seeds)
        ]
        new = np.concatenate(_compute(*parts), axis=0)
        if new.shape[0] == 0:
            continue
        candidates.append(new)
        if r < n_rounds - 1:
            d2 = da.blockwise(
                _update_d2,
                "i",
                Y,
                "ij",
                d2,
                "i",
                new,
                None,
                norms(new),
                None,
                dtype=np.float64,
                concatenate=True,
                meta=np.empty(0),
            ).persist()
    del d2
    C = np.concatenate(candidates, axis=0)
    count = delayed(_count_nearest, pure=True)
    C_, c_norms = delayed(C, pure=True), delayed(norms(C), pure=True)
    parts = [count(b, C_, c_norms) for b in Y.to_delayed().ravel()]
    (weights,) = _compute(_tree_reduce(parts, _sum_parts))
    if C.shape[0] < n_clusters:
        # too few distinct candidates (duplicated data): pad with random rows
        extra = take_rows(Y, random_state.choice(n, n_clusters - C.shape[0], replace=False))
        C = np.concatenate([C, extra.astype(np.float64)])
        weights = np.concatenate([weights, np.ones(extra.shape[0])])
    centers, _ = kmeans_plusplus(
        C, n_clusters, sample_weight=np.maximum(weights, 1e-12), random_state=random_state
    )
    return centers


def init_dictionary_dask(Y, n_components, init, random_state, **kmeans_params):
    """Initial atoms of a dask array, without gathering the data.

    ``"random"`` draws the same rows as
    :func:`~._dict_learning.init_dictionary` for the same random state;
    ``"k-means++"`` runs :func:`kmeans_parallel` (k-means||), whose seeds
    differ from the in-memory k-means++. An array is copied, so that the
    same array passed to both fits gives the same fit. With fewer samples
    than atoms, the data are small and the in-memory initialization runs.

    Returns
    -------
    A : ndarray of shape (n_components, n_features), float64
    """
    if not isinstance(init, str):
        return np.array(init, dtype=np.float64, copy=True)
    random_state = check_random_state(random_state)
    Y = _row_blocks(Y)
    n = Y.shape[0]
    if n < n_components:
        (Y_small,) = _compute(Y)
        return _dict_learning.init_dictionary(Y_small, n_components, init, random_state)
    if init == "random":
        idx = random_state.choice(n, n_components, replace=False)
        return take_rows(Y, idx).astype(np.float64)
    return kmeans_parallel(Y, n_components, random_state, **kmeans_params)
