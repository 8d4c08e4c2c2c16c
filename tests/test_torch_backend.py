"""The torch backend and the public torch module, against the numba backend,
the numpy reference and finite differences."""

import io
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import ConvergenceWarning

torch = pytest.importorskip("torch")

from sklearn_wlsc import _objective, sparse_encode  # noqa: E402
from sklearn_wlsc._backends import _numpy as numpy_backend  # noqa: E402
from sklearn_wlsc._backends import _torch as tb  # noqa: E402
from sklearn_wlsc._backends import get_backend  # noqa: E402
from sklearn_wlsc._simplex import project_simplex  # noqa: E402
from sklearn_wlsc.torch import UnrolledWLSC, train_unrolled  # noqa: E402

from .conftest import make_problem  # noqa: E402
from .test_encoders import _residual_objective  # noqa: E402
from .test_simplex import _planted_tie  # noqa: E402

ALGORITHMS = ["unrolled", "exact"]
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def _centered(Y, A):
    """Samples and atoms centered at the atoms' mean, as ``encode_pass`` encodes."""
    shift = A.mean(axis=0)
    return (Y - shift).astype(Y.dtype), (A - shift).astype(A.dtype)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch's CPU kernels on one thread: its OpenMP workers spin-wait
    and slow down by an order of magnitude when numba's threads (or other
    processes) compete for the cores."""
    with tb._limit_threads(torch, 1):
        yield


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits().data


# -- parity ----------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encode_matches_numba(rng, algorithm, dtype, order):
    Y, A = make_problem(rng, n=200, d=8, m=12, dtype=dtype)
    Y, A = np.asarray(Y, order=order), np.asarray(A, order=order)
    kw = dict(alpha=0.5, algorithm=algorithm, n_layers=50)
    X_nb = sparse_encode(Y, A, backend="numba", **kw)
    X_t = sparse_encode(Y, A, backend="torch", **kw)
    assert X_t.dtype == dtype and X_t.shape == (200, 12)
    atol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(X_t, X_nb, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unrolled_matches_numpy_reference(rng, dtype):
    Y, A = make_problem(rng, n=100, d=6, m=9, dtype=dtype)
    G, C = _objective.encoder_terms(*_centered(Y, A), 0.3)
    L = _objective.lipschitz_constant(A)
    X_ref = numpy_backend.unrolled_encode(G, C, L, 40)
    X = tb.unrolled_encode(torch.from_numpy(G), torch.from_numpy(C), 1.0 / L, 40).numpy()
    assert X.dtype == dtype
    np.testing.assert_allclose(X, X_ref, rtol=0, atol=1e-13 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("shape", [(300, 64, 64), (200, 3, 40)])
def test_exact_matches_numba_and_certifies_gap(shape, digits):
    n, d, m = shape
    rng = np.random.default_rng(1)
    if d == 64:
        Y = digits[rng.integers(0, len(digits), n)] + 0.1 * rng.standard_normal((n, d))
        A = digits[rng.choice(len(digits), m, replace=False)]
    else:
        Y, A = make_problem(rng, n=n, d=d, m=m)
    backend = get_backend("torch")
    Yc, Ac = _centered(Y, A)
    X, gap = backend.encode(Yc, Ac, 0.5, algorithm="exact", n_layers=0, tol=1e-10, max_iter=None)
    assert np.all(gap <= 1e-10)
    # recomputed in numpy, in the original coordinates
    G, C = _objective.encoder_terms(Y, A, 0.5)
    gap_np = _objective.duality_gap(X, _objective.gradient(X, G, C))
    assert np.all(gap_np <= 1e-9 * _objective.gap_scale(Y, A, 0.5))
    X_nb = sparse_encode(Y, A, alpha=0.5, backend="numba")
    f, f_nb = (_objective.sample_objective(Y, A, Z, 0.5) for Z in (X, X_nb))
    np.testing.assert_allclose(f, f_nb, rtol=1e-9)
    if m <= d:  # the minimizer is unique
        np.testing.assert_allclose(X, X_nb, rtol=0, atol=1e-6)


def test_read_only_and_strided_inputs(rng):
    Y, A = make_problem(rng, n=30, d=5, m=6)
    X = sparse_encode(Y, A, backend="torch", algorithm="unrolled")
    Yr = Y.copy()
    Yr.flags.writeable = False
    np.testing.assert_array_equal(sparse_encode(Yr, A, backend="torch", algorithm="unrolled"), X)
    backend = get_backend("torch")
    Yc, Ac = _centered(Y, A)
    X1, _ = backend.encode(Yc[::-1], Ac, 0.5, algorithm="unrolled", n_layers=50, tol=0, max_iter=1)
    X2, _ = backend.encode(Yc, Ac, 0.5, algorithm="unrolled", n_layers=50, tol=0, max_iter=1)
    np.testing.assert_allclose(X1[::-1], X2, atol=1e-14)


# -- tensors in, tensors out -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encode_tensor_keeps_type_dtype_device(rng, algorithm, dtype):
    Y, A = make_problem(rng, n=50, d=5, m=7, dtype=dtype)
    backend = get_backend("torch")
    Yc, Ac = _centered(Y, A)
    kw = dict(algorithm=algorithm, n_layers=30, tol=1e-10, max_iter=None)
    X, gap = backend.encode_tensor(torch.from_numpy(Yc), torch.from_numpy(Ac), 0.5, **kw)
    assert isinstance(X, torch.Tensor)
    assert X.dtype == TORCH_DTYPES[dtype] and X.device.type == "cpu"
    assert (gap is None) == (algorithm == "unrolled")
    X_np, gap_np = backend.encode(Yc, Ac, 0.5, **kw)
    np.testing.assert_array_equal(X.numpy(), X_np)
    if gap is not None:
        assert gap.dtype == torch.float64
        np.testing.assert_array_equal(gap.numpy(), gap_np)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encode_tensor_chunks_equal_whole(rng, algorithm):
    Y, A = make_problem(rng, n=101, d=5, m=7)
    Yc, Ac = (torch.from_numpy(a) for a in _centered(Y, A))
    X0 = torch.from_numpy(project_simplex(rng.standard_normal((101, 7))))
    kw = dict(algorithm=algorithm, n_layers=30, tol=1e-12, init_codes=X0)
    whole = tb.TorchBackend().encode_tensor(Yc, Ac, 0.5, **kw)
    chunked = tb.TorchBackend()
    chunked.cpu_chunk_elements = 7 * 13  # chunks of 13 rows
    parts = chunked.encode_tensor(Yc, Ac, 0.5, **kw)
    torch.testing.assert_close(parts[0], whole[0], rtol=0, atol=1e-12)
    if algorithm == "exact":
        assert bool((parts[1] <= 1e-12).all())


def test_encode_tensor_chunk_size_follows_the_device(rng, monkeypatch):
    """On the CPU, chunks of ``cpu_chunk_elements`` (cache-sized); elsewhere
    ``chunk_elements``."""
    assert tb.TorchBackend.cpu_chunk_elements == 2**19
    assert tb.TorchBackend.chunk_elements == 2**26
    Y, A = make_problem(rng, n=101, d=5, m=7)
    rows = []
    encode = tb.unrolled_encode

    def counting(G, C, step, n_layers):
        rows.append(C.shape[0])
        return encode(G, C, step, n_layers)

    monkeypatch.setattr(tb, "unrolled_encode", counting)
    backend = tb.TorchBackend(device="cpu")
    backend.cpu_chunk_elements = 7 * 13
    backend.encode_tensor(torch.from_numpy(Y), torch.from_numpy(A), 0.5)
    assert rows == [13] * 7 + [10]
    rows.clear()
    backend.cpu_chunk_elements, backend.chunk_elements = 2**19, 7 * 13
    backend.encode_tensor(torch.from_numpy(Y), torch.from_numpy(A), 0.5)
    assert rows == [101]


def test_project_simplex_matches_reference(rng):
    backend = get_backend("torch")
    for dtype in (np.float64, np.float32):
        V = (3.0 * rng.standard_normal((200, 17))).astype(dtype)
        V[0] = 0.5  # ties
        ref = project_simplex(V)
        out = backend.project_simplex(V)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, atol=1e-14 if dtype == np.float64 else 1e-6)
        out_t = backend.project_simplex(torch.from_numpy(V))
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == TORCH_DTYPES[dtype]
        np.testing.assert_allclose(out_t.numpy(), ref, atol=1e-14 if dtype == np.float64 else 1e-6)


_finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
# where a guess sits between the row's root τ and its largest entry:
# negative fractions are below τ, 0 is at it, 1 at max(v), inf beyond
_fractions = st.sampled_from([-np.inf, -10.0, -0.5, -1e-9, 0.0, 1e-9, 0.1, 0.5, 0.9, 1.0, np.inf])


@given(
    arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 25)), elements=_finite),
    st.sampled_from([1.0, 1e-2, 1e-3]),
    st.lists(_fractions, min_size=8, max_size=8),
    st.sampled_from([np.float64, np.float32]),
)
@settings(max_examples=200, deadline=None)
def test_simplex_threshold_from_any_guess(V, scale, fractions, dtype):
    """The sort-free search lands on the sort-based projection from no guess
    and from guesses below the root, at it, between it and the largest
    entry (above some of the support), at or beyond every entry, or
    infinite; it leaves ``V`` unchanged and its passes are bounded by the
    candidates it can drop. (Scaled rows have supports of many entries.)"""
    V = (V * scale).astype(dtype)
    n, m = V.shape
    expected = project_simplex(V.astype(np.float64))
    atol = 16 * np.finfo(dtype).eps * max(1.0, np.abs(V).max())
    Vt = torch.from_numpy(V)
    before = Vt.clone()
    root = tb.simplex_threshold(Vt).numpy()[:, 0].astype(np.float64)
    top = V.max(axis=1).astype(np.float64)
    frac = np.array(fractions[:n])
    with np.errstate(invalid="ignore"):
        guess = np.where(np.isinf(frac), frac, root + frac * (top - root))
    guess_t = torch.from_numpy(guess.astype(dtype))[:, None]
    # from max(v) − 1 (one pass to find) the candidate set only shrinks: at
    # most one pass per candidate and one that confirms the last
    candidates = int((V > (V.max(axis=1, keepdims=True) - 1)).sum(axis=1).max())
    for start, bound in ((None, candidates + 2), (guess_t, m + 3)):
        tau, passes = tb.simplex_threshold(Vt, start, return_passes=True)
        assert tau.shape == (n, 1) and tau.dtype == Vt.dtype
        assert passes <= bound
        X = torch.clamp(Vt - tau, min=0.0).numpy()
        np.testing.assert_allclose(X, expected, rtol=0, atol=atol)
    # from the root itself: the pass that checks it and one that confirms;
    # where an entry ties the root to rounding, the found root can sit an
    # ulp above the exact one, and the step down and the climb back take
    # two more (found by hypothesis: [3, 3.9999999999999996, ...])
    at_root = tb.simplex_threshold(Vt, tb.simplex_threshold(Vt), return_passes=True)[1]
    assert at_root <= 4
    torch.testing.assert_close(Vt, before, rtol=0, atol=0)


def test_simplex_threshold_known_values():
    """``[1, .5, .1, −.2]`` has the root ``τ = .25`` (support ``{1, .5}``).
    From the guess ``.6``, above ``.5``, one Newton step lands at ``0``,
    below the root but with ``.1`` still a candidate: the climb must go on
    rather than take that step's set for the support (which gives ``.2``)."""
    V = torch.tensor([[1.0, 0.5, 0.1, -0.2]] * 3, dtype=torch.float64)
    for guess in (None, 0.6, 0.25, 0.0, -5.0, 2.0):
        start = None if guess is None else torch.full((3, 1), guess, dtype=V.dtype)
        tau = tb.simplex_threshold(V, start)
        torch.testing.assert_close(tau, torch.full((3, 1), 0.25, dtype=V.dtype))
    # an entry an ulp from the root: restarting at the found root ends
    # within four passes, on the same threshold
    tie = torch.tensor(
        [[3.0, -3.0, 1.0, 3.9999999999999996, 0.9999999999999998]], dtype=torch.float64
    )
    root = tb.simplex_threshold(tie)
    again, passes = tb.simplex_threshold(tie, root, return_passes=True)
    assert passes <= 4
    torch.testing.assert_close(again, root, rtol=0, atol=1e-15)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["none", "below", "at", "above"]))
@settings(max_examples=100, deadline=None)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simplex_threshold_ends_at_a_rounding_tie(dtype, seed, start):
    """An entry within rounding of the root ends the climb (as in the numba
    kernel) instead of alternating between two candidate sets."""
    v, tau = _planted_tie(np.random.default_rng(seed), dtype)
    step = dtype(1e-3)
    guess = {"none": None, "below": tau - step, "at": tau, "above": tau + step}[start]
    Vt = torch.from_numpy(v[None])
    if guess is not None:
        guess = torch.tensor([[guess]], dtype=Vt.dtype)
    found, passes = tb.simplex_threshold(Vt, guess, return_passes=True)
    assert passes <= np.count_nonzero(v > v.max() - 1) + 3
    atol = 10 * np.finfo(dtype).eps
    assert abs(float(found) - float(tau)) <= atol
    expected = project_simplex(v[None].astype(np.float64))
    np.testing.assert_allclose(torch.clamp(Vt - found, min=0.0).numpy(), expected, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unrolled_sort_free_projection_matches_sort(rng, dtype):
    """Without gradients the network finds each threshold by the sort-free
    search from the previous layer's; with them, by sorting. The codes agree
    to rounding, over every layer count."""
    Y, A = make_problem(rng, n=400, d=8, m=24, dtype=dtype)
    G, C = (torch.from_numpy(a) for a in _objective.encoder_terms(*_centered(Y, A), 0.5))
    step = 1.0 / _objective.lipschitz_constant(A)
    atol = 1e-13 if dtype == np.float64 else 1e-6
    for n_layers in (1, 2, 7, 50):
        with torch.no_grad():
            fast = tb.unrolled_encode(G, C, step, n_layers)
        sorted_ = tb.unrolled_encode(G, C.clone().requires_grad_(True), step, n_layers)
        torch.testing.assert_close(fast, sorted_.detach(), rtol=0, atol=atol)
    # the benchmark's baseline (``--sorted``) is the same network, sorted
    from benchmarks.torch_backend import sorted_unrolled_encode

    baseline = sorted_unrolled_encode(torch, G, C, step, 50)
    torch.testing.assert_close(baseline, sorted_.detach(), rtol=0, atol=atol)


def test_pass_chunk_rows_follow_the_device(rng):
    """Passes over numpy data use the CPU's chunks on the CPU and chunks of
    ``2**24`` elements on other devices (launch-bound on a GPU otherwise),
    and ``encode_pass`` asks the backend."""
    from sklearn_wlsc._backends._base import CHUNK_ROWS
    from sklearn_wlsc._dict_learning import encode_pass

    assert tb.TorchBackend().pass_chunk_rows(64, 64) == CHUNK_ROWS
    assert tb.TorchBackend(device="cpu").pass_chunk_rows(784, 500) == CHUNK_ROWS
    assert get_backend("numba").pass_chunk_rows(64, 64) == CHUNK_ROWS
    assert tb.TorchBackend().pass_chunk_rows(64, 64, "unrolled") == CHUNK_ROWS
    meta = tb.TorchBackend(device="meta")  # a non-CPU device on any machine
    assert meta.pass_chunk_rows(64, 64, "unrolled") == 2**24 // 64
    assert meta.pass_chunk_rows(784, 500, "unrolled") == 2**24 // 784
    assert meta.pass_chunk_rows(3, 4, "unrolled") == 2**24 // 4
    assert meta.pass_chunk_rows(4096, 64, "unrolled") == CHUNK_ROWS
    # the exact encoder's active set keeps the CPU's chunks everywhere
    assert meta.pass_chunk_rows(64, 64, "exact") == CHUNK_ROWS
    assert meta.pass_chunk_rows(64, 64) == CHUNK_ROWS

    class Counting(tb.TorchBackend):
        calls = 0

        def pass_chunk_rows(self, n_features, n_components, algorithm="exact"):
            assert algorithm == "unrolled"
            return 7

        def encode(self, Y, *args, **kwargs):
            Counting.calls += 1
            return super().encode(Y, *args, **kwargs)

    Y, A = make_problem(rng, n=30, d=5, m=6)
    kw = dict(algorithm="unrolled", n_layers=20)
    X = encode_pass(Y, A, 0.5, Counting(), **kw).codes
    assert Counting.calls == 5
    np.testing.assert_allclose(
        X, encode_pass(Y, A, 0.5, get_backend("torch"), **kw).codes, rtol=0, atol=1e-13
    )


def test_dictionary_statistics(rng):
    backend = get_backend("torch")
    X = project_simplex(rng.standard_normal((40, 6)))
    Y = rng.standard_normal((40, 3))
    for got in (
        backend.dictionary_statistics(X, Y),
        [
            s.numpy()
            for s in backend.dictionary_statistics(torch.from_numpy(X), torch.from_numpy(Y))
        ],
    ):
        for a, b in zip(got, _objective.dictionary_statistics(X, Y)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_device_errors():
    with pytest.raises(ValueError, match="invalid_device|Invalid"):
        tb.TorchBackend(device="invalid_device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda:1"):
            tb.TorchBackend(device="cuda:1")
        with pytest.raises(ValueError, match="CUDA"):
            tb.TorchBackend(device=torch.device("cuda"))
    assert tb.TorchBackend(device="cpu").device == torch.device("cpu")


def test_missing_torch_message_and_lazy_import():
    code = textwrap.dedent(
        """
        import sys
        import sklearn_wlsc
        from sklearn_wlsc._backends import get_backend
        assert "torch" not in sys.modules, "import sklearn_wlsc imported torch"
        # scikit-learn and SciPy look torch up in sys.modules and fail on
        # None, so torch is hidden only after they are imported
        sys.modules["torch"] = None
        try:
            get_backend("torch")
        except ImportError as exc:
            assert 'pip install "sklearn-wlsc[torch]"' in str(exc), str(exc)
        else:
            raise AssertionError("no ImportError")
        try:
            import sklearn_wlsc.torch
        except ImportError as exc:
            assert 'pip install "sklearn-wlsc[torch]"' in str(exc), str(exc)
        else:
            raise AssertionError("no ImportError")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- the module ---------------------------------------------------------------------


def test_module_codes_equal_backend_codes(rng):
    Y, A = make_problem(rng, n=60, d=5, m=7)
    model = UnrolledWLSC(7, 5, alpha=0.4, n_layers=25, dictionary=A)
    codes, recon = model(torch.from_numpy(Y))
    X = sparse_encode(Y, A, alpha=0.4, algorithm="unrolled", n_layers=25, backend="torch")
    np.testing.assert_allclose(codes.detach().numpy(), X, atol=1e-12)
    np.testing.assert_allclose(recon.detach().numpy(), X @ A, atol=1e-10)
    loss = float(model.loss(torch.from_numpy(Y), codes).detach())
    assert loss == pytest.approx(_objective.objective(Y, A, X, 0.4), rel=1e-10)
    assert model.weight.dtype == torch.float64 and model.step is None


@pytest.mark.parametrize("train_step", [False, True])
def test_module_gradients_match_finite_differences(train_step):
    rng = np.random.default_rng(3)
    Y, A = make_problem(rng, n=4, d=3, m=4)
    y = torch.from_numpy(Y)
    model = UnrolledWLSC(4, 3, alpha=0.5, n_layers=6, train_step=True, dictionary=A)
    step0 = model.step.detach().clone()

    class Objective(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, y):
            return self.model.loss(y, self.model(y)[0])

    wrapper = Objective()

    def objective(weight, step):
        """F of the module's codes, as a function of its parameters."""
        params = {"model.weight": weight, "model.step": step if train_step else step0}
        return torch.func.functional_call(wrapper, params, (y,))

    weight = model.weight.detach().clone().requires_grad_(True)
    step = step0.clone().requires_grad_(train_step)
    assert torch.autograd.gradcheck(objective, (weight, step), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_module_step_is_recomputed_without_gradient(rng):
    Y, A = make_problem(rng, n=10, d=4, m=5)
    model = UnrolledWLSC(5, 4, n_layers=5, dictionary=A)
    assert model.step_size() == pytest.approx(1.0 / _objective.lipschitz_constant(A))
    y = torch.from_numpy(Y)
    model.loss(y, model(y)[0]).backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def test_module_state_dict_pickles_to_cpu(rng):
    Y, A = make_problem(rng, n=30, d=4, m=5, dtype=np.float32)
    model = UnrolledWLSC(5, 4, n_layers=10, train_step=True, dictionary=A)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    y = torch.from_numpy(Y)
    for _ in range(3):
        optimizer.zero_grad()
        model.loss(y, model(y)[0]).backward()
        optimizer.step()
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    clone = UnrolledWLSC(5, 4, n_layers=10, train_step=True, dtype=torch.float32)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(clone(y)[0], model(y)[0])
    again = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(again(y)[0], model(y)[0])


# -- training ---------------------------------------------------------------------


def test_train_unrolled_lowers_objective_on_digits(digits):
    rng = np.random.RandomState(0)
    A0 = digits[rng.choice(len(digits), 64, replace=False)]
    Y = digits.astype(np.float32)
    seen = []
    A, history, n_epochs = train_unrolled(
        Y,
        A0,
        alpha=0.5,
        n_layers=20,
        learning_rate=1e-2,
        batch_size=256,
        max_epochs=3,
        tol=0.0,
        random_state=0,
        device="cpu",
        callback=seen.append,
    )
    assert n_epochs == 3 and len(history) == 4 and len(seen) == 3
    assert A.dtype == np.float64 and A.shape == (64, 64)
    assert all(b < a for a, b in zip(history, history[1:]))
    assert history[-1] < 0.9 * history[0]
    # the history is F of the unrolled codes, in the original units
    X = sparse_encode(digits, A, alpha=0.5, algorithm="unrolled", n_layers=20)
    assert history[-1] == pytest.approx(_objective.objective(digits, A, X, 0.5), rel=1e-4)
    # the same seed gives the same atoms
    kw = dict(alpha=0.5, n_layers=5, learning_rate=1e-2, batch_size=64, max_epochs=1)
    A2, _, _ = train_unrolled(Y[:300], A0, random_state=0, **kw)
    A3, _, _ = train_unrolled(Y[:300], A0, random_state=np.random.RandomState(0), **kw)
    A4, _, _ = train_unrolled(Y[:300], A0, random_state=0, **kw)
    np.testing.assert_array_equal(A2, A4)
    assert not np.array_equal(A2, A3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1, got 0"),
        ({"n_components": True}, "n_components must be an integer, got True"),
        ({"n_features": 2.5}, "n_features must be an integer, got 2.5"),
        ({"n_layers": 0}, "n_layers must be an integer >= 1"),
        ({"n_layers": True}, "n_layers must be an integer, got True"),
        ({"alpha": -1.0}, r"alpha must be a finite number in \[0, 1e\+06\], got -1.0"),
        ({"alpha": 1e7}, "alpha must be a finite number"),
        ({"alpha": float("nan")}, "alpha must be a finite number"),
        ({"train_step": "no"}, "train_step must be True or False"),
        ({"dictionary": np.full((4, 3), np.nan)}, "dictionary contains NaN"),
        ({"dictionary": np.full((4, 3), "a")}, "dictionary must hold real numbers"),
    ],
)
def test_unrolled_module_refuses_bad_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        UnrolledWLSC(**{"n_components": 4, "n_features": 3, **kwargs})


def test_unrolled_module_and_training_take_any_numpy_layout(rng):
    # negative strides, big-endian and read-only atoms work, as elsewhere
    A = rng.standard_normal((4, 3))
    Y = rng.standard_normal((20, 3))
    ref = UnrolledWLSC(4, 3, dictionary=A)(torch.as_tensor(Y))[0]
    read_only = A.copy()
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on arrays it cannot write
        for layout in (A[::-1][::-1], A.astype(">f8"), read_only, np.asfortranarray(A)):
            got = UnrolledWLSC(4, 3, dictionary=layout)(torch.as_tensor(Y))[0]
            torch.testing.assert_close(got, ref, rtol=0, atol=0)
        kw = dict(n_layers=5, max_epochs=1, random_state=0)
        A_ref, _, _ = train_unrolled(Y, A[::-1].copy(), **kw)
        for layout in (A[::-1], read_only[::-1], A[::-1].astype(">f8")):
            A_got, _, _ = train_unrolled(Y, layout, **kw)
            np.testing.assert_array_equal(A_got, A_ref)


def test_train_unrolled_refuses_a_bool_step_flag():
    with pytest.raises(TypeError, match="train_step must be True or False"):
        train_unrolled(np.ones((5, 3)), np.zeros((2, 3)), max_epochs=1, train_step="yes")


def test_unrolled_module_refuses_samples_of_the_wrong_shape():
    model = UnrolledWLSC(4, 3, dictionary=np.eye(4, 3))
    with pytest.raises(ValueError, match=r"y has shape \(5, 4\).*n_features=3"):
        model(torch.zeros(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="y has shape"):
        model.encode(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("Y", "A0", "kwargs", "match"),
    [
        (np.full((5, 3), np.nan), np.zeros((2, 3)), {}, "NaN"),
        (torch.full((5, 3), float("inf")), np.zeros((2, 3)), {}, "NaN or infinity"),
        (np.ones((5, 3)), np.zeros((2, 4)), {}, "A0 has 4 features, but Y has 3"),
        (np.ones((5, 3)), np.full((2, 3), np.nan), {}, "NaN"),
        (np.ones((0, 3)), np.zeros((2, 3)), {}, "0 sample"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"learning_rate": 0.0}, "learning_rate"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"batch_size": 0}, "batch_size"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"alpha": 2e6}, "alpha"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"alpha": float("nan")}, "alpha"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"learning_rate": float("nan")}, "learning_rate"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"learning_rate": float("inf")}, "learning_rate"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"tol": float("nan")}, "tol"),
        (np.ones((5, 3)), np.zeros((2, 3)), {"clip_grad_norm": float("nan")}, "clip_grad_norm"),
    ],
)
def test_train_unrolled_refuses_bad_input(Y, A0, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_unrolled(Y, A0, max_epochs=1, **kwargs)


@pytest.mark.parametrize("clip", [0.0, -1.0])
def test_train_unrolled_refuses_a_clip_norm_that_is_not_positive(clip):
    with pytest.raises(ValueError, match="clip_grad_norm"):
        train_unrolled(np.ones((5, 3)), np.zeros((2, 3)), max_epochs=1, clip_grad_norm=clip)


@pytest.mark.filterwarnings("error")
def test_train_unrolled_with_a_learned_step_warns_nothing(rng):
    Y = rng.standard_normal((40, 4))
    seen = []
    A, history, n_epochs = train_unrolled(
        Y, Y[:3], n_layers=8, max_epochs=2, train_step=True, random_state=0, callback=seen.append
    )
    assert n_epochs == 2 and len(history) == 3
    assert all(info["step"] > 0 for info in seen)


@pytest.mark.parametrize("max_iter", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("seed", range(6))
def test_exact_encoder_counts_steps_as_numba_does(max_iter, seed):
    # from the best vertex, the first step only checks the gap and grows
    # the support, which the numba kernel does not count; and a capped
    # active set keeps its point of lower objective: when the cap binds,
    # both backends stop at the same codes
    rng = np.random.default_rng(seed)
    n, d, m = 200, int(rng.integers(3, 12)), int(rng.integers(5, 40))
    Y, A = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for alpha in (0.2, 1.0, 5.0):
            got = sparse_encode(Y, A, alpha=alpha, max_iter=max_iter, backend="torch")
            want = sparse_encode(Y, A, alpha=alpha, max_iter=max_iter, backend="numba")
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "dtype,algorithm,big",
    [
        (np.float64, "exact", 1e200),
        (np.float64, "unrolled", 1e160),
        (np.float32, "exact", 1e30),
        (np.float32, "unrolled", 1e20),
    ],
)
def test_tensor_pass_encodes_huge_rows_on_their_own(dtype, algorithm, big):
    # tensors take the arrays' route: a huge row is encoded in a pass of its
    # own, and the other rows keep their codes
    from sklearn_wlsc import sparse_encode

    rng = np.random.default_rng(9)
    A = rng.standard_normal((6, 4)).astype(dtype)
    Y = np.vstack([rng.standard_normal((20, 4)), np.full((1, 4), big)]).astype(dtype)
    kw = dict(alpha=0.5, algorithm=algorithm)
    X_t = tb.TorchBackend().encode_tensor_pass(torch.from_numpy(Y), A, 0.5, algorithm=algorithm)
    X_np = sparse_encode(Y, A, backend="torch", **kw)
    np.testing.assert_allclose(X_t.numpy(), X_np, atol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(X_t.numpy()[:-1], sparse_encode(Y[:-1], A, **kw), atol=1e-5)
    assert X_t.numpy()[-1].max() == 1.0


def test_tensor_pass_encodes_far_groups_in_local_frames():
    # a group of six atoms 1e8 away holds the atoms' median: the unit
    # samples are encoded again around their nearest atom, as for arrays
    from sklearn_wlsc import sparse_encode

    rng = np.random.default_rng(1)
    B = rng.standard_normal((5, 4))
    Y = rng.standard_normal((25, 4))
    u = rng.standard_normal(4)
    A = np.vstack([1e8 * u / np.linalg.norm(u) + rng.standard_normal((6, 4)), B])
    X_t = tb.TorchBackend().encode_tensor_pass(torch.from_numpy(Y), A, 0.5, algorithm="exact")
    X_ref = np.hstack([np.zeros((25, 6)), sparse_encode(Y, B, alpha=0.5, backend="numpy")])
    np.testing.assert_allclose(X_t.numpy(), X_ref, atol=1e-7)


def _objective_of(model, Y):
    y = torch.from_numpy(Y)
    with torch.no_grad():
        return float(model.loss(y, model.encode(y)))


@pytest.mark.parametrize("scale", [1.0, 2.0**300])
def test_train_unrolled_returns_the_step_it_learned(rng, scale):
    Y = scale * rng.standard_normal((80, 5))
    seen = []
    kw = dict(n_layers=12, max_epochs=6, learning_rate=2e-2, batch_size=20, random_state=0)
    A, history, n_epochs, step = train_unrolled(
        Y, Y[:4], train_step=True, return_step=True, callback=seen.append, **kw
    )
    assert n_epochs == 6 and step == seen[-1]["step"] > 0
    # the atoms and the step together are the trained network: its objective
    # on Y is the last one reported
    trained = UnrolledWLSC(4, 5, n_layers=12, dictionary=A, step=step)
    assert isinstance(trained.step, torch.Tensor) and not trained.step.requires_grad
    assert [name for name, _ in trained.named_parameters()] == ["weight"]
    np.testing.assert_allclose(_objective_of(trained, Y), history[-1], rtol=1e-10)
    # the step moved away from 1 / L, so the atoms alone are another network
    default = UnrolledWLSC(4, 5, n_layers=12, dictionary=A)
    assert abs(step * _objective.lipschitz_constant(A) - 1.0) > 1e-3
    assert abs(_objective_of(default, Y) - history[-1]) > 1e-8 * history[-1]
    # the step is in the data's units: 1 / units²
    _, _, _, step1 = train_unrolled(
        Y / scale, Y[:4] / scale, train_step=True, return_step=True, **kw
    )
    np.testing.assert_allclose(step, step1 / scale**2, rtol=1e-10)
    # the same settings without return_step return the same three values
    A2, history2, n2 = train_unrolled(Y, Y[:4], train_step=True, **kw)
    np.testing.assert_array_equal(A2, A)
    assert history2 == history and n2 == n_epochs


def test_train_unrolled_returns_one_over_l_without_a_learned_step(rng):
    Y = rng.standard_normal((80, 5))
    A, history, _, step = train_unrolled(
        Y, Y[:4], n_layers=12, max_epochs=3, random_state=0, return_step=True
    )
    np.testing.assert_allclose(step, 1.0 / _objective.lipschitz_constant(A), rtol=1e-10)
    model = UnrolledWLSC(4, 5, n_layers=12, dictionary=A, step=step)
    np.testing.assert_allclose(_objective_of(model, Y), history[-1], rtol=1e-10)


def test_unrolled_module_with_a_given_step(rng):
    Y = torch.from_numpy(rng.standard_normal((30, 4)))
    A = Y[:5].clone()
    step = 0.5 / _objective.lipschitz_constant(A.numpy())
    fixed = UnrolledWLSC(5, 4, n_layers=7, dictionary=A, step=step)
    want = tb.unrolled_encode(*tb.encoder_terms(Y - A.mean(0), A - A.mean(0), 0.5), step, 7)
    torch.testing.assert_close(fixed.encode(Y), want, rtol=0, atol=1e-14)
    # a buffer: saved with the module, not trained
    assert "step" in fixed.state_dict() and fixed.step.item() == step
    loaded = UnrolledWLSC(5, 4, n_layers=7, step=1.0, dtype=torch.float64)
    loaded.load_state_dict(fixed.state_dict())
    torch.testing.assert_close(loaded.encode(Y), want, rtol=0, atol=1e-14)
    # with train_step, the learned step starts from the one given
    learned = UnrolledWLSC(5, 4, n_layers=7, dictionary=A, step=step, train_step=True)
    assert learned.step.requires_grad and learned.step.item() == step
    learned.loss(Y, learned.encode(Y)).backward()
    assert learned.step.grad is not None


@pytest.mark.parametrize("step", [0.0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_unrolled_module_refuses_a_bad_step(step):
    with pytest.raises((ValueError, TypeError), match="step"):
        UnrolledWLSC(2, 3, step=step)


def test_train_unrolled_refuses_a_bool_return_step_flag():
    with pytest.raises(TypeError, match="return_step"):
        train_unrolled(np.ones((5, 3)), np.zeros((2, 3)), max_epochs=1, return_step=1)


@pytest.mark.parametrize("seed", range(8))
def test_exact_encoder_matches_numba_with_a_far_group_of_atoms(seed):
    from sklearn_wlsc._dict_learning import encode_pass

    # some atoms 1e4–1e9 away from the others: the supports that mix far
    # atoms are singular to the factorization's pivots. The torch active set
    # used to leave such rows to FISTA, whose step the far atoms make
    # useless (codes up to 82 % of the vertex scale above numba's at α = 0)
    rng = np.random.default_rng(seed)
    for trial in range(3):
        # the first: half of ten atoms 1e8 away, in six dimensions
        d, m = (6, 10) if trial == 0 else (int(rng.integers(2, 8)), int(rng.integers(5, 13)))
        k = m // 2 if trial == 0 else int(rng.integers(1, m))
        A = rng.standard_normal((m, d))
        A[k:] += (1e8 if trial == 0 else 10.0 ** rng.integers(4, 10)) * rng.standard_normal(d)
        for offset in (np.zeros(d), A[k:].mean(axis=0)):
            Y = rng.standard_normal((60, d)) + offset
            for alpha in (0.0, 0.3):
                got = encode_pass(Y, A, alpha, get_backend("torch"), warn=False)
                want = encode_pass(Y, A, alpha, get_backend("numba"), warn=False)
                f_got, scale = _residual_objective(Y, A, got.codes, alpha)
                f_want, _ = _residual_objective(Y, A, want.codes, alpha)
                assert np.all(f_got - f_want <= 1e-12 * scale), (d, m, k, alpha)
                # and certified where numba's are, to rounding: Newton's
                # steps from the gradient refine a point whose terms are
                # large, as numba's do (the minimizer solved for directly left
                # gaps of 1e-4–1e-1 where numba certified 1e-10; one unit in
                # the last place of a far atom's weight can move the gap by
                # about 1e-8)
                certified = want.gap <= 1e-10
                assert np.all(got.gap[certified] <= 1e-7), (d, m, k, alpha)


def _singular_supports(rng, b=40, m=9, d=3):
    """Atoms with an affinely dependent one (a mixture of two others) and
    supports that hold all three, in random orders."""
    A = rng.standard_normal((m, d))
    A[m - 1] = 0.3 * A[0] + 0.7 * A[1]
    G = torch.from_numpy(A @ A.T)
    others = np.arange(2, m - 1)
    sup = torch.from_numpy(
        np.array(
            [
                rng.permutation(np.r_[0, 1, m - 1, rng.choice(others, d - 1, replace=False)])
                for _ in range(b)
            ]
        )
    )
    valid = torch.ones_like(sup, dtype=torch.bool)
    g = torch.from_numpy(rng.standard_normal((b, m)))
    return A, G, sup, valid, g


def test_pivoted_support_step_follows_a_flat_downhill_direction(rng):
    A, G, sup, valid, g = _singular_supports(rng)
    shift = _objective.robust_shift(np.diag(A @ A.T))
    p, singular, reach, _, ok = tb._pivoted_support_step(G, g, sup, valid, shift, 1e-12 * 2 * shift)
    assert singular.all() and ok.all()
    # flat, to rounding: followed to the boundary (or as good as)
    assert bool((reach > 1e6).all())
    for i in range(sup.shape[0]):
        full = np.zeros(A.shape[0])
        np.add.at(full, sup[i].numpy(), p[i].numpy())
        assert abs(full.sum()) <= 1e-12  # along the simplex's affine hull
        assert full @ (A @ A.T) @ full <= 1e-10 * (full @ full)  # of zero curvature
        assert g[i].numpy() @ full <= 0.0  # downhill
        # through the first pivot that depends on the atoms before it: its
        # entry is ∓Σq = ∓1 for an affine combination, the entries after it zero
        r = int(np.flatnonzero(p[i].numpy())[-1])
        assert abs(abs(float(p[i, r])) - 1.0) <= 1e-9 and r >= 1


def test_pivoted_support_step_is_newtons_on_regular_supports(rng):
    m, d = 8, 6
    A = rng.standard_normal((m, d))
    G = torch.from_numpy(A @ A.T)
    sup = torch.stack([torch.from_numpy(rng.permutation(m)[:4]) for _ in range(30)])
    valid = torch.ones_like(sup, dtype=torch.bool)
    valid[::3, 3] = False  # some shorter supports, padded
    X = torch.zeros(30, m, dtype=torch.float64)
    w = torch.from_numpy(rng.dirichlet(np.ones(4), size=30)) * valid
    X.scatter_(1, sup, w / w.sum(dim=1, keepdim=True))
    C = torch.from_numpy(rng.standard_normal((30, m)))
    shift = _objective.robust_shift(np.diag(A @ A.T))
    eps = 1e-12 * 2 * shift
    p, singular, reach, _, ok = tb._pivoted_support_step(G, X @ G - C, sup, valid, shift, eps)
    assert ok.all() and not singular.any() and bool((reach == 1.0).all())
    p_lapack, ok_lapack = tb._newton_step(G, X @ G - C, sup, valid, shift, eps)
    assert ok_lapack.all()
    torch.testing.assert_close(p, p_lapack, rtol=0, atol=1e-12)
    # the step reaches the minimizer on the support: there the gradient is
    # the same on every atom of the support, and Σx stays 1
    x_new = X.clone()
    x_new.scatter_add_(1, sup, p)
    g_new = (x_new @ G - C).gather(1, sup)
    spread = torch.where(valid, g_new, -torch.inf).amax(dim=1) - torch.where(
        valid, g_new, torch.inf
    ).amin(dim=1)
    assert float(spread.max()) <= 1e-10 and torch.allclose(
        x_new.sum(dim=1), torch.ones(30, dtype=torch.float64)
    )


def test_pivoted_support_step_stops_at_the_minimum_between_nearly_equal_atoms(rng):
    # an atom 1e-6 from another is not dependent on it, but its pivot is
    # small: the step along the direction between them must stop where
    # the objective is least along it, not run to the boundary
    m, d = 6, 4
    A = rng.standard_normal((m, d))
    A[5] = A[2] + 1e-6 * rng.standard_normal(d)
    G = torch.from_numpy(A @ A.T)
    sup = torch.tensor([[0, 2, 5], [2, 1, 5]])
    valid = torch.ones_like(sup, dtype=torch.bool)
    g = torch.from_numpy(rng.standard_normal((2, m)))
    shift = _objective.robust_shift(np.diag(A @ A.T))
    p, singular, reach, _, ok = tb._pivoted_support_step(G, g, sup, valid, shift, 1e-12 * 2 * shift)
    assert singular.all() and ok.all() and bool(torch.isfinite(reach).all())
    for i in range(2):
        full = np.zeros(m)
        np.add.at(full, sup[i].numpy(), p[i].numpy())
        assert abs(full.sum()) <= 1e-15 * np.abs(full).sum()
        slope, curvature = g[i].numpy() @ full, full @ (A @ A.T) @ full
        assert slope < 0 < curvature
        # the curvature, 1e-12 of the terms it is summed from, has about
        # four correct digits in either computation
        np.testing.assert_allclose(float(reach[i]), -slope / curvature, rtol=1e-3)


@pytest.mark.parametrize("seed", [12, 13, 28, 33])
def test_exact_encoder_settles_rows_between_atoms_closer_than_rounding(seed):
    # a pair of atoms 1e-8 apart curves less than the Gram form resolves: a
    # row beside it goes from one atom of the pair to the other, and cannot
    # be certified. The active set stops it after a few returns, and the
    # encoder leaves it there instead of running FISTA rounds to max_iter
    # (which made such calls 10-20 times slower than numba's)
    rng = np.random.default_rng(seed)
    d, m0 = int(rng.integers(2, 6)), int(rng.integers(3, 7))
    B = rng.standard_normal((m0, d))
    twins = B[rng.integers(0, m0, size=3)] + 1e-8 * rng.standard_normal((3, d))
    A = np.vstack([B, twins])
    Y = rng.standard_normal((40, d))
    center = np.median(A, axis=0)
    A_c, Y_c = torch.from_numpy(A - center), torch.from_numpy(Y - center)
    scale = tb.gap_scale(Y_c, A_c, 0.0)
    max_iter = 20 * len(A) + 100
    X, gap, n_iter = tb.exact_encode(
        A_c @ A_c.T,
        Y_c @ A_c.T,
        1e-10 * scale,
        max_iter,
        y_norms=Y_c.norm(dim=1),
        alpha=0.0,
    )
    assert bool((gap > 1e-10 * scale).any())  # such a row is there
    assert n_iter <= max_iter // 4
    # and its code is numba's, to the pair's resolution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        want = sparse_encode(Y, A, alpha=0.0, backend="numba")
    f_got, f_scale = _residual_objective(Y, A, X.numpy(), 0.0)
    f_want, _ = _residual_objective(Y, A, want, 0.0)
    assert np.all(f_got - f_want <= 1e-9 * f_scale)
