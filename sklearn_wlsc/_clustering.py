"""Clustering from codes: spectral embedding of the sample–atom graph.

Codes on the simplex define a bipartite graph between samples and atoms with
edge weights ``x_ij``. :class:`SimplexSpectralEmbedding` embeds samples with
the leading singular vectors of its normalized biadjacency matrix, through an
``m × m`` eigenproblem, and embeds new samples through their codes.
:class:`SimplexSpectralClustering` chains :class:`WeightedL1SparseCoder`,
that embedding and k-means.
"""

import math
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import linalg, sparse
from scipy.sparse.csgraph import connected_components
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ._checks import RejectsBoolCounts
from ._estimator import WeightedL1SparseCoder
from ._objective import ALPHA_MAX, power_of_two_exponent, squared_distances

_FLOATS = [np.float64, np.float32]


# -- the algorithm (trusts its inputs) -------------------------------------


def _row_sums(X):
    """Row sums of a dense or sparse ``X`` as a 1-d array, summed in float64."""
    with np.errstate(over="ignore"):  # an overflow is handled by the caller
        return np.asarray(X.sum(axis=1, dtype=np.float64), dtype=np.float64).ravel()


def _row_max_exponents(X):
    """Per row, the exponent ``e`` with ``max_j x_ij`` in ``[2^(e-1), 2^e)``
    (zero for a zero row) of a non-negative ``X``, dense or sparse."""
    top = X.max(axis=1)
    top = np.asarray(top.toarray() if sparse.issparse(top) else top, dtype=np.float64).ravel()
    return np.frexp(top)[1]


def _to_simplex(X):
    """Divide each row of a validated non-negative ``X`` by its sum.

    A row with no positive entry (a sample with no edge) stays zero. Rows
    are divided by their sums rather than multiplied by the reciprocals,
    which overflow for sums in the subnormal range; when a sum overflows,
    every row is first divided by a power of two of its largest entry
    (exactly), so that no sum can.
    """
    r = _row_sums(X)
    if np.allclose(r, 1.0, rtol=0, atol=1e-6):
        return X
    fmt = X.format if sparse.issparse(X) else None
    if not np.isfinite(r).all():
        e = _row_max_exponents(X)
        if sparse.issparse(X):
            X = X.tocsr(copy=True)
            X.data = np.ldexp(X.data, -np.repeat(e, np.diff(X.indptr))).astype(X.dtype)
        else:
            X = np.ldexp(X, -e[:, None]).astype(X.dtype, copy=False)
        r = _row_sums(X)
    if sparse.issparse(X):
        out = X.tocsr(copy=True)
        r_entries = np.repeat(r, np.diff(out.indptr))
        np.divide(out.data, r_entries, out=out.data, where=r_entries > 0)
        return out.asformat(fmt)
    out = np.zeros_like(X)
    np.divide(X, r[:, None], out=out, where=r[:, None] > 0)
    return out


def _gram(X):
    """``XᵀX`` and ``s = Xᵀ1`` in float64, for dense or sparse ``X``."""
    if sparse.issparse(X):
        X64 = X.astype(np.float64)
        XtX = (X64.T @ X64).toarray()
    else:
        X64 = np.asarray(X, dtype=np.float64)
        XtX = X64.T @ X64
    s = np.asarray(X64.sum(axis=0)).ravel()
    return XtX, s


def _graph_components(XtX, s, min_mass=None):
    """Connected components of the sample–atom graph, through its atoms.

    Two used atoms are linked when some sample uses both, so the components
    of the atom co-usage graph restricted to used atoms are those of the
    bipartite graph (every sample uses at least one atom).

    Returns
    -------
    n_components : int
        Number of components holding at least one sample.
    core : ndarray of shape (m,), dtype=bool
        Used atoms whose component holds at least ``min_mass`` (``None``: the
        mass of an average atom, ``Σ s / m``); the others are dangling.
    n_core : int
        Number of components of the core atoms.
    """
    m = s.shape[0]
    used = s > 0
    core = np.zeros(m, dtype=bool)
    if not used.any():
        return 0, core, 0
    idx = np.flatnonzero(used)
    pattern = sparse.csr_matrix(XtX[np.ix_(idx, idx)] > 0)
    n_comp, labels = connected_components(pattern, directed=False)
    mass = np.bincount(labels, weights=s[idx], minlength=n_comp)
    if min_mass is None:
        min_mass = s.sum() / m
    heavy = mass >= min_mass
    core[idx] = heavy[labels]
    return int(n_comp), core, int(heavy.sum())


def _mass_on(codes, atoms):
    """Each row's code mass on the atoms of the boolean mask ``atoms``."""
    if sparse.issparse(codes):
        return np.asarray(codes[:, np.flatnonzero(atoms)].sum(axis=1)).ravel()
    return np.asarray(codes)[:, atoms].sum(axis=1)


def _unit_scaled(*arrays):
    """The arrays in float64, minus the mean row of the last one and
    divided by one power of two of their largest magnitude (exactly), so
    that distances between their rows are computed at the scale of their
    spread, neither overflowing nor underflowing nor lost to an offset."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    for _ in range(2):
        # scaled first, so that the mean cannot overflow; again after
        # centring, which can leave rows far smaller than before
        e = power_of_two_exponent(*(np.abs(a).max(initial=0.0) for a in arrays))
        arrays = [np.ldexp(a, -e) for a in arrays]
        if arrays[-1].shape[0]:
            centre = arrays[-1].mean(axis=0)
            arrays = [a - centre for a in arrays]
    return arrays


def _nearest_rows(Q, P, chunk=2048):
    """For each row of ``Q``, the index of the nearest row of ``P``
    (Euclidean), at any magnitude and offset."""
    Q, P = _unit_scaled(Q, P)
    out = np.empty(Q.shape[0], dtype=np.intp)
    for start in range(0, Q.shape[0], chunk):
        out[start : start + chunk] = squared_distances(Q[start : start + chunk], P).argmin(axis=1)
    return out


def _pairwise_distances(P):
    """Euclidean distances between the rows of ``P``, at any magnitude and
    offset (in units of a power of two)."""
    (P,) = _unit_scaled(P)
    D2 = squared_distances(P, P)
    np.fill_diagonal(D2, 0.0)
    return np.sqrt(D2)


def _piece_groups(codes, core, atoms, n_groups):
    """Join the kept pieces of the sample–atom graph into ``n_groups`` groups.

    The pieces are the connected components of the graph through the
    ``core`` atoms; two pieces are as far apart as their nearest atoms
    (rows of ``atoms``, in the coders' input space). The lightest piece
    (least code mass) joins the piece nearest to it, and so on until
    ``n_groups`` remain: as with ``min_support``, a light piece is taken
    for the outskirts of its nearest neighbour rather than a cluster, and
    among pieces of equal mass the nearest join first (single linkage).
    Returns the group of each atom (``-1`` for atoms outside the kept
    graph).
    """
    idx = np.flatnonzero(core)
    XtX, s = _gram(codes)
    n_pieces, piece = connected_components(
        sparse.csr_matrix(XtX[np.ix_(idx, idx)] > 0), directed=False
    )
    order = np.argsort(piece, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(piece[order]) != 0])
    D = _pairwise_distances(atoms[idx[order]])
    gap = np.minimum.reduceat(np.minimum.reduceat(D, starts, axis=0), starts, axis=1)
    np.fill_diagonal(gap, np.inf)
    mass = np.bincount(piece, weights=s[idx], minlength=n_pieces)
    into = np.arange(n_pieces)
    for _ in range(n_pieces - n_groups):
        # the lightest piece left (the nearest to another among equals)
        light = np.flatnonzero(mass <= mass.min() * (1.0 + 1e-9))
        a = light[gap[light].min(axis=1).argmin()]
        b = gap[a].argmin()
        into[into == a] = b
        mass[b] += mass[a]
        mass[a] = np.inf
        gap[b] = np.minimum(gap[b], gap[a])
        gap[:, b] = gap[b]
        gap[b, b] = np.inf
        gap[a] = np.inf
        gap[:, a] = np.inf
    groups = np.unique(into, return_inverse=True)[1]
    atom_group = np.full(codes.shape[1], -1, dtype=np.intp)
    atom_group[idx] = groups[piece]
    return atom_group


def _heaviest_atoms(codes):
    """The atom carrying each row's largest code weight."""
    if sparse.issparse(codes):
        return np.asarray(codes.argmax(axis=1)).ravel()
    return np.asarray(codes).argmax(axis=1)


def _atom_labels(codes, labels, n_clusters):
    """The cluster of each atom: the one whose samples put the most code
    mass on it (``-1`` for atoms no sample uses)."""
    n = codes.shape[0]
    onehot = sparse.csr_matrix(
        (np.ones(n), (np.arange(n), labels)), shape=(n, n_clusters), dtype=np.float64
    )
    votes = safe_sparse_dot(codes.T, onehot, dense_output=True)
    votes = np.asarray(votes)
    out = votes.argmax(axis=1).astype(np.intp)
    out[votes.max(axis=1) <= 0] = -1
    return out


def simplex_spectral_projection(XtX, s, n_components, core=None):
    r"""Atom side of the spectral embedding of the sample–atom graph.

    Trusts its inputs. With ``X̃ = X diag(s)^{-1/2}`` (rows of ``X`` on the
    simplex, so the sample degrees are one), the right singular vectors of
    ``X̃`` are the eigenvectors of ``M = diag(s)^{-1/2} XᵀX diag(s)^{-1/2}``.
    The trivial pair ``σ = 1``, ``v = (s / n)^{1/2}`` is deflated exactly,
    and the left singular vectors are ``U = X P`` with
    ``P = diag(s)^{-1/2} V diag(σ)^{-1}``.

    Unused atoms (``s_j = 0``) and atoms outside ``core`` get a zero row in
    ``P`` (they are removed from the graph); components with ``σ = 0`` get a
    zero column (pseudo-inverses). Singular values at the rounding level of
    the eigenproblem, ``σ ≤ 4 (m ε)^{1/2}`` (its eigenvalues ``σ²`` are
    accurate to about ``m ε``), are noise and are returned as zero.

    Parameters
    ----------
    XtX : ndarray of shape (m, m)
        ``XᵀX`` of the training codes, float64.
    s : ndarray of shape (m,)
        Atom degrees ``Xᵀ1``.
    n_components : int
        Number of non-trivial singular vectors, at most ``m - 1``.
    core : ndarray of shape (m,), dtype=bool, default=None
        Atoms kept in the graph (``None``: the used atoms).

    Returns
    -------
    P : ndarray of shape (m, n_components)
        Projection: the embedding of codes ``X`` before row normalization
        is ``X @ P``.
    sigma : ndarray of shape (n_components,)
        Singular values of ``X̃``, non-increasing, in ``[0, 1]``.
    """
    m = s.shape[0]
    used = s > 0 if core is None else core & (s > 0)
    d = np.zeros(m)
    d[used] = 1.0 / np.sqrt(s[used])
    M = XtX * d[:, None] * d[None, :]
    v = np.where(used, np.sqrt(np.maximum(s, 0.0)), 0.0)
    v /= max(np.linalg.norm(v), np.finfo(np.float64).tiny)
    # M v = v exactly (up to rounding); deflate the trivial pair
    M -= np.outer(v, v)
    M = 0.5 * (M + M.T)
    r = min(n_components, m - 1)
    P = np.zeros((m, n_components))
    sigma = np.zeros(n_components)
    if r < 1:
        return P, sigma
    # only the r leading eigenpairs: O(m² r) after the reduction, not O(m³)
    w, V = linalg.eigh(M, check_finite=False, subset_by_index=[m - r, m - 1])
    w, V = w[::-1], V[:, ::-1]
    sigma[:r] = np.sqrt(np.clip(w, 0.0, 1.0))
    # a deterministic sign: the largest-magnitude loading of each vector > 0
    flip = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(r)])
    V *= np.where(flip == 0, 1.0, flip)
    # below the rounding level, σ is noise: 1/σ would blow the column up
    noise = 4.0 * math.sqrt(m * np.finfo(np.float64).eps)
    sigma[:r][sigma[:r] <= noise] = 0.0
    inv_sigma = np.where(sigma[:r] > 0, 1.0 / np.maximum(sigma[:r], noise), 0.0)
    P[:, :r] = d[:, None] * V * inv_sigma[None, :]
    # An atom of tiny degree would get its eigenvector entries' rounding
    # error multiplied by d_j = s_j^(-1/2) (by 1e100 for a degree of
    # 1e-200). Its row equals diag(s)^-1 XᵀX P diag(σ)^-2 as well (XᵀX P =
    # diag(s) P diag(σ)²): the x_ij-weighted mean of the training embeddings
    # X P of the samples that use it, over σ², which carries no such factor.
    # Only for those rows: elsewhere σ^-2 would amplify the eigenvectors'
    # error more than d_j does.
    tiny = used & (s < math.sqrt(np.finfo(np.float64).eps) * s[used].max(initial=0.0))
    if tiny.any():
        P[tiny, :r] = (XtX[tiny] @ (P[:, :r] * inv_sigma[None, :] ** 2)) / s[tiny, None]
    return P, sigma


def _embed(X, P):
    """Row-normalized ``X @ P``, in the dtype of ``X``; zero rows stay zero."""
    U = np.asarray(safe_sparse_dot(X, P.astype(X.dtype, copy=False)))
    norms = np.linalg.norm(U, axis=1)
    norms[norms == 0] = 1.0
    U /= norms[:, None]
    return U


#: largest diffusion time: there a vector whose σ is 1e-5 (relative) below
#: σ_1 weighs e^-20, and ties with σ_1 keep full weight
MAX_DIFFUSION_TIME = 1e6


def auto_diffusion_time(sigma):
    """Diffusion time at which vector ``⌈3k/4⌉`` weighs half the first.

    ``t = log 2 / (2 log(σ_1 / σ_j))`` for ``k`` singular values ``sigma``,
    with ``σ_1`` the largest and ``σ_j`` the ``j``-th largest, ``j =
    ⌈3k/4⌉``, counting positive values only; at most
    ``MAX_DIFFUSION_TIME``, and zero when no value is positive.
    """
    sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
    sigma = sigma[sigma > 0]
    if sigma.size == 0:
        return 0.0
    j = math.ceil(3 * sigma.size / 4) - 1
    decay = math.log(sigma[0] / sigma[j])
    if decay <= math.log(2) / (2 * MAX_DIFFUSION_TIME):
        return MAX_DIFFUSION_TIME
    return math.log(2) / (2 * decay)


def diffusion_weights(sigma, t):
    """``(σ_i / max σ)^{2t}``, computed in logs (no overflow at large ``t``).

    All ones for ``t = 0``; zero for ``σ_i = 0`` when ``t > 0``.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    w = np.ones_like(sigma)
    top = sigma.max(initial=0.0)
    if t == 0 or top <= 0:
        return w
    pos = sigma > 0
    # the log of the ratio: ≤ 0 exactly, and 0 at the largest value (a
    # difference of two logs may round above it)
    w[pos] = np.exp(2.0 * t * np.log(sigma[pos] / top))
    w[~pos] = 0.0
    return w


def participation_ratio(U):
    """Effective number of samples carrying each column of ``U``.

    ``(Σ_i u_i²)² / Σ_i u_i⁴``: ``n`` for a column spread evenly over ``n``
    samples, one for a column concentrated on a single sample, and about the
    size of the smaller side for a column that separates two groups. Zero
    columns get zero.
    """
    U = np.asarray(U, dtype=np.float64)
    sq = np.einsum("ij,ij->j", U, U)
    quad = np.einsum("ij,ij->j", U * U, U * U)
    out = np.zeros(U.shape[1])
    np.divide(sq * sq, quad, out=out, where=quad > 0)
    return out


def _select_delocalized(X, P, sigma, n_components, min_support):
    """The first ``n_components`` columns of ``P`` that are not localized.

    Trusts its inputs. Columns are taken in the order of ``sigma`` (non-
    increasing); a column whose training embedding ``X P[:, j]`` has a
    participation ratio below ``min_support`` is skipped. When fewer than
    ``n_components`` columns pass, the skipped ones fill the remaining
    slots, still in order. Columns with ``σ = 0`` are never selected ahead
    of the others.

    Returns
    -------
    keep : ndarray of shape (n_components,), dtype=int
        Selected columns, in order.
    n_localized : int
        Number of columns skipped ahead of the last selected one.
    """
    r = P.shape[1]
    kept, skipped = [], []
    start = 0
    while len(kept) < n_components and start < r:
        stop = min(r, start + max(n_components, 8))
        block = np.asarray(safe_sparse_dot(X, P[:, start:stop]))
        support = participation_ratio(block)
        for j in range(start, stop):
            if len(kept) == n_components:
                break
            good = sigma[j] > 0 and support[j - start] >= min_support
            (kept if good else skipped).append(j)
        start = stop
    keep = (kept + skipped)[:n_components]
    n_localized = sum(1 for j in skipped if j < max(kept, default=-1))
    return np.array(keep, dtype=int), n_localized


# -- public estimators -----------------------------------------------------


class SimplexSpectralEmbedding(
    RejectsBoolCounts, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    r"""Spectral embedding of codes through the sample–atom bipartite graph.

    Codes ``X`` (rows on the probability simplex, one column per atom) are
    the biadjacency matrix of the bipartite graph
    ``W = [[0, X], [Xᵀ, 0]]`` between samples and atoms. With the degree
    normalization ``X̃ = D_r^{-1/2} X D_c^{-1/2}`` (sample degrees
    ``D_r = I`` on the simplex, atom degrees ``s = Xᵀ1``), the spectral
    embedding of the samples is given by the leading left singular vectors
    of ``X̃``:

    .. math::

        U = X \, \mathrm{diag}(s)^{-1/2} \, V \, \mathrm{diag}(\sigma)^{-1},

    where ``V, σ²`` are the leading eigenpairs of the ``m × m`` matrix
    ``X̃ᵀX̃`` (cost ``O(n m²)``). The trivial pair ``σ = 1``,
    ``v ∝ s^{1/2}`` is dropped, and each row of ``U`` is scaled to unit
    norm (Ng, Jordan and Weiss, 2001). This is the normalized-cut relaxation
    on the graph (Dhillon, 2001) and the embedding of landmark-based spectral
    clustering (Cai and Chen, 2015), with sparse codes as the landmark
    representation.

    :meth:`fit` learns the atom side ``P = diag(s)^{-1/2} V diag(σ)^{-1}``;
    :meth:`transform` embeds any codes as the row-normalized ``X P``, so new
    samples are embedded through their codes, and ``transform`` of the
    training codes equals ``fit_transform``.

    Parameters
    ----------
    n_components : int, default=2
        Dimension ``k`` of the embedding: the number of non-trivial singular
        vectors kept. Codes with ``m`` atoms have at most ``m - 1``; columns
        beyond them are zero (with a warning). For clustering into ``c``
        groups, ``c - 1`` to ``c`` with ``diffusion_time=0``, or about
        ``2 c`` with ``diffusion_time="auto"``.
    min_support : float or None, default=None
        Smallest effective number of samples of a kept singular vector (its
        participation ratio ``(Σ u_i²)² / Σ u_i⁴`` over the training
        samples); vectors below it are skipped as localized, and connected
        components of smaller mass are dropped as dangling (see Notes).
        ``None``: ``Σ s / m`` (``n / m`` without isolated samples), the
        number of samples an average atom serves. ``0``: keep every
        component and the leading vectors as they are.
    diffusion_time : float or "auto", default=0
        Number ``t`` of steps of the random walk sample → atom → sample
        (whose eigenvalues are ``σ²``) that weight the embedding: vector
        ``i`` is scaled by ``(σ_i / σ_1)^{2t}`` before the rows are
        normalized, a diffusion map at time ``t`` (Coifman and Lafon,
        2006); at most ``10⁶``. ``0``: no weighting. ``"auto"``: the time
        at which vector ``j = ⌈3k'/4⌉`` weighs half as much as the first,
        ``t = log 2 / (2 log(σ_1 / σ_j))`` (at most ``10⁶``), where ``k'``
        counts the vectors with ``σ > 0`` (see Notes).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_atoms)
        The atom side ``Pᵀ``, its rows scaled by the diffusion weights: the
        embedding of codes ``X`` is ``X @ components_.T`` with rows scaled
        to unit norm.
    singular_values_ : ndarray of shape (n_components,)
        Non-trivial singular values ``σ`` of ``X̃`` of the kept vectors, in
        ``[0, 1]``: non-increasing, except where localized vectors fill the
        last columns. Values close to one mean weakly connected groups;
        values at the rounding level of the eigenproblem are zero.
    diffusion_time_ : float
        The diffusion time ``t`` used (``diffusion_time``, or its
        ``"auto"`` value).
    atom_degrees_ : ndarray of shape (n_atoms,)
        Atom degrees ``s = Xᵀ1`` (usage of each atom) in the training codes.
    core_atoms_ : ndarray of shape (n_atoms,), dtype=bool
        Atoms kept in the graph: used atoms whose connected component carries
        at least ``min_support`` (by default the mass of an average atom,
        ``Σ s / m``; see Notes).
    n_graph_components_ : int
        Number of connected components of the training graph that contain a
        sample, dangling ones included.
    n_core_components_ : int
        Number of those components that are kept (carry at least
        ``min_support``).
    n_localized_ : int
        Number of localized singular vectors skipped ahead of the last kept
        one.
    n_features_in_ : int
        Number of atoms ``m`` (columns of the codes).
    feature_names_in_ : ndarray of shape (n_atoms,)
        Names of features seen during :meth:`fit`, when they are strings.

    Notes
    -----
    **Input.** Codes must be non-negative and finite (``ValueError``
    otherwise). A row that does not sum to one is divided by its sum: its
    edge weights become a probability distribution over atoms, the random
    walk from that sample, and rows that do lie on the simplex are used as
    they are. A row of zeros is an isolated sample: it takes no part in the
    fit and is embedded at the origin. Dense and sparse (CSR, CSC) inputs are
    accepted.

    **Unused atoms.** An atom with ``s_j = 0`` has no edge; it gets a zero
    row in ``P`` (the pseudo-inverse of its degree), so it neither produces
    ``NaN`` nor contributes to the embedding. A new sample that only uses
    such atoms is embedded at the origin.

    **Dangling components.** Each connected component of the graph has
    singular value one, so a tiny component (typically an outlier sample
    that captured an atom of its own) would take a whole embedding dimension
    and hide the cluster structure. Components carrying less mass than
    ``min_support`` (by default that of an average atom, ``Σ s / m``, i.e.
    fewer samples than an average atom serves) are therefore treated like
    unused atoms; larger components, which are genuine well-separated
    groups, are kept and embedded apart.

    **Localized vectors.** An outlier that shares an atom with only a few
    samples is weakly, but not un-, connected to the rest, and it yields a
    singular value close to one whose vector is concentrated on those few
    samples: it describes the outlier, not a cluster. The participation
    ratio ``(Σ u_i²)² / Σ u_i⁴`` of a vector is its effective number of
    samples (about the size of the smaller side for a vector that separates
    two groups), so vectors whose participation ratio is below
    ``min_support`` (by default ``n / m``: fewer samples than an average
    atom serves, the same scale as the rule for dangling components) are
    skipped and the next vectors, in the order of ``σ``, are kept instead;
    candidates are the ``4 k + 16`` leading vectors. When too few pass,
    skipped ones fill the remaining columns.

    **Diffusion weights.** Without weights, the ``k`` kept vectors count
    equally, however small their singular values: a choice of ``k`` past the
    spectral gap adds noisy directions, and one before it misses groups.
    With ``k`` chosen generously (twice the number of clusters in
    :class:`SimplexSpectralClustering`), the weights ``(σ_i / σ_1)^{2t}``
    fade the trailing vectors. The ``"auto"`` time makes the fading
    independent of the scale of the spectrum: vector ``⌈3k/4⌉`` always
    weighs one half, vectors with ``σ`` close to ``σ_1`` about one, and the
    last ones fall off as their ``σ`` drops below ``σ_j``. Leading values
    that are nearly equal (many groups of similar connectivity, as on
    digits) give a long time, so whatever falls below them fades fast;
    spread-out values give a short one. Values tied with ``σ_1`` (separate
    components) keep full weight. ``σ_i`` in the weights is the smallest
    singular value among columns ``1 … i``, so a localized vector that
    fills a slot after the kept ones never outweighs them.

    **Precision.** The eigenproblem is solved in float64; the output has the
    dtype of the input (float32 or float64).

    References
    ----------
    Dhillon, I. S. (2001). Co-clustering documents and words using bipartite
    spectral graph partitioning. KDD.

    Ng, A., Jordan, M., Weiss, Y. (2001). On spectral clustering: analysis
    and an algorithm. NeurIPS.

    Cai, D., Chen, X. (2015). Large scale spectral clustering via
    landmark-based sparse representation. IEEE Trans. Cybernetics.

    Coifman, R. R., Lafon, S. (2006). Diffusion maps. Applied and
    Computational Harmonic Analysis.

    See Also
    --------
    SimplexSpectralClustering : Codes, this embedding, then k-means.
    sklearn.manifold.SpectralEmbedding : Spectral embedding of a sample graph,
        without out-of-sample extension.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_wlsc import SimplexSpectralEmbedding
    >>> codes = np.array([[1.0, 0.0, 0.0, 0.0],
    ...                   [0.6, 0.4, 0.0, 0.0],
    ...                   [0.0, 0.0, 0.5, 0.5],
    ...                   [0.0, 0.0, 0.3, 0.7]])
    >>> emb = SimplexSpectralEmbedding(n_components=1).fit(codes)
    >>> emb.transform(codes).ravel()
    array([ 1.,  1., -1., -1.])
    >>> emb.transform([[0.0, 0.0, 1.0, 0.0]])
    array([[-1.]])
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "min_support": [Interval(Real, 0, None, closed="left"), None],
        "diffusion_time": [
            Interval(Real, 0, MAX_DIFFUSION_TIME, closed="both"),
            StrOptions({"auto"}),
        ],
    }

    def __init__(self, n_components=2, *, min_support=None, diffusion_time=0):
        self.n_components = n_components
        self.min_support = min_support
        self.diffusion_time = diffusion_time

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _validate_codes(self, X, reset):
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=_FLOATS, reset=reset)
        check_non_negative(X, f"{type(self).__name__}")
        return _to_simplex(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the atom side of the embedding from training codes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_atoms)
            Non-negative codes; rows are scaled to sum to one.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = self._validate_codes(X, reset=True)
        m = X.shape[1]
        if self.n_components > m - 1:
            warnings.warn(
                f"n_components={self.n_components} exceeds the {m - 1} non-trivial "
                f"singular vectors of codes with n_features={m}; the last "
                f"{self.n_components - max(m - 1, 0)} columns of the embedding are zero.",
                UserWarning,
                stacklevel=3,
            )
        XtX, s = _gram(X)
        # a row on the simplex carries mass one: Σ s / m is n / m without isolated rows
        min_support = s.sum() / m if self.min_support is None else self.min_support
        self.n_graph_components_, self.core_atoms_, self.n_core_components_ = _graph_components(
            XtX, s, min_support
        )
        if not self.core_atoms_.any():
            reason = (
                "every code is zero"
                if not s.any()
                else f"no connected component of the sample-atom graph carries "
                f"min_support={min_support:g} of the samples' mass (lower min_support)"
            )
            warnings.warn(
                f"Nothing to embed: {reason}; every embedded sample is zero.",
                UserWarning,
                stacklevel=3,
            )
        k = self.n_components
        if min_support == 0:
            P, sigma = simplex_spectral_projection(XtX, s, k, core=self.core_atoms_)
            self.n_localized_ = 0
        else:
            # candidates: a few outliers take a few vectors, not dozens
            n_candidates = max(k, min(m - 1, 4 * k + 16))
            P, sigma = simplex_spectral_projection(XtX, s, n_candidates, core=self.core_atoms_)
            keep, self.n_localized_ = _select_delocalized(X, P, sigma, k, min_support)
            P, sigma = P[:, keep], sigma[keep]
        # a localized vector that fills a slot after the kept ones may have a
        # larger σ: weigh each column by the smallest σ up to it, never more
        # than the columns before it
        sigma_w = np.minimum.accumulate(sigma)
        if isinstance(self.diffusion_time, str):  # "auto"
            self.diffusion_time_ = auto_diffusion_time(sigma_w)
        else:
            self.diffusion_time_ = float(self.diffusion_time)
        self.components_ = (P * diffusion_weights(sigma_w, self.diffusion_time_)[None, :]).T
        self.singular_values_ = sigma
        self.atom_degrees_ = s
        if self.core_atoms_.any() and not sigma.any():
            warnings.warn(
                f"Nothing to embed: the kept graph ({self.n_core_components_} connected "
                "component(s)) has no non-trivial singular vector, so every embedded "
                "sample is zero; this happens when the codes' samples share one atom "
                "(or one group of atoms), or when min_support drops the other components.",
                UserWarning,
                stacklevel=3,
            )
        return self

    def transform(self, X):
        """Embed codes through the learned atom side.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_atoms)
            Non-negative codes; rows are scaled to sum to one.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Rows of unit norm (zero for a sample that uses only atoms unused
            in training), in the dtype of ``X``.
        """
        check_is_fitted(self)
        X = self._validate_codes(X, reset=False)
        return _embed(X, self.components_.T)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# -- the default rules of SimplexSpectralClustering ---------------------------

#: samples per atom of the default dictionary (scikit-learn's default number of
#: neighbours of a kNN graph); also the size of the fit subsample per atom
SAMPLES_PER_ATOM = 10
#: atoms per cluster, at least
MIN_ATOMS_PER_CLUSTER = 3
#: largest default dictionary (unless n_clusters asks for more)
MAX_ATOMS = 256
#: default locality weight: between two neighbouring atoms a sample uses both
#: over the middle 1 / (1 + 2α) = 1/2 of the segment
DEFAULT_ALPHA = 0.5
#: default number of dictionaries whose graphs are averaged
DEFAULT_N_DICTIONARIES = 8
#: default embedding dimensions per cluster (the diffusion weights fade the
#: ones past the spectrum's decay)
EMBEDDING_DIMS_PER_CLUSTER = 2
#: feature scales are "heterogeneous" beyond this ratio of standard deviations
STANDARDIZE_RATIO = 10.0


def default_n_atoms(n_samples, n_clusters):
    """Default dictionary size of :class:`SimplexSpectralClustering`.

    ``n_samples`` counts distinct samples (the estimator passes the number
    of distinct rows: repeated samples give atoms nothing new to cover).
    ``m = n / 10`` (each atom is shared by about as many samples as a sample
    has neighbours in scikit-learn's default kNN graph), at least
    ``3 c + 1`` (a few atoms per cluster, so that a cluster of any shape is a
    union of atoms), at most ``max(256, 3 c + 1)`` (beyond that, cost grows
    as ``O(n m d)`` while the clusters are already resolved), and at most
    ``max(n // 2, c + 1)``: at least two samples per atom on average, so
    that samples share atoms. With as many atoms as samples every code is
    one-hot, the graph falls apart into pieces of one sample, and those are
    dropped as lighter than an average atom's share: on 100 samples from
    32 blobs (five seeds), 97 atoms gave a mean ARI of 0.00 and 50 atoms
    0.83 (k-means: 0.82).

    Parameters
    ----------
    n_samples : int
    n_clusters : int

    Returns
    -------
    n_atoms : int
    """
    low = MIN_ATOMS_PER_CLUSTER * n_clusters + 1
    m = max(int(round(n_samples / SAMPLES_PER_ATOM)), low)
    m = min(m, max(MAX_ATOMS, low))
    return int(min(m, max(n_samples // 2, n_clusters + 1)))


def n_distinct_rows(X):
    """The number of distinct rows of the 2-D array ``X`` (bitwise)."""
    X = np.ascontiguousarray(X)
    if X.shape[0] <= 1 or X.shape[1] == 0:
        return min(X.shape[0], 1) if X.shape[1] == 0 else X.shape[0]
    rows = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
    return int(np.unique(rows).size)


def needs_standardizing(X):
    """Whether the features of ``X`` live on heterogeneous scales.

    True when the largest standard deviation of the non-constant features
    exceeds ten times their median one: features measured in different units
    (as in the wine or breast-cancer data), where Euclidean distances would be
    dominated by a few features. Pixels or coordinates in common units are
    left alone. For an even number of features the median is the lower of
    the two middle values, so that with two features the larger spread is
    compared with the smaller (the mean of the two could never be exceeded
    tenfold).

    The answer does not depend on the data's magnitude: each feature's
    spread is computed in float64 on the feature divided by a power of two
    of its largest magnitude, and compared in powers of two, so that none
    overflows or underflows anywhere in the dtype's range, however far
    apart the features' scales.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    standardize : bool
    """
    X = np.asarray(X, dtype=np.float64)
    e = np.frexp(np.abs(X).max(axis=0, initial=0.0))[1]
    std = np.ldexp(X, -e[None, :]).std(axis=0)
    spread = std > 0
    # log2 of each spread: that of the scaled feature plus its exponent
    log_std = np.sort(np.log2(std[spread]) + e[spread])
    if log_std.size < 2:
        return False
    lower_median = log_std[(log_std.size - 1) // 2]
    return bool(log_std[-1] > math.log2(STANDARDIZE_RATIO) + lower_median)


def _fit_scaler(X):
    """``StandardScaler`` fitted to ``X`` at any magnitude.

    It is fitted to each feature divided by a power of two of its largest
    magnitude (exactly, so that no variance overflows or underflows), and
    its ``mean_`` and ``scale_`` (and ``var_``, which may leave the float
    range) are scaled back: ``transform`` then standardizes ``X`` with the
    numbers a fit at moderate magnitudes would give, and bit for bit the
    same ones there.
    """
    e = np.frexp(np.abs(X).max(axis=0, initial=0.0))[1]
    scaler = StandardScaler().fit(np.ldexp(X, -e[None, :]).astype(X.dtype, copy=False))
    # the scaled features lie in (-1, 1), so a scale of exactly one is
    # StandardScaler's mark of a constant feature: it stays one
    constant = scaler.scale_ == 1.0
    scaler.mean_ = np.ldexp(scaler.mean_, e)
    scaler.scale_ = np.where(constant, 1.0, np.ldexp(scaler.scale_, e))
    with np.errstate(over="ignore", under="ignore"):
        scaler.var_ = np.ldexp(scaler.var_, 2 * e)
    return scaler


class SimplexSpectralClustering(RejectsBoolCounts, ClusterMixin, BaseEstimator):
    r"""Spectral clustering through weighted-l1 sparse codes on the simplex.

    Three steps, each a fitted sub-estimator:

    1. ``R`` instances of :class:`WeightedL1SparseCoder`, from different
       random initializations (and subsamples), each learn ``m`` atoms and
       code every sample on the simplex; the codes are sparse and local, so
       they define a sample–atom graph (an anchor graph) in ``O(n m d)``.
       The ``R`` graphs are averaged: the codes are concatenated and divided
       by ``R`` (see Notes).
    2. :class:`SimplexSpectralEmbedding` embeds the samples with the leading
       singular vectors of the normalized graph, an ``R m × R m``
       eigenproblem, skipping vectors localized on a few outliers and
       weighting the others by powers of their singular values (a diffusion
       map).
    3. :class:`~sklearn.cluster.KMeans` clusters the embedded samples.

    Unlike :class:`~sklearn.cluster.SpectralClustering`, the cost is linear in
    ``n`` and new samples are clustered by :meth:`predict` through their
    codes. Giving only ``n_clusters`` (and ``random_state``) is the intended
    use: every other default is a rule computed from the data.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters ``c``.
    n_components : int, default=None
        Dimension of the spectral embedding. ``None``: ``2 c`` (at most
        ``m - 1``, at least ``c``). ``c - 1`` vectors separate ``c`` ideal
        groups, but on real data some groups only part in later vectors; the
        diffusion weights fade the vectors past the spectrum's decay. With
        ``None`` and ``diffusion_time="auto"``, when the graph falls apart
        into ``p ≥ c`` kept pieces (connected components), the embedding is
        their ``p - 1`` indicator vectors alone (see Notes).
    diffusion_time : float or "auto", default="auto"
        Diffusion time ``t`` of the embedding: vector ``i`` is weighted by
        ``(σ_i / σ_1)^{2t}`` (see :class:`SimplexSpectralEmbedding`).
        ``"auto"``: the time at which the vector at three quarters of the
        embedding (of those with ``σ > 0``) weighs half as much as the
        first. ``0``: equal weights (then ``n_components=c`` is the better
        choice).
    n_atoms : int, default=None
        Number of atoms ``m``. ``None``: ``n / 10``, at least ``3 c + 1``, at
        most ``max(256, 3 c + 1)`` and at most ``max(n // 2, c + 1)``, where ``n``
        counts distinct samples (see ``default_n_atoms``). When the dictionaries are fit on fewer samples
        than ``m`` (``n = c``, or a small ``max_fit_samples``), ``fit`` warns
        once: the extra atoms may stay unused.
    alpha : float, default=None
        Locality weight of the coders. ``None``: ``0.5``. The objective is
        invariant to rescaling the data, so the value is unit-free: a sample
        lying between two neighbouring atoms uses both over the middle
        ``1 / (1 + 2α) = 1/2`` of the segment joining them, which links
        neighbouring atoms in each graph while keeping codes local (larger
        values approach hard assignments and disconnect the graph).
    n_dictionaries : int, default=8
        Number ``R`` of dictionaries, learned from different random
        initializations, whose sample–atom graphs are averaged. Each graph
        depends on where its atoms fell; averaging ``R`` of them keeps the
        links that do not depend on that chance (see Notes). ``1``: a single
        coder. Cost grows linearly in ``R``.
    standardize : "auto" or bool, default="auto"
        Scale features to unit variance before coding. ``"auto"``: when the
        largest feature standard deviation exceeds ten times the median one
        (the lower median for an even number of features; see
        ``needs_standardizing``).
    max_fit_samples : int, "auto" or None, default="auto"
        Fit the dictionary on a uniform subsample of at most this many
        samples; all samples are then encoded. ``"auto"``: ``10 m``, the
        same number of samples per atom as the default ``n_atoms`` rule, so
        subsampling only starts once ``m`` reaches its cap. ``None``: all.
    max_iter : int, default=100
        Maximum number of dictionary updates of the coder.
    tol : float, default=1e-4
        Relative decrease of the coder's objective at which its fit stops.
    n_init : int, default=10
        Number of k-means initializations.
    n_jobs : int, default=None
        Number of threads of the coder's kernels.
    random_state : int, RandomState instance or None, default=None
        Seeds the subsamples, the coders' initializations and k-means. The
        first coder and k-means get it as given; the other coders get seeds
        drawn from it. As with :class:`~sklearn.cluster.KMeans`, the seeds
        pick rows by position, so the labels can change when the rows are
        permuted.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample: what :meth:`predict` gives for the
        training samples.
    scaler_ : StandardScaler or None
        The fitted scaler, when features were standardized.
    coders_ : list of WeightedL1SparseCoder
        The ``R`` fitted coders.
    coder_ : WeightedL1SparseCoder
        The first fitted coder, ``coders_[0]``.
    embedding_ : SimplexSpectralEmbedding
        The fitted embedding of the training codes (:meth:`encode`).
    kmeans_ : KMeans
        The fitted k-means on the embedded samples of the kept graph.
    atom_labels_ : ndarray of shape (R m,)
        Cluster of each of the ``R m`` atoms of the joined dictionaries
        (``R = n_dictionaries``, ``m = n_atoms_``; the columns of
        :meth:`encode`): the one whose training samples put the most code
        mass on it; ``-1`` for atoms outside the kept graph. The atoms and
        the samples are clustered together (a co-clustering of the
        bipartite graph). All ``-1`` when fewer than ``n_clusters``
        samples reach the kept graph: k-means then runs on every embedded
        sample, as the pipeline does, and no sample is placed by the atoms.
    n_atoms_ : int
        Number of atoms used.
    alpha_ : float
        Locality weight used.
    n_components_ : int
        Dimension of the embedding used.
    n_iter_ : int
        Largest number of dictionary updates of the coders.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during :meth:`fit`, when they are strings.

    Notes
    -----
    **Averaged graphs.** With codes ``X_1, …, X_R`` of the ``R``
    dictionaries, the biadjacency matrix is ``X = [X_1, …, X_R] / R``, whose
    rows are still on the simplex. Its sample graph (two steps of the walk
    sample → atom → sample) is ``X diag(s)^{-1} Xᵀ = (1/R) Σ_r X_r
    diag(s_r)^{-1} X_rᵀ``, the mean of the ``R`` sample graphs: two samples
    are strongly linked when they share atoms in most dictionaries, a
    co-association (evidence accumulation) of the ``R`` local partitions
    computed in ``O(n R m)`` instead of ``O(n²)``. The larger default
    ``α = 0.5`` keeps each graph local; their average restores the links
    between neighbouring atoms. Localized singular vectors and lighter
    components are skipped with ``min_support = min(n / m, n / (2 c))``:
    the samples an atom of one dictionary serves, but never more than half
    an average cluster (when repeated rows leave few distinct points, and
    so few atoms, a group of identical rows is a cluster, not an outlier).

    **Separate pieces.** When the averaged graph falls apart into ``p ≥ c``
    connected components that carry ``min_support`` each, the data are
    already split into at least ``c`` groups with no sample between them,
    and the singular vectors beyond the ``p - 1`` indicators describe the
    structure *within* the pieces. With the default ``n_components`` and
    ``diffusion_time``, the embedding is then the indicators alone
    (``n_components_ = p - 1``, no diffusion weights), and k-means groups
    the pieces: otherwise the spread inside one large piece could outweigh
    two small ones (well-separated blobs of 500, 100 and 100 samples). A
    far-away group of outliers heavy enough to be kept is a piece too: two
    touching moons plus a distant group of 15 samples, with ``c = 2``, give
    the moons as one cluster and the group as the other (as k-means and
    :class:`~sklearn.cluster.SpectralClustering` with a kNN graph do).
    Passing ``n_components`` (for example ``2 c``) turns the rule off, and
    the moons are split again. When there are more pieces than clusters
    (``p > c``), the indicator vectors put every piece as far from every
    other: k-means alone joins the lightest pieces (they cost the least
    inertia) but to whichever other piece, near or far. k-means then
    starts from ``c`` groups made as ``min_support`` reads the graph: the
    lightest piece joins the piece nearest to it (two pieces being as far
    apart as their nearest atoms), and so on, pieces of equal mass nearest
    first. A small far group is then the outskirts of its nearest cluster,
    and the sub-pieces of a cluster that fell apart rejoin it.

    **Samples outside the kept graph.** A sample whose code puts no mass on
    the kept graph (its piece is lighter than ``min_support``; or, in
    :meth:`predict`, a new sample coded on such atoms only) embeds at the
    origin, where k-means would give every such sample the one cluster
    nearest the origin. These samples take instead the cluster of the
    nearest atom (in the coders' input space) of ``atom_labels_``, and
    k-means is fitted without them. On small data (a few samples per
    atom) many samples are in such pieces: 15 to 24 samples in three blobs
    left up to 6 of them outside, which all went to one cluster before
    this rule.

    With ``n_dictionaries=1``, without standardization and subsampling,
    ``fit`` is exactly the pipeline ``WeightedL1SparseCoder(m, alpha=α,
    max_iter=max_iter, tol=tol, random_state=random_state)``,
    ``SimplexSpectralEmbedding(k, min_support=min(n / m, n / (2 c)),
    diffusion_time=t)``, ``KMeans(n_clusters, n_init=n_init,
    random_state=random_state)``, with ``k`` the ``n_components_`` used and
    ``t`` the ``diffusion_time`` given (``0`` when the graph falls apart into
    ``c`` or more pieces, above), for samples whose codes reach the kept
    graph, when every training sample does and the graph has at most ``c``
    pieces (above).

    The dictionary is a landmark set and the codes the landmark
    representation of landmark-based spectral clustering (Cai and Chen,
    2015), here learned jointly by one objective; K-Deep Simplex (Tankala et
    al., 2023) clusters the same kind of codes through their atom graph.

    References
    ----------
    Cai, D., Chen, X. (2015). Large scale spectral clustering via
    landmark-based sparse representation. IEEE Trans. Cybernetics.

    Tankala, P., Tasissa, A., Murphy, J. M., Ba, D. (2023). K-Deep Simplex:
    manifold learning via local dictionaries. IEEE Trans. Signal Processing.

    See Also
    --------
    SimplexSpectralEmbedding : The embedding step alone.
    sklearn.cluster.SpectralClustering : Spectral clustering of a sample graph.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from sklearn_wlsc import SimplexSpectralClustering
    >>> X, y = make_moons(500, noise=0.05, random_state=0)
    >>> model = SimplexSpectralClustering(n_clusters=2, random_state=0).fit(X)
    >>> round(adjusted_rand_score(y, model.labels_), 2)
    1.0
    >>> bool((model.predict(X[:50]) == model.labels_[:50]).all())
    True
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "diffusion_time": [
            Interval(Real, 0, MAX_DIFFUSION_TIME, closed="both"),
            StrOptions({"auto"}),
        ],
        "n_atoms": [Interval(Integral, 2, None, closed="left"), None],
        "alpha": [Interval(Real, 0, ALPHA_MAX, closed="both"), None],
        "n_dictionaries": [Interval(Integral, 1, None, closed="left")],
        "standardize": [StrOptions({"auto"}), "boolean"],
        "max_fit_samples": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        n_components=None,
        diffusion_time="auto",
        n_atoms=None,
        alpha=None,
        n_dictionaries=DEFAULT_N_DICTIONARIES,
        standardize="auto",
        max_fit_samples="auto",
        max_iter=100,
        tol=1e-4,
        n_init=10,
        n_jobs=None,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.diffusion_time = diffusion_time
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.n_dictionaries = n_dictionaries
        self.standardize = standardize
        self.max_fit_samples = max_fit_samples
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _resolve(self, X):
        """The data-driven settings for validated training data ``X``."""
        n = X.shape[0]
        k = self.n_clusters
        # repeated samples add no places for atoms: with more atoms than
        # distinct samples every code is one-hot and the graph falls apart
        m = default_n_atoms(n_distinct_rows(X), k) if self.n_atoms is None else self.n_atoms
        if self.n_components is None:
            n_components = max(k, min(EMBEDDING_DIMS_PER_CLUSTER * k, m - 1))
        else:
            n_components = self.n_components
        if n_components > m - 1:
            given = (
                f"n_components={n_components}"
                if self.n_components is not None
                else f"n_components=None (n_clusters={k})"
            )
            raise ValueError(
                f"{given} must be at most n_atoms - 1 = {m - 1}; raise n_atoms or "
                "lower n_components."
            )
        alpha = DEFAULT_ALPHA if self.alpha is None else float(self.alpha)
        if self.standardize == "auto":
            standardize = needs_standardizing(X)
        else:
            standardize = bool(self.standardize)
        if self.max_fit_samples == "auto":
            n_fit = SAMPLES_PER_ATOM * m
        else:
            n_fit = n if self.max_fit_samples is None else self.max_fit_samples
        return m, n_components, alpha, standardize, min(n, n_fit)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the coder, the embedding and k-means; set ``labels_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = validate_data(self, X, dtype=_FLOATS)
        n = X.shape[0]
        if n < self.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}.")
        m, n_components, alpha, standardize, n_fit = self._resolve(X)
        self.n_atoms_, self.n_components_, self.alpha_ = m, n_components, alpha

        # the steps hand arrays to each other, whatever transform_output says
        self.scaler_ = _fit_scaler(X).set_output(transform="default") if standardize else None
        Y = self.scaler_.transform(X) if standardize else X
        rng = check_random_state(self.random_state)
        seeds = [self.random_state] + [
            int(seed) for seed in rng.randint(np.iinfo(np.int32).max, size=self.n_dictionaries - 1)
        ]
        if n_fit < m:
            # said once, in this estimator's terms: the coder's own warning
            # would name its n_components, which here means something else
            origin = "the default rule's" if self.n_atoms is None else "the given"
            given = f"n_samples={n}" if n_fit == n else f"max_fit_samples={n_fit}"
            warnings.warn(
                f"{given} is smaller than n_atoms={m} ({origin} "
                f"dictionary size for n_clusters={self.n_clusters}): the extra "
                "atoms start as mixtures of samples and may stay unused.",
                UserWarning,
                stacklevel=3,
            )
        self.coders_ = []
        for seed in seeds:
            Y_fit = Y
            if n_fit < n:
                sub = check_random_state(seed)
                Y_fit = Y[np.sort(sub.choice(n, n_fit, replace=False))]
            coder = WeightedL1SparseCoder(
                m,
                alpha=alpha,
                max_iter=self.max_iter,
                tol=self.tol,
                n_jobs=self.n_jobs,
                random_state=seed,
            ).set_output(transform="default")
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore",
                    message="n_samples=.* is smaller than n_components",
                    category=UserWarning,
                )
                self.coders_.append(coder.fit(Y_fit))
        self.coder_ = self.coders_[0]
        codes = self._encode(Y)
        # components lighter than an average atom's share are outliers, but
        # not one that weighs half an average cluster (many repeated rows
        # can leave fewer atoms than clusters need)
        min_support = min(n / m, n / (2 * self.n_clusters))
        self.embedding_ = SimplexSpectralEmbedding(
            n_components, min_support=min_support, diffusion_time=self.diffusion_time
        ).set_output(transform="default")
        self.embedding_.fit(codes)
        n_pieces = self.embedding_.n_core_components_
        pieces = (
            self.n_components is None
            and self.diffusion_time == "auto"
            and self.n_clusters >= 2
            and n_pieces >= self.n_clusters
        )
        if pieces:
            # the graph falls apart into at least c pieces: cluster the pieces
            # (the indicator vectors, σ = 1), not the structure within them,
            # which would outweigh small pieces next to a large one
            self.n_components_ = n_pieces - 1
            self.embedding_ = SimplexSpectralEmbedding(
                n_pieces - 1, min_support=min_support, diffusion_time=0
            ).set_output(transform="default")
            self.embedding_.fit(codes)
        U = self.embedding_.transform(codes)
        # samples in dropped (lighter) pieces embed at the origin: k-means
        # runs on the others, and they take the cluster of the nearest atom
        # of the kept graph (see Notes)
        inside = _mass_on(codes, self.embedding_.core_atoms_) > 0
        graph_kept = np.count_nonzero(inside) >= self.n_clusters
        if not graph_kept:
            # the kept graph has too few samples to cluster: k-means on all
            inside[:] = True
        init, n_init = "k-means++", self.n_init
        if pieces and n_pieces > self.n_clusters:
            # more pieces than clusters: start k-means from the groups made
            # by joining the lightest piece to its nearest, not from
            # indicator vectors all as far from each other
            atom_group = _piece_groups(
                codes, self.embedding_.core_atoms_, self._atoms(), self.n_clusters
            )
            group = atom_group[_heaviest_atoms(codes[inside])]
            U_inside = U[inside]
            init = np.array([U_inside[group == g].mean(axis=0) for g in range(self.n_clusters)])
            n_init = 1
        self.kmeans_ = KMeans(
            self.n_clusters, init=init, n_init=n_init, random_state=self.random_state
        ).fit(U[inside])
        # the labels predict gives (k-means breaks ties between equal
        # centers differently in fit and in predict)
        labels = self.kmeans_.predict(U)
        self.atom_labels_ = np.full(codes.shape[1], -1, dtype=np.intp)
        if graph_kept:
            self.atom_labels_ = _atom_labels(codes[inside], labels[inside], self.n_clusters)
        self.labels_ = self._place_outside(Y, ~inside, labels)
        self.n_iter_ = max(coder.n_iter_ for coder in self.coders_)
        return self

    def _atoms(self):
        """The atoms of every coder, stacked as the columns of the codes."""
        return np.vstack([coder.components_ for coder in self.coders_])

    def _place_outside(self, Y, outside, labels):
        """``labels``, with the samples ``outside`` the kept graph (no code
        mass on it) given the cluster of the nearest atom that has one
        (``Y``: the scaled samples)."""
        labeled = np.flatnonzero(self.atom_labels_ >= 0)
        if labeled.size and outside.any():
            nearest = _nearest_rows(Y[outside], self._atoms()[labeled])
            labels[outside] = self.atom_labels_[labeled[nearest]]
        return labels

    def _encode(self, Y):
        """Concatenated codes of (scaled) ``Y`` on every dictionary, over ``R``."""
        if len(self.coders_) == 1:
            return self.coder_.transform(Y)
        # each sample uses a few atoms of each dictionary: keep the graph sparse
        codes = sparse.hstack([sparse.csr_matrix(c.transform(Y)) for c in self.coders_])
        return (codes / len(self.coders_)).tocsr()

    def encode(self, X):
        """Codes of samples on all dictionaries: the graph that is embedded.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        codes : ndarray or CSR matrix of shape (n_samples, n_dictionaries * n_atoms)
            The codes of every coder side by side, divided by
            ``n_dictionaries``, so that each row lies on the simplex; a CSR
            matrix when ``n_dictionaries > 1`` (each row has a few non-zeros
            per dictionary), the coder's dense codes otherwise.
        """
        return self._encode(self._scaled(X))

    def _scaled(self, X):
        """New samples, validated against the fit and standardized as the
        training samples were."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return self.scaler_.transform(X) if self.scaler_ is not None else X

    def predict(self, X):
        """Cluster of new samples, through their codes and the embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Index of the cluster of each sample.
        """
        Y = self._scaled(X)
        codes = self._encode(Y)
        labels = self.kmeans_.predict(self.embedding_.transform(codes))
        outside = _mass_on(codes, self.embedding_.core_atoms_) == 0
        return self._place_outside(Y, outside, labels)
