"""The layer-by-layer profile of ``benchmarks/layers.py``: what it counts is
the library's network, and its report has the documented shape (its
timings are not tested)."""

import numpy as np
import pytest

from benchmarks import layers
from sklearn_wlsc import sparse_encode


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nonzeros_are_those_of_the_library_network(rng, alpha, dtype):
    Y, A = layers.make_data(150, 8, 12, rng)
    Y, A = Y.astype(dtype), A.astype(dtype)
    for k in (1, 2, 5, 20):
        nnz_codes, nnz_momentum = layers.momentum_support(Y, A, alpha, k, np.dtype(dtype))
        X = sparse_encode(Y, A, alpha=alpha, algorithm="unrolled", n_layers=k, backend="numpy")
        assert nnz_codes == np.count_nonzero(X) / len(X)
        # the momentum point of the first layer is its codes (β_0 = 0); later
        # ones also keep the entries that just left the support
        assert nnz_momentum >= nnz_codes if k > 1 else nnz_momentum == nnz_codes


def test_report_has_one_row_per_depth(capsys):
    report = layers.main(
        [
            "--sizes",
            "120x6",
            "--alphas",
            "0.5",
            "--layers",
            "3",
            "1",
            "3",
            "--repeats",
            "1",
            "--support-samples",
            "40",
        ]
    )
    (result,) = report["results"]
    assert (result["n"], result["m"], result["alpha"], result["dtype"]) == (120, 6, 0.5, "float64")
    rows = result["rows"]
    assert [row["n_layers"] for row in rows] == [1, 3]  # sorted, duplicates dropped
    assert rows[0]["ns_per_layer_since_previous"] is None
    assert np.isfinite(rows[1]["ns_per_layer_since_previous"])
    assert all(row["us_per_sample"] > 0 for row in rows) and result["gemm_ns_per_sample"] > 0
    assert all(row["nnz_codes_numba"] >= 1 for row in rows)  # rows of a simplex
    assert "| layers K |" in capsys.readouterr().out


def test_rejects_non_positive_depths():
    with pytest.raises(SystemExit):
        layers.parse_args(["--layers", "0", "5"])
