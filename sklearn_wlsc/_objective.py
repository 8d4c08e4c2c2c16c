r"""The WLSC objective and the quantities the encoders need (numpy reference).

For samples ``Y`` (n, d), atoms ``A`` (m, d) and codes ``X`` (n, m) whose rows
lie on the probability simplex, the objective is

.. math::

    F(A, X) = \frac{1}{n} \sum_i \Big[ \tfrac12 \|y_i - x_i A\|^2
              + \alpha \sum_j x_{ij} \|y_i - a_j\|^2 \Big].

For one sample the encoder minimizes ``f(x) = ½‖y − xA‖² + α w·x`` over the
simplex, with ``w_j = ‖y − a_j‖²``. On the simplex ``Σ_j x_j ‖y‖²`` is the
constant ``‖y‖²``, so up to a constant that does not change the codes

    ∇f(x) = x G − c,   G = A Aᵀ,   c = (1 + 2α) y Aᵀ − α diag(G).

Every function here trusts its inputs (finite floating-point arrays of
matching shapes); validation happens once, at the public edge.
"""

import math

import numpy as np
from scipy import sparse

# the largest locality weight α accepted. Codes are hard nearest-atom
# assignments long before it; beyond, the encoders' linear term, which
# grows like α while the quadratic one does not, only moves toward the
# float range (float32 overflows near 1e38) and makes the exact encoder's
# Newton steps cancel terms of order α, costing accuracy for nothing.
ALPHA_MAX = 1e6

# codes with at most this fraction of nonzero entries are multiplied as CSR
# matrices: simplex codes have a few nonzeros per row, so their products
# cost n·k·d instead of the GEMM's n·m·d
SPARSE_CODES_DENSITY = 0.1


def _sparse_codes(X):
    """A CSR copy of ``X`` when it is sparse enough to pay, else None."""
    if X.size and np.count_nonzero(X) <= SPARSE_CODES_DENSITY * X.size:
        return sparse.csr_matrix(X)
    return None


def codes_product(X, B):
    """``X @ B`` for codes ``X``, skipping their zero entries when few are
    nonzero."""
    Xs = _sparse_codes(X)
    return X @ B if Xs is None else np.asarray(Xs @ B)


def encoder_terms(Y, A, alpha, cross=None):
    """Gram matrix and linear terms of the encoder's quadratic program.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
    A : ndarray of shape (n_components, n_features)
    alpha : float
    cross : ndarray of shape (n_samples, n_components), default=None
        ``Y Aᵀ`` when the caller already has it (it is not modified).

    Returns
    -------
    G : ndarray of shape (n_components, n_components)
        ``A Aᵀ``.
    C : ndarray of shape (n_samples, n_components)
        ``(1 + 2α) Y Aᵀ − α diag(G)``, so that the gradient is ``X G − C``.
    """
    G = A @ A.T
    C = Y @ A.T if cross is None else cross.copy()
    if alpha != 0.0:  # at α = 0 both passes would be exact no-ops
        C *= 1.0 + 2.0 * alpha
        C -= alpha * np.diag(G)
    return G, C


def lipschitz_constant(A):
    """Lipschitz constant of the encoder's gradient on the simplex.

    Returns the largest eigenvalue of the Gram matrix of the *centered* atoms,
    ``λ_max(P A Aᵀ P)`` with ``P = I − 11ᵀ/m``. Projected gradient steps only
    see the gradient's component tangent to the simplex, so this is the
    constant that matters. It is at most ``λ_max(A Aᵀ) = σ_max(A)²`` (the step
    used by K-Deep Simplex), and unlike it, it does not change when samples
    and atoms are translated together. When all atoms coincide the objective
    is constant on the simplex and 1.0 is returned.

    Parameters
    ----------
    A : ndarray of shape (n_components, n_features)

    Returns
    -------
    L : float
    """
    Ac = A - A.mean(axis=0)
    if Ac.shape[0] <= Ac.shape[1]:
        L = float(np.linalg.eigvalsh(Ac @ Ac.T)[-1]) if Ac.size else 0.0
    else:
        L = float(np.linalg.eigvalsh(Ac.T @ Ac)[-1]) if Ac.size else 0.0
    if not L > 0.0:
        return 1.0
    return L


def gradient(X, G, C):
    """Gradient ``X G − C`` of the per-sample encoder objectives, row-wise."""
    return X @ G - C


def duality_gap(X, grad):
    """Frank–Wolfe duality gap of each row: ``∇f(x)·x − min_j ∇f(x)_j``.

    For ``x`` on the simplex it bounds ``f(x) − f*`` from above, so it
    certifies how far a code is from the optimum.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_components)
        Codes on the simplex.
    grad : ndarray of shape (n_samples, n_components)
        Gradients at ``X``.

    Returns
    -------
    gap : ndarray of shape (n_samples,)
    """
    return np.einsum("ij,ij->i", X, grad) - grad.min(axis=1)


def squared_distances(Y, A, cross=None):
    """Squared Euclidean distances ``‖y_i − a_j‖²``, clipped at zero.

    ``cross`` is ``Y Aᵀ`` when the caller already has it (not modified).

    Returns
    -------
    D : ndarray of shape (n_samples, n_components)
    """
    D = Y @ A.T if cross is None else cross.copy()
    D *= -2.0
    D += np.einsum("ij,ij->i", Y, Y)[:, None]
    D += np.einsum("ij,ij->i", A, A)[None, :]
    np.maximum(D, 0.0, out=D)
    return D


def sample_objective(Y, A, X, alpha, cross=None):
    """Per-sample objective ``½‖y_i − x_i A‖² + α Σ_j x_ij ‖y_i − a_j‖²``.

    The residual is formed explicitly (not expanded through ``Y Aᵀ``, which
    would lose the digits of a small residual to cancellation); sparse codes
    are multiplied as sparse matrices.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_features)
    A : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_components)
    alpha : float
    cross : ndarray of shape (n_samples, n_components), default=None
        ``Y Aᵀ`` when the caller already has it.

    Returns
    -------
    f : ndarray of shape (n_samples,)
    """
    R = Y - codes_product(X, A)
    f = 0.5 * np.einsum("ij,ij->i", R, R)
    if alpha != 0.0:
        f += alpha * np.einsum("ij,ij->i", X, squared_distances(Y, A, cross))
    return f


def objective(Y, A, X, alpha):
    """The objective ``F(A, X)``: the mean of :func:`sample_objective`."""
    return float(np.mean(sample_objective(Y, A, X, alpha)))


def gap_scale(Y, A, alpha, cross=None):
    """Per-sample scale against which the exact encoder's gap is compared.

    ``(½ + α) min_j ‖y_i − a_j‖²``, the objective at the nearest vertex of
    the simplex: an upper bound of the optimum ``f*`` that, like it, is
    invariant to translating samples and atoms together, scales like the
    objective, and does not grow with atoms far from the sample (a scale
    taken from the farthest atom made one far atom loosen the tolerance of
    every sample). It is floored at the smallest normal float, so that it is
    never zero; a sample on an atom is certified by the rounding allowance
    of :func:`gap_noise`. ``cross`` is ``Y Aᵀ`` when the caller already has
    it.

    Returns
    -------
    scale : ndarray of shape (n_samples,)
    """
    D = squared_distances(Y, A, cross)
    scale = (0.5 + alpha) * (D.min(axis=1) if D.shape[1] else np.zeros(D.shape[0]))
    np.maximum(scale, np.finfo(scale.dtype).tiny, out=scale)
    return scale


# the rounding allowance of a computed duality gap, relative to the
# magnitude of the terms it is summed from (see gap_noise): 2^-48, 16 units
# in the last place of float64 (no false iteration-cap warning down to 2^-52
# on degenerate atoms, samples on atoms, magnitudes 1e±150 and float32)
GAP_NOISE = 2.0**-48

# float64's unit roundoff: a sum of products is trusted where it exceeds
# this times the sum of their magnitudes, its typical rounding (the active
# sets' curvature along a singular support's direction)
UNIT_ROUNDING = 2.0**-53

# the rounding a frame puts into a code's gap, relative to the magnitude of
# its terms, as the exact pass estimates it to find the rows a frame cannot
# resolve (one unit in the last place; GAP_NOISE bounds it generously)
FRAME_ROUNDING = 2.0**-52


def gap_noise(X, k, y_norms, atom_norms, alpha, shift):
    """How much rounding can put into each row's computed duality gap.

    The gap ``Σ_j x_j ∇f_j − ∇f_k`` (``k`` the entry of least gradient) is
    summed from terms of total magnitude at most
    ``(1 + 2α)(‖y‖ + R)(R + R_k) + α(Q + R_k²)``, where
    ``R = Σ_j x_j ‖a_j‖`` and ``Q = Σ_j x_j ‖a_j‖²`` weigh the atoms by
    the code and ``R_k = ‖a_k‖``; and the active set's support systems
    ``G[S, S] + s·11ᵀ`` resolve curvature to about the rounding of their
    shift ``s`` (:func:`robust_shift`). The allowance is :data:`GAP_NOISE`
    times the sum of both magnitudes. It follows the atoms a code uses, in
    proportion to their use, so a far atom the code does not use does not
    loosen it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_components)
        Codes on the simplex.
    k : ndarray of shape (n_samples,)
        Each row's entry of least gradient.
    y_norms : ndarray of shape (n_samples,)
        ``‖y_i‖``.
    atom_norms : ndarray of shape (n_components,)
        ``‖a_j‖``.
    alpha : float
    shift : float
        ``robust_shift(atom_norms**2)``.

    Returns
    -------
    noise : ndarray of shape (n_samples,)
    """
    R = X @ atom_norms
    Q = X @ (atom_norms * atom_norms)
    R_k = atom_norms[k]
    magnitude = (1.0 + 2.0 * alpha) * (y_norms + R) * (R + R_k) + alpha * (Q + R_k * R_k)
    return GAP_NOISE * (magnitude + shift)


def certified_gap(X, grad, y_norms, atom_norms, alpha, shift=None):
    """Duality gap of each row less its rounding allowance, clipped at zero.

    What the computed gap certifies about ``f(x) − f*``: a gap within the
    rounding of its own computation and of the active set's systems
    (:func:`gap_noise`, with the shift :func:`robust_shift` of these atoms
    unless given)
    certifies nothing more than zero, and the exact encoders stop when this
    is at most ``tol`` times :func:`gap_scale`.

    Returns
    -------
    gap : ndarray of shape (n_samples,)
    """
    gap = duality_gap(X, grad)
    if not gap.size:
        return gap
    if shift is None:
        shift = robust_shift(atom_norms * atom_norms)
    noise = gap_noise(X, grad.argmin(axis=1), y_norms, atom_norms, alpha, shift)
    return np.maximum(gap - noise, 0.0)


def robust_shift(sq_norms):
    """The shift ``s`` of the exact encoder's support systems
    ``G[S, S] + s·11ᵀ``, from the squared atom norms ``diag(G)``: their
    median (the largest when the median is zero; one when every atom is
    zero).

    Any ``s > 0`` makes the system positive definite on affinely independent
    atoms; one of the size of the atoms' own Gram entries keeps it well
    conditioned. The median is not set by a few far atoms, whose entries
    would otherwise swamp those of the others.
    """
    diag = np.asarray(sq_norms, dtype=np.float64)
    if not diag.size:
        return 1.0
    shift = float(np.median(diag))
    if not shift > 0.0:
        shift = float(diag.max())
    return shift if shift > 0.0 else 1.0


def dictionary_statistics(X, Y):
    """Sufficient statistics of the dictionary update.

    Returns
    -------
    XtX : ndarray of shape (n_components, n_components)
    s : ndarray of shape (n_components,)
        How much each atom is used, ``Xᵀ1``.
    XtY : ndarray of shape (n_components, n_features)
    """
    Xs = _sparse_codes(X)
    if Xs is None:
        return X.T @ X, X.sum(axis=0), X.T @ Y
    Xt = Xs.T.tocsr()
    return (Xt @ Xs).toarray(), X.sum(axis=0), np.asarray(Xt @ Y)


def power_of_two_exponent(*maxima):
    """Exponent ``e`` of the power of two just above the largest of ``maxima``.

    ``max(maxima) < 2**e``, so multiplying by ``2**-e`` brings magnitudes
    below one, exactly in floating point (barring underflow of values that
    are negligible next to the largest). Returns 0 when the largest is zero
    or not finite. Unlike ``2**e`` itself, ``e`` never overflows, from
    subnormal magnitudes up to the largest float.
    """
    mx = max(float(v) for v in maxima)
    if not (mx > 0.0 and math.isfinite(mx)):
        return 0
    return math.frexp(mx)[1]
