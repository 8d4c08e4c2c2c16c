"""Tests of the spectral embedding of codes and of the clustering estimator."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits, load_wine, make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score, make_scorer, silhouette_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_wlsc import WeightedL1SparseCoder
from sklearn_wlsc._clustering import (
    MAX_DIFFUSION_TIME,
    SimplexSpectralClustering,
    SimplexSpectralEmbedding,
    auto_diffusion_time,
    default_n_atoms,
    diffusion_weights,
    needs_standardizing,
)


def random_codes(rng, n=60, m=8, density=0.5):
    """Rows on the simplex with random supports; every atom used, connected."""
    X = rng.uniform(size=(n, m)) * (rng.uniform(size=(n, m)) < density)
    X[np.arange(n), rng.integers(0, m, n)] += 0.5
    X[:m, :] += np.eye(m)
    return X / X.sum(axis=1, keepdims=True)


def dense_reference(X, k):
    """Embedding from numpy's SVD of the normalized biadjacency matrix."""
    s = X.sum(axis=0)
    Xt = X / np.sqrt(s)
    U, S, _ = np.linalg.svd(Xt, full_matrices=False)
    assert S[0] == pytest.approx(1.0)
    U = U[:, 1 : k + 1]
    return U / np.linalg.norm(U, axis=1, keepdims=True), S[1 : k + 1]


def align_signs(A, B):
    """Flip the columns of ``A`` to agree in sign with those of ``B``."""
    return A * np.sign(np.sum(A * B, axis=0))


# -- SimplexSpectralEmbedding -------------------------------------------------


def test_embedding_matches_dense_svd(rng):
    X = random_codes(rng)
    emb = SimplexSpectralEmbedding(n_components=3).fit(X)
    ref, sigma = dense_reference(X, 3)
    np.testing.assert_allclose(emb.singular_values_, sigma, rtol=1e-10)
    E = emb.transform(X)
    np.testing.assert_allclose(align_signs(E, ref), ref, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0)


def test_embedding_matches_sample_graph_eigenvectors(rng):
    """The bipartite embedding is the spectral embedding of the sample graph
    ``W = X diag(s)^{-1} Xᵀ`` (two steps of the walk sample → atom → sample),
    whose degrees are all one: its leading eigenvectors, computed here on the
    dense ``n × n`` matrix."""
    X = random_codes(rng, n=50, m=6)
    emb = SimplexSpectralEmbedding(n_components=2).fit(X)
    U = X @ emb.components_.T  # before row normalization
    W = X / X.sum(axis=0) @ X.T
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    w, V = np.linalg.eigh(W)
    np.testing.assert_allclose(w[-3:-1][::-1], emb.singular_values_**2, rtol=1e-10)
    ref = V[:, -3:-1][:, ::-1]
    np.testing.assert_allclose(align_signs(U, ref), ref, atol=1e-10)


def test_embedding_transform_of_training_codes_equals_fit(rng):
    X = random_codes(rng)
    emb = SimplexSpectralEmbedding(n_components=3)
    E_fit = emb.fit_transform(X)
    np.testing.assert_array_equal(emb.transform(X), E_fit)
    # and transforming in batches equals transforming at once
    np.testing.assert_allclose(
        np.vstack([emb.transform(X[:7]), emb.transform(X[7:])]), E_fit, rtol=1e-12
    )


def test_embedding_out_of_sample_is_consistent(rng):
    """A held-out sample whose code equals a training code gets its embedding."""
    X = random_codes(rng)
    emb = SimplexSpectralEmbedding(n_components=3).fit(X[:-5])
    E = emb.transform(X)
    np.testing.assert_allclose(E[:5], emb.transform(X[:5]))
    assert np.isfinite(E).all()


def test_embedding_unused_atoms_no_nan(rng):
    X = random_codes(rng, m=6)
    X_pad = np.zeros((X.shape[0], 9))
    X_pad[:, [0, 2, 3, 5, 6, 8]] = X  # atoms 1, 4, 7 unused
    emb = SimplexSpectralEmbedding(n_components=3).fit(X_pad)
    E = emb.transform(X_pad)
    assert np.isfinite(E).all() and np.isfinite(emb.components_).all()
    assert not emb.core_atoms_[[1, 4, 7]].any()
    np.testing.assert_allclose(emb.components_[:, [1, 4, 7]], 0.0)
    # the same embedding as without the unused columns
    np.testing.assert_allclose(E, SimplexSpectralEmbedding(3).fit_transform(X), atol=1e-10)
    # a new sample that only uses unused atoms sits at the origin
    np.testing.assert_array_equal(emb.transform(np.eye(9)[[4]]), 0.0)


def test_embedding_dangling_component_is_dropped(rng):
    X = random_codes(rng, n=60, m=6)
    outlier = np.zeros((1, 7))
    outlier[0, 6] = 1.0  # a sample alone with its own atom
    X_out = np.vstack([np.hstack([X, np.zeros((60, 1))]), outlier])
    emb = SimplexSpectralEmbedding(n_components=2).fit(X_out)
    assert emb.n_graph_components_ == 2
    assert not emb.core_atoms_[6] and emb.core_atoms_[:6].all()
    E = emb.transform(X_out)
    np.testing.assert_allclose(E[:60], SimplexSpectralEmbedding(2).fit_transform(X), atol=1e-10)
    np.testing.assert_array_equal(E[60], 0.0)


def test_embedding_separates_large_components():
    X = np.zeros((40, 6))
    X[:20, :3] = 1 / 3
    X[20:, 3:] = np.random.default_rng(0).dirichlet(np.ones(3), 20)
    E = SimplexSpectralEmbedding(n_components=1).fit_transform(X)
    assert abs(E[:20].mean() - E[20:].mean()) == pytest.approx(2.0)


def test_embedding_rows_are_normalized_to_the_simplex(rng):
    X = random_codes(rng)
    scale = rng.uniform(0.5, 3.0, size=(X.shape[0], 1))
    emb = SimplexSpectralEmbedding(n_components=3).fit(X)
    np.testing.assert_allclose(
        SimplexSpectralEmbedding(n_components=3).fit_transform(X * scale),
        emb.transform(X),
        atol=1e-10,
    )
    np.testing.assert_allclose(emb.transform(X * scale), emb.transform(X), atol=1e-12)
    X0 = X.copy()
    X0[3] = 0.0  # an isolated sample
    E = SimplexSpectralEmbedding(n_components=3).fit_transform(X0)
    assert np.isfinite(E).all() and not E[3].any()


def test_embedding_rows_with_subnormal_sums(rng):
    """A row whose sum is subnormal is scaled like any other, not through a
    reciprocal that overflows into NaN."""
    X = random_codes(rng)
    row = np.zeros(X.shape[1])
    row[3] = 1e-310
    emb = SimplexSpectralEmbedding(n_components=3).fit(X)
    e3 = np.eye(X.shape[1])[3:4]
    np.testing.assert_array_equal(emb.transform(row[None]), emb.transform(e3))
    np.testing.assert_array_equal(emb.transform(sparse.csr_matrix(row)), emb.transform(e3))
    X_sub = X.copy()
    X_sub[0] = row
    X_one = X.copy()
    X_one[0] = e3
    np.testing.assert_allclose(
        SimplexSpectralEmbedding(n_components=3).fit_transform(X_sub),
        SimplexSpectralEmbedding(n_components=3).fit_transform(X_one),
        atol=1e-12,
    )


def test_embedding_sparse_and_float32_agree(rng):
    X = random_codes(rng)
    E = SimplexSpectralEmbedding(n_components=3).fit_transform(X)
    E_sp = SimplexSpectralEmbedding(n_components=3).fit_transform(sparse.csr_matrix(X))
    np.testing.assert_allclose(E_sp, E, atol=1e-10)
    E32 = SimplexSpectralEmbedding(n_components=3).fit_transform(X.astype(np.float32))
    assert E32.dtype == np.float32
    np.testing.assert_allclose(E32, E, atol=1e-4)


def test_embedding_skips_localized_vectors(rng):
    """An outlier that weakly shares an atom with the rest gives a singular
    value near one with a vector on a single sample: it is skipped."""
    X = random_codes(rng, n=80, m=8)
    outlier = np.zeros((1, 9))
    outlier[0, 8], outlier[0, 0] = 0.98, 0.02
    X = np.vstack([np.hstack([X, np.zeros((80, 1))]), outlier])
    plain = SimplexSpectralEmbedding(n_components=2, min_support=0).fit(X)
    U = X @ plain.components_.T
    support = (U**2).sum(0) ** 2 / (U**4).sum(0)
    assert support[0] < 2  # the leading vector lives on the outlier
    emb = SimplexSpectralEmbedding(n_components=2).fit(X)
    assert emb.n_localized_ == 1
    np.testing.assert_allclose(emb.singular_values_[0], plain.singular_values_[1])
    V = X @ emb.components_.T
    assert ((V**2).sum(0) ** 2 / (V**4).sum(0) >= 81 / 9).all()
    assert emb.singular_values_[0] < plain.singular_values_[0]


def test_embedding_rejects_negative_codes():
    with pytest.raises(ValueError, match="Negative values"):
        SimplexSpectralEmbedding(1).fit([[0.5, 0.5], [1.5, -0.5]])


def test_embedding_more_components_than_atoms(rng):
    X = random_codes(rng, m=3)
    with pytest.warns(UserWarning, match="exceeds the 2 non-trivial"):
        emb = SimplexSpectralEmbedding(n_components=4).fit(X)
    E = emb.transform(X)
    assert E.shape == (X.shape[0], 4)
    np.testing.assert_array_equal(E[:, 2:], 0.0)
    assert emb.get_feature_names_out().tolist()[-1] == "simplexspectralembedding3"


def test_diffusion_weights_and_auto_time():
    sigma = np.array([0.99, 0.95, 0.9, 0.8, 0.5, 0.0])
    t = 3.0
    np.testing.assert_allclose(diffusion_weights(sigma, t), (sigma / 0.99) ** 6, rtol=1e-12)
    np.testing.assert_array_equal(diffusion_weights(sigma, 0), 1.0)
    # the largest value is the reference, wherever it sits
    np.testing.assert_allclose(diffusion_weights(sigma[::-1], t), (sigma[::-1] / 0.99) ** 6)
    # no overflow or NaN at very long times: ties with the largest keep one
    w = diffusion_weights(np.array([1.0, 1.0, 0.999]), MAX_DIFFUSION_TIME)
    np.testing.assert_array_equal(w, [1.0, 1.0, 0.0])
    # "auto": vector ⌈3k/4⌉ among the positive values weighs half the first
    for k in range(1, 12):
        s = np.sort(np.random.default_rng(k).uniform(0.2, 1.0, k))[::-1]
        t = auto_diffusion_time(np.r_[s, 0.0, 0.0])
        if k == 1:
            assert t == MAX_DIFFUSION_TIME
            continue
        j = -(-3 * k // 4) - 1
        assert (s[j] / s[0]) ** (2 * t) == pytest.approx(0.5, rel=1e-12)
        assert auto_diffusion_time(s[::-1]) == t
    assert auto_diffusion_time(np.array([0.9, 0.9, 0.9, 0.5])) == MAX_DIFFUSION_TIME
    assert auto_diffusion_time(np.zeros(3)) == 0.0
    assert auto_diffusion_time(np.array([])) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    st.one_of(st.floats(0.0, 1e7), st.just("auto")),
)
def test_diffusion_weights_properties(sigma, t):
    """Weights lie in [0, 1], the largest value weighs one, and a larger
    singular value never weighs less; never NaN, at any time."""
    sigma = np.array(sigma)
    if t == "auto":
        t = auto_diffusion_time(sigma)
        assert 0.0 <= t <= MAX_DIFFUSION_TIME
    w = diffusion_weights(sigma, t)
    assert np.all((w >= 0) & (w <= 1))
    if sigma.max() > 0:
        assert w[np.argmax(sigma)] == 1.0
    order = np.argsort(sigma, kind="stable")
    assert np.all(np.diff(w[order]) >= 0)


@pytest.mark.parametrize("diffusion_time", [0.5, 4.0, "auto"])
def test_embedding_diffusion_time_weights_the_vectors(rng, diffusion_time):
    X = random_codes(rng, n=80, m=12)
    X_new = random_codes(rng, n=20, m=12)
    plain = SimplexSpectralEmbedding(n_components=6).fit(X)
    emb = SimplexSpectralEmbedding(n_components=6, diffusion_time=diffusion_time).fit(X)
    np.testing.assert_array_equal(emb.singular_values_, plain.singular_values_)
    sigma = plain.singular_values_
    t = emb.diffusion_time_
    if diffusion_time == "auto":
        # the fifth of six vectors (⌈3·6/4⌉ = 5) weighs half the first
        assert (sigma[4] / sigma[0]) ** (2 * t) == pytest.approx(0.5)
    else:
        assert t == diffusion_time
    w = (sigma / sigma[0]) ** (2 * t)
    for Z in (X, X_new):
        ref = plain.transform(Z) * w
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        np.testing.assert_allclose(emb.transform(Z), ref, atol=1e-12)
    np.testing.assert_allclose(emb.fit_transform(X), emb.transform(X))
    assert plain.diffusion_time_ == 0.0
    # sparse and float32 codes give the same weighted embedding
    params = dict(n_components=6, diffusion_time=diffusion_time)
    E_sp = SimplexSpectralEmbedding(**params).fit(sparse.csr_matrix(X)).transform(X_new)
    np.testing.assert_allclose(E_sp, emb.transform(X_new), atol=1e-12)
    emb32 = SimplexSpectralEmbedding(**params).fit(X.astype(np.float32))
    E32 = emb32.transform(X_new.astype(np.float32))
    assert E32.dtype == np.float32
    np.testing.assert_allclose(E32, emb.transform(X_new), atol=1e-4)


def test_embedding_diffusion_keeps_separate_components_apart():
    """Ties with the largest singular value (separate groups) keep full
    weight at the longest time, so the groups stay apart."""
    block = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    X = sparse.block_diag([block] * 4).toarray()  # 4 components of 3 samples
    emb = SimplexSpectralEmbedding(n_components=4, min_support=0, diffusion_time="auto").fit(X)
    # three σ = 1 (four components, the trivial pair dropped), then one within a block
    np.testing.assert_allclose(emb.singular_values_[:3], 1.0)
    assert emb.singular_values_[3] < 0.9
    assert emb.diffusion_time_ == MAX_DIFFUSION_TIME
    # the within-block vector weighs nothing, the component vectors weigh one
    np.testing.assert_array_equal(emb.components_[3], 0.0)
    plain = SimplexSpectralEmbedding(n_components=4, min_support=0).fit(X)
    # (ties up to rounding: weights 1 − O(t ε))
    np.testing.assert_allclose(emb.components_[:3], plain.components_[:3], rtol=1e-8)
    E = emb.transform(X)
    assert np.all(np.isfinite(E))
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(E)
    assert adjusted_rand_score(np.repeat(np.arange(4), 3), labels) == 1.0


@pytest.mark.parametrize("bad", [-1.0, "fast", np.nan, np.inf, 2e6])
def test_embedding_rejects_bad_diffusion_time(bad):
    X = random_codes(np.random.default_rng(0))
    with pytest.raises(ValueError, match="diffusion_time"):
        SimplexSpectralEmbedding(2, diffusion_time=bad).fit(X)
    with pytest.raises(ValueError, match="diffusion_time"):
        SimplexSpectralClustering(2, diffusion_time=bad).fit(make_blobs(20, random_state=0)[0])


def test_embedding_noise_singular_values_are_zero(rng):
    """More vectors than the rank of the codes: the eigenproblem's rounding
    noise is reported as σ = 0, weighs nothing, and does not set the time."""
    X = rng.uniform(size=(5, 12)) + 0.1  # rank at most 5, every atom used
    X /= X.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = SimplexSpectralEmbedding(11, min_support=0, diffusion_time="auto").fit(X)
    sigma = emb.singular_values_
    ref = np.linalg.svd(X / np.sqrt(X.sum(axis=0)), compute_uv=False)[1:]  # non-trivial
    r = int(np.sum(ref > 1e-6))
    assert r == 4
    np.testing.assert_allclose(sigma[:r], ref[:r], rtol=1e-8)
    np.testing.assert_array_equal(sigma[r:], 0.0)
    np.testing.assert_array_equal(emb.components_[r:], 0.0)
    assert emb.diffusion_time_ == auto_diffusion_time(sigma[:r])
    E = emb.transform(X)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0)
    # the samples stay apart: no noise column swamps the embedding
    assert np.unique(E.round(6), axis=0).shape[0] == 5


def test_embedding_filled_localized_vector_never_outweighs_the_kept_ones():
    """When too few vectors pass the localization rule, skipped ones fill the
    last columns; their weight is at most that of the columns before them."""
    found = 0
    for seed in range(300):
        r = np.random.default_rng(seed)
        X = r.random((60, 10)) * (r.random((60, 10)) < 0.15)
        X[np.arange(60), r.integers(0, 10, 60)] += 0.1
        X /= X.sum(axis=1, keepdims=True)
        emb = SimplexSpectralEmbedding(8, diffusion_time="auto").fit(X)
        sigma = emb.singular_values_
        if not np.any(np.diff(sigma) > 0):
            continue
        found += 1
        plain = SimplexSpectralEmbedding(8).fit(X)
        ratio = np.linalg.norm(emb.components_, axis=1) / np.linalg.norm(plain.components_, axis=1)
        assert ratio[0] == pytest.approx(1.0)
        assert np.all(np.diff(ratio) <= 1e-12)
        if found == 3:
            break
    assert found > 0


# -- scikit-learn compatibility ----------------------------------------------


@parametrize_with_checks(
    [
        SimplexSpectralEmbedding(),
        SimplexSpectralEmbedding(n_components=3, diffusion_time="auto"),
        SimplexSpectralClustering(n_init=2, max_iter=20, random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# -- SimplexSpectralClustering -----------------------------------------------


def test_default_rules():
    assert default_n_atoms(1797, 10) == 180
    assert default_n_atoms(150, 3) == 15
    assert default_n_atoms(100, 8) == 25  # 3 atoms per cluster at least
    assert default_n_atoms(100_000, 10) == 256  # capped
    assert default_n_atoms(100_000, 100) == 301  # the cap yields to 3 c + 1
    assert default_n_atoms(5, 2) == 3  # c + 1 atoms for a handful of samples
    assert default_n_atoms(20, 3) == 10  # two samples per atom at least
    assert default_n_atoms(100, 32) == 50
    wine = load_wine().data
    assert needs_standardizing(wine)
    assert not needs_standardizing(StandardScaler().fit_transform(wine))
    assert not needs_standardizing(load_digits().data)


def test_clustering_equals_pipeline():
    X, _ = make_blobs(300, centers=4, cluster_std=1.5, random_state=0)
    X_new, _ = make_blobs(50, centers=4, cluster_std=1.5, random_state=1)
    params = dict(max_iter=30, tol=1e-4, random_state=0)
    pipe = Pipeline(
        [
            ("coder", WeightedL1SparseCoder(30, alpha=0.25, **params)),
            ("embed", SimplexSpectralEmbedding(4, min_support=300 / 30, diffusion_time="auto")),
            ("kmeans", KMeans(4, n_init=10, random_state=0)),
        ]
    ).fit(X)
    model = SimplexSpectralClustering(
        4, n_atoms=30, alpha=0.25, n_dictionaries=1, n_components=4, standardize=False, **params
    ).fit(X)
    np.testing.assert_array_equal(model.labels_, pipe[-1].labels_)
    np.testing.assert_array_equal(model.predict(X_new), pipe.predict(X_new))
    np.testing.assert_allclose(model.coder_.components_, pipe[0].components_)
    # the defaults resolve to 30 atoms, alpha 0.5, 2 x 4 components, 8 dictionaries
    default = SimplexSpectralClustering(4, max_iter=30, random_state=0).fit(X)
    assert (default.n_atoms_, default.alpha_, default.n_components_) == (30, 0.5, 8)
    assert len(default.coders_) == 8 and default.coder_ is default.coders_[0]
    sigma = default.embedding_.singular_values_
    t = default.embedding_.diffusion_time_
    assert (sigma[5] / sigma.max()) ** (2 * t) == pytest.approx(0.5)
    explicit = SimplexSpectralClustering(
        4, n_atoms=30, alpha=0.5, n_dictionaries=8, n_components=8, standardize=False, **params
    ).fit(X)
    np.testing.assert_array_equal(default.labels_, explicit.labels_)
    # without the diffusion weights, the plain embedding of the pipeline
    plain = SimplexSpectralClustering(
        4,
        n_atoms=30,
        alpha=0.25,
        n_dictionaries=1,
        n_components=4,
        diffusion_time=0,
        standardize=False,
        **params,
    ).fit(X)
    pipe.set_params(embed__diffusion_time=0).fit(X)
    np.testing.assert_array_equal(plain.labels_, pipe[-1].labels_)
    assert plain.embedding_.diffusion_time_ == 0.0


def test_clustering_averages_the_graphs_of_its_dictionaries():
    """The codes of R dictionaries side by side, over R, are on the simplex,
    and their sample graph is the mean of the R sample graphs."""
    X, _ = make_blobs(200, centers=3, random_state=0)
    model = SimplexSpectralClustering(3, n_dictionaries=3, max_iter=20, random_state=0).fit(X)
    codes = model.encode(X)
    assert sparse.issparse(codes) and codes.shape == (200, 3 * model.n_atoms_)
    np.testing.assert_allclose(np.asarray(codes.sum(axis=1)).ravel(), 1.0)
    # different initializations give different dictionaries
    assert not np.allclose(model.coders_[0].components_, model.coders_[1].components_)
    C = codes.toarray()
    s = C.sum(axis=0)
    W = (C / np.where(s > 0, s, 1.0)) @ C.T
    parts = [c.transform(X) for c in model.coders_]
    W_mean = np.mean([(P / np.where(P.sum(0) > 0, P.sum(0), 1.0)) @ P.T for P in parts], axis=0)
    np.testing.assert_allclose(W, W_mean, atol=1e-12)
    np.testing.assert_array_equal(
        model.predict(X), model.kmeans_.predict(model.embedding_.transform(codes))
    )
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_needs_standardizing_ignores_magnitude_and_sees_two_features():
    wine = load_wine().data
    std_wine = StandardScaler().fit_transform(wine)
    for dtype, exponents in ((np.float32, (-100, 100)), (np.float64, (-990, 1000))):
        for e in exponents:
            # the squares of these values overflow or underflow in the dtype
            assert needs_standardizing(np.ldexp(wine.astype(dtype), e))
            assert not needs_standardizing(np.ldexp(std_wine.astype(dtype), e))
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((100, 2))
    # with two features the larger spread is compared with the smaller one
    assert needs_standardizing(Z * [1e-3, 1e3])
    assert not needs_standardizing(Z * [1.0, 3.0])
    assert not needs_standardizing(Z[:, :1] * 1e6)  # a single feature


def test_clustering_labels_ignore_the_data_magnitude():
    rng = np.random.RandomState(0)
    c = rng.randint(3, size=150)
    X = np.c_[c * 8.0 + rng.randn(150), rng.randn(150) * 100, rng.randn(150)]
    X = X.astype(np.float32)
    params = dict(n_dictionaries=2, max_iter=20, random_state=0)
    ref = SimplexSpectralClustering(3, **params).fit(X)
    assert ref.scaler_ is not None
    for e in (-100, 100):
        model = SimplexSpectralClustering(3, **params).fit(np.ldexp(X, e))
        assert model.scaler_ is not None
        assert adjusted_rand_score(ref.labels_, model.labels_) == 1.0


def test_clustering_names_the_default_n_components_in_errors():
    X, _ = make_blobs(60, centers=3, random_state=0)
    with pytest.raises(ValueError, match=r"n_components=None \(n_clusters=3\) must be at most"):
        SimplexSpectralClustering(3, n_atoms=2, max_iter=5, random_state=0).fit(X)
    # a small dictionary caps the default 2 c at m - 1, but never below c
    model = SimplexSpectralClustering(3, n_atoms=5, max_iter=5, random_state=0).fit(X)
    assert model.n_components_ == 4
    with pytest.raises(ValueError, match="n_components=4 must be at most n_atoms - 1 = 2"):
        SimplexSpectralClustering(3, n_atoms=3, n_components=4, max_iter=5).fit(X)


def test_clustering_warns_in_its_own_terms_when_atoms_outnumber_samples():
    # n = n_clusters: the default rule needs n_clusters + 1 atoms
    X, _ = make_blobs(4, centers=4, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SimplexSpectralClustering(4, max_iter=5, random_state=0).fit(X)
    # plain UserWarnings only: a ConvergenceWarning of the short fits is beside the point
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert model.n_atoms_ == 5
    assert messages == [
        "n_samples=4 is smaller than n_atoms=5 (the default rule's dictionary size for "
        "n_clusters=4): the extra atoms start as mixtures of samples and may stay unused."
    ]
    assert np.isfinite(model.embedding_.transform(model.encode(X))).all()
    X, _ = make_blobs(60, centers=3, random_state=0)
    with pytest.warns(
        UserWarning, match=r"^max_fit_samples=8 is smaller than n_atoms=12 \(the given"
    ):
        SimplexSpectralClustering(
            3, n_atoms=12, n_dictionaries=2, max_fit_samples=8, max_iter=5, random_state=0
        ).fit(X)


def test_clustering_standardize_auto():
    X, y = load_wine(return_X_y=True)
    raw = SimplexSpectralClustering(3, random_state=0).fit(X)
    assert raw.scaler_ is not None
    std = SimplexSpectralClustering(3, standardize=False, random_state=0).fit(
        StandardScaler().fit_transform(X)
    )
    np.testing.assert_array_equal(raw.labels_, std.labels_)
    assert adjusted_rand_score(y, raw.labels_) > 0.7


def test_clustering_subsamples_the_dictionary_fit():
    X, y = make_blobs(2000, centers=3, cluster_std=0.6, random_state=0)
    model = SimplexSpectralClustering(3, n_atoms=12, random_state=0).fit(X)
    assert model.n_atoms_ == 12 and model.labels_.shape == (2000,)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    full = SimplexSpectralClustering(3, n_atoms=12, max_fit_samples=None, random_state=0)
    assert adjusted_rand_score(model.labels_, full.fit_predict(X)) > 0.95


def test_clustering_moons():
    X, y = make_moons(600, noise=0.06, random_state=0)
    model = SimplexSpectralClustering(2, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert adjusted_rand_score(y, KMeans(2, n_init=10, random_state=0).fit_predict(X)) < 0.6


def test_precomputed_code_affinity_alternative():
    """scikit-learn's SpectralClustering on the code affinity ``X Xᵀ`` is an
    O(n²) alternative to the bipartite embedding; both find the moons."""
    X, y = make_moons(400, noise=0.05, random_state=1)
    model = SimplexSpectralClustering(2, random_state=0).fit(X)
    codes = model.encode(X)
    sc = SpectralClustering(2, affinity="precomputed", random_state=0)
    labels = sc.fit_predict((codes @ codes.T).toarray())
    assert adjusted_rand_score(y, labels) > 0.95
    assert adjusted_rand_score(model.labels_, labels) > 0.95


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_with_and_without_labels():
    X, y = make_blobs(240, centers=3, cluster_std=0.6, random_state=2)
    base = SimplexSpectralClustering(3, max_iter=30, n_init=3, random_state=0)
    grid = {"alpha": [0.1, 0.25], "n_atoms": [12, 24]}
    ari = GridSearchCV(base, grid, scoring=make_scorer(adjusted_rand_score), cv=3).fit(X, y)
    assert ari.best_score_ > 0.9

    def silhouette(estimator, X, y=None):
        return silhouette_score(X, estimator.predict(X))

    sil = GridSearchCV(base, grid, scoring=silhouette, cv=3).fit(X)
    assert sil.best_score_ > 0.5
    assert adjusted_rand_score(y, sil.best_estimator_.labels_) > 0.9


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    model = SimplexSpectralClustering(10, random_state=0).fit(X_tr)
    return model, X_tr, X_te, y_tr, y_te


def test_digits_beats_kmeans_and_predicts_held_out(digits_split):
    model, X_tr, X_te, y_tr, y_te = digits_split
    ari_in = adjusted_rand_score(y_tr, model.labels_)
    ari_kmeans = adjusted_rand_score(y_tr, KMeans(10, n_init=10, random_state=0).fit_predict(X_tr))
    assert ari_in > ari_kmeans + 0.05
    ari_out = adjusted_rand_score(y_te, model.predict(X_te))
    assert abs(ari_out - ari_in) < 0.05
    np.testing.assert_array_equal(model.predict(X_tr), model.labels_)


def test_digits_ari_goal():
    """The issue's goal, on the whole of digits with only n_clusters and
    random_state given (5 seeds in benchmarks/clustering.py: 0.883 ± 0.005)."""
    X, y = load_digits(return_X_y=True)
    model = SimplexSpectralClustering(10, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) >= 0.85


def test_embedding_of_nothing_warns():
    from sklearn_wlsc import SimplexSpectralEmbedding

    with pytest.warns(UserWarning, match="every code is zero"):
        E = SimplexSpectralEmbedding(2).fit_transform(np.zeros((120, 12)))
    assert not E.any()
    X = np.random.default_rng(0).dirichlet(np.full(12, 0.2), size=120)
    with pytest.warns(UserWarning, match="min_support=1e\\+09"):
        E = SimplexSpectralEmbedding(2, min_support=1e9).fit_transform(X)
    assert not E.any()


def test_repeated_samples_do_not_inflate_the_dictionary():
    # 600 rows that repeat 30 distinct points: n / 10 = 60 atoms for 30
    # points made every code one-hot and split the graph into 30 pieces
    # (ARI 0.04); the default now counts distinct samples
    from sklearn.metrics import adjusted_rand_score

    from sklearn_wlsc import SimplexSpectralClustering
    from sklearn_wlsc._clustering import n_distinct_rows

    rng = np.random.default_rng(0)
    U = np.vstack([rng.normal(size=(10, 2)) * 0.3 + c for c in [(0, 0), (6, 0), (0, 6)]])
    X = np.repeat(U, 20, axis=0)
    y = np.repeat([0, 1, 2], 200)
    assert n_distinct_rows(X) == 30 and n_distinct_rows(U) == 30
    est = SimplexSpectralClustering(3, random_state=0).fit(X)
    assert est.n_atoms_ == 10
    assert adjusted_rand_score(y, est.labels_) == 1.0


# -- findings of a review: unequal groups, repeats, magnitudes, settings -----


@pytest.mark.parametrize(("sizes", "d"), [([250, 50, 50], 2), ([450, 50], 5)])
def test_clustering_separated_groups_of_unequal_size(sizes, d):
    # far-apart blobs: the graph falls apart into one piece per blob, and the
    # structure inside the large one must not outweigh the small ones
    c = len(sizes)
    centers = np.eye(c, d) * 20
    X, y = make_blobs(n_samples=sizes, n_features=d, centers=centers, random_state=0)
    model = SimplexSpectralClustering(c, random_state=0).fit(X)
    assert model.embedding_.n_core_components_ >= c
    assert model.n_components_ == model.embedding_.n_core_components_ - 1
    assert adjusted_rand_score(y, model.labels_) == 1.0
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_clustering_keeps_groups_of_repeated_rows():
    # three points repeated 200, 50 and 50 times: few atoms, and the groups
    # of 50 are a sixth of the data each, not outliers
    X = np.repeat([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], (200, 50, 50), axis=0)
    y = np.repeat([0, 1, 2], (200, 50, 50))
    model = SimplexSpectralClustering(3, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) == 1.0


def test_embedding_warns_when_the_kept_graph_has_nothing_to_embed():
    # every sample uses the same atom: one component, no non-trivial vector
    X = np.zeros((30, 4))
    X[:, 1] = 1.0
    with pytest.warns(UserWarning, match="no non-trivial singular vector"):
        E = SimplexSpectralEmbedding(2).fit_transform(X)
    assert not E.any()


def test_clustering_standardizes_at_any_magnitude():
    X, y = make_blobs(150, centers=3, n_features=4, random_state=0)
    X[:, 0] *= 100  # heterogeneous scales: standardize="auto" turns on
    params = dict(n_dictionaries=2, random_state=0)
    ref = SimplexSpectralClustering(3, **params).fit(X)
    assert ref.scaler_ is not None and adjusted_rand_score(y, ref.labels_) == 1.0
    for e in (-700, 700):
        model = SimplexSpectralClustering(3, **params).fit(np.ldexp(X, e))
        np.testing.assert_array_equal(model.labels_, ref.labels_)
        np.testing.assert_allclose(np.ldexp(model.scaler_.scale_, -e), ref.scaler_.scale_)
        np.testing.assert_array_equal(model.predict(np.ldexp(X[:20], e)), ref.labels_[:20])


def test_needs_standardizing_with_feature_scales_far_apart():
    Z = np.random.default_rng(0).standard_normal((50, 3))
    for r in (1e2, 1e100, 1e200, 1e300):
        # the small features' variances underflow next to the large one's
        assert needs_standardizing(Z * [r, 1.0, 2.0])
        assert needs_standardizing(Z * [1.0, 1.0 / r, 2.0 / r])
    assert not needs_standardizing(Z * [3.0, 1.0, 2.0])


def test_embedding_rows_whose_sums_overflow():
    X = np.array([[1.0, 1, 0, 0], [1, 0.5, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0.3]])
    ref = SimplexSpectralEmbedding(1).fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning, no false "nothing to embed"
        for Xs in (X * 1e308, (X * 3e38).astype(np.float32), sparse.csr_matrix(X * 1e308)):
            got = SimplexSpectralEmbedding(1).fit_transform(Xs)
            np.testing.assert_allclose(got, ref, atol=1e-6)


def test_embedding_of_an_atom_with_a_tiny_degree():
    # atom 6 is used by one sample with a weight of 1e-200: its row of the
    # atom side is that sample's embedding over σ², not rounding noise
    # multiplied by s^(-1/2) = 1e100
    rng = np.random.RandomState(0)
    X = np.c_[rng.dirichlet(np.ones(6) * 0.3, size=50), np.zeros(50)]
    rows = {}
    for w in (1e-50, 1e-200):
        X[0, 6] = w
        emb = SimplexSpectralEmbedding(3).fit(X)
        assert np.abs(emb.components_).max() < 10
        assert np.isfinite(emb.transform(X.astype(np.float32))).all()
        U0 = emb.transform(X[:1]) * np.linalg.norm(X[:1] @ emb.components_.T)
        np.testing.assert_allclose(
            emb.components_[:, 6], U0.ravel() / emb.singular_values_**2, rtol=1e-8
        )
        rows[w] = emb.transform([[0.5, 0, 0, 0, 0, 0, 0.5]])
    np.testing.assert_allclose(rows[1e-200], rows[1e-50], atol=1e-10)


def test_clustering_ignores_the_global_output_container():
    pytest.importorskip("pandas")
    from sklearn import config_context

    X, _ = make_blobs(120, centers=3, n_features=4, random_state=0)
    X[:, 0] *= 100  # with the scaler, as a step
    ref = SimplexSpectralClustering(3, n_dictionaries=2, random_state=0).fit(X)
    with config_context(transform_output="pandas"), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        np.testing.assert_array_equal(ref.predict(X), ref.labels_)
        model = SimplexSpectralClustering(3, n_dictionaries=2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        np.testing.assert_array_equal(model.predict(X), ref.labels_)


def test_labels_equal_predict_when_clusters_outnumber_points():
    X = np.repeat([[0.0, 0.0], [5.0, 1.0], [1.0, 7.0]], 3, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: fewer distinct points than clusters
        model = SimplexSpectralClustering(6, n_dictionaries=1, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


@pytest.mark.parametrize(
    ("estimator", "name"),
    [
        (SimplexSpectralClustering(n_clusters=True), "n_clusters"),
        (SimplexSpectralClustering(3, n_init=True), "n_init"),
        (SimplexSpectralEmbedding(n_components=True), "n_components"),
        (WeightedL1SparseCoder(n_components=True), "n_components"),
        (WeightedL1SparseCoder(3, n_layers=True), "n_layers"),
    ],
)
def test_integer_parameters_refuse_bools(estimator, name):
    X = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
    with pytest.raises(ValueError, match=f"'{name}' parameter of {type(estimator).__name__}"):
        estimator.fit(X)


def test_embedding_of_many_components_is_orthonormal():
    # codes of eight dictionaries hold near-duplicate atoms, hence small
    # singular values: the training embedding U = X P keeps UᵀU = I on them
    X, _ = make_blobs(600, centers=3, random_state=0)
    codes = SimplexSpectralClustering(3, random_state=0).fit(X).encode(X)
    emb = SimplexSpectralEmbedding(400, min_support=0).fit(codes)
    sigma = emb.singular_values_
    assert sigma[-1] < 1e-2  # deep into the small singular values
    U = np.asarray(codes @ emb.components_.T)
    good = sigma > 0
    np.testing.assert_allclose(U[:, good].T @ U[:, good], np.eye(good.sum()), atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaler_at_moderate_magnitudes_is_standard_scaler(dtype):
    # bit for bit, constant features (scale one) included, on training and
    # on new data
    from sklearn_wlsc._clustering import _fit_scaler

    rng = np.random.default_rng(0)
    X = np.c_[
        rng.normal(size=80) * 3 + 1, np.full(80, 5.0), np.full(80, 1e-3), rng.normal(size=80) * 1e-5
    ].astype(dtype)
    ref, got = StandardScaler().fit(X), _fit_scaler(X)
    np.testing.assert_array_equal(got.scale_, ref.scale_)
    np.testing.assert_array_equal(got.mean_, ref.mean_)
    for Z in (X, X + dtype(0.01)):
        np.testing.assert_array_equal(got.transform(Z), ref.transform(Z))


def test_pieces_rule_is_off_with_a_given_n_components():
    # two touching moons and a far group, c = 2: the pieces (moons | group)
    # by default, the moons split when n_components is given
    X, y = make_moons(500, noise=0.1, random_state=0)
    far = np.random.default_rng(1).normal(size=(30, 2)) * 0.1 + [6, 6]
    X = np.r_[X, far]
    pieces = SimplexSpectralClustering(2, random_state=0).fit(X)
    assert pieces.embedding_.n_core_components_ == 2 and pieces.n_components_ == 1
    assert len(set(pieces.labels_[500:])) == 1
    assert adjusted_rand_score(y, pieces.labels_[:500]) < 0.1
    split = SimplexSpectralClustering(2, n_components=4, random_state=0).fit(X)
    assert split.n_components_ == 4
    assert adjusted_rand_score(y, split.labels_[:500]) > 0.9


# -- samples outside the kept graph, and more pieces than clusters -----------


@pytest.mark.parametrize("n", [15, 18, 21, 24])
def test_clustering_small_blobs_places_every_sample(n):
    # few samples per atom: samples whose piece of the graph is dropped as
    # too light must not be lumped into one cluster at the embedding's
    # origin, and pieces beyond c must be joined by proximity, not at random
    found_outside = False
    for seed in range(5):
        X, y = make_blobs(n, centers=3, n_features=2, cluster_std=0.5, random_state=seed)
        model = SimplexSpectralClustering(3, random_state=0).fit(X)
        codes = model.encode(X)
        core = model.embedding_.core_atoms_
        found_outside |= bool((np.asarray(codes[:, core].sum(axis=1)).ravel() == 0).any())
        assert adjusted_rand_score(y, model.labels_) == 1.0
        np.testing.assert_array_equal(model.predict(X), model.labels_)
    if n == 15:
        assert found_outside


def test_outside_samples_take_the_cluster_of_the_nearest_labeled_atom():
    X, _ = make_blobs(15, centers=3, n_features=2, cluster_std=0.5, random_state=0)
    model = SimplexSpectralClustering(3, random_state=0).fit(X)
    codes = model.encode(X)
    outside = np.asarray(codes[:, model.embedding_.core_atoms_].sum(axis=1)).ravel() == 0
    assert outside.any()
    atoms = np.vstack([coder.components_ for coder in model.coders_])
    labeled = np.flatnonzero(model.atom_labels_ >= 0)
    d = ((X[outside][:, None, :] - atoms[labeled][None, :, :]) ** 2).sum(axis=2)
    expected = model.atom_labels_[labeled[d.argmin(axis=1)]]
    np.testing.assert_array_equal(model.labels_[outside], expected)
    # the same at any magnitude
    big = SimplexSpectralClustering(3, random_state=0).fit(X * 1e250)
    np.testing.assert_array_equal(big.labels_, model.labels_)


def test_atom_labels_follow_the_samples_that_use_them():
    X, y = make_blobs(300, centers=[[0, 0], [20, 0], [0, 20]], cluster_std=1.0, random_state=0)
    model = SimplexSpectralClustering(3, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    m_total = model.n_dictionaries * model.n_atoms_
    assert model.atom_labels_.shape == (m_total,)
    codes = model.encode(X).toarray()
    used = codes.sum(axis=0) > 0
    assert np.all(model.atom_labels_[used] >= 0) and np.all(model.atom_labels_[~used] == -1)
    # far-apart blobs: every sample using an atom shares the atom's cluster
    for j in np.flatnonzero(used):
        assert set(model.labels_[codes[:, j] > 0]) == {model.atom_labels_[j]}


def test_piece_groups_join_the_nearest_pieces_first():
    from sklearn_wlsc._clustering import _piece_groups

    # atoms on a line in four pieces: {0, 1} and {3} two apart, {50} and
    # {52, 53} two apart, the two pairs 47 apart
    atoms = np.array([[0.0], [1.0], [3.0], [50.0], [52.0], [53.0]])
    pieces = [[0, 1], [2], [3], [4, 5]]
    codes = np.zeros((8, 6))
    for p, members in enumerate(pieces):
        codes[2 * p : 2 * p + 2, members] = 1.0 / len(members)
    core = np.ones(6, dtype=bool)
    groups = _piece_groups(sparse.csr_matrix(codes), core, atoms, 2)
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] == groups[5]
    assert groups[0] != groups[3]
    # atoms outside the kept graph get no group
    core[5] = False
    groups = _piece_groups(sparse.csr_matrix(codes), core, atoms, 2)
    assert groups[5] == -1
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] != groups[0]
    # three groups: one of the two short gaps is bridged, never the long one
    groups = _piece_groups(codes, np.ones(6, dtype=bool), atoms, 3)
    assert len(set(groups)) == 3 and groups[0] == groups[1] and groups[4] == groups[5]
    assert (groups[2] == groups[0]) != (groups[3] == groups[4])


def test_fit_warnings_point_at_the_caller():
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="smaller than n_atoms") as record:
        SimplexSpectralClustering(2, n_atoms=5, n_dictionaries=1, random_state=0).fit(
            rng.random((4, 2))
        )
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="exceeds the 2 non-trivial") as record:
        SimplexSpectralEmbedding(5).fit(rng.random((20, 3)))
    assert record[0].filename == __file__


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustering_of_few_samples_per_cluster(seed):
    # 100 samples in 32 clusters: 3 c + 1 = 97 atoms would make every code
    # one-hot and drop every piece of one sample; at most n // 2 atoms keep
    # samples sharing atoms (before: 4 to 7 distinct labels, ARI about 0)
    X, y = make_blobs(100, centers=32, n_features=2, cluster_std=0.3, random_state=seed)
    model = SimplexSpectralClustering(32, random_state=0).fit(X)
    assert model.n_atoms_ == 50
    assert len(set(model.labels_)) == 32
    assert adjusted_rand_score(y, model.labels_) > 0.7
    np.testing.assert_array_equal(model.predict(X), model.labels_)


@pytest.mark.parametrize("n_outliers", [10, 40])
def test_a_light_far_piece_joins_a_cluster_instead_of_splitting_two(n_outliers):
    # three blobs and a small far group: four kept pieces for three clusters;
    # the light piece is the outskirts of its nearest cluster, not a cluster
    X, y = make_blobs([100, 100, 100], centers=[[0, 0], [15, 0], [0, 15]], random_state=0)
    far = np.random.default_rng(0).normal(size=(n_outliers, 2)) * 0.5 + [60, 60]
    model = SimplexSpectralClustering(3, random_state=0).fit(np.vstack([X, far]))
    assert model.embedding_.n_core_components_ == 4
    assert adjusted_rand_score(y, model.labels_[:300]) == 1.0
    assert len(set(model.labels_[300:])) == 1


def test_nearest_rows_and_distances_ignore_offset_and_magnitude(rng):
    from sklearn_wlsc._clustering import _nearest_rows, _pairwise_distances

    P = rng.normal(size=(30, 3))
    Q = rng.normal(size=(50, 3)) * 2
    d2 = ((Q[:, None, :] - P[None, :, :]) ** 2).sum(axis=2)
    D = np.sqrt(((P[:, None, :] - P[None, :, :]) ** 2).sum(axis=2))
    for scale, offset in [(1.0, 0.0), (1e-3, 1e6), (1e-2, 1e8), (1e250, 0.0), (1e-300, 0.0)]:
        got = _nearest_rows(Q * scale + offset, P * scale + offset)
        np.testing.assert_array_equal(got, d2.argmin(axis=1))
        # in units of one power of two: the ratios are those of the exact distances
        Dg = _pairwise_distances(P * scale + offset)
        np.testing.assert_allclose(Dg / Dg.max(), D / D.max(), atol=1e-6)


def test_clustering_small_blobs_far_from_the_origin():
    # metre-scale coordinates with a spread of millimetres
    X, y = make_blobs(21, centers=3, n_features=2, cluster_std=0.5, random_state=4)
    model = SimplexSpectralClustering(3, random_state=0).fit(X * 1e-3 + 1e6)
    assert adjusted_rand_score(y, model.labels_) == 1.0
