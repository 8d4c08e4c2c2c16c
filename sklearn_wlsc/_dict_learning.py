"""The WLSC algorithm, written once: encoding passes, dictionary updates,
initialization, alternating minimization and minibatch statistics.

Every function here trusts its inputs; validation lives in ``_estimator``.

Numerics. The objective and the codes are invariant when samples and atoms
are translated together, and the codes are invariant when both are scaled.
Each encoding pass therefore works on rows centered at a center of the
atoms (:func:`atoms_center`) and scaled by a power of two (an exact operation in floating point), so that
data far from the origin or with values near 1e±150 lose no accuracy and
never overflow.
"""

import math
import time
import warnings

import numpy as np
from scipy import linalg
from sklearn.exceptions import ConvergenceWarning

from . import _objective

_BLAS_CONTROLLER = []


def single_threaded_blas():
    """Context manager running BLAS on one thread.

    The BLAS calls of a pass are small (``m × m`` solves, GEMMs on chunks of
    rows) and sit between parallel numba kernels; a multi-threaded BLAS
    spins and competes with those kernels' threads for the cores, which made
    ``fit`` an order of magnitude slower on a busy two-core machine.
    """
    if not _BLAS_CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def _abs_max(a):
    """``max |a|`` (0 for an empty array), without an ``|a|`` temporary."""
    return max(float(a.max(initial=0.0)), -float(a.min(initial=0.0)))


def atoms_center(A, algorithm="exact"):
    """The point an encoding pass centers samples and atoms at.

    For the exact encoder, the atoms' coordinate-wise median. Any center
    gives the same exact codes in exact arithmetic; the median lies among
    the bulk of the atoms whatever a few far atoms do (the mean is dragged
    towards them), so that the Gram entries of the atoms most samples use
    keep their digits. The median of an even count is the mean of the two
    middle values, as ``np.median`` computes it.

    For the unrolled encoder, the atoms' mean. The network starts from
    ``x = 0``, off the simplex, so its codes depend on where the origin is:
    the library defines them in coordinates centered at the atoms' mean.
    """
    if algorithm != "exact":
        return A.mean(axis=0) if A.shape[0] else np.zeros(A.shape[1], dtype=A.dtype)
    if not A.shape[0]:
        return np.zeros(A.shape[1], dtype=A.dtype)
    # partitioned along contiguous rows of the transpose: twice as fast
    return np.median(np.ascontiguousarray(A.T), axis=1).astype(A.dtype, copy=False)


class EncodePass:
    """Result of :func:`encode_pass`.

    Attributes
    ----------
    codes : ndarray of shape (n_samples, n_components) or None
    gap : ndarray of shape (n_samples,) or None
        Relative duality gaps (exact encoder only).
    objective : ndarray of shape (n_samples,) or None
        Per-sample objective values.
    statistics : tuple of (XtX, s, XtY) or None
        Sufficient statistics of the dictionary update, in float64.
    """

    def __init__(self):
        self.codes = None
        self.gap = None
        self.objective = None
        self.statistics = None


def encode_pass(
    Y,
    A,
    alpha,
    backend,
    *,
    algorithm="exact",
    n_layers=50,
    tol=1e-10,
    max_iter=None,
    n_jobs=None,
    keep_codes=True,
    objective=False,
    statistics=False,
    init_codes=None,
    chunk_rows=None,
    warn=True,
):
    """Encode the rows of ``Y`` chunk by chunk, optionally accumulating the
    per-sample objective and the dictionary's sufficient statistics.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
    A : ndarray of shape (n_components, n_features)
    alpha : float
    backend : Backend
    algorithm : {"exact", "unrolled"}
    n_layers : int
    tol : float
    max_iter : int or None
        Iteration cap of the exact encoder; ``None`` means ``20 m + 100``.
    n_jobs : int or None
    keep_codes, objective, statistics : bool
        What to return.
    init_codes : ndarray of shape (n_samples, n_components), default=None
        Warm start of the exact encoder (the previous codes, in a fit).
    chunk_rows : int or None
        Rows per chunk; None asks the backend (``pass_chunk_rows``:
        ``CHUNK_ROWS`` on the CPU, larger chunks for the unrolled encoder on
        a GPU).
    warn : bool, default=True
        Warn (``ConvergenceWarning``) when the exact encoder stops at its
        cap before certifying some rows; ``False`` leaves it to the caller,
        which finds them in ``gap``.

    Returns
    -------
    result : EncodePass
    """
    n, d = Y.shape
    m = A.shape[0]
    if max_iter is None:
        max_iter = 20 * m + 100
    if chunk_rows is None:
        chunk_rows = backend.pass_chunk_rows(d, m, algorithm)
    result = _encode_rows(
        Y,
        A,
        alpha,
        backend,
        split=True,
        frame="all",
        codes=None,
        algorithm=algorithm,
        n_layers=n_layers,
        tol=tol,
        max_iter=max_iter,
        n_jobs=n_jobs,
        keep_codes=keep_codes,
        objective=objective,
        statistics=statistics,
        init_codes=init_codes,
        chunk_rows=chunk_rows,
    )
    if warn and algorithm == "exact" and n:
        n_bad = int(np.count_nonzero(result.gap > tol))
        if n_bad:
            warnings.warn(
                f"The exact encoder stopped at its iteration cap before the "
                f"duality gap fell below tol={tol:g} for {n_bad} of {n} samples "
                f"(largest relative gap {result.gap.max():.3g}); increase "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
    return result


# how far, in powers of two, a row may lie from the atoms (relative to their
# spread) and still be encoded in the atoms' frame. Beyond, the squared atoms
# of a frame scaled to the row underflow (float64 Gram entries below 2^-1022
# past about 2^500; float32 ones below 2^-126 past about 2^60, and the exact
# encoder scales float32 data in float32 before it works in float64)
SCALE_WINDOW_FLOAT64 = 400
SCALE_WINDOW_FLOAT32 = 40


def _scale_window(dtype):
    return SCALE_WINDOW_FLOAT64 if np.dtype(dtype) == np.float64 else SCALE_WINDOW_FLOAT32


def _far_rows(Y, e_data, shift, spread, window, chunk_rows):
    """The rows of ``Y`` farther than ``2**window`` times the atoms' spread
    from their center (in the frame ``Y·2^-e_data − shift``), as a boolean
    mask, or None when there are none."""
    limit = math.ldexp(spread, window)
    far = np.zeros(Y.shape[0], dtype=bool)
    for start in range(0, Y.shape[0], chunk_rows):
        Z = np.ldexp(Y[start : start + chunk_rows], -e_data)
        Z -= shift
        far[start : start + chunk_rows] = np.abs(Z).max(axis=1) > limit
    return far if far.any() else None


def _split_pass(Y, A, alpha, backend, far, *, init_codes, **params):
    """Encode the rows near the atoms and the rows ``far`` from them in
    passes of their own, and put the results together.

    One frame for all would be set by the far rows, in which the atoms, and
    the near rows' codes with them, lose their digits (a row of 1e200 among
    unit rows used to change the others' codes). The far rows' exact codes
    are vertices to within the precision of their own frame; the unrolled
    encoder encodes them in the atoms' frame, where its step stays finite,
    and their objective is taken in the frame of the far rows.
    """
    n = Y.shape[0]
    m = A.shape[0]
    parts = []
    for rows in (np.flatnonzero(~far), np.flatnonzero(far)):
        kw = dict(params, init_codes=None if init_codes is None else init_codes[rows])
        Y_rows = Y[rows]
        if rows.size and far[rows[0]] and params["algorithm"] != "exact":
            codes = _encode_rows(
                Y_rows,
                A,
                alpha,
                backend,
                split=False,
                frame="atoms",
                codes=None,
                **dict(kw, keep_codes=True, objective=False, statistics=False),
            ).codes
            part = _encode_rows(
                Y_rows, A, alpha, backend, split=False, frame="all", codes=codes, **kw
            )
            part.codes = codes if params["keep_codes"] else None
        else:
            part = _encode_rows(
                Y_rows, A, alpha, backend, split=False, frame="all", codes=None, **kw
            )
        parts.append((rows, part))
    result = EncodePass()
    if params["keep_codes"]:
        result.codes = np.empty((n, m), dtype=Y.dtype)
    if params["algorithm"] == "exact":
        result.gap = np.empty(n)
    if params["objective"]:
        result.objective = np.empty(n)
    stats = []
    for rows, part in parts:
        if result.codes is not None:
            result.codes[rows] = part.codes
        if result.gap is not None:
            result.gap[rows] = part.gap
        if result.objective is not None:
            result.objective[rows] = part.objective
        if part.statistics is not None:
            stats.append(part.statistics)
    if params["statistics"]:
        result.statistics = tuple(a + b for a, b in zip(*stats))
    return result


FRAME_ROUNDING = _objective.FRAME_ROUNDING


def _local_certified_gap(Y, A, sq, X, alpha):
    """Relative certified gaps of codes ``X`` of samples ``Y`` whose nearest
    atom is at the origin, with atoms ``A`` (squared norms ``sq``), from the
    residual.

    ``∇f_k = (xA − y)·a_k + α‖y − a_k‖²``, with the residual ``xA − y``
    formed explicitly (over the atoms the codes use), so that its rounding
    follows the residual and the sample's own distances rather than those
    of the pass's frame: ``∇f = (r − 2αy) Aᵀ + α(‖y‖² + ‖a_k‖²)`` in one
    product. The gap is taken less ``GAP_NOISE`` times the magnitude of its
    terms and divided by ``(½ + α) ‖y‖²``, the objective at the nearest
    vertex (floored at the smallest normal float), as the encoders do."""
    X = X / X.sum(axis=1, keepdims=True)
    used = (X > 0).any(axis=0)
    R = X[:, used] @ A[used] - Y
    y_sq = np.einsum("ij,ij->i", Y, Y)
    grad = (R - 2.0 * alpha * Y) @ A.T if alpha else R @ A.T
    if alpha:
        grad += alpha * (y_sq[:, None] + sq)
    k = grad.argmin(axis=1)
    rows = np.arange(X.shape[0])
    gap = np.einsum("ij,ij->i", X, grad) - grad[rows, k]
    # magnitudes of the terms: |r|·|a_k| and α(|y|² + |a_k|²) (which bounds
    # 2α|y·a_k| too), per atom
    M = np.sqrt(np.einsum("ij,ij->i", R, R))[:, None] * np.sqrt(sq)
    if alpha:
        M += 2.0 * alpha * (y_sq[:, None] + sq)
    noise = _objective.GAP_NOISE * (np.einsum("ij,ij->i", X, M) + M[rows, k])
    scale = np.maximum((0.5 + alpha) * y_sq, np.finfo(np.float64).tiny)
    return np.maximum(gap - noise, 0.0) / scale


def _local_shifts(sq, X):
    """Shifts of the support systems to try, in order, in a frame centered
    at an atom (``sq``: the atoms' squared norms there; ``X``: the codes),
    smallest first: the smallest positive squared norm, the smallest and
    the median of those of the atoms the codes use (a shift of the bulk's
    scale would swamp the Gram entries of the atoms near the center); None
    (the atoms' own) when every atom is at the center."""
    used = sq[(X > 0).any(axis=0)]
    used = used[used > 0.0]
    positive = sq[sq > 0.0]
    shifts = {
        float(v)
        for v in (
            np.median(used) if used.size else None,
            used.min() if used.size else None,
            positive.min() if positive.size else None,
        )
        if v is not None
    }
    # smallest first: a shift is part of the rounding allowance, so a large
    # one certifies loosely; a small one that leaves the systems too
    # ill-conditioned to certify hands the rows on to the next
    return sorted(shifts) or [None]


def _no_worse(Y, A, X_new, X_old, alpha):
    """Whether each row's ``X_new`` has an objective at most ``X_old``'s
    (in the frame of ``Y`` and ``A``, distances in residual form); rows with
    equal codes are. Only the atoms either code uses enter the products."""
    out = (X_new == X_old).all(axis=1)
    rows = np.flatnonzero(~out)
    if not rows.size:
        return out
    used = ((X_new[rows] > 0) | (X_old[rows] > 0)).any(axis=0)
    A_u = A[used]
    Y_r = Y[rows]
    D = ((Y_r[:, None, :] - A_u[None, :, :]) ** 2).sum(axis=2) if alpha else None
    f = []
    for X in (X_new[rows][:, used], X_old[rows][:, used]):
        R = Y_r - X @ A_u
        value = 0.5 * np.einsum("ij,ij->i", R, R)
        if alpha:
            value += alpha * np.einsum("ij,ij->i", X, D)
        f.append(value)
    out[rows] = f[0] <= f[1]
    return out


def refine_in_local_frames(
    Y, A, alpha, backend, X, gap, cross, tol, max_iter, Y_data, A_data, e_data, flags=None
):
    """Encode again, each in a frame centered at its nearest atom, the rows
    whose exact codes the pass's frame cannot resolve to ``tol``.

    In the pass's frame (centered at the atoms' median) a code is resolved
    to about one unit in the last place of the squared distances of its
    sample and atoms from the center. A sample whose own objective is below
    that, because it lies near atoms far from the center (a group of atoms
    far from the bulk, with its samples) or nearly on an atom (nearly equal
    atoms), is resolved only to that absolute level. Translated to its
    nearest atom, its distances are its own and the atoms it uses are near
    the origin: there, nearest atom by nearest atom, the rows' codes are
    first certified from their residual (:func:`_local_certified_gap`),
    and the rows that are not are encoded again, warm-started from their
    codes, with the support systems shifted by the local scale of the atoms
    they use (:func:`_local_shifts`). The frame is built from the data
    itself, scaled by ``2**-e_data`` (exact), not from the centered rows,
    whose rounding could not be undone. Their gaps are those certified
    there (the pass's own certify nothing beyond its frame's resolution). A
    row takes its new code when that is certified or no worse, with the
    smaller of the two gaps (a code no worse than a certified one is
    certified as well). Samples equal to their nearest atom are optimal at
    its vertex and are skipped.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
        Samples in the pass's frame.
    A : ndarray of shape (n_components, n_features)
        Atoms in the pass's frame, float64.
    alpha : float
    backend : Backend
    X : ndarray of shape (n_samples, n_components)
        Codes from the pass's frame.
    gap : ndarray of shape (n_samples,)
        Their relative certified gaps.
    cross : ndarray of shape (n_samples, n_components) or None
        ``Y Aᵀ`` in float64 when the caller has it.
    tol : float
    max_iter : int
    Y_data : ndarray of shape (n_samples, n_features)
        The same samples as given to the pass.
    A_data : ndarray of shape (n_components, n_features)
        The atoms scaled by ``2**-e_data``, in the data's dtype, as the pass
        encodes against them.
    e_data : int
    flags : ndarray of shape (n_samples,) or None
        The rows the encoder marked as beyond its frame's resolution (the
        numba kernel marks them as it builds each row's terms); None
        computes them here.

    Returns
    -------
    X : ndarray of shape (n_samples, n_components), float64
    gap : ndarray of shape (n_samples,)
    """
    n, m = X.shape
    if not n or m < 2:
        return X, gap
    Y = np.asarray(Y, dtype=np.float64)
    sq = np.einsum("ij,ij->i", A, A)
    if flags is not None:
        rows = np.flatnonzero(flags)
        if not rows.size:
            return X, gap
        D = Y[rows] @ A.T if cross is None else cross[rows]
        D *= -2.0
        D += np.einsum("ij,ij->i", Y[rows], Y[rows])[:, None]
        D += sq
        nearest = np.zeros(n, dtype=np.intp)
        nearest[rows] = D.argmin(axis=1)
    else:
        D = Y @ A.T if cross is None else cross.copy()
        y_sq = np.einsum("ij,ij->i", Y, Y)
        D *= -2.0
        D += y_sq[:, None]
        D += sq
        nearest = D.argmin(axis=1)
        d_min = np.maximum(D[np.arange(n), nearest], 0.0)
        r_a = np.sqrt(sq[nearest])
        # the rounding of a code on the nearest atom, in this frame
        resolution = FRAME_ROUNDING * (
            (1.0 + 2.0 * alpha) * (np.sqrt(y_sq) + r_a) * 2.0 * r_a
            + 2.0 * alpha * r_a * r_a
            + _objective.robust_shift(sq)
        )
        rows = np.flatnonzero(resolution > tol * (0.5 + alpha) * d_min)
        if not rows.size:
            return X, gap
    A_local = A_data.astype(np.float64)
    Y_local = np.ldexp(np.asarray(Y_data[rows], dtype=np.float64), -e_data)
    on_atom = (Y_local == A_local[nearest[rows]]).all(axis=1)
    rows, Y_local = rows[~on_atom], Y_local[~on_atom]
    if not rows.size:
        return X, gap
    X = X.astype(np.float64)  # a copy: the backend's array is not modified
    gap = gap.copy()
    for j in np.unique(nearest[rows]):
        in_group = nearest[rows] == j
        group = rows[in_group]
        A_j = A_local - A_local[j]
        Y_j = Y_local[in_group] - A_local[j]
        sq_j = np.einsum("ij,ij->i", A_j, A_j)
        # most codes are right already: certify them in this frame first,
        # from the residual, and encode again only the others
        local_gap = _local_certified_gap(Y_j, A_j, sq_j, X[group], alpha)
        # the pass's own gaps of these rows certify nothing beyond its
        # frame's resolution: they are replaced by the local ones
        gap[group] = local_gap
        done = local_gap <= tol
        if done.all():
            continue
        group, Y_j = group[~done], Y_j[~done]
        # the support systems' shift sets the curvature they resolve, and no
        # one scale suits every local geometry: the rows not certified with
        # one shift try the next
        for shift in _local_shifts(sq_j, X[group]):
            X_j, gap_j = backend.encode(
                Y_j,
                A_j,
                alpha,
                algorithm="exact",
                n_layers=1,
                tol=tol,
                max_iter=max_iter,
                init_codes=X[group],
                shift=shift,
            )
            X_j = np.asarray(X_j, dtype=np.float64)
            # certified here from the residual, not by the encoder: the Gram
            # form's rounding of an unused far atom's gradient can hide that
            # it should enter (the torch encoder once certified codes 6e-4
            # above optimal, α = 0, half of the atoms 1e8 away)
            gap_j = _local_certified_gap(Y_j, A_j, sq_j, X_j, alpha)
            no_worse = _no_worse(Y_j, A_j, X_j, X[group], alpha)
            take = no_worse | (gap_j <= tol)
            X[group[take]] = X_j[take]
            gap[group] = np.where(
                no_worse, np.minimum(gap[group], gap_j), np.where(take, gap_j, gap[group])
            )
            left = gap[group] > tol
            if not left.any():
                break
            group, Y_j = group[left], Y_j[left]
    return X, gap


def _encode_rows(
    Y,
    A,
    alpha,
    backend,
    *,
    split,
    frame,
    codes,
    algorithm,
    n_layers,
    tol,
    max_iter,
    n_jobs,
    keep_codes,
    objective,
    statistics,
    init_codes,
    chunk_rows,
):
    """:func:`encode_pass` without its warning, on rows in one frame.

    ``split`` sends rows far from the atoms to passes of their own
    (:func:`_split_pass`); ``frame="all"`` scales the centered atoms and rows
    together below one, ``"atoms"`` the atoms alone (see there); ``codes``,
    when given, are used instead of encoding (for the objective and the
    statistics of given codes).
    """
    params = dict(
        algorithm=algorithm,
        n_layers=n_layers,
        tol=tol,
        max_iter=max_iter,
        n_jobs=n_jobs,
        keep_codes=keep_codes,
        objective=objective,
        statistics=statistics,
        init_codes=init_codes,
        chunk_rows=chunk_rows,
    )
    n, d = Y.shape
    m = A.shape[0]
    dtype = Y.dtype
    # The rows are centered at a center of the atoms (the median for the
    # exact encoder, the mean for the unrolled one) and scaled by a power of two,
    # in two steps that are exact in floating point: first to magnitudes
    # below one, so that neither the mean nor the centered values can
    # overflow at any magnitude the dtype holds, then so that the centered
    # data fill (-1, 1). The chunks below are Y·2^exponent − shift, which
    # equals (Y − center(A))·2^exponent exactly.
    e_data = _objective.power_of_two_exponent(_abs_max(A), _abs_max(Y))
    # scaled before any cast to the data's dtype: a float64 dictionary can lie
    # beyond the float32 range of float32 data
    A_c = np.ldexp(A, -e_data).astype(dtype, copy=False)
    A_data = A_c.copy() if algorithm == "exact" else None
    shift = atoms_center(A_c, algorithm)
    A_c -= shift
    spread = _abs_max(A_c)
    bound = math.ldexp(_abs_max(Y), -e_data) + _abs_max(shift)
    if split and spread > 0.0 and bound > math.ldexp(spread, _scale_window(dtype)):
        far = _far_rows(Y, e_data, shift, spread, _scale_window(dtype), chunk_rows)
        if far is not None:
            return _split_pass(Y, A, alpha, backend, far, **params)
    e_centered = _objective.power_of_two_exponent(spread, bound)
    if frame == "atoms":
        # the atoms' own scale, the rows as large as they are (the unrolled
        # encoder's rows far from the atoms: its step 1/L needs L, the
        # atoms' squared scale, to stay a normal float)
        e_atoms = _objective.power_of_two_exponent(spread)
        if bound < math.ldexp(1.0, np.finfo(dtype).maxexp - 8 + e_atoms):
            e_centered = e_atoms
    np.ldexp(A_c, -e_centered, out=A_c)
    np.ldexp(shift, -e_centered, out=shift)
    exponent = -(e_data + e_centered)

    A64 = A_c.astype(np.float64, copy=False)
    # the cross term pays to share when more than the encoder needs it
    share_cross = backend.name != "torch" and (
        algorithm == "exact" or (objective and dtype == np.float64)
    )

    result = EncodePass()
    if keep_codes:
        result.codes = np.empty((n, m), dtype=dtype)
    if algorithm == "exact" and codes is None:
        result.gap = np.empty(n)
    if objective:
        result.objective = np.empty(n)
    if statistics:
        XtX = np.zeros((m, m))
        s = np.zeros(m)
        XtY = np.zeros((m, d))

    with backend.limit_threads(n_jobs), single_threaded_blas():
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            Yc = np.ldexp(Y[start:stop], exponent)
            Yc -= shift
            # Y Aᵀ once per chunk, for the encoder's terms, the gap scale
            # and the objective alike (the float32 unrolled encoder makes its
            # own in float32)
            cross = None
            Y_enc = Yc
            if share_cross:
                Y64 = Yc.astype(np.float64, copy=False)
                cross = Y64 @ A64.T
                if algorithm == "exact":
                    # the exact encoder works in float64: hand it the copy
                    # made for the cross term rather than have it make another
                    Y_enc = Y64
            flags = None
            if algorithm == "exact" and backend.computes_frame_flags:
                flags = np.empty(stop - start, dtype=np.uint8)
            if codes is not None:
                X, gap = codes[start:stop], None
            else:
                X, gap = backend.encode(
                    Y_enc,
                    A_c,
                    alpha,
                    algorithm=algorithm,
                    n_layers=n_layers,
                    tol=tol,
                    max_iter=max_iter,
                    init_codes=None if init_codes is None else init_codes[start:stop],
                    cross=cross,
                    **({} if flags is None else {"flags_out": flags}),
                )
                if algorithm == "exact":
                    X, gap = refine_in_local_frames(
                        Y_enc,
                        A64,
                        alpha,
                        backend,
                        X,
                        gap,
                        cross,
                        tol,
                        max_iter,
                        Y[start:stop],
                        A_data,
                        e_data,
                        flags,
                    )
            X = X.astype(dtype, copy=False)
            if keep_codes:
                result.codes[start:stop] = X
            if gap is not None:
                result.gap[start:stop] = gap
            if objective:
                # in scaled units; rescaled once below
                result.objective[start:stop] = _objective.sample_objective(
                    Y64 if share_cross else Yc.astype(np.float64, copy=False),
                    A64,
                    X.astype(np.float64, copy=False),
                    alpha,
                    cross,
                )
            if statistics:
                XtX_c, s_c, XtY_c = _objective.dictionary_statistics(
                    X.astype(np.float64, copy=False), Y[start:stop]
                )
                XtX += XtX_c
                s += s_c
                XtY += XtY_c
    if objective:
        # back to the data's units; a value beyond the dtype's range is inf
        with np.errstate(over="ignore"):
            np.ldexp(result.objective, -2 * exponent, out=result.objective)
    if statistics:
        result.statistics = (XtX, s, XtY)
    return result


def update_dictionary(XtX, s, XtY, alpha, A_old, ridge=1e-12):
    """Closed-form dictionary update from sufficient statistics.

    Solves ``(XᵀX + 2α diag(s) + εI) A = (1 + 2α) XᵀY + ε A_old``: the exact
    minimizer in ``A`` of ``F`` plus the proximal term ``ε/2n ‖A − A_old‖²``
    with ``ε = ridge · trace(XᵀX + 2α diag(s)) / m``. The proximal term keeps
    the system positive definite when an atom is unused (or when α = 0 and
    ``XᵀX`` is singular) and makes every update a descent step of ``F``.

    Parameters
    ----------
    XtX : ndarray of shape (m, m)
    s : ndarray of shape (m,)
    XtY : ndarray of shape (m, d)
    alpha : float
    A_old : ndarray of shape (m, d)
    ridge : float

    Returns
    -------
    A : ndarray of shape (m, d), float64
    """
    m = XtX.shape[0]
    M = XtX + np.diag(2.0 * alpha * s)
    eps = ridge * max(np.trace(M) / m, np.finfo(np.float64).tiny)
    M[np.diag_indices(m)] += eps
    R = (1.0 + 2.0 * alpha) * XtY + eps * A_old
    try:
        return linalg.solve(M, R, assume_a="pos", check_finite=False)
    except (linalg.LinAlgError, ValueError):
        return linalg.lstsq(M, R, check_finite=False)[0]


def unused_atoms(s, n_samples):
    """Atoms whose total usage ``s_j`` is negligible (below 1e-10 samples' worth
    relative to the mean usage)."""
    m = s.shape[0]
    return s <= 1e-10 * max(n_samples, 1) / m


def reseed_atoms(A, unused, Y, sample_objective):
    """Re-seed unused atoms with the worst-represented samples, in place.

    As k-means re-seeds empty clusters. An unused atom carries no code mass,
    so replacing it leaves ``F`` unchanged for the current codes and the next
    exact encoding can only lower it.

    Returns
    -------
    n_reseeded : int
    """
    idx = np.flatnonzero(unused)
    if idx.size == 0:
        return 0
    order = np.argsort(-sample_objective, kind="stable")
    # prefer distinct rows; cycle through the worst if there are too few
    donors = order[: max(idx.size, 1)]
    for k, j in enumerate(idx):
        A[j] = Y[donors[k % donors.size]]
    return int(idx.size)


def init_dictionary(Y, n_components, init, random_state):
    """Initial atoms: k-means++ seeds, random samples, or a given array.

    With fewer samples than atoms, the samples are used and the remaining
    atoms are random convex combinations of pairs of samples.

    Returns
    -------
    A : ndarray of shape (n_components, n_features), float64
    """
    if not isinstance(init, str):
        return np.array(init, dtype=np.float64, copy=True)
    n = Y.shape[0]
    if n < n_components:
        i = random_state.randint(n, size=(n_components - n, 2))
        w = random_state.uniform(size=(n_components - n, 1))
        extra = w * Y[i[:, 0]] + (1.0 - w) * Y[i[:, 1]]
        return np.vstack([Y, extra]).astype(np.float64)
    if init == "random":
        idx = random_state.choice(n, n_components, replace=False)
        return Y[idx].astype(np.float64)
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(
        Y.astype(np.float64, copy=False),
        n_components,
        random_state=random_state,
    )
    return centers


def alternating_fit(
    Y,
    A,
    alpha,
    backend,
    *,
    max_iter,
    tol,
    encode_params,
    n_jobs=None,
    verbose=0,
    on_iteration=None,
    scale_exponent=0,
    return_statistics=False,
):
    """Alternating minimization: exact encoding, then the exact A-step.

    Each iteration encodes every sample exactly (so ``F`` cannot increase),
    re-seeds unused atoms, and solves for the dictionary in closed form.
    Stops when the relative decrease of ``F`` falls below ``tol``.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
    A : ndarray of shape (n_components, n_features), float64
        Initial dictionary; not modified.
    alpha : float
    backend : Backend
    max_iter : int
        Maximum number of dictionary updates.
    tol : float
    encode_params : dict
        ``tol`` and ``max_iter`` of the exact encoder.
    n_jobs : int or None
    verbose : int
    on_iteration : callable, default=None
        Called as ``on_iteration(iteration, objective, atoms)`` after each
        encoding (atoms in the data's coordinates); a true return value
        stops the fit.
    scale_exponent : int, default=0
        ``Y`` and ``A`` are the data and atoms divided by
        ``2**scale_exponent`` (:func:`fit_scale_exponent`): progress and
        ``on_iteration`` report in the data's units.
    return_statistics : bool, default=False
        Also return the sufficient statistics of the last encoding, which
        used the returned atoms (:func:`mean_statistics`).

    Returns
    -------
    A : ndarray of shape (n_components, n_features)
        In the units of ``Y``.
    history : list of float
        ``F`` after each encoding, starting with the initial dictionary, in
        the units of ``Y``.
    n_iter : int
        Number of dictionary updates performed.
    n_reseeded : int
        Total number of atoms re-seeded.
    statistics : tuple of ndarray
        Only with ``return_statistics``: ``(XᵀX, Xᵀ1, XᵀY) / n`` of the
        last encoding, in the coordinates of ``Y``.
    """
    # F is invariant to translating samples and atoms together: work on
    # centered data, so that the A-step is well conditioned for data far from
    # the origin, and translate the atoms back at the end
    center = Y.mean(axis=0, dtype=np.float64)
    Y = (Y - center).astype(Y.dtype, copy=False)
    A = A - center
    n = Y.shape[0]
    history = []
    n_reseeded = 0
    n_iter = 0
    t0 = time.perf_counter()
    converged = False
    codes = None
    for it in range(max_iter + 1):
        # warm start from the previous codes: the dictionary moves little
        # between iterations, so the active sets barely change
        res = encode_pass(
            Y,
            A,
            alpha,
            backend,
            algorithm="exact",
            objective=True,
            statistics=True,
            init_codes=codes,
            n_jobs=n_jobs,
            **encode_params,
        )
        codes = res.codes
        F = float(np.mean(res.objective))
        history.append(F)
        if iteration_should_stop(
            it, history, tol, verbose, t0, on_iteration, A + center, scale_exponent
        ):
            converged = True
            break
        if it == max_iter:
            break
        A, k = dictionary_step(
            A,
            res.statistics,
            n,
            alpha,
            Y,
            res.objective,
        )
        n_reseeded += k
        n_iter += 1
    if not converged and max_iter > 0:
        warn_not_converged(max_iter, tol)
    if return_statistics:
        stats = mean_statistics(res.statistics, n, center)
        return A + center, history, n_iter, n_reseeded, stats
    return A + center, history, n_iter, n_reseeded


def mean_statistics(statistics, n_samples, center):
    """Per-sample sufficient statistics ``(XᵀX, Xᵀ1, XᵀY) / n`` of data
    encoded as ``Y − center``, moved back to the coordinates of ``Y``.

    The codes sum to one, so ``Xᵀ(Y − 1 centerᵀ) = XᵀY − (Xᵀ1) centerᵀ``:
    the statistics of the centered data give those of the data exactly (up
    to rounding), and the dictionary update solved from either differs only
    by the translation.
    """
    XtX, s, XtY = statistics
    n = max(int(n_samples), 1)
    XtY = XtY + np.outer(s, np.asarray(center, dtype=np.float64))
    return XtX / n, s / n, XtY / n


def fit_scale_exponent(max_abs):
    """The power of two ``2**e`` that a fit divides its data by.

    ``e = 0`` (the data are fitted as they are) when the largest magnitude
    ``max_abs`` lies in ``[2**-60, 2**60)``; beyond, squared distances and
    the objective's sums of squares could underflow or overflow, so ``e``
    brings it into ``[0.5, 1)``. Dividing by a power of two is exact and
    ``F`` scales by its square, so a fit on the scaled data takes the same
    steps and its atoms, scaled back by ``2**e``, are the fit of the data.
    """
    e = _objective.power_of_two_exponent(max_abs)
    return 0 if -59 <= e <= 60 else e


def unscaled_objective(F, scale_exponent):
    """``F · 4**scale_exponent``: an objective of data divided by
    ``2**scale_exponent``, in the data's units (``inf`` beyond the float
    range, ``0`` below it)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(np.asarray(F, dtype=np.float64), 2 * scale_exponent)


def iteration_should_stop(
    iteration, history, tol, verbose, t0, on_iteration, atoms, scale_exponent=0
):
    """The end of one encoding of the alternating loop, shared by the
    in-memory and distributed fits: report progress, let a callback stop the
    fit, and test convergence (relative decrease of ``F`` at most ``tol``).
    ``history`` and ``atoms`` are those of data divided by
    ``2**scale_exponent``; progress and the callback get them in the data's
    units.

    Returns True when the loop should stop because it converged or a callback
    asked it to.
    """
    F = float(unscaled_objective(history[-1], scale_exponent))
    if scale_exponent:
        atoms = np.ldexp(atoms, scale_exponent)
    if verbose:
        change = ""
        if iteration > 0:
            change = f", relative change {(history[-2] - F) / max(abs(history[-2]), 1e-300):.3e}"
        print(
            f"[WeightedL1SparseCoder] iteration {iteration}, objective {F:.6e}"
            f"{change}, {time.perf_counter() - t0:.2f} s"
        )
    if on_iteration is not None and on_iteration(iteration, F, atoms):
        return True
    F = history[-1]
    return iteration > 0 and history[-2] - F <= tol * max(abs(history[-2]), np.finfo(float).tiny)


def dictionary_step(A, statistics, n_samples, alpha, donors, donor_objective):
    """Re-seed unused atoms, then the closed-form dictionary update.

    Unused atoms are re-seeded (:func:`reseed_atoms`) from the rows
    ``donors`` with per-sample objectives ``donor_objective`` (all samples in
    memory; the worst candidates of each block in a distributed fit). An
    unused atom has a zero row in the statistics, so its proximal solution
    is its (re-seeded) old value.

    Returns
    -------
    A : ndarray of shape (n_components, n_features)
    n_reseeded : int
    """
    XtX, s, XtY = statistics
    unused = unused_atoms(s, n_samples)
    n_reseeded = 0
    if unused.any():
        A = A.copy()
        n_reseeded = reseed_atoms(A, unused, donors, donor_objective)
    with single_threaded_blas():
        return update_dictionary(XtX, s, XtY, alpha, A), n_reseeded


def warn_not_converged(max_iter, tol):
    warnings.warn(
        f"Alternating minimization did not converge in max_iter={max_iter} "
        f"iterations (tol={tol:g}); increase max_iter or tol.",
        ConvergenceWarning,
        stacklevel=4,
    )


def minibatch_weight(step, batch_size):
    """Forgetting factor of the online statistics (Mairal et al. 2010, as in
    scikit-learn's ``MiniBatchDictionaryLearning``): the weight kept by the
    old statistics when the ``step``-th minibatch (0-based) arrives."""
    if step < batch_size - 1:
        theta = float((step + 1) * batch_size)
    else:
        theta = float(batch_size**2 + step + 1 - batch_size)
    return (theta + 1.0 - batch_size) / (theta + 1.0)
