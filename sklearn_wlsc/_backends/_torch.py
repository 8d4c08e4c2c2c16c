r"""The torch backend: the encoder's primitives on tensors, for GPUs.

torch is imported lazily, on first use, so that this module imports without
it; constructing :class:`TorchBackend` without torch raises an
``ImportError`` that says how to install it.

The module-level functions work on tensors, keep their dtype and device, and
are differentiable where that makes sense. They are the single
implementation shared by the backend (which calls them under ``no_grad``)
and by :class:`sklearn_wlsc.torch.UnrolledWLSC` (which backpropagates
through them):

- :func:`project_simplex`: the sort-based projection of the numpy reference
  (differentiable);
- :func:`simplex_threshold`: the projection's threshold found without
  sorting, batched Michelot steps from a guess, as the numba kernel does;
- :func:`encoder_terms`, :func:`lipschitz_constant`, :func:`gap_scale`,
  :func:`sample_objective`: the tensor versions of ``_objective``;
- :func:`unrolled_encode`: the K-Deep Simplex network, the same operations
  in the same order as ``_numpy.unrolled_encode``;
- :func:`exact_encode`: the numba kernel's primal active set (a Newton step
  on each row's support, coordinates added and dropped one at a time),
  batched over rows: every step solves all the rows' small support systems
  at once. Rows whose support turns singular (affinely dependent atoms) fall
  back to restarted FISTA and retry. A row stops when its Frank–Wolfe gap is
  at most its tolerance.

Every function trusts its inputs: finite floating-point tensors of matching
shapes, dtypes and devices.
"""

import contextlib
import math

import numpy as np

from .._objective import UNIT_ROUNDING, robust_shift
from ._base import Backend, momentum_schedule

_MISSING_TORCH = (
    "The torch backend requires PyTorch, which is not installed; install it with "
    '`pip install "sklearn-wlsc[torch]"` (or see https://pytorch.org for GPU builds).'
)


def import_torch():
    """Import and return torch, or raise an ``ImportError`` saying how to
    install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_MISSING_TORCH) from exc
    return torch


def _numpy_dtype(dtype):
    """The numpy dtype of a torch floating dtype (float32 for bfloat16)."""
    torch = import_torch()
    known = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
    return np.dtype(known.get(dtype, np.float32))


def resolve_device(device):
    """A ``torch.device`` for ``device``, checked to be usable (None stays None).

    Raises
    ------
    ValueError
        If the device string is malformed, or names a CUDA or MPS device that
        this installation of torch cannot use.
    """
    torch = import_torch()
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"Invalid torch device {device!r}: {exc}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"The torch device {str(device)!r} was requested, but CUDA is not "
                f"available in this installation of torch ({torch.__version__}); "
                'use device="cpu" or install a CUDA build of torch.'
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"The torch device {str(device)!r} was requested, but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"The torch device {str(device)!r} was requested, but MPS is not available."
            )
    return dev


# -- tensor versions of _simplex and _objective --------------------------------


def project_simplex(V):
    """Project each row of ``V`` onto the probability simplex (sort-based).

    The same operations as :func:`sklearn_wlsc._simplex.project_simplex`:
    the threshold ``tau`` is found from the sorted row, and the active count
    is the *last* index where ``u_k - (Σ_{l≤k} u_l - 1)/k > 0``. Differentiable
    almost everywhere (through ``sort``, ``gather`` and ``clamp``).

    Parameters
    ----------
    V : Tensor of shape (n_rows, m)

    Returns
    -------
    X : Tensor of shape (n_rows, m)
        Same dtype and device as ``V``.
    """
    torch = import_torch()
    m = V.shape[1]
    # shift-invariant: shifted by its largest entry (a constant for the
    # gradient, which the shift does not change), a row far from zero keeps
    # the bits of its threshold's "− 1", as in the numpy reference
    if V.shape[0] and m:
        V = V - V.detach().amax(dim=1, keepdim=True)
    U = torch.sort(V, dim=1, descending=True).values
    cssv = torch.cumsum(U, dim=1) - 1.0
    ind = torch.arange(1, m + 1, dtype=V.dtype, device=V.device)
    cond = U - cssv / ind > 0
    # the number of active coordinates: the last index where cond holds
    rho = torch.where(cond, torch.arange(1, m + 1, device=V.device), 0).amax(dim=1, keepdim=True)
    rho = rho.clamp_(min=1)
    tau = cssv.gather(1, rho - 1) / rho.to(V.dtype)
    return torch.clamp(V - tau, min=0.0)


def simplex_threshold(V, tau=None, *, return_passes=False):
    """The thresholds ``τ`` of the projections of the rows of ``V`` onto the
    simplex, ``Π_Δ(v) = max(v − τ, 0)``, without sorting.

    The batched form of the numba kernel's search
    (``_numba.simplex_threshold``): from a guess, one Newton step on the
    convex, decreasing ``f(τ) = Σ_j max(v_j − τ, 0) − 1`` lands at or below
    the root (``max(v) − 1``, always a lower bound, replaces a guess above
    every entry), and Newton steps from below (Michelot's algorithm) climb
    to it, the candidate set shrinking to the support. A row is done when
    its count stops shrinking: an unchanged count means the exact threshold,
    a grown one a rounding tie, where ``τ`` is the root to rounding. Every
    pass is a few elementwise kernels and two row reductions, against a
    segmented sort for :func:`project_simplex`; a guess from the previous
    layer of the unrolled encoder leaves about 3.5 passes a projection (the
    slowest row of the batch sets the count, which grows slowly with the
    batch).
    Not differentiable (use :func:`project_simplex` for that).

    Parameters
    ----------
    V : Tensor of shape (n_rows, m)
    tau : Tensor of shape (n_rows, 1) or None
        The guesses; None starts at ``max(v) − 1``.
    return_passes : bool, default=False
        Also return the number of passes over ``V``.

    Returns
    -------
    tau : Tensor of shape (n_rows, 1)
        Same dtype and device as ``V``.
    passes : int
        Only with ``return_passes``.
    """
    torch = import_torch()
    m = V.shape[1]

    def newton(tau):
        above = V > tau
        count = above.sum(dim=1, keepdim=True)
        total = torch.where(above, V, 0.0).sum(dim=1, keepdim=True)
        return (total - 1.0) / count.clamp(min=1).to(V.dtype), count

    no_previous = torch.zeros((V.shape[0], 1), dtype=torch.int64, device=V.device)
    passes = 1
    if tau is None:
        tau, previous = V.amax(dim=1, keepdim=True) - 1.0, no_previous
    else:
        t_new, count = newton(tau)
        empty = count == 0
        if bool(empty.any()):
            passes += 1
            t_new = torch.where(empty, V.amax(dim=1, keepdim=True) - 1.0, t_new)
        # a guess at or below the root holds the support in its candidate
        # set, so an unchanged count in the next pass means exact
        previous = torch.where((t_new >= tau) & ~empty, count, no_previous)
        tau = t_new
    active = torch.ones_like(previous, dtype=torch.bool)
    for _ in range(m + 1):
        passes += 1
        t_new, count = newton(tau)
        done = ((count >= previous) & (previous > 0)) | (count == 0)
        # count == 0 only when max(v) − 1 rounds to max(v): |v| ≥ 2**53 in
        # float64, 2**24 in float32
        tau = torch.where(active & (count > 0), t_new, tau)
        active &= ~done
        previous = count
        if not bool(active.any()):
            break
    return (tau, passes) if return_passes else tau


def encoder_terms(Y, A, alpha):
    """``G = A Aᵀ`` and ``C = (1 + 2α) Y Aᵀ − α diag(G)``, as tensors.

    Differentiable in ``Y`` and ``A``.
    """
    G = A @ A.T
    C = (Y @ A.T) * (1.0 + 2.0 * alpha) - alpha * G.diagonal()
    return G, C


def lipschitz_constant(A):
    """``λ_max`` of the centered atoms' Gram matrix, as a Python float.

    The same quantity as :func:`sklearn_wlsc._objective.lipschitz_constant`,
    computed in ``A``'s dtype (float32 for half precision; on the CPU for MPS
    tensors); 1.0 when all atoms coincide. Not differentiated.
    """
    torch = import_torch()
    with torch.no_grad():
        A = A.detach()
        if A.device.type == "mps":
            A = A.cpu()
        if A.dtype not in (torch.float32, torch.float64):
            A = A.float()  # eigvalsh has no half-precision kernels
        if A.numel() == 0:
            return 1.0
        Ac = A - A.mean(dim=0)
        M = Ac @ Ac.T if Ac.shape[0] <= Ac.shape[1] else Ac.T @ Ac
        L = float(torch.linalg.eigvalsh(M)[-1])
    if not L > 0.0:
        return 1.0
    return L


def squared_distances(Y, A):
    """``‖y_i − a_j‖²``, clipped at zero; shape (n, m)."""
    D = (Y @ A.T) * -2.0
    D = D + (Y * Y).sum(dim=1, keepdim=True) + (A * A).sum(dim=1)
    return D.clamp(min=0.0)


def _times_power_of_two(t, exponent):
    """``t · 2**exponent``, exact (barring underflow).

    Applied in factors of at most ``2**±100``, so that each factor is
    representable in float32 as well as float64 (the exponent can reach
    ±1074 for float64 data).
    """
    while exponent:
        step = max(-100, min(100, exponent))
        t = t * math.ldexp(1.0, step)
        exponent -= step
    return t


def atoms_center(A, algorithm="exact"):
    """The center of the atoms an encoding pass works around, as
    :func:`sklearn_wlsc._dict_learning.atoms_center` computes it: the median
    for the exact encoder (the mean of the two middle values for an even
    count; ``torch.median`` would take the lower one), the mean for the
    unrolled one."""
    m = A.shape[0]
    if not m:
        return A.new_zeros(A.shape[1])
    if algorithm != "exact":
        return A.mean(dim=0)
    S = A.sort(dim=0).values
    if m % 2:
        return S[m // 2]
    return (S[m // 2 - 1] + S[m // 2]) / 2


def gap_scale(Y, A, alpha):
    """Per-sample scale of the exact encoder's gap tolerance, as in
    :func:`sklearn_wlsc._objective.gap_scale`."""
    torch = import_torch()
    D = squared_distances(Y, A)
    if D.shape[1]:
        scale = (0.5 + alpha) * D.amin(dim=1)
    else:
        scale = D.new_zeros(D.shape[0])
    return scale.clamp(min=torch.finfo(scale.dtype).tiny)


def sample_objective(Y, A, X, alpha):
    """Per-sample objective ``½‖y_i − x_i A‖² + α Σ_j x_ij ‖y_i − a_j‖²``.

    Differentiable in all of ``Y``, ``A`` and ``X``. The distances are not
    clipped, so that the gradient is the exact one.
    """
    R = Y - X @ A
    f = 0.5 * (R * R).sum(dim=1)
    if alpha != 0.0:
        D = (Y * Y).sum(dim=1, keepdim=True) - 2.0 * (Y @ A.T) + (A * A).sum(dim=1)
        f = f + alpha * (X * D).sum(dim=1)
    return f


def dictionary_statistics(X, Y):
    """``(XᵀX, Xᵀ1, XᵀY)`` as tensors."""
    return X.T @ X, X.sum(dim=0), X.T @ Y


# -- the unrolled encoder -------------------------------------------------------


def unrolled_encode(G, C, step, n_layers):
    """The unrolled encoder: ``n_layers`` accelerated projected-gradient steps.

    From ``x = z = 0``, for ``k = 0, …, K−1``:
    ``x⁺ = Π_Δ(z − (zG − c)·step)`` and ``z = x⁺ + k/(k+3) (x⁺ − x)``, with
    the operations of ``_numpy.unrolled_encode`` in the same order. The
    network is differentiable in ``G``, ``C`` and ``step``: with gradients
    on, each projection is the sort-based :func:`project_simplex`; without,
    its threshold comes from :func:`simplex_threshold` started at the
    previous layer's, as in the numba kernel, which gives the same codes to
    rounding 1.7–3.7× faster (1.9–3.1× on an H200; 1.7–3.7× on the CPU,
    the most where the rows stay in cache).

    Parameters
    ----------
    G : Tensor of shape (m, m)
        ``A Aᵀ``.
    C : Tensor of shape (n, m)
        Linear terms, see :func:`encoder_terms`.
    step : float or 0-d Tensor
        Step size, usually ``1 / L``. A float is rounded to ``C``'s dtype
        first, as the reference does.
    n_layers : int

    Returns
    -------
    X : Tensor of shape (n, m)
        Codes on the simplex, same dtype and device as ``C``.
    """
    torch = import_torch()
    np_dtype = _numpy_dtype(C.dtype)
    betas = momentum_schedule(n_layers, np_dtype).tolist()
    if not isinstance(step, torch.Tensor):
        step = float(np_dtype.type(step))
    X = torch.zeros_like(C)
    Z = X
    differentiable = torch.is_grad_enabled() and (
        G.requires_grad or C.requires_grad or getattr(step, "requires_grad", False)
    )
    tau = None
    for k in range(n_layers):
        if differentiable:
            X_new = project_simplex(Z - (Z @ G - C) * step)
            Z = X_new + betas[k] * (X_new - X)
        else:
            # C − ZG = −(ZG − C) exactly, so this is the same arithmetic
            V = torch.addmm(C, Z, G, alpha=-1.0) if k else C.clone()
            V.mul_(step).add_(Z)
            # shifted, far from zero, by an anchor near the top entries (the
            # previous threshold, or the largest entry), as the numba kernel
            # does: see _numba._anchor
            anchor = tau if tau is not None else V.amax(dim=1, keepdim=True)
            shift = torch.where(anchor.abs() >= 1.0, anchor, 0.0)
            V.sub_(shift)
            tau_shifted = simplex_threshold(V, None if tau is None else tau - shift)
            tau = tau_shifted + shift
            X_new = V.sub_(tau_shifted).clamp_(min=0.0)
            Z = torch.sub(X_new, X).mul_(betas[k]).add_(X_new)
        X = X_new
    return X


# -- the exact encoder ----------------------------------------------------------


def _fista_steps(G, C, X, Z, t, inv_L, n_steps):
    """``n_steps`` of FISTA with gradient restart (O'Donoghue & Candès 2015),
    the iteration of ``_numpy.exact_encode``, on every row; returns (X, Z, t)."""
    torch = import_torch()
    for _ in range(n_steps):
        X_new = project_simplex(Z - (Z @ G - C) * inv_L)
        restart = ((Z - X_new) * (X_new - X)).sum(dim=1) > 0
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        beta = torch.where(restart, 0.0, (t - 1.0) / t_new)
        Z = X_new + beta[:, None] * (X_new - X)
        t = torch.where(restart, 1.0, t_new)
        X = X_new
    return X, Z, t


class _GapNoise:
    """What :func:`sklearn_wlsc._objective.gap_noise` needs, as tensors: the
    samples' norms ``y_norms`` (n,), the atoms' norms (m,), ``alpha`` and
    the support systems' ``shift``."""

    def __init__(self, y_norms, atom_norms, alpha, shift):
        self.y_norms = y_norms
        self.atom_norms = atom_norms
        self.alpha = float(alpha)
        self.shift = float(shift)

    def rows(self, rows):
        """The same for the samples ``rows``."""
        return _GapNoise(self.y_norms[rows], self.atom_norms, self.alpha, self.shift)


def _gap(X, G, C, noise):
    """Certified Frank–Wolfe gaps (``∇f·x − min_j ∇f_j`` less the rounding
    allowance of ``_objective.certified_gap``; ``noise`` a
    :class:`_GapNoise` for the rows of ``X``) and the gradients."""
    from .._objective import GAP_NOISE

    g = X @ G - C
    k = g.argmin(dim=1)
    gap = (X * g).sum(dim=1) - g.gather(1, k[:, None])[:, 0]
    norms, alpha = noise.atom_norms, noise.alpha
    R = X @ norms
    Q = X @ (norms * norms)
    R_k = norms[k]
    magnitude = (1.0 + 2.0 * alpha) * (noise.y_norms + R) * (R + R_k) + alpha * (Q + R_k * R_k)
    return (gap - GAP_NOISE * (magnitude + noise.shift)).clamp(min=0.0), g


def _support_system(G, sup, valid, shift):
    """Each row's support system ``G_SS + shift·11ᵀ``, gathered into a
    ``k × k`` block padded with ``shift·I`` (shape (b, k, k)), and the mask
    of its entries between valid coordinates."""
    torch = import_torch()
    both = valid[:, :, None] & valid[:, None, :]
    M = torch.where(both, G[sup[:, :, None], sup[:, None, :]] + shift, 0.0)
    return M + torch.diag_embed(torch.where(valid, 0.0, shift).to(M.dtype)), both


def _newton_step(G, g, sup, valid, shift, eps):
    """Newton's step to the minimizer of ``½ xᵀGx − c·x`` subject to
    ``Σx = 1`` and ``x_j = 0`` off each row's support, batched, from a
    point of the affine set where the gradient is ``g`` (shape (b, m)).

    Row ``i``'s support is ``sup[i, valid[i]]`` (shape (b, k), padding
    after the valid entries). Its system is gathered into a ``k × k``
    block, padded with ``shift·I``, and factored by Cholesky on
    ``G_SS + shift·11ᵀ``, whose minimizer on the affine set is the same.
    The step is computed from the gradient, as the numba kernel computes
    it, not as the minimizer itself: repeated, it refines the point as
    iterative refinement does, which matters when ``G`` holds the large
    terms of far atoms. Returns the steps on the supports (shape (b, k),
    zero on padding) and whether each factorization was well defined
    (every pivot above ``eps``).
    """
    torch = import_torch()
    M, _ = _support_system(G, sup, valid, shift)
    Lc, info = torch.linalg.cholesky_ex(M)
    ok = (info == 0) & (Lc.diagonal(dim1=1, dim2=2).square().amin(dim=1) > eps)
    g_sup = torch.where(valid, g.gather(1, sup), 0.0)
    sol = torch.cholesky_solve(torch.stack([g_sup, valid.to(M.dtype)], dim=2), Lc)
    u, w = sol[..., 0], sol[..., 1]
    p = torch.where(valid, (u.sum(dim=1) / w.sum(dim=1))[:, None] * w - u, 0.0)
    ok &= torch.isfinite(p).all(dim=1)
    return torch.where(ok[:, None], p, 0.0), ok


def _pivoted_support_step(G, g, sup, valid, shift, eps):
    """The numba kernel's step on each row's support, batched: for the rows
    whose support system LAPACK's factorization rejected.

    ``G_SS + shift·11ᵀ`` is factored column by column, as the numba kernel
    factors it, and its pivots are tested against ``eps`` the same way.
    Without a small pivot the step is Newton's, to the minimizer on the
    support (``g`` is the gradient, shape (b, m)). At a row's first small
    pivot ``r`` (its atom affinely dependent on the ones before it, or
    nearly so) the leading block gives the combination ``q`` of the atoms
    before ``r`` that reproduces it,
    ``(G_SS + shift·11ᵀ)[:r, :r] q = (G_SS + shift)[:r, r]``, and the
    direction ``p = (q, −Σq, 0, …)`` on the simplex's plane, turned
    downhill. Where its curvature ``pᵀ G_SS p`` stands above its rounding
    and is at most ``eps`` (nearly equal atoms) it is followed to the
    minimum along it; elsewhere it is flat to rounding, or the pivot's
    smallness is rounding itself, and ``p = (q, −1, 0, …)`` is followed
    to the boundary.

    Returns
    -------
    p : Tensor of shape (b, k)
        The steps on the supports (zero on padding).
    singular : Tensor of shape (b,)
        Rows whose step is along such a direction.
    reach : Tensor of shape (b,)
        How far to follow ``p`` at most: 1 for Newton's step, the minimum
        along the direction, or infinity (to the boundary).
    pivot : Tensor of shape (b,)
        The atom at the small pivot (−1 where there is none).
    ok : Tensor of shape (b,)
        Rows with a finite step (a small first pivot gives none).
    """
    torch = import_torch()
    b, k = sup.shape
    M, both = _support_system(G, sup, valid, shift)
    Lc = torch.zeros_like(M)
    r = torch.full((b,), k, dtype=torch.long, device=M.device)
    for a in range(k):
        d = M[:, a, a] - Lc[:, a, :a].square().sum(dim=1)
        r = torch.where((r == k) & (d <= eps), a, r)
        # rows past their small pivot need nothing more: keep them finite
        root = torch.where(r <= a, 1.0, d).sqrt()
        Lc[:, a, a] = root
        if a + 1 < k:
            below = M[:, a + 1 :, a] - (Lc[:, a + 1 :, :a] @ Lc[:, a, :a, None])[..., 0]
            Lc[:, a + 1 :, a] = below / root[:, None]
    singular = r < k
    g_sup = torch.where(valid, g.gather(1, sup), 0.0)
    # Newton's step where every pivot passed
    sol = torch.cholesky_solve(torch.stack([g_sup, valid.to(M.dtype)], dim=2), Lc)
    u, w = sol[..., 0], sol[..., 1]
    newton = (u.sum(dim=1) / w.sum(dim=1))[:, None] * w - u
    # the direction through the first small pivot
    r_safe = torch.where(singular, r, 0)
    idx = torch.arange(k, device=M.device)
    lead = idx[None, :] < r_safe[:, None]
    eye = torch.eye(k, dtype=M.dtype, device=M.device).expand(b, k, k)
    L_lead = torch.where(lead[:, :, None] & lead[:, None, :], Lc, eye)
    column = M.gather(2, r_safe[:, None, None].expand(b, k, 1))[..., 0]
    flat = torch.cholesky_solve(torch.where(lead, column, 0.0)[..., None], L_lead)[..., 0]
    flat = torch.where(lead, flat, 0.0)
    at_pivot = idx[None, :] == r_safe[:, None]
    flat = torch.where(at_pivot, -flat.sum(dim=1, keepdim=True), flat)
    # on the simplex's plane (Σp = 0), where its curvature pᵀGp stands above
    # its rounding (from terms as large as the atoms' squared norms) and is
    # as small as the pivot says (at most eps), as the numba kernel decides:
    # nearly equal atoms. Elsewhere it is flat to rounding, or the pivot's
    # smallness is rounding itself: p = (q, −1), to the boundary
    G_sup = torch.where(both, G[sup[:, :, None], sup[:, None, :]], 0.0)
    curvature = (flat * (G_sup @ flat[..., None])[..., 0]).sum(dim=1)
    size = (flat.abs() * (G_sup.abs() @ flat.abs()[..., None])[..., 0]).sum(dim=1)
    trusted = (curvature > UNIT_ROUNDING * size) & (curvature <= eps)
    flat = torch.where(at_pivot & ~trusted[:, None], -1.0, flat)
    slope = (g_sup * flat).sum(dim=1)
    flat = torch.where((slope > 0)[:, None], -flat, flat)
    along = torch.where(trusted, slope.abs() / curvature, torch.inf)
    reach = torch.where(singular, along, 1.0)
    p = torch.where(valid, torch.where(singular[:, None], flat, newton), 0.0)
    ok = (r > 0) & torch.isfinite(p).all(dim=1)
    pivot = torch.where(singular, sup.gather(1, r_safe[:, None])[:, 0], -1)
    return p, singular, reach, pivot, ok


def _compact(sup, keep):
    """Move the kept entries of each row of ``sup`` first (stable); returns
    the reordered indices, the new validity mask and the counts."""
    torch = import_torch()
    perm = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    counts = keep.sum(dim=1)
    k = max(int(counts.max()), 1) if counts.numel() else 1
    sup = sup.gather(1, perm)[:, :k]
    valid = torch.arange(k, device=sup.device)[None, :] < counts[:, None]
    return sup, valid


def _active_set(G, C, X, tol, shift, eps, max_steps, noise, free_first=None):
    """A primal active set batched over rows, started from feasible ``X``:
    the numba kernel's method, one step for every row at a time.

    A row may take ``max_steps`` steps, one more where ``free_first`` (a
    bool tensor of shape (b,)) is set: the rows that start at their best
    vertex, whose first step only checks the gap and grows the support, a
    step the numba kernel does not count.

    Each step solves the equality-constrained problem on each row's support
    (:func:`_newton_step`) and moves towards its solution until a
    coordinate would turn negative, dropping it; at a support minimizer
    whose gap exceeds ``tol`` it adds the coordinate of most negative
    gradient. On a singular support (a pivot of the factorization at most
    ``eps``) it follows a downhill direction of zero curvature to the
    boundary instead (:func:`_pivoted_support_step`). Rows leave when
    certified (gap ≤ tol), when a singular support offers no such
    direction, or when a step fails to decrease the objective; those keep
    their last good point.

    Returns
    -------
    X : Tensor of shape (b, m)
    gap : Tensor of shape (b,)
    n_steps : int
    settled : Tensor of shape (b,)
        Rows stopped because they went from one atom of a pair to the other
        below rounding: no further step certifies them.
    """
    torch = import_torch()
    X = X.clone()
    gap, g = _gap(X, G, C, noise)
    f = 0.5 * ((X * g).sum(dim=1) - (X * C).sum(dim=1))
    sup, valid = _compact(torch.arange(X.shape[1], device=X.device).expand_as(X), X > 0)
    rows = torch.arange(X.shape[0], device=X.device)
    limit = torch.full((X.shape[0],), max_steps, device=X.device)
    if free_first is not None:
        limit += free_first.to(limit.dtype)
    # the bookkeeping of singular supports, per row, from the first step on
    # a singular support (``degenerate``); until then no row holds a
    # weight, drops flat or swaps, and the steps skip it (a sixth of a
    # step's small operations on ordinary data):
    # - frozen: the atom whose weight a row's next step holds (−1: none),
    #   after a step that stopped at the minimum between nearly equal
    #   atoms; the rest of its support is solved for next, and the two
    #   steps alternate, as the numba kernel does;
    # - flat_drop, returns: the atom a flat step last dropped, and how
    #   often the gap asked for such an atom again; past a few times the
    #   row is going from one atom of a pair to the other, whose difference
    #   is below rounding, and stops (as the numba kernel does)
    degenerate = False
    frozen = flat_drop = returns = None
    settled = torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)
    n_steps = 0
    while rows.numel() and n_steps < int(limit.max()):
        n_steps += 1
        x, c, tl, f_old = X[rows], C[rows], tol[rows], f[rows]
        noise_rows = noise.rows(rows)
        xs = x.gather(1, sup) * valid
        g_rows = g
        free = valid & (sup != frozen[:, None]) if degenerate else valid
        p, ok = _newton_step(G, g_rows, sup, free, shift, eps)
        singular = torch.zeros_like(ok)
        reach = torch.ones_like(f_old)
        pivot = torch.full_like(rows, -1)
        bad = ~ok
        if bool(bad.any()):
            # a support LAPACK finds singular (atoms affinely dependent, or
            # a system too ill-conditioned for its pivots): the numba
            # kernel's factorization decides, and a singular support is left
            # along a direction of zero curvature, to the boundary
            bad = torch.nonzero(bad).flatten()
            p[bad], singular[bad], reach[bad], pivot[bad], ok[bad] = _pivoted_support_step(
                G, g_rows[bad], sup[bad], valid[bad], shift, eps
            )
            if not degenerate and bool(singular.any()):
                # the first singular step: the bookkeeping starts, for the
                # rows left, at the values it would have had all along
                degenerate = True
                frozen = torch.full_like(rows, -1)
                flat_drop = torch.full_like(rows, -1)
                returns = torch.zeros_like(rows)
        ratio = torch.where(valid & (p < 0), xs / -p, torch.inf)
        t, blocking = ratio.min(dim=1)
        # the step reaches its end (Newton's minimizer, or the minimum along
        # a singular support's direction) unless a coordinate turns zero
        # first; a direction of zero curvature needs a boundary
        full = t >= reach
        t = torch.minimum(t, reach)
        ok &= torch.isfinite(t)
        t = torch.where(ok, t, 0.0)
        xs_new = xs + t[:, None] * p
        xs_new[~full, blocking[~full]] = 0.0
        xs_new = torch.where(valid, xs_new.clamp(min=0.0), 0.0)
        xs_new /= xs_new.sum(dim=1, keepdim=True)
        # padding adds zeros, so duplicate padded indices are harmless
        x_new = torch.zeros_like(x).scatter_add_(1, sup, xs_new)
        gap_new, g_new = _gap(x_new, G, c, noise_rows)
        f_new = 0.5 * ((x_new * g_new).sum(dim=1) - (x_new * c).sum(dim=1))
        ok &= torch.isfinite(f_new) & (f_new <= f_old + 0.5 * tl)
        certified = ok & (gap_new <= tl)
        X[rows] = torch.where(ok[:, None], x_new, x)
        gap[rows] = torch.where(ok, gap_new, gap[rows])
        f[rows] = torch.where(ok, f_new, f_old)
        # grow the support of rows at their support's minimizer; a row that
        # stopped at the minimum between nearly equal atoms solves for the
        # rest of its support first
        if degenerate:
            line_stop = ok & singular & full & torch.isfinite(reach)
            dropped = sup.gather(1, blocking[:, None])[:, 0]
            flat = ok & singular & ~full & torch.isinf(reach)
            flat_drop = torch.where(flat, dropped, flat_drop)
        j = g_new.argmin(dim=1)
        # a coordinate the step left alone stays, at zero too: the one that
        # just entered, when a singular support's step moved only the atoms
        # before it (as in the numba kernel)
        blocked = torch.zeros_like(valid).scatter_(1, blocking[:, None], (~full)[:, None])
        keep = valid & ((xs_new > 0) | ((p == 0) & ~blocked))
        grow = ok & full & ~certified
        if degenerate:
            grow &= ~line_stop
        # a row whose best coordinate is in its support already takes
        # Newton's step again, which refines its point (as the numba
        # kernel's loop does), for as long as that moves it
        stuck = grow & ((sup == j[:, None]) & keep).any(dim=1)
        grow &= ~stuck
        stuck &= ~(x_new != x).any(dim=1)
        if degenerate:
            returns += grow & (j == flat_drop)
            swapping = grow & (returns > 3)
            settled[rows[swapping]] = True
            stuck |= swapping
            grow &= returns <= 3
            flat_drop = torch.where(grow, -1, flat_drop)
        go_on = ok & ~certified & ~stuck & (n_steps < limit[rows])
        if not bool(go_on.any()):
            break
        sup, valid = _compact(sup[go_on], keep[go_on])
        grow, j = grow[go_on], j[go_on]
        if degenerate:
            frozen = torch.where(line_stop, pivot, -1)[go_on]
            flat_drop, returns = flat_drop[go_on], returns[go_on]
        g = torch.where(ok[:, None], g_new, g_rows)[go_on]
        counts = valid.sum(dim=1)
        if bool((grow & (counts == sup.shape[1])).any()):
            sup = torch.cat([sup, sup[:, :1]], dim=1)
            valid = torch.cat([valid, valid[:, :1] & False], dim=1)
        slot = torch.where(grow, counts, sup.shape[1] - 1)
        sup = sup.scatter(
            1, slot[:, None], torch.where(grow, j, sup.gather(1, slot[:, None])[:, 0])[:, None]
        )
        valid = valid.scatter(
            1, slot[:, None], (grow | valid.gather(1, slot[:, None])[:, 0])[:, None]
        )
        rows = rows[go_on]
    return X, gap, n_steps, settled


def exact_encode(
    G,
    C,
    tol,
    max_iter,
    X0=None,
    *,
    y_norms,
    alpha,
    shift=None,
    warm_steps=0,
    fista_steps=20,
    polish_steps=None,
):
    """Exact encoder batched over rows: codes with certified Frank–Wolfe gap
    (the gap less its rounding allowance, as
    :func:`sklearn_wlsc._objective.certified_gap`) at most ``tol``.

    The batched active set (:func:`_active_set`, at most ``polish_steps``
    steps, default ``2 m + 10``) starts from the rows of ``X0`` that have a
    positive entry (clipped at zero and normalized), else from each row's
    best vertex, as the numba kernel does (after ``warm_steps`` steps of
    restarted FISTA when positive). The rows it cannot certify (a singular
    support, met with affinely dependent atoms) run ``fista_steps`` steps of
    FISTA (doubling each round, up to 400) and try the active set again from
    FISTA's support. FISTA alone converges, so they finish too, only more
    slowly.

    Parameters
    ----------
    G : Tensor of shape (m, m)
    C : Tensor of shape (n, m)
    tol : Tensor of shape (n,)
        Absolute gap tolerance of each row.
    max_iter : int
        Cap on the total number of batched steps (FISTA and active set).
    X0 : Tensor of shape (n, m) or None
        Warm start; rows of zeros start cold.
    y_norms : Tensor of shape (n,)
        The samples' norms ``‖y_i‖`` (for the rounding allowance).
    alpha : float
    shift : float or None
        Shift of the support systems (None:
        :func:`sklearn_wlsc._objective.robust_shift` of the atoms).

    Returns
    -------
    X : Tensor of shape (n, m)
    gap : Tensor of shape (n,)
        Absolute certified Frank–Wolfe gaps.
    n_iter : int
        Batched steps taken.
    """
    torch = import_torch()
    n, m = C.shape
    if polish_steps is None:
        polish_steps = 2 * m + 10
    Gc = G - G.mean(dim=0) - G.mean(dim=1)[:, None] + G.mean()
    L = float(torch.linalg.eigvalsh(Gc.cpu() if Gc.device.type == "mps" else Gc)[-1])
    L = L if L > 0 else 1.0
    inv_L = 1.0 / L
    if shift is None:
        shift = robust_shift(G.diagonal().cpu().numpy())
    shift = float(shift)
    eps = 1e-12 * 2.0 * shift
    noise = _GapNoise(y_norms, G.diagonal().clamp(min=0.0).sqrt(), alpha, shift)
    # the best vertex, as the numba kernel starts, or the warm start
    j0 = (0.5 * G.diagonal() - C).argmin(dim=1)
    X = torch.zeros_like(C).scatter_(1, j0[:, None], 1.0)
    at_vertex = torch.ones(n, dtype=torch.bool, device=C.device)
    if X0 is not None:
        X0 = X0.to(C).clamp(min=0.0)
        total = X0.sum(dim=1, keepdim=True)
        X = torch.where(total > 0, X0 / total, X)
        at_vertex = total[:, 0] <= 0
    t = torch.ones(n, dtype=C.dtype, device=C.device)
    n_iter = 0
    if warm_steps > 0:
        n_iter = min(warm_steps, max_iter)
        X, _, _ = _fista_steps(G, C, X, X.clone(), t, inv_L, n_iter)
    Z = X.clone()
    gap = torch.full((n,), torch.inf, dtype=C.dtype, device=C.device)
    todo = torch.arange(n, device=C.device)
    k = fista_steps
    first = True
    while todo.numel() and (first or n_iter < max_iter):
        c, tl, x = C[todo], tol[todo], X[todo]
        noise_todo = noise.rows(todo)
        z, tt = Z[todo], t[todo]
        first_round = first
        if not first:
            steps = min(k, max_iter - n_iter)
            x, z, tt = _fista_steps(G, c, x, z, tt, inv_L, steps)
            n_iter += steps
            k = min(2 * k, 400)
        first = False
        gap_f, _ = _gap(x, G, c, noise_todo)
        # rows at their best vertex take their first step as the numba
        # kernel does, without counting it
        free_first = at_vertex[todo] if first_round and warm_steps <= 0 else None
        x_p, gap_p, steps, settled = _active_set(
            G,
            c,
            x,
            tl,
            shift,
            eps,
            min(polish_steps, max(max_iter - n_iter, 1)),
            noise_todo,
            free_first,
        )
        n_iter += steps
        # the active set never increases f; FISTA restarts from its point
        moved = (x_p != x).any(dim=1)
        z = torch.where(moved[:, None], x_p, z)
        tt = torch.where(moved, 1.0, tt)
        # keep the point of lower objective: a capped active set may stop at
        # a point whose gap is larger than its start's, yet lower in f; a
        # point it certified is kept whatever f's rounding says (in the
        # Gram form, with atoms far away, f is only resolved to far more
        # than the gap)
        f_f = 0.5 * (x * (x @ G)).sum(dim=1) - (x * c).sum(dim=1)
        f_p = 0.5 * (x_p * (x_p @ G)).sum(dim=1) - (x_p * c).sum(dim=1)
        use_p = (f_p <= f_f) | (gap_p <= tl)
        x = torch.where(use_p[:, None], x_p, x)
        g = torch.where(use_p, gap_p, gap_f)
        X[todo], Z[todo], t[todo], gap[todo] = x, z, tt, g
        # rows the active set settled between atoms closer than rounding
        # are as good as FISTA's rounds can make them
        todo = todo[(g > tl) & ~(settled & use_p)]
    return X, gap, n_iter


# -- the backend ----------------------------------------------------------------


class TorchBackend(Backend):
    """The encoder's primitives on torch tensors, on a chosen device.

    Parameters
    ----------
    device : str, torch.device or None, default=None
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``.
        ``None`` computes numpy inputs on the CPU and tensors on their own
        device.

    Notes
    -----
    numpy in, numpy out (:meth:`encode`); tensors in, tensors out on the
    input's device (:meth:`encode_tensor`). The unrolled encoder runs in the
    input's dtype; the exact encoder always runs in float64 (on the CPU for
    MPS, which has no float64) and casts the codes back. Rows are encoded in
    chunks of at most ``2**26 / m`` rows on a GPU and ``2**19 / m`` on the
    CPU (which keeps a chunk's arrays in cache), bounding the working
    memory.
    """

    name = "torch"

    # elements of one (rows, m) working array; bounds the rows of a chunk
    # on a GPU, and on the CPU, where chunks that stay in cache run the
    # unrolled encoder 1.1-2.9x faster than 2**26-element ones
    chunk_elements = 2**26
    cpu_chunk_elements = 2**19
    # elements of one chunk of a pass over numpy data on a GPU
    device_pass_elements = 2**24

    def __init__(self, device=None):
        import_torch()
        self.device = resolve_device(device)

    # -- conversions -------------------------------------------------------

    def _compute_device(self, tensor=None):
        if self.device is not None:
            return self.device
        if tensor is not None:
            return tensor.device
        return import_torch().device("cpu")

    @staticmethod
    def _to_tensor(array, device, dtype=None):
        torch = import_torch()
        if isinstance(array, torch.Tensor):
            return array.to(device=device, dtype=dtype)
        array = np.asarray(array)
        if not (
            array.flags.writeable and array.dtype.isnative and all(s >= 0 for s in array.strides)
        ):
            # torch cannot share read-only, byte-swapped or reversed memory
            array = np.array(array, dtype=array.dtype.newbyteorder("="))
        return torch.from_numpy(array).to(device=device, dtype=dtype)

    @staticmethod
    def _to_numpy(tensor):
        return tensor.detach().cpu().numpy()

    # -- encoders ------------------------------------------------------------

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
        """Encode numpy rows on :attr:`device`; numpy codes in ``Y``'s dtype.

        Same contract as :meth:`Backend.encode`, except that ``cross`` is not
        used (the terms are computed on the device, where ``Y`` goes anyway)
        and ``flags_out`` is left alone.
        """
        device = self._compute_device()
        Yt = self._to_tensor(Y, device)
        X0 = None
        if init_codes is not None and algorithm == "exact":
            X0 = self._to_tensor(init_codes, device)
        X, gap = self.encode_tensor(
            Yt,
            self._to_tensor(A, device, dtype=Yt.dtype),
            alpha,
            algorithm=algorithm,
            n_layers=n_layers,
            tol=tol,
            max_iter=max_iter,
            init_codes=X0,
            shift=shift,
        )
        return self._to_numpy(X), None if gap is None else self._to_numpy(gap)

    def encode_tensor(
        self,
        Y,
        A,
        alpha,
        *,
        algorithm="unrolled",
        n_layers=50,
        tol=1e-10,
        max_iter=None,
        init_codes=None,
        shift=None,
    ):
        """Encode the rows of a tensor ``Y`` on the simplex for the atoms ``A``.

        Computes on :attr:`device` (``Y``'s device when it is None).

        Parameters
        ----------
        Y : Tensor of shape (n_samples, n_features)
        A : Tensor or ndarray of shape (n_components, n_features)
        alpha : float
        algorithm : {"unrolled", "exact"}
        n_layers : int
        tol : float
            Relative duality-gap tolerance of the exact encoder.
        max_iter : int or None
            Step cap of the exact encoder (``None``: ``20 m + 100``).
        init_codes : Tensor or ndarray of shape (n_samples, n_components), \
                default=None
            Warm start of the exact encoder (rows of zeros start cold).
        shift : float, default=None
            Shift of the exact encoder's support systems (None: from the
            atoms, :func:`sklearn_wlsc._objective.robust_shift`).

        Returns
        -------
        X : Tensor of shape (n_samples, n_components)
            Codes, same dtype and device as ``Y``. Not attached to a graph.
        gap : Tensor of shape (n_samples,) or None
            Relative gaps of the exact encoder (float64, on ``Y``'s device).
        """
        torch = import_torch()
        out_device = Y.device
        device = self._compute_device(Y)
        if device.type == "mps" and Y.dtype == torch.float64 and algorithm == "unrolled":
            raise TypeError("MPS has no float64: pass float32 data to encode on the MPS device.")
        n, m = Y.shape[0], A.shape[0]
        exact = algorithm != "unrolled"
        with torch.no_grad():
            A = self._to_tensor(A, device, dtype=Y.dtype).detach()
            if exact:
                if max_iter is None:
                    max_iter = 20 * m + 100
                exact_device = torch.device("cpu") if device.type == "mps" else device
                A64 = A.to(exact_device, torch.float64)
                G64 = A64 @ A64.T
                if init_codes is not None:
                    init_codes = self._to_tensor(init_codes, exact_device, torch.float64)
            else:
                G = A @ A.T
                step = 1.0 / lipschitz_constant(A)
            X = torch.empty((n, m), dtype=Y.dtype, device=out_device)
            gap = torch.empty(n, dtype=torch.float64, device=out_device) if exact else None
            elements = self.cpu_chunk_elements if device.type == "cpu" else self.chunk_elements
            rows = max(1, elements // max(m, 1))
            for start in range(0, n, rows):
                Yc = Y[start : start + rows].detach().to(device)
                if not exact:
                    C = Yc @ A.T
                    C = C * (1.0 + 2.0 * alpha) - alpha * G.diagonal()
                    X[start : start + rows] = unrolled_encode(G, C, step, n_layers)
                    continue
                Y64 = Yc.to(exact_device, torch.float64)
                C = (Y64 @ A64.T) * (1.0 + 2.0 * alpha) - alpha * G64.diagonal()
                scale = gap_scale(Y64, A64, alpha)
                X0 = None if init_codes is None else init_codes[start : start + rows]
                y_norms = Y64.square().sum(dim=1).sqrt()
                Xc, gc, _ = exact_encode(
                    G64,
                    C,
                    tol * scale,
                    int(max_iter),
                    X0,
                    y_norms=y_norms,
                    alpha=alpha,
                    shift=shift,
                )
                X[start : start + rows] = Xc
                gap[start : start + rows] = gc / scale
        return X, gap

    def encode_tensor_pass(self, Y, A, alpha, *, _frame="all", **kwargs):
        """:meth:`encode_tensor` on rows centered at the atoms' center (see
        :func:`atoms_center`) and scaled by a power of two (exact in floating
        point), rows far from the atoms in a pass of their own, as
        ``_dict_learning.encode_pass`` does for arrays, so that tensors and
        arrays give the same codes. Returns the codes only."""
        from .._dict_learning import _scale_window
        from .._objective import power_of_two_exponent

        torch = import_torch()

        def abs_max(t):
            return float(t.abs().max()) if t.numel() else 0.0

        algorithm = kwargs.get("algorithm", "unrolled")
        with torch.no_grad():
            # the atoms are scaled in their own precision, then cast: a
            # float64 dictionary can lie beyond the float32 range of float32
            # data
            A = self._to_tensor(A, Y.device)
            Y = Y.detach()
            e_data = power_of_two_exponent(abs_max(A), abs_max(Y))
            A_c = _times_power_of_two(A, -e_data).to(Y.dtype)
            A_data = A_c
            shift = atoms_center(A_c, algorithm)
            A_c = A_c - shift
            spread = abs_max(A_c)
            bound = math.ldexp(abs_max(Y), -e_data) + abs_max(shift)
            window = _scale_window(_numpy_dtype(Y.dtype))
            if _frame == "all" and spread > 0.0 and bound > math.ldexp(spread, window):
                Z = _times_power_of_two(Y, -e_data) - shift
                far = Z.abs().amax(dim=1) > math.ldexp(spread, window)
                if bool(far.any()):
                    return self._split_tensor_pass(Y, A, alpha, far, kwargs)
            e_centered = power_of_two_exponent(spread, bound)
            if _frame == "atoms":
                e_atoms = power_of_two_exponent(spread)
                if bound < math.ldexp(1.0, np.finfo(_numpy_dtype(Y.dtype)).maxexp - 8 + e_atoms):
                    e_centered = e_atoms
            A_c = _times_power_of_two(A_c, -e_centered)
            shift = _times_power_of_two(shift, -e_centered)
            Y_c = _times_power_of_two(Y, -(e_data + e_centered)) - shift
        X, _ = self.encode_tensor(Y_c, A_c, alpha, **kwargs)
        if algorithm == "exact":
            X = self._refine_in_local_frames(Y_c, A_c, alpha, X, kwargs, Y, A_data, e_data)
        return X

    def _refine_in_local_frames(self, Y, A, alpha, X, kwargs, Y_data, A_data, e_data):
        """The tensor version of ``_dict_learning.refine_in_local_frames``:
        the rows whose codes the frame cannot resolve to ``tol`` are
        encoded again around their nearest atom, in a frame built from
        ``Y_data·2^-e_data`` and ``A_data``; returns the codes."""
        from .._dict_learning import FRAME_ROUNDING, _local_shifts

        torch = import_torch()
        tol = float(kwargs.get("tol", 1e-10))
        n, m = X.shape
        if not n or m < 2:
            return X
        with torch.no_grad():
            device = torch.device("cpu") if Y.device.type == "mps" else Y.device
            Y64 = Y.to(device, torch.float64)
            A64 = A.to(device, torch.float64)
            sq = (A64 * A64).sum(dim=1)
            y_sq = (Y64 * Y64).sum(dim=1)
            D = y_sq[:, None] + sq - 2.0 * (Y64 @ A64.T)
            d_min, nearest = D.min(dim=1)
            r_a = sq[nearest].sqrt()
            resolution = FRAME_ROUNDING * (
                (1.0 + 2.0 * alpha) * (y_sq.sqrt() + r_a) * 2.0 * r_a
                + 2.0 * alpha * r_a * r_a
                + robust_shift(sq.cpu().numpy())
            )
            rows = torch.nonzero(resolution > tol * (0.5 + alpha) * d_min.clamp(min=0.0))
            rows = rows.flatten()
            if not rows.numel():
                return X
            A_local = A_data.to(device, torch.float64)
            Y_local = _times_power_of_two(
                Y_data[rows.to(Y_data.device)].to(device, torch.float64), -e_data
            )
            on_atom = (Y_local == A_local[nearest[rows]]).all(dim=1)
            rows, Y_local = rows[~on_atom], Y_local[~on_atom]
            if not rows.numel():
                return X
            X = X.clone()
            X64 = X.to(device, torch.float64)
            for j in torch.unique(nearest[rows]).tolist():
                in_group = nearest[rows] == j
                group = rows[in_group]
                A_j = A_local - A_local[j]
                Y_j = Y_local[in_group] - A_local[j]
                sq_j = (A_j * A_j).sum(dim=1)
                shift = _local_shifts(sq_j.cpu().numpy(), X64[group].cpu().numpy())[0]
                X_j, gap_j = self.encode_tensor(
                    Y_j,
                    A_j,
                    alpha,
                    algorithm="exact",
                    tol=tol,
                    max_iter=kwargs.get("max_iter"),
                    init_codes=X64[group],
                    shift=shift,
                )
                X_j = X_j.to(device, torch.float64)
                no_worse = sample_objective(Y_j, A_j, X_j, alpha) <= sample_objective(
                    Y_j, A_j, X64[group], alpha
                )
                take = no_worse | (gap_j.to(device) <= tol)
                keep = group[take].to(X.device)
                X[keep] = X_j[take].to(X.device, X.dtype)
        return X

    def _split_tensor_pass(self, Y, A, alpha, far, kwargs):
        """The rows near the atoms and those ``far`` from them in passes of
        their own (see ``_dict_learning._split_pass``)."""
        torch = import_torch()
        X = torch.empty((Y.shape[0], A.shape[0]), dtype=Y.dtype, device=Y.device)
        init = kwargs.pop("init_codes", None)
        unrolled = kwargs.get("algorithm", "unrolled") == "unrolled"
        for rows, frame in ((~far, "near"), (far, "atoms" if unrolled else "far")):
            idx = torch.nonzero(rows).flatten()
            if not idx.numel():
                continue
            if init is None:
                sub = kwargs
            elif isinstance(init, torch.Tensor):
                sub = dict(kwargs, init_codes=init[idx.to(init.device)])
            else:
                sub = dict(kwargs, init_codes=np.asarray(init)[idx.cpu().numpy()])
            X[idx] = self.encode_tensor_pass(Y[idx], A, alpha, _frame=frame, **sub)
        return X

    def _unrolled(self, G, C, L, n_layers):
        torch = import_torch()
        device = self._compute_device()
        Ct = self._to_tensor(C, device)
        with torch.no_grad():
            X = unrolled_encode(self._to_tensor(G, device, Ct.dtype), Ct, 1.0 / L, n_layers)
        return self._to_numpy(X)

    # -- other primitives ------------------------------------------------------

    def project_simplex(self, V):
        """Project rows onto the simplex; numpy in, numpy out, tensor in,
        tensor out (on the input's device)."""
        torch = import_torch()
        with torch.no_grad():
            if isinstance(V, torch.Tensor):
                return project_simplex(V.to(self._compute_device(V))).to(V.device)
            return self._to_numpy(project_simplex(self._to_tensor(V, self._compute_device())))

    def dictionary_statistics(self, X, Y):
        """``(XᵀX, Xᵀ1, XᵀY)``; numpy in, numpy out, tensor in, tensor out."""
        torch = import_torch()
        with torch.no_grad():
            if isinstance(X, torch.Tensor):
                device = self._compute_device(X)
                stats = dictionary_statistics(X.to(device), Y.to(device=device, dtype=X.dtype))
                return tuple(s.to(X.device) for s in stats)
            device = self._compute_device()
            Xt = self._to_tensor(X, device)
            Yt = self._to_tensor(Y, device, Xt.dtype)
            return tuple(self._to_numpy(s) for s in dictionary_statistics(Xt, Yt))

    def limit_threads(self, n_jobs):
        """Context manager running torch's CPU kernels on ``n_jobs`` threads."""
        return _limit_threads(import_torch(), n_jobs)

    def pass_chunk_rows(self, n_features, n_components, algorithm="exact"):
        """Rows per chunk of a pass over numpy data: as on the CPU, except
        for the unrolled encoder on another device (a GPU), whose chunks
        hold ``2**24`` elements of the wider of their arrays (at least the
        CPU's rows). Each chunk of the 50-layer unrolled encoder costs about
        2,000 kernel launches and 200 host synchronizations almost whatever
        its size, so 8,192-row chunks left an H200 waiting on the host
        (numpy in and out ran 4.5–22× slower than the same encoder on
        tensors already on the GPU). The exact encoder keeps the CPU's
        chunks: its batched active set holds a (rows, k, k) system per row,
        some hundreds of MiB at 8,192 rows and m = 256."""
        rows = super().pass_chunk_rows(n_features, n_components, algorithm)
        if algorithm != "unrolled" or self._compute_device().type == "cpu":
            return rows
        return max(rows, self.device_pass_elements // max(n_features, n_components, 1))


@contextlib.contextmanager
def _limit_threads(torch, n_jobs):
    """``torch.set_num_threads`` within the block, restored afterwards.

    ``None`` keeps the current setting; negative values count back from the
    number of cores as in joblib.
    """
    if n_jobs is None:
        yield
        return
    import os

    n_cpu = os.cpu_count() or 1
    n = n_jobs if n_jobs > 0 else max(1, n_cpu + 1 + n_jobs)
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
