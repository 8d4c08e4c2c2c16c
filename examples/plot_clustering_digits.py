"""
Clustering digits through their codes
=====================================

Codes on the simplex are nearly one-hot, so k-means on them clusters poorly;
the spectral embedding of the sample–atom bipartite graph recovers the
structure. This example compares :class:`~sklearn_wlsc.SimplexSpectralClustering`
with k-means on the raw pixels and on the raw codes, builds the same model as
a :class:`~sklearn.pipeline.Pipeline`, and predicts held-out digits.
"""

import matplotlib.pyplot as plt
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sklearn_wlsc import (
    SimplexSpectralClustering,
    SimplexSpectralEmbedding,
    WeightedL1SparseCoder,
)

X, y = load_digits(return_X_y=True)
model = SimplexSpectralClustering(n_clusters=10, random_state=0)
labels = model.fit_predict(X)
codes = model.coder_.transform(X)  # the codes of one of its dictionaries
scores = {
    "KMeans on pixels": adjusted_rand_score(
        y, KMeans(10, n_init=10, random_state=0).fit_predict(X)
    ),
    "KMeans on codes": adjusted_rand_score(
        y, KMeans(10, n_init=10, random_state=0).fit_predict(codes)
    ),
    "bipartite spectral": adjusted_rand_score(y, labels),
}
for name, ari in scores.items():
    print(f"{name:>20}: ARI {ari:.3f}")

# with a single dictionary (n_dictionaries=1), the model is this pipeline
pipe = make_pipeline(
    WeightedL1SparseCoder(n_components=model.n_atoms_, alpha=model.alpha_, random_state=0),
    SimplexSpectralEmbedding(
        n_components=model.n_components_,
        min_support=len(X) / model.n_atoms_,
        diffusion_time="auto",
    ),
    KMeans(10, n_init=10, random_state=0),
)
print(f"pipeline ARI {adjusted_rand_score(y, pipe.fit_predict(X)):.3f}")

# out-of-sample prediction
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
model = SimplexSpectralClustering(n_clusters=10, random_state=0).fit(X_train)
print(
    f"in-sample ARI {adjusted_rand_score(y_train, model.labels_):.3f}, "
    f"held-out ARI {adjusted_rand_score(y_test, model.predict(X_test)):.3f}"
)

fig, ax = plt.subplots(figsize=(5, 3))
ax.barh(list(scores), list(scores.values()))
ax.set_xlabel("adjusted Rand index on digits")
fig.tight_layout()
plt.show()
