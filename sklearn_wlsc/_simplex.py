"""Euclidean projection onto the probability simplex (numpy reference).

This module is the oracle that every fast projection kernel is tested
against. It is plain, vectorized numpy and makes no attempt to be fast.
"""

import numpy as np


def project_simplex(V):
    """Project each row of ``V`` onto the probability simplex.

    Trusts its input: ``V`` must be a finite floating-point 2-D array.

    The projection of a row ``v`` is ``max(v - tau, 0)`` where the threshold
    ``tau`` makes the row sum to one; it is computed on ``v - max(v)``, which
    has the same projection, so that rows far from zero keep the bits that
    sum to one. It is found with the sort-based method
    (Held, Wolfe and Crowder 1974; Duchi et al. 2008) in ``O(m log m)``.

    Parameters
    ----------
    V : ndarray of shape (n_rows, m)
        Rows to project.

    Returns
    -------
    X : ndarray of shape (n_rows, m)
        Non-negative rows summing to one, same dtype as ``V`` (float32 rows
        are projected in float64 and rounded).
    """
    V = np.asarray(V)
    dtype = V.dtype
    n, m = V.shape
    # float32 rows are projected in float64 and rounded once at the end: the
    # oracle of the float32 kernels is the float64 projection, rounded
    V = V.astype(np.float64, copy=False)
    # the projection is shift-invariant; shifted by its largest entry, a row
    # keeps its top entries exact, so that the threshold's "− 1" and the sum
    # to one survive rounding however far the row lies from zero
    V = V - V.max(axis=1, keepdims=True) if n and m else V
    U = -np.sort(-V, axis=1)
    cssv = np.cumsum(U, axis=1) - 1.0
    ind = np.arange(1, m + 1, dtype=V.dtype)
    cond = U - cssv / ind > 0
    # the number of active coordinates: the last index where cond holds
    rho = m - np.argmax(cond[:, ::-1], axis=1)
    tau = cssv[np.arange(n), rho - 1] / rho.astype(V.dtype)
    return np.maximum(V - tau[:, None], 0.0).astype(dtype, copy=False)
