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
        ({"alpha": 1e17}, r"alpha.*\[0\.0, 1000000\.0\]"),
        ({"n_jobs": 0}, "n_jobs"),
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
        ({"alpha": 1e7}, "alpha"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"algorithm": "omp"}, "algorithm"),
        ({"backend": "jax"}, "backend"),
        ({"n_layers": 0}, "n_layers"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_sparse_encode_bad_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sparse_encode(GOOD, ATOMS, **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_largest_alpha_still_gives_nearest_atom_codes(fast_backend, dtype, algorithm):
    # at the bound, codes are the hard assignments to the nearest atom,
    # on the simplex, in both dtypes
    from sklearn_wlsc._objective import ALPHA_MAX

    Y, A = GOOD.astype(dtype), ATOMS.astype(dtype)
    X = np.asarray(sparse_encode(Y, A, alpha=ALPHA_MAX, algorithm=algorithm, backend=fast_backend))
    nearest = ((Y[:, None, :].astype(np.float64) - A[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(X, np.eye(len(A), dtype=dtype)[nearest])


def test_parameters_set_after_fit_are_validated_when_used():
    est = WeightedL1SparseCoder(3, random_state=0).fit(GOOD)
    with pytest.raises(ValueError, match="transform_algorithm"):
        clone_with(est, transform_algorithm="zzz").transform(GOOD)
    with pytest.raises(ValueError, match="n_layers"):
        clone_with(est, transform_algorithm="unrolled", n_layers=0).transform(GOOD)
    with pytest.raises(ValueError, match="alpha"):
        clone_with(est, alpha=-1.0).score(GOOD)
    partial = WeightedL1SparseCoder(3, random_state=0).partial_fit(GOOD)
    with pytest.raises(ValueError, match="alpha"):
        partial.set_params(alpha=-1.0).partial_fit(GOOD)


def clone_with(est, **params):
    """``est`` itself (fitted), with ``params`` set after the fit."""
    import copy

    return copy.deepcopy(est).set_params(**params)


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


@pytest.mark.parametrize("exponent", [-1000, -900, -530, -200, 200, 530, 1000])
def test_fit_of_data_of_extreme_magnitude_is_the_fit_of_the_data(exponent):
    # squared distances and objectives of such data leave the float range;
    # the fit runs on the data divided by a power of two, so its atoms and
    # codes are exactly those of the unscaled data, scaled
    rng = np.random.default_rng(0)
    Y, _ = make_problem(rng, n=30, d=4, m=5)
    est = WeightedL1SparseCoder(5, random_state=0).fit(Y)
    Y_s = np.ldexp(Y, exponent)
    scaled = WeightedL1SparseCoder(5, random_state=0).fit(Y_s)
    assert scaled.n_iter_ == est.n_iter_
    np.testing.assert_array_equal(np.ldexp(scaled.components_, -exponent), est.components_)
    np.testing.assert_array_equal(scaled.transform(Y_s), est.transform(Y))
    # the objective, in the data's units, is 0 or inf where F itself
    # leaves the float range
    with np.errstate(over="ignore", under="ignore"):
        expected = np.ldexp(est.objective_path_, 2 * exponent)
    np.testing.assert_array_equal(scaled.objective_path_, expected)


@pytest.mark.filterwarnings("ignore:Alternating minimization did not converge")
def test_fit_of_extreme_data_reports_progress_in_the_data_units(capsys):
    rng = np.random.default_rng(1)
    Y, _ = make_problem(rng, n=30, d=4, m=5)
    seen = {}
    for exponent in (0, 80):
        WeightedL1SparseCoder(5, random_state=0, verbose=1, max_iter=3).fit(np.ldexp(Y, exponent))
        lines = [line for line in capsys.readouterr().out.splitlines() if "objective" in line]
        seen[exponent] = [float(line.split("objective ")[1].split(",")[0]) for line in lines]
    assert len(seen[80]) == len(seen[0]) > 1
    np.testing.assert_allclose(seen[80], np.ldexp(seen[0], 160), rtol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "numpy", "torch"])
@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_float32_data_with_a_dictionary_beyond_the_float32_range(backend, algorithm):
    # the atoms are scaled with the data before they are cast to float32
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    Y = (rng.random((25, 4)) * 1e38).astype(np.float32)  # within float32's range
    A = rng.random((5, 4)) * 2e39  # beyond it
    X32 = sparse_encode(Y, A, algorithm=algorithm, backend=backend)
    X64 = sparse_encode(Y.astype(np.float64), A, algorithm=algorithm, backend=backend)
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, X64, atol=1e-4)
    est = WeightedL1SparseCoder(5, random_state=0, backend=backend).fit(rng.random((40, 4)) * 1e39)
    codes = est.transform(Y)
    np.testing.assert_allclose(codes, est.transform(Y.astype(np.float64)), atol=1e-4)
    assert np.isfinite(est.score(Y))


@pytest.mark.parametrize("exponent", [-660, 660])
def test_partial_fit_and_unrolled_fit_of_extreme_data(exponent):
    # k-means++ and the unrolled training's standardization square the
    # data: both now see it divided by a power of two, as fit does
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((120, 6))
    Y_s = np.ldexp(Y, exponent)
    ref = WeightedL1SparseCoder(8, random_state=0).partial_fit(Y)
    scaled = WeightedL1SparseCoder(8, random_state=0).partial_fit(Y_s)
    np.testing.assert_allclose(np.ldexp(scaled.components_, -exponent), ref.components_, atol=1e-13)
    # partial_fit after fit continues from fit's statistics, kept in the
    # data's units
    ref = WeightedL1SparseCoder(8, random_state=0).fit(Y).partial_fit(Y[:7])
    scaled = WeightedL1SparseCoder(8, random_state=0).fit(Y_s).partial_fit(Y_s[:7])
    np.testing.assert_allclose(np.ldexp(scaled.components_, -exponent), ref.components_, atol=1e-12)
    pytest.importorskip("torch")
    kw = dict(fit_algorithm="unrolled", max_iter=2, n_layers=10, random_state=0)
    ref = WeightedL1SparseCoder(5, **kw).fit(Y)
    scaled = WeightedL1SparseCoder(5, **kw).fit(Y_s)
    np.testing.assert_allclose(np.ldexp(scaled.components_, -exponent), ref.components_, atol=1e-13)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.ldexp(ref.objective_path_, 2 * exponent)
    np.testing.assert_allclose(scaled.objective_path_, expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_device_with_a_cpu_backend_is_refused(backend):
    # a GPU device with a backend that computes on the CPU is a contradiction
    Y = np.random.default_rng(0).random((20, 3))
    with pytest.raises(ValueError, match="device='cuda:1' needs the torch backend"):
        sparse_encode(Y, Y[:4], backend=backend, device="cuda:1")
    with pytest.raises(ValueError, match="needs the torch backend"):
        WeightedL1SparseCoder(3, backend=backend, device="mps").fit(Y)
    # the CPU is where these backends compute
    for cpu in ("cpu", "cpu:0"):
        codes = sparse_encode(Y, Y[:4], backend=backend, device=cpu)
        np.testing.assert_allclose(codes.sum(axis=1), 1.0)
