"""The estimator on the torch backend: tensors in and out, the unrolled
autoencoder fit, and pickling."""

import math
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode

from .conftest import RecordingCallback, make_problem

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


def test_fit_of_a_tensor_runs_on_its_device(rng, monkeypatch):
    # "auto" picks torch for tensors, on the tensor's device unless device
    # names another; the unrolled training gets the tensor itself
    from sklearn_wlsc import _dict_learning
    from sklearn_wlsc import torch as wlsc_torch

    Y, _ = make_problem(rng, n=40, d=5, m=4)
    Yt = torch.as_tensor(Y)
    seen = {}
    alternating_fit = _dict_learning.alternating_fit
    train_unrolled = wlsc_torch.train_unrolled

    def spy_alternating(*args, backend, **kwargs):
        seen["alternating"] = (backend.name, getattr(backend, "device", None))
        return alternating_fit(*args, backend=backend, **kwargs)

    def spy_unrolled(X, A0, **kwargs):
        seen["unrolled"] = (type(X), kwargs["device"])
        return train_unrolled(X, A0, **kwargs)

    monkeypatch.setattr(_dict_learning, "alternating_fit", spy_alternating)
    monkeypatch.setattr(wlsc_torch, "train_unrolled", spy_unrolled)
    ref = WeightedL1SparseCoder(4, random_state=0).fit(Y)
    assert seen["alternating"][0] == "numba"
    # a CPU tensor: numba under "auto", the same atoms faster
    WeightedL1SparseCoder(4, random_state=0).fit(Yt)
    assert seen["alternating"][0] == "numba"
    est = WeightedL1SparseCoder(4, backend="torch", random_state=0).fit(Yt)
    assert seen["alternating"] == ("torch", Yt.device)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-10)
    WeightedL1SparseCoder(4, fit_algorithm="unrolled", max_iter=1, random_state=0).fit(Yt)
    assert seen["unrolled"][0] is torch.Tensor
    # an explicit backend is kept
    WeightedL1SparseCoder(4, backend="numba", random_state=0).fit(Yt)
    assert seen["alternating"][0] == "numba"


def test_unrolled_fit_reports_to_callbacks_and_stops(rng):
    pytest.importorskip("sklearn.callback")
    Y, _ = make_problem(rng, n=40, d=5, m=4)
    kw = dict(fit_algorithm="unrolled", n_layers=10, random_state=0, tol=0.0)
    cb = RecordingCallback(task="epoch")
    est = WeightedL1SparseCoder(4, max_iter=3, **kw).set_callbacks(cb).fit(Y)
    assert cb.tasks[:2] == ["setup", "fit"] and cb.tasks[-1] == "teardown"
    np.testing.assert_allclose(cb.objectives, est.objective_path_[1:])
    stopper = RecordingCallback(stop_after=2, task="epoch")
    est = WeightedL1SparseCoder(4, max_iter=50, **kw).set_callbacks(stopper).fit(Y)
    assert len(stopper.objectives) == 2 and est.n_iter_ == 2


class _TaggedTensor(torch.Tensor):
    """A tensor subclass, as libraries make them."""


def test_tensor_kinds(rng):
    Y, A = make_problem(rng, n=20, d=5, m=4)
    est = WeightedL1SparseCoder(4, random_state=0).fit(Y)
    sub = torch.as_tensor(Y).as_subclass(_TaggedTensor)
    # subclasses are tensors: tensor in, tensor out, with or without grad
    for X in (sub, sub.clone().requires_grad_(True)):
        codes = est.transform(X)
        assert isinstance(codes, torch.Tensor)
        np.testing.assert_allclose(codes.detach().numpy(), est.transform(Y), atol=1e-10)
    with pytest.raises(TypeError, match="sparse torch tensor"):
        est.transform(torch.as_tensor(Y).to_sparse())
    with pytest.raises(TypeError, match="sparse torch tensor"):
        est.transform(torch.as_tensor(Y).to_sparse_csr())
    with pytest.raises(ValueError, match="meta tensor"):
        est.transform(torch.empty(3, 5, device="meta", dtype=torch.float64))
    # initial atoms given as a tensor that requires grad
    init = torch.as_tensor(A).clone().requires_grad_(True)
    fitted = WeightedL1SparseCoder(4, init=init, max_iter=1, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        fitted.fit(Y)
    expected = WeightedL1SparseCoder(4, init=A, max_iter=1, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        expected.fit(Y)
    np.testing.assert_array_equal(fitted.components_, expected.components_)


@pytest.mark.parametrize("name", ["n_jobs", "n_layers", "max_iter"])
def test_sparse_encode_refuses_bool_counts(rng, name):
    Y, A = make_problem(rng, n=10, d=5, m=4)
    with pytest.raises(TypeError, match=f"{name} must be an integer, not a bool"):
        sparse_encode(torch.as_tensor(Y), A, **{name: True})
