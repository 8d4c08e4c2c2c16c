"""The torch backend on a CUDA device, against numba, the numpy reference
and the same code on the CPU.

Skipped where torch sees no CUDA device (as in CI); run them on a machine
with a GPU with ``python -m pytest tests/test_torch_cuda.py``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)

from sklearn_wlsc import WeightedL1SparseCoder, _objective, sparse_encode  # noqa: E402
from sklearn_wlsc._backends import _numpy as numpy_backend  # noqa: E402
from sklearn_wlsc._backends import _torch as tb  # noqa: E402
from sklearn_wlsc._backends import get_backend  # noqa: E402
from sklearn_wlsc._simplex import project_simplex  # noqa: E402
from sklearn_wlsc.torch import UnrolledWLSC, train_unrolled  # noqa: E402

from .conftest import make_problem  # noqa: E402
from .test_torch_backend import _centered  # noqa: E402

CUDA = torch.device("cuda")
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
ATOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits().data


@pytest.fixture(autouse=True)
def no_tf32():
    """float32 products in full float32 (torch's default), whatever a user
    or another test set."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


# -- primitives ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_project_simplex_matches_reference(rng, dtype):
    backend = get_backend("torch", device="cuda")
    for m in (1, 5, 64, 1000):
        V = (3.0 * rng.standard_normal((300, m))).astype(dtype)
        V[0] = 0.5  # a row of ties
        V[1, : m // 2] = V[1, 0]  # ties at the top
        ref = project_simplex(V)
        out = backend.project_simplex(V)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=0, atol=10 * ATOL[dtype])
        out_t = backend.project_simplex(torch.from_numpy(V).to(CUDA))
        assert out_t.device.type == "cuda" and out_t.dtype == TORCH_DTYPES[dtype]
        np.testing.assert_allclose(out_t.cpu().numpy(), ref, rtol=0, atol=10 * ATOL[dtype])
        # idempotent on the device
        again = tb.project_simplex(out_t)
        torch.testing.assert_close(again, out_t, rtol=0, atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_simplex_threshold_matches_sort(rng, dtype):
    """The sort-free threshold search on the device, from no guess and from
    guesses on both sides of the root, against the sort-based projection."""
    V = (rng.standard_normal((5000, 64)) * rng.uniform(0.01, 3.0, (5000, 1))).astype(dtype)
    V[:50, :8] = V[:50, :1]  # ties
    Vt = torch.from_numpy(V).to(CUDA)
    expected = project_simplex(V.astype(np.float64))
    root = tb.simplex_threshold(Vt)
    candidates = int((V > V.max(axis=1, keepdims=True) - 1).sum(axis=1).max())
    for guess in (None, root - 0.1, root + 0.1, torch.full_like(root, float("inf"))):
        tau, passes = tb.simplex_threshold(Vt, guess, return_passes=True)
        assert tau.device.type == "cuda"
        if guess is None:  # the climb from max(v) − 1 drops a candidate a pass
            assert passes <= candidates + 2
        X = torch.clamp(Vt - tau, min=0.0).cpu().numpy()
        np.testing.assert_allclose(X, expected, rtol=0, atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_unrolled_matches_numpy_reference(rng, dtype):
    Y, A = make_problem(rng, n=300, d=6, m=9, dtype=dtype)
    G, C = _objective.encoder_terms(*_centered(Y, A), 0.3)
    L = _objective.lipschitz_constant(A)
    X_ref = numpy_backend.unrolled_encode(G, C, L, 40)
    Gt, Ct = torch.from_numpy(G).to(CUDA), torch.from_numpy(C).to(CUDA)
    X = tb.unrolled_encode(Gt, Ct, 1.0 / L, 40)
    assert X.device.type == "cuda" and X.dtype == TORCH_DTYPES[dtype]
    np.testing.assert_allclose(X.cpu().numpy(), X_ref, rtol=0, atol=ATOL[dtype])


def test_cuda_dictionary_statistics(rng):
    backend = get_backend("torch", device="cuda")
    X = project_simplex(rng.standard_normal((400, 6)))
    Y = rng.standard_normal((400, 3))
    expected = _objective.dictionary_statistics(X, Y)
    stats_t = backend.dictionary_statistics(torch.from_numpy(X).to(CUDA), torch.from_numpy(Y))
    for got in (backend.dictionary_statistics(X, Y), [s.cpu().numpy() for s in stats_t]):
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert all(s.device.type == "cuda" for s in stats_t)


# -- encoders -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["unrolled", "exact"])
def test_cuda_encode_matches_numba(rng, algorithm, dtype):
    Y, A = make_problem(rng, n=2000, d=8, m=12, dtype=dtype)
    kw = dict(alpha=0.5, algorithm=algorithm, n_layers=50)
    X_nb = sparse_encode(Y, A, backend="numba", **kw)
    X_gpu = sparse_encode(Y, A, backend="torch", device="cuda", **kw)
    assert isinstance(X_gpu, np.ndarray) and X_gpu.dtype == dtype
    np.testing.assert_allclose(X_gpu, X_nb, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_cuda_exact_certifies_gap_on_digits(digits, alpha):
    rng = np.random.default_rng(1)
    Y = digits[rng.integers(0, len(digits), 3000)] + 0.1 * rng.standard_normal((3000, 64))
    A = digits[rng.choice(len(digits), 96, replace=False)]  # more atoms than features
    backend = get_backend("torch", device="cuda")
    Yc, Ac = _centered(Y, A)
    X, gap = backend.encode(Yc, Ac, alpha, algorithm="exact", n_layers=0, tol=1e-10, max_iter=None)
    assert np.all(gap <= 1e-10)
    G, C = _objective.encoder_terms(Y, A, alpha)
    gap_np = _objective.duality_gap(X, _objective.gradient(X, G, C))
    assert np.all(gap_np <= 1e-9 * _objective.gap_scale(Y, A, alpha))
    X_nb = sparse_encode(Y, A, alpha=alpha, backend="numba")
    f, f_nb = (_objective.sample_objective(Y, A, Z, alpha) for Z in (X, X_nb))
    np.testing.assert_allclose(f, f_nb, rtol=1e-9)


@pytest.mark.parametrize("algorithm", ["unrolled", "exact"])
def test_cuda_tensor_in_tensor_out(rng, algorithm):
    """A CUDA tensor comes back on its device, in its dtype, with the codes
    of the same data on the CPU; a CPU tensor sent to the GPU comes back on
    the CPU."""
    Y, A = make_problem(rng, n=500, d=5, m=7)
    kw = dict(alpha=0.5, algorithm=algorithm)
    X_cpu = sparse_encode(torch.from_numpy(Y), torch.from_numpy(A), backend="torch", **kw)
    X_gpu = sparse_encode(torch.from_numpy(Y).to(CUDA), torch.from_numpy(A), **kw)
    assert X_gpu.device.type == "cuda" and X_gpu.dtype == torch.float64
    np.testing.assert_allclose(X_gpu.cpu().numpy(), X_cpu.numpy(), rtol=0, atol=1e-10)
    X_sent = sparse_encode(torch.from_numpy(Y), torch.from_numpy(A), device="cuda", **kw)
    assert X_sent.device.type == "cpu"
    np.testing.assert_allclose(X_sent.numpy(), X_cpu.numpy(), rtol=0, atol=1e-10)


def test_cuda_numpy_passes_use_large_chunks(rng):
    """numpy in and out on the GPU encodes in chunks of ``2**24`` elements,
    with the codes of the same data sent as one tensor."""
    backend = get_backend("torch", device="cuda")
    assert backend.pass_chunk_rows(64, 64, "unrolled") == 2**24 // 64
    assert backend.pass_chunk_rows(64, 64, "exact") == 8192
    Y, A = make_problem(rng, n=300_000, d=16, m=64, dtype=np.float32)
    X = sparse_encode(Y, A, algorithm="unrolled", backend="torch", device="cuda")
    X_t = sparse_encode(torch.from_numpy(Y).to(CUDA), torch.from_numpy(A), algorithm="unrolled")
    np.testing.assert_allclose(X, X_t.cpu().numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("algorithm", ["unrolled", "exact"])
def test_cuda_chunks_equal_whole(rng, algorithm):
    Y, A = make_problem(rng, n=1001, d=5, m=7)
    Yc, Ac = (torch.from_numpy(a).to(CUDA) for a in _centered(Y, A))
    kw = dict(algorithm=algorithm, n_layers=30, tol=1e-12)
    whole = tb.TorchBackend().encode_tensor(Yc, Ac, 0.5, **kw)
    chunked = tb.TorchBackend()
    chunked.chunk_elements = 7 * 130  # chunks of 130 rows
    parts = chunked.encode_tensor(Yc, Ac, 0.5, **kw)
    torch.testing.assert_close(parts[0], whole[0], rtol=0, atol=1e-12)
    if algorithm == "exact":
        assert bool((parts[1] <= 1e-12).all())


def test_cuda_large_float32_batch_stays_on_the_simplex():
    """200,000 rows of 256 atoms in float32 on the device: codes on the
    simplex, and a sample of rows equal to numba's."""
    rng = np.random.default_rng(2)
    n, d, m = 200_000, 64, 256
    atoms = rng.standard_normal((m, d)).astype(np.float32)
    idx = rng.integers(0, m, size=(n, 3))
    w = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    Y = np.einsum("nk,nkd->nd", w, atoms[idx]) + 0.1 * rng.standard_normal((n, d)).astype(
        np.float32
    )
    X = sparse_encode(Y, atoms, alpha=0.5, algorithm="unrolled", backend="torch", device="cuda")
    assert X.dtype == np.float32 and np.isfinite(X).all()
    assert X.min() >= 0.0
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-5)
    rows = rng.choice(n, 2000, replace=False)
    X_nb = sparse_encode(Y[rows], atoms, alpha=0.5, algorithm="unrolled", backend="numba")
    np.testing.assert_allclose(X[rows], X_nb, rtol=0, atol=1e-4)


# -- the estimator ---------------------------------------------------------------


def test_cuda_estimator_transform_matches_numba(digits):
    est = WeightedL1SparseCoder(32, max_iter=3, random_state=0).fit(digits)
    for algorithm in ("unrolled", "exact"):
        est.set_params(transform_algorithm=algorithm, backend="numba", device=None)
        X_nb = est.transform(digits)
        est.set_params(backend="torch", device="cuda")
        X_gpu = est.transform(digits)
        assert isinstance(X_gpu, np.ndarray)
        if algorithm == "unrolled":
            np.testing.assert_allclose(X_gpu, X_nb, rtol=0, atol=1e-12)
        else:
            A = est.components_
            f, f_nb = (_objective.sample_objective(digits, A, Z, est.alpha) for Z in (X_gpu, X_nb))
            np.testing.assert_allclose(f, f_nb, rtol=1e-9)
        codes_t = est.transform(torch.from_numpy(digits).to(CUDA))
        assert isinstance(codes_t, torch.Tensor) and codes_t.device.type == "cuda"
        np.testing.assert_allclose(codes_t.cpu().numpy(), X_gpu, rtol=0, atol=1e-10)


def test_cuda_estimator_exact_fit_matches_numba(digits):
    """The alternating fit with the exact encoder on the GPU follows numba's
    path: the same objective at every iteration, to the encoders' tolerance."""
    kw = dict(n_components=24, max_iter=4, random_state=0)
    nb = WeightedL1SparseCoder(backend="numba", **kw).fit(digits)
    gpu = WeightedL1SparseCoder(backend="torch", device="cuda", **kw).fit(digits)
    np.testing.assert_allclose(gpu.objective_path_, nb.objective_path_, rtol=1e-7)
    assert isinstance(gpu.components_, np.ndarray)


def test_cuda_unrolled_fit_matches_cpu(digits):
    """The unrolled autoencoder trained on the GPU and on the CPU: the same
    minibatches and the same arithmetic up to rounding, and an objective
    that goes down the same way on both.

    The atoms themselves are not compared: Adam divides each gradient entry
    by its running magnitude, so entries whose gradient is at rounding level
    take full-size steps in directions set by rounding (on an H200, atoms
    differed by up to 3e-3 of their largest entry after three epochs)."""
    kw = dict(
        n_components=32,
        fit_algorithm="unrolled",
        n_layers=20,
        max_iter=3,
        batch_size=256,
        backend="torch",
        random_state=0,
    )
    cpu = WeightedL1SparseCoder(device="cpu", **kw).fit(digits)
    gpu = WeightedL1SparseCoder(device="cuda", **kw).fit(digits)
    assert np.all(np.diff(gpu.objective_path_) < 0), gpu.objective_path_
    assert gpu.objective_path_[-1] < 0.95 * gpu.objective_path_[0]
    np.testing.assert_allclose(
        gpu.objective_path_,
        cpu.objective_path_,
        rtol=1e-2,
        err_msg=f"GPU {gpu.objective_path_} CPU {cpu.objective_path_}",
    )
    assert isinstance(gpu.components_, np.ndarray)


def test_cuda_train_unrolled_on_device_tensor(digits):
    Y = torch.from_numpy(digits.astype(np.float32)).to(CUDA)
    rng = np.random.RandomState(0)
    A0 = digits[rng.choice(len(digits), 48, replace=False)]
    A, history, n_epochs = train_unrolled(
        Y,
        A0,
        alpha=0.5,
        n_layers=15,
        learning_rate=1e-2,
        batch_size=256,
        max_epochs=3,
        tol=0.0,
        random_state=0,
    )
    assert n_epochs == 3 and isinstance(A, np.ndarray) and A.shape == (48, 64)
    assert all(b < a for a, b in zip(history, history[1:]))


def test_cuda_module_gradients_match_cpu(rng):
    """Backpropagation through the unrolled network gives the CPU's gradient."""
    Y, A = make_problem(rng, n=64, d=6, m=9)
    grads = []
    for device in ("cpu", "cuda"):
        model = UnrolledWLSC(
            9, 6, alpha=0.5, n_layers=15, train_step=True, dictionary=A, device=device
        )
        y = torch.from_numpy(Y).to(device)
        model.loss(y, model(y)[0]).backward()
        grads.append([p.grad.detach().cpu().numpy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * np.abs(a).max())


def test_cuda_fit_of_a_device_tensor_runs_on_the_device(digits, monkeypatch):
    """``fit``, ``partial_fit`` and the unrolled fit of a CUDA tensor run the
    torch backend on the tensor's device under ``backend="auto"``, and give
    numba's atoms (alternating) up to the encoders' tolerance."""
    from sklearn_wlsc import _dict_learning
    from sklearn_wlsc import torch as wlsc_torch

    seen = []
    alternating_fit, encode_pass = _dict_learning.alternating_fit, _dict_learning.encode_pass
    train = wlsc_torch.train_unrolled

    def spy_fit(*args, backend, **kwargs):
        seen.append(("fit", backend.name, str(backend.device)))
        return alternating_fit(*args, backend=backend, **kwargs)

    def spy_pass(Y, A, alpha, backend, **kwargs):
        seen.append(("pass", backend.name, str(getattr(backend, "device", None))))
        return encode_pass(Y, A, alpha, backend, **kwargs)

    def spy_train(Y, A0, **kwargs):
        seen.append(("train", type(Y).__name__, str(Y.device)))
        return train(Y, A0, **kwargs)

    monkeypatch.setattr(_dict_learning, "alternating_fit", spy_fit)
    monkeypatch.setattr(_dict_learning, "encode_pass", spy_pass)
    monkeypatch.setattr(wlsc_torch, "train_unrolled", spy_train)
    Yt = torch.from_numpy(digits).to(CUDA)
    kw = dict(n_components=16, max_iter=3, random_state=0)
    gpu = WeightedL1SparseCoder(**kw).fit(Yt)
    assert ("fit", "torch", str(Yt.device)) in seen
    nb = WeightedL1SparseCoder(backend="numba", **kw).fit(digits)
    np.testing.assert_allclose(gpu.objective_path_, nb.objective_path_, rtol=1e-7)
    seen.clear()
    WeightedL1SparseCoder(**kw).partial_fit(Yt[:200])
    assert ("pass", "torch", str(Yt.device)) in seen
    seen.clear()
    WeightedL1SparseCoder(fit_algorithm="unrolled", n_layers=10, **kw).fit(Yt)
    assert ("train", "Tensor", str(Yt.device)) in seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_inverse_transform_stays_on_the_device(digits, dtype):
    est = WeightedL1SparseCoder(16, max_iter=3, random_state=0).fit(digits)
    codes = est.transform(torch.as_tensor(digits, dtype=dtype, device=CUDA))
    Y_hat = est.inverse_transform(codes)
    assert Y_hat.device == codes.device and Y_hat.dtype == dtype
    expected = est.inverse_transform(codes.cpu().numpy())
    np.testing.assert_allclose(
        Y_hat.cpu().numpy(),
        expected,
        rtol=1e-5 if dtype == torch.float32 else 1e-12,
        atol=1e-4 if dtype == torch.float32 else 1e-10,
    )


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_cuda_exact_encoder_counts_steps_as_numba_does(max_iter):
    rng = np.random.default_rng(0)
    Y, A = rng.standard_normal((300, 10)), rng.standard_normal((30, 10))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got = sparse_encode(Y, A, alpha=0.5, max_iter=max_iter, backend="torch", device="cuda")
        want = sparse_encode(Y, A, alpha=0.5, max_iter=max_iter, backend="numba")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
