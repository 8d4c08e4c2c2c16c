"""The C kernels of ``benchmarks/compiled.py`` compute the library's network:
their codes match the numpy reference and the numba kernel (their timings
are not tested). Skipped where no working C compiler is installed; the
AVX-512 kernel's tests are skipped, visibly, where the processor lacks
AVX-512F."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from benchmarks import compiled
from sklearn_wlsc import _objective
from sklearn_wlsc._backends._base import momentum_schedule
from sklearn_wlsc._backends._numba import aligned_empty
from sklearn_wlsc._backends._numpy import unrolled_encode as reference

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}
KERNELS = [("C", np.float64), ("C", np.float32), ("AVX-512", np.float64)]


def _compiler_works(tmp_path):
    if shutil.which("gcc") is None:
        return False
    source = tmp_path / "probe.c"
    source.write_text("int probe(void) { return 1; }\n")
    command = ["gcc", "-O2", "-fPIC", "-shared", "-o", str(tmp_path / "probe.so"), str(source)]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kernels")
    if not _compiler_works(directory):
        pytest.skip("needs a working gcc")
    kernels, failures = compiled.compile_kernels("gcc", str(directory))
    # a compiler that builds a probe must build the kernels
    assert not failures
    return kernels


def _kernel(kernels, name, dtype):
    if name == "AVX-512" and not compiled.has_avx512f():
        pytest.skip("the processor has no AVX-512F")
    return kernels[(name, np.dtype(dtype))]


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("m", [5, 64, 100])
@pytest.mark.parametrize(("name", "dtype"), KERNELS)
def test_compiled_kernels_match_the_reference_network(kernels, rng, name, dtype, m, alpha):
    if name == "AVX-512" and m != 64:
        pytest.skip("the AVX-512 kernel is for m = 64 only")
    kernel = _kernel(kernels, name, dtype)
    Y, A = compiled.make_data(301, m, m, rng)
    G_step, C, inv_L, betas, G, L = compiled.encoder_inputs(Y, A, alpha, 30, dtype)
    X_ref = reference(G, C, L, 30)
    X_numba = np.empty_like(C)
    far_numba = compiled.encode_numba(G_step, C, inv_L, betas, X_numba)
    X = np.full_like(C, np.nan)
    far = compiled.encode_c(kernel, name, G_step, C, inv_L, betas, X)
    # the same rows are left to the kernel for values far from zero, and
    # only those are not written
    np.testing.assert_array_equal(far, far_numba)
    assert np.isnan(X[far]).all()
    near = ~far
    tol = TOL[C.dtype]
    np.testing.assert_allclose(X[near], X_ref[near], rtol=0, atol=tol)
    np.testing.assert_allclose(X[near], X_numba[near], rtol=0, atol=tol)
    np.testing.assert_allclose(X[near].sum(axis=1), 1.0, atol=tol)


@pytest.mark.parametrize(("start", "stop"), [(3, 300), (4, 4), (0, 1), (100, 101), (7, 10)])
@pytest.mark.parametrize(("name", "dtype"), KERNELS)
def test_compiled_kernels_write_only_their_rows(kernels, rng, name, dtype, start, stop):
    # odd and even ranges, so that the AVX-512 kernel's pairs and its
    # one-row tail both run
    kernel = _kernel(kernels, name, dtype)
    Y, A = compiled.make_data(301, 64, 64, rng)
    G_step, C, inv_L, betas, G, L = compiled.encoder_inputs(Y, A, 0.5, 20, dtype)
    X = np.full_like(C, np.nan)
    compiled.encode_c(kernel, name, G_step, C, inv_L, betas, X, start, stop)
    assert np.isnan(X[:start]).all() and np.isnan(X[stop:]).all()
    np.testing.assert_allclose(X[start:stop], reference(G, C[start:stop], L, 20), atol=TOL[C.dtype])


@pytest.mark.parametrize(("name", "dtype"), KERNELS)
def test_compiled_kernels_return_exact_vertices_where_the_gradient_vanishes(
    kernels, rng, name, dtype
):
    # as the library's kernels do (tests/test_encoders.py): a row of C equal
    # to a row of G has the code e_r exactly, with no rounding dust
    kernel = _kernel(kernels, name, dtype)
    dtype = np.dtype(dtype)
    A = rng.standard_normal((64, 40))
    A -= A.mean(axis=0)
    G = (A @ A.T).astype(dtype)
    rows = rng.choice(64, 11, replace=False)
    C = G[rows].copy()
    inv_L = dtype.type(1.0 / _objective.lipschitz_constant(A))
    G_step = aligned_empty(G.shape, dtype)
    np.multiply(G, inv_L, out=G_step)
    X = np.full_like(C, np.nan)
    compiled.encode_c(kernel, name, G_step, C, inv_L, momentum_schedule(50, dtype), X)
    np.testing.assert_array_equal(X, np.eye(64, dtype=dtype)[rows])


def test_encode_c_refuses_what_the_kernels_cannot_take(kernels, rng):
    kernel = kernels[("C", np.dtype(np.float64))]
    Y, A = compiled.make_data(20, 8, 8, rng)
    G_step, C, inv_L, betas, G, L = compiled.encoder_inputs(Y, A, 0.5, 5, np.float64)
    with pytest.raises(ValueError, match="C-contiguous arrays of one dtype"):
        compiled.encode_c(kernel, "C", G_step, C, inv_L, betas, np.empty_like(C, order="F"))
    with pytest.raises(ValueError, match="row range"):
        compiled.encode_c(kernel, "C", G_step, C, inv_L, betas, np.empty_like(C), 5, 21)
    with pytest.raises(ValueError, match="m = 64"):
        compiled.encode_c(kernel, "AVX-512", G_step, C, inv_L, betas, np.empty_like(C))


@pytest.mark.parametrize(("name", "dtype"), KERNELS)
def test_compiled_kernels_leave_rows_far_from_zero_alone(kernels, rng, name, dtype):
    # as the numba kernel does: those rows go to the backend's other kernel
    kernel = _kernel(kernels, name, dtype)
    Y, A = compiled.make_data(100, 64, 64, rng)
    G_step, C, inv_L, betas, G, L = compiled.encoder_inputs(Y, A, 1e5, 5, dtype)
    X = np.full_like(C, np.nan)
    far = compiled.encode_c(kernel, name, G_step, C, inv_L, betas, X)
    assert far.all() and np.isnan(X).all()


def test_compile_kernels_leaves_no_files_behind(kernels, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    built, failures = compiled.compile_kernels("gcc")
    assert not failures and ("C", np.dtype(np.float64)) in built
    assert os.listdir(tmp_path) == []


def test_report_has_one_row_per_kernel(kernels, capsys):
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
    assert report["compiler"].startswith("gcc")
    out = capsys.readouterr().out
    assert "numba against compiled C" in out and "| 130, d=m=64, α=0.5, float64 | C |" in out


@pytest.mark.parametrize("sizes", [["200"], ["0x64"], ["ax64"]])
def test_bad_sizes_are_refused(sizes):
    with pytest.raises(SystemExit):
        compiled.parse_args(["--sizes", *sizes])
