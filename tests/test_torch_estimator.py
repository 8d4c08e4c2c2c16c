"""The estimator on the torch backend: tensors in and out, the unrolled
autoencoder fit, and pickling."""

import math
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode

from .conftest import make_problem

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X


@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_transform_tensor_in_tensor_out(rng, algorithm, dtype):
    Y, _ = make_problem(rng, n=50, d=5, m=6)
    est = WeightedL1SparseCoder(6, transform_algorithm=algorithm, random_state=0).fit(Y)
    Yt = torch.as_tensor(Y, dtype=dtype)
    codes = est.transform(Yt)
    assert isinstance(codes, torch.Tensor)
    assert codes.dtype == dtype and codes.device == Yt.device
    expected = est.transform(Y.astype(np.float32 if dtype == torch.float32 else np.float64))
    atol = 1e-10 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(codes.numpy(), expected, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inverse_transform_tensor_in_tensor_out(rng, dtype):
    Y, _ = make_problem(rng, n=40, d=5, m=6)
    est = WeightedL1SparseCoder(6, random_state=0).fit(Y)
    codes = est.transform(torch.as_tensor(Y, dtype=dtype)).requires_grad_(True)
    Y_hat = est.inverse_transform(codes)
    assert isinstance(Y_hat, torch.Tensor)
    assert Y_hat.dtype == dtype and Y_hat.device == codes.device
    expected = est.inverse_transform(codes.detach().numpy())
    np.testing.assert_allclose(
        Y_hat.detach().numpy(), expected, rtol=1e-6 if dtype == torch.float32 else 1e-12
    )
    # the reconstruction is differentiable in the codes
    Y_hat.sum().backward()
    row = est.components_.sum(axis=1).astype(expected.dtype)
    np.testing.assert_allclose(codes.grad.numpy(), np.broadcast_to(row, codes.shape), rtol=1e-5)
    with pytest.raises(ValueError, match="n_components=6"):
        est.inverse_transform(codes.detach()[:, :3])
    bad = codes.detach().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.inverse_transform(bad)


def test_sparse_encode_tensor(rng):
    Y, A = make_problem(rng, n=30, d=5, m=7)
    for algorithm in ("exact", "unrolled"):
        got = sparse_encode(torch.as_tensor(Y), torch.as_tensor(A), algorithm=algorithm)
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(
            got.numpy(), sparse_encode(Y, A, algorithm=algorithm), atol=1e-10
        )
    with pytest.raises(ValueError, match="needs backend='torch' or 'auto'"):
        sparse_encode(torch.as_tensor(Y), A, backend="numba")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_encode_tensor_at_the_ends_of_the_float_range(rng, dtype):
    """Tensors are centered and scaled in exact steps too: data just below
    the largest float (whose atoms' sum overflows) or near the smallest
    normal one give the codes of the unscaled data."""
    Y, A = make_problem(rng, n=30, d=5, m=7)
    Y, A = (Y + 6.0).astype(dtype), (A + 6.0).astype(dtype)
    info = np.finfo(dtype)
    e_top = math.frexp(float(max(Y.max(), A.max())))[1]
    for algorithm in ("exact", "unrolled"):
        X = sparse_encode(torch.as_tensor(Y), torch.as_tensor(A), algorithm=algorithm).numpy()
        for e in (info.maxexp - e_top, info.minexp + 10 - e_top):
            Y_s, A_s = torch.as_tensor(np.ldexp(Y, e)), torch.as_tensor(np.ldexp(A, e))
            got = sparse_encode(Y_s, A_s, algorithm=algorithm).numpy()
            np.testing.assert_array_equal(got, X)


def test_tensor_validation(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    est = WeightedL1SparseCoder(4, random_state=0).fit(Y)
    bad = torch.as_tensor(Y).clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.transform(bad)
    with pytest.raises(ValueError, match="4 features"):
        est.transform(torch.as_tensor(Y[:, :4]))
    with pytest.raises(ValueError, match="2D"):
        est.transform(torch.as_tensor(Y[0]))


def test_fit_accepts_tensors(rng):
    Y, _ = make_problem(rng, n=40, d=5, m=4)
    a = WeightedL1SparseCoder(4, random_state=0).fit(torch.as_tensor(Y)).components_
    b = WeightedL1SparseCoder(4, random_state=0).fit(Y).components_
    assert isinstance(a, np.ndarray)
    np.testing.assert_allclose(a, b)


def test_unrolled_fit_lowers_objective_on_digits(digits):
    X = digits[:600]
    est = WeightedL1SparseCoder(
        32, fit_algorithm="unrolled", n_layers=30, max_iter=4, batch_size=128, random_state=0
    ).fit(X)
    path = est.objective_path_
    assert len(path) == est.n_iter_ + 1 == 5
    assert np.all(np.diff(path) < 0), path
    assert path[-1] < 0.95 * path[0]
    assert isinstance(est.components_, np.ndarray)
    codes = est.set_params(transform_algorithm="unrolled").transform(X)
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-12)


def test_unrolled_fit_needs_torch_backend(digits):
    with pytest.raises(ValueError, match="backend='torch' or 'auto'"):
        WeightedL1SparseCoder(8, fit_algorithm="unrolled", backend="numba").fit(digits[:50])


def test_torch_fitted_model_pickles_to_numpy(digits):
    est = WeightedL1SparseCoder(
        8, fit_algorithm="unrolled", max_iter=1, n_layers=10, backend="torch", random_state=0
    ).fit(digits[:100])
    est2 = pickle.loads(pickle.dumps(est))
    assert all(not isinstance(v, torch.Tensor) for v in vars(est2).values()), (
        "fitted state must be plain numpy"
    )
    np.testing.assert_array_equal(est2.transform(digits[:10]), est.transform(digits[:10]))
