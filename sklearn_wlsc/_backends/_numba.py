"""numba kernels: simplex projection, the unrolled encoder and the exact
active-set encoder, over ranges of samples.

Kernels take arrays and write into buffers they are given. Each call works
on the rows ``start:stop`` with the GIL released, with scratch buffers
allocated once per call, not once per row; ``_threads.for_rows`` runs the
ranges of a pass on several threads (see there why the kernels are not
numba ``parallel=True`` loops). They are compiled lazily on first use and
cached on disk when the package directory (or numba's user cache) is
writable; a read-only install falls back to in-memory compilation. Each kernel trusts its inputs: C-contiguous,
finite, float32 or float64, matching shapes.
"""

import math
import warnings

import numba
import numpy as np

from .. import _objective
from ._base import Backend, momentum_schedule
from ._threads import for_rows, limit_threads

# floating-point reassociation and contraction let loops vectorize; NaN and
# infinity semantics are kept (inputs are finite, and np.inf is a sentinel)
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


# the exact encoder's rounding allowance of a computed gap, a compile-time
# constant of the kernel (see _objective.gap_noise)
GAP_NOISE = _objective.GAP_NOISE
UNIT_ROUNDING = _objective.UNIT_ROUNDING
FRAME_ROUNDING = _objective.FRAME_ROUNDING

_CACHE_WARNED = []


def _jit(**options):
    """``numba.njit`` with ``cache=True``, falling back to no caching where
    no writable cache directory exists (a read-only install)."""

    def decorate(func):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as exc:  # numba: "no locator available"
            if not _CACHE_WARNED:
                _CACHE_WARNED.append(True)
                warnings.warn(
                    f"numba cannot cache the sklearn_wlsc kernels ({exc}); they "
                    "are compiled in memory at first use in each process. Set "
                    "NUMBA_CACHE_DIR to a writable directory to cache them.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return numba.njit(cache=False, **options)(func)

    return decorate


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def simplex_threshold(v, tau, zero, one):
    """The threshold ``τ`` of the projection of ``v`` onto the simplex,
    ``Π_Δ(v) = max(v − τ, 0)``, searched from the guess ``tau`` (``inf``
    for none); return ``τ`` and the number of passes over ``v`` that
    searched for it. ``v`` is not modified.

    ``f(τ) = Σ_j max(v_j − τ, 0) − 1`` is convex, piecewise linear and
    decreasing, so a Newton step from any point with ``f < 0`` lands at or
    below the root, and Newton steps from below (Michelot's algorithm) climb
    to it monotonically, the candidate support shrinking to the true one.
    When the guess is above every entry, ``max(v) − 1``, always a lower
    bound, is the start instead. A guess from a nearby ``v`` (the
    previous layer of the unrolled encoder) saves most passes: when the
    guess is below the root and the support has not changed, two passes
    find the exact threshold, the one that checks the guess included.
    ``tau``, ``zero`` and ``one`` have ``v``'s dtype, and so do the
    accumulators, so that float32 passes run in float32.

    In floating point the climb can meet an entry within rounding of ``τ``:
    the set without it gives a ``τ`` just below it, the set with it a ``τ``
    at or above it. Exact arithmetic never lets the count grow, so a count
    that grows ends the search (before, such rows alternated between the
    two sets until the pass limit of ``m + 1``, on about 4 % of the rows of
    late layers at ``d = m = 256``).
    """
    m = v.shape[0]
    total = zero
    count = zero
    passes = 1
    for j in range(m):
        vj = v[j]
        above = vj > tau
        total += vj if above else zero
        count += one if above else zero
    previous = -one
    if count == zero:
        passes += 1
        vmax = v[0]
        for j in range(1, m):
            vmax = max(vmax, v[j])
        tau = vmax - one
    else:
        t_new = (total - one) / count
        if t_new >= tau:
            # the guess was at or below the root: its candidate set holds
            # the support, so an unchanged count next pass means exact
            previous = count
        tau = t_new
    for _ in range(m + 1):
        passes += 1
        total = zero
        count = zero
        for j in range(m):
            vj = v[j]
            above = vj > tau
            total += vj if above else zero
            count += one if above else zero
        if count == zero:  # only when max(v) − 1 rounds to max(v): |v| ≥ 2⁵³
            break
        t_new = (total - one) / count
        # an unchanged count means exact; a grown one, a rounding tie (see
        # above): either way τ is the root to rounding
        if count >= previous and previous > zero:
            tau = t_new
            break
        previous = count
        tau = t_new
    return tau, passes


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def project_from(v, tau, zero, one):
    """Project ``v`` onto the simplex in place, ``Π_Δ(v) = max(v − τ, 0)``,
    starting the search for ``τ`` at the guess ``tau`` (``inf`` for none);
    return ``τ`` and the number of passes over ``v`` that searched for it
    (see :func:`simplex_threshold`)."""
    tau, passes = simplex_threshold(v, tau, zero, one)
    for j in range(v.shape[0]):
        d = v[j] - tau
        v[j] = d if d > zero else zero
    return tau, passes


def _constants(dtype):
    """``(0, 1, inf)`` as scalars of ``dtype``, for kernels generic in it."""
    c = np.array([0.0, 1.0, np.inf], dtype=dtype)
    return c[0], c[1], c[2]


# a vector load that straddles two cache lines costs two; numba allocates
# arrays 32 bytes past a 64-byte line and numpy 16 bytes past one, so the
# unrolled encoder's work vectors and its Gram matrix start on a line
_ALIGN = 64
_PAD = _ALIGN // 4  # elements of slack, for either float dtype


@_jit(nogil=True, inline="always")
def _aligned(buf, n):
    """The ``n`` elements of ``buf`` (allocated with ``_PAD`` to spare)
    that start on an ``_ALIGN``-byte boundary."""
    skip = ((-buf.ctypes.data) % _ALIGN) // buf.itemsize
    return buf[skip : skip + n]


def aligned_empty(shape, dtype):
    """``numpy.empty`` whose data start on an ``_ALIGN``-byte boundary."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buf = np.empty(size + _PAD, dtype=dtype)
    skip = (-buf.ctypes.data % _ALIGN) // dtype.itemsize
    return buf[skip : skip + size].reshape(shape)


@_jit(nogil=True, inline="always")
def _anchor(value, zero, one):
    """The shift a projection works around: ``value`` (the largest entry,
    or the previous threshold) when it is at least one in magnitude, else
    zero. Shifting is exact for the top entries (they lie within a factor
    two of the anchor), and without it ``v − τ`` for ``|v| ≫ 1/eps`` keeps
    too few bits to sum to one (codes of zeros, or far off the simplex); a
    zero shift leaves the arithmetic of ordinary magnitudes as it was."""
    return value if abs(value) >= one else zero


@_jit(nogil=True)
def project_rows(V, out, zero, one, inf, start, stop):
    """Project the rows ``start:stop`` of ``V`` onto the simplex, into
    ``out`` (``zero``, ``one`` and ``inf`` in its dtype)."""
    for i in range(start, stop):
        out[i, :] = V[i, :]
        v = out[i]
        # the projection is shift-invariant: project v − max(v), whose top
        # entries are exact and whose support entries lie in (−1, 0], so
        # that neither the "− 1" of the threshold nor the sum to one is
        # lost to rounding, far from zero or near it (a float32 row of 256
        # entries 0.999, projected unshifted, summed to 1 − 8.5e-4)
        anchor = v.max()
        for j in range(v.shape[0]):
            v[j] -= anchor
        project_from(v, inf, zero, one)


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def _unrolled_rows(
    G_step, C, inv_L, betas, X, zero, one, inf, unit, far_rows, start, stop, shifting
):
    """Unrolled accelerated projected gradient on the rows ``start:stop``.

    For each such row ``c`` of ``C``: from ``x = z = 0``, ``len(betas)`` steps of
    ``x⁺ = Π_Δ(z + (c − zG)·inv_L)``, ``z = x⁺ + β_k (x⁺ − x)``, given
    ``G_step = G·inv_L``, the Gram matrix scaled once by the step. The
    product ``z G_step`` runs over a list of the nonzero entries of ``z``,
    which the projection makes few, four rows of ``G_step`` per sweep over
    ``v`` (a quarter of the loads and stores) and the last one to three in
    one more sweep.
    Each projection starts from the previous layer's threshold, and its
    clamp is folded into the momentum update's pass. A row whose iterate
    reaches a fixed point (typically a vertex) stops early, with the same
    result as running every layer.

    ``shifting`` (a constant of each compiled kernel, so the other branch is
    compiled away) selects the rows: ``False`` encodes rows with
    ``max |c| < 1`` and flags the others in ``far_rows`` without encoding
    them; ``True`` encodes rows far from zero, computing each layer's ``v``
    minus an anchor near its top entries (the previous threshold; ``max c``
    in the first layer) when that is at least one in magnitude, so that the
    projection keeps the bits that make the code sum to one (``v − τ`` of
    values far beyond ``1/eps`` gave codes of zeros). ``|v|`` stays within
    a few units of ``max |c|``: ``z`` is near the simplex and ``G_step``'s
    entries are at most one.

    Where the gradient vanishes exactly, as for a sample equal to an atom at
    α = 0 (its code is that atom's vertex ``e_r``, every other entry tied at
    the threshold), a layer at ``z = e_r`` returns ``e_r`` exactly, as the
    numpy reference does. Two things make it so. ``C[i]·inv_L`` and
    ``G_step[r]`` round alike, so ``c_j − 1·G_step[r, j]`` is exactly zero;
    with the step applied to each weight instead, the fused product
    ``(z_r·inv_L)·G[r, j]`` was exact and ``c_j`` was not. And when ``z``
    has a single nonzero ``z_r`` and the step at ``r`` is exactly zero,
    ``v_r`` is set to ``z_r``: ``(z_r + c_r) − z_r G_step[r, r]``, the form
    the sweep computes (and reassociation may choose), rounds ``z_r + c_r``.
    Either rounding put the threshold a few ulps off ``v_r − 1`` and left
    dust of about 1e-17 on most entries of such codes, which then stayed in
    the list of nonzeros and made every later layer sweep most rows of
    ``G_step`` (1.3× the time at ``d = m = 256``, α = 0, where 256 of
    4000 samples were atoms).
    Writes the codes into ``X``; ``zero``, ``one`` and ``inf`` have its
    dtype. ``unit`` is one in the type of the per-layer counters of equal
    and nonzero entries: ``int64`` for float64 data, but ``float32`` for
    float32 data, whose eight-lane comparisons then count in eight lanes
    instead of being widened to 64-bit integers (6–11 % faster per layer).
    """
    m = C.shape[1]
    nothing = unit - unit
    n_layers = betas.shape[0]
    z = _aligned(np.empty(m + _PAD, dtype=X.dtype), m)
    x = _aligned(np.empty(m + _PAD, dtype=X.dtype), m)
    v = _aligned(np.empty(m + _PAD, dtype=X.dtype), m)
    c = _aligned(np.empty(m + _PAD, dtype=X.dtype), m)
    # c − shift, for rows far from zero (the far kernel only)
    c_shifted = _aligned(np.empty((m + _PAD) if shifting else 0, dtype=X.dtype), m)
    cs = c_shifted if shifting else c
    support = np.empty(m, dtype=np.int64)
    for i in range(start, stop):
        c_max = -inf
        c_min = inf
        for j in range(m):
            z[j] = zero
            x[j] = zero
            c[j] = C[i, j] * inv_L
            c_max = max(c_max, c[j])
            c_min = min(c_min, c[j])
        if not shifting and max(c_max, -c_min) >= one:
            # far from zero: left to the far kernel (see _anchor); |v| stays
            # within a few units of max |c|, as z is near the simplex and
            # the entries of G_step are at most one
            far_rows[i] = 1
            continue
        if shifting:
            for j in range(m):
                c_shifted[j] = c[j]
        applied = zero  # the shift c_shifted holds
        n_support = 0
        n_stable = 0
        n_nonzero = nothing  # of z
        tau = inf
        for k in range(n_layers):
            # v is computed shifted by an anchor near its top entries (the
            # previous threshold; max(c) for the first layer, where v = c)
            # when that is far from zero: see _anchor
            shift = zero
            guess = tau
            if shifting:
                shift = _anchor(c_max if k == 0 else tau, zero, one)
                guess = tau - shift if k else inf
                if shift != applied:
                    for j in range(m):
                        c_shifted[j] = c[j] - shift
                    applied = shift
            # v = z + c − Σ_r z_r G_step[r] − shift, over the nonzero z_r,
            # four rows per sweep over v
            a = 0
            if n_support >= 4:
                r0, r1, r2, r3 = support[0], support[1], support[2], support[3]
                w0, w1 = z[r0], z[r1]
                w2, w3 = z[r2], z[r3]
                for j in range(m):
                    v[j] = (z[j] + cs[j]) - (
                        (w0 * G_step[r0, j] + w1 * G_step[r1, j])
                        + (w2 * G_step[r2, j] + w3 * G_step[r3, j])
                    )
                a = 4
            else:
                for j in range(m):
                    v[j] = z[j] + cs[j]
            while a + 4 <= n_support:
                r0, r1, r2, r3 = support[a], support[a + 1], support[a + 2], support[a + 3]
                w0, w1 = z[r0], z[r1]
                w2, w3 = z[r2], z[r3]
                for j in range(m):
                    v[j] -= (w0 * G_step[r0, j] + w1 * G_step[r1, j]) + (
                        w2 * G_step[r2, j] + w3 * G_step[r3, j]
                    )
                a += 4
            # the last one to three rows in one sweep
            rest = n_support - a
            if rest == 3:
                r0, r1, r2 = support[a], support[a + 1], support[a + 2]
                w0, w1, w2 = z[r0], z[r1], z[r2]
                for j in range(m):
                    v[j] -= (w0 * G_step[r0, j] + w1 * G_step[r1, j]) + w2 * G_step[r2, j]
            elif rest == 2:
                r0, r1 = support[a], support[a + 1]
                w0, w1 = z[r0], z[r1]
                for j in range(m):
                    v[j] -= w0 * G_step[r0, j] + w1 * G_step[r1, j]
            elif rest == 1:
                r = support[a]
                w = z[r]
                for j in range(m):
                    v[j] -= w * G_step[r, j]
            # z = z_r e_r: where the step at r is exactly zero, v_r is
            # exactly z_r (see above)
            if n_nonzero == unit:
                for a in range(n_support):
                    r = support[a]
                    if z[r] != zero and c[r] - z[r] * G_step[r, r] == zero:
                        v[r] = z[r] - shift
            # the projection's clamp max(v − τ, 0) is done in the
            # momentum update's pass
            tau_shifted, _ = simplex_threshold(v, guess, zero, one)
            tau_previous = tau
            tau = shift + tau_shifted
            beta = betas[k]
            n_same = nothing
            n_nonzero = nothing
            for j in range(m):
                dj = v[j] - tau_shifted
                xn = dj if dj > zero else zero
                n_same += unit if xn == x[j] else nothing
                zj = xn + beta * (xn - x[j])
                n_nonzero += unit if zj != zero else nothing
                z[j] = zj
                x[j] = xn
            # two layers in a row that leave x and the threshold unchanged
            # make z = x both times, so every later layer sees the same v,
            # shifted by the same anchor, and returns the same x, bit for
            # bit (the threshold is summed over the same support in the
            # same order): the remaining layers are no-ops
            if n_same == m and (tau == tau_previous or not shifting):
                n_stable += 1
                if n_stable == 2:
                    break
            else:
                n_stable = 0
            # the list of z's nonzero entries may keep a few zeros (they
            # add nothing to zG); it is rebuilt, without branches, only
            # when it misses a nonzero or holds more than four zeros, so
            # once the support settles no layer scans all of z for it
            n_listed = nothing
            for a in range(n_support):
                n_listed += unit if z[support[a]] != zero else nothing
            if n_listed != n_nonzero or n_support > n_nonzero + 4:
                n_support = 0
                for j in range(m):
                    support[n_support] = j
                    n_support += 1 if z[j] != zero else 0
        for j in range(m):
            X[i, j] = x[j]


@_jit(nogil=True, fastmath=_FASTMATH)
def unrolled_encode(G_step, C, inv_L, betas, X, zero, one, inf, unit, far_rows, start, stop):
    """:func:`_unrolled_rows` for rows of ordinary magnitude: a row with
    ``max |C_i·inv_L| >= 1`` is not encoded but flagged in ``far_rows``, for
    :func:`unrolled_encode_far`."""
    _unrolled_rows(G_step, C, inv_L, betas, X, zero, one, inf, unit, far_rows, start, stop, False)


@_jit(nogil=True, fastmath=_FASTMATH)
def unrolled_encode_far(G_step, C, inv_L, betas, X, zero, one, inf, unit, start, stop):
    """:func:`_unrolled_rows` for rows far from zero: each layer's ``v`` is
    shifted by an anchor near its top entries (see :func:`_anchor`)."""
    _unrolled_rows(G_step, C, inv_L, betas, X, zero, one, inf, unit, X[:0, 0], start, stop, True)


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def _gradient(G, c, x, sup, ns, g):
    """``g = xG − c`` for ``x`` supported on ``sup[:ns]``."""
    m = c.shape[0]
    for j in range(m):
        g[j] = -c[j]
    for a in range(ns):
        r = sup[a]
        xr = x[r]
        for j in range(m):
            g[j] += xr * G[r, j]


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def _cholesky(G, sup, ns, shift, eps, Lc, start):
    """Cholesky factor of ``G[S, S] + shift·11ᵀ`` into ``Lc``, computing rows
    ``start..ns-1`` (the rows before ``start`` are already valid).

    Returns ``ns`` on success, or the index of the first pivot below ``eps``;
    rows before it then hold the factor of the leading block.
    """
    for a in range(start, ns):
        ra = sup[a]
        for b in range(a + 1):
            s = G[ra, sup[b]] + shift
            for k in range(b):
                s -= Lc[a, k] * Lc[b, k]
            if a == b:
                if s <= eps:
                    return a
                Lc[a, a] = math.sqrt(s)
            else:
                Lc[a, b] = s / Lc[b, b]
    return ns


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def _cholesky_solve(Lc, ns, b):
    """Solve ``Lc Lcᵀ y = b`` in place for the leading ``ns`` block."""
    for a in range(ns):
        s = b[a]
        for k in range(a):
            s -= Lc[a, k] * b[k]
        b[a] = s / Lc[a, a]
    for a in range(ns - 1, -1, -1):
        s = b[a]
        for k in range(a + 1, ns):
            s -= Lc[k, a] * b[k]
        b[a] = s / Lc[a, a]


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def _best_vertex(G, c, x, sup, pos):
    """Put ``x`` (all zeros) at the vertex ``e_j`` of least objective
    ``½ G_jj − c_j``, list it as the support; returns its size, one."""
    m = c.shape[0]
    j0 = 0
    best = 0.5 * G[0, 0] - c[0]
    for j in range(1, m):
        val = 0.5 * G[j, j] - c[j]
        if val < best:
            best = val
            j0 = j
    x[j0] = 1.0
    sup[0] = j0
    pos[j0] = 0
    return 1


@_jit(nogil=True, fastmath=_FASTMATH, inline="always")
def active_set_row(
    G, c, x0, shift, eps, tol, max_iter, x, g, sup, pos, Lc, u, w, p, norms, y_norm, alpha
):
    """Minimize ``½ xᵀGx − c·x`` over the simplex with a primal active set.

    Starts from the code ``x0`` when it has any positive entry (a warm
    start), else at the best vertex. Each outer step adds the coordinate with
    the most negative gradient; the inner loop solves the equality-
    constrained problem on the support (a Newton step on
    ``G[S,S] + shift·11ᵀ``, whose value on the simplex differs from the
    objective by a constant) and drops coordinates that would turn
    negative. At a small pivot (an atom affinely dependent on the ones
    before it in the support, or nearly so) the direction through it is
    followed instead: to the boundary where it is flat to rounding, else to
    the minimum along it, after which the rest of the support is solved for
    with that atom's weight held, the two steps alternating. The Cholesky factor of
    the support is updated, not recomputed, as coordinates enter and leave.
    Stops when the Frank–Wolfe gap less its rounding allowance (as
    ``_objective.certified_gap``, from the atoms' norms ``norms``, the
    sample's norm ``y_norm`` and ``alpha``) is at most ``tol``.

    Returns that certified gap and the number of inner steps. Writes the code
    into ``x`` (length m); the other arrays are scratch.
    """
    m = c.shape[0]
    for j in range(m):
        pos[j] = -1
        v = x0[j]
        x[j] = v if v > 0.0 else 0.0
    # summed in a loop of its own: in a loop that also stores, LLVM guards
    # the vectorized sum with a check that the arrays lie far enough apart
    # in memory and falls back to a scalar sum when they do not, so the
    # order of the additions, and the last bit of the warm start, would
    # depend on where the heap put the scratch arrays
    total = 0.0
    for j in range(m):
        total += x[j]
    ns = 0
    if total > 0.0:
        for j in range(m):
            if x[j] > 0.0:
                x[j] /= total
                sup[ns] = j
                pos[j] = ns
                ns += 1
        solve = True
    else:
        ns = _best_vertex(G, c, x, sup, pos)
        solve = False  # a vertex is optimal on its own support
    _gradient(G, c, x, sup, ns, g)
    factored = 0
    it = 0
    gap = np.inf
    # the atom whose weight the next step holds: after a step that stopped
    # at the minimum along the direction between nearly equal atoms, the
    # rest of the support is solved for with it held, and the two steps
    # alternate until the gap is certified
    frozen = -1
    # the atom a flat step last dropped, and how often the gap asked for
    # such an atom again: past a few times the row is going from one atom
    # of a pair to the other, whose difference is below rounding (atoms
    # about 1e-8 apart), and stops
    flat_drop = -1
    returns = 0
    while True:
        if not solve:
            nu = 0.0
            r_x = 0.0
            q_x = 0.0
            for a in range(ns):
                j = sup[a]
                nu += g[j] * x[j]
                r_x += x[j] * norms[j]
                q_x += x[j] * (norms[j] * norms[j])
            k = 0
            for j in range(1, m):
                if g[j] < g[k]:
                    k = j
            r_k = norms[k]
            noise = GAP_NOISE * (
                (1.0 + 2.0 * alpha) * (y_norm + r_x) * (r_x + r_k)
                + alpha * (q_x + r_k * r_k)
                + shift
            )
            gap = max(nu - g[k] - noise, 0.0)
            if gap <= tol or it >= max_iter:
                break
            if pos[k] < 0:
                if k == flat_drop:
                    returns += 1
                    if returns > 3:
                        break
                flat_drop = -1
                sup[ns] = k
                pos[k] = ns
                ns += 1
        solve = False
        while it < max_iter:
            it += 1
            line_stop = False
            flat = False
            pivot_atom = -1
            if frozen >= 0:
                # Newton's step on the support with the weight of `frozen`
                # held: moved to the end, the rest is factored on its own
                ns_solve = ns - 1
                a = pos[frozen]
                if a != ns_solve:
                    j = sup[ns_solve]
                    sup[a] = j
                    pos[j] = a
                    sup[ns_solve] = frozen
                    pos[frozen] = ns_solve
                    if a < factored:
                        factored = a
                frozen = -1
                r = _cholesky(G, sup, ns_solve, shift, eps, Lc, factored)
                factored = r
                if r < ns_solve:
                    break  # the rest is singular too: back to the gap
                p[ns_solve] = 0.0
            else:
                ns_solve = ns
                r = _cholesky(G, sup, ns, shift, eps, Lc, factored)
                factored = r
            if r == ns_solve:
                # Newton step to the minimizer on the support (or on its
                # part that is not held)
                for a in range(ns_solve):
                    u[a] = g[sup[a]]
                    w[a] = 1.0
                _cholesky_solve(Lc, ns_solve, u)
                _cholesky_solve(Lc, ns_solve, w)
                su = 0.0
                sw = 0.0
                for a in range(ns_solve):
                    su += u[a]
                    sw += w[a]
                mu = su / sw
                for a in range(ns_solve):
                    p[a] = mu * w[a] - u[a]
                t = 1.0
            else:
                # the direction through pivot r: the combination q of the
                # atoms before it that reproduces it (exactly, for affinely
                # dependent atoms) against it, taken downhill. On the
                # simplex's plane (Σp = 0), where its curvature pᵀGp stands
                # above its rounding (the terms are as large as the atoms'
                # squared norms) and is as small as the pivot says (at most
                # eps), the atom is nearly equal to a combination of the
                # others, and they share a sample's weight at the minimum
                # along it. Elsewhere it is flat to rounding (affinely
                # dependent atoms), or the pivot's smallness is rounding
                # itself (atoms far from the frame's origin): p = (q, −1),
                # followed to the boundary
                for a in range(r):
                    p[a] = G[sup[a], sup[r]] + shift
                _cholesky_solve(Lc, r, p)
                total = 0.0
                for a in range(r):
                    total += p[a]
                p[r] = -total
                for a in range(r + 1, ns):
                    p[a] = 0.0
                curvature = 0.0
                size = 0.0
                for a in range(r + 1):
                    row = 0.0
                    row_size = 0.0
                    for b in range(r + 1):
                        row += G[sup[a], sup[b]] * p[b]
                        row_size += abs(G[sup[a], sup[b]] * p[b])
                    curvature += p[a] * row
                    size += abs(p[a]) * row_size
                trusted = UNIT_ROUNDING * size < curvature <= eps
                if not trusted:
                    p[r] = -1.0
                slope = 0.0
                for a in range(r + 1):
                    slope += g[sup[a]] * p[a]
                if slope > 0.0:
                    slope = -slope
                    for a in range(r + 1):
                        p[a] = -p[a]
                if trusted:
                    t = -slope / curvature
                    line_stop = True
                    pivot_atom = sup[r]
                else:
                    t = np.inf
                    flat = True
            blocking = -1
            for a in range(ns):
                if p[a] < 0.0:
                    ta = x[sup[a]] / (-p[a])
                    if ta < t:
                        t = ta
                        blocking = a
            if blocking < 0 and r != ns_solve and not t < np.inf:
                break  # cannot happen on the simplex; guard against loops
            for a in range(ns):
                x[sup[a]] += t * p[a]
            if blocking >= 0:
                x[sup[blocking]] = 0.0
                if flat:
                    flat_drop = sup[blocking]
            kept = 0
            for a in range(ns):
                j = sup[a]
                # a coordinate the step left alone stays, at zero too: the
                # one that just entered, when a singular support's step
                # moved only the atoms before it
                if x[j] > 0.0 or (p[a] == 0.0 and a != blocking):
                    sup[kept] = j
                    pos[j] = kept
                    kept += 1
                else:
                    x[j] = 0.0
                    pos[j] = -1
                    if a < factored:
                        factored = a
            ns = kept
            total = 0.0
            for a in range(ns):
                total += x[sup[a]]
            if not total > 0.0:
                # rounding emptied the support, or left only coordinates of
                # zero weight (the linear term dwarfing the quadratic one, at
                # a huge alpha): restart from the best vertex rather than
                # divide by an empty sum
                for a in range(ns):
                    x[sup[a]] = 0.0
                    pos[sup[a]] = -1
                ns = _best_vertex(G, c, x, sup, pos)
                factored = 0
                _gradient(G, c, x, sup, ns, g)
                break
            # back onto the simplex: steps along directions summing to zero
            # keep Σx = 1 only to rounding, and on ill-conditioned supports
            # the drift grew step by step into the gap (false iteration-cap
            # warnings on codes that were optimal)
            for a in range(ns):
                x[sup[a]] /= total
            _gradient(G, c, x, sup, ns, g)
            if line_stop and blocking < 0 and pos[pivot_atom] >= 0:
                # stopped between nearly equal atoms: the rest of the
                # support next, with this atom's weight held
                frozen = pivot_atom
            elif blocking < 0:
                break
    total = 0.0
    for a in range(ns):
        total += x[sup[a]]
    for a in range(ns):
        x[sup[a]] /= total
    return gap, it


@_jit(nogil=True, fastmath=_FASTMATH)
def exact_encode(
    G, cross, y_norms, alpha, shift, X0, tol, max_iter, X, gaps, n_iter, flags, start, stop
):
    """Exact encoder for the rows ``start:stop`` of ``cross = Y Aᵀ``, warm-started from
    the rows of ``X0`` (rows of zeros start cold; an ``X0`` with no rows
    starts every row cold).

    Each row's linear term ``c = (1 + 2α) y Aᵀ − α diag(G)`` and gap scale
    ``(½ + α) min_j ‖y − a_j‖²`` (floored as in ``_objective.gap_scale``;
    ``y_norms`` holds ``‖y_i‖²``) are built in scratch space, so the pass
    needs none of the ``n × m`` temporaries of ``encoder_terms`` and
    ``gap_scale``; the active set, on support systems shifted by ``shift``
    (``_objective.robust_shift``), then runs to a certified gap of ``tol``
    times that scale. Writes codes, relative gaps and step counts."""
    m = cross.shape[1]
    cold = X0.shape[0] == 0
    norms = np.empty(m)
    for j in range(m):
        norms[j] = math.sqrt(max(G[j, j], 0.0))
    eps = 1e-12 * 2.0 * shift
    s = 1.0 + 2.0 * alpha
    half = 0.5 + alpha
    tiny = np.finfo(np.float64).tiny
    c = np.empty(m)
    x = np.empty(m)
    g = np.empty(m)
    sup = np.empty(m, dtype=np.int64)
    pos = np.empty(m, dtype=np.int64)
    Lc = np.empty((m, m))
    u = np.empty(m)
    w = np.empty(m)
    p = np.empty(m)
    zeros = np.zeros(m)
    for i in range(start, stop):
        d_min = np.inf
        nearest = 0
        for j in range(m):
            cij = cross[i, j]
            gjj = G[j, j]
            c[j] = s * cij - alpha * gjj
            dj = (y_norms[i] + gjj) - 2.0 * cij
            if dj < d_min:
                d_min = dj
                nearest = j
        scale = max(half * d_min, tiny)
        x0 = zeros if cold else X0[i]
        y_norm = math.sqrt(y_norms[i])
        # rows this frame cannot resolve to tol (see
        # _dict_learning.refine_in_local_frames)
        r_a = norms[nearest]
        resolution = FRAME_ROUNDING * (
            s * (y_norm + r_a) * 2.0 * r_a + 2.0 * alpha * r_a * r_a + shift
        )
        flags[i] = 1 if resolution > tol * scale else 0
        gap, it = active_set_row(
            G,
            c,
            x0,
            shift,
            eps,
            tol * scale,
            max_iter,
            x,
            g,
            sup,
            pos,
            Lc,
            u,
            w,
            p,
            norms,
            y_norm,
            alpha,
        )
        gaps[i] = gap / scale
        n_iter[i] = it
        for j in range(m):
            X[i, j] = x[j]


class NumbaBackend(Backend):
    """CPU backend of jitted kernels, threaded over samples."""

    name = "numba"

    def _unrolled(self, G, C, L, n_layers):
        dtype = C.dtype
        G = np.ascontiguousarray(G)
        C = np.ascontiguousarray(C)
        X = np.empty_like(C)
        betas = momentum_schedule(n_layers, dtype)
        zero, one, inf = _constants(dtype)
        unit = one if dtype == np.float32 else np.int64(1)
        inv_L = dtype.type(1.0 / L)
        G_step = aligned_empty(G.shape, dtype)
        np.multiply(G, inv_L, out=G_step)  # in G's dtype, as the kernel rounds c·inv_L
        far_rows = np.zeros(C.shape[0], dtype=np.uint8)
        args = (G_step, C, inv_L, betas, X, zero, one, inf, unit, far_rows)
        for_rows(unrolled_encode, C.shape[0], *args)
        far = np.flatnonzero(far_rows)
        if far.size:
            # rows far from zero (a large alpha, samples far from the
            # atoms): the kernel that shifts each layer's values, compiled
            # only when such rows occur
            C_far = np.ascontiguousarray(C[far])
            X_far = np.empty_like(C_far)
            args = (G_step, C_far, inv_L, betas, X_far, zero, one, inf, unit)
            for_rows(unrolled_encode_far, far.size, *args)
            X[far] = X_far
        return X

    computes_frame_flags = True

    def _exact_from_cross(
        self, Y, A, alpha, cross, tol, max_iter, X0=None, shift=None, flags_out=None
    ):
        n, m = cross.shape
        if flags_out is None:
            flags_out = np.empty(n, dtype=np.uint8)
        G = A @ A.T
        X = np.empty((n, m))
        gaps = np.empty(n)
        n_iter = np.empty(n, dtype=np.int64)
        if X0 is None:
            X0 = np.zeros((0, m))  # every row starts cold
        else:
            X0 = np.ascontiguousarray(X0, dtype=np.float64)
        for_rows(
            exact_encode,
            n,
            G,
            np.ascontiguousarray(cross),
            np.einsum("ij,ij->i", Y, Y),
            float(alpha),
            _objective.robust_shift(np.diagonal(G)) if shift is None else float(shift),
            X0,
            float(tol),
            int(max_iter),
            X,
            gaps,
            n_iter,
            flags_out,
        )
        return X, gaps

    def project_simplex(self, V):
        V = np.ascontiguousarray(V)
        out = np.empty_like(V)
        zero, one, inf = _constants(V.dtype)
        for_rows(project_rows, V.shape[0], V, out, zero, one, inf)
        return out

    def limit_threads(self, n_jobs):
        return limit_threads(n_jobs)
