"""The plain numpy reference backend: the oracle of the fast kernels.

Written for clarity, vectorized over samples, never optimized. The exact
encoder here is a different algorithm from the numba one (restarted FISTA
instead of an active set), so agreement between them is evidence. Its step
is ``1/L``, with ``L`` set by the atoms' largest spread: with an atom far
from the others it cannot converge in its 100,000 steps, and it says so
(an iteration-cap warning); tests of far atoms compare the fast encoders
with the reference on the near atoms alone.
"""

import numpy as np

from .. import _objective
from .._simplex import project_simplex
from ._base import Backend, momentum_schedule


def unrolled_encode(G, C, L, n_layers):
    """Reference unrolled encoder: ``n_layers`` accelerated PG steps.

    Starts from ``x = z = 0`` and applies, for ``k = 0, …, K−1``,
    ``x⁺ = Π_Δ(z − (zG − c)/L)`` and ``z = x⁺ + k/(k+3) (x⁺ − x)``, the
    K-Deep Simplex network.
    """
    dtype = C.dtype
    betas = momentum_schedule(n_layers, dtype)
    inv_L = dtype.type(1.0 / L)
    X = np.zeros_like(C)
    Z = np.zeros_like(C)
    for k in range(n_layers):
        X_new = project_simplex(Z - (Z @ G - C) * inv_L)
        Z = X_new + betas[k] * (X_new - X)
        X = X_new
    return X


def exact_encode(G, C, scale, tol, max_iter, X0=None, *, y_norms, alpha, shift=None):
    """Reference exact encoder: FISTA with adaptive restart, run per row until
    the certified duality gap (:func:`sklearn_wlsc._objective.certified_gap`,
    from the samples' norms ``y_norms``) is at most ``tol * scale``, from
    ``X0`` when given.

    Returns the codes and their certified gaps.
    """
    n, m = C.shape
    atom_norms = np.sqrt(np.maximum(np.diagonal(G), 0.0))
    if shift is None:
        shift = _objective.robust_shift(atom_norms * atom_norms)

    def gaps(X, C, rows):
        grad = _objective.gradient(X, G, C)
        return _objective.certified_gap(X, grad, y_norms[rows], atom_norms, alpha, shift)

    L = float(np.linalg.eigvalsh(G - G.mean(0) - G.mean(1)[:, None] + G.mean())[-1])
    L = L if L > 0 else 1.0
    X = project_simplex(C / L if X0 is None else np.asarray(X0, dtype=C.dtype))
    Z = X.copy()
    t = np.ones(n)
    gap = gaps(X, C, slice(None))
    active = gap > tol * scale
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        Xa, Za, ta = X[idx], Z[idx], t[idx]
        X_new = project_simplex(Za - (Za @ G - C[idx]) / L)
        # gradient-based restart (O'Donoghue & Candès 2015)
        restart = np.einsum("ij,ij->i", Za - X_new, X_new - Xa) > 0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * ta * ta))
        beta = np.where(restart, 0.0, (ta - 1.0) / t_new)
        Z[idx] = X_new + beta[:, None] * (X_new - Xa)
        t[idx] = np.where(restart, 1.0, t_new)
        X[idx] = X_new
        gap[idx] = gaps(X_new, C[idx], idx)
        active[idx] = gap[idx] > tol * scale[idx]
    return X, gap


class NumpyBackend(Backend):
    """The numpy reference backend (slow; for tests and debugging)."""

    name = "numpy"

    def _unrolled(self, G, C, L, n_layers):
        return unrolled_encode(G, C, L, n_layers)

    def _exact(self, G, C, scale, tol, max_iter, X0=None, *, y_norms, alpha, shift=None):
        # first-order methods need many more steps than an active set
        return exact_encode(
            G,
            C,
            scale,
            tol,
            max(max_iter, 100_000),
            X0,
            y_norms=y_norms,
            alpha=alpha,
            shift=shift,
        )

    def project_simplex(self, V):
        return project_simplex(V)
