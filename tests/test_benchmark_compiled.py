"""The C kernels of ``benchmarks/compiled.py`` compute the library's network:
their codes match the numpy reference and the numba kernel (their timings
are not tested). Skipped where no C compiler is installed."""

import shutil

import numpy as np
import pytest

from benchmarks import compiled
from sklearn_wlsc._backends._numpy import unrolled_encode as reference

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return compiled.compile_kernels("gcc", str(tmp_path_factory.mktemp("kernels")))


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [5, 64, 100])
def test_compiled_kernels_match_the_reference_network(kernels, rng, alpha, dtype, m):
    Y, A = compiled.make_data(301, m, m, rng)
    G_step, C, inv_L, betas, G, L = compiled.encoder_inputs(Y, A, alpha, 30, dtype)
    X_ref = reference(G, C, L, 30)
    X_numba = np.empty_like(C)
    compiled.encode_numba(G_step, C, inv_L, betas, X_numba)
    names = ["C"] + (["AVX-512"] if m == 64 and ("AVX-512", C.dtype) in kernels else [])
    for name in names:
        if (name, C.dtype) not in kernels:
            continue
        X = np.full_like(C, np.nan)
        compiled.encode_c(kernels[(name, C.dtype)], name, G_step, C, inv_L, betas, X)
        np.testing.assert_allclose(X, X_ref, rtol=0, atol=TOL[C.dtype], err_msg=name)
        np.testing.assert_allclose(X, X_numba, rtol=0, atol=TOL[C.dtype], err_msg=name)
        np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=TOL[C.dtype])


def test_avx512_kernel_is_compiled_where_the_processor_has_it(kernels):
    assert (("AVX-512", np.dtype(np.float64)) in kernels) == compiled.has_avx512f()
    assert ("C", np.dtype(np.float32)) in kernels


def test_report_has_one_row_per_kernel(capsys):
    report = compiled.main(
        ["--sizes", "130x64", "--alphas", "0.5", "--dtypes", "float64", "--repeats", "1"]
    )
    (result,) = report["results"]
    names = [row["kernel"] for row in result["rows"]]
    assert names[:2] == ["numba", "C"]
    assert ("AVX-512" in names) == compiled.has_avx512f()
    for row in result["rows"]:
        assert row["max_diff_from_numba"] < 1e-12
        assert row["max_diff_from_reference"] < 1e-12
        assert row["us_per_sample"] > 0
    out = capsys.readouterr().out
    assert "numba against compiled C" in out and "| 130, d=m=64, α=0.5, float64 | C |" in out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_kernels_return_exact_vertices_where_the_gradient_vanishes(kernels, rng, dtype):
    # as the library's kernels do (tests/test_encoders.py): a row of C equal
    # to a row of G has the code e_r exactly, with no rounding dust
    from sklearn_wlsc import _objective
    from sklearn_wlsc._backends._base import momentum_schedule
    from sklearn_wlsc._backends._numba import aligned_empty

    dtype = np.dtype(dtype)
    A = rng.standard_normal((64, 40))
    A -= A.mean(axis=0)
    G = (A @ A.T).astype(dtype)
    rows = rng.choice(64, 11, replace=False)
    C = G[rows].copy()
    inv_L = dtype.type(1.0 / _objective.lipschitz_constant(A))
    G_step = aligned_empty(G.shape, dtype)
    np.multiply(G, inv_L, out=G_step)
    betas = momentum_schedule(50, dtype)
    for name in ["C", "AVX-512"]:
        if (name, dtype) in kernels:
            X = np.full_like(C, np.nan)
            compiled.encode_c(kernels[(name, dtype)], name, G_step, C, inv_L, betas, X)
            np.testing.assert_array_equal(X, np.eye(64, dtype=dtype)[rows], err_msg=name)
