"""The dask path: blockwise encoding, the distributed alternating fit,
k-means|| initialization, and interoperability (dask-ml, joblib), on a real
two-process LocalCluster."""

import warnings

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from sklearn_wlsc import WeightedL1SparseCoder, _dask, _dict_learning, sparse_encode  # noqa: E402
from sklearn_wlsc._backends import get_backend  # noqa: E402

from .conftest import make_problem  # noqa: E402

ENCODE = {"tol": 1e-10, "max_iter": None}
_FLOATS = [np.float64, np.float32]


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.workers_at_start = set(client.scheduler_info()["workers"])
        yield client


def _assert_equal_to_rounding(actual, desired):
    """Blockwise results equal the in-memory ones up to floating-point
    rounding: BLAS may order the sums of ``Y Aᵀ`` differently for blocks of
    different heights (seen: 1 ulp on 5 of 30,000 entries)."""
    np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=1e-14)


def _problem(seed, n=3000, d=6, m=10, dtype=np.float64):
    rng = np.random.default_rng(seed)
    Y, A = make_problem(rng, n=n, d=d, m=m, dtype=dtype)
    # blocks of very different magnitudes and an offset: each block scales
    # its own encoding pass, which must not change the codes
    Y[: n // 3] *= 50.0
    return Y + 3.0, A + 3.0


# -- encoding --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["exact", "unrolled"])
def test_encode_dask_equals_in_memory(client, dtype, algorithm):
    Y, A = _problem(0, dtype=dtype)
    expected = _dict_learning.encode_pass(
        Y, A, 0.5, get_backend("numba"), algorithm=algorithm, n_layers=30
    ).codes
    for chunks in [(3000, 6), (1000, 6), (777, 2), ((1, 999, 2000), (6,))]:
        Yd = da.from_array(Y, chunks=chunks)
        codes = _dask.encode_dask(Yd, A, 0.5, algorithm=algorithm, n_layers=30)
        assert codes.dtype == dtype and codes._meta.dtype == dtype
        assert codes.chunks == (Yd.chunks[0], (A.shape[0],))
        got = codes.compute()
        assert got.dtype == dtype
        _assert_equal_to_rounding(got, expected)


def test_encode_dask_codes_on_simplex(client):
    Y, A = _problem(1)
    codes = _dask.encode_dask(da.from_array(Y, chunks=500), A, 2.0).compute()
    assert codes.min() >= 0.0
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, atol=1e-12)


def test_encode_dask_is_lazy_and_ships_no_backend(client):
    cloudpickle = pytest.importorskip("cloudpickle")
    Y, A = _problem(2)
    codes = _dask.encode_dask(da.from_array(Y, chunks=1000), A, 0.5, backend_name="auto")
    pickled = cloudpickle.dumps(dict(codes.__dask_graph__()))
    assert b"numba" in pickled  # the name
    assert b"NumbaBackend" not in pickled and b"numba.core" not in pickled
    assert codes.name.startswith("wlsc-codes-")


def test_sample_objective_dask_is_the_score(client):
    Y, A = _problem(3)
    f = _dask.sample_objective_dask(da.from_array(Y, chunks=700), A, 0.5).compute()
    ref = _dict_learning.encode_pass(Y, A, 0.5, get_backend("numba"), objective=True)
    _assert_equal_to_rounding(f, ref.objective)


def test_non_finite_block_raises(client):
    Y, A = _problem(4)
    Y[2500, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        _dask.encode_dask(da.from_array(Y, chunks=1000), A, 0.5).compute()


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.ones((6, 3)) + 1j, "Complex data not supported"),
        (np.array([["a", "b", "c"], ["d", "e", "f"]]), "numeric"),
        (np.empty((0, 3)), "0 sample"),
        (np.empty((4, 0)), "0 feature"),
    ],
)
def test_bad_dask_input_is_refused_before_any_task_runs(values, match):
    X = da.from_array(values, chunks=2)
    fitted = WeightedL1SparseCoder(2, random_state=0).fit(np.random.default_rng(0).random((9, 3)))
    with pytest.raises(ValueError, match=match):
        WeightedL1SparseCoder(2).fit(X)
    with pytest.raises(ValueError, match=match):
        fitted.transform(X)
    with pytest.raises(ValueError, match=match):
        fitted.score(X)
    with pytest.raises(ValueError, match=match):
        sparse_encode(X, fitted.components_)


def test_dask_dataframe_feature_names_are_kept_and_checked():
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).random((40, 3)), columns=["a", "b", "c"])
    with dask.config.set(scheduler="synchronous"):
        est = WeightedL1SparseCoder(2, random_state=0).fit(dd.from_pandas(frame, npartitions=2))
        assert list(est.feature_names_in_) == ["a", "b", "c"]
        renamed = dd.from_pandas(frame.rename(columns={"a": "z"}), npartitions=2)
        with pytest.raises(ValueError, match="feature names should match"):
            est.transform(renamed)
        with pytest.raises(ValueError, match="feature names should match"):
            est.score(renamed)
        codes = est.transform(dd.from_pandas(frame, npartitions=2)).compute()
    np.testing.assert_allclose(codes, est.transform(frame), atol=1e-12)


@pytest.mark.parametrize("exponent", [-900, 900])
def test_dask_fit_of_extreme_data_is_the_fit_of_the_data(client, exponent):
    Y, _ = make_problem(np.random.default_rng(5), n=400, d=5, m=6)
    ref = WeightedL1SparseCoder(6, random_state=0).fit(da.from_array(Y, chunks=100))
    scaled = WeightedL1SparseCoder(6, random_state=0).fit(
        da.from_array(np.ldexp(Y, exponent), chunks=100)
    )
    assert scaled.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(np.ldexp(scaled.components_, -exponent), ref.components_)
    assert scaled.objective_ == (0.0 if exponent < 0 else np.inf)


def test_tasks_use_the_workers_threads(client):
    assert _dask.task_n_jobs(None) is None  # on the client
    assert client.submit(_dask.task_n_jobs, None, pure=False).result() == 1
    assert client.submit(_dask.task_n_jobs, 3, pure=False).result() == 3


# -- fitting ---------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, warm_start", [(np.float64, False), (np.float64, True), (np.float32, False)]
)
def test_alternating_fit_dask_matches_in_memory(client, dtype, warm_start):
    Y, _ = _problem(5, dtype=dtype)
    A0 = _dict_learning.init_dictionary(Y, 10, "random", np.random.RandomState(0))
    kw = dict(max_iter=15, tol=1e-6, encode_params=ENCODE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        A, hist, n_iter, n_re = _dict_learning.alternating_fit(
            Y, A0, 0.5, get_backend("numba"), **kw
        )
        A_d, hist_d, n_iter_d, n_re_d = _dask.alternating_fit_dask(
            da.from_array(Y, chunks=700).persist(), A0, 0.5, warm_start=warm_start, **kw
        )
    assert (n_iter_d, n_re_d) == (n_iter, n_re)
    np.testing.assert_allclose(hist_d, hist, rtol=1e-6)
    np.testing.assert_allclose(A_d, A, rtol=1e-6, atol=1e-6 * np.abs(A).max())


def test_dask_fit_takes_the_mean_in_the_magnitude_pass(client, monkeypatch):
    # the column mean comes with max |Y| in one pass, unless the data must
    # be scaled: then the fit takes it on the scaled data, as in memory
    centers = []
    fit_dask = _dask.alternating_fit_dask

    def recording_fit(*args, **kwargs):
        centers.append(kwargs.get("center"))
        return fit_dask(*args, **kwargs)

    monkeypatch.setattr(_dask, "alternating_fit_dask", recording_fit)
    Y, A = _problem(17, n=900)
    params = dict(n_components=10, init=A, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = WeightedL1SparseCoder(**params).fit(Y)
        est = WeightedL1SparseCoder(**params).fit(da.from_array(Y, chunks=300))
        params["init"] = np.ldexp(A, 300)
        big = WeightedL1SparseCoder(**params).fit(da.from_array(np.ldexp(Y, 300), chunks=300))
    np.testing.assert_allclose(centers[0], Y.mean(axis=0), rtol=1e-14)
    assert centers[1] is None
    np.testing.assert_allclose(est.objective_path_, ref.objective_path_, rtol=1e-9)
    np.testing.assert_allclose(np.ldexp(big.components_, -300), est.components_, rtol=1e-12)
    with pytest.raises(ValueError, match="center has shape"):
        fit_dask(
            da.from_array(Y),
            est.components_,
            0.5,
            max_iter=1,
            tol=0.0,
            encode_params=ENCODE,
            center=np.zeros(2),
        )


def test_alternating_fit_dask_statistics_match_in_memory(client):
    # the statistics that partial_fit continues from: those of the last
    # encoding, in the data's coordinates, on either path
    Y, _ = _problem(9, n=1200)
    A0 = _dict_learning.init_dictionary(Y, 10, "random", np.random.RandomState(0))
    kw = dict(max_iter=3, tol=0.0, encode_params=ENCODE, return_statistics=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        A, *_, stats = _dict_learning.alternating_fit(Y, A0, 0.5, get_backend("numba"), **kw)
        A_d, *_, stats_d = _dask.alternating_fit_dask(da.from_array(Y, chunks=500), A0, 0.5, **kw)
    codes = sparse_encode(Y, A, alpha=0.5)
    n = Y.shape[0]
    expected = (codes.T @ codes / n, codes.sum(axis=0) / n, codes.T @ Y / n)
    for got, got_d, want in zip(stats, stats_d, expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * scale)
        np.testing.assert_allclose(got_d, got, rtol=0, atol=1e-7 * scale)


def test_alternating_fit_dask_reseeds_dead_atoms(client):
    Y, A = make_problem(np.random.default_rng(6), n=3000, d=6, m=10)
    A0 = A.copy()
    A0[[2, 7]] = 1e3  # far away: never used by any sample
    kw = dict(max_iter=10, tol=1e-6, encode_params=ENCODE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        A, hist, _, n_re = _dict_learning.alternating_fit(Y, A0, 0.5, get_backend("numba"), **kw)
        A_d, hist_d, _, n_re_d = _dask.alternating_fit_dask(
            da.from_array(Y, chunks=(400, 3)).persist(), A0, 0.5, **kw
        )
    assert n_re_d == n_re >= 2
    assert np.abs(A_d).max() < 1e2
    np.testing.assert_allclose(hist_d, hist, rtol=1e-6)
    np.testing.assert_allclose(A_d, A, rtol=1e-6, atol=1e-6 * np.abs(A).max())


def test_alternating_fit_dask_warns_like_in_memory(client):
    Y, _ = _problem(7, n=600)
    A0 = _dict_learning.init_dictionary(Y, 10, "random", np.random.RandomState(0))
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        _, hist, n_iter, _ = _dask.alternating_fit_dask(
            da.from_array(Y, chunks=200), A0, 0.5, max_iter=2, tol=0.0, encode_params=ENCODE
        )
    assert n_iter == 2 and len(hist) == 3
    with pytest.warns(ConvergenceWarning, match="exact encoder stopped"):
        _dask.alternating_fit_dask(
            da.from_array(Y, chunks=200),
            A0,
            0.5,
            max_iter=0,
            tol=0.0,
            encode_params={"tol": 1e-300, "max_iter": 1},
        )


def test_estimator_fit_dask_objective_matches_in_memory(client):
    Y, _ = _problem(8)
    Yd = da.from_array(Y, chunks=500).persist()
    init = _dask.init_dictionary_dask(Yd, 10, "k-means++", 0)
    params = dict(n_components=10, init=init, max_iter=30, tol=1e-6)
    ref = WeightedL1SparseCoder(**params).fit(Y)
    est = WeightedL1SparseCoder(**params).fit(Yd)
    assert est.n_features_in_ == Y.shape[1]
    assert est.n_iter_ == ref.n_iter_
    assert abs(est.objective_ - ref.objective_) <= 1e-6 * abs(ref.objective_)
    codes = est.transform(da.from_array(Y, chunks=1000))
    assert isinstance(codes, da.Array)
    np.testing.assert_allclose(codes.compute(), ref.transform(Y), atol=1e-6)
    assert est.score(da.from_array(Y, chunks=1000)) == pytest.approx(ref.score(Y), rel=1e-6)
    codes = sparse_encode(da.from_array(Y, chunks=1000), ref.components_)
    _assert_equal_to_rounding(codes.compute(), sparse_encode(Y, ref.components_))


# -- initialization --------------------------------------------------------


def test_init_random_equals_in_memory(client):
    Y, _ = _problem(9)
    got = _dask.init_dictionary_dask(da.from_array(Y, chunks=400), 10, "random", 3)
    expected = _dict_learning.init_dictionary(Y, 10, "random", np.random.RandomState(3))
    np.testing.assert_array_equal(got, expected)
    init = np.arange(60.0).reshape(10, 6)
    np.testing.assert_array_equal(
        _dask.init_dictionary_dask(da.from_array(Y), 10, init, None), init
    )


def _add_clusters(block, centers, block_info=None):
    seed = block_info[0]["chunk-location"][0]
    labels = np.random.default_rng(seed).integers(0, centers.shape[0], block.shape[0])
    return block + centers[labels]


def test_kmeans_parallel_gathers_only_small_results(client, monkeypatch):
    rng = np.random.default_rng(10)
    centers = 10.0 * rng.standard_normal((8, 8))
    gathered = []

    def counting_compute(*objs):
        out = dask.compute(*objs)
        gathered.extend(dask.sizeof.sizeof(o) for o in out)
        return out

    monkeypatch.setattr(_dask, "_compute", counting_compute)
    # generated on the workers, never in memory on the client
    noise = da.random.default_rng(11).standard_normal((40_000, 8), chunks=(5_000, 8))
    Yd = noise.map_blocks(_add_clusters, centers, dtype=np.float64)
    C = _dask.init_dictionary_dask(Yd, 8, "k-means++", 0)
    assert C.shape == (8, 8)
    assert max(gathered) < 0.01 * Yd.nbytes
    # the seeds find the well-separated clusters: one per cluster
    d = ((C[:, None, :] - centers[None]) ** 2).sum(-1)
    assert sorted(d.argmin(axis=1)) == list(range(8))


# -- interoperability ------------------------------------------------------


def test_dask_ml_parallel_post_fit(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    Y, _ = _problem(13)
    est = WeightedL1SparseCoder(n_components=10, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ppf = wrappers.ParallelPostFit(est).fit(Y)
    codes = ppf.transform(da.from_array(Y, chunks=700))
    assert isinstance(codes, da.Array)
    _assert_equal_to_rounding(codes.compute(), ppf.estimator.transform(Y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverse_transform_dask_in_dask_out(client, dtype):
    Y, _ = _problem(16, n=900, dtype=dtype)
    est = WeightedL1SparseCoder(n_components=10, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(Y)
    codes = est.transform(da.from_array(Y, chunks=400))
    Y_hat = est.inverse_transform(codes)
    assert isinstance(Y_hat, da.Array) and Y_hat.dtype == dtype
    # blockwise products may round differently from one product (BLAS)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(
        Y_hat.compute(), est.inverse_transform(codes.compute()), rtol=rtol, atol=rtol
    )
    with pytest.raises(ValueError, match="n_components=10"):
        est.inverse_transform(codes[:, :3])
    bad = codes.compute()
    bad[5, 0] = np.nan
    lazy = est.inverse_transform(da.from_array(bad, chunks=400))
    with pytest.raises(ValueError, match="NaN or infinity"):
        lazy.compute()


def test_dask_ml_incremental_equals_sequential_partial_fit(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    Y, _ = _problem(14)
    params = dict(n_components=10, random_state=0)
    inc = wrappers.Incremental(WeightedL1SparseCoder(**params), shuffle_blocks=False)
    inc.fit(da.from_array(Y, chunks=1000))
    ref = WeightedL1SparseCoder(**params)
    for start in range(0, 3000, 1000):
        ref.partial_fit(Y[start : start + 1000])
    np.testing.assert_array_equal(inc.estimator_.components_, ref.components_)
    assert inc.score(Y, None) == ref.score(Y)


def test_joblib_dask_backend_grid_search(client):
    import joblib
    from sklearn.model_selection import GridSearchCV

    Y, _ = _problem(15, n=600)
    grid = {"alpha": [0.1, 1.0]}
    est = WeightedL1SparseCoder(n_components=6, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with joblib.parallel_backend("dask"):
            gs = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(Y)
        ref = GridSearchCV(est, grid, cv=2).fit(Y)
    np.testing.assert_allclose(
        gs.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=1e-10
    )


# -- last: the cluster survived ---------------------------------------------


def test_zz_no_dead_workers(client):
    workers = set(client.scheduler_info()["workers"])
    assert workers == client.workers_at_start and len(workers) == 2
    assert all(client.run(lambda: True).values())


def test_dask_fit_in_threads_leaves_warning_filters_alone(monkeypatch):
    # blocks encoded in threads used to each push and pop a process-wide
    # "ignore" filter, restored out of order: one stayed behind, and the
    # fit's own warnings were lost
    X = np.random.default_rng(0).normal(size=(3000, 6))
    # one active-set step per sample: the encoder warns that it stopped at
    # its cap
    monkeypatch.setattr(
        WeightedL1SparseCoder, "_encode_params", lambda self: {"tol": 1e-300, "max_iter": 1}
    )
    with dask.config.set(scheduler="threads", num_workers=4):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            before = list(warnings.filters)
            est = WeightedL1SparseCoder(4, init=X[:4], max_iter=2)
            est.fit(da.from_array(X, chunks=(100, 6)))
            assert warnings.filters == before
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert any("exact encoder stopped" in m for m in messages)
    assert any("did not converge" in m for m in messages)


def test_dask_fit_with_an_empty_block_equals_in_memory():
    X = np.random.default_rng(0).normal(size=(100, 5))
    params = dict(n_components=4, init=X[:4], max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = WeightedL1SparseCoder(**params).fit(X)
        with dask.config.set(scheduler="synchronous"):
            est = WeightedL1SparseCoder(**params).fit(da.from_array(X, chunks=((40, 0, 60), (5,))))
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-10, atol=1e-12)


def test_dask_fit_near_the_largest_float_warns_nothing():
    # positive entries: each block's column sums overflow
    X = (np.abs(np.random.default_rng(0).normal(size=(200, 3))) + 1.0) * 1e307
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        WeightedL1SparseCoder(3, init=X[:3], max_iter=2).fit(da.from_array(X, chunks=50))


def test_dask_fit_uses_the_device_on_the_workers():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the refusal of a device this machine lacks")
    X = da.from_array(np.random.default_rng(0).normal(size=(60, 3)), chunks=30)
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            WeightedL1SparseCoder(2, backend="torch", device="cuda").fit(X)


def test_dask_dataframes_with_bool_and_nullable_columns():
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "flag": rng.random(60) > 0.5,
            "count": pd.array(rng.integers(0, 9, 60), dtype="Int64"),
            "x": rng.normal(size=60),
        }
    )
    params = dict(n_components=3, init=np.c_[[0, 1, 0], [1, 4, 7], [0.0, 0.5, -0.5]], max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = WeightedL1SparseCoder(**params).fit(df)
        with dask.config.set(scheduler="synchronous"):
            est = WeightedL1SparseCoder(**params).fit(dd.from_pandas(df, npartitions=2))
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-10)
    assert list(est.feature_names_in_) == ["flag", "count", "x"]
    df.loc[3, "count"] = pd.NA
    with dask.config.set(scheduler="synchronous"), pytest.raises(ValueError, match="NaN"):
        est.transform(dd.from_pandas(df, npartitions=2)).compute()


def test_dask_partial_fit_checks_feature_names_and_dimensions():
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(40, 4)), columns=list("abcd"))
    with dask.config.set(scheduler="synchronous"):
        est = WeightedL1SparseCoder(3, random_state=0).partial_fit(
            dd.from_pandas(df, npartitions=2)
        )
        assert list(est.feature_names_in_) == list("abcd")
        with pytest.raises(ValueError, match="feature names"):
            est.partial_fit(dd.from_pandas(df[list("dcba")], npartitions=2))
        for bad in (da.zeros((5, 4, 2)), da.zeros(5)):
            with pytest.raises(ValueError, match="Expected a 2D dask array"):
                est.transform(bad)


def test_blockwise_maps_compute_nothing_before_their_result():
    # unknown row chunks (dataframe partitions, a filtered array) are not
    # computed ahead: transform, inverse_transform and sparse_encode stay lazy
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X = np.random.default_rng(0).normal(size=(100, 3))
    df = pd.DataFrame(X, columns=list("abc"))
    est = WeightedL1SparseCoder(2, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(df)
    calls = []

    def counted(part):
        calls.append(1)
        return part

    with dask.config.set(scheduler="synchronous"):
        frame = dd.from_pandas(df, npartitions=4).map_partitions(counted)
        arr = da.from_array(X, chunks=25).map_blocks(counted)
        arr = arr[arr[:, 0] > 0]
        calls.clear()  # dask calls the functions on empty metadata when it builds
        codes = est.transform(frame)
        encoded = sparse_encode(arr, est.components_, alpha=est.alpha)
        rebuilt = est.inverse_transform(encoded)
        assert not calls
        np.testing.assert_allclose(codes.compute(), est.transform(df), rtol=1e-12, atol=1e-14)
        kept = X[X[:, 0] > 0]
        expected = sparse_encode(kept, est.components_, alpha=est.alpha)
        np.testing.assert_allclose(encoded.compute(), expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(rebuilt.compute(), expected @ est.components_, rtol=1e-12)
