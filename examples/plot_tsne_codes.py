"""
A t-SNE map of the codes (Figure 1B)
====================================

The papers show that WLSC codes keep the clustering structure of the data:
a 2-D t-SNE of the codes of digits separates the classes. This example maps
the raw pixels and the codes side by side with scikit-learn's
:class:`~sklearn.manifold.TSNE`.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE

from sklearn_wlsc import WeightedL1SparseCoder

X, y = load_digits(return_X_y=True)
codes = WeightedL1SparseCoder(n_components=100, alpha=0.5, random_state=0).fit_transform(X)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, data, title in ((axes[0], X, "raw pixels"), (axes[1], codes, "WLSC codes")):
    emb = TSNE(2, init="pca", random_state=0).fit_transform(data)
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10", s=4)
    ax.set_title(f"t-SNE of the {title}")
    ax.set_xticks([])
    ax.set_yticks([])
axes[1].legend(*sc.legend_elements(), fontsize=7, title="digit", loc="best")
fig.tight_layout()
plt.show()
