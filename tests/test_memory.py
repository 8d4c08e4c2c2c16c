"""``transform`` works in chunks: its peak memory stays near its output's."""

import tracemalloc
import warnings

import numpy as np
import pytest

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode
from sklearn_wlsc._backends._base import CHUNK_ROWS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_transform_peak_memory_is_near_the_output(algorithm, dtype):
    rng = np.random.default_rng(0)
    n, m = 200_000, 16
    Y = rng.standard_normal((n, m)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = WeightedL1SparseCoder(
            m, max_iter=2, transform_algorithm=algorithm, n_layers=5, random_state=0
        ).fit(Y[:2000])
    est.transform(Y[:10])  # compile outside the traced call
    Y_before = Y.copy()
    tracemalloc.start()
    try:
        X = est.transform(Y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the output itself plus a few chunk-sized temporaries, and not one
    # more n × m array (which would add X.nbytes: 24 chunks here in float64,
    # 12 in float32); the exact encoder works in float64 whatever the input,
    # so a chunk-sized temporary is counted at 8 bytes an entry
    assert X.dtype == dtype
    chunk_bytes = CHUNK_ROWS * m * 8
    assert peak < X.nbytes + 10 * chunk_bytes, (peak / X.nbytes, peak / chunk_bytes)
    np.testing.assert_array_equal(Y, Y_before)
    # and chunking changes nothing: the same codes as encoding a slice alone
    np.testing.assert_allclose(
        X[-500:],
        sparse_encode(
            Y[-500:],
            est.components_,
            alpha=est.alpha,
            algorithm=algorithm,
            n_layers=5,
            tol=est.transform_tol,
        ),
        atol=1e-10 if dtype == np.float64 else 1e-5,
    )
