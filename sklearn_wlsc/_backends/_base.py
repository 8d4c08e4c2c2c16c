"""The interface every backend implements, with the numpy set-up they share."""

import abc
import contextlib

import numpy as np

from .. import _objective

# rows encoded per chunk of a pass over numpy data on the CPU: bounds the
# pass's working memory
CHUNK_ROWS = 8192


class Backend(abc.ABC):
    """Base class of the array backends.

    Subclasses implement :meth:`_unrolled` and :meth:`_exact` on the
    quadratic program's terms; :meth:`encode` builds those terms once per
    batch (``G = AAᵀ`` and ``C``, one GEMM) and dispatches. A backend may
    instead override :meth:`_exact_from_cross`, which receives ``Y Aᵀ``,
    to build the exact encoder's terms row by row (the numba backend
    does). Every method trusts its inputs: finite, floating-point, matching
    shapes.
    """

    name = None
    # whether the exact encoder marks the rows its frame cannot resolve
    computes_frame_flags = False

    def encode(
        self,
        Y,
        A,
        alpha,
        *,
        algorithm,
        n_layers,
        tol,
        max_iter,
        init_codes=None,
        cross=None,
        shift=None,
        flags_out=None,
    ):
        """Encode the rows of ``Y`` on the simplex for the dictionary ``A``.

        Parameters
        ----------
        Y : ndarray of shape (n_samples, n_features)
        A : ndarray of shape (n_components, n_features)
        alpha : float
        algorithm : {"unrolled", "exact"}
        n_layers : int
            Number of accelerated projected-gradient steps (``"unrolled"``).
        tol : float
            Relative duality-gap tolerance (``"exact"``).
        max_iter : int
            Iteration cap of the exact solver.
        init_codes : ndarray of shape (n_samples, n_components), default=None
            Warm start of the exact encoder (rows on the simplex, or rows of
            zeros for a cold start).
        cross : ndarray of shape (n_samples, n_components), default=None
            ``Y Aᵀ`` in float64 when the caller already has it, so that the
            pass computes it once for the encoder's terms, the gap scale and
            the objective. Used by the exact encoder, and by the unrolled
            one when ``Y`` is float64.
        shift : float, default=None
            Shift ``s`` of the exact encoder's support systems
            ``G[S, S] + s·11ᵀ``; None takes
            :func:`sklearn_wlsc._objective.robust_shift` of the atoms.
        flags_out : ndarray of shape (n_samples,), dtype uint8, default=None
            Where a backend with :attr:`computes_frame_flags` marks the rows
            whose codes this frame cannot resolve to ``tol`` (1; see
            ``_dict_learning.refine_in_local_frames``); others leave it.

        Returns
        -------
        X : ndarray of shape (n_samples, n_components)
            Codes, same dtype as ``Y``.
        gap : ndarray of shape (n_samples,) or None
            Relative duality gap reached by the exact encoder, else None.
        """
        if cross is not None and cross.dtype != np.float64:
            raise TypeError("the cross term Y Aᵀ must be float64")
        if algorithm == "unrolled":
            if Y.dtype != np.float64:
                cross = None
            G, C = _objective.encoder_terms(Y, A, alpha, cross)
            L = _objective.lipschitz_constant(A)
            return self._unrolled(G, C, L, n_layers), None
        Y64 = np.asarray(Y, dtype=np.float64)
        A64 = np.asarray(A, dtype=np.float64)
        if cross is None:
            cross = Y64 @ A64.T
        kwargs = {"flags_out": flags_out} if self.computes_frame_flags else {}
        X, gap = self._exact_from_cross(
            Y64, A64, alpha, cross, tol, max_iter, init_codes, shift=shift, **kwargs
        )
        return X.astype(Y.dtype, copy=False), gap

    def _exact_from_cross(self, Y, A, alpha, cross, tol, max_iter, X0=None, shift=None):
        """Exact codes and relative gaps from float64 ``Y``, ``A`` and
        ``cross = Y Aᵀ``: builds the encoder's terms and the gap scale (see
        :mod:`sklearn_wlsc._objective`) and calls :meth:`_exact`. A backend
        may override it to build them on the fly, row by row."""
        G, C = _objective.encoder_terms(Y, A, alpha, cross)
        scale = _objective.gap_scale(Y, A, alpha, cross)
        y_norms = np.sqrt(np.einsum("ij,ij->i", Y, Y))
        X, gap = self._exact(
            G, C, scale, tol, max_iter, X0, y_norms=y_norms, alpha=alpha, shift=shift
        )
        return X, gap / scale

    @abc.abstractmethod
    def _unrolled(self, G, C, L, n_layers):
        """``n_layers`` accelerated projected-gradient steps from zero."""

    def _exact(self, G, C, scale, tol, max_iter, X0=None, *, y_norms, alpha, shift=None):
        """Codes whose certified duality gap (the gap less its rounding
        allowance, :func:`sklearn_wlsc._objective.certified_gap`, which
        needs the samples' norms ``y_norms`` and ``alpha``) is at most
        ``tol * scale``, and those gaps; warm-started from ``X0`` when
        given. Backends implement it, or override :meth:`_exact_from_cross`
        instead."""
        raise NotImplementedError(
            f"the {self.name} backend builds the exact encoder's terms itself"
        )

    @abc.abstractmethod
    def project_simplex(self, V):
        """Project each row of ``V`` onto the probability simplex."""

    def dictionary_statistics(self, X, Y):
        """``(XᵀX, Xᵀ1, XᵀY)``, the sufficient statistics of the A-step."""
        return _objective.dictionary_statistics(X, Y)

    def limit_threads(self, n_jobs):
        """Context manager limiting the backend's threads to ``n_jobs``."""
        return contextlib.nullcontext()

    def pass_chunk_rows(self, n_features, n_components, algorithm="exact"):
        """Rows per chunk when a pass over numpy data encodes it chunk by
        chunk with ``algorithm`` (``_dict_learning.encode_pass``):
        ``CHUNK_ROWS``, which bounds the pass's working memory."""
        return CHUNK_ROWS


def momentum_schedule(n_layers, dtype):
    """K-Deep Simplex momentum ``k / (k + 3)`` for layers ``k = 0..K-1``."""
    k = np.arange(n_layers, dtype=np.float64)
    return (k / (k + 3.0)).astype(dtype)
