"""
Unrolled against exact encoders
===============================

The unrolled encoder runs a fixed number of accelerated projected-gradient
steps (the network of the papers); the exact encoder solves each code to a
certified duality gap. This example plots the objective of the unrolled
codes against their depth, relative to the exact optimum, for a dictionary
learned on digits and for several values of ``alpha``.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_wlsc import WeightedL1SparseCoder, sparse_encode


def objective(Y, A, X, alpha):
    rec = 0.5 * ((Y - X @ A) ** 2).sum(axis=1)
    dist = ((Y[:, None, :] - A[None]) ** 2).sum(axis=2)
    return np.mean(rec + alpha * (X * dist).sum(axis=1))


X, _ = load_digits(return_X_y=True)
X = X[:600]
A = WeightedL1SparseCoder(n_components=32, random_state=0).fit(X).components_

layers = [1, 2, 5, 10, 20, 50, 100, 200, 500]
fig, ax = plt.subplots(figsize=(6, 4))
for alpha in (0.0, 0.5, 2.0):
    F_star = objective(X, A, sparse_encode(X, A, alpha=alpha), alpha)
    gaps = [
        objective(X, A, sparse_encode(X, A, alpha=alpha, algorithm="unrolled", n_layers=k), alpha)
        / F_star
        - 1
        for k in layers
    ]
    ax.loglog(layers, np.maximum(gaps, 1e-16), "o-", label=f"alpha = {alpha}")
    print(f"alpha={alpha}: relative excess objective at 50 layers {gaps[layers.index(50)]:.2e}")
ax.set_xlabel("layers of the unrolled encoder")
ax.set_ylabel("F(unrolled) / F(exact) - 1")
ax.set_title("The unrolled encoder approaches the exact codes")
ax.legend()
fig.tight_layout()
plt.show()
