import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from sklearn_wlsc import _objective
from sklearn_wlsc._backends import get_backend
from sklearn_wlsc._dict_learning import (
    alternating_fit,
    encode_pass,
    init_dictionary,
    minibatch_weight,
    reseed_atoms,
    unused_atoms,
)

from .conftest import make_problem

ENCODE = {"tol": 1e-12, "max_iter": None}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@given(
    n=st.integers(3, 40),
    d=st.integers(1, 5),
    m=st.integers(1, 8),
    alpha=st.floats(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_fit_objective_non_increasing(n, d, m, alpha, seed):
    rng = np.random.default_rng(seed)
    Y, _ = make_problem(rng, n=n, d=d, m=m)
    A0 = init_dictionary(Y, m, "random", np.random.RandomState(seed))
    _, history, _, _ = alternating_fit(
        Y, A0, alpha, get_backend("numba"), max_iter=8, tol=0.0, encode_params=ENCODE
    )
    history = np.asarray(history)
    # relative to the objective, with an absolute floor at rounding level
    # for data the dictionary reproduces exactly (F = 0)
    atol = 1e-9 * abs(history[0]) + 1e-12 * np.mean(Y**2) * d
    assert np.all(np.diff(history) <= atol)


def test_fit_objective_matches_codes(rng):
    Y, _ = make_problem(rng, n=60, d=5, m=6)
    A0 = init_dictionary(Y, 6, "k-means++", np.random.RandomState(0))
    A, history, n_iter, _ = alternating_fit(
        Y, A0, 0.5, get_backend("numba"), max_iter=200, tol=1e-9, encode_params=ENCODE
    )
    X = encode_pass(Y, A, 0.5, get_backend("numba"), tol=1e-12).codes
    assert history[-1] == pytest.approx(_objective.objective(Y, A, X, 0.5), rel=1e-9)
    assert n_iter == len(history) - 1 or n_iter == len(history) - 2


def test_fit_warns_when_not_converged(rng):
    Y, _ = make_problem(rng, n=60, d=5, m=6)
    A0 = init_dictionary(Y, 6, "random", np.random.RandomState(0))
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        alternating_fit(Y, A0, 0.5, get_backend("numba"), max_iter=1, tol=0.0, encode_params=ENCODE)


def test_alternating_fit_large_alpha_is_kmeans(rng):
    # α → ∞: codes become hard assignments and the A-step becomes the
    # k-means centroid update
    Y, A = make_problem(rng, n=80, d=3, m=4)
    alpha = 1e7
    X = encode_pass(Y, A, alpha, get_backend("numba"), tol=1e-12).codes
    labels = X.argmax(axis=1)
    XtX, s, XtY = _objective.dictionary_statistics(X, Y)
    from sklearn_wlsc._dict_learning import update_dictionary

    A_new = update_dictionary(XtX, s, XtY, alpha, A)
    for j in range(4):
        if np.any(labels == j):
            np.testing.assert_allclose(A_new[j], Y[labels == j].mean(axis=0), atol=1e-5)


def test_reseed_uses_worst_samples(rng):
    Y, A = make_problem(rng, n=30, d=3, m=5)
    f = rng.random(30)
    unused = np.array([False, True, False, True, False])
    A2 = A.copy()
    assert reseed_atoms(A2, unused, Y, f) == 2
    worst = np.argsort(-f)[:2]
    np.testing.assert_array_equal(A2[[1, 3]], Y[worst])
    np.testing.assert_array_equal(A2[~unused], A[~unused])


def test_unused_atoms_detects_zero_usage():
    s = np.array([10.0, 0.0, 1e-14, 3.0])
    np.testing.assert_array_equal(unused_atoms(s, 100), [False, True, True, False])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_reseeds_dead_atoms(rng):
    Y, _ = make_problem(rng, n=50, d=2, m=3)
    A0 = np.vstack([Y[:2], [[1e3, 1e3]]])  # the far atom is never used
    A, history, _, n_reseeded = alternating_fit(
        Y, A0, 0.5, get_backend("numba"), max_iter=5, tol=0.0, encode_params=ENCODE
    )
    assert n_reseeded >= 1
    assert np.abs(A).max() < 100
    assert np.all(np.diff(history) <= 1e-9 * history[0])


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_init_dictionary(rng, init):
    Y, _ = make_problem(rng, n=40, d=3, m=5)
    A = init_dictionary(Y, 5, init, np.random.RandomState(0))
    assert A.shape == (5, 3)
    # seeds are samples
    assert all(np.any(np.all(Y == a, axis=1)) for a in A)
    np.testing.assert_array_equal(A, init_dictionary(Y, 5, init, np.random.RandomState(0)))


def test_init_with_fewer_samples_than_atoms(rng):
    Y = rng.standard_normal((3, 2))
    A = init_dictionary(Y, 7, "k-means++", np.random.RandomState(0))
    assert A.shape == (7, 2)
    assert np.all(np.isfinite(A))


def test_minibatch_weight_in_unit_interval():
    w = [minibatch_weight(t, b) for t in range(50) for b in (1, 10, 256)]
    assert all(0 <= v < 1 for v in w)
    # the weight of the past grows as more batches arrive
    assert minibatch_weight(100, 10) > minibatch_weight(1, 10)


def test_repeated_fits_are_bitwise_identical():
    # the exact encoder's warm start was once summed in a loop that also
    # stored; LLVM guards such a vectorized sum with a check that the arrays
    # lie far enough apart in memory and falls back to a scalar sum, so the
    # sum's rounding depended on where the heap had put the kernel's scratch
    # arrays, and repeated fits in one process differed by an ulp. A fresh
    # interpreter shows it (in this one the heap is already settled)
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import hashlib, warnings
        import numpy as np
        from sklearn_wlsc import WeightedL1SparseCoder
        warnings.simplefilter("ignore")
        Y = np.random.RandomState(0).rand(2000, 10)
        for n_jobs in (None, 1):
            for _ in range(4):
                est = WeightedL1SparseCoder(12, random_state=0, max_iter=10, n_jobs=n_jobs)
                print(n_jobs, hashlib.sha256(est.fit(Y).components_.tobytes()).hexdigest())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split("\n")
    digests = [line for line in out if line]
    assert len(digests) == 8
    assert len(set(digests[:4])) == 1, digests
    assert len(set(digests[4:])) == 1, digests


def test_exact_encoder_survives_a_support_emptied_by_rounding():
    # at alpha = 1e14 (beyond what the estimators accept) the active set's
    # Newton steps cancel terms of order alpha, and rounding once dropped
    # every coordinate of a warm-started support: the kernel divided by an
    # empty sum and raised ZeroDivisionError. It now restarts from the best
    # vertex, and the fit completes with codes on the simplex
    X = np.random.RandomState(0).rand(30, 5)
    A0 = X[:4].copy()
    A, history, _, _ = alternating_fit(
        X,
        A0,
        1e14,
        get_backend("numba"),
        max_iter=20,
        tol=1e-4,
        encode_params={"tol": 1e-10, "max_iter": None},
    )
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(history))
    codes = encode_pass(X, A, 1e14, get_backend("numba"), algorithm="exact").codes
    assert codes.min() >= 0
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-12)
