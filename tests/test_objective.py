import numpy as np
import pytest
from scipy.optimize import approx_fprime

from sklearn_wlsc import _objective
from sklearn_wlsc._dict_learning import update_dictionary

from .conftest import make_problem


def _direct_sample_objective(Y, A, X, alpha):
    """The definition, one atom at a time."""
    f = 0.5 * ((Y - X @ A) ** 2).sum(axis=1)
    for j in range(A.shape[0]):
        f += alpha * X[:, j] * ((Y - A[j]) ** 2).sum(axis=1)
    return f


def test_sample_objective_matches_definition(rng):
    Y, A = make_problem(rng)
    X = rng.dirichlet(np.ones(A.shape[0]), size=Y.shape[0])
    np.testing.assert_allclose(
        _objective.sample_objective(Y, A, X, 0.7),
        _direct_sample_objective(Y, A, X, 0.7),
        rtol=1e-12,
    )
    assert _objective.objective(Y, A, X, 0.7) == pytest.approx(
        _direct_sample_objective(Y, A, X, 0.7).mean(), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [0.0, 0.3, 2.0])
def test_gradient_matches_finite_differences(rng, alpha):
    Y, A = make_problem(rng, n=3)
    G, C = _objective.encoder_terms(Y, A, alpha)
    x0 = rng.dirichlet(np.ones(A.shape[0]), size=3)
    grad = _objective.gradient(x0, G, C)
    for i in range(3):

        def f(x, i=i):
            return _direct_sample_objective(Y[i : i + 1], A, x[None], alpha)[0]

        fd = approx_fprime(x0[i], f, 1e-7)
        # the encoder drops the constant α‖y‖² from the gradient: it does not
        # change the codes, since the projection ignores shifts along 1
        np.testing.assert_allclose(grad[i] + alpha * Y[i] @ Y[i], fd, rtol=1e-5, atol=1e-5)


def test_duality_gap_bounds_suboptimality(rng):
    Y, A = make_problem(rng, n=20)
    alpha = 0.5
    G, C = _objective.encoder_terms(Y, A, alpha)
    from sklearn_wlsc._backends._numpy import exact_encode

    scale = _objective.gap_scale(Y, A, alpha)
    y_norms = np.linalg.norm(Y, axis=1)
    X_star, gap_star = exact_encode(G, C, scale, 1e-13, 200_000, y_norms=y_norms, alpha=alpha)
    assert np.all(gap_star <= 1e-13 * scale)
    X = rng.dirichlet(np.ones(A.shape[0]), size=20)
    gap = _objective.duality_gap(X, _objective.gradient(X, G, C))
    f = _objective.sample_objective(Y, A, X, alpha)
    f_star = _objective.sample_objective(Y, A, X_star, alpha)
    assert np.all(f - f_star <= gap + 1e-10)
    assert np.all(gap >= 0)


def test_lipschitz_constant_bounds_tangent_curvature(rng):
    _, A = make_problem(rng, m=9, d=5)
    L = _objective.lipschitz_constant(A)
    m = A.shape[0]
    P = np.eye(m) - 1.0 / m
    assert L == pytest.approx(np.linalg.eigvalsh(P @ A @ A.T @ P)[-1], rel=1e-12)
    assert L <= np.linalg.eigvalsh(A @ A.T)[-1] * (1 + 1e-12)
    # invariant to translating the atoms
    assert _objective.lipschitz_constant(A + 5.0) == pytest.approx(L, rel=1e-9)


def test_lipschitz_constant_of_identical_atoms_is_positive():
    assert _objective.lipschitz_constant(np.ones((4, 3))) == 1.0


def test_gap_scale_is_positive_and_translation_invariant(rng):
    Y, A = make_problem(rng)
    s = _objective.gap_scale(Y, A, 0.5)
    assert np.all(s > 0)
    np.testing.assert_allclose(_objective.gap_scale(Y + 3.0, A + 3.0, 0.5), s, rtol=1e-9)
    assert np.all(_objective.gap_scale(np.zeros((2, 3)), np.zeros((4, 3)), 0.5) > 0)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 3.0])
def test_update_dictionary_zeroes_the_gradient_in_A(rng, alpha):
    Y, A = make_problem(rng, n=60, m=5)
    X = rng.dirichlet(0.5 * np.ones(5), size=60)
    XtX, s, XtY = _objective.dictionary_statistics(X, Y)
    A_new = update_dictionary(XtX, s, XtY, alpha, A, ridge=0.0)

    def F(a):
        return _objective.objective(Y, a.reshape(A.shape), X, alpha)

    grad = approx_fprime(A_new.ravel(), F, 1e-6)
    assert np.abs(grad).max() < 1e-4
    assert F(A_new.ravel()) <= F(A.ravel())


def test_update_dictionary_keeps_unused_atom(rng):
    Y, A = make_problem(rng, n=30, m=4)
    X = rng.dirichlet(np.ones(4), size=30)
    X[:, 2] = 0
    X /= X.sum(axis=1, keepdims=True)
    A_new = update_dictionary(*_objective.dictionary_statistics(X, Y), 0.5, A)
    assert np.all(np.isfinite(A_new))
    np.testing.assert_allclose(A_new[2], A[2], rtol=1e-9)


def _sparse_simplex_codes(rng, n, m, k):
    """Rows on the simplex with ``k`` nonzero entries each."""
    X = np.zeros((n, m))
    for i in range(n):
        X[i, rng.choice(m, size=k, replace=False)] = rng.dirichlet(np.ones(k))
    return X


@pytest.mark.parametrize("k", [1, 3, 40])  # sparse (CSR products) and dense codes
def test_sample_objective_with_sparse_codes_matches_definition(rng, k):
    Y, A = make_problem(rng, n=200, d=6, m=40)
    X = _sparse_simplex_codes(rng, Y.shape[0], A.shape[0], k)
    assert (_objective._sparse_codes(X) is None) == (k == 40)
    cross = Y @ A.T
    cross_before = cross.copy()
    expected = _direct_sample_objective(Y, A, X, 0.3)
    np.testing.assert_allclose(_objective.sample_objective(Y, A, X, 0.3), expected, rtol=1e-12)
    np.testing.assert_allclose(
        _objective.sample_objective(Y, A, X, 0.3, cross=cross), expected, rtol=1e-12
    )
    np.testing.assert_array_equal(cross, cross_before)


@pytest.mark.parametrize("k", [1, 3, 40])
def test_dictionary_statistics_with_sparse_codes(rng, k):
    Y, A = make_problem(rng, n=150, d=5, m=40)
    X = _sparse_simplex_codes(rng, Y.shape[0], A.shape[0], k)
    XtX, s, XtY = _objective.dictionary_statistics(X, Y)
    np.testing.assert_allclose(XtX, X.T @ X, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s, X.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(XtY, X.T @ Y, rtol=1e-12, atol=1e-14)
    assert isinstance(XtX, np.ndarray) and isinstance(XtY, np.ndarray)


def test_shared_cross_term_gives_the_same_terms(rng):
    Y, A = make_problem(rng)
    cross = Y @ A.T
    cross_before = cross.copy()
    G0, C0 = _objective.encoder_terms(Y, A, 0.4)
    G1, C1 = _objective.encoder_terms(Y, A, 0.4, cross)
    np.testing.assert_array_equal(G0, G1)
    np.testing.assert_array_equal(C0, C1)
    np.testing.assert_array_equal(
        _objective.gap_scale(Y, A, 0.4), _objective.gap_scale(Y, A, 0.4, cross)
    )
    np.testing.assert_array_equal(cross, cross_before)
