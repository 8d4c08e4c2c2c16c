import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_wlsc._backends import get_backend
from sklearn_wlsc._simplex import project_simplex

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
matrices = arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.integers(1, 20)),
    elements=finite,
)


def _on_simplex(X, atol):
    return X.min() >= 0 and np.allclose(X.sum(axis=1), 1.0, atol=atol)


@given(matrices)
def test_reference_projection_rows_on_simplex(V):
    X = project_simplex(V)
    assert _on_simplex(X, 1e-9 * max(1.0, np.abs(V).max()))


@given(matrices)
def test_reference_projection_idempotent(V):
    X = project_simplex(V)
    np.testing.assert_allclose(project_simplex(X), X, atol=1e-12)


@given(matrices, st.integers(0, 2**32 - 1))
@settings(max_examples=50)
def test_reference_projection_is_nearest_point(V, seed):
    # no point of the simplex is closer to v than its projection
    X = project_simplex(V)
    Q = np.random.default_rng(seed).dirichlet(np.ones(V.shape[1]), size=(20, V.shape[0]))
    d_proj = ((V - X) ** 2).sum(axis=1)
    d_other = ((V[None] - Q) ** 2).sum(axis=2)
    assert np.all(d_proj[None] <= d_other + 1e-9 * (1 + d_other))


def test_reference_projection_known_values():
    V = np.array([[0.5, 0.5], [2.0, 0.0], [0.2, 0.1], [0.0, 0.0]])
    expected = np.array([[0.5, 0.5], [1.0, 0.0], [0.55, 0.45], [0.5, 0.5]])
    np.testing.assert_allclose(project_simplex(V), expected, atol=1e-15)


@given(matrices)
@settings(max_examples=60, deadline=None)
def test_numba_projection_matches_reference(V):
    X = get_backend("numba").project_simplex(V)
    np.testing.assert_allclose(X, project_simplex(V), atol=1e-10 * max(1.0, np.abs(V).max()))


@given(
    arrays(np.float64, st.integers(1, 30), elements=finite),
    st.one_of(finite, st.just(np.inf), st.just(-np.inf)),
)
@settings(max_examples=200, deadline=None)
def test_numba_projection_from_any_guess(v, guess):
    # the unrolled encoder starts each projection from the previous layer's
    # threshold: guesses above the root, below it, beyond every entry or
    # infinite must all land on the same projection
    from sklearn_wlsc._backends._numba import project_from, simplex_threshold

    expected = project_simplex(v[None])[0]
    out = v.copy()
    tau, _ = project_from(out, guess, 0.0, 1.0)
    atol = 1e-10 * max(1.0, np.abs(v).max())
    np.testing.assert_allclose(out, expected, atol=atol)
    np.testing.assert_allclose(np.maximum(v - tau, 0.0), expected, atol=atol)
    # the search alone (the unrolled encoder clamps in its own pass) finds
    # the same threshold and leaves v as it was
    v_before = v.copy()
    tau_only, _ = simplex_threshold(v, guess, 0.0, 1.0)
    np.testing.assert_array_equal(v, v_before)
    np.testing.assert_allclose(np.maximum(v - tau_only, 0.0), expected, atol=atol)


def _planted_tie(rng, dtype):
    """A row whose root ``τ`` is also, to within two ulps, one of its entries.

    ``k`` entries in ``(0, 1)`` hold the support; one entry sits at their
    root ``τ`` (a tie: with or without it the root is ``τ``); the other
    entries lie below ``max(v) − 1``, outside every candidate set.
    """
    m, k = int(rng.integers(16, 65)), int(rng.integers(2, 9))
    while True:
        support = rng.uniform(0.0, 1.0, k).astype(dtype)
        tau = dtype((support.sum(dtype=dtype) - dtype(1)) / dtype(k))
        if support.min() > tau:
            break
    v = (-1.0 - rng.random(m)).astype(dtype)
    v[:k] = support
    v[k] = tau + dtype(rng.integers(-2, 3)) * np.spacing(tau)
    return rng.permutation(v), tau


@given(st.integers(0, 2**32 - 1), st.sampled_from(["inf", "below", "at", "above"]))
@settings(max_examples=200, deadline=None)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_projection_ends_at_a_rounding_tie(dtype, seed, start):
    # Michelot's climb only shrinks its candidate set, so it needs at most
    # one pass per entry above its start (here at least max(v) − 1) plus
    # three; a tie between τ and an entry once made it alternate between
    # two sets until the pass limit of m + 1 (on ~10 % of these rows)
    from sklearn_wlsc._backends._numba import project_from

    v, tau = _planted_tie(np.random.default_rng(seed), dtype)
    zero, one = dtype(0), dtype(1)
    step = dtype(1e-3)
    guess = {"inf": np.inf, "below": tau - step, "at": tau, "above": tau + step}[start]
    out = v.copy()
    tau_found, passes = project_from(out, dtype(guess), zero, one)
    assert passes <= np.count_nonzero(v > v.max() - 1) + 3
    expected = project_simplex(v[None].astype(np.float64))[0]
    atol = 10 * np.finfo(dtype).eps
    np.testing.assert_allclose(out, expected, atol=atol)
    assert abs(float(tau_found) - float(tau)) <= atol


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_backend_projection(backend, dtype, atol):
    rng = np.random.default_rng(1)
    V = (3 * rng.standard_normal((50, 17))).astype(dtype)
    X = get_backend(backend).project_simplex(V)
    assert X.dtype == dtype
    assert _on_simplex(X, atol)
    np.testing.assert_allclose(X, project_simplex(V.astype(np.float64)), atol=atol)
    # idempotent on the backend itself
    np.testing.assert_allclose(get_backend(backend).project_simplex(X), X, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(
    V=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 20)), elements=finite),
    offset=st.sampled_from([0.0, 3.0, -50.0, 1e8, -1e8, 1e17, 1e30, -1e30]),
)
@settings(max_examples=60, deadline=None)
def test_projection_stays_on_the_simplex_far_from_zero(dtype, V, offset):
    # far from zero, v − τ keeps too few bits to sum to one unless the row
    # is projected around its top entries (it once gave rows of zeros)
    W = (V + offset).astype(dtype)
    m = W.shape[1]
    tol = 4 * m * np.finfo(dtype).eps
    for name in ["numpy", "numba", "torch"]:
        if name == "torch":
            pytest.importorskip("torch")
        X = np.asarray(get_backend(name).project_simplex(W))
        assert X.dtype == dtype and X.min() >= 0, name
        np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=tol, err_msg=name)
        # the largest entry of each row keeps a positive weight
        assert np.all(X[np.arange(len(W)), W.argmax(axis=1)] > 0), name
    np.testing.assert_allclose(
        get_backend("numba").project_simplex(W), project_simplex(W), atol=tol
    )


def test_reference_projection_of_rows_far_from_zero():
    cases = [
        (np.array([[1e17, 1e17]]), [[0.5, 0.5]]),
        (np.full((1, 6), 1e12, np.float32), [[1 / 6] * 6]),
        (np.array([[1e150, -1e150, 3.0]]), [[1.0, 0.0, 0.0]]),
        (np.array([[3e8, 3e8, 1.0]], np.float32), [[0.5, 0.5, 0.0]]),
    ]
    for V, expected in cases:
        for name in ["numpy", "numba"]:
            np.testing.assert_allclose(get_backend(name).project_simplex(V), expected, rtol=1e-6)


@pytest.mark.parametrize("m", [64, 256, 1024])
def test_float32_projection_of_wide_supports_sums_to_one(m):
    # rows whose support is wide: the threshold sums many entries, which
    # float32 used to round (a row of 256 entries 0.999 summed to
    # 1 − 8.5e-4 after the numba projection); every backend now agrees with
    # the float64 projection, rounded
    rng = np.random.default_rng(m)
    V = np.vstack(
        [
            np.full((1, m), 0.999),
            0.98 + 0.01 * rng.random((20, m)),
            0.5 + 1e-3 * rng.standard_normal((20, m)),
        ]
    ).astype(np.float32)
    expected = project_simplex(V.astype(np.float64))
    for name in ["numpy", "numba", "torch"]:
        if name == "torch":
            pytest.importorskip("torch")
        X = np.asarray(get_backend(name).project_simplex(V))
        assert X.dtype == np.float32 and X.min() >= 0, name
        sums = X.astype(np.float64).sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=4 * np.sqrt(m) * 2**-24, err_msg=name)
        np.testing.assert_allclose(X, expected, atol=4 / m * 2**-23 * np.sqrt(m), err_msg=name)
