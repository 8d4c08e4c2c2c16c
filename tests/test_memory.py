"""``transform`` works in chunks: its peak memory stays near its output's."""

import tracemalloc
import warnings

import numpy as np
import pytest

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode


@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_transform_peak_memory_is_near_the_output(algorithm):
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((100_000, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = WeightedL1SparseCoder(
            32, max_iter=2, transform_algorithm=algorithm, n_layers=5, random_state=0
        ).fit(Y[:2000])
    est.transform(Y[:10])  # compile outside the traced call
    Y_before = Y.copy()
    tracemalloc.start()
    try:
        X = est.transform(Y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the output itself plus chunk-sized temporaries (8192 rows each), far
    # from the several n × m arrays that an unchunked pass would hold
    assert peak < 1.5 * X.nbytes, peak / X.nbytes
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
        atol=1e-10,
    )
