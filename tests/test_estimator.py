import io
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_wlsc import WeightedL1SparseCoder, _objective, sparse_encode

from .conftest import RecordingCallback, make_problem


@parametrize_with_checks(
    [
        WeightedL1SparseCoder(n_components=4, random_state=0),
        WeightedL1SparseCoder(
            n_components=3, transform_algorithm="unrolled", alpha=0.0, random_state=0
        ),
    ]
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def test_fit_transform_equals_fit_then_transform(backend, rng):
    Y, _ = make_problem(rng, n=60, d=5, m=6)
    for algorithm in ("exact", "unrolled"):
        est = WeightedL1SparseCoder(
            6, transform_algorithm=algorithm, backend=backend, random_state=0
        )
        X1 = est.fit_transform(Y)
        X2 = (
            WeightedL1SparseCoder(6, transform_algorithm=algorithm, backend=backend, random_state=0)
            .fit(Y)
            .transform(Y)
        )
        np.testing.assert_allclose(X1, X2, atol=1e-12)


def test_random_state_reproducible(rng):
    Y, _ = make_problem(rng, n=50, d=4, m=5)
    A1 = WeightedL1SparseCoder(5, random_state=3).fit(Y).components_
    A2 = WeightedL1SparseCoder(5, random_state=3).fit(Y).components_
    np.testing.assert_array_equal(A1, A2)


def test_objective_and_score(rng):
    Y, _ = make_problem(rng, n=80, d=5, m=6)
    est = WeightedL1SparseCoder(6, alpha=0.3, random_state=0, tol=1e-10, max_iter=500).fit(Y)
    assert np.all(np.diff(est.objective_path_) <= 1e-9 * est.objective_path_[0])
    assert est.objective_ == est.objective_path_[-1]
    assert est.n_iter_ == len(est.objective_path_) - 1
    codes = est.transform(Y)
    F = _objective.objective(Y, est.components_, codes, 0.3)
    assert est.score(Y) == pytest.approx(-F, rel=1e-10)
    assert est.objective_ == pytest.approx(F, rel=1e-8)


def test_inverse_transform(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=6)
    est = WeightedL1SparseCoder(6, random_state=0).fit(Y)
    codes = est.transform(Y)
    np.testing.assert_allclose(est.inverse_transform(codes), codes @ est.components_)
    with pytest.raises(ValueError, match="n_components=6"):
        est.inverse_transform(codes[:, :3])


def test_pickle_and_joblib_round_trip(tmp_path, rng):
    Y, _ = make_problem(rng, n=30, d=5, m=6)
    est = WeightedL1SparseCoder(6, random_state=0).fit(Y)
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.transform(Y), est.transform(Y))
    joblib.dump(est, tmp_path / "model.joblib")
    est3 = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(est3.transform(Y), est.transform(Y))
    # fitted state is plain numpy
    assert all(
        isinstance(v, (np.ndarray, int, float, np.integer, np.floating, str, type(None), tuple))
        for k, v in vars(est).items()
        if k.endswith("_")
    )


def test_feature_names_out(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    est = WeightedL1SparseCoder(4, random_state=0).fit(Y)
    names = est.get_feature_names_out()
    assert list(names) == [f"weightedl1sparsecoder{i}" for i in range(4)]


def test_verbose_reports_progress(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    buf = io.StringIO()
    with redirect_stdout(buf):
        WeightedL1SparseCoder(4, random_state=0, verbose=1, max_iter=3, tol=0.0).fit(Y)
    lines = [line for line in buf.getvalue().splitlines() if "objective" in line]
    assert len(lines) == 4


def test_convergence_warning(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    with pytest.warns(ConvergenceWarning):
        WeightedL1SparseCoder(4, random_state=0, max_iter=1, tol=0.0).fit(Y)


def test_init_array_and_n_components(rng):
    Y, A = make_problem(rng, n=30, d=5, m=4)
    est = WeightedL1SparseCoder(init=A, max_iter=0).fit(Y)
    np.testing.assert_allclose(est.components_, A)
    assert est.n_components_ == 4
    with pytest.raises(ValueError, match="init has shape"):
        WeightedL1SparseCoder(3, init=A).fit(Y)
    with pytest.raises(ValueError, match="init has shape"):
        WeightedL1SparseCoder(init=A[:, :2]).fit(Y)


def test_default_n_components_is_n_features(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    assert WeightedL1SparseCoder(random_state=0).fit(Y).components_.shape == (5, 5)


def test_partial_fit_lowers_objective(digits):
    X, _ = digits
    rng = np.random.default_rng(0)
    est = WeightedL1SparseCoder(32, random_state=0)
    scores = []
    for _epoch in range(3):
        for batch in np.array_split(rng.permutation(len(X)), 8):
            est.partial_fit(X[batch])
        scores.append(est.score(X))
    assert est.n_steps_ == 24
    assert scores[-1] > scores[0]
    # within reach of the batch fit
    full = WeightedL1SparseCoder(32, random_state=0).fit(X).score(X)
    assert scores[-1] > full * 1.1


def test_pipeline_gridsearch_kmeans(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    pipe = Pipeline(
        [
            ("coder", WeightedL1SparseCoder(16, random_state=0, max_iter=20)),
            ("kmeans", KMeans(10, n_init=3, random_state=0)),
        ]
    )
    search = GridSearchCV(pipe, {"coder__alpha": [0.1, 1.0]}, cv=2, scoring=None)
    search.fit(X)
    assert search.best_params_["coder__alpha"] in (0.1, 1.0)
    labels = search.best_estimator_.predict(X)
    assert labels.shape == (400,)
    assert adjusted_rand_score(y, labels) > 0.2


def test_gridsearch_on_score(digits):
    X, _ = digits
    search = GridSearchCV(
        WeightedL1SparseCoder(8, random_state=0, max_iter=10),
        {"alpha": [0.0, 1.0, 10.0]},
        cv=2,
    )
    search.fit(X[:300])
    # −F prefers the smallest penalty: more freedom, lower objective
    assert search.best_params_["alpha"] == 0.0


def test_set_output_and_pipeline_with_scaler(rng):
    Y, _ = make_problem(rng, n=30, d=5, m=4)
    pipe = Pipeline(
        [("scale", StandardScaler()), ("coder", WeightedL1SparseCoder(4, random_state=0))]
    )
    out = pipe.fit_transform(Y)
    assert out.shape == (30, 4)
    est = WeightedL1SparseCoder(4, random_state=0).set_output(transform="default")
    assert est.fit_transform(Y).shape == (30, 4)


def test_float32_fit_preserves_dtype(rng):
    Y, _ = make_problem(rng, n=50, d=5, m=4)
    est32 = WeightedL1SparseCoder(4, random_state=0).fit(Y.astype(np.float32))
    est64 = WeightedL1SparseCoder(4, random_state=0).fit(Y)
    assert est32.components_.dtype == np.float32
    assert est32.transform(Y.astype(np.float32)).dtype == np.float32
    assert est32.objective_ == pytest.approx(est64.objective_, rel=1e-4)


def test_digits_fit_is_sparse_and_local(digits):
    X, _ = digits
    est = WeightedL1SparseCoder(32, alpha=0.5, random_state=0).fit(X)
    codes = est.transform(X)
    nnz = (codes > 0).sum(axis=1)
    assert nnz.mean() < 8
    # the atom with the largest weight is among the three nearest atoms
    D = _objective.squared_distances(X, est.components_)
    rank = (D < D[np.arange(len(X)), codes.argmax(axis=1)][:, None]).sum(axis=1)
    assert np.mean(rank < 3) > 0.9


def test_sklearn_callbacks_report_and_stop(rng):
    pytest.importorskip("sklearn.callback")
    Y, _ = make_problem(rng, n=40, d=5, m=4)
    cb = RecordingCallback()
    est = WeightedL1SparseCoder(4, random_state=0, max_iter=5, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        est.set_callbacks(cb).fit(Y)
    np.testing.assert_allclose(cb.objectives, est.objective_path_)
    assert cb.tasks[:2] == ["setup", "fit"] and cb.tasks[-1] == "teardown"
    # early stopping from a callback
    stopper = RecordingCallback(stop_after=2)
    est = WeightedL1SparseCoder(4, random_state=0, max_iter=50, tol=0.0).set_callbacks(stopper)
    est.fit(Y)
    assert len(stopper.objectives) == 2
    assert est.n_iter_ == 1


def test_partial_fit_after_fit_continues_the_fit(digits):
    X, _ = digits
    fitted = WeightedL1SparseCoder(24, random_state=0, tol=1e-8, max_iter=200).fit(X)
    A = fitted.components_.copy()
    F = -fitted.score(X)
    batch = X[:10]
    # the whole training set again: fit's statistics and the batch's are the
    # same codes, so partial_fit is one more iteration of the alternating fit
    again = clone_fitted(fitted).partial_fit(X)
    one_more = WeightedL1SparseCoder(24, init=A, max_iter=1, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        one_more.fit(X)
    np.testing.assert_allclose(again.components_, one_more.components_, rtol=0, atol=1e-6)
    # a small batch refines the atoms rather than replacing them: a model
    # that forgot fit's statistics would move them as far as the batch asks
    refined = clone_fitted(fitted).partial_fit(batch)
    alone = clone_fitted(fitted)
    alone._stats = None
    alone.partial_fit(batch)
    moved = np.abs(refined.components_ - A).max()
    assert moved < 0.05 * np.abs(alone.components_ - A).max()
    assert -refined.score(X) <= F * (1 + 1e-3)
    assert refined.n_steps_ == fitted.n_steps_ + 1
    # then the forgetting goes on as after one epoch of minibatches of this
    # size: the next batch weighs what the step after ⌈n / b⌉ gives
    from sklearn_wlsc._dict_learning import minibatch_weight

    steps = -(-X.shape[0] // 10)
    assert refined._minibatch_step == steps + 1
    usage_before, atoms_before = refined._stats[1], refined.components_
    refined.partial_fit(X[10:20])
    batch_usage = sparse_encode(X[10:20], atoms_before, alpha=refined.alpha).mean(axis=0)
    np.testing.assert_allclose(
        refined._stats[1], minibatch_weight(steps + 1, 10) * usage_before + batch_usage, atol=1e-7
    )


def clone_fitted(est):
    return pickle.loads(pickle.dumps(est))


def test_partial_fit_after_unrolled_fit_continues_it(digits):
    pytest.importorskip("torch")
    X, _ = digits
    X = X[:300]
    fitted = WeightedL1SparseCoder(
        12, fit_algorithm="unrolled", max_iter=3, random_state=0, n_layers=10
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted.fit(X)
    A = fitted.components_.copy()
    # fit kept the statistics of an exact encoding of its data with the
    # trained atoms: partial_fit on that data is one alternating iteration
    again = clone_fitted(fitted).partial_fit(X)
    one_more = WeightedL1SparseCoder(12, init=A, max_iter=1, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        one_more.fit(X)
    np.testing.assert_allclose(again.components_, one_more.components_, rtol=0, atol=1e-6)
    # and a few samples change that step only a little
    refined = clone_fitted(fitted).partial_fit(X[:5])
    alone = clone_fitted(fitted)
    alone._stats = None
    alone.partial_fit(X[:5])
    off = np.abs(refined.components_ - again.components_).max()
    assert off < 0.1 * np.abs(alone.components_ - again.components_).max()
