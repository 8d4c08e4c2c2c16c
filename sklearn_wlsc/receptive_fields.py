r"""2D Gabor fits of receptive fields (atoms), in the convention of Ringach (2002).

Model
-----
An atom of shape ``(height, width)`` is sampled at pixel centers ``(x, y)``,
``x`` the column index (0 … width−1, rightwards) and ``y`` the row index
(0 … height−1, downwards). The Gabor is

.. math::

    G(x, y) = A \exp\Big(-\frac{x'^2}{2\sigma_x^2} - \frac{y'^2}{2\sigma_y^2}\Big)
    \cos(2\pi f x' + \varphi),

    x' = (x - x_0)\cos\theta + (y - y_0)\sin\theta, \qquad
    y' = -(x - x_0)\sin\theta + (y - y_0)\cos\theta.

``x'`` runs *across* the bars (along the carrier's wave vector, which points
at angle ``θ`` from the ``x`` axis towards ``y``) and ``y'`` *along* them, so
``θ = 0`` means vertical bars. ``f`` is in cycles per pixel (at most 0.5),
``σx`` and ``σy`` in pixels. Ringach's size parameters are
``nx = σx f`` (the envelope's width across the bars, in carrier periods:
about the number of subfields) and ``ny = σy f`` (its length along the
bars). ``f = 0`` is allowed: a Gaussian blob, ``nx = ny = 0`` (a broadly
tuned, low-pass unit).

Canonical form
--------------
The parametrization is redundant: ``(A, φ) ~ (−A, φ + π)`` and
``(θ, φ) ~ (θ + π, −φ)`` describe the same function. Fits are reported in
the unique form with

- ``A > 0``;
- ``θ ∈ [0, π)``;
- ``φ ∈ (−π, π]``;
- for a blob (``f = 0``) the carrier is the constant ``cos φ``, absorbed into
  ``A``: ``φ = 0`` (an ON blob) or ``φ = π`` (OFF), and ``θ`` is the
  direction of the envelope's short axis (``σx ≤ σy``).

Spatial phase is then *folded* as in Ringach (2002):
``phase_folded = arctan(|sin φ| / |cos φ|) ∈ [0, π/2]``, with 0 an
even-symmetric (cosine, bar-like) and π/2 an odd-symmetric (sine, edge-like)
profile. Folding identifies the phases of a profile, its contrast-inverted
copy (``φ + π``) and its mirror image (``−φ``). Flipping an atom's sign or
rotating it by π about the patch center changes only ``φ`` (to ``φ + π`` or
``−φ``) and, for the rotation, mirrors the center: ``θ``, ``f``, ``σx``,
``σy``, ``nx``, ``ny``, ``A`` and the folded phase are unchanged.

Identifiability
---------------
When less than about a third of a carrier period fits under the envelope
(``nx`` below about 0.2–0.3), the fit lies on a ridge of nearly equivalent
solutions: a slow carrier under a wider envelope reproduces a narrower
Gaussian (even phase), and an odd profile tends to a derivative of a
Gaussian as ``f → 0`` with ``A f`` fixed. There ``f``, ``A`` and hence the
exact ``nx`` and ``ny`` are set by noise along the ridge (from about 0.01 to
0.1–0.2 in ``nx``); they stay small, so the low-pass classification
``nx, ny < 0.5`` is robust, and so is even versus odd. A consequence worth
knowing: a single edge (one bright and one dark lobe) is best fit in this
limit and counts as a low-pass unit, as it would in Ringach's fits;
:func:`summarize_gabor_fits` therefore splits low-pass units into even-like
(blobs) and odd-like (edges).

Exclusions
----------
A fit is ``valid`` unless one of these holds (each is reported in
``GaborFit.exclusions``):

- ``"poor_fit"``: ``r2 < r2_min``, where ``r2 = 1 − SSE / Σ(a − ā)²``;
- ``"center_outside"``: ``(x0, y0)`` is not inside the patch
  (``[−0.5, width − 0.5] × [−0.5, height − 0.5]``);
- ``"envelope_outside"``: less than ``min_inside`` of the fitted Gabor's
  energy (its squared L2 norm over the whole plane, in closed form) falls on
  the patch. The patch border then cuts the envelope, and ``σx``, ``σy``
  (typically the length of a line that runs across the patch) measure the
  patch, not the unit. The default 0.7 is about what an axis-aligned
  envelope whose 1σ box touches the border on all four sides keeps
  (``erf(1)² ≈ 0.71``).
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats
from sklearn.utils import check_array, check_random_state

from ._checks import check_count, check_patch_shape, check_real

__all__ = [
    "GaborFit",
    "canonical_gabor_params",
    "compare_fits",
    "compare_to_v1",
    "fit_gabors",
    "fold_phase",
    "make_gabor",
    "plot_atoms",
    "plot_nx_ny",
    "plot_phase_histogram",
    "summarize_gabor_fits",
]

PARAM_NAMES = ("x0", "y0", "theta", "frequency", "phase", "sigma_x", "sigma_y", "amplitude")

# folded-phase bands of the bimodality statistic: "even" [0, π/8),
# "middle" [π/8, 3π/8], "odd" (3π/8, π/2]. Under uniform phase the two end
# bands hold half of the mass.
PHASE_BAND = math.pi / 8

# nx and ny below this: a broadly tuned, low-pass unit (Ringach 2002)
LOW_PASS = 0.5

# frequencies at or below this are blobs (a start at f = 0 stays there)
_BLOB_FREQUENCY = 1e-6


# -- the model ----------------------------------------------------------------


def _grid(patch_shape):
    h, w = patch_shape
    y, x = np.mgrid[0:h, 0:w]
    return x.ravel().astype(np.float64), y.ravel().astype(np.float64)


def _rotated(p, x, y):
    x0, y0, theta = p[0], p[1], p[2]
    c, s = math.cos(theta), math.sin(theta)
    dx, dy = x - x0, y - y0
    return dx * c + dy * s, -dx * s + dy * c


def _model(p, x, y):
    """Gabor values at ``(x, y)`` for parameters ``p`` (PARAM_NAMES order)."""
    xr, yr = _rotated(p, x, y)
    f, phi, sx, sy, a = p[3], p[4], p[5], p[6], p[7]
    env = np.exp(-0.5 * ((xr / sx) ** 2 + (yr / sy) ** 2))
    return a * env * np.cos(2 * math.pi * f * xr + phi)


def make_gabor(
    patch_shape,
    *,
    x0=None,
    y0=None,
    theta=0.0,
    frequency=0.1,
    phase=0.0,
    sigma_x=2.0,
    sigma_y=3.0,
    amplitude=1.0,
):
    """A 2D Gabor sampled on a patch, in the module's convention.

    Parameters
    ----------
    patch_shape : tuple of (int, int)
        ``(height, width)``.
    x0, y0 : float, default=None
        Center (column, row); ``None`` is the patch center.
    theta : float, default=0.0
        Direction of the carrier's wave vector, in radians (0: vertical bars).
    frequency : float, default=0.1
        Carrier frequency in cycles per pixel (0: a Gaussian blob).
    phase : float, default=0.0
        Carrier phase at the center (0: even, π/2: odd).
    sigma_x, sigma_y : float, default=2.0, 3.0
        Envelope standard deviations across and along the bars, in pixels.
    amplitude : float, default=1.0

    Returns
    -------
    gabor : ndarray of shape (height * width,)
        The Gabor, flattened row by row like an atom.

    Examples
    --------
    >>> from sklearn_wlsc.receptive_fields import make_gabor
    >>> make_gabor((12, 12), frequency=0.15).shape
    (144,)
    """
    h, w = check_patch_shape(patch_shape)
    x0 = (w - 1) / 2 if x0 is None else check_real(x0, "x0")
    y0 = (h - 1) / 2 if y0 is None else check_real(y0, "y0")
    theta, phase, amplitude = (
        check_real(v, name)
        for v, name in ((theta, "theta"), (phase, "phase"), (amplitude, "amplitude"))
    )
    frequency = check_real(frequency, "frequency", low=0.0)
    for v, name in ((sigma_x, "sigma_x"), (sigma_y, "sigma_y")):
        if check_real(v, name, low=0.0) == 0.0:
            raise ValueError(f"{name} must be positive, got {v!r}.")
    p = np.array([x0, y0, theta, frequency, phase, sigma_x, sigma_y, amplitude], dtype=float)
    return _model(p, *_grid(patch_shape))


def fold_phase(phase):
    """Fold spatial phases to ``[0, π/2]`` (0: even, π/2: odd symmetric).

    ``φ``, ``−φ``, ``π − φ`` and ``φ + π`` fold to the same value:
    ``arctan(|sin φ| / |cos φ|)``. Idempotent on ``[0, π/2]``.

    Parameters
    ----------
    phase : array-like
        Phases in radians.

    Returns
    -------
    folded : ndarray
        Same shape as ``phase``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_wlsc.receptive_fields import fold_phase
    >>> fold_phase([0.0, np.pi, -np.pi / 2, 3 * np.pi / 4]).round(4)
    array([0.    , 0.    , 1.5708, 0.7854])
    """
    phase = np.asarray(phase, dtype=float)
    return np.arctan2(np.abs(np.sin(phase)), np.abs(np.cos(phase)))


def _wrap(angle):
    """Angle(s) to (−π, π]."""
    return -np.remainder(-np.asarray(angle) + math.pi, 2 * math.pi) + math.pi


def canonical_gabor_params(x0, y0, theta, frequency, phase, sigma_x, sigma_y, amplitude):
    """The canonical form of Gabor parameters (see the module docstring).

    Parameters
    ----------
    x0, y0, theta, frequency, phase, sigma_x, sigma_y, amplitude : float
        Any parameters of the model (``frequency ≥ 0``, ``sigma_x``,
        ``sigma_y`` > 0).

    Returns
    -------
    params : dict
        The same function's canonical parameters (``amplitude ≥ 0``,
        ``theta ∈ [0, π)``, ``phase ∈ (−π, π]``, blobs with ``phase`` 0 or π
        and ``sigma_x ≤ sigma_y``), plus ``phase_folded``, ``nx`` and ``ny``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_wlsc.receptive_fields import canonical_gabor_params
    >>> p = canonical_gabor_params(7.5, 7.5, np.pi + 0.3, 0.1, 0.5, 2.0, 3.0, -1.0)
    >>> round(p["theta"], 4), round(p["phase"], 4), p["amplitude"]
    (0.3, 2.6416, 1.0)
    """
    theta, phase, amplitude = float(theta), float(phase), float(amplitude)
    frequency, sigma_x, sigma_y = float(frequency), abs(float(sigma_x)), abs(float(sigma_y))
    if frequency <= _BLOB_FREQUENCY:
        frequency = 0.0
        amplitude *= math.cos(phase)
        phase = 0.0
        if sigma_x > sigma_y:
            sigma_x, sigma_y = sigma_y, sigma_x
            theta += math.pi / 2
    if amplitude < 0:
        amplitude, phase = -amplitude, phase + math.pi
    theta = theta % (2 * math.pi)
    while theta >= math.pi:  # twice at most: rounding can leave 2π
        theta, phase = theta - math.pi, -phase
    phase = float(_wrap(phase))
    return {
        "x0": float(x0),
        "y0": float(y0),
        "theta": theta,
        "frequency": frequency,
        "phase": phase,
        "phase_folded": float(fold_phase(phase)),
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "nx": sigma_x * frequency,
        "ny": sigma_y * frequency,
        "amplitude": amplitude,
    }


# -- fitting ------------------------------------------------------------------


def _spectral_peaks(a, n_peaks, pad):
    """(frequency, theta) of the largest local maxima of the zero-padded power
    spectrum of image ``a``, over the half-plane (a real image's spectrum is
    symmetric)."""
    h, w = a.shape
    P = np.abs(np.fft.rfft2(a, s=(pad * h, pad * w))) ** 2
    fy = np.fft.fftfreq(pad * h)[:, None]
    fx = np.fft.rfftfreq(pad * w)[None, :]
    # local maxima over the 8-neighborhood (wrapping in y; the fx = 0 and
    # Nyquist columns compare with their only neighbor)
    neigh = [np.roll(P, (dy, 0), axis=(0, 1)) for dy in (-1, 1)]
    left = np.pad(P, ((0, 0), (1, 0)), mode="edge")[:, :-1]
    right = np.pad(P, ((0, 0), (0, 1)), mode="edge")[:, 1:]
    for col in (left, right):
        neigh += [col] + [np.roll(col, (dy, 0), axis=(0, 1)) for dy in (-1, 1)]
    is_peak = np.all([P >= q for q in neigh], axis=0)
    idx = np.flatnonzero(is_peak.ravel())
    idx = idx[np.argsort(P.ravel()[idx])[::-1][:n_peaks]]
    iy, ix = np.unravel_index(idx, P.shape)
    kx, ky = fx[0, ix], fy[iy, 0]
    return np.hypot(kx, ky), np.arctan2(ky, kx)


def _envelope_moments(a, x, y):
    """Center and covariance of the energy of atom ``a`` above its median."""
    e = a.ravel() ** 2
    e = np.maximum(e - np.median(e), 0.0)
    total = e.sum()
    if total <= 0:
        return (x.mean(), y.mean()), np.diag([x.var(), y.var()])
    cx, cy = (e @ x) / total, (e @ y) / total
    dx, dy = x - cx, y - cy
    cov = np.array([[e @ (dx * dx), e @ (dx * dy)], [e @ (dx * dy), e @ (dy * dy)]]) / total
    return (cx, cy), cov


def _linear_amplitude(p, a, x, y):
    """Best amplitude and phase for the other parameters of ``p``: the model
    is linear in (A cos φ, A sin φ). Returns a copy of ``p``."""
    xr, yr = _rotated(p, x, y)
    env = np.exp(-0.5 * ((xr / p[5]) ** 2 + (yr / p[6]) ** 2))
    arg = 2 * math.pi * p[3] * xr
    basis = np.column_stack([env * np.cos(arg), -env * np.sin(arg)])
    (c, s), *_ = np.linalg.lstsq(basis, a, rcond=None)
    q = p.copy()
    q[4], q[7] = math.atan2(s, c), math.hypot(c, s)
    return q


def _starting_points(a2d, x, y, n_starts, rng):
    """Initial parameter vectors, in this order: the largest spectral peak
    (with a moment-based envelope), a blob, the next two spectral peaks, then
    random perturbations of these; the first ``n_starts`` are used."""
    a = a2d.ravel()
    (cx, cy), cov = _envelope_moments(a2d, x, y)
    freqs, thetas = _spectral_peaks(a2d, n_peaks=3, pad=4)
    starts = []

    def envelope(theta):
        u = np.array([math.cos(theta), math.sin(theta)])
        v = np.array([-u[1], u[0]])
        # energy of a Gaussian envelope has variance sigma^2 / 2
        sx = math.sqrt(max(2 * u @ cov @ u, 0.0))
        sy = math.sqrt(max(2 * v @ cov @ v, 0.0))
        return sx, sy

    for f, theta in zip(freqs, thetas):
        sx, sy = envelope(theta)
        starts.append(np.array([cx, cy, theta, f, 0.0, sx, sy, 1.0]))
    # blob, along the principal axes of the energy; second in line, so that
    # two starts already try a grating and a blob
    _, evecs = np.linalg.eigh(cov)
    theta_blob = math.atan2(evecs[1, 0], evecs[0, 0])
    sx, sy = envelope(theta_blob)
    starts.insert(1, np.array([cx, cy, theta_blob, 0.0, 0.0, sx, sy, 1.0]))
    base = list(starts)
    while len(starts) < n_starts:
        p = base[len(starts) % len(base)].copy()
        p[0] += rng.normal(0, 1.0)
        p[1] += rng.normal(0, 1.0)
        p[2] += rng.normal(0, 0.3)
        p[3] = p[3] * math.exp(rng.normal(0, 0.3)) if p[3] > 0 else rng.uniform(0, 0.15)
        p[5] *= math.exp(rng.normal(0, 0.3))
        p[6] *= math.exp(rng.normal(0, 0.3))
        starts.append(p)
    out = []
    for p in starts[:n_starts]:
        p[3] = min(max(p[3], 0.0), 0.5)
        p[5], p[6] = max(p[5], 2 * _SIGMA_MIN), max(p[6], 2 * _SIGMA_MIN)
        out.append(_linear_amplitude(p, a, x, y))
    return out


class _Problem:
    """Residuals and Jacobian of one atom's fit; the shared intermediate
    terms are computed once per parameter vector."""

    def __init__(self, a, x, y):
        self.a, self.x, self.y = a, x, y
        self._p = None

    def _terms(self, p):
        if self._p is None or not np.array_equal(p, self._p):
            xr, yr = _rotated(p, self.x, self.y)
            env = np.exp(-0.5 * ((xr / p[5]) ** 2 + (yr / p[6]) ** 2))
            arg = 2 * math.pi * p[3] * xr + p[4]
            self._p = p.copy()
            self._t = (xr, yr, env, np.cos(arg), np.sin(arg))
        return self._t

    def residuals(self, p):
        _, _, env, cos, _ = self._terms(p)
        return p[7] * env * cos - self.a

    def jacobian(self, p):
        xr, yr, env, cos, sin = self._terms(p)
        theta, f, sx, sy, a = p[2], p[3], p[5], p[6], p[7]
        ae = a * env
        d_xr = ae * (-xr / sx**2 * cos - 2 * math.pi * f * sin)
        d_yr = ae * (-yr / sy**2 * cos)
        c, s = math.cos(theta), math.sin(theta)
        return np.column_stack(
            [
                -c * d_xr + s * d_yr,
                -s * d_xr - c * d_yr,
                yr * d_xr - xr * d_yr,
                -ae * sin * 2 * math.pi * xr,
                -ae * sin,
                ae * cos * xr**2 / sx**3,
                ae * cos * yr**2 / sy**3,
                env * cos,
            ]
        )


# The optimizer works on unconstrained variables q: p = _from_free(q) maps
# them onto f = (1 - cos u) / 4 in [0, 0.5] and sigma = 0.3 + exp(l) > 0.3,
# so MINPACK's Levenberg-Marquardt (fast, in C) needs no bounds. Position,
# orientation, phase and amplitude are free.
_SIGMA_MIN = 0.3


_LOG_SIGMA_MAX = 30.0  # exp() of more is inf; a sigma of 1e13 pixels is a plane wave


def _from_free(q):
    p = q.copy()
    p[3] = 0.25 * (1.0 - math.cos(q[3]))
    p[5] = _SIGMA_MIN + math.exp(min(q[5], _LOG_SIGMA_MAX))
    p[6] = _SIGMA_MIN + math.exp(min(q[6], _LOG_SIGMA_MAX))
    return p


def _to_free(p):
    q = np.array(p, dtype=float)
    q[3] = math.acos(1.0 - 4.0 * min(max(p[3], 0.0), 0.5))
    q[5] = math.log(max(p[5] - _SIGMA_MIN, 1e-3))
    q[6] = math.log(max(p[6] - _SIGMA_MIN, 1e-3))
    return q


def _fit_one(atom, patch_shape, n_starts, seed, max_nfev):
    """Best multi-start least-squares Gabor fit of one atom (trusts its
    inputs). Returns (raw parameters, sse)."""
    x, y = _grid(patch_shape)
    scale = np.abs(atom).max()
    if not scale > 0:
        p = np.array([(patch_shape[1] - 1) / 2, (patch_shape[0] - 1) / 2, 0, 0, 0, 1, 1, 0.0])
        return p, 0.0
    a = atom / scale
    rng = np.random.default_rng(seed)
    problem = _Problem(a, x, y)

    def residuals(q):
        return problem.residuals(_from_free(q))

    def jacobian(q):
        jac = problem.jacobian(_from_free(q))
        jac[:, 3] *= 0.25 * math.sin(q[3])
        jac[:, 5] *= math.exp(min(q[5], _LOG_SIGMA_MAX))
        jac[:, 6] *= math.exp(min(q[6], _LOG_SIGMA_MAX))
        return jac

    best_q, best_cost = None, np.inf
    for p0 in _starting_points(a.reshape(patch_shape), x, y, n_starts, rng):
        res = optimize.least_squares(
            residuals, _to_free(p0), jac=jacobian, method="lm", x_scale="jac", max_nfev=max_nfev
        )
        if res.cost < best_cost:
            best_q, best_cost = res.x, res.cost
    p = _from_free(best_q)
    p[7] *= scale
    return p, 2.0 * best_cost * scale**2


@dataclass(frozen=True)
class GaborFit:
    """Per-atom Gabor fits, canonical form (see the module docstring).

    Every array attribute has shape ``(n_atoms,)``.

    Attributes
    ----------
    x0, y0 : ndarray
        Envelope center (column, row), in pixels.
    theta : ndarray
        Orientation of the carrier's wave vector in ``[0, π)``.
    frequency : ndarray
        Carrier frequency in cycles per pixel, in ``[0, 0.5]``.
    phase : ndarray
        Canonical phase in ``(−π, π]``.
    phase_folded : ndarray
        Phase folded to ``[0, π/2]`` (0: even, π/2: odd).
    sigma_x, sigma_y : ndarray
        Envelope standard deviations across / along the bars, in pixels.
    nx, ny : ndarray
        ``sigma_x * frequency`` and ``sigma_y * frequency``.
    amplitude : ndarray
        Peak amplitude ``A ≥ 0``.
    r2 : ndarray
        Coefficient of determination ``1 − SSE / Σ(a − ā)²``.
    inside : ndarray
        Fraction of the fitted Gabor's energy that falls on the patch.
    valid : ndarray of bool
        No exclusion rule applies.
    exclusions : dict of str to ndarray of bool
        ``"poor_fit"``, ``"center_outside"``, ``"envelope_outside"``.
    models : ndarray of shape (n_atoms, height * width)
        The fitted Gabors.
    patch_shape : tuple of (int, int)
    criteria : dict
        ``r2_min`` and ``min_inside`` used for the exclusions.
    """

    x0: np.ndarray
    y0: np.ndarray
    theta: np.ndarray
    frequency: np.ndarray
    phase: np.ndarray
    phase_folded: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    amplitude: np.ndarray
    r2: np.ndarray
    inside: np.ndarray
    valid: np.ndarray
    exclusions: dict = field(repr=False)
    models: np.ndarray = field(repr=False)
    patch_shape: tuple = (0, 0)
    criteria: dict = field(default_factory=dict)

    def __len__(self):
        return self.r2.shape[0]

    def as_dict(self):
        """Per-atom columns (parameters, ``r2``, ``valid`` and one boolean
        column per exclusion reason) as a dict of arrays, ready for
        ``pandas.DataFrame``."""
        cols = {
            name: getattr(self, name)
            for name in (
                "x0",
                "y0",
                "theta",
                "frequency",
                "phase",
                "phase_folded",
                "sigma_x",
                "sigma_y",
                "nx",
                "ny",
                "amplitude",
                "r2",
                "inside",
                "valid",
            )
        }
        cols.update(self.exclusions)
        return cols

    def reasons(self, i):
        """Names of the exclusion rules that apply to atom ``i``."""
        return [name for name, flags in self.exclusions.items() if flags[i]]


def _energy_inside(params, models):
    r"""Fraction of each fitted Gabor's energy that falls on the patch: the
    sum of squares of the sampled model over the closed-form integral

    .. math::

        \int G^2 = A^2 \frac{\pi \sigma_x \sigma_y}{2}
        \big(1 + \cos 2\varphi \, e^{-(2\pi f \sigma_x)^2}\big).
    """
    a, sx, sy = params["amplitude"], params["sigma_x"], params["sigma_y"]
    damp = np.exp(-((2 * np.pi * params["frequency"] * sx) ** 2))
    total = a**2 * np.pi * sx * sy / 2 * (1 + np.cos(2 * params["phase"]) * damp)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (models**2).sum(axis=1) / total, 0.0)


def _exclusions(params, r2, inside, patch_shape, r2_min, min_inside):
    h, w = patch_shape
    x0, y0 = params["x0"], params["y0"]
    return {
        "poor_fit": ~(r2 >= r2_min),
        "center_outside": ~((x0 >= -0.5) & (x0 <= w - 0.5) & (y0 >= -0.5) & (y0 <= h - 0.5)),
        "envelope_outside": ~(inside >= min_inside),
    }


def fit_gabors(
    atoms,
    patch_shape,
    *,
    n_starts=8,
    r2_min=0.8,
    min_inside=0.7,
    max_nfev=200,
    random_state=None,
    n_jobs=None,
):
    """Fit a 2D Gabor to each atom by multi-start nonlinear least squares.

    Each atom is fit with :func:`scipy.optimize.least_squares`
    (Levenberg–Marquardt, analytic Jacobian) from the first ``n_starts`` of
    these starting points: the largest peak of the atom's zero-padded power
    spectrum (frequency and orientation) with an envelope from the second
    moments of the atom's energy, a blob (``f = 0``), the next two spectral
    peaks, then random perturbations of these. Amplitude and phase of each start are solved linearly. The
    optimizer works on ``f = (1 − cos u) / 4`` and ``σ = 0.3 + exp(l)``, so
    ``0 ≤ f ≤ 0.5`` (blobs are fit, not dropped) and ``σ > 0.3`` pixel hold
    without bounds. The fit with the smallest squared error is kept and put
    in canonical form.

    Parameters
    ----------
    atoms : array-like of shape (n_atoms, height * width)
        Atoms (receptive fields), flattened row by row.
    patch_shape : tuple of (int, int)
        ``(height, width)``.
    n_starts : int, default=8
        Number of starting points per atom (at least 1).
    r2_min : float, default=0.8
        Fits with a lower ``r2`` are excluded as ``"poor_fit"``.
    min_inside : float, default=0.7
        Fits with less than this fraction of their energy on the patch are
        excluded as ``"envelope_outside"``.
    max_nfev : int, default=200
        Function evaluations per start, at least 1 (the fits usually
        converge in 10–30).
    random_state : int, RandomState instance or None, default=None
        Seeds the random starting points.
    n_jobs : int, default=None
        Atoms fit in parallel with joblib (``None``: 1, ``-1``: all cores).

    Returns
    -------
    fit : GaborFit
        Canonical parameters, ``r2``, ``valid`` and the exclusion reasons of
        every atom.

    Examples
    --------
    >>> from sklearn_wlsc.receptive_fields import fit_gabors, make_gabor
    >>> atom = make_gabor((16, 16), theta=0.5, frequency=0.15, phase=1.2)
    >>> fit = fit_gabors(atom[None], (16, 16), random_state=0)
    >>> round(float(fit.frequency[0]), 3), round(float(fit.phase[0]), 3), bool(fit.valid[0])
    (0.15, 1.2, True)
    """
    atoms = np.asarray(atoms)
    if atoms.ndim == 1:
        atoms = atoms[None]
    # real, finite, at least one atom, or a ValueError that says which
    atoms = check_array(atoms, dtype=np.float64, input_name="atoms", allow_nd=True)
    h, w = check_patch_shape(patch_shape)
    if atoms.ndim != 2 or atoms.shape[1] != h * w:
        raise ValueError(
            f"atoms must have shape (n_atoms, {h * w}) for patch_shape {(h, w)}, got {atoms.shape}."
        )
    n_starts = check_count(n_starts, "n_starts")
    max_nfev = check_count(max_nfev, "max_nfev")
    r2_min = check_real(r2_min, "r2_min", allow_inf=True)
    min_inside = check_real(min_inside, "min_inside", 0.0, 1.0)
    if n_jobs is not None:
        n_jobs = check_count(n_jobs, "n_jobs", minimum=-(2**63))
        if n_jobs == 0:
            raise ValueError("n_jobs must be None or a nonzero integer, got 0.")
    rng = check_random_state(random_state)
    seeds = rng.randint(0, 2**31 - 1, size=atoms.shape[0])
    args = [(atom, (h, w), int(n_starts), int(s), int(max_nfev)) for atom, s in zip(atoms, seeds)]
    if n_jobs is None or n_jobs == 1 or len(args) < 2:
        results = [_fit_one(*a) for a in args]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_fit_one)(*a) for a in args)

    x, y = _grid((h, w))
    rows = [canonical_gabor_params(*p) for p, _ in results]
    params = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    models = np.array([_model(p, x, y) for p, _ in results])
    sse = np.array([s for _, s in results])
    sst = ((atoms - atoms.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / sst, 0.0)
    inside = _energy_inside(params, models)
    exclusions = _exclusions(params, r2, inside, (h, w), r2_min, min_inside)
    valid = ~np.any(list(exclusions.values()), axis=0)
    return GaborFit(
        **params,
        r2=r2,
        valid=valid,
        exclusions=exclusions,
        models=models,
        patch_shape=(h, w),
        inside=inside,
        criteria={"r2_min": float(r2_min), "min_inside": float(min_inside)},
    )


# -- population statistics ----------------------------------------------------


def _population(fit, valid_only=True):
    """(nx, ny, phase_folded) arrays of a GaborFit or of a mapping with those
    keys (phases are folded again, which is harmless)."""
    if isinstance(fit, GaborFit):
        keep = fit.valid if valid_only else np.ones(len(fit), bool)
        nx, ny, ph = fit.nx[keep], fit.ny[keep], fit.phase_folded[keep]
    else:
        key = "phase_folded" if "phase_folded" in fit else "phase"
        if not {"nx", "ny", key} <= set(fit):
            raise ValueError("a population needs 'nx', 'ny' and 'phase' (or 'phase_folded').")
        nx = _population_array(fit["nx"], "nx", nonnegative=True)
        ny = _population_array(fit["ny"], "ny", nonnegative=True)
        ph = _population_array(fit[key], key)
    if not (nx.shape == ny.shape == ph.shape and nx.ndim == 1):
        raise ValueError("nx, ny and phase must be 1D arrays of the same length.")
    return nx, ny, fold_phase(ph)


def _population_array(values, name, nonnegative=False):
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers.") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinity; drop those cells first.")
    if nonnegative and np.any(v < 0):
        raise ValueError(f"{name} must be non-negative (periods under the envelope).")
    return v


def _phase_masses(ph):
    n = max(ph.size, 1)
    even = np.sum(ph < PHASE_BAND) / n
    odd = np.sum(ph > math.pi / 2 - PHASE_BAND) / n
    return even, odd, 1.0 - even - odd if ph.size else 0.0


def summarize_gabor_fits(fit, *, valid_only=True):
    """Population statistics of Gabor fits, as in Ringach (2002).

    Parameters
    ----------
    fit : GaborFit or mapping
        A :func:`fit_gabors` result, or a mapping with arrays ``"nx"``,
        ``"ny"`` and ``"phase"`` or ``"phase_folded"`` (for example V1 data).
    valid_only : bool, default=True
        Use only valid fits (GaborFit only).

    Returns
    -------
    summary : dict
        - ``n_atoms``, ``n_valid``, ``fraction_valid`` (fraction fit well;
          GaborFit only), ``n_blobs`` (valid fits with ``f = 0``),
          ``median_r2``;
        - ``nx_median``, ``nx_q25``, ``nx_q75``, ``ny_median``, ``ny_q25``,
          ``ny_q75`` (the IQR is ``q75 − q25``);
        - ``fraction_low_pass``: fraction with ``nx < 0.5`` and ``ny < 0.5``,
          split into ``fraction_low_pass_even`` (folded phase below π/4:
          blob-like) and ``fraction_low_pass_odd`` (edge-like: as ``f → 0``
          an odd Gabor becomes a derivative of a Gaussian, so single edges
          have small ``nx`` and ``ny`` too);
        - ``phase_even``, ``phase_odd``, ``phase_middle``: mass of the folded
          phase in ``[0, π/8)``, ``(3π/8, π/2]`` and between;
        - ``phase_bimodality``: ``phase_even + phase_odd − phase_middle``,
          in ``[−1, 1]``; 0 for uniform phases, positive when phases cluster
          at even and odd symmetry;
        - ``phase_bimodality_pvalue``: one-sided binomial test that the two
          end bands hold more than half of the mass (their share under
          uniform phases).
    """
    nx, ny, ph = _population(fit, valid_only)
    out = {}
    if isinstance(fit, GaborFit):
        out["n_atoms"] = len(fit)
        out["n_valid"] = int(fit.valid.sum())
        out["fraction_valid"] = float(fit.valid.mean()) if len(fit) else math.nan
        keep = fit.valid if valid_only else np.ones(len(fit), bool)
        out["n_blobs"] = int(np.sum(fit.frequency[keep] == 0))
        out["median_r2"] = float(np.median(fit.r2)) if len(fit) else math.nan
    n = nx.size
    out["n"] = n
    for name, v in (("nx", nx), ("ny", ny)):
        q25, med, q75 = np.percentile(v, [25, 50, 75]) if n else (math.nan,) * 3
        out[f"{name}_median"], out[f"{name}_q25"], out[f"{name}_q75"] = (
            float(med),
            float(q25),
            float(q75),
        )
    low = (nx < LOW_PASS) & (ny < LOW_PASS)
    out["fraction_low_pass"] = float(np.mean(low)) if n else math.nan
    # even-like (blobs) and odd-like (a single edge: the f -> 0 limit of an
    # odd Gabor is a derivative of a Gaussian) low-pass units
    out["fraction_low_pass_even"] = float(np.mean(low & (ph < math.pi / 4))) if n else math.nan
    out["fraction_low_pass_odd"] = float(np.mean(low & (ph >= math.pi / 4))) if n else math.nan
    even, odd, middle = _phase_masses(ph)
    out["phase_even"], out["phase_odd"], out["phase_middle"] = (
        float(even),
        float(odd),
        float(middle),
    )
    out["phase_bimodality"] = float(even + odd - middle) if n else math.nan
    k = int(np.sum((ph < PHASE_BAND) | (ph > math.pi / 2 - PHASE_BAND)))
    out["phase_bimodality_pvalue"] = (
        float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue) if n else math.nan
    )
    return out


def _energy_distance_test(a, b, n_permutations, rng):
    """Two-sample energy-distance permutation test on rows of ``a`` and ``b``."""
    z = np.vstack([a, b])
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    n = a.shape[0]

    def stat(idx):
        i, j = idx[:n], idx[n:]
        return 2 * d[np.ix_(i, j)].mean() - d[np.ix_(i, i)].mean() - d[np.ix_(j, j)].mean()

    idx = np.arange(z.shape[0])
    observed = stat(idx)
    count = sum(stat(rng.permutation(idx)) >= observed for _ in range(n_permutations))
    return float(observed), (count + 1) / (n_permutations + 1)


def _median_difference_test(a, b, n_permutations, rng):
    """Two-sided permutation test of ``median(a) − median(b)``."""
    z = np.concatenate([a, b])
    n = a.size
    observed = np.median(a) - np.median(b)
    perms = np.array([rng.permutation(z) for _ in range(n_permutations)])
    null = np.median(perms[:, :n], axis=1) - np.median(perms[:, n:], axis=1)
    count = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    return float(observed), float((count + 1) / (n_permutations + 1))


def _histogram_tv(a, b, bins):
    edges = np.linspace(0, math.pi / 2, bins + 1)
    ha = np.histogram(a, edges)[0] / max(a.size, 1)
    hb = np.histogram(b, edges)[0] / max(b.size, 1)
    return 0.5 * float(np.abs(ha - hb).sum())


def compare_fits(fit_a, fit_b, *, n_permutations=999, phase_bins=8, random_state=None):
    """Two-sample tests between two populations of receptive fields.

    Parameters
    ----------
    fit_a, fit_b : GaborFit or mapping
        :func:`fit_gabors` results (valid fits only are used) or mappings
        with arrays ``"nx"``, ``"ny"`` and ``"phase"`` / ``"phase_folded"``.
    n_permutations : int, default=999
        Permutations of the permutation tests (at least 1).
    phase_bins : int, default=8
        Bins on ``[0, π/2]`` of the phase histograms (at least 1).
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    result : dict
        - ``n_a``, ``n_b``: sample sizes;
        - ``energy_nxny``, ``energy_nxny_pvalue``: energy distance between
          the ``(nx, ny)`` samples and its permutation p-value;
        - ``ks_nx``, ``ks_nx_pvalue``, ``ks_ny``, ``ks_ny_pvalue``,
          ``ks_phase``, ``ks_phase_pvalue``: two-sample Kolmogorov–Smirnov
          tests per coordinate;
        - ``median_nx_diff``, ``median_nx_diff_pvalue`` (and ``ny``): median
          of a minus median of b, two-sided permutation p-value;
        - ``phase_tv``, ``phase_tv_pvalue``: total-variation distance between
          the folded-phase histograms (0: identical, 1: disjoint) and its
          permutation p-value;
        - ``low_pass_diff``, ``low_pass_diff_pvalue``: fraction of a minus
          fraction of b with ``nx < 0.5`` and ``ny < 0.5``, two-sided Fisher
          exact test.

        p-values are NaN when a sample is empty.
    """
    n_permutations = check_count(n_permutations, "n_permutations")
    phase_bins = check_count(phase_bins, "phase_bins")
    rng = check_random_state(random_state)
    nx_a, ny_a, ph_a = _population(fit_a)
    nx_b, ny_b, ph_b = _population(fit_b)
    out = {"n_a": int(nx_a.size), "n_b": int(nx_b.size)}
    if nx_a.size == 0 or nx_b.size == 0:
        keys = ["energy_nxny", "ks_nx", "ks_ny", "ks_phase", "median_nx_diff"]
        keys += ["median_ny_diff", "phase_tv", "low_pass_diff"]
        for k in keys:
            out[k] = out[f"{k}_pvalue"] = math.nan
        return out
    e, p = _energy_distance_test(
        np.column_stack([nx_a, ny_a]), np.column_stack([nx_b, ny_b]), n_permutations, rng
    )
    out["energy_nxny"], out["energy_nxny_pvalue"] = e, float(p)
    for name, a, b in (("nx", nx_a, nx_b), ("ny", ny_a, ny_b), ("phase", ph_a, ph_b)):
        ks = stats.ks_2samp(a, b)
        out[f"ks_{name}"], out[f"ks_{name}_pvalue"] = float(ks.statistic), float(ks.pvalue)
    for name, a, b in (("nx", nx_a, nx_b), ("ny", ny_a, ny_b)):
        d, p = _median_difference_test(a, b, n_permutations, rng)
        out[f"median_{name}_diff"], out[f"median_{name}_diff_pvalue"] = d, p
    tv = _histogram_tv(ph_a, ph_b, phase_bins)
    z = np.concatenate([ph_a, ph_b])
    n = ph_a.size
    count = 0
    for _ in range(n_permutations):
        zp = rng.permutation(z)
        count += _histogram_tv(zp[:n], zp[n:], phase_bins) >= tv - 1e-12
    out["phase_tv"], out["phase_tv_pvalue"] = tv, (count + 1) / (n_permutations + 1)
    low_a = int(np.sum((nx_a < LOW_PASS) & (ny_a < LOW_PASS)))
    low_b = int(np.sum((nx_b < LOW_PASS) & (ny_b < LOW_PASS)))
    table = [[low_a, nx_a.size - low_a], [low_b, nx_b.size - low_b]]
    out["low_pass_diff"] = low_a / nx_a.size - low_b / nx_b.size
    out["low_pass_diff_pvalue"] = float(stats.fisher_exact(table).pvalue)
    return out


def compare_to_v1(
    model, v1_nx, v1_ny, v1_phase, *, n_permutations=999, phase_bins=8, random_state=None
):
    """Compare model receptive fields with measured V1 simple cells.

    This package ships no physiological data. With Ringach's (2002)
    measurements (or any other), pass the cells' ``nx``, ``ny`` and spatial
    phase; phases are folded to ``[0, π/2]`` here, so raw or folded phases
    both work.

    Parameters
    ----------
    model : GaborFit or mapping
        :func:`fit_gabors` result (valid fits only) or a mapping with arrays
        ``"nx"``, ``"ny"`` and ``"phase"`` / ``"phase_folded"``.
    v1_nx, v1_ny, v1_phase : array-like of shape (n_cells,)
        The V1 population: finite values, ``nx`` and ``ny`` non-negative
        (drop cells with missing measurements first).
    n_permutations : int, default=999
        As in :func:`compare_fits`.
    phase_bins : int, default=8
        As in :func:`compare_fits`.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    result : dict
        :func:`compare_fits` with ``a`` the model and ``b`` V1, plus
        ``model_summary`` and ``v1_summary`` from
        :func:`summarize_gabor_fits`.
    """
    v1 = {
        "nx": _population_array(v1_nx, "v1_nx", nonnegative=True),
        "ny": _population_array(v1_ny, "v1_ny", nonnegative=True),
        "phase": _population_array(v1_phase, "v1_phase"),
    }
    out = compare_fits(
        model, v1, n_permutations=n_permutations, phase_bins=phase_bins, random_state=random_state
    )
    out["model_summary"] = summarize_gabor_fits(model)
    out["v1_summary"] = summarize_gabor_fits(v1)
    return out


# -- plots (matplotlib imported lazily) ---------------------------------------


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def plot_atoms(atoms, patch_shape, *, fit=None, n_cols=None, ax=None):
    """Show atoms as a grid, each scaled to its own symmetric gray range.

    Parameters
    ----------
    atoms : array-like of shape (n_atoms, height * width)
    patch_shape : tuple of (int, int)
    fit : GaborFit, default=None
        When given, invalid fits are framed in red.
    n_cols : int, default=None
        Columns of the grid, at least 1 (``None``: about square).
    ax : matplotlib Axes, default=None

    Returns
    -------
    ax : matplotlib Axes
    """
    h, w = check_patch_shape(patch_shape)
    atoms = np.asarray(atoms)
    if atoms.ndim == 1:
        atoms = atoms[None]
    atoms = check_array(atoms, dtype=np.float64, input_name="atoms", allow_nd=True)
    if atoms.ndim != 2 or atoms.shape[1] != h * w:
        raise ValueError(
            f"atoms must have shape (n_atoms, {h * w}) for patch_shape {(h, w)}, got {atoms.shape}."
        )
    n = atoms.shape[0]
    if fit is not None:
        if not isinstance(fit, GaborFit):
            raise TypeError(f"fit must be a GaborFit from fit_gabors, got {type(fit).__name__}.")
        if len(fit) != n:
            raise ValueError(f"fit holds {len(fit)} atoms, but atoms has {n}.")
    n_cols = int(math.ceil(math.sqrt(n))) if n_cols is None else check_count(n_cols, "n_cols")

    from matplotlib.patches import Rectangle

    n_rows = int(math.ceil(n / n_cols))
    gap = 1
    mosaic = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap), np.nan)
    for k, atom in enumerate(atoms):
        r, c = divmod(k, n_cols)
        m = np.abs(atom).max()
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = atom.reshape(
            h, w
        ) / (m if m > 0 else 1.0)
    ax = _axes(ax)
    ax.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    if fit is not None:
        for k in np.flatnonzero(~np.asarray(fit.valid)):
            r, c = divmod(k, n_cols)
            ax.add_patch(
                Rectangle(
                    (c * (w + gap) - 0.5, r * (h + gap) - 0.5),
                    w,
                    h,
                    fill=False,
                    edgecolor="red",
                    linewidth=1,
                )
            )
    ax.set_axis_off()
    return ax


def plot_nx_ny(fit, *, ax=None, label=None, v1=None, **scatter_kws):
    """Scatter of ``(nx, ny)`` of valid fits, with the low-pass corner.

    Parameters
    ----------
    fit : GaborFit or mapping
    ax : matplotlib Axes, default=None
    label : str, default=None
    v1 : mapping, default=None
        ``{"nx": ..., "ny": ...}`` of measured cells, drawn as gray crosses.
    **scatter_kws
        Passed to ``ax.scatter``.

    Returns
    -------
    ax : matplotlib Axes
    """
    nx, ny, _ = _population(fit)
    ax = _axes(ax)
    if v1 is not None:
        ax.scatter(v1["nx"], v1["ny"], marker="x", color="0.6", label="V1")
    ax.scatter(nx, ny, s=12, label=label, **scatter_kws)
    ax.axvline(LOW_PASS, color="0.8", lw=0.8)
    ax.axhline(LOW_PASS, color="0.8", lw=0.8)
    ax.set_xlabel("nx (width across bars, periods)")
    ax.set_ylabel("ny (length along bars, periods)")
    if label is not None or v1 is not None:
        ax.legend()
    return ax


def plot_phase_histogram(fit, *, bins=8, ax=None, label=None, v1_phase=None, **hist_kws):
    """Histogram of the folded phase (0: even, π/2: odd), like Figure 1A.

    Parameters
    ----------
    fit : GaborFit or mapping
    bins : int, default=8
        Bins on ``[0, π/2]`` (at least 1).
    ax : matplotlib Axes, default=None
    label : str, default=None
    v1_phase : array-like, default=None
        Phases of measured cells, drawn as a step outline.
    **hist_kws
        Passed to ``ax.hist``.

    Returns
    -------
    ax : matplotlib Axes
    """
    bins = check_count(bins, "bins")
    _, _, ph = _population(fit)
    if v1_phase is not None:
        v1_phase = fold_phase(_population_array(v1_phase, "v1_phase"))
    ax = _axes(ax)
    edges = np.linspace(0, math.pi / 2, bins + 1)
    weights = np.full(ph.size, 1.0 / max(ph.size, 1))
    ax.hist(ph, edges, weights=weights, label=label, **hist_kws)
    if v1_phase is not None:
        v = v1_phase
        ax.hist(
            v,
            edges,
            weights=np.full(v.size, 1.0 / max(v.size, 1)),
            histtype="step",
            color="k",
            label="V1",
        )
    ax.set_xticks([0, math.pi / 4, math.pi / 2], ["0 (even)", "π/4", "π/2 (odd)"])
    ax.set_xlabel("spatial phase (folded)")
    ax.set_ylabel("fraction of units")
    if label is not None or v1_phase is not None:
        ax.legend()
    return ax
