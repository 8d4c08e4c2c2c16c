"""Bad input gets a clear error; degenerate input gets finite codes."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode

from .conftest import make_problem

GOOD = np.random.default_rng(0).standard_normal((20, 4))
ATOMS = np.random.default_rng(1).standard_normal((5, 4))

BAD_DATA = [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "infinity"),
    (np.empty((0, 4)), ValueError, "0 sample"),
    (np.empty((3, 0)), ValueError, "0 feature"),
    (np.ones(4), ValueError, "Expected 2D array"),
    (np.ones((2, 3, 4)), ValueError, "dim 3"),
    (np.ones((3, 2)) + 1j, ValueError, "Complex data not supported"),
    (np.array([["a", "b"], ["c", "d"]]), ValueError, "could not convert|dtype"),
]


@pytest.mark.parametrize("data,error,match", BAD_DATA)
def test_bad_data_fit(data, error, match):
    with pytest.raises(error, match=match):
        WeightedL1SparseCoder(2).fit(data)


@pytest.mark.parametrize("data,error,match", BAD_DATA)
def test_bad_data_transform(data, error, match):
    est = WeightedL1SparseCoder(2, random_state=0).fit(GOOD[:, :2])
    with pytest.raises(error, match=match):
        est.transform(data)


@pytest.mark.parametrize("data,error,match", BAD_DATA)
def test_bad_data_sparse_encode(data, error, match):
    with pytest.raises(error, match=match):
        sparse_encode(data, ATOMS[:, :2] if data.ndim == 2 and data.shape[-1] == 2 else ATOMS)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": np.inf}, "alpha"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"n_components": "3"}, "n_components"),
        ({"backend": "cupy"}, "backend"),
        ({"transform_algorithm": "lars"}, "transform_algorithm"),
        ({"fit_algorithm": "sgd"}, "fit_algorithm"),
        ({"n_layers": 0}, "n_layers"),
        ({"transform_tol": 0.0}, "transform_tol"),
        ({"max_iter": -1}, "max_iter"),
        ({"init": "pca"}, "init"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WeightedL1SparseCoder(**{"n_components": 2, **params}).fit(GOOD)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": -0.5}, "alpha"),
        ({"algorithm": "omp"}, "algorithm"),
        ({"backend": "jax"}, "backend"),
        ({"n_layers": 0}, "n_layers"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_sparse_encode_bad_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sparse_encode(GOOD, ATOMS, **kwargs)


def test_sparse_encode_bad_dictionary():
    with pytest.raises(ValueError, match="dictionary has 3 features per atom but X has 4"):
        sparse_encode(GOOD, ATOMS[:, :3])
    bad = ATOMS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sparse_encode(GOOD, bad)
    with pytest.raises(ValueError, match="0 sample"):
        sparse_encode(GOOD, np.empty((0, 4)))


def test_feature_count_mismatch():
    est = WeightedL1SparseCoder(3, random_state=0).fit(GOOD)
    with pytest.raises(ValueError, match="4 features"):
        est.transform(GOOD[:, :3])
    with pytest.raises(ValueError, match="4 features"):
        est.score(GOOD[:, :3])
    with pytest.raises(ValueError, match="4 features"):
        est.partial_fit(GOOD[:, :3])


def test_not_fitted():
    est = WeightedL1SparseCoder(3)
    for method in (est.transform, est.score, est.inverse_transform):
        with pytest.raises(NotFittedError):
            method(GOOD)


@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_inputs_never_modified(algorithm):
    Y = GOOD.copy()
    est = WeightedL1SparseCoder(3, transform_algorithm=algorithm, random_state=0)
    est.fit_transform(Y)
    est.partial_fit(Y)
    est.score(Y)
    np.testing.assert_array_equal(Y, GOOD)


def _check_codes(codes, n, m):
    assert codes.shape == (n, m)
    assert np.all(np.isfinite(codes))
    assert codes.min() >= 0
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
@pytest.mark.parametrize(
    "name",
    [
        "constant",
        "constant column",
        "duplicate rows",
        "fewer samples than atoms",
        "huge",
        "tiny",
        "offset",
    ],
)
def test_degenerate_data_gives_finite_codes(fast_backend, algorithm, name):
    rng = np.random.default_rng(0)
    Y, _ = make_problem(rng, n=30, d=4, m=5)
    if name == "constant":
        Y = np.full((30, 4), 3.0)
    elif name == "constant column":
        Y[:, 1] = 7.0
    elif name == "duplicate rows":
        Y = np.repeat(Y[:5], 6, axis=0)
    elif name == "fewer samples than atoms":
        Y = Y[:3]
    elif name == "huge":
        Y = Y * 1e150
    elif name == "tiny":
        Y = Y * 1e-150
    elif name == "offset":
        Y = Y + 1e8
    est = WeightedL1SparseCoder(
        8, transform_algorithm=algorithm, backend=fast_backend, random_state=0
    )
    with warnings.catch_warnings():
        # degenerate data may warn (few samples, duplicate atoms); it must
        # still give finite codes
        warnings.simplefilter("ignore")
        codes = est.fit_transform(Y)
    _check_codes(codes, Y.shape[0], 8)
    assert np.all(np.isfinite(est.components_))
    assert np.isfinite(est.objective_)


def test_fewer_samples_than_atoms_warns():
    with pytest.warns(UserWarning, match="n_samples=3 is smaller than n_components=8"):
        WeightedL1SparseCoder(8, random_state=0).fit(GOOD[:3])


def test_huge_data_scales_components_and_objective():
    rng = np.random.default_rng(0)
    Y, _ = make_problem(rng, n=30, d=4, m=5)
    est = WeightedL1SparseCoder(5, random_state=0).fit(Y)
    big = WeightedL1SparseCoder(5, random_state=0).fit(Y * 1e100)
    np.testing.assert_allclose(big.components_, est.components_ * 1e100, rtol=1e-6)
    assert big.objective_ == pytest.approx(est.objective_ * 1e200, rel=1e-6)
    np.testing.assert_allclose(big.transform(Y * 1e100), est.transform(Y), atol=1e-6)
